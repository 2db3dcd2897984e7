// RUN: tinytrain-opt -p to-linalg --split-input-file %s | filecheck %s --check-prefix=DIRECT
// RUN: tinytrain-opt -p 'to-linalg{convgrad=direct}' --split-input-file %s | filecheck %s --check-prefix=DIRECT
// RUN: tinytrain-opt -p 'to-linalg{convgrad=im2col}' --split-input-file %s | filecheck %s --check-prefix=IM2COL
// RUN: not tinytrain-opt -p 'to-linalg{convgrad=winograd}' %s 2>&1 | filecheck %s --check-prefix=BAD

// The conv gradient lowerings per target (to-linalg{convgrad=...}, set by compile() from the
// target): direct (default; cortex-m4/m7: no buffer beyond the result) or im2col (host .vmfb).
// Weight gradients: im2col gathers dense windows as rows, then a matmul-like contraction;
// depthwise windows one stride-1 contraction per stride phase over the batch stacked into one
// image. Dense 1x1 stride-1 weight gradients are one contraction either way
// (tinytrain-to-linalg.mlir). Input gradients (at the end): direct is one generic reading dY
// bounds-checked, im2col a named conv of the zero-dilated, padded dY with the flipped kernel
// (a 1x1 window with a long F over at least 128 rows: a transposed matmul, at the end).
// BAD: to-linalg: option convgrad='winograd' is not one of direct, im2col

// direct: one generic over (KH, KW, C, F, N, OH, OW) reading dY through its map and the input
// at oh*2 + kh - 1 (clamped, bounds-checked, 0 outside): no zero-padded copy of the input.
// DIRECT-DAG:   #[[MAP:map[0-9]*]] = affine_map<(d0, d1, d2, d3, d4, d5, d6) -> (d4, d5, d6, d3)>
// DIRECT-DAG:   #[[MAP1:map[0-9]*]] = affine_map<(d0, d1, d2, d3, d4, d5, d6) -> (d0, d1, d2, d3)>
// DIRECT-LABEL: func.func @conv2d_grad_weight(
// DIRECT-SAME:    %[[ARG0:.*]]: tensor<1x5x5x2xf32>, %[[ARG1:.*]]: tensor<1x3x3x4xf32>) -> tensor<3x3x2x4xf32> {
// DIRECT-NOT:     tensor.pad
// DIRECT:         %[[ZERO:.*]] = arith.constant 0.000000e+00 : f32
// DIRECT:         %[[V2:.*]] = linalg.generic {indexing_maps = [#[[MAP]], #[[MAP1]]], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction", "reduction", "reduction"]} ins(%[[ARG1]] : tensor<1x3x3x4xf32>) outs(%{{.*}} : tensor<3x3x2x4xf32>) {
// DIRECT-NEXT:    ^bb0(%[[IN:.*]]: f32, %[[OUT:.*]]: f32):
// DIRECT-NEXT:      %[[KH:.*]] = linalg.index 0 : index
// DIRECT-NEXT:      %[[KW:.*]] = linalg.index 1 : index
// DIRECT-NEXT:      %[[C:.*]] = linalg.index 2 : index
// DIRECT-NEXT:      %{{.*}} = linalg.index 3 : index
// DIRECT-NEXT:      %[[N:.*]] = linalg.index 4 : index
// DIRECT-NEXT:      %[[OH:.*]] = linalg.index 5 : index
// DIRECT-NEXT:      %[[OW:.*]] = linalg.index 6 : index
// DIRECT-NEXT:      %[[S:.*]] = arith.constant 2 : index
// DIRECT-NEXT:      %[[OHS:.*]] = arith.muli %[[OH]], %[[S]] : index
// DIRECT-NEXT:      %[[T:.*]] = arith.addi %[[OHS]], %[[KH]] : index
// DIRECT-NEXT:      %[[P:.*]] = arith.constant 1 : index
// DIRECT-NEXT:      %[[ROW:.*]] = arith.subi %[[T]], %[[P]] : index
// DIRECT-NEXT:      %[[C0:.*]] = arith.constant 0 : index
// DIRECT-NEXT:      %[[LO:.*]] = arith.maxsi %[[ROW]], %[[C0]] : index
// DIRECT-NEXT:      %[[C4:.*]] = arith.constant 4 : index
// DIRECT-NEXT:      %[[ROWC:.*]] = arith.minsi %[[LO]], %[[C4]] : index
// DIRECT-NEXT:      %[[HOK:.*]] = arith.cmpi eq, %[[ROW]], %[[ROWC]] : index
// DIRECT:           %[[WOK:.*]] = arith.cmpi eq, %{{.*}}, %[[COLC:.*]] : index
// DIRECT-NEXT:      %[[X:.*]] = tensor.extract %[[ARG0]][%[[N]], %[[ROWC]], %[[COLC]], %[[C]]] : tensor<1x5x5x2xf32>
// DIRECT-NEXT:      %[[OK:.*]] = arith.andi %[[HOK]], %[[WOK]] : i1
// DIRECT-NEXT:      %[[XS:.*]] = arith.select %[[OK]], %[[X]], %[[ZERO]] : f32
// DIRECT-NEXT:      %[[M:.*]] = arith.mulf %[[XS]], %[[IN]] : f32
// DIRECT-NEXT:      %[[A:.*]] = arith.addf %[[OUT]], %[[M]] : f32
// DIRECT-NEXT:      linalg.yield %[[A]] : f32
// DIRECT-NEXT:    } -> tensor<3x3x2x4xf32>
// DIRECT-NEXT:    return %[[V2]] : tensor<3x3x2x4xf32>

// im2col: im2col of the padded input ([N*OH*OW, KH*KW*C]), then one
// matmul-like contraction cols^T @ dY over the rows.
// IM2COL-DAG:   #[[MAP:map[0-9]*]] = affine_map<(d0, d1, d2, d3, d4, d5) -> (d0, d1 * 2 + d3, d2 * 2 + d4, d5)>
// IM2COL-DAG:   #[[MAP1:map[0-9]*]] = affine_map<(d0, d1, d2, d3, d4, d5) -> (d0, d1, d2, d3, d4, d5)>
// IM2COL-DAG:   #[[MAP2:map[0-9]*]] = affine_map<(d0, d1, d2) -> (d2, d0)>
// IM2COL-DAG:   #[[MAP3:map[0-9]*]] = affine_map<(d0, d1, d2) -> (d2, d1)>
// IM2COL-DAG:   #[[MAP4:map[0-9]*]] = affine_map<(d0, d1, d2) -> (d0, d1)>
// IM2COL-LABEL: func.func @conv2d_grad_weight(
// IM2COL-SAME:    %[[ARG0:.*]]: tensor<1x5x5x2xf32>, %[[ARG1:.*]]: tensor<1x3x3x4xf32>) -> tensor<3x3x2x4xf32> {
// IM2COL-NEXT:    %[[CST:.*]] = arith.constant 0.000000e+00 : f32
// IM2COL-NEXT:    %[[PADDED:.*]] = tensor.pad %[[ARG0]] low[0, 1, 1, 0] high[0, 1, 1, 0] {
// IM2COL-NEXT:    ^bb0(%[[ARG2:.*]]: index, %[[ARG3:.*]]: index, %[[ARG4:.*]]: index, %[[ARG5:.*]]: index):
// IM2COL-NEXT:      tensor.yield %[[CST]] : f32
// IM2COL-NEXT:    } : tensor<1x5x5x2xf32> to tensor<1x7x7x2xf32>
// IM2COL-NEXT:    %[[V0:.*]] = tensor.empty() : tensor<1x3x3x3x3x2xf32>
// IM2COL-NEXT:    %[[V1:.*]] = linalg.generic {indexing_maps = [#[[MAP]], #[[MAP1]]], iterator_types = ["parallel", "parallel", "parallel", "parallel", "parallel", "parallel"]} ins(%[[PADDED]] : tensor<1x7x7x2xf32>) outs(%[[V0]] : tensor<1x3x3x3x3x2xf32>) {
// IM2COL-NEXT:    ^bb0(%[[IN:.*]]: f32, %[[OUT:.*]]: f32):
// IM2COL-NEXT:      linalg.yield %[[IN]] : f32
// IM2COL-NEXT:    } -> tensor<1x3x3x3x3x2xf32>
// IM2COL-NEXT:    %[[COLLAPSED:.*]] = tensor.collapse_shape %[[V1]] {{\[\[}}0, 1, 2, 3, 4, 5]] : tensor<1x3x3x3x3x2xf32> into tensor<162xf32>
// IM2COL-NEXT:    %[[COLS:.*]] = tensor.expand_shape %[[COLLAPSED]] {{\[\[}}0, 1]] output_shape [9, 18] : tensor<162xf32> into tensor<9x18xf32>
// IM2COL-NEXT:    %[[COLLAPSED_0:.*]] = tensor.collapse_shape %[[ARG1]] {{\[\[}}0, 1, 2, 3]] : tensor<1x3x3x4xf32> into tensor<36xf32>
// IM2COL-NEXT:    %[[DY:.*]] = tensor.expand_shape %[[COLLAPSED_0]] {{\[\[}}0, 1]] output_shape [9, 4] : tensor<36xf32> into tensor<9x4xf32>
// IM2COL-NEXT:    %[[CST_2:.*]] = arith.constant 0.000000e+00 : f32
// IM2COL-NEXT:    %[[V2:.*]] = tensor.empty() : tensor<18x4xf32>
// IM2COL-NEXT:    %[[V3:.*]] = linalg.fill ins(%[[CST_2]] : f32) outs(%[[V2]] : tensor<18x4xf32>) -> tensor<18x4xf32>
// IM2COL-NEXT:    %[[V4:.*]] = linalg.generic {indexing_maps = [#[[MAP2]], #[[MAP3]], #[[MAP4]]], iterator_types = ["parallel", "parallel", "reduction"]} ins(%[[COLS]], %[[DY]] : tensor<9x18xf32>, tensor<9x4xf32>) outs(%[[V3]] : tensor<18x4xf32>) {
// IM2COL-NEXT:    ^bb0(%[[IN_1:.*]]: f32, %[[IN_2:.*]]: f32, %[[OUT_1:.*]]: f32):
// IM2COL-NEXT:      %[[V5:.*]] = arith.mulf %[[IN_1]], %[[IN_2]] : f32
// IM2COL-NEXT:      %[[V6:.*]] = arith.addf %[[OUT_1]], %[[V5]] : f32
// IM2COL-NEXT:      linalg.yield %[[V6]] : f32
// IM2COL-NEXT:    } -> tensor<18x4xf32>
// IM2COL-NEXT:    %[[COLLAPSED_3:.*]] = tensor.collapse_shape %[[V4]] {{\[\[}}0, 1]] : tensor<18x4xf32> into tensor<72xf32>
// IM2COL-NEXT:    %[[EXPANDED:.*]] = tensor.expand_shape %[[COLLAPSED_3]] {{\[\[}}0, 1, 2, 3]] output_shape [3, 3, 2, 4] : tensor<72xf32> into tensor<3x3x2x4xf32>
// IM2COL-NEXT:    return %[[EXPANDED]] : tensor<3x3x2x4xf32>
func.func @conv2d_grad_weight(%x: tensor<1x5x5x2xf32>, %dy: tensor<1x3x3x4xf32>) -> tensor<3x3x2x4xf32> {
  %0 = "tinytrain.conv2d_grad_weight"(%x, %dy) {strides = array<i64: 2, 2>, padding = array<i64: 1, 1>, groups = 1 : i64} : (tensor<1x5x5x2xf32>, tensor<1x3x3x4xf32>) -> tensor<3x3x2x4xf32>
  return %0 : tensor<3x3x2x4xf32>
}

// -----

