// Adjoint rules of the layer ops (dialects/tinytrain_layers.py), one case per op family.
// RUN: tinytrain-opt --split-input-file -p 'autodiff' %s | filecheck %s

// CHECK-LABEL: func.func @train_step(
// CHECK: %[[C:.*]] = "tinytrain.conv2d"
// CHECK-NEXT: "tinytrain.pad"(%[[C]]) {high = array<i64: 0, 2, 1, 0>, low = array<i64: 0, 1, 0, 0>}
// CHECK: %[[DY:.*]] = "tinytrain.global_avg_pool_grad"
// CHECK-NEXT: %[[DX:.*]] = "tinytrain.slice"(%[[DY]]) {offsets = array<i64: 0, 1, 0, 0>} : (tensor<1x7x5x2xf32>) -> tensor<1x4x4x2xf32>
// CHECK-NEXT: "tinytrain.conv2d_grad_weight"(%arg3, %[[DX]])
func.func @forward(%w: tensor<1x1x3x2xf32> {tinytrain.param = "c.weight"}, %b: tensor<2xf32> {tinytrain.param = "c.bias"},
                   %fw: tensor<3x2xf32> {tinytrain.param = "fc.weight"}, %x: tensor<1x4x4x3xf32> {tinytrain.input}) -> tensor<1x3xf32> {
  %c = "tinytrain.conv2d"(%x, %w, %b) {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, groups = 1 : i64} : (tensor<1x4x4x3xf32>, tensor<1x1x3x2xf32>, tensor<2xf32>) -> tensor<1x4x4x2xf32>
  %p = "tinytrain.pad"(%c) {low = array<i64: 0, 1, 0, 0>, high = array<i64: 0, 2, 1, 0>} : (tensor<1x4x4x2xf32>) -> tensor<1x7x5x2xf32>
  %g = "tinytrain.global_avg_pool"(%p) : (tensor<1x7x5x2xf32>) -> tensor<1x2xf32>
  %z = arith.constant dense<0.0> : tensor<3xf32>
  %l = "tinytrain.linear"(%g, %fw, %z) : (tensor<1x2xf32>, tensor<3x2xf32>, tensor<3xf32>) -> tensor<1x3xf32>
  return %l : tensor<1x3xf32>
}

// -----

// concat: each input's gradient is its slice of the result gradient.
// CHECK-LABEL: func.func @train_step(
// CHECK: %[[DC:.*]] = "tinytrain.global_avg_pool_grad"
// CHECK-DAG: "tinytrain.slice"(%[[DC]]) {offsets = array<i64: 0, 0, 0, 0>} : (tensor<1x2x2x5xf32>) -> tensor<1x2x2x2xf32>
// CHECK-DAG: "tinytrain.slice"(%[[DC]]) {offsets = array<i64: 0, 0, 0, 2>} : (tensor<1x2x2x5xf32>) -> tensor<1x2x2x3xf32>
func.func @forward(%w: tensor<1x1x1x2xf32> {tinytrain.param = "a.weight"}, %b: tensor<2xf32> {tinytrain.param = "a.bias"},
                   %w2: tensor<1x1x1x3xf32> {tinytrain.param = "b.weight"}, %b2: tensor<3xf32> {tinytrain.param = "b.bias"},
                   %fw: tensor<2x5xf32> {tinytrain.param = "fc.weight"}, %fb: tensor<2xf32> {tinytrain.param = "fc.bias"},
                   %x: tensor<1x2x2x1xf32> {tinytrain.input}) -> tensor<1x2xf32> {
  %a = "tinytrain.conv2d"(%x, %w, %b) {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, groups = 1 : i64} : (tensor<1x2x2x1xf32>, tensor<1x1x1x2xf32>, tensor<2xf32>) -> tensor<1x2x2x2xf32>
  %c = "tinytrain.conv2d"(%x, %w2, %b2) {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, groups = 1 : i64} : (tensor<1x2x2x1xf32>, tensor<1x1x1x3xf32>, tensor<3xf32>) -> tensor<1x2x2x3xf32>
  %cat = "tinytrain.concat"(%a, %c) {axis = 3 : i64} : (tensor<1x2x2x2xf32>, tensor<1x2x2x3xf32>) -> tensor<1x2x2x5xf32>
  %g = "tinytrain.global_avg_pool"(%cat) : (tensor<1x2x2x5xf32>) -> tensor<1x5xf32>
  %l = "tinytrain.linear"(%g, %fw, %fb) : (tensor<1x5xf32>, tensor<2x5xf32>, tensor<2xf32>) -> tensor<1x2xf32>
  return %l : tensor<1x2xf32>
}

