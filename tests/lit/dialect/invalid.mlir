// RUN: not tinytrain-opt --split-input-file %s 2>&1 | filecheck %s
// The verifiers reject malformed ops and name the op and the problem.

func.func @conv_wrong_output(%x: tensor<1x8x8x3xf32>, %w: tensor<3x3x3x4xf32>, %b: tensor<4xf32>) {
  // CHECK: 'tinytrain.conv2d' op output shape [1, 5, 4, 4] differs from the expected [1, 4, 4, 4]
  %0 = "tinytrain.conv2d"(%x, %w, %b) {strides = array<i64: 2, 2>, padding = array<i64: 1, 1>, groups = 1 : i64} : (tensor<1x8x8x3xf32>, tensor<3x3x3x4xf32>, tensor<4xf32>) -> tensor<1x5x4x4xf32>
  return
}

// -----

func.func @conv_missing_padding(%x: tensor<1x8x8x3xf32>, %w: tensor<3x3x3x4xf32>, %b: tensor<4xf32>) {
  // CHECK: 'tinytrain.conv2d' op requires 'padding' = array<i64: ph, pw>
  %0 = "tinytrain.conv2d"(%x, %w, %b) {strides = array<i64: 1, 1>, groups = 1 : i64} : (tensor<1x8x8x3xf32>, tensor<3x3x3x4xf32>, tensor<4xf32>) -> tensor<1x6x6x4xf32>
  return
}

// -----

func.func @conv_bad_groups(%x: tensor<1x8x8x6xf32>, %w: tensor<3x3x3x4xf32>, %b: tensor<4xf32>) {
  // CHECK: 'tinytrain.conv2d' op weight [3, 3, 3, 4] does not match 6 input channels with groups=1
  %0 = "tinytrain.conv2d"(%x, %w, %b) {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, groups = 1 : i64} : (tensor<1x8x8x6xf32>, tensor<3x3x3x4xf32>, tensor<4xf32>) -> tensor<1x6x6x4xf32>
  return
}

// -----

func.func @conv_bias_shape(%x: tensor<1x8x8x3xf32>, %w: tensor<3x3x3x4xf32>, %b: tensor<5xf32>) {
  // CHECK: 'tinytrain.conv2d' op bias shape [5] must be [4]
  %0 = "tinytrain.conv2d"(%x, %w, %b) {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, groups = 1 : i64} : (tensor<1x8x8x3xf32>, tensor<3x3x3x4xf32>, tensor<5xf32>) -> tensor<1x6x6x4xf32>
  return
}

// -----

func.func @linear_mismatch(%x: tensor<2x3xf32>, %w: tensor<4x5xf32>, %b: tensor<4xf32>) {
  // CHECK: 'tinytrain.linear' op expects [N, I] x [O, I] -> [N, O], got [2, 3] x [4, 5] -> [2, 4]
  %0 = "tinytrain.linear"(%x, %w, %b) : (tensor<2x3xf32>, tensor<4x5xf32>, tensor<4xf32>) -> tensor<2x4xf32>
  return
}

// -----

func.func @add_mismatch(%a: tensor<2x3xf32>, %b: tensor<3x2xf32>) {
  // CHECK: 'tinytrain.add' op expects f32 operands and result of one shape
  %0 = "tinytrain.add"(%a, %b) : (tensor<2x3xf32>, tensor<3x2xf32>) -> tensor<2x3xf32>
  return
}

// -----

func.func @reshape_count(%a: tensor<2x3xf32>) {
  // CHECK: 'tinytrain.reshape' op cannot reshape [2, 3] (6 elements) to [7] (7)
  %0 = "tinytrain.reshape"(%a) : (tensor<2x3xf32>) -> tensor<7xf32>
  return
}

// -----

func.func @transpose_perm(%a: tensor<1x2x3x4xf32>) {
  // CHECK: 'tinytrain.transpose' op permutation [0, 1, 1, 2] does not map
  %0 = "tinytrain.transpose"(%a) {permutation = array<i64: 0, 1, 1, 2>} : (tensor<1x2x3x4xf32>) -> tensor<1x2x2x3xf32>
  return
}

// -----

func.func @loss_labels(%z: tensor<2x5xf32>, %l: tensor<3xi32>) {
  // CHECK: 'tinytrain.softmax_cross_entropy' op expects logits [N, K] and i32/i64 labels [N], got [2, 5] and [3]
  %0 = "tinytrain.softmax_cross_entropy"(%z, %l) : (tensor<2x5xf32>, tensor<3xi32>) -> tensor<f32>
  return
}

// -----

func.func @pool_grad(%g: tensor<1x4xf32>) {
  // CHECK: 'tinytrain.global_avg_pool_grad' op expects [N, C] -> [N, H, W, C], got [1, 4] -> [1, 2, 2, 3]
  %0 = "tinytrain.global_avg_pool_grad"(%g) : (tensor<1x4xf32>) -> tensor<1x2x2x3xf32>
  return
}

// -----

func.func @sgd_no_lr(%p: tensor<4xf32>, %g: tensor<4xf32>) {
  // CHECK: 'tinytrain.sgd_update' op requires a float 'lr' attribute
  %l = arith.constant dense<1.0> : tensor<f32>
  %0 = "tinytrain.sgd_update"(%p, %g, %l) : (tensor<4xf32>, tensor<4xf32>, tensor<f32>) -> tensor<4xf32>
  return
}

// -----

