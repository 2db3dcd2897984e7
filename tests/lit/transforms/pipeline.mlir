// The documented pipeline: upstream passes around ours, in mlir-opt's --pass-pipeline syntax, from
// the tinytrain @forward to linalg (no tinytrain op left).
// RUN: tinytrain-opt --pass-pipeline='builtin.module(canonicalize,autodiff{lr=1e-05 trainable=all},to-linalg,cse)' %s | filecheck %s
// RUN: tinytrain-opt -p 'autodiff{lr=1e-05},to-linalg' --mlir-print-ir-after-all %s 2>&1 | filecheck %s --check-prefix=PRINT
// RUN: tinytrain-opt --list-passes | filecheck %s --check-prefix=LIST

func.func @forward(%fw: tensor<3x4xf32> {tinytrain.param = "fc.weight"},
                   %fb: tensor<3xf32> {tinytrain.param = "fc.bias"},
                   %x: tensor<2x4xf32> {tinytrain.input}) -> tensor<2x3xf32> {
  %0 = "tinytrain.linear"(%x, %fw, %fb) : (tensor<2x4xf32>, tensor<3x4xf32>, tensor<3xf32>) -> tensor<2x3xf32>
  return %0 : tensor<2x3xf32>
}

// CHECK-LABEL: func.func @train_step(
// CHECK-SAME: {iree.abi.output = 0 : index, tinytrain.param = "fc.weight", tinytrain.trainable}
// CHECK-NOT: "tinytrain.
// CHECK: arith.constant 9.99999974E-6 : f32
// CHECK: linalg.generic
// CHECK-LABEL: func.func @predict(
// CHECK-NOT: "tinytrain.

// PRINT: IR Dump After AutodiffPass: autodiff
// PRINT: "tinytrain.sgd_update"
// PRINT: IR Dump After ConvertTinytrainToLinalgPass: to-linalg
// PRINT-NOT: "tinytrain.

// LIST: tinytrain passes:
// LIST: autodiff: Build @train_step
// LIST: lr=float (default 0.01) SGD learning rate
// LIST: momentum=float (default 0.0) SGD momentum m (v = m v + g; p -= lr v, as torch.optim.SGD)
// LIST: to-linalg:
