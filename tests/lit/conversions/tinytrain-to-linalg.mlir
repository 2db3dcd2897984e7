// RUN: tinytrain-opt -p to-linalg --split-input-file %s | filecheck %s
// RUN: tinytrain-opt -p 'to-linalg{convgrad=im2col}' --split-input-file %s | filecheck %s

// One case per tinytrain op (and per lowering variant): the ops, maps and bodies the
// tinytrain -> linalg conversion patterns build. The conv input, weight and bias gradients depend
// on `convgrad` (tinytrain-to-linalg-convgrad.mlir, but for the dense 1x1 stride-1 case below,
// lowered alike by both): every case here is the same with both.

// Dense conv: the bias broadcast over N, H, W seeds the accumulator; the input is zero-padded
// to exactly the window the strided conv reads ((O - 1) * s + K = 7).
// CHECK-DAG:   #[[MAP:map[0-9]*]] = affine_map<(d0, d1, d2, d3) -> (d3)>
// CHECK-DAG:   #[[MAP1:map[0-9]*]] = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>
// CHECK-LABEL: func.func @conv2d(
// CHECK-SAME:    %[[ARG0:.*]]: tensor<1x5x5x2xf32>, %[[ARG1:.*]]: tensor<3x3x2x4xf32>, %[[ARG2:.*]]: tensor<4xf32>) -> tensor<1x3x3x4xf32> {
// CHECK-NEXT:    %[[V0:.*]] = tensor.empty() : tensor<1x3x3x4xf32>
// CHECK-NEXT:    %[[V1:.*]] = linalg.generic {indexing_maps = [#[[MAP]], #[[MAP1]]], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%[[ARG2]] : tensor<4xf32>) outs(%[[V0]] : tensor<1x3x3x4xf32>) {
// CHECK-NEXT:    ^bb0(%[[IN:.*]]: f32, %[[OUT:.*]]: f32):
// CHECK-NEXT:      linalg.yield %[[IN]] : f32
// CHECK-NEXT:    } -> tensor<1x3x3x4xf32>
// CHECK-NEXT:    %[[CST:.*]] = arith.constant 0.000000e+00 : f32
// CHECK-NEXT:    %[[PADDED:.*]] = tensor.pad %[[ARG0]] low[0, 1, 1, 0] high[0, 1, 1, 0] {
// CHECK-NEXT:    ^bb0(%[[ARG3:.*]]: index, %[[ARG4:.*]]: index, %[[ARG5:.*]]: index, %[[ARG6:.*]]: index):
// CHECK-NEXT:      tensor.yield %[[CST]] : f32
// CHECK-NEXT:    } : tensor<1x5x5x2xf32> to tensor<1x7x7x2xf32>
// CHECK-NEXT:    %[[V2:.*]] = linalg.conv_2d_nhwc_hwcf {dilations = dense<1> : tensor<2xi64>, strides = dense<2> : tensor<2xi64>} ins(%[[PADDED]], %[[ARG1]] : tensor<1x7x7x2xf32>, tensor<3x3x2x4xf32>) outs(%[[V1]] : tensor<1x3x3x4xf32>) -> tensor<1x3x3x4xf32>
// CHECK-NEXT:    return %[[V2]] : tensor<1x3x3x4xf32>
func.func @conv2d(%x: tensor<1x5x5x2xf32>, %w: tensor<3x3x2x4xf32>, %b: tensor<4xf32>) -> tensor<1x3x3x4xf32> {
  %0 = "tinytrain.conv2d"(%x, %w, %b) {strides = array<i64: 2, 2>, padding = array<i64: 1, 1>, groups = 1 : i64} : (tensor<1x5x5x2xf32>, tensor<3x3x2x4xf32>, tensor<4xf32>) -> tensor<1x3x3x4xf32>
  return %0 : tensor<1x3x3x4xf32>
}

// -----

// Depthwise conv (groups == C): the HWIO kernel [KH, KW, 1, C] is collapsed to [KH, KW, C].
// CHECK-DAG:   #[[MAP:map[0-9]*]] = affine_map<(d0, d1, d2, d3) -> (d3)>
// CHECK-DAG:   #[[MAP1:map[0-9]*]] = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>
// CHECK-LABEL: func.func @conv2d_depthwise(
// CHECK-SAME:    %[[ARG0:.*]]: tensor<1x4x4x3xf32>, %[[ARG1:.*]]: tensor<3x3x1x3xf32>, %[[ARG2:.*]]: tensor<3xf32>) -> tensor<1x4x4x3xf32> {
// CHECK-NEXT:    %[[V0:.*]] = tensor.empty() : tensor<1x4x4x3xf32>
// CHECK-NEXT:    %[[V1:.*]] = linalg.generic {indexing_maps = [#[[MAP]], #[[MAP1]]], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%[[ARG2]] : tensor<3xf32>) outs(%[[V0]] : tensor<1x4x4x3xf32>) {
// CHECK-NEXT:    ^bb0(%[[IN:.*]]: f32, %[[OUT:.*]]: f32):
// CHECK-NEXT:      linalg.yield %[[IN]] : f32
// CHECK-NEXT:    } -> tensor<1x4x4x3xf32>
// CHECK-NEXT:    %[[CST:.*]] = arith.constant 0.000000e+00 : f32
// CHECK-NEXT:    %[[PADDED:.*]] = tensor.pad %[[ARG0]] low[0, 1, 1, 0] high[0, 1, 1, 0] {
// CHECK-NEXT:    ^bb0(%[[ARG3:.*]]: index, %[[ARG4:.*]]: index, %[[ARG5:.*]]: index, %[[ARG6:.*]]: index):
// CHECK-NEXT:      tensor.yield %[[CST]] : f32
// CHECK-NEXT:    } : tensor<1x4x4x3xf32> to tensor<1x6x6x3xf32>
// CHECK-NEXT:    %[[COLLAPSED:.*]] = tensor.collapse_shape %[[ARG1]] {{\[\[}}0], [1], [2, 3]] : tensor<3x3x1x3xf32> into tensor<3x3x3xf32>
// CHECK-NEXT:    %[[V2:.*]] = linalg.depthwise_conv_2d_nhwc_hwc {dilations = dense<1> : tensor<2xi64>, strides = dense<1> : tensor<2xi64>} ins(%[[PADDED]], %[[COLLAPSED]] : tensor<1x6x6x3xf32>, tensor<3x3x3xf32>) outs(%[[V1]] : tensor<1x4x4x3xf32>) -> tensor<1x4x4x3xf32>
// CHECK-NEXT:    return %[[V2]] : tensor<1x4x4x3xf32>
func.func @conv2d_depthwise(%x: tensor<1x4x4x3xf32>, %w: tensor<3x3x1x3xf32>, %b: tensor<3xf32>) -> tensor<1x4x4x3xf32> {
  %0 = "tinytrain.conv2d"(%x, %w, %b) {strides = array<i64: 1, 1>, padding = array<i64: 1, 1>, groups = 3 : i64} : (tensor<1x4x4x3xf32>, tensor<3x3x1x3xf32>, tensor<3xf32>) -> tensor<1x4x4x3xf32>
  return %0 : tensor<1x4x4x3xf32>
}

