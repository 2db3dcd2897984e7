// sparse-update on an fp32 MASTER copy of an int8 weight (build_forward(master_weights=...)):
// the master is split (f32 slice + frozen rest), the concat feeds the `quantize`; the slice's
// gradient is narrowed to its channel and qas scales it by that channel's s_W^-2 = 0.25^-2 = 16.
// RUN: tinytrain-opt -p 'sparse-update{weights=c.weight:1/4},autodiff{trainable=c.weight lr=0.5},sparse-narrow,qas' %s | filecheck %s
// CHECK-LABEL: func.func @train_step(
// CHECK-SAME: %[[M:[a-z0-9]+]]: tensor<1x1x2x1xf32> {iree.abi.output = 0 : index, tinytrain.param = "c.weight", tinytrain.sparse_channels = 1 : i64, tinytrain.sparse_of = 4 : i64, tinytrain.trainable}
// CHECK-SAME: %[[R:[a-z0-9]+]]: tensor<1x1x2x3xf32> {tinytrain.frozen, tinytrain.param = "c.weight.frozen"}
// CHECK-NEXT: %[[J:.*]] = "tinytrain.concat"(%[[M]], %[[R]]) {axis = 3 : i64}
// CHECK-NEXT: %[[Q:.*]] = "tinytrain.quantize"(%[[J]])
// CHECK-NEXT: "tinytrain.qconv2d"(%{{.*}}, %[[Q]],
// CHECK: %[[GS:.*]] = "tinytrain.slice"(%{{.*}}) {offsets = array<i64: 0, 0, 0, 0>} : (tensor<1x2x2x4xf32>) -> tensor<1x2x2x1xf32>
// CHECK-NEXT: %[[GW:.*]] = "tinytrain.conv2d_grad_weight"(%{{.*}}, %[[GS]]) {{.*}} -> tensor<1x1x2x1xf32>
// CHECK-NEXT: %[[GI:.*]] = "tinytrain.channel_scale"(%[[GW]]) {scales = array<f64: 2.500000e-01>}
// CHECK-NEXT: %[[GQ:.*]] = "tinytrain.channel_scale"(%[[GI]]) {scales = array<f64: 1.600000e+01>}
// CHECK-NEXT: "tinytrain.sgd_update"(%[[M]], %[[GQ]], %{{.*}}) {lr = 5.000000e-01 : f32, tinytrain.qas}
func.func @forward(%m: tensor<1x1x2x4xf32> {tinytrain.param = "c.weight"}, %b: tensor<4xi32> {tinytrain.param = "c.bias"},
                   %fw: tensor<3x4xf32> {tinytrain.param = "fc.weight"}, %fb: tensor<3xf32> {tinytrain.param = "fc.bias"},
                   %x: tensor<1x2x2x2xi8> {tinytrain.input}) -> tensor<1x3xf32> {
  %w = "tinytrain.quantize"(%m) {scale = 1.000000e+00 : f64, zero_point = 0 : i64} : (tensor<1x1x2x4xf32>) -> tensor<1x1x2x4xi8>
  %y = "tinytrain.qconv2d"(%x, %w, %b) {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, groups = 1 : i64, input_scale = 5.000000e-01 : f64, input_zero_point = 0 : i64, weight_scales = array<f64: 2.500000e-01, 1.250000e-01, 5.000000e-01, 1.000000e+00>, output_scale = 1.000000e+00 : f64, output_zero_point = 0 : i64, multiplier = array<i32: 1073741824, 1073741824, 1073741824, 1073741824>, shift = array<i32: -2, -3, -1, 0>, clamp = array<i64: -128, 127>} : (tensor<1x2x2x2xi8>, tensor<1x1x2x4xi8>, tensor<4xi32>) -> tensor<1x2x2x4xi8>
  %p = "tinytrain.qavg_pool"(%y) : (tensor<1x2x2x4xi8>) -> tensor<1x4xi8>
  %d = "tinytrain.dequantize"(%p) {scale = 1.000000e+00 : f64, zero_point = 0 : i64} : (tensor<1x4xi8>) -> tensor<1x4xf32>
  %l = "tinytrain.linear"(%d, %fw, %fb) : (tensor<1x4xf32>, tensor<3x4xf32>, tensor<3xf32>) -> tensor<1x3xf32>
  return %l : tensor<1x3xf32>
}
