// RUN: not tinytrain-opt -p to-linalg --split-input-file %s 2>&1 | filecheck %s

// Every op the conversion refuses is a CompileError naming the op and its location.

// CHECK: error: to-linalg: 'tinytrain.conv2d_grad_input' with padding [1, 1] larger than kernel-1 (1x1 kernel) is not supported (at loc("pad_too_big"))
func.func @pad_too_big(%dy: tensor<1x6x6x2xf32>, %w: tensor<1x1x3x2xf32>) -> tensor<1x4x4x3xf32> {
  %0 = "tinytrain.conv2d_grad_input"(%dy, %w) {strides = array<i64: 1, 1>, padding = array<i64: 1, 1>, groups = 1 : i64} : (tensor<1x6x6x2xf32>, tensor<1x1x3x2xf32>) -> tensor<1x4x4x3xf32> loc("pad_too_big")
  return %0 : tensor<1x4x4x3xf32>
}

// -----

// CHECK: error: to-linalg: 'tinytrain.conv2d' with groups=2 and weight [3, 3, 2, 4] is a grouped convolution; only dense (groups=1) and depthwise (groups=C) lower (at loc("grouped"))
func.func @grouped(%x: tensor<1x4x4x4xf32>, %w: tensor<3x3x2x4xf32>, %b: tensor<4xf32>) -> tensor<1x4x4x4xf32> {
  %0 = "tinytrain.conv2d"(%x, %w, %b) {strides = array<i64: 1, 1>, padding = array<i64: 1, 1>, groups = 2 : i64} : (tensor<1x4x4x4xf32>, tensor<3x3x2x4xf32>, tensor<4xf32>) -> tensor<1x4x4x4xf32> loc("grouped")
  return %0 : tensor<1x4x4x4xf32>
}

// -----

// CHECK: error: to-linalg: 'tinytrain.conv2d_grad_weight' with groups=2 and weight [3, 3, 2, 4] is a grouped convolution; only dense (groups=1) and depthwise (groups=C) lower (at loc("grouped_grad_weight"))
func.func @grouped_grad_weight(%x: tensor<1x4x4x4xf32>, %dy: tensor<1x4x4x4xf32>) -> tensor<3x3x2x4xf32> {
  %0 = "tinytrain.conv2d_grad_weight"(%x, %dy) {strides = array<i64: 1, 1>, padding = array<i64: 1, 1>, groups = 2 : i64} : (tensor<1x4x4x4xf32>, tensor<1x4x4x4xf32>) -> tensor<3x3x2x4xf32> loc("grouped_grad_weight")
  return %0 : tensor<3x3x2x4xf32>
}

// -----

// A trained (tied) parameter read after its own update (the reader needs the old and the new
// value) cannot be updated in place.
// CHECK: error: to-linalg: 'tinytrain.add' (at loc("late_reader")) reads the tied argument '#0' of @read_after_update after its update: it cannot be updated in place
func.func @read_after_update(%w: tensor<3xf32> {iree.abi.output = 0 : index}, %g: tensor<3xf32>, %l: tensor<f32>) -> (tensor<3xf32>, tensor<3xf32>) {
  %u = "tinytrain.sgd_update"(%w, %g, %l) {lr = 5.000000e-01 : f32} : (tensor<3xf32>, tensor<3xf32>, tensor<f32>) -> tensor<3xf32>
  %r = "tinytrain.add"(%w, %u) : (tensor<3xf32>, tensor<3xf32>) -> tensor<3xf32> loc("late_reader")
  return %u, %r : tensor<3xf32>, tensor<3xf32>
}