// -----

// No padding, but rows the conv never reads ((2 - 1) * 2 + 3 = 5 of 6) are cropped away:
// IREE 3.13 miscompiles a conv whose input has unread rows.
// CHECK-DAG:   #[[MAP:map[0-9]*]] = affine_map<(d0, d1, d2, d3) -> (d3)>
// CHECK-DAG:   #[[MAP1:map[0-9]*]] = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>
// CHECK-LABEL: func.func @conv2d_crop(
// CHECK-SAME:    %[[ARG0:.*]]: tensor<1x6x6x1xf32>, %[[ARG1:.*]]: tensor<3x3x1x2xf32>, %[[ARG2:.*]]: tensor<2xf32>) -> tensor<1x2x2x2xf32> {
// CHECK-NEXT:    %[[V0:.*]] = tensor.empty() : tensor<1x2x2x2xf32>
// CHECK-NEXT:    %[[V1:.*]] = linalg.generic {indexing_maps = [#[[MAP]], #[[MAP1]]], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%[[ARG2]] : tensor<2xf32>) outs(%[[V0]] : tensor<1x2x2x2xf32>) {
// CHECK-NEXT:    ^bb0(%[[IN:.*]]: f32, %[[OUT:.*]]: f32):
// CHECK-NEXT:      linalg.yield %[[IN]] : f32
// CHECK-NEXT:    } -> tensor<1x2x2x2xf32>
// CHECK-NEXT:    %[[EXTRACTED_SLICE:.*]] = tensor.extract_slice %[[ARG0]][0, 0, 0, 0] [1, 5, 5, 1] [1, 1, 1, 1] : tensor<1x6x6x1xf32> to tensor<1x5x5x1xf32>
// CHECK-NEXT:    %[[V2:.*]] = linalg.conv_2d_nhwc_hwcf {dilations = dense<1> : tensor<2xi64>, strides = dense<2> : tensor<2xi64>} ins(%[[EXTRACTED_SLICE]], %[[ARG1]] : tensor<1x5x5x1xf32>, tensor<3x3x1x2xf32>) outs(%[[V1]] : tensor<1x2x2x2xf32>) -> tensor<1x2x2x2xf32>
// CHECK-NEXT:    return %[[V2]] : tensor<1x2x2x2xf32>
func.func @conv2d_crop(%x: tensor<1x6x6x1xf32>, %w: tensor<3x3x1x2xf32>, %b: tensor<2xf32>) -> tensor<1x2x2x2xf32> {
  %0 = "tinytrain.conv2d"(%x, %w, %b) {strides = array<i64: 2, 2>, padding = array<i64: 0, 0>, groups = 1 : i64} : (tensor<1x6x6x1xf32>, tensor<3x3x1x2xf32>, tensor<2xf32>) -> tensor<1x2x2x2xf32>
  return %0 : tensor<1x2x2x2xf32>
}

// -----

// Dense 1x1 stride-1 weight gradient: no window to gather, one contraction over (N, OH, OW).
// CHECK-DAG:   #[[MAP:map[0-9]*]] = affine_map<(d0, d1, d2, d3, d4, d5, d6) -> (d4, d0 + d5, d1 + d6, d2)>
// CHECK-DAG:   #[[MAP1:map[0-9]*]] = affine_map<(d0, d1, d2, d3, d4, d5, d6) -> (d4, d5, d6, d3)>
// CHECK-DAG:   #[[MAP2:map[0-9]*]] = affine_map<(d0, d1, d2, d3, d4, d5, d6) -> (d0, d1, d2, d3)>
// CHECK-LABEL: func.func @conv2d_grad_weight_pointwise(
// CHECK-SAME:    %[[ARG0:.*]]: tensor<1x3x3x2xf32>, %[[ARG1:.*]]: tensor<1x3x3x4xf32>) -> tensor<1x1x2x4xf32> {
// CHECK-NEXT:    %[[CST:.*]] = arith.constant 0.000000e+00 : f32
// CHECK-NEXT:    %[[V0:.*]] = tensor.empty() : tensor<1x1x2x4xf32>
// CHECK-NEXT:    %[[V1:.*]] = linalg.fill ins(%[[CST]] : f32) outs(%[[V0]] : tensor<1x1x2x4xf32>) -> tensor<1x1x2x4xf32>
// CHECK-NEXT:    %[[V2:.*]] = linalg.generic {indexing_maps = [#[[MAP]], #[[MAP1]], #[[MAP2]]], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction", "reduction", "reduction"]} ins(%[[ARG0]], %[[ARG1]] : tensor<1x3x3x2xf32>, tensor<1x3x3x4xf32>) outs(%[[V1]] : tensor<1x1x2x4xf32>) {
// CHECK-NEXT:    ^bb0(%[[IN:.*]]: f32, %[[IN_0:.*]]: f32, %[[OUT:.*]]: f32):
// CHECK-NEXT:      %[[V3:.*]] = arith.mulf %[[IN]], %[[IN_0]] : f32
// CHECK-NEXT:      %[[V4:.*]] = arith.addf %[[OUT]], %[[V3]] : f32
// CHECK-NEXT:      linalg.yield %[[V4]] : f32
// CHECK-NEXT:    } -> tensor<1x1x2x4xf32>
// CHECK-NEXT:    return %[[V2]] : tensor<1x1x2x4xf32>
func.func @conv2d_grad_weight_pointwise(%x: tensor<1x3x3x2xf32>, %dy: tensor<1x3x3x4xf32>) -> tensor<1x1x2x4xf32> {
  %0 = "tinytrain.conv2d_grad_weight"(%x, %dy) {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, groups = 1 : i64} : (tensor<1x3x3x2xf32>, tensor<1x3x3x4xf32>) -> tensor<1x1x2x4xf32>
  return %0 : tensor<1x1x2x4xf32>
}


// -----

