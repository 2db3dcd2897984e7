// RUN: tinytrain-opt -p to-linalg --split-input-file %s | filecheck %s

// A trained (tied, iree.abi.output) parameter read by the backward pass is read before its
// in-place update without a copy made at the start of the step (lowering/conversions/
// tinytrain_to_linalg/tied.py, IREE's tied-argument hazard).

// Weight (48 B) smaller than the output gradient its input gradient reads (240 B): a copy made
// once that gradient exists (a 0-d token read from its first element, a select that is always
// true); the update and the input gradient read the copy, the forward reads the argument.
// CHECK-DAG:   #[[FIRST:map[0-9]*]] = affine_map<() -> (0, 0)>
// CHECK-DAG:   #[[SCALAR:map[0-9]*]] = affine_map<() -> ()>
// CHECK-DAG:   #[[BCAST:map[0-9]*]] = affine_map<(d0, d1) -> ()>
// CHECK-LABEL: func.func @late_copy(
// CHECK-SAME:    %[[W:[a-z0-9]+]]: tensor<3x4xf32> {iree.abi.output = 0 : index}
// CHECK:         linalg.generic {{.*}} ins(%{{.*}}, %[[W]] : tensor<20x4xf32>, tensor<3x4xf32>)
// CHECK:         %[[DZ:.*]] = linalg.generic {{.*}} ins(%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} : tensor<20x3xf32>, tensor<20xf32>, tensor<20xf32>, tensor<20xi32>)
// CHECK:         %[[TOKEN:.*]] = linalg.generic {indexing_maps = [#[[FIRST]], #[[SCALAR]]], iterator_types = []} ins(%[[DZ]] : tensor<20x3xf32>) outs(%{{.*}} : tensor<f32>)
// CHECK:         %[[COPY:.*]] = linalg.generic {indexing_maps = [#{{.*}}, #[[BCAST]], #{{.*}}], iterator_types = ["parallel", "parallel"]} ins(%[[W]], %[[TOKEN]] : tensor<3x4xf32>, tensor<f32>)
// CHECK-NEXT:    ^bb0(%[[X:.*]]: f32, %[[D:.*]]: f32, %{{.*}}: f32):
// CHECK-NEXT:      %[[ZERO:.*]] = arith.constant 0.000000e+00 : f32
// CHECK-NEXT:      %[[ORD:.*]] = arith.cmpf ord, %[[D]], %[[ZERO]] : f32
// CHECK-NEXT:      %[[UNO:.*]] = arith.cmpf uno, %[[D]], %[[ZERO]] : f32
// CHECK-NEXT:      %[[ANY:.*]] = arith.ori %[[ORD]], %[[UNO]] : i1
// CHECK-NEXT:      %[[SEL:.*]] = arith.select %[[ANY]], %[[X]], %{{.*}} : f32
// CHECK-NEXT:      linalg.yield %[[SEL]] : f32
// CHECK:         %[[UPD:.*]] = linalg.generic {{.*}} ins(%[[COPY]], %{{.*}} : tensor<3x4xf32>, tensor<3x4xf32>)
// CHECK:         %[[DX:.*]] = linalg.generic {{.*}} ins(%[[DZ]], %[[COPY]] : tensor<20x3xf32>, tensor<3x4xf32>)
// CHECK-NOT:     ins({{.*}}%[[W]]
// CHECK:         return %[[UPD]], %[[DX]]
func.func @late_copy(%w: tensor<3x4xf32> {iree.abi.output = 0 : index}, %b: tensor<3xf32>, %x: tensor<20x4xf32>, %labels: tensor<20xi32>) -> (tensor<3x4xf32>, tensor<20x4xf32>, tensor<f32>) {
  %z = "tinytrain.linear"(%x, %w, %b) : (tensor<20x4xf32>, tensor<3x4xf32>, tensor<3xf32>) -> tensor<20x3xf32>
  %l = "tinytrain.softmax_cross_entropy"(%z, %labels) : (tensor<20x3xf32>, tensor<20xi32>) -> tensor<f32>
  %dz = "tinytrain.softmax_cross_entropy_grad"(%z, %labels) : (tensor<20x3xf32>, tensor<20xi32>) -> tensor<20x3xf32>
  %dw = "tinytrain.linear_grad_weight"(%x, %dz) : (tensor<20x4xf32>, tensor<20x3xf32>) -> tensor<3x4xf32>
  %w2 = "tinytrain.sgd_update"(%w, %dw, %l) {lr = 5.000000e-01 : f32} : (tensor<3x4xf32>, tensor<3x4xf32>, tensor<f32>) -> tensor<3x4xf32>
  %dx = "tinytrain.linear_grad_input"(%dz, %w) : (tensor<20x3xf32>, tensor<3x4xf32>) -> tensor<20x4xf32>
  return %w2, %dx, %l : tensor<3x4xf32>, tensor<20x4xf32>, tensor<f32>
}

// -----