// -----

// Pooling and activations: max pool's adjoint reads the forward input, sigmoid's the output,
// hardswish/hardsigmoid/leaky ReLU the input.
// CHECK-LABEL: func.func @train_step(
// CHECK: %[[C:.*]] = "tinytrain.conv2d"
// CHECK-NEXT: %[[M:.*]] = "tinytrain.max_pool2d"(%[[C]])
// CHECK-NEXT: %[[H:.*]] = "tinytrain.hardswish"(%[[M]])
// CHECK-NEXT: %[[S:.*]] = "tinytrain.sigmoid"(%[[H]])
// CHECK-NEXT: %[[HS:.*]] = "tinytrain.hardsigmoid"(%[[S]])
// CHECK-NEXT: %[[LR:.*]] = "tinytrain.leaky_relu"(%[[HS]]) {alpha = 1.000000e-01 : f32}
// CHECK-NEXT: "tinytrain.avg_pool2d"(%[[LR]]) {divisor = "valid"
// CHECK: %[[G0:.*]] = "tinytrain.avg_pool2d_grad"(%{{.*}}) {divisor = "valid"
// CHECK-NEXT: %[[G1:.*]] = "tinytrain.leaky_relu_grad"(%[[HS]], %[[G0]]) {alpha = 1.000000e-01 : f32}
// CHECK-NEXT: %[[G2:.*]] = "tinytrain.hardsigmoid_grad"(%[[S]], %[[G1]])
// CHECK-NEXT: %[[G3:.*]] = "tinytrain.sigmoid_grad"(%[[S]], %[[G2]])
// CHECK-NEXT: %[[G4:.*]] = "tinytrain.hardswish_grad"(%[[M]], %[[G3]])
// CHECK-NEXT: %[[G5:.*]] = "tinytrain.max_pool2d_grad"(%[[C]], %[[G4]]) {kernel = array<i64: 3, 3>, padding = array<i64: 1, 1, 1, 1>, strides = array<i64: 2, 2>}
func.func @forward(%w: tensor<1x1x1x2xf32> {tinytrain.param = "c.weight"}, %b: tensor<2xf32> {tinytrain.param = "c.bias"},
                   %x: tensor<1x8x8x1xf32> {tinytrain.input}) -> tensor<1x2xf32> {
  %c = "tinytrain.conv2d"(%x, %w, %b) {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, groups = 1 : i64} : (tensor<1x8x8x1xf32>, tensor<1x1x1x2xf32>, tensor<2xf32>) -> tensor<1x8x8x2xf32>
  %m = "tinytrain.max_pool2d"(%c) {kernel = array<i64: 3, 3>, strides = array<i64: 2, 2>, padding = array<i64: 1, 1, 1, 1>} : (tensor<1x8x8x2xf32>) -> tensor<1x4x4x2xf32>
  %h = "tinytrain.hardswish"(%m) : (tensor<1x4x4x2xf32>) -> tensor<1x4x4x2xf32>
  %s = "tinytrain.sigmoid"(%h) : (tensor<1x4x4x2xf32>) -> tensor<1x4x4x2xf32>
  %hs = "tinytrain.hardsigmoid"(%s) : (tensor<1x4x4x2xf32>) -> tensor<1x4x4x2xf32>
  %lr = "tinytrain.leaky_relu"(%hs) {alpha = 0.1 : f32} : (tensor<1x4x4x2xf32>) -> tensor<1x4x4x2xf32>
  %a = "tinytrain.avg_pool2d"(%lr) {kernel = array<i64: 4, 4>, strides = array<i64: 4, 4>, padding = array<i64: 0, 0, 0, 0>, divisor = "valid"} : (tensor<1x4x4x2xf32>) -> tensor<1x1x1x2xf32>
  %r = "tinytrain.reshape"(%a) : (tensor<1x1x1x2xf32>) -> tensor<1x2xf32>
  return %r : tensor<1x2xf32>
}

