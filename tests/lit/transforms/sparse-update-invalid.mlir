// Each user-facing error of sparse-update, with the fix it names.
// RUN: not tinytrain-opt -p 'sparse-update{weights=pw.wieght:1/4}' %S/sparse-update.mlir 2>&1 | filecheck %s --check-prefix=UNKNOWN
// RUN: not tinytrain-opt -p 'sparse-update{weights=pw.weight:0.3}' %S/sparse-update.mlir 2>&1 | filecheck %s --check-prefix=RATIO
// RUN: not tinytrain-opt -p 'sparse-update{weights=pw.bias:1/2}' %S/sparse-update.mlir 2>&1 | filecheck %s --check-prefix=BIAS
// RUN: not tinytrain-opt -p 'sparse-update{weights=fc.weight:1/8}' %S/sparse-update.mlir 2>&1 | filecheck %s --check-prefix=NONE
// RUN: not tinytrain-opt -p 'sparse-update{weights=pw.weight}' %S/sparse-update.mlir 2>&1 | filecheck %s --check-prefix=SYNTAX
// RUN: not tinytrain-opt -p 'autodiff,sparse-update{weights=pw.weight:1/2}' %S/sparse-update.mlir 2>&1 | filecheck %s --check-prefix=ORDER
// RUN: not tinytrain-opt -p 'sparse-update{weights=pw.weight:1/4},autodiff{trainable=pw.weight.frozen}' %S/sparse-update.mlir 2>&1 | filecheck %s --check-prefix=FROZEN

// UNKNOWN: sparse-update: unknown parameter 'pw.wieght'; did you mean pw.weight
// RATIO: sparse-update: 'pw.weight': ratio '0.3' is not allowed; the sparse update trains 1/8, 1/4, 1/2 or all of a weight's output channels (write one of 1/8, 1/4, 1/2 or 1)
// BIAS: sparse-update: 'pw.bias' has ratio 1/2, but only the weight of a conv2d/qconv2d or linear can be trained on a fraction of its output channels; give it ratio 1
// NONE: sparse-update: 'fc.weight' has 2 output channels; ratio 1/8 trains none of them (use a ratio of at least 1/2)
// SYNTAX: sparse-update: option weights expects <parameter>:<ratio> entries (e.g. blocks.3.pointwise1.weight:1/4), got 'pw.weight'
// ORDER: sparse-update: the module has no @forward function (run it before autodiff)
// FROZEN: autodiff: unknown trainable parameter(s) ['pw.weight.frozen']