// Depthwise, stride 1, batch 1. direct: one generic into [KH, KW, C] (the input bounds-checked), reshaped to
// [KH, KW, 1, C]. im2col: the same window as a unit-batch stride-1 contraction over [H, W, C]
// images (IREE vectorizes it as a convolution).
// DIRECT-DAG:   #[[MAP:map[0-9]*]] = affine_map<(d0, d1, d2, d3, d4, d5) -> (d3, d4, d5, d2)>
// DIRECT-DAG:   #[[MAP1:map[0-9]*]] = affine_map<(d0, d1, d2, d3, d4, d5) -> (d0, d1, d2)>
// DIRECT-LABEL: func.func @conv2d_grad_weight_depthwise(
// DIRECT-NOT:     tensor.pad
// DIRECT:         %[[V2:.*]] = linalg.generic {indexing_maps = [#[[MAP]], #[[MAP1]]], iterator_types = ["parallel", "parallel", "parallel", "reduction", "reduction", "reduction"]} ins(%{{.*}} : tensor<1x4x4x3xf32>) outs(%{{.*}} : tensor<3x3x3xf32>) {
// DIRECT:           tensor.extract %{{.*}} : tensor<1x4x4x3xf32>
// DIRECT:         tensor.expand_shape %{{.*}} {{\[\[}}0, 1, 2, 3]] output_shape [3, 3, 1, 3] : tensor<27xf32> into tensor<3x3x1x3xf32>
// IM2COL-DAG:   #[[MAP:map[0-9]*]] = affine_map<(d0, d1, d2, d3, d4) -> (d0 + d3, d1 + d4, d2)>
// IM2COL-DAG:   #[[MAP1:map[0-9]*]] = affine_map<(d0, d1, d2, d3, d4) -> (d3, d4, d2)>
// IM2COL-DAG:   #[[MAP2:map[0-9]*]] = affine_map<(d0, d1, d2, d3, d4) -> (d0, d1, d2)>
// IM2COL-LABEL: func.func @conv2d_grad_weight_depthwise(
// IM2COL-SAME:    %[[ARG0:.*]]: tensor<1x4x4x3xf32>, %[[ARG1:.*]]: tensor<1x4x4x3xf32>) -> tensor<3x3x1x3xf32> {
// IM2COL-NEXT:    %[[CST:.*]] = arith.constant 0.000000e+00 : f32
// IM2COL-NEXT:    %[[PADDED:.*]] = tensor.pad %[[ARG0]] low[0, 1, 1, 0] high[0, 1, 1, 0] {
// IM2COL-NEXT:    ^bb0(%[[ARG2:.*]]: index, %[[ARG3:.*]]: index, %[[ARG4:.*]]: index, %[[ARG5:.*]]: index):
// IM2COL-NEXT:      tensor.yield %[[CST]] : f32
// IM2COL-NEXT:    } : tensor<1x4x4x3xf32> to tensor<1x6x6x3xf32>
// IM2COL-NEXT:    %[[COLLAPSED_0:.*]] = tensor.collapse_shape %[[ARG1]] {{\[\[}}0, 1, 2, 3]] : tensor<1x4x4x3xf32> into tensor<48xf32>
// IM2COL-NEXT:    %[[DY:.*]] = tensor.expand_shape %[[COLLAPSED_0]] {{\[\[}}0, 1, 2]] output_shape [4, 4, 3] : tensor<48xf32> into tensor<4x4x3xf32>
// IM2COL-NEXT:    %[[COLLAPSED:.*]] = tensor.collapse_shape %[[PADDED]] {{\[\[}}0, 1, 2, 3]] : tensor<1x6x6x3xf32> into tensor<108xf32>
// IM2COL-NEXT:    %[[X:.*]] = tensor.expand_shape %[[COLLAPSED]] {{\[\[}}0, 1, 2]] output_shape [6, 6, 3] : tensor<108xf32> into tensor<6x6x3xf32>
// IM2COL-NEXT:    %[[CST_2:.*]] = arith.constant 0.000000e+00 : f32
// IM2COL-NEXT:    %[[V0:.*]] = tensor.empty() : tensor<3x3x3xf32>
// IM2COL-NEXT:    %[[V1:.*]] = linalg.fill ins(%[[CST_2]] : f32) outs(%[[V0]] : tensor<3x3x3xf32>) -> tensor<3x3x3xf32>
// IM2COL-NEXT:    %[[V2:.*]] = linalg.generic {indexing_maps = [#[[MAP]], #[[MAP1]], #[[MAP2]]], iterator_types = ["parallel", "parallel", "parallel", "reduction", "reduction"]} ins(%[[X]], %[[DY]] : tensor<6x6x3xf32>, tensor<4x4x3xf32>) outs(%[[V1]] : tensor<3x3x3xf32>) {
// IM2COL-NEXT:    ^bb0(%[[IN:.*]]: f32, %[[IN_1:.*]]: f32, %[[OUT:.*]]: f32):
// IM2COL-NEXT:      %[[V3:.*]] = arith.mulf %[[IN]], %[[IN_1]] : f32
// IM2COL-NEXT:      %[[V4:.*]] = arith.addf %[[OUT]], %[[V3]] : f32
// IM2COL-NEXT:      linalg.yield %[[V4]] : f32
// IM2COL-NEXT:    } -> tensor<3x3x3xf32>
// IM2COL-NEXT:    %[[COLLAPSED_3:.*]] = tensor.collapse_shape %[[V2]] {{\[\[}}0, 1, 2]] : tensor<3x3x3xf32> into tensor<27xf32>
// IM2COL-NEXT:    %[[EXPANDED:.*]] = tensor.expand_shape %[[COLLAPSED_3]] {{\[\[}}0, 1, 2, 3]] output_shape [3, 3, 1, 3] : tensor<27xf32> into tensor<3x3x1x3xf32>
// IM2COL-NEXT:    return %[[EXPANDED]] : tensor<3x3x1x3xf32>
func.func @conv2d_grad_weight_depthwise(%x: tensor<1x4x4x3xf32>, %dy: tensor<1x4x4x3xf32>) -> tensor<3x3x1x3xf32> {
  %0 = "tinytrain.conv2d_grad_weight"(%x, %dy) {strides = array<i64: 1, 1>, padding = array<i64: 1, 1>, groups = 3 : i64} : (tensor<1x4x4x3xf32>, tensor<1x4x4x3xf32>) -> tensor<3x3x1x3xf32>
  return %0 : tensor<3x3x1x3xf32>
}

// -----

// Depthwise, stride 2, batch 2. direct: one generic, the stride in the input's index. im2col: per
// stride phase (p, q) the taps (2a + p, 2b + q) over the phase image padded[:, p::2, q::2, :],
// every phase with 2x2 taps (the padded input gets one more zero row and column; the taps past
// the kernel are dropped: 2x2, 2x1, 1x2, 1x1 valid ones); the two images stacked (rows n*R + oh,
// R = OH + 1), dY with one zero row per image, so no window mixes the images; each phase's valid
// taps inserted at rows p::2, columns q::2.
// DIRECT-DAG:   #[[MAP:map[0-9]*]] = affine_map<(d0, d1, d2, d3, d4, d5) -> (d3, d4, d5, d2)>
// DIRECT-LABEL: func.func @conv2d_grad_weight_depthwise_strided(
// DIRECT-NOT:     tensor.pad
// DIRECT:         linalg.generic {indexing_maps = [#[[MAP]], {{.*}}ins(%{{.*}} : tensor<2x3x3x3xf32>) outs(%{{.*}} : tensor<3x3x3xf32>)
// DIRECT:           arith.muli %{{.*}}, %{{.*}} : index
// DIRECT:           tensor.extract %{{.*}} : tensor<2x5x5x3xf32>
// IM2COL-LABEL: func.func @conv2d_grad_weight_depthwise_strided(
// IM2COL-SAME:    %[[ARG0:.*]]: tensor<2x5x5x3xf32>, %[[ARG1:.*]]: tensor<2x3x3x3xf32>) -> tensor<3x3x1x3xf32> {
// IM2COL:         %[[PADDED:.*]] = tensor.pad %[[ARG0]] low[0, 1, 1, 0] high[0, 1, 1, 0] {
// IM2COL:         %[[X:.*]] = tensor.pad %[[PADDED]] low[0, 0, 0, 0] high[0, 1, 1, 0] {
// IM2COL:         } : tensor<2x7x7x3xf32> to tensor<2x8x8x3xf32>
// IM2COL-NEXT:    %[[DYPAD:.*]] = tensor.pad %[[ARG1]] low[0, 0, 0, 0] high[0, 1, 0, 0] {
// IM2COL:         } : tensor<2x3x3x3xf32> to tensor<2x4x3x3xf32>
// IM2COL:         tensor.expand_shape %{{.*}} {{\[\[}}0, 1, 2]] output_shape [8, 3, 3] : tensor<72xf32> into tensor<8x3x3xf32>
// IM2COL-NEXT:    %[[DY:.*]] = tensor.extract_slice %{{.*}}[0, 0, 0] [7, 3, 3] [1, 1, 1] : tensor<8x3x3xf32> to tensor<7x3x3xf32>
// IM2COL-NEXT:    %[[OUT:.*]] = tensor.empty() : tensor<3x3x3xf32>
// IM2COL-NEXT:    tensor.extract_slice %[[X]][0, 0, 0, 0] [2, 4, 4, 3] [1, 2, 2, 1] : tensor<2x8x8x3xf32> to tensor<2x4x4x3xf32>
// IM2COL:         %[[X00:.*]] = tensor.expand_shape %{{.*}} {{\[\[}}0, 1, 2]] output_shape [8, 4, 3] : tensor<96xf32> into tensor<8x4x3xf32>
// IM2COL:         %[[R00:.*]] = linalg.generic {{.*}} ins(%[[X00]], %[[DY]] : tensor<8x4x3xf32>, tensor<7x3x3xf32>) outs(%{{.*}} : tensor<2x2x3xf32>)
// IM2COL:         %[[O1:.*]] = tensor.insert_slice %[[R00]] into %[[OUT]][0, 0, 0] [2, 2, 3] [2, 2, 1] : tensor<2x2x3xf32> into tensor<3x3x3xf32>
// IM2COL-NEXT:    tensor.extract_slice %[[X]][0, 0, 1, 0] [2, 4, 4, 3] [1, 2, 2, 1] : tensor<2x8x8x3xf32> to tensor<2x4x4x3xf32>
// IM2COL:         %[[R01:.*]] = linalg.generic {{.*}} ins(%{{.*}}, %[[DY]] : tensor<8x4x3xf32>, tensor<7x3x3xf32>) outs(%{{.*}} : tensor<2x2x3xf32>)
// IM2COL:         %[[V01:.*]] = tensor.extract_slice %[[R01]][0, 0, 0] [2, 1, 3] [1, 1, 1] : tensor<2x2x3xf32> to tensor<2x1x3xf32>
// IM2COL-NEXT:    %[[O2:.*]] = tensor.insert_slice %[[V01]] into %[[O1]][0, 1, 0] [2, 1, 3] [2, 2, 1] : tensor<2x1x3xf32> into tensor<3x3x3xf32>
// IM2COL-NEXT:    tensor.extract_slice %[[X]][0, 1, 0, 0] [2, 4, 4, 3] [1, 2, 2, 1] : tensor<2x8x8x3xf32> to tensor<2x4x4x3xf32>
// IM2COL:         %[[R10:.*]] = linalg.generic {{.*}} ins(%{{.*}}, %[[DY]] : tensor<8x4x3xf32>, tensor<7x3x3xf32>) outs(%{{.*}} : tensor<2x2x3xf32>)
// IM2COL:         %[[V10:.*]] = tensor.extract_slice %[[R10]][0, 0, 0] [1, 2, 3] [1, 1, 1] : tensor<2x2x3xf32> to tensor<1x2x3xf32>
// IM2COL-NEXT:    %[[O3:.*]] = tensor.insert_slice %[[V10]] into %[[O2]][1, 0, 0] [1, 2, 3] [2, 2, 1] : tensor<1x2x3xf32> into tensor<3x3x3xf32>
// IM2COL-NEXT:    tensor.extract_slice %[[X]][0, 1, 1, 0] [2, 4, 4, 3] [1, 2, 2, 1] : tensor<2x8x8x3xf32> to tensor<2x4x4x3xf32>
// IM2COL:         %[[R11:.*]] = linalg.generic {{.*}} ins(%{{.*}}, %[[DY]] : tensor<8x4x3xf32>, tensor<7x3x3xf32>) outs(%{{.*}} : tensor<2x2x3xf32>)
// IM2COL:         %[[V11:.*]] = tensor.extract_slice %[[R11]][0, 0, 0] [1, 1, 3] [1, 1, 1] : tensor<2x2x3xf32> to tensor<1x1x3xf32>
// IM2COL-NEXT:    %[[O4:.*]] = tensor.insert_slice %[[V11]] into %[[O3]][1, 1, 0] [1, 1, 3] [2, 2, 1] : tensor<1x1x3xf32> into tensor<3x3x3xf32>
// IM2COL-NEXT:    %[[C:.*]] = tensor.collapse_shape %[[O4]] {{\[\[}}0, 1, 2]] : tensor<3x3x3xf32> into tensor<27xf32>
// IM2COL-NEXT:    %[[E:.*]] = tensor.expand_shape %[[C]] {{\[\[}}0, 1, 2, 3]] output_shape [3, 3, 1, 3] : tensor<27xf32> into tensor<3x3x1x3xf32>
// IM2COL-NEXT:    return %[[E]] : tensor<3x3x1x3xf32>
func.func @conv2d_grad_weight_depthwise_strided(%x: tensor<2x5x5x3xf32>, %dy: tensor<2x3x3x3xf32>) -> tensor<3x3x1x3xf32> {
  %0 = "tinytrain.conv2d_grad_weight"(%x, %dy) {strides = array<i64: 2, 2>, padding = array<i64: 1, 1>, groups = 3 : i64} : (tensor<2x5x5x3xf32>, tensor<2x3x3x3xf32>) -> tensor<3x3x1x3xf32>
  return %0 : tensor<3x3x1x3xf32>
}