// Linear: bias-seeded accumulator, y[n, o] += x[n, i] * W[o, i].
// CHECK-DAG:   #[[MAP:map[0-9]*]] = affine_map<(d0, d1) -> (d1)>
// CHECK-DAG:   #[[MAP1:map[0-9]*]] = affine_map<(d0, d1) -> (d0, d1)>
// CHECK-DAG:   #[[MAP2:map[0-9]*]] = affine_map<(d0, d1, d2) -> (d0, d2)>
// CHECK-DAG:   #[[MAP3:map[0-9]*]] = affine_map<(d0, d1, d2) -> (d1, d2)>
// CHECK-DAG:   #[[MAP4:map[0-9]*]] = affine_map<(d0, d1, d2) -> (d0, d1)>
// CHECK-LABEL: func.func @linear(
// CHECK-SAME:    %[[ARG0:.*]]: tensor<2x4xf32>, %[[ARG1:.*]]: tensor<3x4xf32>, %[[ARG2:.*]]: tensor<3xf32>) -> tensor<2x3xf32> {
// CHECK-NEXT:    %[[V0:.*]] = tensor.empty() : tensor<2x3xf32>
// CHECK-NEXT:    %[[V1:.*]] = linalg.generic {indexing_maps = [#[[MAP]], #[[MAP1]]], iterator_types = ["parallel", "parallel"]} ins(%[[ARG2]] : tensor<3xf32>) outs(%[[V0]] : tensor<2x3xf32>) {
// CHECK-NEXT:    ^bb0(%[[IN:.*]]: f32, %[[OUT:.*]]: f32):
// CHECK-NEXT:      linalg.yield %[[IN]] : f32
// CHECK-NEXT:    } -> tensor<2x3xf32>
// CHECK-NEXT:    %[[V2:.*]] = linalg.generic {indexing_maps = [#[[MAP2]], #[[MAP3]], #[[MAP4]]], iterator_types = ["parallel", "parallel", "reduction"]} ins(%[[ARG0]], %[[ARG1]] : tensor<2x4xf32>, tensor<3x4xf32>) outs(%[[V1]] : tensor<2x3xf32>) {
// CHECK-NEXT:    ^bb0(%[[IN]]: f32, %[[IN_0:.*]]: f32, %[[OUT]]: f32):
// CHECK-NEXT:      %[[V3:.*]] = arith.mulf %[[IN]], %[[IN_0]] : f32
// CHECK-NEXT:      %[[V4:.*]] = arith.addf %[[OUT]], %[[V3]] : f32
// CHECK-NEXT:      linalg.yield %[[V4]] : f32
// CHECK-NEXT:    } -> tensor<2x3xf32>
// CHECK-NEXT:    return %[[V2]] : tensor<2x3xf32>
func.func @linear(%x: tensor<2x4xf32>, %w: tensor<3x4xf32>, %b: tensor<3xf32>) -> tensor<2x3xf32> {
  %0 = "tinytrain.linear"(%x, %w, %b) : (tensor<2x4xf32>, tensor<3x4xf32>, tensor<3xf32>) -> tensor<2x3xf32>
  return %0 : tensor<2x3xf32>
}

// -----

// dx[n, i] = sum_o dy[n, o] * W[o, i].
// CHECK-DAG:   #[[MAP:map[0-9]*]] = affine_map<(d0, d1, d2) -> (d0, d2)>
// CHECK-DAG:   #[[MAP1:map[0-9]*]] = affine_map<(d0, d1, d2) -> (d2, d1)>
// CHECK-DAG:   #[[MAP2:map[0-9]*]] = affine_map<(d0, d1, d2) -> (d0, d1)>
// CHECK-LABEL: func.func @linear_grad_input(
// CHECK-SAME:    %[[ARG0:.*]]: tensor<2x3xf32>, %[[ARG1:.*]]: tensor<3x4xf32>) -> tensor<2x4xf32> {
// CHECK-NEXT:    %[[CST:.*]] = arith.constant 0.000000e+00 : f32
// CHECK-NEXT:    %[[V0:.*]] = tensor.empty() : tensor<2x4xf32>
// CHECK-NEXT:    %[[V1:.*]] = linalg.fill ins(%[[CST]] : f32) outs(%[[V0]] : tensor<2x4xf32>) -> tensor<2x4xf32>
// CHECK-NEXT:    %[[V2:.*]] = linalg.generic {indexing_maps = [#[[MAP]], #[[MAP1]], #[[MAP2]]], iterator_types = ["parallel", "parallel", "reduction"]} ins(%[[ARG0]], %[[ARG1]] : tensor<2x3xf32>, tensor<3x4xf32>) outs(%[[V1]] : tensor<2x4xf32>) {
// CHECK-NEXT:    ^bb0(%[[IN:.*]]: f32, %[[IN_0:.*]]: f32, %[[OUT:.*]]: f32):
// CHECK-NEXT:      %[[V3:.*]] = arith.mulf %[[IN]], %[[IN_0]] : f32
// CHECK-NEXT:      %[[V4:.*]] = arith.addf %[[OUT]], %[[V3]] : f32
// CHECK-NEXT:      linalg.yield %[[V4]] : f32
// CHECK-NEXT:    } -> tensor<2x4xf32>
// CHECK-NEXT:    return %[[V2]] : tensor<2x4xf32>
func.func @linear_grad_input(%dy: tensor<2x3xf32>, %w: tensor<3x4xf32>) -> tensor<2x4xf32> {
  %0 = "tinytrain.linear_grad_input"(%dy, %w) : (tensor<2x3xf32>, tensor<3x4xf32>) -> tensor<2x4xf32>
  return %0 : tensor<2x4xf32>
}

// -----

// dW[o, i] = sum_n x[n, i] * dy[n, o].
// CHECK-DAG:   #[[MAP:map[0-9]*]] = affine_map<(d0, d1, d2) -> (d2, d1)>
// CHECK-DAG:   #[[MAP1:map[0-9]*]] = affine_map<(d0, d1, d2) -> (d2, d0)>
// CHECK-DAG:   #[[MAP2:map[0-9]*]] = affine_map<(d0, d1, d2) -> (d0, d1)>
// CHECK-LABEL: func.func @linear_grad_weight(
// CHECK-SAME:    %[[ARG0:.*]]: tensor<2x4xf32>, %[[ARG1:.*]]: tensor<2x3xf32>) -> tensor<3x4xf32> {
// CHECK-NEXT:    %[[CST:.*]] = arith.constant 0.000000e+00 : f32
// CHECK-NEXT:    %[[V0:.*]] = tensor.empty() : tensor<3x4xf32>
// CHECK-NEXT:    %[[V1:.*]] = linalg.fill ins(%[[CST]] : f32) outs(%[[V0]] : tensor<3x4xf32>) -> tensor<3x4xf32>
// CHECK-NEXT:    %[[V2:.*]] = linalg.generic {indexing_maps = [#[[MAP]], #[[MAP1]], #[[MAP2]]], iterator_types = ["parallel", "parallel", "reduction"]} ins(%[[ARG0]], %[[ARG1]] : tensor<2x4xf32>, tensor<2x3xf32>) outs(%[[V1]] : tensor<3x4xf32>) {
// CHECK-NEXT:    ^bb0(%[[IN:.*]]: f32, %[[IN_0:.*]]: f32, %[[OUT:.*]]: f32):
// CHECK-NEXT:      %[[V3:.*]] = arith.mulf %[[IN]], %[[IN_0]] : f32
// CHECK-NEXT:      %[[V4:.*]] = arith.addf %[[OUT]], %[[V3]] : f32
// CHECK-NEXT:      linalg.yield %[[V4]] : f32
// CHECK-NEXT:    } -> tensor<3x4xf32>
// CHECK-NEXT:    return %[[V2]] : tensor<3x4xf32>
func.func @linear_grad_weight(%x: tensor<2x4xf32>, %dy: tensor<2x3xf32>) -> tensor<3x4xf32> {
  %0 = "tinytrain.linear_grad_weight"(%x, %dy) : (tensor<2x4xf32>, tensor<2x3xf32>) -> tensor<3x4xf32>
  return %0 : tensor<3x4xf32>
}

