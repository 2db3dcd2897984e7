// reorder-updates: autodiff puts every update after the whole backward pass; the pass moves each
// one (with the ops computing its gradient) to just after what it needs, and after the other
// readers of its parameter (fc.weight's update waits for linear_grad_input, which reads the old
// weight).
// RUN: tinytrain-opt -p 'autodiff{lr=0.5},reorder-updates' %s | filecheck %s
// RUN: tinytrain-opt -p 'autodiff{lr=0.5}' %s | filecheck %s --check-prefix=BEFORE
// CHECK-LABEL: func.func @train_step(
// CHECK: %[[LOSS:.*]] = "tinytrain.softmax_cross_entropy"
// CHECK-NEXT: %[[G:.*]] = "tinytrain.softmax_cross_entropy_grad"
// CHECK-NEXT: %[[GB:.*]] = "tinytrain.bias_grad"(%[[G]])
// CHECK-NEXT: "tinytrain.sgd_update"(%arg3, %[[GB]], %[[LOSS]])
// CHECK-NEXT: "tinytrain.linear_grad_input"(%[[G]], %arg2)
// CHECK-NEXT: %[[GW:.*]] = "tinytrain.linear_grad_weight"
// CHECK-NEXT: "tinytrain.sgd_update"(%arg2, %[[GW]], %[[LOSS]])
// CHECK-NEXT: "tinytrain.global_avg_pool_grad"
// CHECK-NEXT: "tinytrain.relu_grad"
// CHECK-NEXT: %[[GCB:.*]] = "tinytrain.bias_grad"
// CHECK-NEXT: "tinytrain.sgd_update"(%arg1, %[[GCB]], %[[LOSS]])
// CHECK-NEXT: %[[GCW:.*]] = "tinytrain.conv2d_grad_weight"
// CHECK-NEXT: "tinytrain.sgd_update"(%arg0, %[[GCW]], %[[LOSS]])
// CHECK-NEXT: return
//
// BEFORE-LABEL: func.func @train_step(
// BEFORE: "tinytrain.conv2d_grad_weight"
// BEFORE-NEXT: "tinytrain.bias_grad"
// BEFORE-NEXT: "tinytrain.sgd_update"
// BEFORE-NEXT: "tinytrain.sgd_update"
// BEFORE-NEXT: "tinytrain.sgd_update"
// BEFORE-NEXT: "tinytrain.sgd_update"
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