// -----

// Bias gradient: sum over all but the channel dim.
// direct: one reduction generic; im2col: ones[1, N*H*W] @ dY[N*H*W, C] as a linalg.matmul.
// DIRECT-DAG:   #[[MAP:map[0-9]*]] = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>
// DIRECT-DAG:   #[[MAP1:map[0-9]*]] = affine_map<(d0, d1, d2, d3) -> (d3)>
// DIRECT-LABEL: func.func @bias_grad(
// DIRECT-SAME:    %[[ARG0:.*]]: tensor<1x3x3x4xf32>) -> tensor<4xf32> {
// DIRECT-NEXT:    %[[CST:.*]] = arith.constant 0.000000e+00 : f32
// DIRECT-NEXT:    %[[V0:.*]] = tensor.empty() : tensor<4xf32>
// DIRECT-NEXT:    %[[V1:.*]] = linalg.fill ins(%[[CST]] : f32) outs(%[[V0]] : tensor<4xf32>) -> tensor<4xf32>
// DIRECT-NEXT:    %[[V2:.*]] = linalg.generic {indexing_maps = [#[[MAP]], #[[MAP1]]], iterator_types = ["reduction", "reduction", "reduction", "parallel"]} ins(%[[ARG0]] : tensor<1x3x3x4xf32>) outs(%[[V1]] : tensor<4xf32>) {
// DIRECT-NEXT:    ^bb0(%[[IN:.*]]: f32, %[[OUT:.*]]: f32):
// DIRECT-NEXT:      %[[V3:.*]] = arith.addf %[[OUT]], %[[IN]] : f32
// DIRECT-NEXT:      linalg.yield %[[V3]] : f32
// DIRECT-NEXT:    } -> tensor<4xf32>
// DIRECT-NEXT:    return %[[V2]] : tensor<4xf32>
// IM2COL-LABEL: func.func @bias_grad(
// IM2COL-SAME:    %[[ARG0:.*]]: tensor<1x3x3x4xf32>) -> tensor<4xf32> {
// IM2COL-NEXT:    %[[ONE:.*]] = arith.constant 1.000000e+00 : f32
// IM2COL-NEXT:    %[[V0:.*]] = tensor.empty() : tensor<1x9xf32>
// IM2COL-NEXT:    %[[ONES:.*]] = linalg.fill ins(%[[ONE]] : f32) outs(%[[V0]] : tensor<1x9xf32>) -> tensor<1x9xf32>
// IM2COL-NEXT:    %[[COLLAPSED:.*]] = tensor.collapse_shape %[[ARG0]] {{\[\[}}0, 1, 2, 3]] : tensor<1x3x3x4xf32> into tensor<36xf32>
// IM2COL-NEXT:    %[[DY:.*]] = tensor.expand_shape %[[COLLAPSED]] {{\[\[}}0, 1]] output_shape [9, 4] : tensor<36xf32> into tensor<9x4xf32>
// IM2COL-NEXT:    %[[ZERO:.*]] = arith.constant 0.000000e+00 : f32
// IM2COL-NEXT:    %[[V2:.*]] = tensor.empty() : tensor<1x4xf32>
// IM2COL-NEXT:    %[[ACC:.*]] = linalg.fill ins(%[[ZERO]] : f32) outs(%[[V2]] : tensor<1x4xf32>) -> tensor<1x4xf32>
// IM2COL-NEXT:    %[[SUM:.*]] = linalg.matmul ins(%[[ONES]], %[[DY]] : tensor<1x9xf32>, tensor<9x4xf32>) outs(%[[ACC]] : tensor<1x4xf32>) -> tensor<1x4xf32>
// IM2COL-NEXT:    %[[R:.*]] = tensor.collapse_shape %[[SUM]] {{\[\[}}0, 1]] : tensor<1x4xf32> into tensor<4xf32>
// IM2COL-NEXT:    return %[[R]] : tensor<4xf32>
func.func @bias_grad(%dy: tensor<1x3x3x4xf32>) -> tensor<4xf32> {
  %0 = "tinytrain.bias_grad"(%dy) : (tensor<1x3x3x4xf32>) -> tensor<4xf32>
  return %0 : tensor<4xf32>
}