// Weight (48 B) larger than the output gradient (24 B): no copy; the loss the update's guard reads
// is recomputed by a 0-d generic that also reads the input gradient's first element, so the update
// (moved after it) depends on the input gradient, which reads the argument.
// CHECK-LABEL: func.func @guard(
// CHECK-SAME:    %[[W:[a-z0-9]+]]: tensor<3x4xf32> {iree.abi.output = 0 : index}
// CHECK:         %[[LOSS:.*]] = linalg.generic {indexing_maps = [#{{.*}}, #{{.*}}], iterator_types = []} ins(%{{.*}} : tensor<f32>)
// CHECK:         %[[DX:.*]] = linalg.generic {{.*}} ins(%{{.*}}, %[[W]] : tensor<2x3xf32>, tensor<3x4xf32>)
// CHECK:         %[[AFTER:.*]] = linalg.generic {indexing_maps = [#{{.*}}, #{{.*}}, #{{.*}}], iterator_types = []} ins(%[[LOSS]], %[[DX]] : tensor<f32>, tensor<2x4xf32>) outs(%{{.*}} : tensor<f32>)
// CHECK-NEXT:    ^bb0(%[[L:.*]]: f32, %[[D:.*]]: f32, %{{.*}}: f32):
// CHECK-NEXT:      %[[ZERO:.*]] = arith.constant 0.000000e+00 : f32
// CHECK-NEXT:      %[[ORD:.*]] = arith.cmpf ord, %[[D]], %[[ZERO]] : f32
// CHECK-NEXT:      %[[UNO:.*]] = arith.cmpf uno, %[[D]], %[[ZERO]] : f32
// CHECK-NEXT:      %[[ANY:.*]] = arith.ori %[[ORD]], %[[UNO]] : i1
// CHECK-NEXT:      %[[SEL:.*]] = arith.select %[[ANY]], %[[L]], %[[D]] : f32
// CHECK-NEXT:      linalg.yield %[[SEL]] : f32
// CHECK:         tensor.extract %[[AFTER]][] : tensor<f32>
// CHECK:         %[[UPD:.*]] = linalg.generic {{.*}} ins(%[[W]], %{{.*}} : tensor<3x4xf32>, tensor<3x4xf32>)
// CHECK:         return %[[UPD]], %[[DX]], %[[LOSS]]
func.func @guard(%w: tensor<3x4xf32> {iree.abi.output = 0 : index}, %b: tensor<3xf32>, %x: tensor<2x4xf32>, %labels: tensor<2xi32>) -> (tensor<3x4xf32>, tensor<2x4xf32>, tensor<f32>) {
  %z = "tinytrain.linear"(%x, %w, %b) : (tensor<2x4xf32>, tensor<3x4xf32>, tensor<3xf32>) -> tensor<2x3xf32>
  %l = "tinytrain.softmax_cross_entropy"(%z, %labels) : (tensor<2x3xf32>, tensor<2xi32>) -> tensor<f32>
  %dz = "tinytrain.softmax_cross_entropy_grad"(%z, %labels) : (tensor<2x3xf32>, tensor<2xi32>) -> tensor<2x3xf32>
  %dw = "tinytrain.linear_grad_weight"(%x, %dz) : (tensor<2x4xf32>, tensor<2x3xf32>) -> tensor<3x4xf32>
  %w2 = "tinytrain.sgd_update"(%w, %dw, %l) {lr = 5.000000e-01 : f32} : (tensor<3x4xf32>, tensor<3x4xf32>, tensor<f32>) -> tensor<3x4xf32>
  %dx = "tinytrain.linear_grad_input"(%dz, %w) : (tensor<2x3xf32>, tensor<3x4xf32>) -> tensor<2x4xf32>
  return %w2, %dx, %l : tensor<3x4xf32>, tensor<2x4xf32>, tensor<f32>
}

// -----

// An int8 weight read as its real value (channel_scale) by the input gradient and written back by
// qsgd_update: both read the late copy (an i8 select).
// CHECK-LABEL: func.func @int8(
// CHECK-SAME:    %[[W:[a-z0-9]+]]: tensor<3x4xi8> {iree.abi.output = 0 : index}
// CHECK:         %[[G:.*]] = linalg.generic {{.*}} ins(%{{.*}}, %{{.*}} : tensor<20x3xf32>, tensor<20x3xf32>)
// CHECK:         %[[TOKEN:.*]] = linalg.generic {{.*}} ins(%[[G]] : tensor<20x3xf32>) outs(%{{.*}} : tensor<f32>)
// CHECK:         %[[COPY:.*]] = linalg.generic {{.*}} ins(%[[W]], %[[TOKEN]] : tensor<3x4xi8>, tensor<f32>)
// CHECK:           arith.select %{{.*}}, %{{.*}}, %{{.*}} : i8
// CHECK:         %[[UPD:.*]] = linalg.generic {{.*}} ins(%[[COPY]], %{{.*}} : tensor<3x4xi8>, tensor<3x4xf32>)
// CHECK:         linalg.generic {{.*}} ins(%[[COPY]], %{{.*}} : tensor<3x4xi8>, tensor<4xf32>)
// CHECK-NOT:     ins({{.*}}%[[W]]
// CHECK:         return %[[UPD]]
func.func @int8(%w: tensor<3x4xi8> {iree.abi.output = 0 : index}, %dz: tensor<20x3xf32>, %x: tensor<20x4xf32>, %l: tensor<f32>) -> (tensor<3x4xi8>, tensor<20x4xf32>) {
  %g = "tinytrain.relu_grad"(%dz, %dz) : (tensor<20x3xf32>, tensor<20x3xf32>) -> tensor<20x3xf32>
  %dw = "tinytrain.linear_grad_weight"(%x, %g) : (tensor<20x4xf32>, tensor<20x3xf32>) -> tensor<3x4xf32>
  %w2 = "tinytrain.qsgd_update"(%w, %dw, %l) {lr = 5.000000e-01 : f32} : (tensor<3x4xi8>, tensor<3x4xf32>, tensor<f32>) -> tensor<3x4xi8>
  %wr = "tinytrain.channel_scale"(%w) {scales = array<f64: 2.500000e-01, 5.000000e-01, 1.000000e+00, 2.000000e+00>} : (tensor<3x4xi8>) -> tensor<3x4xf32>
  %dx = "tinytrain.linear_grad_input"(%g, %wr) : (tensor<20x3xf32>, tensor<3x4xf32>) -> tensor<20x4xf32>
  return %w2, %dx : tensor<3x4xi8>, tensor<20x4xf32>
}
