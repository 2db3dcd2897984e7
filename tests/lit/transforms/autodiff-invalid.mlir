// Each user-facing error of the autodiff pass, checked on its line.
// RUN: tinytrain-opt --split-input-file --verify-diagnostics -p 'autodiff' %s
// RUN: not tinytrain-opt -p 'autodiff' %S/autodiff-options.mlir --pass-pipeline='builtin.module(cse)' 2>&1 | filecheck %s --check-prefix=BOTH
// RUN: not tinytrain-opt -p 'autodiff{trainable=fc.weight,nope}' %S/autodiff-options.mlir 2>&1 | filecheck %s --check-prefix=UNKNOWN

// BOTH: give either --pass-pipeline or -p, not both
// UNKNOWN: autodiff: unknown trainable parameter(s) ['nope']; the model's parameters are: fc.weight, fc.bias

// expected-error@+1 {{autodiff: @forward needs exactly one {tinytrain.input} argument}}
func.func @forward(%fw: tensor<3x4xf32> {tinytrain.param = "fc.weight"},
                   %fb: tensor<3xf32> {tinytrain.param = "fc.bias"},
                   %x: tensor<2x4xf32>) -> tensor<2x3xf32> {
  %0 = "tinytrain.linear"(%x, %fw, %fb) : (tensor<2x4xf32>, tensor<3x4xf32>, tensor<3xf32>) -> tensor<2x3xf32>
  return %0 : tensor<2x3xf32>
}

// -----

// expected-error@+1 {{autodiff: the module has no @forward function}}
module {
func.func @model(%x: tensor<2x4xf32> {tinytrain.input}) -> tensor<2x4xf32> {
  return %x : tensor<2x4xf32>
}
}

// -----

func.func @forward(%x: tensor<2x4xf32> {tinytrain.input}) -> tensor<2x4xf32> {
  // expected-error@+1 {{autodiff: no gradient rule for 'arith.addf'}}
  %0 = arith.addf %x, %x : tensor<2x4xf32>
  return %0 : tensor<2x4xf32>
}

// -----

// expected-error@+1 {{autodiff: @forward must return logits [N, classes]}}
func.func @forward(%x: tensor<1x2x2x4xf32> {tinytrain.input}) -> tensor<1x2x2x4xf32> {
  %0 = "tinytrain.relu"(%x) : (tensor<1x2x2x4xf32>) -> tensor<1x2x2x4xf32>
  return %0 : tensor<1x2x2x4xf32>
}

// -----

// expected-error@+1 {{autodiff: @forward must return f32 logits for the loss, got tensor<1x2xi8>; an int8 graph trains with its fp32 classifier head}}
func.func @forward(%b: tensor<2xi32> {tinytrain.param = "c.bias"}, %w: tensor<1x1x2x2xi8> {tinytrain.param = "c.weight"},
                   %x: tensor<1x1x1x2xi8> {tinytrain.input}) -> tensor<1x2xi8> {
  %y = "tinytrain.qconv2d"(%x, %w, %b) {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, groups = 1 : i64, input_scale = 5.000000e-01 : f64, input_zero_point = 0 : i64, weight_scales = array<f64: 2.500000e-01, 1.250000e-01>, output_scale = 1.000000e+00 : f64, output_zero_point = 0 : i64, multiplier = array<i32: 1073741824, 1073741824>, shift = array<i32: -2, -3>, clamp = array<i64: -128, 127>} : (tensor<1x1x1x2xi8>, tensor<1x1x2x2xi8>, tensor<2xi32>) -> tensor<1x1x1x2xi8>
  %r = "tinytrain.reshape"(%y) : (tensor<1x1x1x2xi8>) -> tensor<1x2xi8>
  return %r : tensor<1x2xi8>
}