func.func @grad_weight_kernel(%x: tensor<1x8x8x3xf32>, %dy: tensor<1x4x4x4xf32>) {
  // CHECK: 'tinytrain.conv2d_grad_weight' op output shape [1, 4, 4, 4] differs from the expected [1, 5, 5, 4]
  %0 = "tinytrain.conv2d_grad_weight"(%x, %dy) {strides = array<i64: 2, 2>, padding = array<i64: 1, 1>, groups = 1 : i64} : (tensor<1x8x8x3xf32>, tensor<1x4x4x4xf32>) -> tensor<2x2x3x4xf32>
  return
}

// -----

func.func @sgd_loss_not_scalar(%p: tensor<4xf32>, %g: tensor<4xf32>, %l: tensor<1xf32>) {
  // CHECK: 'tinytrain.sgd_update' op expects the step's loss as a rank-0 f32 tensor, got tensor<1xf32>
  %0 = "tinytrain.sgd_update"(%p, %g, %l) {lr = 0.1 : f32} : (tensor<4xf32>, tensor<4xf32>, tensor<1xf32>) -> tensor<4xf32>
  return
}

// -----

func.func @sgd_two_operands(%p: tensor<4xf32>, %g: tensor<4xf32>) {
  // CHECK: 'tinytrain.sgd_update' op expects 3 operands (param, grad, loss), got 2
  %0 = "tinytrain.sgd_update"(%p, %g) {lr = 0.1 : f32} : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>
  return
}

// -----

func.func @momentum_missing(%v: tensor<4xf32>, %g: tensor<4xf32>, %l: tensor<f32>) {
  // CHECK: 'tinytrain.sgd_momentum' op requires a float 'momentum' attribute
  %0 = "tinytrain.sgd_momentum"(%v, %g, %l) : (tensor<4xf32>, tensor<4xf32>, tensor<f32>) -> tensor<4xf32>
  return
}

// -----

func.func @momentum_zero(%v: tensor<4xf32>, %g: tensor<4xf32>, %l: tensor<f32>) {
  // CHECK: 'tinytrain.sgd_momentum' op requires a finite momentum > 0, got 0.0 (momentum 0 is plain SGD: no buffer)
  %0 = "tinytrain.sgd_momentum"(%v, %g, %l) {momentum = 0.0 : f32} : (tensor<4xf32>, tensor<4xf32>, tensor<f32>) -> tensor<4xf32>
  return
}

// -----

func.func @momentum_int_buffer(%v: tensor<4xi8>, %g: tensor<4xf32>, %l: tensor<f32>) {
  // CHECK: 'tinytrain.sgd_momentum' op expects f32 operands and result of one shape, got [[4], [4], [4]]
  %0 = "tinytrain.sgd_momentum"(%v, %g, %l) {momentum = 0.9 : f32} : (tensor<4xi8>, tensor<4xf32>, tensor<f32>) -> tensor<4xf32>
  return
}

// -----

func.func @momentum_loss_rank(%v: tensor<4xf32>, %g: tensor<4xf32>, %l: tensor<1xf32>) {
  // CHECK: 'tinytrain.sgd_momentum' op expects the step's loss as a rank-0 f32 tensor, got tensor<1xf32>
  %0 = "tinytrain.sgd_momentum"(%v, %g, %l) {momentum = 0.9 : f32} : (tensor<4xf32>, tensor<4xf32>, tensor<1xf32>) -> tensor<4xf32>
  return
}

// -----

func.func @qclamp_mask_not_multiple_of_8(%y: tensor<2x12xi8>) {
  // CHECK: 'tinytrain.qclamp_mask' op expects output [..., C] with C a positive multiple of 8 and a mask [..., C / 8], got [2, 12] and [2, 1]
  %0 = "tinytrain.qclamp_mask"(%y) {clamp = array<i64: -128, 127>} : (tensor<2x12xi8>) -> tensor<2x1xi8>
  return
}

// -----

func.func @qclamp_mask_bad_clamp(%y: tensor<2x16xi8>) {
  // CHECK: 'tinytrain.qclamp_mask' op clamp [100, -128] must be [lo, hi] with -128 <= lo <= hi <= 127
  %0 = "tinytrain.qclamp_mask"(%y) {clamp = array<i64: 100, -128>} : (tensor<2x16xi8>) -> tensor<2x2xi8>
  return
}

// -----

func.func @qmask_grad_mask_type(%g: tensor<2x16xf32>, %m: tensor<2x2xi32>) {
  // CHECK: 'tinytrain.qmask_grad' op mask must have element type i8, got i32
  %0 = "tinytrain.qmask_grad"(%g, %m) : (tensor<2x16xf32>, tensor<2x2xi32>) -> tensor<2x16xf32>
  return
}

// -----

func.func @qmask_grad_shape(%g: tensor<2x16xf32>, %m: tensor<2x16xi8>) {
  // CHECK: 'tinytrain.qmask_grad' op expects grad [..., C] with C a positive multiple of 8 and a mask [..., C / 8], got [2, 16] and [2, 16]
  %0 = "tinytrain.qmask_grad"(%g, %m) : (tensor<2x16xf32>, tensor<2x16xi8>) -> tensor<2x16xf32>
  return
}

// -----

func.func @conv2d_grad_input_acc_shape(%acc: tensor<1x8x8x4xf32>, %dy: tensor<1x4x4x4xf32>, %w: tensor<3x3x3x4xf32>) {
  // CHECK: 'tinytrain.conv2d_grad_input_acc' op accumulator shape [1, 8, 8, 4] differs from the result shape [1, 8, 8, 3]
  %0 = "tinytrain.conv2d_grad_input_acc"(%acc, %dy, %w) {strides = array<i64: 2, 2>, padding = array<i64: 1, 1>, groups = 1 : i64} : (tensor<1x8x8x4xf32>, tensor<1x4x4x4xf32>, tensor<3x3x3x4xf32>) -> tensor<1x8x8x3xf32>
  return
}