// -----

// Input gradient, dense, stride 2.
// im2col: dY zero-dilated by the stride (insert_slice with strides [1, 2, 2, 1]) at offset
// K - 1 - p, then a stride-1 conv with the flipped, in/out-transposed kernel built as a gather.
// direct: one generic over (N, H, W, C, KH, KW, F) reading W through its map; the dY row of
// input row h and tap kh is t = h + p - kh, clamped to [0, (OH-1)*s]; the tap exists when the
// clamp left t unchanged and t is a multiple of s (row t / s); otherwise it selects 0.
// DIRECT-DAG:   #[[MAP:map[0-9]*]] = affine_map<(d0, d1, d2, d3, d4, d5, d6) -> (d4, d5, d3, d6)>
// DIRECT-DAG:   #[[MAP1:map[0-9]*]] = affine_map<(d0, d1, d2, d3, d4, d5, d6) -> (d0, d1, d2, d3)>
// DIRECT-LABEL: func.func @conv2d_grad_input(
// DIRECT-SAME:    %[[ARG0:.*]]: tensor<1x3x3x4xf32>, %[[ARG1:.*]]: tensor<3x3x2x4xf32>) -> tensor<1x5x5x2xf32> {
// DIRECT-NEXT:    %[[ZERO:.*]] = arith.constant 0.000000e+00 : f32
// DIRECT-NEXT:    %[[CST:.*]] = arith.constant 0.000000e+00 : f32
// DIRECT-NEXT:    %[[V0:.*]] = tensor.empty() : tensor<1x5x5x2xf32>
// DIRECT-NEXT:    %[[V1:.*]] = linalg.fill ins(%[[CST]] : f32) outs(%[[V0]] : tensor<1x5x5x2xf32>) -> tensor<1x5x5x2xf32>
// DIRECT-NEXT:    %[[V2:.*]] = linalg.generic {indexing_maps = [#[[MAP]], #[[MAP1]]], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction", "reduction", "reduction"]} ins(%[[ARG1]] : tensor<3x3x2x4xf32>) outs(%[[V1]] : tensor<1x5x5x2xf32>) {
// DIRECT-NEXT:    ^bb0(%[[IN:.*]]: f32, %[[OUT:.*]]: f32):
// DIRECT-NEXT:      %[[N:.*]] = linalg.index 0 : index
// DIRECT-NEXT:      %[[H:.*]] = linalg.index 1 : index
// DIRECT-NEXT:      %[[W:.*]] = linalg.index 2 : index
// DIRECT-NEXT:      %[[C:.*]] = linalg.index 3 : index
// DIRECT-NEXT:      %[[KH:.*]] = linalg.index 4 : index
// DIRECT-NEXT:      %[[KW:.*]] = linalg.index 5 : index
// DIRECT-NEXT:      %[[F:.*]] = linalg.index 6 : index
// DIRECT-NEXT:      %[[C1:.*]] = arith.constant 1 : index
// DIRECT-NEXT:      %[[HP:.*]] = arith.addi %[[H]], %[[C1]] : index
// DIRECT-NEXT:      %[[TH:.*]] = arith.subi %[[HP]], %[[KH]] : index
// DIRECT-NEXT:      %[[C0:.*]] = arith.constant 0 : index
// DIRECT-NEXT:      %[[LO:.*]] = arith.maxsi %[[TH]], %[[C0]] : index
// DIRECT-NEXT:      %[[C4:.*]] = arith.constant 4 : index
// DIRECT-NEXT:      %[[THC:.*]] = arith.minsi %[[LO]], %[[C4]] : index
// DIRECT-NEXT:      %[[HIN:.*]] = arith.cmpi eq, %[[TH]], %[[THC]] : index
// DIRECT-NEXT:      %[[C2:.*]] = arith.constant 2 : index
// DIRECT-NEXT:      %[[HREM:.*]] = arith.remui %[[THC]], %[[C2]] : index
// DIRECT-NEXT:      %[[C0_1:.*]] = arith.constant 0 : index
// DIRECT-NEXT:      %[[HGRID:.*]] = arith.cmpi eq, %[[HREM]], %[[C0_1]] : index
// DIRECT-NEXT:      %[[OH:.*]] = arith.divui %[[THC]], %[[C2]] : index
// DIRECT-NEXT:      %[[HOK:.*]] = arith.andi %[[HIN]], %[[HGRID]] : i1
// DIRECT:           %[[WOK:.*]] = arith.andi %{{.*}}, %{{.*}} : i1
// DIRECT-NEXT:      %[[G:.*]] = tensor.extract %[[ARG0]][%[[N]], %[[OH]], %[[OW:.*]], %[[F]]] : tensor<1x3x3x4xf32>
// DIRECT-NEXT:      %[[OK:.*]] = arith.andi %[[HOK]], %[[WOK]] : i1
// DIRECT-NEXT:      %[[GS:.*]] = arith.select %[[OK]], %[[G]], %[[ZERO]] : f32
// DIRECT-NEXT:      %[[M:.*]] = arith.mulf %[[GS]], %[[IN]] : f32
// DIRECT-NEXT:      %[[A:.*]] = arith.addf %[[OUT]], %[[M]] : f32
// DIRECT-NEXT:      linalg.yield %[[A]] : f32
// DIRECT-NEXT:    } -> tensor<1x5x5x2xf32>
// DIRECT-NEXT:    return %[[V2]] : tensor<1x5x5x2xf32>
// IM2COL-DAG:   #[[MAP:map[0-9]*]] = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>
// IM2COL-LABEL: func.func @conv2d_grad_input(
// IM2COL-SAME:    %[[ARG0:.*]]: tensor<1x3x3x4xf32>, %[[ARG1:.*]]: tensor<3x3x2x4xf32>) -> tensor<1x5x5x2xf32> {
// IM2COL-NEXT:    %[[CST:.*]] = arith.constant 0.000000e+00 : f32
// IM2COL-NEXT:    %[[V0:.*]] = tensor.empty() : tensor<1x7x7x4xf32>
// IM2COL-NEXT:    %[[V1:.*]] = linalg.fill ins(%[[CST]] : f32) outs(%[[V0]] : tensor<1x7x7x4xf32>) -> tensor<1x7x7x4xf32>
// IM2COL-NEXT:    %[[INSERTED_SLICE:.*]] = tensor.insert_slice %[[ARG0]] into %[[V1]][0, 1, 1, 0] [1, 3, 3, 4] [1, 2, 2, 1] : tensor<1x3x3x4xf32> into tensor<1x7x7x4xf32>
// IM2COL-NEXT:    %[[CST_0:.*]] = arith.constant 0.000000e+00 : f32
// IM2COL-NEXT:    %[[V2:.*]] = tensor.empty() : tensor<1x5x5x2xf32>
// IM2COL-NEXT:    %[[V3:.*]] = linalg.fill ins(%[[CST_0]] : f32) outs(%[[V2]] : tensor<1x5x5x2xf32>) -> tensor<1x5x5x2xf32>
// IM2COL-NEXT:    %[[V4:.*]] = tensor.empty() : tensor<3x3x4x2xf32>
// IM2COL-NEXT:    %[[V5:.*]] = linalg.generic {indexing_maps = [#[[MAP]]], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} outs(%[[V4]] : tensor<3x3x4x2xf32>) {
// IM2COL-NEXT:    ^bb0(%[[OUT:.*]]: f32):
// IM2COL-NEXT:      %[[V7:.*]] = linalg.index 0 : index
// IM2COL-NEXT:      %[[V8:.*]] = linalg.index 1 : index
// IM2COL-NEXT:      %[[V9:.*]] = linalg.index 2 : index
// IM2COL-NEXT:      %[[V10:.*]] = linalg.index 3 : index
// IM2COL-NEXT:      %[[C2:.*]] = arith.constant 2 : index
// IM2COL-NEXT:      %[[C2_1:.*]] = arith.constant 2 : index
// IM2COL-NEXT:      %[[V11:.*]] = arith.subi %[[C2]], %[[V7]] : index
// IM2COL-NEXT:      %[[V12:.*]] = arith.subi %[[C2_1]], %[[V8]] : index
// IM2COL-NEXT:      %[[EXTRACTED:.*]] = tensor.extract %[[ARG1]][%[[V11]], %[[V12]], %[[V10]], %[[V9]]] : tensor<3x3x2x4xf32>
// IM2COL-NEXT:      linalg.yield %[[EXTRACTED]] : f32
// IM2COL-NEXT:    } -> tensor<3x3x4x2xf32>
// IM2COL-NEXT:    %[[V6:.*]] = linalg.conv_2d_nhwc_hwcf {dilations = dense<1> : tensor<2xi64>, strides = dense<1> : tensor<2xi64>} ins(%[[INSERTED_SLICE]], %[[V5]] : tensor<1x7x7x4xf32>, tensor<3x3x4x2xf32>) outs(%[[V3]] : tensor<1x5x5x2xf32>) -> tensor<1x5x5x2xf32>
// IM2COL-NEXT:    return %[[V6]] : tensor<1x5x5x2xf32>
func.func @conv2d_grad_input(%dy: tensor<1x3x3x4xf32>, %w: tensor<3x3x2x4xf32>) -> tensor<1x5x5x2xf32> {
  %0 = "tinytrain.conv2d_grad_input"(%dy, %w) {strides = array<i64: 2, 2>, padding = array<i64: 1, 1>, groups = 1 : i64} : (tensor<1x3x3x4xf32>, tensor<3x3x2x4xf32>) -> tensor<1x5x5x2xf32>
  return %0 : tensor<1x5x5x2xf32>
}

