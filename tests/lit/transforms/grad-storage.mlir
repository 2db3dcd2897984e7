// RUN: tinytrain-opt -p 'grad-storage' %s | filecheck %s
// RUN: tinytrain-opt -p 'grad-storage{dtype=f32}' %s | filecheck %s --check-prefix=OFF
// grad-storage: every activation gradient another op reads is rounded to bf16 right after its op
// (arith.truncf) and widened back for its readers (arith.extf; IREE fuses the two into the writing
// and the reading kernels, so the stored tensor is bf16); a weight gradient is not rounded.
// CHECK-LABEL: func.func @train_step(
// CHECK:         %[[A:.*]] = "tinytrain.qclamp_grad"(%arg2, %arg0)
// CHECK-NEXT:    %[[AN:.*]] = arith.truncf %[[A]] : tensor<1x2x2x8xf32> to tensor<1x2x2x8xbf16>
// CHECK-NEXT:    %[[AW:.*]] = arith.extf %[[AN]] : tensor<1x2x2x8xbf16> to tensor<1x2x2x8xf32>
// CHECK-NEXT:    %[[D:.*]] = "tinytrain.conv2d_grad_input"(%[[AW]], %arg1)
// CHECK-NEXT:    %[[DN:.*]] = arith.truncf %[[D]]
// CHECK-NEXT:    %[[DW:.*]] = arith.extf %[[DN]]
// CHECK-NEXT:    %[[GW:.*]] = "tinytrain.conv2d_grad_weight"(%arg3, %[[AW]])
// CHECK-NEXT:    return %[[DW]], %[[GW]] : tensor<1x2x2x8xf32>, tensor<1x1x8x8xf32>
// OFF-NOT:       arith.truncf
func.func @train_step(%y: tensor<1x2x2x8xi8>, %w: tensor<1x1x8x8xf32>, %g: tensor<1x2x2x8xf32>, %x: tensor<1x2x2x8xf32>) -> (tensor<1x2x2x8xf32>, tensor<1x1x8x8xf32>) {
  %a = "tinytrain.qclamp_grad"(%g, %y) {clamp = array<i64: -128, 127>} : (tensor<1x2x2x8xf32>, tensor<1x2x2x8xi8>) -> tensor<1x2x2x8xf32>
  %d = "tinytrain.conv2d_grad_input"(%a, %w) {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, groups = 1 : i64} : (tensor<1x2x2x8xf32>, tensor<1x1x8x8xf32>) -> tensor<1x2x2x8xf32>
  %gw = "tinytrain.conv2d_grad_weight"(%x, %a) {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, groups = 1 : i64} : (tensor<1x2x2x8xf32>, tensor<1x2x2x8xf32>) -> tensor<1x1x8x8xf32>
  return %d, %gw : tensor<1x2x2x8xf32>, tensor<1x1x8x8xf32>
}
