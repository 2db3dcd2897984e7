// RUN: tinytrain-opt -p 'autodiff{lr=0.5 momentum=0.9}' %s | filecheck %s
// RUN: tinytrain-opt -p 'autodiff{lr=0.5 momentum=0}' %s | filecheck %s --check-prefix=PLAIN
// RUN: not tinytrain-opt -p 'autodiff{momentum=-1}' %s 2>&1 | filecheck %s --check-prefix=NEG

// SGD with momentum: one f32 buffer per trainable parameter, after the trainable arguments,
// tied to its result; v' = sgd_momentum(v, g, loss) is the gradient operand of the update.
// CHECK-LABEL: func.func @train_step(
// CHECK-SAME:    %[[W:[^:]*]]: tensor<3x4xf32> {iree.abi.output = 0 : index, tinytrain.param = "fc.weight", tinytrain.trainable},
// CHECK-SAME:    %[[B:[^:]*]]: tensor<3xf32> {iree.abi.output = 1 : index, tinytrain.param = "fc.bias", tinytrain.trainable},
// CHECK-SAME:    %[[VW:[^:]*]]: tensor<3x4xf32> {iree.abi.output = 2 : index, tinytrain.momentum_buffer = "fc.weight"},
// CHECK-SAME:    %[[VB:[^:]*]]: tensor<3xf32> {iree.abi.output = 3 : index, tinytrain.momentum_buffer = "fc.bias"},
// CHECK-SAME:    %[[X:[^:]*]]: tensor<2x4xf32> {tinytrain.input}, %[[Y:[^:]*]]: tensor<2xi32> {tinytrain.labels})
// CHECK-SAME:    -> (tensor<3x4xf32>, tensor<3xf32>, tensor<3x4xf32>, tensor<3xf32>, tensor<f32>)
// CHECK:         %[[L:.*]] = "tinytrain.softmax_cross_entropy"
// CHECK:         %[[GW:.*]] = "tinytrain.linear_grad_weight"
// CHECK-NEXT:    %[[GB:.*]] = "tinytrain.bias_grad"
// CHECK-NEXT:    %[[NVW:.*]] = "tinytrain.sgd_momentum"(%[[VW]], %[[GW]], %[[L]]) {momentum = 0.899999976 : f32}
// CHECK-NEXT:    %[[NW:.*]] = "tinytrain.sgd_update"(%[[W]], %[[NVW]], %[[L]]) {lr = 5.000000e-01 : f32}
// CHECK-NEXT:    %[[NVB:.*]] = "tinytrain.sgd_momentum"(%[[VB]], %[[GB]], %[[L]]) {momentum = 0.899999976 : f32}
// CHECK-NEXT:    %[[NB:.*]] = "tinytrain.sgd_update"(%[[B]], %[[NVB]], %[[L]]) {lr = 5.000000e-01 : f32}
// CHECK-NEXT:    return %[[NW]], %[[NB]], %[[NVW]], %[[NVB]], %[[L]]
// @predict takes the parameters only (the leading part of the state the device runtime binds).
// CHECK-LABEL: func.func @predict(
// CHECK-SAME:    tinytrain.trainable}, %{{[^:]*}}: tensor<3xf32> {tinytrain.param = "fc.bias", tinytrain.trainable},
// CHECK-SAME:    %{{[^:]*}}: tensor<2x4xf32> {tinytrain.input}) -> tensor<2x3xf32>

// momentum=0 is today's plain SGD: no buffer, no sgd_momentum.
// PLAIN-LABEL: func.func @train_step(
// PLAIN-SAME:    %{{[^:]*}}: tensor<2x4xf32> {tinytrain.input}, %{{[^:]*}}: tensor<2xi32> {tinytrain.labels}) -> (tensor<3x4xf32>, tensor<3xf32>, tensor<f32>)
// PLAIN-NOT:     momentum
// PLAIN:         "tinytrain.sgd_update"

// NEG: autodiff: momentum must be a finite number >= 0, got -1.0
func.func @forward(%fw: tensor<3x4xf32> {tinytrain.param = "fc.weight"},
                   %fb: tensor<3xf32> {tinytrain.param = "fc.bias"},
                   %x: tensor<2x4xf32> {tinytrain.input}) -> tensor<2x3xf32> {
  %0 = "tinytrain.linear"(%x, %fw, %fb) : (tensor<2x4xf32>, tensor<3x4xf32>, tensor<3xf32>) -> tensor<2x3xf32>
  return %0 : tensor<2x3xf32>
}