// -----

// Squeeze-excite multiply and an unfolded BatchNorm (channel_affine, trained).
// CHECK-LABEL: func.func @train_step(
// CHECK: %[[X:.*]] = "tinytrain.channel_affine"(%arg3, %arg0, %arg1)
// CHECK-NEXT: %[[P:.*]] = "tinytrain.global_avg_pool"(%[[X]])
// CHECK-NEXT: %[[PR:.*]] = "tinytrain.reshape"(%[[P]])
// CHECK-NEXT: %[[SG:.*]] = "tinytrain.sigmoid"(%[[PR]])
// CHECK-NEXT: %[[Y:.*]] = "tinytrain.mul"(%[[X]], %[[SG]]) : (tensor<1x2x2x3xf32>, tensor<1x1x1x3xf32>) -> tensor<1x2x2x3xf32>
// CHECK: %[[DY:.*]] = "tinytrain.global_avg_pool_grad"
// CHECK-NEXT: %[[DX1:.*]] = "tinytrain.mul"(%[[DY]], %[[SG]])
// CHECK-NEXT: %[[PROD:.*]] = "tinytrain.mul"(%[[DY]], %[[X]])
// CHECK-NEXT: %[[DS:.*]] = "tinytrain.sum_to"(%[[PROD]]) : (tensor<1x2x2x3xf32>) -> tensor<1x1x1x3xf32>
// CHECK-NEXT: "tinytrain.sigmoid_grad"(%[[SG]], %[[DS]])
// CHECK: %[[DX:.*]] = "tinytrain.add"(%[[DX1]], %{{.*}})
// CHECK-NEXT: %[[PX:.*]] = "tinytrain.mul"(%[[DX]], %arg3) : (tensor<1x2x2x3xf32>, tensor<1x2x2x3xf32>) -> tensor<1x2x2x3xf32>
// CHECK-NEXT: %[[DSC:.*]] = "tinytrain.bias_grad"(%[[PX]]) : (tensor<1x2x2x3xf32>) -> tensor<3xf32>
// CHECK-NEXT: %[[DSH:.*]] = "tinytrain.bias_grad"(%[[DX]]) : (tensor<1x2x2x3xf32>) -> tensor<3xf32>
// CHECK-NEXT: "tinytrain.sgd_update"(%arg0, %[[DSC]], %[[LOSS:[0-9]+]])
// CHECK-NEXT: "tinytrain.sgd_update"(%arg1, %[[DSH]], %[[LOSS]])
func.func @forward(%sc: tensor<3xf32> {tinytrain.param = "bn.weight"}, %sh: tensor<3xf32> {tinytrain.param = "bn.bias"},
                   %fw: tensor<2x3xf32> {tinytrain.param = "fc.weight"}, %x0: tensor<1x2x2x3xf32> {tinytrain.input}) -> tensor<1x2xf32> {
  %x = "tinytrain.channel_affine"(%x0, %sc, %sh) : (tensor<1x2x2x3xf32>, tensor<3xf32>, tensor<3xf32>) -> tensor<1x2x2x3xf32>
  %p = "tinytrain.global_avg_pool"(%x) : (tensor<1x2x2x3xf32>) -> tensor<1x3xf32>
  %pr = "tinytrain.reshape"(%p) : (tensor<1x3xf32>) -> tensor<1x1x1x3xf32>
  %s = "tinytrain.sigmoid"(%pr) : (tensor<1x1x1x3xf32>) -> tensor<1x1x1x3xf32>
  %y = "tinytrain.mul"(%x, %s) : (tensor<1x2x2x3xf32>, tensor<1x1x1x3xf32>) -> tensor<1x2x2x3xf32>
  %g = "tinytrain.global_avg_pool"(%y) : (tensor<1x2x2x3xf32>) -> tensor<1x3xf32>
  %z = arith.constant dense<0.0> : tensor<2xf32>
  %l = "tinytrain.linear"(%g, %fw, %z) : (tensor<1x3xf32>, tensor<2x3xf32>, tensor<2xf32>) -> tensor<1x2xf32>
  return %l : tensor<1x2xf32>
}
