// Float options print as MLIR floats whatever Python's repr looks like (regression: `1e-05`
// once produced unparsable IR).
// RUN: tinytrain-opt --pass-pipeline='builtin.module(canonicalize,autodiff{lr=1e-05 trainable=all},cse)' %s | filecheck %s --check-prefix=E5
// RUN: tinytrain-opt -p 'autodiff{lr=1e-10}' %s | filecheck %s --check-prefix=E10
// RUN: tinytrain-opt -p 'autodiff{lr=3}' %s | filecheck %s --check-prefix=INT
// RUN: tinytrain-opt -p 'autodiff{lr=0.5}' %s | filecheck %s --check-prefix=HALF
// RUN: not tinytrain-opt -p 'autodiff{lr=fast}' %s 2>&1 | filecheck %s --check-prefix=BADLR
// RUN: not tinytrain-opt -p 'autodiff{rate=0.1}' %s 2>&1 | filecheck %s --check-prefix=BADKEY
// RUN: not tinytrain-opt -p 'autodiff,no-such-pass' %s 2>&1 | filecheck %s --check-prefix=BADPASS

func.func @forward(%fw: tensor<3x4xf32> {tinytrain.param = "fc.weight"},
                   %fb: tensor<3xf32> {tinytrain.param = "fc.bias"},
                   %x: tensor<2x4xf32> {tinytrain.input}) -> tensor<2x3xf32> {
  %0 = "tinytrain.linear"(%x, %fw, %fb) : (tensor<2x4xf32>, tensor<3x4xf32>, tensor<3xf32>) -> tensor<2x3xf32>
  return %0 : tensor<2x3xf32>
}

// E5-LABEL: func.func @train_step(
// E5: "tinytrain.sgd_update"(%arg0, %{{.*}}) {lr = 9.99999974E-6 : f32}
// E5-NEXT: "tinytrain.sgd_update"(%arg1, %{{.*}}) {lr = 9.99999974E-6 : f32}
// E10: {lr = 1.000000e-10 : f32}
// INT: {lr = 3.000000e+00 : f32}
// HALF: {lr = 5.000000e-01 : f32}
// BADLR: option 'lr' of pass 'autodiff' expects a number (e.g. 0.01 or 1e-05), got 'fast'
// BADKEY: unknown option 'rate' of pass 'autodiff'; options: trainable, lr, gradients, momentum
// BADPASS: unknown or malformed pass 'no-such-pass'