// -----

// Depthwise input gradient, stride 1. im2col: the flipped kernel reads W[KH-1-kh, KW-1-kw, 0, c].
// direct: one generic over (N, H, W, C, KH, KW) reading the [KH, KW, C] kernel through its map,
// the row and column of dY clamped to [0, 3] and checked, no padded copy.
// DIRECT-DAG:   #[[MAP:map[0-9]*]] = affine_map<(d0, d1, d2, d3, d4, d5) -> (d4, d5, d3)>
// DIRECT-DAG:   #[[MAP1:map[0-9]*]] = affine_map<(d0, d1, d2, d3, d4, d5) -> (d0, d1, d2, d3)>
// DIRECT-LABEL: func.func @conv2d_grad_input_depthwise(
// DIRECT-SAME:    %[[ARG0:.*]]: tensor<1x4x4x3xf32>, %[[ARG1:.*]]: tensor<3x3x1x3xf32>) -> tensor<1x4x4x3xf32> {
// DIRECT-NEXT:    %[[ZERO:.*]] = arith.constant 0.000000e+00 : f32
// DIRECT-NEXT:    %[[K:.*]] = tensor.collapse_shape %[[ARG1]] {{\[\[}}0], [1], [2, 3]] : tensor<3x3x1x3xf32> into tensor<3x3x3xf32>
// DIRECT-NEXT:    %[[CST:.*]] = arith.constant 0.000000e+00 : f32
// DIRECT-NEXT:    %[[V0:.*]] = tensor.empty() : tensor<1x4x4x3xf32>
// DIRECT-NEXT:    %[[V1:.*]] = linalg.fill ins(%[[CST]] : f32) outs(%[[V0]] : tensor<1x4x4x3xf32>) -> tensor<1x4x4x3xf32>
// DIRECT-NEXT:    %[[V2:.*]] = linalg.generic {indexing_maps = [#[[MAP]], #[[MAP1]]], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction", "reduction"]} ins(%[[K]] : tensor<3x3x3xf32>) outs(%[[V1]] : tensor<1x4x4x3xf32>) {
// DIRECT-NEXT:    ^bb0(%[[IN:.*]]: f32, %[[OUT:.*]]: f32):
// DIRECT-NEXT:      %[[N:.*]] = linalg.index 0 : index
// DIRECT-NEXT:      %[[H:.*]] = linalg.index 1 : index
// DIRECT-NEXT:      %[[W:.*]] = linalg.index 2 : index
// DIRECT-NEXT:      %[[C:.*]] = linalg.index 3 : index
// DIRECT-NEXT:      %[[KH:.*]] = linalg.index 4 : index
// DIRECT-NEXT:      %[[KW:.*]] = linalg.index 5 : index
// DIRECT-NEXT:      %[[C1:.*]] = arith.constant 1 : index
// DIRECT-NEXT:      %[[HP:.*]] = arith.addi %[[H]], %[[C1]] : index
// DIRECT-NEXT:      %[[TH:.*]] = arith.subi %[[HP]], %[[KH]] : index
// DIRECT-NEXT:      %[[C0:.*]] = arith.constant 0 : index
// DIRECT-NEXT:      %[[LO:.*]] = arith.maxsi %[[TH]], %[[C0]] : index
// DIRECT-NEXT:      %[[C3:.*]] = arith.constant 3 : index
// DIRECT-NEXT:      %[[OH:.*]] = arith.minsi %[[LO]], %[[C3]] : index
// DIRECT-NEXT:      %[[HOK:.*]] = arith.cmpi eq, %[[TH]], %[[OH]] : index
// DIRECT-NEXT:      %[[C1_1:.*]] = arith.constant 1 : index
// DIRECT-NEXT:      %[[WP:.*]] = arith.addi %[[W]], %[[C1_1]] : index
// DIRECT-NEXT:      %[[TW:.*]] = arith.subi %[[WP]], %[[KW]] : index
// DIRECT-NEXT:      %[[C0_2:.*]] = arith.constant 0 : index
// DIRECT-NEXT:      %[[LOW:.*]] = arith.maxsi %[[TW]], %[[C0_2]] : index
// DIRECT-NEXT:      %[[C3_3:.*]] = arith.constant 3 : index
// DIRECT-NEXT:      %[[OW:.*]] = arith.minsi %[[LOW]], %[[C3_3]] : index
// DIRECT-NEXT:      %[[WOK:.*]] = arith.cmpi eq, %[[TW]], %[[OW]] : index
// DIRECT-NEXT:      %[[G:.*]] = tensor.extract %[[ARG0]][%[[N]], %[[OH]], %[[OW]], %[[C]]] : tensor<1x4x4x3xf32>
// DIRECT-NEXT:      %[[OK:.*]] = arith.andi %[[HOK]], %[[WOK]] : i1
// DIRECT-NEXT:      %[[GS:.*]] = arith.select %[[OK]], %[[G]], %[[ZERO]] : f32
// DIRECT-NEXT:      %[[M:.*]] = arith.mulf %[[GS]], %[[IN]] : f32
// DIRECT-NEXT:      %[[A:.*]] = arith.addf %[[OUT]], %[[M]] : f32
// DIRECT-NEXT:      linalg.yield %[[A]] : f32
// DIRECT-NEXT:    } -> tensor<1x4x4x3xf32>
// DIRECT-NEXT:    return %[[V2]] : tensor<1x4x4x3xf32>
// IM2COL-DAG:   #[[MAP:map[0-9]*]] = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
// IM2COL-LABEL: func.func @conv2d_grad_input_depthwise(
// IM2COL-SAME:    %[[ARG0:.*]]: tensor<1x4x4x3xf32>, %[[ARG1:.*]]: tensor<3x3x1x3xf32>) -> tensor<1x4x4x3xf32> {
// IM2COL-NEXT:    %[[CST:.*]] = arith.constant 0.000000e+00 : f32
// IM2COL-NEXT:    %[[V0:.*]] = tensor.empty() : tensor<1x6x6x3xf32>
// IM2COL-NEXT:    %[[V1:.*]] = linalg.fill ins(%[[CST]] : f32) outs(%[[V0]] : tensor<1x6x6x3xf32>) -> tensor<1x6x6x3xf32>
// IM2COL-NEXT:    %[[INSERTED_SLICE:.*]] = tensor.insert_slice %[[ARG0]] into %[[V1]][0, 1, 1, 0] [1, 4, 4, 3] [1, 1, 1, 1] : tensor<1x4x4x3xf32> into tensor<1x6x6x3xf32>
// IM2COL-NEXT:    %[[CST_0:.*]] = arith.constant 0.000000e+00 : f32
// IM2COL-NEXT:    %[[V2:.*]] = tensor.empty() : tensor<1x4x4x3xf32>
// IM2COL-NEXT:    %[[V3:.*]] = linalg.fill ins(%[[CST_0]] : f32) outs(%[[V2]] : tensor<1x4x4x3xf32>) -> tensor<1x4x4x3xf32>
// IM2COL-NEXT:    %[[V4:.*]] = tensor.empty() : tensor<3x3x3xf32>
// IM2COL-NEXT:    %[[V5:.*]] = linalg.generic {indexing_maps = [#[[MAP]]], iterator_types = ["parallel", "parallel", "parallel"]} outs(%[[V4]] : tensor<3x3x3xf32>) {
// IM2COL-NEXT:    ^bb0(%[[OUT:.*]]: f32):
// IM2COL-NEXT:      %[[V7:.*]] = linalg.index 0 : index
// IM2COL-NEXT:      %[[V8:.*]] = linalg.index 1 : index
// IM2COL-NEXT:      %[[V9:.*]] = linalg.index 2 : index
// IM2COL-NEXT:      %[[C2:.*]] = arith.constant 2 : index
// IM2COL-NEXT:      %[[C2_1:.*]] = arith.constant 2 : index
// IM2COL-NEXT:      %[[V10:.*]] = arith.subi %[[C2]], %[[V7]] : index
// IM2COL-NEXT:      %[[V11:.*]] = arith.subi %[[C2_1]], %[[V8]] : index
// IM2COL-NEXT:      %[[C0:.*]] = arith.constant 0 : index
// IM2COL-NEXT:      %[[EXTRACTED:.*]] = tensor.extract %[[ARG1]][%[[V10]], %[[V11]], %[[C0]], %[[V9]]] : tensor<3x3x1x3xf32>
// IM2COL-NEXT:      linalg.yield %[[EXTRACTED]] : f32
// IM2COL-NEXT:    } -> tensor<3x3x3xf32>
// IM2COL-NEXT:    %[[V6:.*]] = linalg.depthwise_conv_2d_nhwc_hwc {dilations = dense<1> : tensor<2xi64>, strides = dense<1> : tensor<2xi64>} ins(%[[INSERTED_SLICE]], %[[V5]] : tensor<1x6x6x3xf32>, tensor<3x3x3xf32>) outs(%[[V3]] : tensor<1x4x4x3xf32>) -> tensor<1x4x4x3xf32>
// IM2COL-NEXT:    return %[[V6]] : tensor<1x4x4x3xf32>
func.func @conv2d_grad_input_depthwise(%dy: tensor<1x4x4x3xf32>, %w: tensor<3x3x1x3xf32>) -> tensor<1x4x4x3xf32> {
  %0 = "tinytrain.conv2d_grad_input"(%dy, %w) {strides = array<i64: 1, 1>, padding = array<i64: 1, 1>, groups = 3 : i64} : (tensor<1x4x4x3xf32>, tensor<3x3x1x3xf32>) -> tensor<1x4x4x3xf32>
  return %0 : tensor<1x4x4x3xf32>
}

