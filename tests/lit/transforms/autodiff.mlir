// RUN: tinytrain-opt -p 'autodiff{lr=0.5}' %s | filecheck %s
// RUN: tinytrain-opt -p 'autodiff{trainable=fc.weight,fc.bias lr=0.25}' %s | filecheck %s --check-prefix=HEAD
// RUN: tinytrain-opt -p 'autodiff{gradients=true}' %s | filecheck %s --check-prefix=GRADS
// RUN: not tinytrain-opt -p 'autodiff{trainable=nope}' %s 2>&1 | filecheck %s --check-prefix=BAD

func.func @forward(%w: tensor<3x3x1x4xf32> {tinytrain.param = "conv.weight"},
                   %b: tensor<4xf32> {tinytrain.param = "conv.bias"},
                   %fw: tensor<3x4xf32> {tinytrain.param = "fc.weight"},
                   %fb: tensor<3xf32> {tinytrain.param = "fc.bias"},
                   %x: tensor<1x8x8x1xf32> {tinytrain.input}) -> tensor<1x3xf32> {
  %0 = "tinytrain.conv2d"(%x, %w, %b) {strides = array<i64: 2, 2>, padding = array<i64: 1, 1>, groups = 1 : i64} : (tensor<1x8x8x1xf32>, tensor<3x3x1x4xf32>, tensor<4xf32>) -> tensor<1x4x4x4xf32>
  %1 = "tinytrain.relu"(%0) : (tensor<1x4x4x4xf32>) -> tensor<1x4x4x4xf32>
  %2 = "tinytrain.global_avg_pool"(%1) : (tensor<1x4x4x4xf32>) -> tensor<1x4xf32>
  %3 = "tinytrain.linear"(%2, %fw, %fb) : (tensor<1x4xf32>, tensor<3x4xf32>, tensor<3xf32>) -> tensor<1x3xf32>
  return %3 : tensor<1x3xf32>
}

// All parameters trained: every parameter is tied to its updated result.
// CHECK-LABEL: func.func @train_step(
// CHECK-SAME: {iree.abi.output = 0 : index, tinytrain.param = "conv.weight", tinytrain.trainable}
// CHECK-SAME: {iree.abi.output = 3 : index, tinytrain.param = "fc.bias", tinytrain.trainable}
// CHECK-SAME: %arg4: tensor<1x8x8x1xf32> {tinytrain.input}, %[[LAB:arg5]]: tensor<1xi32> {tinytrain.labels})
// CHECK: %[[LOGITS:.*]] = "tinytrain.linear"
// CHECK: %[[LOSS:.*]] = "tinytrain.softmax_cross_entropy"(%[[LOGITS]], %[[LAB]])
// CHECK: %[[DZ:.*]] = "tinytrain.softmax_cross_entropy_grad"(%[[LOGITS]], %[[LAB]])
// CHECK: "tinytrain.linear_grad_input"(%[[DZ]], %arg2)
// CHECK: "tinytrain.linear_grad_weight"
// CHECK: "tinytrain.bias_grad"(%[[DZ]])
// CHECK: "tinytrain.global_avg_pool_grad"
// CHECK: "tinytrain.relu_grad"
// The first layer's input needs no gradient: no conv2d_grad_input anywhere.
// CHECK-NOT: conv2d_grad_input
// CHECK: "tinytrain.conv2d_grad_weight"(%arg4, %{{.*}}) {groups = 1 : i64, padding = array<i64: 1, 1>, strides = array<i64: 2, 2>}
// CHECK: "tinytrain.sgd_update"(%arg0, %{{.*}}) {lr = 5.000000e-01 : f32}
// CHECK: return %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %[[LOSS]] : tensor<3x3x1x4xf32>, tensor<4xf32>, tensor<3x4xf32>, tensor<3xf32>, tensor<f32>
// CHECK-LABEL: func.func @predict(

// Only the classifier trained: frozen parameters come after the trained ones, untied, and the
// backward pass stops at the classifier.
// HEAD-LABEL: func.func @train_step(
// HEAD-SAME: %arg0: tensor<3x4xf32> {iree.abi.output = 0 : index, tinytrain.param = "fc.weight", tinytrain.trainable}
// HEAD-SAME: %arg2: tensor<3x3x1x4xf32> {tinytrain.param = "conv.weight"}
// HEAD-NOT: linear_grad_input
// HEAD-NOT: relu_grad
// HEAD-NOT: conv2d_grad
// HEAD: "tinytrain.linear_grad_weight"
// HEAD: "tinytrain.sgd_update"(%arg0, %{{.*}}) {lr = 2.500000e-01 : f32}
// HEAD-LABEL: func.func @predict(

// GRADS-LABEL: func.func @gradients(
// GRADS-NOT: iree.abi.output
// GRADS-NOT: sgd_update
// GRADS: return

// BAD: unknown trainable parameter(s) ['nope']; the model's parameters are: conv.weight, conv.bias, fc.weight, fc.bias
