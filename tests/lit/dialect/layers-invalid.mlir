// The verifiers of the layer ops (dialects/tinytrain_layers.py) name the op and the problem.
// RUN: tinytrain-opt --split-input-file --verify-diagnostics %s

func.func @pad_shape(%x: tensor<1x4x4x2xf32>) {
  // expected-error@+1 {{'tinytrain.pad' op result shape [1, 6, 4, 2] is not [1, 4, 4, 2] padded by low [0, 1, 0, 0] and high [0, 2, 1, 0]}}
  %0 = "tinytrain.pad"(%x) {low = array<i64: 0, 1, 0, 0>, high = array<i64: 0, 2, 1, 0>} : (tensor<1x4x4x2xf32>) -> tensor<1x6x4x2xf32>
  return
}

// -----

func.func @slice_out_of_bounds(%x: tensor<1x4x4x2xf32>) {
  // expected-error@+1 {{'tinytrain.slice' op slice at [0, 2, 0, 0] of shape [1, 3, 4, 2] exceeds the input shape [1, 4, 4, 2]}}
  %0 = "tinytrain.slice"(%x) {offsets = array<i64: 0, 2, 0, 0>} : (tensor<1x4x4x2xf32>) -> tensor<1x3x4x2xf32>
  return
}

// -----

func.func @concat_sizes(%a: tensor<1x2x2x2xf32>, %b: tensor<1x2x2x3xf32>) {
  // expected-error@+1 {{'tinytrain.concat' op input sizes along axis 3 sum to 5, the result has 6}}
  %0 = "tinytrain.concat"(%a, %b) {axis = 3 : i64} : (tensor<1x2x2x2xf32>, tensor<1x2x2x3xf32>) -> tensor<1x2x2x6xf32>
  return
}

// -----

func.func @maxpool_output(%x: tensor<1x8x8x2xf32>) {
  // expected-error@+1 {{'tinytrain.max_pool2d' op output shape [1, 3, 4, 2] differs from the expected [1, 4, 4, 2]}}
  %0 = "tinytrain.max_pool2d"(%x) {kernel = array<i64: 3, 3>, strides = array<i64: 2, 2>, padding = array<i64: 1, 1, 1, 1>} : (tensor<1x8x8x2xf32>) -> tensor<1x3x4x2xf32>
  return
}

// -----

func.func @maxpool_padding(%x: tensor<1x8x8x2xf32>) {
  // expected-error@+1 {{'tinytrain.max_pool2d' op padding [3, 0, 0, 0] must be smaller than the kernel [3, 3] on every side}}
  %0 = "tinytrain.max_pool2d"(%x) {kernel = array<i64: 3, 3>, strides = array<i64: 1, 1>, padding = array<i64: 3, 0, 0, 0>} : (tensor<1x8x8x2xf32>) -> tensor<1x9x6x2xf32>
  return
}

// -----

func.func @avgpool_divisor(%x: tensor<1x4x4x2xf32>) {
  // expected-error@+1 {{'tinytrain.avg_pool2d' op requires 'divisor' = "window" or "valid"}}
  %0 = "tinytrain.avg_pool2d"(%x) {kernel = array<i64: 2, 2>, strides = array<i64: 2, 2>, padding = array<i64: 0, 0, 0, 0>, divisor = "all"} : (tensor<1x4x4x2xf32>) -> tensor<1x2x2x2xf32>
  return
}

// -----

func.func @leaky_alpha(%x: tensor<1x4xf32>) {
  // expected-error@+1 {{'tinytrain.leaky_relu' op requires a float 'alpha' attribute}}
  %0 = "tinytrain.leaky_relu"(%x) {alpha = 1 : i64} : (tensor<1x4xf32>) -> tensor<1x4xf32>
  return
}

// -----

func.func @mul_broadcast(%x: tensor<1x4x4x3xf32>, %s: tensor<1x1x2x3xf32>) {
  // expected-error@+1 {{'tinytrain.mul' op expects rhs [1, 1, 2, 3] to broadcast to lhs [1, 4, 4, 3]}}
  %0 = "tinytrain.mul"(%x, %s) : (tensor<1x4x4x3xf32>, tensor<1x1x2x3xf32>) -> tensor<1x4x4x3xf32>
  return
}