// -----

// Depthwise input gradient, stride 2 (MobileNetV2's downsampling blocks). direct: the stride
// check (remui/divui) on rows and columns; no padded, dilated copy of dY. im2col: dY inserted
// every second row/column into a zero 6x6 copy.
// DIRECT-LABEL: func.func @conv2d_grad_input_depthwise_strided(
// DIRECT-NOT:     tensor.insert_slice
// DIRECT:         linalg.generic {{.*}}iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction", "reduction"]} ins(%{{.*}} : tensor<3x3x3xf32>) outs(%{{.*}} : tensor<1x4x4x3xf32>)
// DIRECT:           arith.remui %{{.*}}, %{{.*}} : index
// DIRECT:           arith.divui %{{.*}}, %{{.*}} : index
// DIRECT:           arith.remui %{{.*}}, %{{.*}} : index
// DIRECT:           arith.divui %{{.*}}, %{{.*}} : index
// DIRECT:           tensor.extract %{{.*}} : tensor<1x2x2x3xf32>
// DIRECT-NOT:     linalg.depthwise_conv_2d_nhwc_hwc
// DIRECT:         return
// IM2COL-LABEL: func.func @conv2d_grad_input_depthwise_strided(
// IM2COL:         tensor.insert_slice %{{.*}} into %{{.*}}[0, 1, 1, 0] [1, 2, 2, 3] [1, 2, 2, 1] : tensor<1x2x2x3xf32> into tensor<1x6x6x3xf32>
// IM2COL:         linalg.depthwise_conv_2d_nhwc_hwc {dilations = dense<1> : tensor<2xi64>, strides = dense<1> : tensor<2xi64>} ins(%{{.*}}, %{{.*}} : tensor<1x6x6x3xf32>, tensor<3x3x3xf32>)
func.func @conv2d_grad_input_depthwise_strided(%dy: tensor<1x2x2x3xf32>, %w: tensor<3x3x1x3xf32>) -> tensor<1x4x4x3xf32> {
  %0 = "tinytrain.conv2d_grad_input"(%dy, %w) {strides = array<i64: 2, 2>, padding = array<i64: 1, 1>, groups = 3 : i64} : (tensor<1x2x2x3xf32>, tensor<3x3x1x3xf32>) -> tensor<1x4x4x3xf32>
  return %0 : tensor<1x4x4x3xf32>
}

// -----