// -----

// Elementwise ops are one linalg.generic with identity maps.
// CHECK-DAG:   #[[MAP:map[0-9]*]] = affine_map<(d0, d1) -> (d0, d1)>
// CHECK-LABEL: func.func @add(
// CHECK-SAME:    %[[ARG0:.*]]: tensor<2x3xf32>, %[[ARG1:.*]]: tensor<2x3xf32>) -> tensor<2x3xf32> {
// CHECK-NEXT:    %[[V0:.*]] = tensor.empty() : tensor<2x3xf32>
// CHECK-NEXT:    %[[V1:.*]] = linalg.generic {indexing_maps = [#[[MAP]], #[[MAP]], #[[MAP]]], iterator_types = ["parallel", "parallel"]} ins(%[[ARG0]], %[[ARG1]] : tensor<2x3xf32>, tensor<2x3xf32>) outs(%[[V0]] : tensor<2x3xf32>) {
// CHECK-NEXT:    ^bb0(%[[IN:.*]]: f32, %[[IN_0:.*]]: f32, %[[OUT:.*]]: f32):
// CHECK-NEXT:      %[[V2:.*]] = arith.addf %[[IN]], %[[IN_0]] : f32
// CHECK-NEXT:      linalg.yield %[[V2]] : f32
// CHECK-NEXT:    } -> tensor<2x3xf32>
// CHECK-NEXT:    return %[[V1]] : tensor<2x3xf32>
func.func @add(%a: tensor<2x3xf32>, %b: tensor<2x3xf32>) -> tensor<2x3xf32> {
  %0 = "tinytrain.add"(%a, %b) : (tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<2x3xf32>
  return %0 : tensor<2x3xf32>
}

// -----

// Gradients pass dy where the forward output is strictly inside the active range.
// CHECK-DAG:   #[[MAP:map[0-9]*]] = affine_map<(d0, d1) -> (d0, d1)>
// CHECK-LABEL: func.func @relu_grad(
// CHECK-SAME:    %[[ARG0:.*]]: tensor<2x3xf32>, %[[ARG1:.*]]: tensor<2x3xf32>) -> tensor<2x3xf32> {
// CHECK-NEXT:    %[[CST:.*]] = arith.constant 0.000000e+00 : f32
// CHECK-NEXT:    %[[V0:.*]] = tensor.empty() : tensor<2x3xf32>
// CHECK-NEXT:    %[[V1:.*]] = linalg.generic {indexing_maps = [#[[MAP]], #[[MAP]], #[[MAP]]], iterator_types = ["parallel", "parallel"]} ins(%[[ARG0]], %[[ARG1]] : tensor<2x3xf32>, tensor<2x3xf32>) outs(%[[V0]] : tensor<2x3xf32>) {
// CHECK-NEXT:    ^bb0(%[[IN:.*]]: f32, %[[IN_0:.*]]: f32, %[[OUT:.*]]: f32):
// CHECK-NEXT:      %[[V2:.*]] = arith.cmpf ogt, %[[IN]], %[[CST]] : f32
// CHECK-NEXT:      %[[V3:.*]] = arith.select %[[V2]], %[[IN_0]], %[[CST]] : f32
// CHECK-NEXT:      linalg.yield %[[V3]] : f32
// CHECK-NEXT:    } -> tensor<2x3xf32>
// CHECK-NEXT:    return %[[V1]] : tensor<2x3xf32>
func.func @relu_grad(%y: tensor<2x3xf32>, %dy: tensor<2x3xf32>) -> tensor<2x3xf32> {
  %0 = "tinytrain.relu_grad"(%y, %dy) : (tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<2x3xf32>
  return %0 : tensor<2x3xf32>
}

// -----

// CHECK-DAG:   #[[MAP:map[0-9]*]] = affine_map<(d0, d1) -> (d0, d1)>
// CHECK-LABEL: func.func @relu6_grad(
// CHECK-SAME:    %[[ARG0:.*]]: tensor<2x3xf32>, %[[ARG1:.*]]: tensor<2x3xf32>) -> tensor<2x3xf32> {
// CHECK-NEXT:    %[[CST:.*]] = arith.constant 0.000000e+00 : f32
// CHECK-NEXT:    %[[CST_0:.*]] = arith.constant 6.000000e+00 : f32
// CHECK-NEXT:    %[[V0:.*]] = tensor.empty() : tensor<2x3xf32>
// CHECK-NEXT:    %[[V1:.*]] = linalg.generic {indexing_maps = [#[[MAP]], #[[MAP]], #[[MAP]]], iterator_types = ["parallel", "parallel"]} ins(%[[ARG0]], %[[ARG1]] : tensor<2x3xf32>, tensor<2x3xf32>) outs(%[[V0]] : tensor<2x3xf32>) {
// CHECK-NEXT:    ^bb0(%[[IN:.*]]: f32, %[[IN_1:.*]]: f32, %[[OUT:.*]]: f32):
// CHECK-NEXT:      %[[V2:.*]] = arith.cmpf ogt, %[[IN]], %[[CST]] : f32
// CHECK-NEXT:      %[[V3:.*]] = arith.cmpf olt, %[[IN]], %[[CST_0]] : f32
// CHECK-NEXT:      %[[V4:.*]] = arith.andi %[[V2]], %[[V3]] : i1
// CHECK-NEXT:      %[[V5:.*]] = arith.select %[[V4]], %[[IN_1]], %[[CST]] : f32
// CHECK-NEXT:      linalg.yield %[[V5]] : f32
// CHECK-NEXT:    } -> tensor<2x3xf32>
// CHECK-NEXT:    return %[[V1]] : tensor<2x3xf32>
func.func @relu6_grad(%y: tensor<2x3xf32>, %dy: tensor<2x3xf32>) -> tensor<2x3xf32> {
  %0 = "tinytrain.relu6_grad"(%y, %dy) : (tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<2x3xf32>
  return %0 : tensor<2x3xf32>
}

// -----

// Sum over H, W, then divide by H * W = 6.
// CHECK-DAG:   #[[MAP:map[0-9]*]] = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>
// CHECK-DAG:   #[[MAP1:map[0-9]*]] = affine_map<(d0, d1, d2, d3) -> (d0, d3)>
// CHECK-DAG:   #[[MAP2:map[0-9]*]] = affine_map<(d0, d1) -> (d0, d1)>
// CHECK-LABEL: func.func @global_avg_pool(
// CHECK-SAME:    %[[ARG0:.*]]: tensor<1x2x3x4xf32>) -> tensor<1x4xf32> {
// CHECK-NEXT:    %[[CST:.*]] = arith.constant 0.000000e+00 : f32
// CHECK-NEXT:    %[[V0:.*]] = tensor.empty() : tensor<1x4xf32>
// CHECK-NEXT:    %[[V1:.*]] = linalg.fill ins(%[[CST]] : f32) outs(%[[V0]] : tensor<1x4xf32>) -> tensor<1x4xf32>
// CHECK-NEXT:    %[[V2:.*]] = linalg.generic {indexing_maps = [#[[MAP]], #[[MAP1]]], iterator_types = ["parallel", "reduction", "reduction", "parallel"]} ins(%[[ARG0]] : tensor<1x2x3x4xf32>) outs(%[[V1]] : tensor<1x4xf32>) {
// CHECK-NEXT:    ^bb0(%[[IN:.*]]: f32, %[[OUT:.*]]: f32):
// CHECK-NEXT:      %[[V5:.*]] = arith.addf %[[OUT]], %[[IN]] : f32
// CHECK-NEXT:      linalg.yield %[[V5]] : f32
// CHECK-NEXT:    } -> tensor<1x4xf32>
// CHECK-NEXT:    %[[CST_0:.*]] = arith.constant 6.000000e+00 : f32
// CHECK-NEXT:    %[[V3:.*]] = tensor.empty() : tensor<1x4xf32>
// CHECK-NEXT:    %[[V4:.*]] = linalg.generic {indexing_maps = [#[[MAP2]], #[[MAP2]]], iterator_types = ["parallel", "parallel"]} ins(%[[V2]] : tensor<1x4xf32>) outs(%[[V3]] : tensor<1x4xf32>) {
// CHECK-NEXT:    ^bb0(%[[IN]]: f32, %[[OUT]]: f32):
// CHECK-NEXT:      %[[V5]] = arith.divf %[[IN]], %[[CST_0]] : f32
// CHECK-NEXT:      linalg.yield %[[V5]] : f32
// CHECK-NEXT:    } -> tensor<1x4xf32>
// CHECK-NEXT:    return %[[V4]] : tensor<1x4xf32>
func.func @global_avg_pool(%x: tensor<1x2x3x4xf32>) -> tensor<1x4xf32> {
  %0 = "tinytrain.global_avg_pool"(%x) : (tensor<1x2x3x4xf32>) -> tensor<1x4xf32>
  return %0 : tensor<1x4xf32>
}

// -----

// dy / (H * W) broadcast over H, W.
// CHECK-DAG:   #[[MAP:map[0-9]*]] = affine_map<(d0, d1, d2, d3) -> (d0, d3)>
// CHECK-DAG:   #[[MAP1:map[0-9]*]] = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>
// CHECK-LABEL: func.func @global_avg_pool_grad(
// CHECK-SAME:    %[[ARG0:.*]]: tensor<1x4xf32>) -> tensor<1x2x3x4xf32> {
// CHECK-NEXT:    %[[CST:.*]] = arith.constant 6.000000e+00 : f32
// CHECK-NEXT:    %[[V0:.*]] = tensor.empty() : tensor<1x2x3x4xf32>
// CHECK-NEXT:    %[[V1:.*]] = linalg.generic {indexing_maps = [#[[MAP]], #[[MAP1]]], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%[[ARG0]] : tensor<1x4xf32>) outs(%[[V0]] : tensor<1x2x3x4xf32>) {
// CHECK-NEXT:    ^bb0(%[[IN:.*]]: f32, %[[OUT:.*]]: f32):
// CHECK-NEXT:      %[[V2:.*]] = arith.divf %[[IN]], %[[CST]] : f32
// CHECK-NEXT:      linalg.yield %[[V2]] : f32
// CHECK-NEXT:    } -> tensor<1x2x3x4xf32>
// CHECK-NEXT:    return %[[V1]] : tensor<1x2x3x4xf32>
func.func @global_avg_pool_grad(%dy: tensor<1x4xf32>) -> tensor<1x2x3x4xf32> {
  %0 = "tinytrain.global_avg_pool_grad"(%dy) : (tensor<1x4xf32>) -> tensor<1x2x3x4xf32>
  return %0 : tensor<1x2x3x4xf32>
}

// -----

// Row-major reshape: collapse to 1-D, expand to the result shape.
// CHECK-LABEL: func.func @reshape(
// CHECK-SAME:    %[[ARG0:.*]]: tensor<1x2x2x3xf32>) -> tensor<2x6xf32> {
// CHECK-NEXT:    %[[COLLAPSED:.*]] = tensor.collapse_shape %[[ARG0]] {{\[\[}}0, 1, 2, 3]] : tensor<1x2x2x3xf32> into tensor<12xf32>
// CHECK-NEXT:    %[[EXPANDED:.*]] = tensor.expand_shape %[[COLLAPSED]] {{\[\[}}0, 1]] output_shape [2, 6] : tensor<12xf32> into tensor<2x6xf32>
// CHECK-NEXT:    return %[[EXPANDED]] : tensor<2x6xf32>
func.func @reshape(%x: tensor<1x2x2x3xf32>) -> tensor<2x6xf32> {
  %0 = "tinytrain.reshape"(%x) : (tensor<1x2x2x3xf32>) -> tensor<2x6xf32>
  return %0 : tensor<2x6xf32>
}

// -----

// CHECK-LABEL: func.func @transpose(
// CHECK-SAME:    %[[ARG0:.*]]: tensor<1x2x3x4xf32>) -> tensor<1x4x2x3xf32> {
// CHECK-NEXT:    %[[V0:.*]] = tensor.empty() : tensor<1x4x2x3xf32>
// CHECK-NEXT:    %[[TRANSPOSED:.*]] = linalg.transpose ins(%[[ARG0]] : tensor<1x2x3x4xf32>) outs(%[[V0]] : tensor<1x4x2x3xf32>) permutation = [0, 3, 1, 2] 
// CHECK-NEXT:    return %[[TRANSPOSED]] : tensor<1x4x2x3xf32>
func.func @transpose(%x: tensor<1x2x3x4xf32>) -> tensor<1x4x2x3xf32> {
  %0 = "tinytrain.transpose"(%x) {permutation = array<i64: 0, 3, 1, 2>} : (tensor<1x2x3x4xf32>) -> tensor<1x4x2x3xf32>
  return %0 : tensor<1x4x2x3xf32>
}

// -----

// Loss: row max m, s = sum exp(z - m) (max-shifted log-sum-exp), picked logit z[label],
// mean over the batch of m + log s - z[label].
// CHECK-DAG:   #[[MAP:map[0-9]*]] = affine_map<(d0, d1) -> (d0, d1)>
// CHECK-DAG:   #[[MAP1:map[0-9]*]] = affine_map<(d0, d1) -> (d0)>
// CHECK-DAG:   #[[MAP2:map[0-9]*]] = affine_map<(d0) -> (d0)>
// CHECK-DAG:   #[[MAP3:map[0-9]*]] = affine_map<(d0) -> ()>
// CHECK-DAG:   #[[MAP4:map[0-9]*]] = affine_map<() -> ()>
// CHECK-LABEL: func.func @softmax_cross_entropy(
// CHECK-SAME:    %[[ARG0:.*]]: tensor<2x3xf32>, %[[ARG1:.*]]: tensor<2xi32>) -> tensor<f32> {
// CHECK-NEXT:    %[[CST:.*]] = arith.constant 0xFF800000 : f32
// CHECK-NEXT:    %[[V0:.*]] = tensor.empty() : tensor<2xf32>
// CHECK-NEXT:    %[[V1:.*]] = linalg.fill ins(%[[CST]] : f32) outs(%[[V0]] : tensor<2xf32>) -> tensor<2xf32>
// CHECK-NEXT:    %[[V2:.*]] = linalg.generic {indexing_maps = [#[[MAP]], #[[MAP1]]], iterator_types = ["parallel", "reduction"]} ins(%[[ARG0]] : tensor<2x3xf32>) outs(%[[V1]] : tensor<2xf32>) {
// CHECK-NEXT:    ^bb0(%[[IN:.*]]: f32, %[[OUT:.*]]: f32):
// CHECK-NEXT:      %[[V14:.*]] = arith.maximumf %[[OUT]], %[[IN]] : f32
// CHECK-NEXT:      linalg.yield %[[V14]] : f32
// CHECK-NEXT:    } -> tensor<2xf32>
// CHECK-NEXT:    %[[CST_0:.*]] = arith.constant 0.000000e+00 : f32
// CHECK-NEXT:    %[[V3:.*]] = tensor.empty() : tensor<2xf32>
// CHECK-NEXT:    %[[V4:.*]] = linalg.fill ins(%[[CST_0]] : f32) outs(%[[V3]] : tensor<2xf32>) -> tensor<2xf32>
// CHECK-NEXT:    %[[V5:.*]] = linalg.generic {indexing_maps = [#[[MAP]], #[[MAP1]], #[[MAP1]]], iterator_types = ["parallel", "reduction"]} ins(%[[ARG0]], %[[V2]] : tensor<2x3xf32>, tensor<2xf32>) outs(%[[V4]] : tensor<2xf32>) {
// CHECK-NEXT:    ^bb0(%[[IN]]: f32, %[[IN_5:.*]]: f32, %[[OUT]]: f32):
// CHECK-NEXT:      %[[V14]] = arith.subf %[[IN]], %[[IN_5]] : f32
// CHECK-NEXT:      %[[V15:.*]] = math.exp %[[V14]] : f32
// CHECK-NEXT:      %[[V16:.*]] = arith.addf %[[OUT]], %[[V15]] : f32
// CHECK-NEXT:      linalg.yield %[[V16]] : f32
// CHECK-NEXT:    } -> tensor<2xf32>
// CHECK-NEXT:    %[[CST_1:.*]] = arith.constant 0.000000e+00 : f32
// CHECK-NEXT:    %[[CST_2:.*]] = arith.constant 0.000000e+00 : f32
// CHECK-NEXT:    %[[V6:.*]] = tensor.empty() : tensor<2xf32>
// CHECK-NEXT:    %[[V7:.*]] = linalg.fill ins(%[[CST_2]] : f32) outs(%[[V6]] : tensor<2xf32>) -> tensor<2xf32>
// CHECK-NEXT:    %[[V8:.*]] = linalg.generic {indexing_maps = [#[[MAP]], #[[MAP1]], #[[MAP1]]], iterator_types = ["parallel", "reduction"]} ins(%[[ARG0]], %[[ARG1]] : tensor<2x3xf32>, tensor<2xi32>) outs(%[[V7]] : tensor<2xf32>) {
// CHECK-NEXT:    ^bb0(%[[IN]]: f32, %[[IN_5]]: i32, %[[OUT]]: f32):
// CHECK-NEXT:      %[[V14]] = linalg.index 1 : index
// CHECK-NEXT:      %[[V15]] = arith.index_cast %[[IN_5]] : i32 to index
// CHECK-NEXT:      %[[V16]] = arith.cmpi eq, %[[V14]], %[[V15]] : index
// CHECK-NEXT:      %[[V17:.*]] = arith.select %[[V16]], %[[IN]], %[[CST_1]] : f32
// CHECK-NEXT:      %[[V18:.*]] = arith.addf %[[OUT]], %[[V17]] : f32
// CHECK-NEXT:      linalg.yield %[[V18]] : f32
// CHECK-NEXT:    } -> tensor<2xf32>
// CHECK-NEXT:    %[[CST_3:.*]] = arith.constant 0.000000e+00 : f32
// CHECK-NEXT:    %[[V9:.*]] = tensor.empty() : tensor<f32>
// CHECK-NEXT:    %[[V10:.*]] = linalg.fill ins(%[[CST_3]] : f32) outs(%[[V9]] : tensor<f32>) -> tensor<f32>
// CHECK-NEXT:    %[[V11:.*]] = linalg.generic {indexing_maps = [#[[MAP2]], #[[MAP2]], #[[MAP2]], #[[MAP3]]], iterator_types = ["reduction"]} ins(%[[V2]], %[[V5]], %[[V8]] : tensor<2xf32>, tensor<2xf32>, tensor<2xf32>) outs(%[[V10]] : tensor<f32>) {
// CHECK-NEXT:    ^bb0(%[[IN]]: f32, %[[IN_5]]: f32, %[[IN_6:.*]]: f32, %[[OUT]]: f32):
// CHECK-NEXT:      %[[V14]] = math.log %[[IN_5]] : f32
// CHECK-NEXT:      %[[V15]] = arith.addf %[[IN]], %[[V14]] : f32
// CHECK-NEXT:      %[[V16]] = arith.subf %[[V15]], %[[IN_6]] : f32
// CHECK-NEXT:      %[[V17]] = arith.addf %[[OUT]], %[[V16]] : f32
// CHECK-NEXT:      linalg.yield %[[V17]] : f32
// CHECK-NEXT:    } -> tensor<f32>
// CHECK-NEXT:    %[[CST_4:.*]] = arith.constant 2.000000e+00 : f32
// CHECK-NEXT:    %[[V12:.*]] = tensor.empty() : tensor<f32>
// CHECK-NEXT:    %[[V13:.*]] = linalg.generic {indexing_maps = [#[[MAP4]], #[[MAP4]]], iterator_types = []} ins(%[[V11]] : tensor<f32>) outs(%[[V12]] : tensor<f32>) {
// CHECK-NEXT:    ^bb0(%[[IN]]: f32, %[[OUT]]: f32):
// CHECK-NEXT:      %[[V14]] = arith.divf %[[IN]], %[[CST_4]] : f32
// CHECK-NEXT:      linalg.yield %[[V14]] : f32
// CHECK-NEXT:    } -> tensor<f32>
// CHECK-NEXT:    return %[[V13]] : tensor<f32>
func.func @softmax_cross_entropy(%z: tensor<2x3xf32>, %labels: tensor<2xi32>) -> tensor<f32> {
  %0 = "tinytrain.softmax_cross_entropy"(%z, %labels) : (tensor<2x3xf32>, tensor<2xi32>) -> tensor<f32>
  return %0 : tensor<f32>
}

// -----

// (softmax(z) - onehot(label)) / N with the same max shift.
// CHECK-DAG:   #[[MAP:map[0-9]*]] = affine_map<(d0, d1) -> (d0, d1)>
// CHECK-DAG:   #[[MAP1:map[0-9]*]] = affine_map<(d0, d1) -> (d0)>
// CHECK-LABEL: func.func @softmax_cross_entropy_grad(
// CHECK-SAME:    %[[ARG0:.*]]: tensor<2x3xf32>, %[[ARG1:.*]]: tensor<2xi32>) -> tensor<2x3xf32> {
// CHECK-NEXT:    %[[CST:.*]] = arith.constant 0xFF800000 : f32
// CHECK-NEXT:    %[[V0:.*]] = tensor.empty() : tensor<2xf32>
// CHECK-NEXT:    %[[V1:.*]] = linalg.fill ins(%[[CST]] : f32) outs(%[[V0]] : tensor<2xf32>) -> tensor<2xf32>
// CHECK-NEXT:    %[[V2:.*]] = linalg.generic {indexing_maps = [#[[MAP]], #[[MAP1]]], iterator_types = ["parallel", "reduction"]} ins(%[[ARG0]] : tensor<2x3xf32>) outs(%[[V1]] : tensor<2xf32>) {
// CHECK-NEXT:    ^bb0(%[[IN:.*]]: f32, %[[OUT:.*]]: f32):
// CHECK-NEXT:      %[[V8:.*]] = arith.maximumf %[[OUT]], %[[IN]] : f32
// CHECK-NEXT:      linalg.yield %[[V8]] : f32
// CHECK-NEXT:    } -> tensor<2xf32>
// CHECK-NEXT:    %[[CST_0:.*]] = arith.constant 0.000000e+00 : f32
// CHECK-NEXT:    %[[V3:.*]] = tensor.empty() : tensor<2xf32>
// CHECK-NEXT:    %[[V4:.*]] = linalg.fill ins(%[[CST_0]] : f32) outs(%[[V3]] : tensor<2xf32>) -> tensor<2xf32>
// CHECK-NEXT:    %[[V5:.*]] = linalg.generic {indexing_maps = [#[[MAP]], #[[MAP1]], #[[MAP1]]], iterator_types = ["parallel", "reduction"]} ins(%[[ARG0]], %[[V2]] : tensor<2x3xf32>, tensor<2xf32>) outs(%[[V4]] : tensor<2xf32>) {
// CHECK-NEXT:    ^bb0(%[[IN]]: f32, %[[IN_4:.*]]: f32, %[[OUT]]: f32):
// CHECK-NEXT:      %[[V8]] = arith.subf %[[IN]], %[[IN_4]] : f32
// CHECK-NEXT:      %[[V9:.*]] = math.exp %[[V8]] : f32
// CHECK-NEXT:      %[[V10:.*]] = arith.addf %[[OUT]], %[[V9]] : f32
// CHECK-NEXT:      linalg.yield %[[V10]] : f32
// CHECK-NEXT:    } -> tensor<2xf32>
// CHECK-NEXT:    %[[CST_1:.*]] = arith.constant 1.000000e+00 : f32
// CHECK-NEXT:    %[[CST_2:.*]] = arith.constant 0.000000e+00 : f32
// CHECK-NEXT:    %[[CST_3:.*]] = arith.constant 2.000000e+00 : f32
// CHECK-NEXT:    %[[V6:.*]] = tensor.empty() : tensor<2x3xf32>
// CHECK-NEXT:    %[[V7:.*]] = linalg.generic {indexing_maps = [#[[MAP]], #[[MAP1]], #[[MAP1]], #[[MAP1]], #[[MAP]]], iterator_types = ["parallel", "parallel"]} ins(%[[ARG0]], %[[V2]], %[[V5]], %[[ARG1]] : tensor<2x3xf32>, tensor<2xf32>, tensor<2xf32>, tensor<2xi32>) outs(%[[V6]] : tensor<2x3xf32>) {
// CHECK-NEXT:    ^bb0(%[[IN]]: f32, %[[IN_4]]: f32, %[[IN_5:.*]]: f32, %[[IN_6:.*]]: i32, %[[OUT]]: f32):
// CHECK-NEXT:      %[[V8]] = arith.subf %[[IN]], %[[IN_4]] : f32
// CHECK-NEXT:      %[[V9]] = math.exp %[[V8]] : f32
// CHECK-NEXT:      %[[V10]] = arith.divf %[[V9]], %[[IN_5]] : f32
// CHECK-NEXT:      %[[V11:.*]] = linalg.index 1 : index
// CHECK-NEXT:      %[[V12:.*]] = arith.index_cast %[[IN_6]] : i32 to index
// CHECK-NEXT:      %[[V13:.*]] = arith.cmpi eq, %[[V11]], %[[V12]] : index
// CHECK-NEXT:      %[[V14:.*]] = arith.select %[[V13]], %[[CST_1]], %[[CST_2]] : f32
// CHECK-NEXT:      %[[V15:.*]] = arith.subf %[[V10]], %[[V14]] : f32
// CHECK-NEXT:      %[[V16:.*]] = arith.divf %[[V15]], %[[CST_3]] : f32
// CHECK-NEXT:      linalg.yield %[[V16]] : f32
// CHECK-NEXT:    } -> tensor<2x3xf32>
// CHECK-NEXT:    return %[[V7]] : tensor<2x3xf32>
func.func @softmax_cross_entropy_grad(%z: tensor<2x3xf32>, %labels: tensor<2xi32>) -> tensor<2x3xf32> {
  %0 = "tinytrain.softmax_cross_entropy_grad"(%z, %labels) : (tensor<2x3xf32>, tensor<2xi32>) -> tensor<2x3xf32>
  return %0 : tensor<2x3xf32>
}

// -----

// param - lr * grad when the loss is finite (loss - loss == 0), else param; lr = 1e-05 is the f32
// attribute itself (no text round trip).
// CHECK-DAG:   #[[MAP:map[0-9]*]] = affine_map<(d0) -> (d0)>
// CHECK-LABEL: func.func @sgd_update(
// CHECK-SAME:    %[[ARG0:.*]]: tensor<3xf32>, %[[ARG1:.*]]: tensor<3xf32>, %[[ARG2:.*]]: tensor<f32>) -> tensor<3xf32> {
// CHECK-NEXT:    %[[CST:.*]] = arith.constant 9.99999974E-6 : f32
// CHECK-NEXT:    %[[L:.*]] = tensor.extract %[[ARG2]][] : tensor<f32>
// CHECK-NEXT:    %[[D:.*]] = arith.subf %[[L]], %[[L]] : f32
// CHECK-NEXT:    %[[ZERO:.*]] = arith.constant 0.000000e+00 : f32
// CHECK-NEXT:    %[[OK:.*]] = arith.cmpf oeq, %[[D]], %[[ZERO]] : f32
// CHECK-NEXT:    %[[V0:.*]] = tensor.empty() : tensor<3xf32>
// CHECK-NEXT:    %[[V1:.*]] = linalg.generic {indexing_maps = [#[[MAP]], #[[MAP]], #[[MAP]]], iterator_types = ["parallel"]} ins(%[[ARG0]], %[[ARG1]] : tensor<3xf32>, tensor<3xf32>) outs(%[[V0]] : tensor<3xf32>) {
// CHECK-NEXT:    ^bb0(%[[IN:.*]]: f32, %[[IN_0:.*]]: f32, %[[OUT:.*]]: f32):
// CHECK-NEXT:      %[[V2:.*]] = arith.mulf %[[CST]], %[[IN_0]] : f32
// CHECK-NEXT:      %[[V3:.*]] = arith.subf %[[IN]], %[[V2]] : f32
// CHECK-NEXT:      %[[V4:.*]] = arith.select %[[OK]], %[[V3]], %[[IN]] : f32
// CHECK-NEXT:      linalg.yield %[[V4]] : f32
// CHECK-NEXT:    } -> tensor<3xf32>
// CHECK-NEXT:    return %[[V1]] : tensor<3xf32>
func.func @sgd_update(%p: tensor<3xf32>, %g: tensor<3xf32>, %l: tensor<f32>) -> tensor<3xf32> {
  %0 = "tinytrain.sgd_update"(%p, %g, %l) {lr = 1.000000e-05 : f32} : (tensor<3xf32>, tensor<3xf32>, tensor<f32>) -> tensor<3xf32>
  return %0 : tensor<3xf32>
}

// -----

// sgd_momentum (the momentum buffer's step): momentum * buffer + grad (multiply, then add, as
// PyTorch's buf.mul_(m).add_(g)) when the loss is finite, else the buffer unchanged.
// CHECK-DAG:   #[[MAP:map[0-9]*]] = affine_map<(d0) -> (d0)>
// CHECK-LABEL: func.func @sgd_momentum(
// CHECK-SAME:    %[[ARG0:.*]]: tensor<3xf32>, %[[ARG1:.*]]: tensor<3xf32>, %[[ARG2:.*]]: tensor<f32>) -> tensor<3xf32> {
// CHECK-NEXT:    %[[M:.*]] = arith.constant 0.899999976 : f32
// CHECK-NEXT:    %[[L:.*]] = tensor.extract %[[ARG2]][] : tensor<f32>
// CHECK-NEXT:    %[[D:.*]] = arith.subf %[[L]], %[[L]] : f32
// CHECK-NEXT:    %[[ZERO:.*]] = arith.constant 0.000000e+00 : f32
// CHECK-NEXT:    %[[OK:.*]] = arith.cmpf oeq, %[[D]], %[[ZERO]] : f32
// CHECK-NEXT:    %[[V0:.*]] = tensor.empty() : tensor<3xf32>
// CHECK-NEXT:    %[[V1:.*]] = linalg.generic {indexing_maps = [#[[MAP]], #[[MAP]], #[[MAP]]], iterator_types = ["parallel"]} ins(%[[ARG0]], %[[ARG1]] : tensor<3xf32>, tensor<3xf32>) outs(%[[V0]] : tensor<3xf32>) {
// CHECK-NEXT:    ^bb0(%[[IN:.*]]: f32, %[[IN_0:.*]]: f32, %[[OUT:.*]]: f32):
// CHECK-NEXT:      %[[V2:.*]] = arith.mulf %[[M]], %[[IN]] : f32
// CHECK-NEXT:      %[[V3:.*]] = arith.addf %[[V2]], %[[IN_0]] : f32
// CHECK-NEXT:      %[[V4:.*]] = arith.select %[[OK]], %[[V3]], %[[IN]] : f32
// CHECK-NEXT:      linalg.yield %[[V4]] : f32
// CHECK-NEXT:    } -> tensor<3xf32>
// CHECK-NEXT:    return %[[V1]] : tensor<3xf32>
func.func @sgd_momentum(%v: tensor<3xf32>, %g: tensor<3xf32>, %l: tensor<f32>) -> tensor<3xf32> {
  %0 = "tinytrain.sgd_momentum"(%v, %g, %l) {momentum = 9.000000e-01 : f32} : (tensor<3xf32>, tensor<3xf32>, tensor<f32>) -> tensor<3xf32>
  return %0 : tensor<3xf32>
}