// -----

func.func @sum_to_shape(%x: tensor<1x4x4x3xf32>) {
  // expected-error@+1 {{'tinytrain.sum_to' op result shape [1, 1, 1, 2] does not broadcast to the input shape [1, 4, 4, 3]}}
  %0 = "tinytrain.sum_to"(%x) : (tensor<1x4x4x3xf32>) -> tensor<1x1x1x2xf32>
  return
}

// -----

func.func @affine_channels(%x: tensor<1x4x4x3xf32>, %a: tensor<4xf32>, %b: tensor<3xf32>) {
  // expected-error@+1 {{'tinytrain.channel_affine' op expects x [..., C], scale [C], shift [C] -> x's shape, got [1, 4, 4, 3], [4], [3] -> [1, 4, 4, 3]}}
  %0 = "tinytrain.channel_affine"(%x, %a, %b) : (tensor<1x4x4x3xf32>, tensor<4xf32>, tensor<3xf32>) -> tensor<1x4x4x3xf32>
  return
}

// -----

func.func @maxpool_grad_shape(%x: tensor<1x8x8x2xf32>, %g: tensor<1x4x4x2xf32>) {
  // expected-error@+1 {{'tinytrain.max_pool2d_grad' op result must have the input's shape}}
  %0 = "tinytrain.max_pool2d_grad"(%x, %g) {kernel = array<i64: 2, 2>, strides = array<i64: 2, 2>, padding = array<i64: 0, 0, 0, 0>} : (tensor<1x8x8x2xf32>, tensor<1x4x4x2xf32>) -> tensor<1x8x8x3xf32>
  return
}

// -----

func.func @concat_mixed(%a: tensor<1x1x2x2xi8>, %b: tensor<1x1x2x3xf32>) {
  // expected-error@+1 {{'tinytrain.concat' op expects f32, i8 or i32 tensors of one element type, got ['f32', 'i8']}}
  %0 = "tinytrain.concat"(%a, %b) {axis = 3 : i64} : (tensor<1x1x2x2xi8>, tensor<1x1x2x3xf32>) -> tensor<1x1x2x5xf32>
  return
}

// -----

func.func @insert_out_of_bounds(%w: tensor<1x1x4x8xi8>, %p: tensor<1x1x4x3xi8>) {
  // expected-error@+1 {{'tinytrain.insert' op a piece of shape [1, 1, 4, 3] at [0, 0, 0, 6] exceeds the destination shape [1, 1, 4, 8]}}
  %0 = "tinytrain.insert"(%w, %p) {offsets = array<i64: 0, 0, 0, 6>} : (tensor<1x1x4x8xi8>, tensor<1x1x4x3xi8>) -> tensor<1x1x4x8xi8>
  return
}

// -----

func.func @insert_result_shape(%w: tensor<1x1x4x8xi8>, %p: tensor<1x1x4x2xi8>) {
  // expected-error@+1 {{'tinytrain.insert' op requires 'offsets' = array<i64: ...> of 4 non-negative entries, a piece of the same rank and a result of the destination's shape}}
  %0 = "tinytrain.insert"(%w, %p) {offsets = array<i64: 0, 0, 0, 6>} : (tensor<1x1x4x8xi8>, tensor<1x1x4x2xi8>) -> tensor<1x1x4x2xi8>
  return
}

// -----

func.func @insert_mixed(%w: tensor<1x1x4x8xi8>, %p: tensor<1x1x4x2xf32>) {
  // expected-error@+1 {{'tinytrain.insert' op expects f32, i8 or i32 tensors of one element type, got ['f32', 'i8']}}
  %0 = "tinytrain.insert"(%w, %p) {offsets = array<i64: 0, 0, 0, 6>} : (tensor<1x1x4x8xi8>, tensor<1x1x4x2xf32>) -> tensor<1x1x4x8xi8>
  return
}