// Pointwise (1x1, stride 1, unpadded) input gradient. direct: a plain contraction over F reading
// dY and the [C, F] kernel through their maps (no flipped kernel). im2col: the named conv.
// DIRECT-DAG:   #[[MAP:map[0-9]*]] = affine_map<(d0, d1, d2, d3, d4) -> (d0, d1, d2, d4)>
// DIRECT-DAG:   #[[MAP1:map[0-9]*]] = affine_map<(d0, d1, d2, d3, d4) -> (d3, d4)>
// DIRECT-DAG:   #[[MAP2:map[0-9]*]] = affine_map<(d0, d1, d2, d3, d4) -> (d0, d1, d2, d3)>
// DIRECT-LABEL: func.func @conv2d_grad_input_pointwise(
// DIRECT-SAME:    %[[ARG0:.*]]: tensor<1x3x3x4xf32>, %[[ARG1:.*]]: tensor<1x1x2x4xf32>) -> tensor<1x3x3x2xf32> {
// DIRECT-NEXT:    %[[K:.*]] = tensor.collapse_shape %[[ARG1]] {{\[\[}}0, 1, 2], [3]] : tensor<1x1x2x4xf32> into tensor<2x4xf32>
// DIRECT-NEXT:    %[[CST:.*]] = arith.constant 0.000000e+00 : f32
// DIRECT-NEXT:    %[[V0:.*]] = tensor.empty() : tensor<1x3x3x2xf32>
// DIRECT-NEXT:    %[[V1:.*]] = linalg.fill ins(%[[CST]] : f32) outs(%[[V0]] : tensor<1x3x3x2xf32>) -> tensor<1x3x3x2xf32>
// DIRECT-NEXT:    %[[V2:.*]] = linalg.generic {indexing_maps = [#[[MAP]], #[[MAP1]], #[[MAP2]]], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]} ins(%[[ARG0]], %[[K]] : tensor<1x3x3x4xf32>, tensor<2x4xf32>) outs(%[[V1]] : tensor<1x3x3x2xf32>) {
// DIRECT-NEXT:    ^bb0(%[[IN:.*]]: f32, %[[IN_0:.*]]: f32, %[[OUT:.*]]: f32):
// DIRECT-NEXT:      %[[M:.*]] = arith.mulf %[[IN]], %[[IN_0]] : f32
// DIRECT-NEXT:      %[[A:.*]] = arith.addf %[[OUT]], %[[M]] : f32
// DIRECT-NEXT:      linalg.yield %[[A]] : f32
// DIRECT-NEXT:    } -> tensor<1x3x3x2xf32>
// DIRECT-NEXT:    return %[[V2]] : tensor<1x3x3x2xf32>
// IM2COL-LABEL: func.func @conv2d_grad_input_pointwise(
// IM2COL:         linalg.conv_2d_nhwc_hwcf {dilations = dense<1> : tensor<2xi64>, strides = dense<1> : tensor<2xi64>} ins(%{{.*}}, %{{.*}} : tensor<1x3x3x4xf32>, tensor<1x1x4x2xf32>) outs(%{{.*}} : tensor<1x3x3x2xf32>)
func.func @conv2d_grad_input_pointwise(%dy: tensor<1x3x3x4xf32>, %w: tensor<1x1x2x4xf32>) -> tensor<1x3x3x2xf32> {
  %0 = "tinytrain.conv2d_grad_input"(%dy, %w) {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, groups = 1 : i64} : (tensor<1x3x3x4xf32>, tensor<1x1x2x4xf32>) -> tensor<1x3x3x2xf32>
  return %0 : tensor<1x3x3x2xf32>
}

// -----

// Pointwise input gradient with a long F (C*F/(C+F) = 64) over 128 rows N*H*W. direct: the
// contraction over F as above. im2col: transposed, (W[C, F] @ dY^T[F, M])^T, so that the matmul's
// columns are the M rows rather than the narrow C.
// DIRECT-LABEL: func.func @conv2d_grad_input_pointwise_long_f(
// DIRECT:         linalg.generic
// DIRECT-NOT:     linalg.transpose
// DIRECT:         return
// IM2COL-LABEL: func.func @conv2d_grad_input_pointwise_long_f(
// IM2COL-SAME:    %[[DY:.*]]: tensor<2x8x8x192xf32>, %[[W:.*]]: tensor<1x1x96x192xf32>) -> tensor<2x8x8x96xf32> {
// IM2COL:         %[[G:.*]] = tensor.expand_shape %{{.*}} {{\[\[}}0, 1]] output_shape [128, 192] : tensor<24576xf32> into tensor<128x192xf32>
// IM2COL:         %[[GT:.*]] = linalg.transpose ins(%[[G]] : tensor<128x192xf32>) outs(%{{.*}} : tensor<192x128xf32>) permutation = [1, 0]
// IM2COL-NEXT:    %[[K:.*]] = tensor.collapse_shape %[[W]] {{\[\[}}0, 1, 2], [3]] : tensor<1x1x96x192xf32> into tensor<96x192xf32>
// IM2COL:         %[[P:.*]] = linalg.matmul ins(%[[K]], %[[GT]] : tensor<96x192xf32>, tensor<192x128xf32>) outs(%{{.*}} : tensor<96x128xf32>) -> tensor<96x128xf32>
// IM2COL:         linalg.transpose ins(%[[P]] : tensor<96x128xf32>) outs(%{{.*}} : tensor<128x96xf32>) permutation = [1, 0]
// IM2COL-NOT:     linalg.conv_2d_nhwc_hwcf
// IM2COL:         return %{{.*}} : tensor<2x8x8x96xf32>
func.func @conv2d_grad_input_pointwise_long_f(%dy: tensor<2x8x8x192xf32>, %w: tensor<1x1x96x192xf32>) -> tensor<2x8x8x96xf32> {
  %0 = "tinytrain.conv2d_grad_input"(%dy, %w) {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, groups = 1 : i64} : (tensor<2x8x8x192xf32>, tensor<1x1x96x192xf32>) -> tensor<2x8x8x96xf32>
  return %0 : tensor<2x8x8x96xf32>
}

// -----

// conv2d_grad_input_acc: the accumulator is the reduction's init (no zero fill, no separate add),
// so IREE sums into its storage. direct: the 1x1 contraction generic; im2col: the named conv.
// DIRECT-LABEL: func.func @conv2d_grad_input_acc(
// DIRECT-SAME:    %[[ACC:.*]]: tensor<1x4x4x3xf32>, %[[DY:.*]]: tensor<1x4x4x5xf32>, %[[W:.*]]: tensor<1x1x3x5xf32>)
// DIRECT-NOT:     linalg.fill
// DIRECT:         %[[K:.*]] = tensor.collapse_shape %[[W]]
// DIRECT-NEXT:    %[[R:.*]] = linalg.generic {{.*}} ins(%[[DY]], %[[K]] : tensor<1x4x4x5xf32>, tensor<3x5xf32>) outs(%[[ACC]] : tensor<1x4x4x3xf32>)
// DIRECT:           arith.mulf
// DIRECT-NEXT:      arith.addf
// DIRECT:         return %[[R]] : tensor<1x4x4x3xf32>
// IM2COL-LABEL: func.func @conv2d_grad_input_acc(
// IM2COL-SAME:    %[[ACC:.*]]: tensor<1x4x4x3xf32>,
// IM2COL:         %[[R:.*]] = linalg.conv_2d_nhwc_hwcf {{.*}} outs(%[[ACC]] : tensor<1x4x4x3xf32>)
// IM2COL-NEXT:    return %[[R]] : tensor<1x4x4x3xf32>
func.func @conv2d_grad_input_acc(%acc: tensor<1x4x4x3xf32>, %dy: tensor<1x4x4x5xf32>, %w: tensor<1x1x3x5xf32>) -> tensor<1x4x4x3xf32> {
  %0 = "tinytrain.conv2d_grad_input_acc"(%acc, %dy, %w) {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, groups = 1 : i64} : (tensor<1x4x4x3xf32>, tensor<1x4x4x5xf32>, tensor<1x1x3x5xf32>) -> tensor<1x4x4x3xf32>
  return %0 : tensor<1x4x4x3xf32>
}
