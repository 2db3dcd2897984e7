// RUN: tinytrain-opt -p 'pin-clamp-masks' %s | filecheck %s
// RUN: tinytrain-opt -p 'autodiff{trainable=c1.bias,c2.bias lr=0.5 clamp_masks=1},pin-clamp-masks' %S/clamp-mask-autodiff.mlir | filecheck %s --check-prefix=AD
// pin-clamp-masks: each packed clamp mask is computed right after its activation (before the
// activation's other readers) and both go through one util.optimization_barrier: the forward
// readers take the activation from it, the backward readers the mask, so IREE packs the mask in
// the forward pass and keeps the mask, not the activation, for backward. A mask nothing reads is
// erased.
// CHECK-LABEL: func.func @train_step(
// CHECK:         %[[Y:.*]] = "tinytrain.qconv2d"(%arg0,
// CHECK-NEXT:    %[[M:.*]] = "tinytrain.qclamp_mask"(%[[Y]])
// CHECK-NEXT:    %[[B:.*]]:2 = "util.optimization_barrier"(%[[Y]], %[[M]]) : (tensor<1x2x2x8xi8>, tensor<1x2x2x1xi8>) -> (tensor<1x2x2x8xi8>, tensor<1x2x2x1xi8>)
// CHECK-NEXT:    %[[Z:.*]] = "tinytrain.qconv2d"(%[[B]]#0,
// CHECK-NOT:     qclamp_mask
// CHECK:         %[[G:.*]] = "tinytrain.qmask_grad"(%arg3, %[[B]]#1)
// CHECK-NEXT:    return %[[Z]], %[[G]]
func.func @train_step(%x: tensor<1x2x2x8xi8>, %w: tensor<1x1x8x8xi8>, %b: tensor<8xi32>, %g: tensor<1x2x2x8xf32>) -> (tensor<1x2x2x8xi8>, tensor<1x2x2x8xf32>) {
  %y = "tinytrain.qconv2d"(%x, %w, %b) {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, groups = 1 : i64, input_scale = 5.000000e-01 : f64, input_zero_point = 0 : i64, weight_scales = array<f64: 2.500000e-01, 2.500000e-01, 2.500000e-01, 2.500000e-01, 2.500000e-01, 2.500000e-01, 2.500000e-01, 2.500000e-01>, output_scale = 1.000000e+00 : f64, output_zero_point = -128 : i64, multiplier = array<i32: 1073741824, 1073741824, 1073741824, 1073741824, 1073741824, 1073741824, 1073741824, 1073741824>, shift = array<i32: -2, -2, -2, -2, -2, -2, -2, -2>, clamp = array<i64: -128, 127>} : (tensor<1x2x2x8xi8>, tensor<1x1x8x8xi8>, tensor<8xi32>) -> tensor<1x2x2x8xi8>
  %z = "tinytrain.qconv2d"(%y, %w, %b) {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, groups = 1 : i64, input_scale = 5.000000e-01 : f64, input_zero_point = 0 : i64, weight_scales = array<f64: 2.500000e-01, 2.500000e-01, 2.500000e-01, 2.500000e-01, 2.500000e-01, 2.500000e-01, 2.500000e-01, 2.500000e-01>, output_scale = 1.000000e+00 : f64, output_zero_point = -128 : i64, multiplier = array<i32: 1073741824, 1073741824, 1073741824, 1073741824, 1073741824, 1073741824, 1073741824, 1073741824>, shift = array<i32: -2, -2, -2, -2, -2, -2, -2, -2>, clamp = array<i64: -128, 127>} : (tensor<1x2x2x8xi8>, tensor<1x1x8x8xi8>, tensor<8xi32>) -> tensor<1x2x2x8xi8>
  %m = "tinytrain.qclamp_mask"(%y) {clamp = array<i64: -128, 127>} : (tensor<1x2x2x8xi8>) -> tensor<1x2x2x1xi8>
  %unused = "tinytrain.qclamp_mask"(%z) {clamp = array<i64: -128, 127>} : (tensor<1x2x2x8xi8>) -> tensor<1x2x2x1xi8>
  %gy = "tinytrain.qmask_grad"(%g, %m) : (tensor<1x2x2x8xf32>, tensor<1x2x2x1xi8>) -> tensor<1x2x2x8xf32>
  return %z, %gy : tensor<1x2x2x8xi8>, tensor<1x2x2x8xf32>
}
// After autodiff: both bias-only layers' masks pinned; their qmask_grads read the barriers.
// AD-LABEL: func.func @train_step(
// AD:         %[[Y1:.*]] = "tinytrain.qconv2d"
// AD-NEXT:    %[[M1:.*]] = "tinytrain.qclamp_mask"(%[[Y1]])
// AD-NEXT:    %[[B1:.*]]:2 = "util.optimization_barrier"(%[[Y1]], %[[M1]])
// AD-NEXT:    %[[Y2:.*]] = "tinytrain.qconv2d"(%[[B1]]#0,
// AD-NEXT:    %[[M2:.*]] = "tinytrain.qclamp_mask"(%[[Y2]])
// AD-NEXT:    %[[B2:.*]]:2 = "util.optimization_barrier"(%[[Y2]], %[[M2]])
// AD-NEXT:    "tinytrain.qavg_pool"(%[[B2]]#0)
// AD:         "tinytrain.qmask_grad"(%{{.*}}, %[[B2]]#1)
// AD:         "tinytrain.qmask_grad"(%{{.*}}, %[[B1]]#1)
// AD:         return
