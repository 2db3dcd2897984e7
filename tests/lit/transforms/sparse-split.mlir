// sparse-split: a pointwise int8 conv whose weight is trained on 2 of its 4 output channels
// (c2.weight at 1/2) is computed as two convs, one per part, in the forward pass and in its
// input gradient (c1.bias is trained, so the gradient flows through c2 to c1); the joined
// whole weight is gone. Each part keeps its channels' weight_scales / multiplier / shift, the
// bias is sliced, the outputs are concatenated on the channel axis; the input gradient is the
// sum of the parts' input gradients, each reading its part's output-gradient channels and its
// part dequantized by that part's scales.
// RUN: tinytrain-opt -p 'sparse-update{weights=c2.weight:1/2},autodiff{trainable=c1.bias,c2.weight lr=0.5},sparse-narrow,qas,sparse-split' %s | filecheck %s
// Without sparse-split the join stays (and is read by the forward conv and the input gradient):
// RUN: tinytrain-opt -p 'sparse-update{weights=c2.weight:1/2},autodiff{trainable=c1.bias,c2.weight lr=0.5},sparse-narrow,qas' %s | filecheck %s --check-prefix=JOIN
// CHECK-LABEL: func.func @train_step(
// CHECK-SAME: %[[A:[a-z0-9]+]]: tensor<1x1x4x2xi8> {iree.abi.output = 1 : index, tinytrain.param = "c2.weight", tinytrain.sparse_channels = 2 : i64, tinytrain.sparse_of = 4 : i64, tinytrain.trainable}
// CHECK-SAME: %[[B:[a-z0-9]+]]: tensor<1x1x4x2xi8> {tinytrain.frozen, tinytrain.param = "c2.weight.frozen"}
// CHECK-NOT: "tinytrain.concat"(%[[A]]
// CHECK: %[[Y1:.*]] = "tinytrain.qconv2d"
// CHECK: %[[BA:.*]] = "tinytrain.slice"(%{{.*}}) {offsets = array<i64: 0>} : (tensor<4xi32>) -> tensor<2xi32>
// CHECK-NEXT: %[[YA:.*]] = "tinytrain.qconv2d"(%[[Y1]], %[[A]], %[[BA]]) {{.*}} multiplier = array<i32: 1073741824, 1073741824>, {{.*}} shift = array<i32: -1, -2>, {{.*}} weight_scales = array<f64: 2.500000e-01, 1.250000e-01>} : {{.*}} -> tensor<1x2x2x2xi8>
// CHECK-NEXT: %[[BB:.*]] = "tinytrain.slice"(%{{.*}}) {offsets = array<i64: 2>} : (tensor<4xi32>) -> tensor<2xi32>
// CHECK-NEXT: %[[YB:.*]] = "tinytrain.qconv2d"(%[[Y1]], %[[B]], %[[BB]]) {{.*}} multiplier = array<i32: 1073741824, 1073741824>, {{.*}} shift = array<i32: 0, 1>, {{.*}} weight_scales = array<f64: 5.000000e-01, 1.000000e+00>} : {{.*}} -> tensor<1x2x2x2xi8>
// CHECK-NEXT: "tinytrain.concat"(%[[YA]], %[[YB]]) {axis = 3 : i64} : (tensor<1x2x2x2xi8>, tensor<1x2x2x2xi8>) -> tensor<1x2x2x4xi8>
// CHECK: %[[G:.*]] = "tinytrain.qclamp_grad"
// CHECK: %[[WA:.*]] = "tinytrain.channel_scale"(%[[A]]) {scales = array<f64: 2.500000e-01, 1.250000e-01>}
// CHECK-NEXT: %[[GA:.*]] = "tinytrain.slice"(%[[G]]) {offsets = array<i64: 0, 0, 0, 0>} : (tensor<1x2x2x4xf32>) -> tensor<1x2x2x2xf32>
// CHECK-NEXT: %[[DA:.*]] = "tinytrain.conv2d_grad_input"(%[[GA]], %[[WA]])
// CHECK-NEXT: %[[WB:.*]] = "tinytrain.channel_scale"(%[[B]]) {scales = array<f64: 5.000000e-01, 1.000000e+00>}
// CHECK-NEXT: %[[GB:.*]] = "tinytrain.slice"(%[[G]]) {offsets = array<i64: 0, 0, 0, 2>} : (tensor<1x2x2x4xf32>) -> tensor<1x2x2x2xf32>
// CHECK-NEXT: %[[DB:.*]] = "tinytrain.conv2d_grad_input"(%[[GB]], %[[WB]])
// CHECK-NEXT: "tinytrain.add"(%[[DA]], %[[DB]]) : (tensor<1x2x2x4xf32>, tensor<1x2x2x4xf32>) -> tensor<1x2x2x4xf32>
// CHECK-NOT: "tinytrain.concat"(%[[A]]
// CHECK: return
// The inference function has no join either.
// CHECK-LABEL: func.func @predict(
// CHECK-NOT: "tinytrain.concat"(%arg
// CHECK: return
// JOIN: %[[J:.*]] = "tinytrain.concat"(%{{.*}}, %{{.*}}) {axis = 3 : i64} : (tensor<1x1x4x2xi8>, tensor<1x1x4x2xi8>) -> tensor<1x1x4x4xi8>
// JOIN: "tinytrain.qconv2d"(%{{.*}}, %[[J]],
// JOIN: "tinytrain.channel_scale"(%[[J]])
func.func @forward(%w1: tensor<1x1x2x4xi8> {tinytrain.param = "c1.weight"}, %b1: tensor<4xi32> {tinytrain.param = "c1.bias"},
                   %w2: tensor<1x1x4x4xi8> {tinytrain.param = "c2.weight"}, %b2: tensor<4xi32> {tinytrain.param = "c2.bias"},
                   %fw: tensor<3x4xf32> {tinytrain.param = "fc.weight"}, %fb: tensor<3xf32> {tinytrain.param = "fc.bias"},
                   %x: tensor<1x2x2x2xi8> {tinytrain.input}) -> tensor<1x3xf32> {
  %y1 = "tinytrain.qconv2d"(%x, %w1, %b1) {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, groups = 1 : i64, input_scale = 5.000000e-01 : f64, input_zero_point = 0 : i64, weight_scales = array<f64: 2.500000e-01, 1.250000e-01, 5.000000e-01, 1.000000e+00>, output_scale = 1.000000e+00 : f64, output_zero_point = 0 : i64, multiplier = array<i32: 1073741824, 1073741824, 1073741824, 1073741824>, shift = array<i32: -2, -3, -1, 0>, clamp = array<i64: -128, 127>} : (tensor<1x2x2x2xi8>, tensor<1x1x2x4xi8>, tensor<4xi32>) -> tensor<1x2x2x4xi8>
  %y2 = "tinytrain.qconv2d"(%y1, %w2, %b2) {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, groups = 1 : i64, input_scale = 1.000000e+00 : f64, input_zero_point = 0 : i64, weight_scales = array<f64: 2.500000e-01, 1.250000e-01, 5.000000e-01, 1.000000e+00>, output_scale = 1.000000e+00 : f64, output_zero_point = 0 : i64, multiplier = array<i32: 1073741824, 1073741824, 1073741824, 1073741824>, shift = array<i32: -1, -2, 0, 1>, clamp = array<i64: -128, 127>} : (tensor<1x2x2x4xi8>, tensor<1x1x4x4xi8>, tensor<4xi32>) -> tensor<1x2x2x4xi8>
  %p = "tinytrain.qavg_pool"(%y2) : (tensor<1x2x2x4xi8>) -> tensor<1x4xi8>
  %d = "tinytrain.dequantize"(%p) {scale = 1.000000e+00 : f64, zero_point = 0 : i64} : (tensor<1x4xi8>) -> tensor<1x4xf32>
  %l = "tinytrain.linear"(%d, %fw, %fb) : (tensor<1x4xf32>, tensor<3x4xf32>, tensor<3xf32>) -> tensor<1x3xf32>
  return %l : tensor<1x3xf32>
}
