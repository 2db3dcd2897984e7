// row-bands: a block's chain of int8 convs (1x1 expansion, 3x3 depthwise, 1x1 projection) whose
// inner values only it and their packed clamp masks read runs in bands of output rows: band 0
// computes output rows 0-1 from input rows 0-2 (the depthwise's top padding only, a tensor.pad
// with the input zero point; the convs unpadded), band 1 rows 2-3 from rows 1-3, after a barrier
// on the input and the pieces assembled so far. Each mask is assembled from the rows each band
// owns (the expansion's row 3 is band 1's, rows 0-2 band 0's). A chain whose inner tensors are
// below min_bytes, or with a kernel taller than max_kernel rows, is left as it is.
// RUN: tinytrain-opt -p 'row-bands{bands=2 min_bytes=0 band_bytes=1}' %s | filecheck %s
// RUN: tinytrain-opt -p 'row-bands{bands=2 min_bytes=1000}' %s | filecheck %s --check-prefix=SMALL
// RUN: tinytrain-opt -p 'row-bands{bands=2 min_bytes=0 band_bytes=1 max_kernel=1}' %s | filecheck %s --check-prefix=SMALL
// CHECK-LABEL: func.func @train_step(
// CHECK:         %[[OUT:.*]] = tensor.empty() : tensor<1x4x4x8xi8>
// CHECK-NEXT:    %[[MA:.*]] = tensor.empty() : tensor<1x4x4x2xi8>
// CHECK-NEXT:    %[[MD:.*]] = tensor.empty() : tensor<1x4x4x2xi8>
// CHECK-NEXT:    %[[X0:.*]] = tensor.extract_slice %arg0[0, 0, 0, 0] [1, 3, 4, 8]
// CHECK-NEXT:    %[[A0:.*]] = "tinytrain.qconv2d"(%[[X0]], %arg1, %arg2) {{.*}} -> tensor<1x3x4x16xi8>
// CHECK-NEXT:    %[[P0:.*]] = tensor.pad %[[A0]] low[0, 1, 1, 0] high[0, 0, 1, 0]
// CHECK:           arith.constant -3 : i8
// CHECK:         %[[D0:.*]] = "tinytrain.qconv2d"(%[[P0]], %arg3, %arg4) {{.*}}padding = array<i64: 0, 0>{{.*}} -> tensor<1x2x4x16xi8>
// CHECK-NEXT:    %[[Y0:.*]] = "tinytrain.qconv2d"(%[[D0]], %arg5, %arg6) {{.*}} -> tensor<1x2x4x8xi8>
// CHECK-NEXT:    %[[OUT0:.*]] = tensor.insert_slice %[[Y0]] into %[[OUT]][0, 0, 0, 0] [1, 2, 4, 8]
// CHECK-NEXT:    %[[MA0:.*]] = "tinytrain.qclamp_mask"(%[[A0]]) {{.*}} -> tensor<1x3x4x2xi8>
// CHECK-NEXT:    %[[MAS0:.*]] = tensor.insert_slice %[[MA0]] into %[[MA]][0, 0, 0, 0] [1, 3, 4, 2]
// CHECK-NEXT:    %[[MD0:.*]] = "tinytrain.qclamp_mask"(%[[D0]]) {{.*}} -> tensor<1x2x4x2xi8>
// CHECK-NEXT:    %[[MDS0:.*]] = tensor.insert_slice %[[MD0]] into %[[MD]][0, 0, 0, 0] [1, 2, 4, 2]
// CHECK-NEXT:    %[[B:.*]]:4 = "util.optimization_barrier"(%arg0, %[[OUT0]], %[[MAS0]], %[[MDS0]])
// CHECK-NEXT:    %[[X1:.*]] = tensor.extract_slice %[[B]]#0[0, 1, 0, 0] [1, 3, 4, 8]
// CHECK-NEXT:    %[[A1:.*]] = "tinytrain.qconv2d"(%[[X1]], %arg1, %arg2)
// CHECK-NEXT:    %[[P1:.*]] = tensor.pad %[[A1]] low[0, 0, 1, 0] high[0, 1, 1, 0]
// CHECK:         %[[D1:.*]] = "tinytrain.qconv2d"(%[[P1]], %arg3, %arg4)
// CHECK-NEXT:    %[[Y1:.*]] = "tinytrain.qconv2d"(%[[D1]], %arg5, %arg6)
// CHECK-NEXT:    %[[OUT1:.*]] = tensor.insert_slice %[[Y1]] into %[[B]]#1[0, 2, 0, 0] [1, 2, 4, 8]
// CHECK-NEXT:    %[[A1OWN:.*]] = tensor.extract_slice %[[A1]][0, 2, 0, 0] [1, 1, 4, 16]
// CHECK-NEXT:    %[[MA1:.*]] = "tinytrain.qclamp_mask"(%[[A1OWN]]) {{.*}} -> tensor<1x1x4x2xi8>
// CHECK-NEXT:    %[[MAS1:.*]] = tensor.insert_slice %[[MA1]] into %[[B]]#2[0, 3, 0, 0] [1, 1, 4, 2]
// CHECK-NEXT:    %[[MD1:.*]] = "tinytrain.qclamp_mask"(%[[D1]])
// CHECK-NEXT:    %[[MDS1:.*]] = tensor.insert_slice %[[MD1]] into %[[B]]#3[0, 2, 0, 0] [1, 2, 4, 2]
// CHECK-NEXT:    %[[GA:.*]] = "tinytrain.qmask_grad"(%arg7, %[[MAS1]])
// CHECK-NEXT:    %[[GD:.*]] = "tinytrain.qmask_grad"(%arg7, %[[MDS1]])
// CHECK-NEXT:    return %[[OUT1]], %[[GA]], %[[GD]]
// SMALL-LABEL: func.func @train_step(
// SMALL-NOT:     tensor.extract_slice
// SMALL-NOT:     util.optimization_barrier
// SMALL-COUNT-3: "tinytrain.qconv2d"
func.func @train_step(%x: tensor<1x4x4x8xi8>, %w1: tensor<1x1x8x16xi8>, %b1: tensor<16xi32>, %w2: tensor<3x3x1x16xi8>, %b2: tensor<16xi32>, %w3: tensor<1x1x16x8xi8>, %b3: tensor<8xi32>, %g: tensor<1x4x4x16xf32>) -> (tensor<1x4x4x8xi8>, tensor<1x4x4x16xf32>, tensor<1x4x4x16xf32>) {
  %a = "tinytrain.qconv2d"(%x, %w1, %b1) {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, groups = 1 : i64, input_scale = 5.000000e-01 : f64, input_zero_point = -3 : i64, weight_scales = array<f64: 2.500000e-01, 2.500000e-01, 2.500000e-01, 2.500000e-01, 2.500000e-01, 2.500000e-01, 2.500000e-01, 2.500000e-01, 2.500000e-01, 2.500000e-01, 2.500000e-01, 2.500000e-01, 2.500000e-01, 2.500000e-01, 2.500000e-01, 2.500000e-01>, output_scale = 1.000000e+00 : f64, output_zero_point = -128 : i64, multiplier = array<i32: 1073741824, 1073741824, 1073741824, 1073741824, 1073741824, 1073741824, 1073741824, 1073741824, 1073741824, 1073741824, 1073741824, 1073741824, 1073741824, 1073741824, 1073741824, 1073741824>, shift = array<i32: -2, -2, -2, -2, -2, -2, -2, -2, -2, -2, -2, -2, -2, -2, -2, -2>, clamp = array<i64: -128, 127>} : (tensor<1x4x4x8xi8>, tensor<1x1x8x16xi8>, tensor<16xi32>) -> tensor<1x4x4x16xi8> loc("blk.a")
  %ma = "tinytrain.qclamp_mask"(%a) {clamp = array<i64: -128, 127>} : (tensor<1x4x4x16xi8>) -> tensor<1x4x4x2xi8> loc("blk.a")
  %d = "tinytrain.qconv2d"(%a, %w2, %b2) {strides = array<i64: 1, 1>, padding = array<i64: 1, 1>, groups = 16 : i64, input_scale = 5.000000e-01 : f64, input_zero_point = -3 : i64, weight_scales = array<f64: 2.500000e-01, 2.500000e-01, 2.500000e-01, 2.500000e-01, 2.500000e-01, 2.500000e-01, 2.500000e-01, 2.500000e-01, 2.500000e-01, 2.500000e-01, 2.500000e-01, 2.500000e-01, 2.500000e-01, 2.500000e-01, 2.500000e-01, 2.500000e-01>, output_scale = 1.000000e+00 : f64, output_zero_point = -128 : i64, multiplier = array<i32: 1073741824, 1073741824, 1073741824, 1073741824, 1073741824, 1073741824, 1073741824, 1073741824, 1073741824, 1073741824, 1073741824, 1073741824, 1073741824, 1073741824, 1073741824, 1073741824>, shift = array<i32: -2, -2, -2, -2, -2, -2, -2, -2, -2, -2, -2, -2, -2, -2, -2, -2>, clamp = array<i64: -128, 127>} : (tensor<1x4x4x16xi8>, tensor<3x3x1x16xi8>, tensor<16xi32>) -> tensor<1x4x4x16xi8> loc("blk.d")
  %md = "tinytrain.qclamp_mask"(%d) {clamp = array<i64: -128, 127>} : (tensor<1x4x4x16xi8>) -> tensor<1x4x4x2xi8> loc("blk.d")
  %p = "tinytrain.qconv2d"(%d, %w3, %b3) {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, groups = 1 : i64, input_scale = 5.000000e-01 : f64, input_zero_point = -3 : i64, weight_scales = array<f64: 2.500000e-01, 2.500000e-01, 2.500000e-01, 2.500000e-01, 2.500000e-01, 2.500000e-01, 2.500000e-01, 2.500000e-01>, output_scale = 1.000000e+00 : f64, output_zero_point = -128 : i64, multiplier = array<i32: 1073741824, 1073741824, 1073741824, 1073741824, 1073741824, 1073741824, 1073741824, 1073741824>, shift = array<i32: -2, -2, -2, -2, -2, -2, -2, -2>, clamp = array<i64: -128, 127>} : (tensor<1x4x4x16xi8>, tensor<1x1x16x8xi8>, tensor<8xi32>) -> tensor<1x4x4x8xi8> loc("blk.p")
  %ga = "tinytrain.qmask_grad"(%g, %ma) : (tensor<1x4x4x16xf32>, tensor<1x4x4x2xi8>) -> tensor<1x4x4x16xf32>
  %gd = "tinytrain.qmask_grad"(%g, %md) : (tensor<1x4x4x16xf32>, tensor<1x4x4x2xi8>) -> tensor<1x4x4x16xf32>
  return %p, %ga, %gd : tensor<1x4x4x8xi8>, tensor<1x4x4x16xf32>, tensor<1x4x4x16xf32>
}
