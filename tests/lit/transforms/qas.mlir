// RUN: tinytrain-opt -p qas %s | filecheck %s
// RUN: tinytrain-opt -p 'qas,qas' %s | filecheck %s

// QAS (paper Eq. 4) by hand: input_scale s_x = 0.5, weight_scales s_W = [0.25, 0.125].
//   weight gradient x s_W^-2         = [1 / 0.0625, 1 / 0.015625]          = [16, 64]
//   bias gradient   x (s_W s_x)^-2   = [1 / 0.125^2, 1 / 0.0625^2]         = [64, 256]
// The rescaled gradient feeds the update, which is marked so that a second run adds nothing.
// CHECK-LABEL: func.func @train_step(
// CHECK-SAME:    %[[W:.*]]: tensor<1x1x2x2xi8>, %[[B:.*]]: tensor<2xi32>, %[[X:.*]]: tensor<1x2x2x2xi8>, %[[GW:.*]]: tensor<1x1x2x2xf32>, %[[GB:.*]]: tensor<2xf32>, %[[L:.*]]: tensor<f32>)
// CHECK-NEXT:    %[[Y:.*]] = "tinytrain.qconv2d"(%[[X]], %[[W]], %[[B]])
// CHECK-NEXT:    %[[SW:.*]] = "tinytrain.channel_scale"(%[[GW]]) {scales = array<f64: 1.600000e+01, 6.400000e+01>} : (tensor<1x1x2x2xf32>) -> tensor<1x1x2x2xf32>
// CHECK-NEXT:    %[[W2:.*]] = "tinytrain.qsgd_update"(%[[W]], %[[SW]], %[[L]]) {lr = 5.000000e-01 : f32, tinytrain.qas}
// CHECK-NEXT:    %[[SB:.*]] = "tinytrain.channel_scale"(%[[GB]]) {scales = array<f64: 6.400000e+01, 2.560000e+02>} : (tensor<2xf32>) -> tensor<2xf32>
// CHECK-NEXT:    %[[B2:.*]] = "tinytrain.qsgd_update"(%[[B]], %[[SB]], %[[L]]) {lr = 5.000000e-01 : f32, tinytrain.qas}
// CHECK-NEXT:    return %[[W2]], %[[B2]], %[[Y]]
func.func @train_step(%w: tensor<1x1x2x2xi8>, %b: tensor<2xi32>, %x: tensor<1x2x2x2xi8>, %gw: tensor<1x1x2x2xf32>, %gb: tensor<2xf32>, %l: tensor<f32>) -> (tensor<1x1x2x2xi8>, tensor<2xi32>, tensor<1x2x2x2xi8>) {
  %y = "tinytrain.qconv2d"(%x, %w, %b) {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, groups = 1 : i64, input_scale = 5.000000e-01 : f64, input_zero_point = 0 : i64, weight_scales = array<f64: 2.500000e-01, 1.250000e-01>, output_scale = 1.000000e+00 : f64, output_zero_point = 0 : i64, multiplier = array<i32: 1073741824, 1073741824>, shift = array<i32: -2, -3>, clamp = array<i64: -128, 127>} : (tensor<1x2x2x2xi8>, tensor<1x1x2x2xi8>, tensor<2xi32>) -> tensor<1x2x2x2xi8>
  %w2 = "tinytrain.qsgd_update"(%w, %gw, %l) {lr = 5.000000e-01 : f32} : (tensor<1x1x2x2xi8>, tensor<1x1x2x2xf32>, tensor<f32>) -> tensor<1x1x2x2xi8>
  %b2 = "tinytrain.qsgd_update"(%b, %gb, %l) {lr = 5.000000e-01 : f32} : (tensor<2xi32>, tensor<2xf32>, tensor<f32>) -> tensor<2xi32>
  return %w2, %b2, %y : tensor<1x1x2x2xi8>, tensor<2xi32>, tensor<1x2x2x2xi8>
}

// An fp32 master copy of the int8 weight (read through quantize{scale 1}) is updated by
// sgd_update: QAS scales its gradient by s_W^-2 = [16, 64] too; the fp32 head's update is left alone.
// CHECK-LABEL: func.func @train_step_master(
// CHECK-SAME:    %[[M:.*]]: tensor<1x1x2x2xf32>, %[[B:.*]]: tensor<2xi32>, %[[X:.*]]: tensor<1x2x2x2xi8>, %[[GM:.*]]: tensor<1x1x2x2xf32>, %[[H:.*]]: tensor<3xf32>, %[[GH:.*]]: tensor<3xf32>, %[[L:.*]]: tensor<f32>)
// CHECK-NEXT:    %[[WQ:.*]] = "tinytrain.quantize"(%[[M]])
// CHECK-NEXT:    %[[Y:.*]] = "tinytrain.qconv2d"(%[[X]], %[[WQ]], %[[B]])
// CHECK-NEXT:    %[[SM:.*]] = "tinytrain.channel_scale"(%[[GM]]) {scales = array<f64: 1.600000e+01, 6.400000e+01>}
// CHECK-NEXT:    %[[M2:.*]] = "tinytrain.sgd_update"(%[[M]], %[[SM]], %[[L]]) {lr = 5.000000e-01 : f32, tinytrain.qas}
// CHECK-NEXT:    %[[H2:.*]] = "tinytrain.sgd_update"(%[[H]], %[[GH]], %[[L]]) {lr = 5.000000e-01 : f32} :
// CHECK-NEXT:    return %[[M2]], %[[H2]], %[[Y]]
func.func @train_step_master(%m: tensor<1x1x2x2xf32>, %b: tensor<2xi32>, %x: tensor<1x2x2x2xi8>, %gm: tensor<1x1x2x2xf32>, %h: tensor<3xf32>, %gh: tensor<3xf32>, %l: tensor<f32>) -> (tensor<1x1x2x2xf32>, tensor<3xf32>, tensor<1x2x2x2xi8>) {
  %w = "tinytrain.quantize"(%m) {scale = 1.000000e+00 : f64, zero_point = 0 : i64} : (tensor<1x1x2x2xf32>) -> tensor<1x1x2x2xi8>
  %y = "tinytrain.qconv2d"(%x, %w, %b) {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, groups = 1 : i64, input_scale = 5.000000e-01 : f64, input_zero_point = 0 : i64, weight_scales = array<f64: 2.500000e-01, 1.250000e-01>, output_scale = 1.000000e+00 : f64, output_zero_point = 0 : i64, multiplier = array<i32: 1073741824, 1073741824>, shift = array<i32: -2, -3>, clamp = array<i64: -128, 127>} : (tensor<1x2x2x2xi8>, tensor<1x1x2x2xi8>, tensor<2xi32>) -> tensor<1x2x2x2xi8>
  %m2 = "tinytrain.sgd_update"(%m, %gm, %l) {lr = 5.000000e-01 : f32} : (tensor<1x1x2x2xf32>, tensor<1x1x2x2xf32>, tensor<f32>) -> tensor<1x1x2x2xf32>
  %h2 = "tinytrain.sgd_update"(%h, %gh, %l) {lr = 5.000000e-01 : f32} : (tensor<3xf32>, tensor<3xf32>, tensor<f32>) -> tensor<3xf32>
  return %m2, %h2, %y : tensor<1x1x2x2xf32>, tensor<3xf32>, tensor<1x2x2x2xi8>
}
