// RUN: %PYTHON -c "import numpy as np; np.savez('%t.npz', **{'c.weight': np.ones((1, 1, 1, 2), np.float32), 'c.bias': np.zeros(2, np.float32)})"
// RUN: tinytrain-opt --split-input-file --verify-diagnostics -p 'quantize{params=%t.npz}' %s

// An op without an int8 form: the error names it, where it is, and what to do.
func.func @forward(%w: tensor<1x1x1x2xf32> {tinytrain.param = "c.weight"}, %b: tensor<2xf32> {tinytrain.param = "c.bias"}, %x: tensor<1x2x2x1xf32> {tinytrain.input, tinytrain.range = array<f64: -1.0, 1.0>}) -> tensor<1x2xf32> {
  %0 = "tinytrain.conv2d"(%x, %w, %b) {groups = 1 : i64, padding = array<i64: 0, 0>, strides = array<i64: 1, 1>, tinytrain.range = array<f64: -1.0, 1.0>} : (tensor<1x2x2x1xf32>, tensor<1x1x1x2xf32>, tensor<2xf32>) -> tensor<1x2x2x2xf32>
  // expected-error@+1 {{quantize: tinytrain.sigmoid (at -:8) has no int8 form (the int8 graph supports conv2d (dense, pointwise, depthwise) with ReLU/ReLU6 fused, residual add, global average pool, flatten/reshape and linear); replace it by ReLU or ReLU6, or keep the model fp32 (no quantize='int8' / --quantize int8)}}
  %1 = "tinytrain.sigmoid"(%0) : (tensor<1x2x2x2xf32>) -> tensor<1x2x2x2xf32>
  %2 = "tinytrain.global_avg_pool"(%1) : (tensor<1x2x2x2xf32>) -> tensor<1x2xf32>
  return %2 : tensor<1x2xf32>
}

// -----

// A value without an observed range and no calibration data.
func.func @forward(%w: tensor<1x1x1x2xf32> {tinytrain.param = "c.weight"}, %b: tensor<2xf32> {tinytrain.param = "c.bias"}, %x: tensor<1x2x2x1xf32> {tinytrain.input, tinytrain.range = array<f64: -1.0, 1.0>}) -> tensor<1x2xf32> {
  // expected-error@+1 {{quantize: no calibration data: the value of tinytrain.conv2d (at -:18) has no observed range}}
  %0 = "tinytrain.conv2d"(%x, %w, %b) {groups = 1 : i64, padding = array<i64: 0, 0>, strides = array<i64: 1, 1>} : (tensor<1x2x2x1xf32>, tensor<1x1x1x2xf32>, tensor<2xf32>) -> tensor<1x2x2x2xf32>
  %1 = "tinytrain.global_avg_pool"(%0) : (tensor<1x2x2x2xf32>) -> tensor<1x2xf32>
  return %1 : tensor<1x2xf32>
}

// -----

// A ReLU that cannot be fused (its input has another user).
func.func @forward(%w: tensor<1x1x1x2xf32> {tinytrain.param = "c.weight"}, %b: tensor<2xf32> {tinytrain.param = "c.bias"}, %x: tensor<1x2x2x1xf32> {tinytrain.input, tinytrain.range = array<f64: -1.0, 1.0>}) -> tensor<1x2x2x2xf32> {
  %0 = "tinytrain.conv2d"(%x, %w, %b) {groups = 1 : i64, padding = array<i64: 0, 0>, strides = array<i64: 1, 1>} : (tensor<1x2x2x1xf32>, tensor<1x1x1x2xf32>, tensor<2xf32>) -> tensor<1x2x2x2xf32>
  // expected-error@+1 {{quantize: tinytrain.relu (at -:29) cannot be fused: its input comes from tinytrain.conv2d, which is not a conv, linear or residual add whose only user is this activation}}
  %1 = "tinytrain.relu"(%0) : (tensor<1x2x2x2xf32>) -> tensor<1x2x2x2xf32>
  %2 = "tinytrain.add"(%1, %0) : (tensor<1x2x2x2xf32>, tensor<1x2x2x2xf32>) -> tensor<1x2x2x2xf32>
  return %2 : tensor<1x2x2x2xf32>
}
