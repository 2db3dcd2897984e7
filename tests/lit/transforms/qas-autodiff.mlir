// RUN: tinytrain-opt -p 'autodiff{trainable=c.weight,c.bias lr=0.5},qas' %s | filecheck %s
// RUN: tinytrain-opt -p 'autodiff{trainable=c.weight,c.bias lr=0.5 momentum=0.5},qas' %s | filecheck %s --check-prefix=MOM

// autodiff then qas on an int8 @forward with an fp32 head: the int8 conv's gradients are taken
// on real values (clamp mask, dequantized input), turned into gradients of the integer values
// (x s_W, x s_x s_W), rescaled by QAS, and written back by qsgd_update.
// CHECK-LABEL: func.func @train_step(
// CHECK-SAME:    %[[W:.*]]: tensor<1x1x2x2xi8> {iree.abi.output = 0 : index, tinytrain.param = "c.weight", tinytrain.trainable}, %[[B:.*]]: tensor<2xi32> {iree.abi.output = 1 : index, tinytrain.param = "c.bias", tinytrain.trainable}
// CHECK:         %[[Y:.*]] = "tinytrain.qconv2d"
// CHECK:         %[[M:.*]] = "tinytrain.qclamp_grad"(%{{.*}}, %[[Y]]) {clamp = array<i64: -128, 127>}
// CHECK-NEXT:    %[[XR:.*]] = "tinytrain.dequantize"(%{{.*}}) {scale = 5.000000e-01 : f64, zero_point = 0 : i64}
// CHECK-NEXT:    %[[GWR:.*]] = "tinytrain.conv2d_grad_weight"(%[[XR]], %[[M]])
// CHECK-NEXT:    %[[GW:.*]] = "tinytrain.channel_scale"(%[[GWR]]) {scales = array<f64: 2.500000e-01, 1.250000e-01>}
// CHECK-NEXT:    %[[GBR:.*]] = "tinytrain.bias_grad"(%[[M]])
// CHECK-NEXT:    %[[GB:.*]] = "tinytrain.channel_scale"(%[[GBR]]) {scales = array<f64: 1.250000e-01, 6.250000e-02>}
// CHECK-NEXT:    %[[QW:.*]] = "tinytrain.channel_scale"(%[[GW]]) {scales = array<f64: 1.600000e+01, 6.400000e+01>}
// CHECK-NEXT:    "tinytrain.qsgd_update"(%[[W]], %[[QW]], %{{.*}}) {lr = 5.000000e-01 : f32, tinytrain.qas}
// CHECK-NEXT:    %[[QB:.*]] = "tinytrain.channel_scale"(%[[GB]]) {scales = array<f64: 6.400000e+01, 2.560000e+02>}
// CHECK-NEXT:    "tinytrain.qsgd_update"(%[[B]], %[[QB]], %{{.*}}) {lr = 5.000000e-01 : f32, tinytrain.qas}
// With momentum, QAS rescales the gradient the f32 buffer accumulates (the sgd_momentum
// operand), and qsgd_update writes back clamp(p - round_half_even(lr * v')).
// MOM-LABEL: func.func @train_step(
// MOM-SAME:    %[[W:[^:]*]]: tensor<1x1x2x2xi8> {iree.abi.output = 0 : index, tinytrain.param = "c.weight", tinytrain.trainable}, %[[B:[^:]*]]: tensor<2xi32> {iree.abi.output = 1 : index, tinytrain.param = "c.bias", tinytrain.trainable}
// MOM-SAME:    %[[VW:[^:]*]]: tensor<1x1x2x2xf32> {iree.abi.output = 2 : index, tinytrain.momentum_buffer = "c.weight"}, %[[VB:[^:]*]]: tensor<2xf32> {iree.abi.output = 3 : index, tinytrain.momentum_buffer = "c.bias"}
// MOM:         %[[L:.*]] = "tinytrain.softmax_cross_entropy"
// MOM:         %[[GW:.*]] = "tinytrain.channel_scale"(%{{.*}}) {scales = array<f64: 2.500000e-01, 1.250000e-01>}
// MOM:         %[[GB:.*]] = "tinytrain.channel_scale"(%{{.*}}) {scales = array<f64: 1.250000e-01, 6.250000e-02>}
// MOM-NEXT:    %[[QW:.*]] = "tinytrain.channel_scale"(%[[GW]]) {scales = array<f64: 1.600000e+01, 6.400000e+01>}
// MOM-NEXT:    %[[NVW:.*]] = "tinytrain.sgd_momentum"(%[[VW]], %[[QW]], %[[L]]) {momentum = 5.000000e-01 : f32}
// MOM-NEXT:    %[[NW:.*]] = "tinytrain.qsgd_update"(%[[W]], %[[NVW]], %[[L]]) {lr = 5.000000e-01 : f32, tinytrain.qas}
// MOM-NEXT:    %[[QB:.*]] = "tinytrain.channel_scale"(%[[GB]]) {scales = array<f64: 6.400000e+01, 2.560000e+02>}
// MOM-NEXT:    %[[NVB:.*]] = "tinytrain.sgd_momentum"(%[[VB]], %[[QB]], %[[L]]) {momentum = 5.000000e-01 : f32}
// MOM-NEXT:    %[[NB:.*]] = "tinytrain.qsgd_update"(%[[B]], %[[NVB]], %[[L]]) {lr = 5.000000e-01 : f32, tinytrain.qas}
// MOM-NEXT:    return %[[NW]], %[[NB]], %[[NVW]], %[[NVB]], %[[L]]
func.func @forward(%w: tensor<1x1x2x2xi8> {tinytrain.param = "c.weight"}, %b: tensor<2xi32> {tinytrain.param = "c.bias"},
                   %fw: tensor<3x2xf32> {tinytrain.param = "fc.weight"}, %fb: tensor<3xf32> {tinytrain.param = "fc.bias"},
                   %x: tensor<1x2x2x2xi8> {tinytrain.input}) -> tensor<1x3xf32> {
  %y = "tinytrain.qconv2d"(%x, %w, %b) {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, groups = 1 : i64, input_scale = 5.000000e-01 : f64, input_zero_point = 0 : i64, weight_scales = array<f64: 2.500000e-01, 1.250000e-01>, output_scale = 1.000000e+00 : f64, output_zero_point = 0 : i64, multiplier = array<i32: 1073741824, 1073741824>, shift = array<i32: -2, -3>, clamp = array<i64: -128, 127>} : (tensor<1x2x2x2xi8>, tensor<1x1x2x2xi8>, tensor<2xi32>) -> tensor<1x2x2x2xi8>
  %p = "tinytrain.qavg_pool"(%y) : (tensor<1x2x2x2xi8>) -> tensor<1x2xi8>
  %d = "tinytrain.dequantize"(%p) {scale = 1.000000e+00 : f64, zero_point = 0 : i64} : (tensor<1x2xi8>) -> tensor<1x2xf32>
  %l = "tinytrain.linear"(%d, %fw, %fb) : (tensor<1x2xf32>, tensor<3x2xf32>, tensor<3xf32>) -> tensor<1x3xf32>
  return %l : tensor<1x3xf32>
}
