// sparse-update (before autodiff) and sparse-narrow (after it): a weight with ratio r trains its
// first r*C_out output channels; its gradient is computed for those channels only.
// RUN: tinytrain-opt --split-input-file -p 'sparse-update{weights=dw.weight:1/2,pw.weight:1/4},autodiff{trainable=c1.bias,dw.weight,pw.weight,pw.bias,fc.weight,fc.bias lr=0.5},sparse-narrow' %s | filecheck %s
// RUN: tinytrain-opt -p 'sparse-update{weights=dw.weight:1,pw.weight:1}' %s | filecheck %s --check-prefix=WHOLE

// fp32: a depthwise conv at 1/2 (4 of 8 channels = 4 groups) and a pointwise conv at 1/4 (1 of 4).
// Each becomes a trained slice + a frozen rest ({tinytrain.frozen}, never trained) joined by concat;
// the weight gradients read only the sliced output gradient (and, depthwise, the kept groups' input).
// CHECK-LABEL: func.func @train_step(
// CHECK-SAME: %[[DW:[a-z0-9]+]]: tensor<3x3x1x4xf32> {iree.abi.output = 1 : index, tinytrain.param = "dw.weight", tinytrain.sparse_channels = 4 : i64, tinytrain.sparse_of = 8 : i64, tinytrain.trainable}
// CHECK-SAME: %[[PW:[a-z0-9]+]]: tensor<1x1x8x1xf32> {iree.abi.output = 2 : index, tinytrain.param = "pw.weight", tinytrain.sparse_channels = 1 : i64, tinytrain.sparse_of = 4 : i64, tinytrain.trainable}
// CHECK-SAME: %[[DWR:[a-z0-9]+]]: tensor<3x3x1x4xf32> {tinytrain.frozen, tinytrain.param = "dw.weight.frozen"}
// CHECK-SAME: %[[PWR:[a-z0-9]+]]: tensor<1x1x8x3xf32> {tinytrain.frozen, tinytrain.param = "pw.weight.frozen"}
// CHECK-NEXT: %[[DWJ:.*]] = "tinytrain.concat"(%[[DW]], %[[DWR]]) {axis = 3 : i64} : (tensor<3x3x1x4xf32>, tensor<3x3x1x4xf32>) -> tensor<3x3x1x8xf32>
// CHECK-NEXT: %[[PWJ:.*]] = "tinytrain.concat"(%[[PW]], %[[PWR]]) {axis = 3 : i64} : (tensor<1x1x8x1xf32>, tensor<1x1x8x3xf32>) -> tensor<1x1x8x4xf32>
// CHECK-NEXT: %[[C:.*]] = "tinytrain.conv2d"
// CHECK-NEXT: %[[D:.*]] = "tinytrain.conv2d"(%[[C]], %[[DWJ]]
// CHECK-NEXT: "tinytrain.conv2d"(%[[D]], %[[PWJ]]
// CHECK: %[[GP:.*]] = "tinytrain.global_avg_pool_grad"
// CHECK-NEXT: %[[GD:.*]] = "tinytrain.conv2d_grad_input"(%[[GP]], %[[PWJ]])
// CHECK-NOT: tensor<1x1x8x4xf32>) -> tensor<1x1x8x4xf32>
// CHECK: %[[GPS:.*]] = "tinytrain.slice"(%[[GP]]) {offsets = array<i64: 0, 0, 0, 0>} : (tensor<1x4x4x4xf32>) -> tensor<1x4x4x1xf32>
// CHECK-NEXT: %[[GPW:.*]] = "tinytrain.conv2d_grad_weight"(%[[D]], %[[GPS]]) {groups = 1 : i64, {{.*}} : (tensor<1x4x4x8xf32>, tensor<1x4x4x1xf32>) -> tensor<1x1x8x1xf32>
// CHECK-NEXT: %[[XS:.*]] = "tinytrain.slice"(%[[C]]) {offsets = array<i64: 0, 0, 0, 0>} : (tensor<1x4x4x8xf32>) -> tensor<1x4x4x4xf32>
// CHECK-NEXT: %[[GS:.*]] = "tinytrain.slice"(%[[GD]]) {offsets = array<i64: 0, 0, 0, 0>} : (tensor<1x4x4x8xf32>) -> tensor<1x4x4x4xf32>
// CHECK-NEXT: %[[GDW:.*]] = "tinytrain.conv2d_grad_weight"(%[[XS]], %[[GS]]) {groups = 4 : i64, {{.*}} -> tensor<3x3x1x4xf32>
// CHECK: "tinytrain.sgd_update"(%[[DW]], %[[GDW]]
// CHECK-NEXT: "tinytrain.sgd_update"(%[[PW]], %[[GPW]]
// CHECK-NOT: tinytrain.conv2d_grad_weight

// Ratio 1 changes nothing.
// WHOLE: func.func @forward(%arg0: tensor<3x3x3x8xf32> {tinytrain.param = "c1.weight"}, %arg1: tensor<8xf32> {tinytrain.param = "c1.bias"}, %arg2: tensor<3x3x1x8xf32> {tinytrain.param = "dw.weight"}
// WHOLE-NOT: concat
func.func @forward(%w1: tensor<3x3x3x8xf32> {tinytrain.param = "c1.weight"}, %b1: tensor<8xf32> {tinytrain.param = "c1.bias"},
                   %wd: tensor<3x3x1x8xf32> {tinytrain.param = "dw.weight"}, %bd: tensor<8xf32> {tinytrain.param = "dw.bias"},
                   %wp: tensor<1x1x8x4xf32> {tinytrain.param = "pw.weight"}, %bp: tensor<4xf32> {tinytrain.param = "pw.bias"},
                   %fw: tensor<2x4xf32> {tinytrain.param = "fc.weight"}, %fb: tensor<2xf32> {tinytrain.param = "fc.bias"},
                   %x: tensor<1x4x4x3xf32> {tinytrain.input}) -> tensor<1x2xf32> {
  %c = "tinytrain.conv2d"(%x, %w1, %b1) {strides = array<i64: 1, 1>, padding = array<i64: 1, 1>, groups = 1 : i64} : (tensor<1x4x4x3xf32>, tensor<3x3x3x8xf32>, tensor<8xf32>) -> tensor<1x4x4x8xf32>
  %d = "tinytrain.conv2d"(%c, %wd, %bd) {strides = array<i64: 1, 1>, padding = array<i64: 1, 1>, groups = 8 : i64} : (tensor<1x4x4x8xf32>, tensor<3x3x1x8xf32>, tensor<8xf32>) -> tensor<1x4x4x8xf32>
  %p = "tinytrain.conv2d"(%d, %wp, %bp) {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, groups = 1 : i64} : (tensor<1x4x4x8xf32>, tensor<1x1x8x4xf32>, tensor<4xf32>) -> tensor<1x4x4x4xf32>
  %g = "tinytrain.global_avg_pool"(%p) : (tensor<1x4x4x4xf32>) -> tensor<1x4xf32>
  %l = "tinytrain.linear"(%g, %fw, %fb) : (tensor<1x4xf32>, tensor<2x4xf32>, tensor<2xf32>) -> tensor<1x2xf32>
  return %l : tensor<1x2xf32>
}
