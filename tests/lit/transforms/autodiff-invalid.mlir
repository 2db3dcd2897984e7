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
