// RUN: tinytrain-opt -p 'autodiff{trainable=c1.bias,c2.bias lr=0.5 clamp_masks=1}' %s | filecheck %s
// RUN: tinytrain-opt -p 'autodiff{trainable=c1.bias,c2.weight lr=0.5 clamp_masks=1}' %s | filecheck %s --check-prefix=READ
// RUN: tinytrain-opt -p 'autodiff{trainable=c1.bias,c2.bias lr=0.5}' %s | filecheck %s --check-prefix=OFF
// With clamp_masks=1, bias-only int8 layers keep a packed 1-bit clamp mask instead of their int8
// output (paper Sec. 2.3): the mask (8 channels per byte) is computed in the forward pass right after the conv,
// and backward reads it with qmask_grad; nothing in backward reads the int8 outputs.
// CHECK-LABEL: func.func @train_step(
// CHECK:         %[[Y1:.*]] = "tinytrain.qconv2d"
// CHECK-NEXT:    %[[M1:.*]] = "tinytrain.qclamp_mask"(%[[Y1]]) {clamp = array<i64: -128, 127>} : (tensor<1x2x2x8xi8>) -> tensor<1x2x2x1xi8>
// CHECK-NEXT:    %[[Y2:.*]] = "tinytrain.qconv2d"(%[[Y1]],
// CHECK-NEXT:    %[[M2:.*]] = "tinytrain.qclamp_mask"(%[[Y2]]) {clamp = array<i64: -128, 127>} : (tensor<1x2x2x8xi8>) -> tensor<1x2x2x1xi8>
// CHECK-NEXT:    "tinytrain.qavg_pool"(%[[Y2]])
// CHECK-NOT:     {{[(]}}%[[Y1]]{{[,)]}}
// CHECK-NOT:     {{[(]}}%[[Y2]]{{[,)]}}
// CHECK:         %[[G2:.*]] = "tinytrain.qmask_grad"(%{{.*}}, %[[M2]]) : (tensor<1x2x2x8xf32>, tensor<1x2x2x1xi8>) -> tensor<1x2x2x8xf32>
// CHECK:         "tinytrain.conv2d_grad_input"(%[[G2]],
// CHECK:         "tinytrain.bias_grad"(%[[G2]])
// CHECK:         %[[G1:.*]] = "tinytrain.qmask_grad"(%{{.*}}, %[[M1]])
// CHECK-NEXT:    "tinytrain.bias_grad"(%[[G1]])
// CHECK-NOT:     qclamp_grad
// CHECK:         return
// When the next layer trains its weight, its gradient reads c1's output: c1 keeps it (no mask).
// READ-LABEL: func.func @train_step(
// READ-NOT:     qclamp_mask
// READ:         %[[Y1:.*]] = "tinytrain.qconv2d"
// READ:         "tinytrain.dequantize"(%[[Y1]])
// READ:         "tinytrain.qclamp_grad"(%{{.*}}, %[[Y1]])
// READ-NOT:     qclamp_mask
// READ:         return
// Without clamp_masks=1 (autodiff's default; tinytrain.int8 turns it on, with pin-clamp-masks, for Cortex-M)
// the int8 outputs are kept and read by qclamp_grad.
// OFF-LABEL: func.func @train_step(
// OFF-NOT:     qclamp_mask
// OFF:         %[[Y1:.*]] = "tinytrain.qconv2d"
// OFF:         %[[Y2:.*]] = "tinytrain.qconv2d"(%[[Y1]],
// OFF:         "tinytrain.qclamp_grad"(%{{.*}}, %[[Y2]])
// OFF:         "tinytrain.qclamp_grad"(%{{.*}}, %[[Y1]])
// OFF:         return
func.func @forward(%w1: tensor<1x1x8x8xi8> {tinytrain.param = "c1.weight"}, %b1: tensor<8xi32> {tinytrain.param = "c1.bias"},
                   %w2: tensor<1x1x8x8xi8> {tinytrain.param = "c2.weight"}, %b2: tensor<8xi32> {tinytrain.param = "c2.bias"},
                   %fw: tensor<3x8xf32> {tinytrain.param = "fc.weight"}, %fb: tensor<3xf32> {tinytrain.param = "fc.bias"},
                   %x: tensor<1x2x2x8xi8> {tinytrain.input}) -> tensor<1x3xf32> {
  %y1 = "tinytrain.qconv2d"(%x, %w1, %b1) {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, groups = 1 : i64, input_scale = 5.000000e-01 : f64, input_zero_point = 0 : i64, weight_scales = array<f64: 2.500000e-01, 2.500000e-01, 2.500000e-01, 2.500000e-01, 2.500000e-01, 2.500000e-01, 2.500000e-01, 2.500000e-01>, output_scale = 1.000000e+00 : f64, output_zero_point = -128 : i64, multiplier = array<i32: 1073741824, 1073741824, 1073741824, 1073741824, 1073741824, 1073741824, 1073741824, 1073741824>, shift = array<i32: -2, -2, -2, -2, -2, -2, -2, -2>, clamp = array<i64: -128, 127>} : (tensor<1x2x2x8xi8>, tensor<1x1x8x8xi8>, tensor<8xi32>) -> tensor<1x2x2x8xi8>
  %y2 = "tinytrain.qconv2d"(%y1, %w2, %b2) {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, groups = 1 : i64, input_scale = 1.000000e+00 : f64, input_zero_point = -128 : i64, weight_scales = array<f64: 1.250000e-01, 1.250000e-01, 1.250000e-01, 1.250000e-01, 1.250000e-01, 1.250000e-01, 1.250000e-01, 1.250000e-01>, output_scale = 1.000000e+00 : f64, output_zero_point = 0 : i64, multiplier = array<i32: 1073741824, 1073741824, 1073741824, 1073741824, 1073741824, 1073741824, 1073741824, 1073741824>, shift = array<i32: -2, -2, -2, -2, -2, -2, -2, -2>, clamp = array<i64: -128, 127>} : (tensor<1x2x2x8xi8>, tensor<1x1x8x8xi8>, tensor<8xi32>) -> tensor<1x2x2x8xi8>
  %p = "tinytrain.qavg_pool"(%y2) : (tensor<1x2x2x8xi8>) -> tensor<1x8xi8>
  %d = "tinytrain.dequantize"(%p) {scale = 1.000000e+00 : f64, zero_point = 0 : i64} : (tensor<1x8xi8>) -> tensor<1x8xf32>
  %l = "tinytrain.linear"(%d, %fw, %fb) : (tensor<1x8xf32>, tensor<3x8xf32>, tensor<3xf32>) -> tensor<1x3xf32>
  return %l : tensor<1x3xf32>
}
