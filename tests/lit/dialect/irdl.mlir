// RUN: torch-mlir-opt --irdl-file=%S/../../../dialects/tinytrain.irdl.mlir --split-input-file --verify-diagnostics %s
// The committed IRDL definition loads into upstream tooling (torch-mlir-opt), which then enforces
// the dialect's operand, attribute and result constraints without any Python.

func.func @not_a_tensor(%a: i32) {
  // expected-error @+1 {{expected base type 'builtin.tensor' but got 'builtin.integer'}}
  %0 = "tinytrain.relu"(%a) : (i32) -> i32
  return
}

// -----

func.func @groups_not_integer(%x: tensor<1x8x8x3xf32>, %w: tensor<3x3x3x4xf32>, %b: tensor<4xf32>) {
  // expected-error @+1 {{expected base attribute 'builtin.integer' but got 'builtin.string'}}
  %0 = "tinytrain.conv2d"(%x, %w, %b) {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, groups = "one"} : (tensor<1x8x8x3xf32>, tensor<3x3x3x4xf32>, tensor<4xf32>) -> tensor<1x6x6x4xf32>
  return
}

// -----

func.func @missing_operand(%p: tensor<4xf32>) {
  // expected-error @+1 {{}}
  %0 = "tinytrain.sgd_update"(%p) {lr = 0.1 : f32} : (tensor<4xf32>) -> tensor<4xf32>
  return
}
