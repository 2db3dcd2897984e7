// sparse-update on an int8 graph:
// RUN: tinytrain-opt -p 'sparse-update{weights=c.weight:1/2},autodiff{trainable=c.weight,fc.bias lr=0.5},sparse-narrow,qas' %s | filecheck %s --check-prefix=INT8
// RUN: tinytrain-opt -p 'sparse-update{weights=c.weight:1/2},autodiff{trainable=c.bias,fc.bias lr=0.5},sparse-narrow,qas' %s | filecheck %s --check-prefix=BIAS
// an int8 qconv2d (per-channel weight_scales
// [0.25, 0.125, 0.5, 1], input scale 0.5) and an fp32 head.
//
// Case INT8, c.weight at 1/2. The weight gradient is built for the 2 trained channels: their own
// weight_scales [0.25, 0.125] (dL/dw_int = s_W dL/dW), then QAS by s_W^-2 = [16, 64] (qas reads the
// channels of the slice through the concat).
// INT8-LABEL: func.func @train_step(
// INT8-SAME: %[[W:[a-z0-9]+]]: tensor<1x1x2x2xi8> {iree.abi.output = 0 : index, tinytrain.param = "c.weight", tinytrain.sparse_channels = 2 : i64, tinytrain.sparse_of = 4 : i64, tinytrain.trainable}
// INT8-SAME: %[[R:[a-z0-9]+]]: tensor<1x1x2x2xi8> {tinytrain.frozen, tinytrain.param = "c.weight.frozen"}
// INT8-NEXT: %[[J:.*]] = "tinytrain.concat"(%[[W]], %[[R]]) {axis = 3 : i64} : (tensor<1x1x2x2xi8>, tensor<1x1x2x2xi8>) -> tensor<1x1x2x4xi8>
// INT8-NEXT: "tinytrain.qconv2d"(%{{.*}}, %[[J]], %{{.*}}) {{.*}} weight_scales = array<f64: 2.500000e-01, 1.250000e-01, 5.000000e-01, 1.000000e+00>
// INT8: %[[GA:.*]] = "tinytrain.qclamp_grad"
// INT8-NEXT: %[[X:.*]] = "tinytrain.dequantize"
// INT8-NEXT: %[[GS:.*]] = "tinytrain.slice"(%[[GA]]) {offsets = array<i64: 0, 0, 0, 0>} : (tensor<1x2x2x4xf32>) -> tensor<1x2x2x2xf32>
// INT8-NEXT: %[[GW:.*]] = "tinytrain.conv2d_grad_weight"(%[[X]], %[[GS]]) {{.*}} -> tensor<1x1x2x2xf32>
// INT8-NEXT: %[[GI:.*]] = "tinytrain.channel_scale"(%[[GW]]) {scales = array<f64: 2.500000e-01, 1.250000e-01>}
// INT8-NEXT: %[[GQ:.*]] = "tinytrain.channel_scale"(%[[GI]]) {scales = array<f64: 1.600000e+01, 6.400000e+01>}
// INT8-NEXT: "tinytrain.qsgd_update"(%[[W]], %[[GQ]], %{{.*}}) {lr = 5.000000e-01 : f32, tinytrain.qas}
//
// Case BIAS, the bias alone trained (the weight slice exists but is not trainable): no weight
// gradient, and the layer's input is not read by the backward pass (no dequantize of it).
// BIAS-LABEL: func.func @train_step(
// BIAS: "tinytrain.qclamp_grad"
// BIAS-NEXT: "tinytrain.bias_grad"
// BIAS-NOT: conv2d_grad_weight
// BIAS-NOT: "tinytrain.dequantize"(%arg
// BIAS: return
func.func @forward(%w: tensor<1x1x2x4xi8> {tinytrain.param = "c.weight"}, %b: tensor<4xi32> {tinytrain.param = "c.bias"},
                   %fw: tensor<3x4xf32> {tinytrain.param = "fc.weight"}, %fb: tensor<3xf32> {tinytrain.param = "fc.bias"},
                   %x: tensor<1x2x2x2xi8> {tinytrain.input}) -> tensor<1x3xf32> {
  %y = "tinytrain.qconv2d"(%x, %w, %b) {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, groups = 1 : i64, input_scale = 5.000000e-01 : f64, input_zero_point = 0 : i64, weight_scales = array<f64: 2.500000e-01, 1.250000e-01, 5.000000e-01, 1.000000e+00>, output_scale = 1.000000e+00 : f64, output_zero_point = 0 : i64, multiplier = array<i32: 1073741824, 1073741824, 1073741824, 1073741824>, shift = array<i32: -2, -3, -1, 0>, clamp = array<i64: -128, 127>} : (tensor<1x2x2x2xi8>, tensor<1x1x2x4xi8>, tensor<4xi32>) -> tensor<1x2x2x4xi8>
  %p = "tinytrain.qavg_pool"(%y) : (tensor<1x2x2x4xi8>) -> tensor<1x4xi8>
  %d = "tinytrain.dequantize"(%p) {scale = 1.000000e+00 : f64, zero_point = 0 : i64} : (tensor<1x4xi8>) -> tensor<1x4xf32>
  %l = "tinytrain.linear"(%d, %fw, %fb) : (tensor<1x4xf32>, tensor<3x4xf32>, tensor<3xf32>) -> tensor<1x3xf32>
  return %l : tensor<1x3xf32>
}
