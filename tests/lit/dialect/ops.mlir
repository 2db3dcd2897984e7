// RUN: tinytrain-opt %s | filecheck %s
// Every tinytrain op parses, verifies and prints back.

// CHECK-LABEL: func.func @forward_ops
func.func @forward_ops(%x: tensor<1x8x8x3xf32>, %w: tensor<3x3x3x4xf32>, %b: tensor<4xf32>,
                       %dw: tensor<3x3x1x4xf32>, %fw: tensor<5x4xf32>, %fb: tensor<5xf32>,
                       %lab: tensor<1xi32>) -> tensor<f32> {
  // CHECK: "tinytrain.conv2d"(%{{.*}}) {groups = 1 : i64, padding = array<i64: 1, 1>, strides = array<i64: 2, 2>}
  %0 = "tinytrain.conv2d"(%x, %w, %b) {strides = array<i64: 2, 2>, padding = array<i64: 1, 1>, groups = 1 : i64} : (tensor<1x8x8x3xf32>, tensor<3x3x3x4xf32>, tensor<4xf32>) -> tensor<1x4x4x4xf32>
  // CHECK: "tinytrain.relu6"
  %1 = "tinytrain.relu6"(%0) : (tensor<1x4x4x4xf32>) -> tensor<1x4x4x4xf32>
  // CHECK: "tinytrain.conv2d"(%{{.*}}) {groups = 4 : i64
  %2 = "tinytrain.conv2d"(%1, %dw, %b) {strides = array<i64: 1, 1>, padding = array<i64: 1, 1>, groups = 4 : i64} : (tensor<1x4x4x4xf32>, tensor<3x3x1x4xf32>, tensor<4xf32>) -> tensor<1x4x4x4xf32>
  // CHECK: "tinytrain.add"
  %3 = "tinytrain.add"(%1, %2) : (tensor<1x4x4x4xf32>, tensor<1x4x4x4xf32>) -> tensor<1x4x4x4xf32>
  // CHECK: "tinytrain.relu"
  %4 = "tinytrain.relu"(%3) : (tensor<1x4x4x4xf32>) -> tensor<1x4x4x4xf32>
  // CHECK: "tinytrain.transpose"(%{{.*}}) {permutation = array<i64: 0, 3, 1, 2>}
  %5 = "tinytrain.transpose"(%4) {permutation = array<i64: 0, 3, 1, 2>} : (tensor<1x4x4x4xf32>) -> tensor<1x4x4x4xf32>
  // CHECK: "tinytrain.global_avg_pool"
  %6 = "tinytrain.global_avg_pool"(%5) : (tensor<1x4x4x4xf32>) -> tensor<1x4xf32>
  // CHECK: "tinytrain.reshape"
  %7 = "tinytrain.reshape"(%6) : (tensor<1x4xf32>) -> tensor<1x1x1x4xf32>
  %8 = "tinytrain.reshape"(%7) : (tensor<1x1x1x4xf32>) -> tensor<1x4xf32>
  // CHECK: "tinytrain.linear"
  %9 = "tinytrain.linear"(%8, %fw, %fb) : (tensor<1x4xf32>, tensor<5x4xf32>, tensor<5xf32>) -> tensor<1x5xf32>
  // CHECK: "tinytrain.softmax_cross_entropy"
  %10 = "tinytrain.softmax_cross_entropy"(%9, %lab) : (tensor<1x5xf32>, tensor<1xi32>) -> tensor<f32>
  return %10 : tensor<f32>
}

// CHECK-LABEL: func.func @gradient_ops
func.func @gradient_ops(%x: tensor<1x8x8x3xf32>, %w: tensor<3x3x3x4xf32>, %dy: tensor<1x4x4x4xf32>,
                        %y: tensor<1x4x4x4xf32>, %z: tensor<1x5xf32>, %lab: tensor<1xi32>,
                        %fw: tensor<5x4xf32>, %h: tensor<1x4xf32>) -> tensor<3x3x3x4xf32> {
  // CHECK: "tinytrain.conv2d_grad_input"
  %0 = "tinytrain.conv2d_grad_input"(%dy, %w) {strides = array<i64: 2, 2>, padding = array<i64: 1, 1>, groups = 1 : i64} : (tensor<1x4x4x4xf32>, tensor<3x3x3x4xf32>) -> tensor<1x8x8x3xf32>
  // CHECK: "tinytrain.conv2d_grad_input_acc"
  %acc = "tinytrain.conv2d_grad_input_acc"(%0, %dy, %w) {strides = array<i64: 2, 2>, padding = array<i64: 1, 1>, groups = 1 : i64} : (tensor<1x8x8x3xf32>, tensor<1x4x4x4xf32>, tensor<3x3x3x4xf32>) -> tensor<1x8x8x3xf32>
  // CHECK: "tinytrain.conv2d_grad_weight"
  %1 = "tinytrain.conv2d_grad_weight"(%x, %dy) {strides = array<i64: 2, 2>, padding = array<i64: 1, 1>, groups = 1 : i64} : (tensor<1x8x8x3xf32>, tensor<1x4x4x4xf32>) -> tensor<3x3x3x4xf32>
  // CHECK: "tinytrain.bias_grad"
  %2 = "tinytrain.bias_grad"(%dy) : (tensor<1x4x4x4xf32>) -> tensor<4xf32>
  // CHECK: "tinytrain.relu_grad"
  %3 = "tinytrain.relu_grad"(%y, %dy) : (tensor<1x4x4x4xf32>, tensor<1x4x4x4xf32>) -> tensor<1x4x4x4xf32>
  // CHECK: "tinytrain.relu6_grad"
  %4 = "tinytrain.relu6_grad"(%y, %3) : (tensor<1x4x4x4xf32>, tensor<1x4x4x4xf32>) -> tensor<1x4x4x4xf32>
  // CHECK: "tinytrain.global_avg_pool_grad"
  %5 = "tinytrain.global_avg_pool_grad"(%h) : (tensor<1x4xf32>) -> tensor<1x4x4x4xf32>
  // CHECK: "tinytrain.softmax_cross_entropy_grad"
  %6 = "tinytrain.softmax_cross_entropy_grad"(%z, %lab) : (tensor<1x5xf32>, tensor<1xi32>) -> tensor<1x5xf32>
  // CHECK: "tinytrain.linear_grad_input"
  %7 = "tinytrain.linear_grad_input"(%6, %fw) : (tensor<1x5xf32>, tensor<5x4xf32>) -> tensor<1x4xf32>
  // CHECK: "tinytrain.linear_grad_weight"
  %8 = "tinytrain.linear_grad_weight"(%7, %6) : (tensor<1x4xf32>, tensor<1x5xf32>) -> tensor<5x4xf32>
  // CHECK: "tinytrain.sgd_update"(%{{.*}}) {lr = 1.000000e-01 : f32}
  %l = arith.constant dense<1.0> : tensor<f32>
  %9 = "tinytrain.sgd_update"(%w, %1, %l) {lr = 0.1 : f32} : (tensor<3x3x3x4xf32>, tensor<3x3x3x4xf32>, tensor<f32>) -> tensor<3x3x3x4xf32>
  return %9 : tensor<3x3x3x4xf32>
}
