// RUN: tinytrain-opt -p to-linalg --split-input-file %s | filecheck %s

// One case per layer op of issue #7 (dialects/tinytrain_layers.py): the ops, maps and
// bodies the tinytrain -> linalg conversion patterns build. Numerics against PyTorch:
// tests/python/test_layer_lowering.py.

// Zero padding as a gather over the padded shape: the source index is clamped into the input
// (tensor.extract) and zero is selected outside it. Unpadded dims read linalg.index directly.
// CHECK-DAG:   #[[MAP:map[0-9]*]] = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>
// CHECK-LABEL: func.func @pad(
// CHECK-SAME:    %[[ARG0:.*]]: tensor<1x4x4x2xf32>) -> tensor<1x7x5x2xf32> {
// CHECK-NEXT:  %[[V0:.*]] = tensor.empty() : tensor<1x7x5x2xf32>
// CHECK-NEXT:  %[[V1:.*]] = linalg.generic {indexing_maps = [#[[MAP]]], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} outs(%[[V0]] : tensor<1x7x5x2xf32>) {
// CHECK-NEXT:  ^bb0(%[[OUT:.*]]: f32):
// CHECK-NEXT:    %[[CST:.*]] = arith.constant 0.000000e+00 : f32
// CHECK-NEXT:    %[[C0:.*]] = arith.constant 0 : index
// CHECK-NEXT:    %[[V2:.*]] = linalg.index 0 : index
// CHECK-NEXT:    %[[V3:.*]] = linalg.index 1 : index
// CHECK-NEXT:    %[[C1:.*]] = arith.constant 1 : index
// CHECK-NEXT:    %[[V4:.*]] = arith.subi %[[V3]], %[[C1]] : index
// CHECK-NEXT:    %[[V5:.*]] = arith.cmpi sge, %[[V4]], %[[C0]] : index
// CHECK-NEXT:    %[[C4:.*]] = arith.constant 4 : index
// CHECK-NEXT:    %[[V6:.*]] = arith.cmpi slt, %[[V4]], %[[C4]] : index
// CHECK-NEXT:    %[[V7:.*]] = arith.andi %[[V5]], %[[V6]] : i1
// CHECK-NEXT:    %[[V8:.*]] = arith.maxsi %[[V4]], %[[C0]] : index
// CHECK-NEXT:    %[[C3:.*]] = arith.constant 3 : index
// CHECK-NEXT:    %[[V9:.*]] = arith.minsi %[[V8]], %[[C3]] : index
// CHECK-NEXT:    %[[V10:.*]] = linalg.index 2 : index
// CHECK-NEXT:    %[[V11:.*]] = arith.cmpi sge, %[[V10]], %[[C0]] : index
// CHECK-NEXT:    %[[C4_0:.*]] = arith.constant 4 : index
// CHECK-NEXT:    %[[V12:.*]] = arith.cmpi slt, %[[V10]], %[[C4_0]] : index
// CHECK-NEXT:    %[[V13:.*]] = arith.andi %[[V11]], %[[V12]] : i1
// CHECK-NEXT:    %[[V14:.*]] = arith.andi %[[V7]], %[[V13]] : i1
// CHECK-NEXT:    %[[V15:.*]] = arith.maxsi %[[V10]], %[[C0]] : index
// CHECK-NEXT:    %[[C3_1:.*]] = arith.constant 3 : index
// CHECK-NEXT:    %[[V16:.*]] = arith.minsi %[[V15]], %[[C3_1]] : index
// CHECK-NEXT:    %[[V17:.*]] = linalg.index 3 : index
// CHECK-NEXT:    %[[EXTRACTED:.*]] = tensor.extract %[[ARG0]][%[[V2]], %[[V9]], %[[V16]], %[[V17]]] : tensor<1x4x4x2xf32>
// CHECK-NEXT:    %[[V18:.*]] = arith.select %[[V14]], %[[EXTRACTED]], %[[CST]] : f32
// CHECK-NEXT:    linalg.yield %[[V18]] : f32
// CHECK-NEXT:  } -> tensor<1x7x5x2xf32>
// CHECK-NEXT:  return %[[V1]] : tensor<1x7x5x2xf32>
func.func @pad(%x: tensor<1x4x4x2xf32>) -> tensor<1x7x5x2xf32> {
  %0 = "tinytrain.pad"(%x) {low = array<i64: 0, 1, 0, 0>, high = array<i64: 0, 2, 1, 0>} : (tensor<1x4x4x2xf32>) -> tensor<1x7x5x2xf32>
  return %0 : tensor<1x7x5x2xf32>
}

// -----

// Slice: tensor.extract_slice at the offsets, unit strides.
// CHECK-LABEL: func.func @slice(
// CHECK-SAME:    %[[ARG0:.*]]: tensor<1x4x4x5xf32>) -> tensor<1x2x3x2xf32> {
// CHECK-NEXT:  %[[EXTRACTED_SLICE:.*]] = tensor.extract_slice %[[ARG0]][0, 1, 0, 3] [1, 2, 3, 2] [1, 1, 1, 1] : tensor<1x4x4x5xf32> to tensor<1x2x3x2xf32>
// CHECK-NEXT:  return %[[EXTRACTED_SLICE]] : tensor<1x2x3x2xf32>
func.func @slice(%x: tensor<1x4x4x5xf32>) -> tensor<1x2x3x2xf32> {
  %0 = "tinytrain.slice"(%x) {offsets = array<i64: 0, 1, 0, 3>} : (tensor<1x4x4x5xf32>) -> tensor<1x2x3x2xf32>
  return %0 : tensor<1x2x3x2xf32>
}

// -----

// Concat: both inputs inserted into an empty result, the rhs at the lhs's size along the axis.
// CHECK-LABEL: func.func @concat(
// CHECK-SAME:    %[[ARG0:.*]]: tensor<1x2x2x2xf32>, %[[ARG1:.*]]: tensor<1x2x2x3xf32>) -> tensor<1x2x2x5xf32> {
// CHECK-NEXT:  %[[V0:.*]] = tensor.empty() : tensor<1x2x2x5xf32>
// CHECK-NEXT:  %[[INSERTED_SLICE:.*]] = tensor.insert_slice %[[ARG0]] into %[[V0]][0, 0, 0, 0] [1, 2, 2, 2] [1, 1, 1, 1] : tensor<1x2x2x2xf32> into tensor<1x2x2x5xf32>
// CHECK-NEXT:  %[[INSERTED_SLICE_0:.*]] = tensor.insert_slice %[[ARG1]] into %[[INSERTED_SLICE]][0, 0, 0, 2] [1, 2, 2, 3] [1, 1, 1, 1] : tensor<1x2x2x3xf32> into tensor<1x2x2x5xf32>
// CHECK-NEXT:  return %[[INSERTED_SLICE_0]] : tensor<1x2x2x5xf32>
func.func @concat(%a: tensor<1x2x2x2xf32>, %b: tensor<1x2x2x3xf32>) -> tensor<1x2x2x5xf32> {
  %0 = "tinytrain.concat"(%a, %b) {axis = 3 : i64} : (tensor<1x2x2x2xf32>, tensor<1x2x2x3xf32>) -> tensor<1x2x2x5xf32>
  return %0 : tensor<1x2x2x5xf32>
}

// -----

// Insert: tensor.insert_slice of the piece into the destination itself (no empty tensor).
// CHECK-LABEL: func.func @insert(
// CHECK-SAME:    %[[W:.*]]: tensor<1x1x4x8xi8>, %[[P:.*]]: tensor<1x1x4x2xi8>) -> tensor<1x1x4x8xi8> {
// CHECK-NEXT:  %[[R:.*]] = tensor.insert_slice %[[P]] into %[[W]][0, 0, 0, 6] [1, 1, 4, 2] [1, 1, 1, 1] : tensor<1x1x4x2xi8> into tensor<1x1x4x8xi8>
// CHECK-NEXT:  return %[[R]] : tensor<1x1x4x8xi8>
func.func @insert(%w: tensor<1x1x4x8xi8>, %p: tensor<1x1x4x2xi8>) -> tensor<1x1x4x8xi8> {
  %0 = "tinytrain.insert"(%w, %p) {offsets = array<i64: 0, 0, 0, 6>} : (tensor<1x1x4x8xi8>, tensor<1x1x4x2xi8>) -> tensor<1x1x4x8xi8>
  return %0 : tensor<1x1x4x8xi8>
}

// -----

// Concat of int8 weights (a sparse-update slice and its frozen rest): the same, in i8.
// CHECK-LABEL: func.func @concat_i8(
// CHECK-NEXT:  %[[V0:.*]] = tensor.empty() : tensor<1x1x2x8xi8>
// CHECK-NEXT:  %[[S0:.*]] = tensor.insert_slice %{{.*}} into %[[V0]][0, 0, 0, 0] [1, 1, 2, 1] [1, 1, 1, 1] : tensor<1x1x2x1xi8> into tensor<1x1x2x8xi8>
// CHECK-NEXT:  %[[S1:.*]] = tensor.insert_slice %{{.*}} into %[[S0]][0, 0, 0, 1] [1, 1, 2, 7] [1, 1, 1, 1] : tensor<1x1x2x7xi8> into tensor<1x1x2x8xi8>
// CHECK-NEXT:  return %[[S1]] : tensor<1x1x2x8xi8>
func.func @concat_i8(%a: tensor<1x1x2x1xi8>, %b: tensor<1x1x2x7xi8>) -> tensor<1x1x2x8xi8> {
  %0 = "tinytrain.concat"(%a, %b) {axis = 3 : i64} : (tensor<1x1x2x1xi8>, tensor<1x1x2x7xi8>) -> tensor<1x1x2x8xi8>
  return %0 : tensor<1x1x2x8xi8>
}

// -----

// Max pool: -inf padding (padding never wins, the gather of @pad with -inf), only as far as
// the windows read ((4 - 1) * 2 + 3 = 9 rows: the bottom/right padding is never read),
// pooling_nhwc_max into a -inf filled output.
// CHECK-DAG:   #[[MAP:map[0-9]*]] = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>
// CHECK-LABEL: func.func @max_pool2d(
// CHECK-SAME:    %[[ARG0:.*]]: tensor<1x8x8x2xf32>) -> tensor<1x4x4x2xf32> {
// CHECK-NEXT:  %[[V0:.*]] = tensor.empty() : tensor<1x9x9x2xf32>
// CHECK-NEXT:  %[[V1:.*]] = linalg.generic {indexing_maps = [#[[MAP]]], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} outs(%[[V0]] : tensor<1x9x9x2xf32>) {
// CHECK-NEXT:  ^bb0(%[[OUT:.*]]: f32):
// CHECK-NEXT:    %[[CST_0:.*]] = arith.constant 0xFF800000 : f32
// CHECK-NEXT:    %[[C0:.*]] = arith.constant 0 : index
// CHECK-NEXT:    %[[V6:.*]] = linalg.index 0 : index
// CHECK-NEXT:    %[[V7:.*]] = linalg.index 1 : index
// CHECK-NEXT:    %[[C1:.*]] = arith.constant 1 : index
// CHECK-NEXT:    %[[V8:.*]] = arith.subi %[[V7]], %[[C1]] : index
// CHECK-NEXT:    %[[V9:.*]] = arith.cmpi sge, %[[V8]], %[[C0]] : index
// CHECK-NEXT:    %[[C8:.*]] = arith.constant 8 : index
// CHECK-NEXT:    %[[V10:.*]] = arith.cmpi slt, %[[V8]], %[[C8]] : index
// CHECK-NEXT:    %[[V11:.*]] = arith.andi %[[V9]], %[[V10]] : i1
// CHECK-NEXT:    %[[V12:.*]] = arith.maxsi %[[V8]], %[[C0]] : index
// CHECK-NEXT:    %[[C7:.*]] = arith.constant 7 : index
// CHECK-NEXT:    %[[V13:.*]] = arith.minsi %[[V12]], %[[C7]] : index
// CHECK-NEXT:    %[[V14:.*]] = linalg.index 2 : index
// CHECK-NEXT:    %[[C1_1:.*]] = arith.constant 1 : index
// CHECK-NEXT:    %[[V15:.*]] = arith.subi %[[V14]], %[[C1_1]] : index
// CHECK-NEXT:    %[[V16:.*]] = arith.cmpi sge, %[[V15]], %[[C0]] : index
// CHECK-NEXT:    %[[C8_2:.*]] = arith.constant 8 : index
// CHECK-NEXT:    %[[V17:.*]] = arith.cmpi slt, %[[V15]], %[[C8_2]] : index
// CHECK-NEXT:    %[[V18:.*]] = arith.andi %[[V16]], %[[V17]] : i1
// CHECK-NEXT:    %[[V19:.*]] = arith.andi %[[V11]], %[[V18]] : i1
// CHECK-NEXT:    %[[V20:.*]] = arith.maxsi %[[V15]], %[[C0]] : index
// CHECK-NEXT:    %[[C7_3:.*]] = arith.constant 7 : index
// CHECK-NEXT:    %[[V21:.*]] = arith.minsi %[[V20]], %[[C7_3]] : index
// CHECK-NEXT:    %[[V22:.*]] = linalg.index 3 : index
// CHECK-NEXT:    %[[EXTRACTED:.*]] = tensor.extract %[[ARG0]][%[[V6]], %[[V13]], %[[V21]], %[[V22]]] : tensor<1x8x8x2xf32>
// CHECK-NEXT:    %[[V23:.*]] = arith.select %[[V19]], %[[EXTRACTED]], %[[CST_0]] : f32
// CHECK-NEXT:    linalg.yield %[[V23]] : f32
// CHECK-NEXT:  } -> tensor<1x9x9x2xf32>
// CHECK-NEXT:  %[[V2:.*]] = tensor.empty() : tensor<3x3xf32>
// CHECK-NEXT:  %[[CST:.*]] = arith.constant 0xFF800000 : f32
// CHECK-NEXT:  %[[V3:.*]] = tensor.empty() : tensor<1x4x4x2xf32>
// CHECK-NEXT:  %[[V4:.*]] = linalg.fill ins(%[[CST]] : f32) outs(%[[V3]] : tensor<1x4x4x2xf32>) -> tensor<1x4x4x2xf32>
// CHECK-NEXT:  %[[V5:.*]] = linalg.pooling_nhwc_max {dilations = dense<1> : tensor<2xi64>, strides = dense<2> : tensor<2xi64>} ins(%[[V1]], %[[V2]] : tensor<1x9x9x2xf32>, tensor<3x3xf32>) outs(%[[V4]] : tensor<1x4x4x2xf32>) -> tensor<1x4x4x2xf32>
// CHECK-NEXT:  return %[[V5]] : tensor<1x4x4x2xf32>
func.func @max_pool2d(%x: tensor<1x8x8x2xf32>) -> tensor<1x4x4x2xf32> {
  %0 = "tinytrain.max_pool2d"(%x) {kernel = array<i64: 3, 3>, strides = array<i64: 2, 2>, padding = array<i64: 1, 1, 1, 1>} : (tensor<1x8x8x2xf32>) -> tensor<1x4x4x2xf32>
  return %0 : tensor<1x4x4x2xf32>
}

// -----

// Max pool gradient: per output (max, first flat window index) over the in-bounds window
// positions, then each input position gathers the output gradients whose argmax it is.
// CHECK-DAG:   #[[MAP:map[0-9]*]] = affine_map<(d0, d1, d2, d3, d4, d5) -> (d0, d1 * 2 + d4, d2 * 2 + d5, d3)>
// CHECK-DAG:   #[[MAP1:map[0-9]*]] = affine_map<(d0, d1, d2, d3, d4, d5) -> (d4, d5)>
// CHECK-DAG:   #[[MAP2:map[0-9]*]] = affine_map<(d0, d1, d2, d3, d4, d5) -> (d0, d1, d2, d3)>
// CHECK-DAG:   #[[MAP3:map[0-9]*]] = affine_map<(d0, d1, d2, d3, d4, d5) -> (d0, d1 + d4, d2 + d5, d3)>
// CHECK-LABEL: func.func @max_pool2d_grad(
// CHECK-SAME:    %[[ARG0:.*]]: tensor<1x4x4x1xf32>, %[[ARG1:.*]]: tensor<1x2x2x1xf32>) -> tensor<1x4x4x1xf32> {
// CHECK-NEXT:  %[[CST:.*]] = arith.constant 0xFF800000 : f32
// CHECK-NEXT:  %[[V0:.*]] = tensor.empty() : tensor<1x2x2x1xf32>
// CHECK-NEXT:  %[[V1:.*]] = linalg.fill ins(%[[CST]] : f32) outs(%[[V0]] : tensor<1x2x2x1xf32>) -> tensor<1x2x2x1xf32>
// CHECK-NEXT:  %[[C4_I32:.*]] = arith.constant 4 : i32
// CHECK-NEXT:  %[[V2:.*]] = tensor.empty() : tensor<1x2x2x1xi32>
// CHECK-NEXT:  %[[V3:.*]] = linalg.fill ins(%[[C4_I32]] : i32) outs(%[[V2]] : tensor<1x2x2x1xi32>) -> tensor<1x2x2x1xi32>
// CHECK-NEXT:  %[[V4:.*]] = tensor.empty() : tensor<2x2xf32>
// CHECK-NEXT:  %[[V5:.*]]:2 = linalg.generic {indexing_maps = [#[[MAP]], #[[MAP1]], #[[MAP2]], #[[MAP2]]], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction", "reduction"]} ins(%[[ARG0]], %[[V4]] : tensor<1x4x4x1xf32>, tensor<2x2xf32>) outs(%[[V1]], %[[V3]] : tensor<1x2x2x1xf32>, tensor<1x2x2x1xi32>) {
// CHECK-NEXT:  ^bb0(%[[IN:.*]]: f32, %[[IN_3:.*]]: f32, %[[OUT:.*]]: f32, %[[OUT_4:.*]]: i32):
// CHECK-NEXT:    %[[V14:.*]] = linalg.index 4 : index
// CHECK-NEXT:    %[[V15:.*]] = linalg.index 5 : index
// CHECK-NEXT:    %[[C2:.*]] = arith.constant 2 : index
// CHECK-NEXT:    %[[V16:.*]] = arith.muli %[[V14]], %[[C2]] : index
// CHECK-NEXT:    %[[V17:.*]] = arith.addi %[[V16]], %[[V15]] : index
// CHECK-NEXT:    %[[V18:.*]] = arith.index_cast %[[V17]] : index to i32
// CHECK-NEXT:    %[[V19:.*]] = linalg.index 1 : index
// CHECK-NEXT:    %[[C2_5:.*]] = arith.constant 2 : index
// CHECK-NEXT:    %[[V20:.*]] = arith.muli %[[V19]], %[[C2_5]] : index
// CHECK-NEXT:    %[[V21:.*]] = arith.addi %[[V20]], %[[V14]] : index
// CHECK-NEXT:    %[[C0:.*]] = arith.constant 0 : index
// CHECK-NEXT:    %[[V22:.*]] = arith.cmpi sge, %[[V21]], %[[C0]] : index
// CHECK-NEXT:    %[[C4:.*]] = arith.constant 4 : index
// CHECK-NEXT:    %[[V23:.*]] = arith.cmpi slt, %[[V21]], %[[C4]] : index
// CHECK-NEXT:    %[[V24:.*]] = arith.andi %[[V22]], %[[V23]] : i1
// CHECK-NEXT:    %[[V25:.*]] = linalg.index 2 : index
// CHECK-NEXT:    %[[C2_6:.*]] = arith.constant 2 : index
// CHECK-NEXT:    %[[V26:.*]] = arith.muli %[[V25]], %[[C2_6]] : index
// CHECK-NEXT:    %[[V27:.*]] = arith.addi %[[V26]], %[[V15]] : index
// CHECK-NEXT:    %[[C0_7:.*]] = arith.constant 0 : index
// CHECK-NEXT:    %[[V28:.*]] = arith.cmpi sge, %[[V27]], %[[C0_7]] : index
// CHECK-NEXT:    %[[C4_8:.*]] = arith.constant 4 : index
// CHECK-NEXT:    %[[V29:.*]] = arith.cmpi slt, %[[V27]], %[[C4_8]] : index
// CHECK-NEXT:    %[[V30:.*]] = arith.andi %[[V28]], %[[V29]] : i1
// CHECK-NEXT:    %[[V31:.*]] = arith.andi %[[V24]], %[[V30]] : i1
// CHECK-NEXT:    %[[V32:.*]] = arith.cmpf ogt, %[[IN]], %[[OUT]] : f32
// CHECK-NEXT:    %[[V33:.*]] = arith.cmpf oeq, %[[IN]], %[[OUT]] : f32
// CHECK-NEXT:    %[[V34:.*]] = arith.cmpi slt, %[[V18]], %[[OUT_4]] : i32
// CHECK-NEXT:    %[[V35:.*]] = arith.andi %[[V33]], %[[V34]] : i1
// CHECK-NEXT:    %[[V36:.*]] = arith.ori %[[V32]], %[[V35]] : i1
// CHECK-NEXT:    %[[V37:.*]] = arith.andi %[[V31]], %[[V36]] : i1
// CHECK-NEXT:    %[[V38:.*]] = arith.select %[[V37]], %[[IN]], %[[OUT]] : f32
// CHECK-NEXT:    %[[V39:.*]] = arith.select %[[V37]], %[[V18]], %[[OUT_4]] : i32
// CHECK-NEXT:    linalg.yield %[[V38]], %[[V39]] : f32, i32
// CHECK-NEXT:  } -> (tensor<1x2x2x1xf32>, tensor<1x2x2x1xi32>)
// CHECK-NEXT:  %[[CST_0:.*]] = arith.constant 0.000000e+00 : f32
// CHECK-NEXT:  %[[V6:.*]] = tensor.empty() : tensor<1x5x5x1xf32>
// CHECK-NEXT:  %[[V7:.*]] = linalg.fill ins(%[[CST_0]] : f32) outs(%[[V6]] : tensor<1x5x5x1xf32>) -> tensor<1x5x5x1xf32>
// CHECK-NEXT:  %[[INSERTED_SLICE:.*]] = tensor.insert_slice %[[ARG1]] into %[[V7]][0, 1, 1, 0] [1, 2, 2, 1] [1, 2, 2, 1] : tensor<1x2x2x1xf32> into tensor<1x5x5x1xf32>
// CHECK-NEXT:  %[[C_1_I32:.*]] = arith.constant -1 : i32
// CHECK-NEXT:  %[[V8:.*]] = tensor.empty() : tensor<1x5x5x1xi32>
// CHECK-NEXT:  %[[V9:.*]] = linalg.fill ins(%[[C_1_I32]] : i32) outs(%[[V8]] : tensor<1x5x5x1xi32>) -> tensor<1x5x5x1xi32>
// CHECK-NEXT:  %[[INSERTED_SLICE_1:.*]] = tensor.insert_slice %[[V5]]#1 into %[[V9]][0, 1, 1, 0] [1, 2, 2, 1] [1, 2, 2, 1] : tensor<1x2x2x1xi32> into tensor<1x5x5x1xi32>
// CHECK-NEXT:  %[[V10:.*]] = tensor.empty() : tensor<2x2xf32>
// CHECK-NEXT:  %[[CST_2:.*]] = arith.constant 0.000000e+00 : f32
// CHECK-NEXT:  %[[V11:.*]] = tensor.empty() : tensor<1x4x4x1xf32>
// CHECK-NEXT:  %[[V12:.*]] = linalg.fill ins(%[[CST_2]] : f32) outs(%[[V11]] : tensor<1x4x4x1xf32>) -> tensor<1x4x4x1xf32>
// CHECK-NEXT:  %[[V13:.*]] = linalg.generic {indexing_maps = [#[[MAP3]], #[[MAP3]], #[[MAP1]], #[[MAP2]]], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction", "reduction"]} ins(%[[INSERTED_SLICE]], %[[INSERTED_SLICE_1]], %[[V10]] : tensor<1x5x5x1xf32>, tensor<1x5x5x1xi32>, tensor<2x2xf32>) outs(%[[V12]] : tensor<1x4x4x1xf32>) {
// CHECK-NEXT:  ^bb0(%[[IN:.*]]: f32, %[[IN_3:.*]]: i32, %[[IN_4:.*]]: f32, %[[OUT:.*]]: f32):
// CHECK-NEXT:    %[[V14:.*]] = linalg.index 4 : index
// CHECK-NEXT:    %[[V15:.*]] = linalg.index 5 : index
// CHECK-NEXT:    %[[C2:.*]] = arith.constant 2 : index
// CHECK-NEXT:    %[[V16:.*]] = arith.muli %[[V14]], %[[C2]] : index
// CHECK-NEXT:    %[[V17:.*]] = arith.addi %[[V16]], %[[V15]] : index
// CHECK-NEXT:    %[[C3:.*]] = arith.constant 3 : index
// CHECK-NEXT:    %[[V18:.*]] = arith.subi %[[C3]], %[[V17]] : index
// CHECK-NEXT:    %[[V19:.*]] = arith.index_cast %[[V18]] : index to i32
// CHECK-NEXT:    %[[V20:.*]] = arith.cmpi eq, %[[IN_3]], %[[V19]] : i32
// CHECK-NEXT:    %[[CST_5:.*]] = arith.constant 0.000000e+00 : f32
// CHECK-NEXT:    %[[V21:.*]] = arith.select %[[V20]], %[[IN]], %[[CST_5]] : f32
// CHECK-NEXT:    %[[V22:.*]] = arith.addf %[[OUT]], %[[V21]] : f32
// CHECK-NEXT:    linalg.yield %[[V22]] : f32
// CHECK-NEXT:  } -> tensor<1x4x4x1xf32>
// CHECK-NEXT:  return %[[V13]] : tensor<1x4x4x1xf32>
func.func @max_pool2d_grad(%x: tensor<1x4x4x1xf32>, %dy: tensor<1x2x2x1xf32>) -> tensor<1x4x4x1xf32> {
  %0 = "tinytrain.max_pool2d_grad"(%x, %dy) {kernel = array<i64: 2, 2>, strides = array<i64: 2, 2>, padding = array<i64: 0, 0, 0, 0>} : (tensor<1x4x4x1xf32>, tensor<1x2x2x1xf32>) -> tensor<1x4x4x1xf32>
  return %0 : tensor<1x4x4x1xf32>
}

// -----

// Average pool, divisor "window" (count_include_pad): zero padding, a sum pool, / (kh * kw).
// CHECK-DAG:   #[[MAP:map[0-9]*]] = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>
// CHECK-LABEL: func.func @avg_pool2d_window(
// CHECK-SAME:    %[[ARG0:.*]]: tensor<1x4x4x2xf32>) -> tensor<1x2x2x2xf32> {
// CHECK-NEXT:  %[[V0:.*]] = tensor.empty() : tensor<1x5x5x2xf32>
// CHECK-NEXT:  %[[V1:.*]] = linalg.generic {indexing_maps = [#[[MAP]]], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} outs(%[[V0]] : tensor<1x5x5x2xf32>) {
// CHECK-NEXT:  ^bb0(%[[OUT:.*]]: f32):
// CHECK-NEXT:    %[[CST_1:.*]] = arith.constant 0.000000e+00 : f32
// CHECK-NEXT:    %[[C0:.*]] = arith.constant 0 : index
// CHECK-NEXT:    %[[V8:.*]] = linalg.index 0 : index
// CHECK-NEXT:    %[[V9:.*]] = linalg.index 1 : index
// CHECK-NEXT:    %[[C1:.*]] = arith.constant 1 : index
// CHECK-NEXT:    %[[V10:.*]] = arith.subi %[[V9]], %[[C1]] : index
// CHECK-NEXT:    %[[V11:.*]] = arith.cmpi sge, %[[V10]], %[[C0]] : index
// CHECK-NEXT:    %[[C4:.*]] = arith.constant 4 : index
// CHECK-NEXT:    %[[V12:.*]] = arith.cmpi slt, %[[V10]], %[[C4]] : index
// CHECK-NEXT:    %[[V13:.*]] = arith.andi %[[V11]], %[[V12]] : i1
// CHECK-NEXT:    %[[V14:.*]] = arith.maxsi %[[V10]], %[[C0]] : index
// CHECK-NEXT:    %[[C3:.*]] = arith.constant 3 : index
// CHECK-NEXT:    %[[V15:.*]] = arith.minsi %[[V14]], %[[C3]] : index
// CHECK-NEXT:    %[[V16:.*]] = linalg.index 2 : index
// CHECK-NEXT:    %[[C1_2:.*]] = arith.constant 1 : index
// CHECK-NEXT:    %[[V17:.*]] = arith.subi %[[V16]], %[[C1_2]] : index
// CHECK-NEXT:    %[[V18:.*]] = arith.cmpi sge, %[[V17]], %[[C0]] : index
// CHECK-NEXT:    %[[C4_3:.*]] = arith.constant 4 : index
// CHECK-NEXT:    %[[V19:.*]] = arith.cmpi slt, %[[V17]], %[[C4_3]] : index
// CHECK-NEXT:    %[[V20:.*]] = arith.andi %[[V18]], %[[V19]] : i1
// CHECK-NEXT:    %[[V21:.*]] = arith.andi %[[V13]], %[[V20]] : i1
// CHECK-NEXT:    %[[V22:.*]] = arith.maxsi %[[V17]], %[[C0]] : index
// CHECK-NEXT:    %[[C3_4:.*]] = arith.constant 3 : index
// CHECK-NEXT:    %[[V23:.*]] = arith.minsi %[[V22]], %[[C3_4]] : index
// CHECK-NEXT:    %[[V24:.*]] = linalg.index 3 : index
// CHECK-NEXT:    %[[EXTRACTED:.*]] = tensor.extract %[[ARG0]][%[[V8]], %[[V15]], %[[V23]], %[[V24]]] : tensor<1x4x4x2xf32>
// CHECK-NEXT:    %[[V25:.*]] = arith.select %[[V21]], %[[EXTRACTED]], %[[CST_1]] : f32
// CHECK-NEXT:    linalg.yield %[[V25]] : f32
// CHECK-NEXT:  } -> tensor<1x5x5x2xf32>
// CHECK-NEXT:  %[[V2:.*]] = tensor.empty() : tensor<3x3xf32>
// CHECK-NEXT:  %[[CST:.*]] = arith.constant 0.000000e+00 : f32
// CHECK-NEXT:  %[[V3:.*]] = tensor.empty() : tensor<1x2x2x2xf32>
// CHECK-NEXT:  %[[V4:.*]] = linalg.fill ins(%[[CST]] : f32) outs(%[[V3]] : tensor<1x2x2x2xf32>) -> tensor<1x2x2x2xf32>
// CHECK-NEXT:  %[[V5:.*]] = linalg.pooling_nhwc_sum {dilations = dense<1> : tensor<2xi64>, strides = dense<2> : tensor<2xi64>} ins(%[[V1]], %[[V2]] : tensor<1x5x5x2xf32>, tensor<3x3xf32>) outs(%[[V4]] : tensor<1x2x2x2xf32>) -> tensor<1x2x2x2xf32>
// CHECK-NEXT:  %[[CST_0:.*]] = arith.constant 9.000000e+00 : f32
// CHECK-NEXT:  %[[V6:.*]] = tensor.empty() : tensor<1x2x2x2xf32>
// CHECK-NEXT:  %[[V7:.*]] = linalg.generic {indexing_maps = [#[[MAP]], #[[MAP]]], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%[[V5]] : tensor<1x2x2x2xf32>) outs(%[[V6]] : tensor<1x2x2x2xf32>) {
// CHECK-NEXT:  ^bb0(%[[IN:.*]]: f32, %[[OUT:.*]]: f32):
// CHECK-NEXT:    %[[V8:.*]] = arith.divf %[[IN]], %[[CST_0]] : f32
// CHECK-NEXT:    linalg.yield %[[V8]] : f32
// CHECK-NEXT:  } -> tensor<1x2x2x2xf32>
// CHECK-NEXT:  return %[[V7]] : tensor<1x2x2x2xf32>
func.func @avg_pool2d_window(%x: tensor<1x4x4x2xf32>) -> tensor<1x2x2x2xf32> {
  %0 = "tinytrain.avg_pool2d"(%x) {kernel = array<i64: 3, 3>, strides = array<i64: 2, 2>, padding = array<i64: 1, 1, 0, 0>, divisor = "window"} : (tensor<1x4x4x2xf32>) -> tensor<1x2x2x2xf32>
  return %0 : tensor<1x2x2x2xf32>
}

// -----

// Average pool, divisor "valid": the sum is divided by the in-bounds count of each window,
// computed from the output indices.
// CHECK-DAG:   #[[MAP:map[0-9]*]] = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>
// CHECK-LABEL: func.func @avg_pool2d_valid(
// CHECK-SAME:    %[[ARG0:.*]]: tensor<1x3x3x1xf32>) -> tensor<1x2x2x1xf32> {
// CHECK-NEXT:  %[[V0:.*]] = tensor.empty() : tensor<1x4x4x1xf32>
// CHECK-NEXT:  %[[V1:.*]] = linalg.generic {indexing_maps = [#[[MAP]]], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} outs(%[[V0]] : tensor<1x4x4x1xf32>) {
// CHECK-NEXT:  ^bb0(%[[OUT:.*]]: f32):
// CHECK-NEXT:    %[[CST_0:.*]] = arith.constant 0.000000e+00 : f32
// CHECK-NEXT:    %[[C0:.*]] = arith.constant 0 : index
// CHECK-NEXT:    %[[V8:.*]] = linalg.index 0 : index
// CHECK-NEXT:    %[[V9:.*]] = linalg.index 1 : index
// CHECK-NEXT:    %[[V10:.*]] = arith.cmpi sge, %[[V9]], %[[C0]] : index
// CHECK-NEXT:    %[[C3:.*]] = arith.constant 3 : index
// CHECK-NEXT:    %[[V11:.*]] = arith.cmpi slt, %[[V9]], %[[C3]] : index
// CHECK-NEXT:    %[[V12:.*]] = arith.andi %[[V10]], %[[V11]] : i1
// CHECK-NEXT:    %[[V13:.*]] = arith.maxsi %[[V9]], %[[C0]] : index
// CHECK-NEXT:    %[[C2:.*]] = arith.constant 2 : index
// CHECK-NEXT:    %[[V14:.*]] = arith.minsi %[[V13]], %[[C2]] : index
// CHECK-NEXT:    %[[V15:.*]] = linalg.index 2 : index
// CHECK-NEXT:    %[[V16:.*]] = arith.cmpi sge, %[[V15]], %[[C0]] : index
// CHECK-NEXT:    %[[C3_1:.*]] = arith.constant 3 : index
// CHECK-NEXT:    %[[V17:.*]] = arith.cmpi slt, %[[V15]], %[[C3_1]] : index
// CHECK-NEXT:    %[[V18:.*]] = arith.andi %[[V16]], %[[V17]] : i1
// CHECK-NEXT:    %[[V19:.*]] = arith.andi %[[V12]], %[[V18]] : i1
// CHECK-NEXT:    %[[V20:.*]] = arith.maxsi %[[V15]], %[[C0]] : index
// CHECK-NEXT:    %[[C2_2:.*]] = arith.constant 2 : index
// CHECK-NEXT:    %[[V21:.*]] = arith.minsi %[[V20]], %[[C2_2]] : index
// CHECK-NEXT:    %[[V22:.*]] = linalg.index 3 : index
// CHECK-NEXT:    %[[EXTRACTED:.*]] = tensor.extract %[[ARG0]][%[[V8]], %[[V14]], %[[V21]], %[[V22]]] : tensor<1x3x3x1xf32>
// CHECK-NEXT:    %[[V23:.*]] = arith.select %[[V19]], %[[EXTRACTED]], %[[CST_0]] : f32
// CHECK-NEXT:    linalg.yield %[[V23]] : f32
// CHECK-NEXT:  } -> tensor<1x4x4x1xf32>
// CHECK-NEXT:  %[[V2:.*]] = tensor.empty() : tensor<2x2xf32>
// CHECK-NEXT:  %[[CST:.*]] = arith.constant 0.000000e+00 : f32
// CHECK-NEXT:  %[[V3:.*]] = tensor.empty() : tensor<1x2x2x1xf32>
// CHECK-NEXT:  %[[V4:.*]] = linalg.fill ins(%[[CST]] : f32) outs(%[[V3]] : tensor<1x2x2x1xf32>) -> tensor<1x2x2x1xf32>
// CHECK-NEXT:  %[[V5:.*]] = linalg.pooling_nhwc_sum {dilations = dense<1> : tensor<2xi64>, strides = dense<2> : tensor<2xi64>} ins(%[[V1]], %[[V2]] : tensor<1x4x4x1xf32>, tensor<2x2xf32>) outs(%[[V4]] : tensor<1x2x2x1xf32>) -> tensor<1x2x2x1xf32>
// CHECK-NEXT:  %[[V6:.*]] = tensor.empty() : tensor<1x2x2x1xf32>
// CHECK-NEXT:  %[[V7:.*]] = linalg.generic {indexing_maps = [#[[MAP]], #[[MAP]]], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%[[V5]] : tensor<1x2x2x1xf32>) outs(%[[V6]] : tensor<1x2x2x1xf32>) {
// CHECK-NEXT:  ^bb0(%[[IN:.*]]: f32, %[[OUT:.*]]: f32):
// CHECK-NEXT:    %[[V8:.*]] = linalg.index 1 : index
// CHECK-NEXT:    %[[C2:.*]] = arith.constant 2 : index
// CHECK-NEXT:    %[[V9:.*]] = arith.muli %[[V8]], %[[C2]] : index
// CHECK-NEXT:    %[[C0:.*]] = arith.constant 0 : index
// CHECK-NEXT:    %[[V10:.*]] = arith.subi %[[V9]], %[[C0]] : index
// CHECK-NEXT:    %[[C2_0:.*]] = arith.constant 2 : index
// CHECK-NEXT:    %[[V11:.*]] = arith.addi %[[V10]], %[[C2_0]] : index
// CHECK-NEXT:    %[[C0_1:.*]] = arith.constant 0 : index
// CHECK-NEXT:    %[[V12:.*]] = arith.maxsi %[[V10]], %[[C0_1]] : index
// CHECK-NEXT:    %[[C3:.*]] = arith.constant 3 : index
// CHECK-NEXT:    %[[V13:.*]] = arith.minsi %[[V11]], %[[C3]] : index
// CHECK-NEXT:    %[[V14:.*]] = arith.subi %[[V13]], %[[V12]] : index
// CHECK-NEXT:    %[[V15:.*]] = linalg.index 2 : index
// CHECK-NEXT:    %[[C2_2:.*]] = arith.constant 2 : index
// CHECK-NEXT:    %[[V16:.*]] = arith.muli %[[V15]], %[[C2_2]] : index
// CHECK-NEXT:    %[[C0_3:.*]] = arith.constant 0 : index
// CHECK-NEXT:    %[[V17:.*]] = arith.subi %[[V16]], %[[C0_3]] : index
// CHECK-NEXT:    %[[C2_4:.*]] = arith.constant 2 : index
// CHECK-NEXT:    %[[V18:.*]] = arith.addi %[[V17]], %[[C2_4]] : index
// CHECK-NEXT:    %[[C0_5:.*]] = arith.constant 0 : index
// CHECK-NEXT:    %[[V19:.*]] = arith.maxsi %[[V17]], %[[C0_5]] : index
// CHECK-NEXT:    %[[C3_6:.*]] = arith.constant 3 : index
// CHECK-NEXT:    %[[V20:.*]] = arith.minsi %[[V18]], %[[C3_6]] : index
// CHECK-NEXT:    %[[V21:.*]] = arith.subi %[[V20]], %[[V19]] : index
// CHECK-NEXT:    %[[V22:.*]] = arith.muli %[[V14]], %[[V21]] : index
// CHECK-NEXT:    %[[V23:.*]] = arith.index_cast %[[V22]] : index to i32
// CHECK-NEXT:    %[[V24:.*]] = arith.sitofp %[[V23]] : i32 to f32
// CHECK-NEXT:    %[[V25:.*]] = arith.divf %[[IN]], %[[V24]] : f32
// CHECK-NEXT:    linalg.yield %[[V25]] : f32
// CHECK-NEXT:  } -> tensor<1x2x2x1xf32>
// CHECK-NEXT:  return %[[V7]] : tensor<1x2x2x1xf32>
func.func @avg_pool2d_valid(%x: tensor<1x3x3x1xf32>) -> tensor<1x2x2x1xf32> {
  %0 = "tinytrain.avg_pool2d"(%x) {kernel = array<i64: 2, 2>, strides = array<i64: 2, 2>, padding = array<i64: 0, 0, 1, 1>, divisor = "valid"} : (tensor<1x3x3x1xf32>) -> tensor<1x2x2x1xf32>
  return %0 : tensor<1x2x2x1xf32>
}

// -----

// Average pool gradient: dy / divisor, zero-dilated by the stride at offset K - 1, then a
// stride-1 sum pool with the same window.
// CHECK-DAG:   #[[MAP:map[0-9]*]] = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>
// CHECK-LABEL: func.func @avg_pool2d_grad(
// CHECK-SAME:    %[[ARG0:.*]]: tensor<1x2x2x2xf32>) -> tensor<1x4x4x2xf32> {
// CHECK-NEXT:  %[[CST:.*]] = arith.constant 4.000000e+00 : f32
// CHECK-NEXT:  %[[V0:.*]] = tensor.empty() : tensor<1x2x2x2xf32>
// CHECK-NEXT:  %[[V1:.*]] = linalg.generic {indexing_maps = [#[[MAP]], #[[MAP]]], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%[[ARG0]] : tensor<1x2x2x2xf32>) outs(%[[V0]] : tensor<1x2x2x2xf32>) {
// CHECK-NEXT:  ^bb0(%[[IN:.*]]: f32, %[[OUT:.*]]: f32):
// CHECK-NEXT:    %[[V8:.*]] = arith.divf %[[IN]], %[[CST]] : f32
// CHECK-NEXT:    linalg.yield %[[V8]] : f32
// CHECK-NEXT:  } -> tensor<1x2x2x2xf32>
// CHECK-NEXT:  %[[CST_0:.*]] = arith.constant 0.000000e+00 : f32
// CHECK-NEXT:  %[[V2:.*]] = tensor.empty() : tensor<1x5x5x2xf32>
// CHECK-NEXT:  %[[V3:.*]] = linalg.fill ins(%[[CST_0]] : f32) outs(%[[V2]] : tensor<1x5x5x2xf32>) -> tensor<1x5x5x2xf32>
// CHECK-NEXT:  %[[INSERTED_SLICE:.*]] = tensor.insert_slice %[[V1]] into %[[V3]][0, 1, 1, 0] [1, 2, 2, 2] [1, 2, 2, 1] : tensor<1x2x2x2xf32> into tensor<1x5x5x2xf32>
// CHECK-NEXT:  %[[V4:.*]] = tensor.empty() : tensor<2x2xf32>
// CHECK-NEXT:  %[[CST_1:.*]] = arith.constant 0.000000e+00 : f32
// CHECK-NEXT:  %[[V5:.*]] = tensor.empty() : tensor<1x4x4x2xf32>
// CHECK-NEXT:  %[[V6:.*]] = linalg.fill ins(%[[CST_1]] : f32) outs(%[[V5]] : tensor<1x4x4x2xf32>) -> tensor<1x4x4x2xf32>
// CHECK-NEXT:  %[[V7:.*]] = linalg.pooling_nhwc_sum {dilations = dense<1> : tensor<2xi64>, strides = dense<1> : tensor<2xi64>} ins(%[[INSERTED_SLICE]], %[[V4]] : tensor<1x5x5x2xf32>, tensor<2x2xf32>) outs(%[[V6]] : tensor<1x4x4x2xf32>) -> tensor<1x4x4x2xf32>
// CHECK-NEXT:  return %[[V7]] : tensor<1x4x4x2xf32>
func.func @avg_pool2d_grad(%dy: tensor<1x2x2x2xf32>) -> tensor<1x4x4x2xf32> {
  %0 = "tinytrain.avg_pool2d_grad"(%dy) {kernel = array<i64: 2, 2>, strides = array<i64: 2, 2>, padding = array<i64: 0, 0, 0, 0>, divisor = "window"} : (tensor<1x2x2x2xf32>) -> tensor<1x4x4x2xf32>
  return %0 : tensor<1x4x4x2xf32>
}

// -----

// hardswish: x * min(max(x + 3, 0), 6) / 6 (the clamp as compare+select, the default;
// tinytrain-to-linalg-clamp.mlir has the minmax variant).
// CHECK-DAG:   #[[MAP:map[0-9]*]] = affine_map<(d0, d1) -> (d0, d1)>
// CHECK-LABEL: func.func @hardswish(
// CHECK-SAME:    %[[ARG0:.*]]: tensor<2x3xf32>) -> tensor<2x3xf32> {
// CHECK-NEXT:  %[[V0:.*]] = tensor.empty() : tensor<2x3xf32>
// CHECK-NEXT:  %[[V1:.*]] = linalg.generic {indexing_maps = [#[[MAP]], #[[MAP]]], iterator_types = ["parallel", "parallel"]} ins(%[[ARG0]] : tensor<2x3xf32>) outs(%[[V0]] : tensor<2x3xf32>) {
// CHECK-NEXT:  ^bb0(%[[IN:.*]]: f32, %[[OUT:.*]]: f32):
// CHECK-NEXT:    %[[CST:.*]] = arith.constant 3.000000e+00 : f32
// CHECK-NEXT:    %[[V2:.*]] = arith.addf %[[IN]], %[[CST]] : f32
// CHECK-NEXT:    %[[CST_0:.*]] = arith.constant 0.000000e+00 : f32
// CHECK-NEXT:    %[[C0:.*]] = arith.cmpf ugt, %[[V2]], %[[CST_0]] : f32
// CHECK-NEXT:    %[[V3:.*]] = arith.select %[[C0]], %[[V2]], %[[CST_0]] : f32
// CHECK-NEXT:    %[[CST_1:.*]] = arith.constant 6.000000e+00 : f32
// CHECK-NEXT:    %[[C1:.*]] = arith.cmpf ult, %[[V3]], %[[CST_1]] : f32
// CHECK-NEXT:    %[[V4:.*]] = arith.select %[[C1]], %[[V3]], %[[CST_1]] : f32
// CHECK-NEXT:    %[[V5:.*]] = arith.mulf %[[IN]], %[[V4]] : f32
// CHECK-NEXT:    %[[CST_2:.*]] = arith.constant 6.000000e+00 : f32
// CHECK-NEXT:    %[[V6:.*]] = arith.divf %[[V5]], %[[CST_2]] : f32
// CHECK-NEXT:    linalg.yield %[[V6]] : f32
// CHECK-NEXT:  } -> tensor<2x3xf32>
// CHECK-NEXT:  return %[[V1]] : tensor<2x3xf32>
func.func @hardswish(%x: tensor<2x3xf32>) -> tensor<2x3xf32> {
  %0 = "tinytrain.hardswish"(%x) : (tensor<2x3xf32>) -> tensor<2x3xf32>
  return %0 : tensor<2x3xf32>
}

// -----

// hardswish_grad: 0 for x <= -3, dy * (x / 3 + 0.5) for x < 3, else dy.
// CHECK-DAG:   #[[MAP:map[0-9]*]] = affine_map<(d0, d1) -> (d0, d1)>
// CHECK-LABEL: func.func @hardswish_grad(
// CHECK-SAME:    %[[ARG0:.*]]: tensor<2x3xf32>, %[[ARG1:.*]]: tensor<2x3xf32>) -> tensor<2x3xf32> {
// CHECK-NEXT:  %[[V0:.*]] = tensor.empty() : tensor<2x3xf32>
// CHECK-NEXT:  %[[V1:.*]] = linalg.generic {indexing_maps = [#[[MAP]], #[[MAP]], #[[MAP]]], iterator_types = ["parallel", "parallel"]} ins(%[[ARG0]], %[[ARG1]] : tensor<2x3xf32>, tensor<2x3xf32>) outs(%[[V0]] : tensor<2x3xf32>) {
// CHECK-NEXT:  ^bb0(%[[IN:.*]]: f32, %[[IN_0:.*]]: f32, %[[OUT:.*]]: f32):
// CHECK-NEXT:    %[[CST:.*]] = arith.constant 3.000000e+00 : f32
// CHECK-NEXT:    %[[CST_1:.*]] = arith.constant 0.000000e+00 : f32
// CHECK-NEXT:    %[[V2:.*]] = arith.divf %[[IN]], %[[CST]] : f32
// CHECK-NEXT:    %[[CST_2:.*]] = arith.constant 5.000000e-01 : f32
// CHECK-NEXT:    %[[V3:.*]] = arith.addf %[[V2]], %[[CST_2]] : f32
// CHECK-NEXT:    %[[V4:.*]] = arith.mulf %[[IN_0]], %[[V3]] : f32
// CHECK-NEXT:    %[[CST_3:.*]] = arith.constant -3.000000e+00 : f32
// CHECK-NEXT:    %[[V5:.*]] = arith.cmpf ole, %[[IN]], %[[CST_3]] : f32
// CHECK-NEXT:    %[[V6:.*]] = arith.cmpf olt, %[[IN]], %[[CST]] : f32
// CHECK-NEXT:    %[[V7:.*]] = arith.select %[[V6]], %[[V4]], %[[IN_0]] : f32
// CHECK-NEXT:    %[[V8:.*]] = arith.select %[[V5]], %[[CST_1]], %[[V7]] : f32
// CHECK-NEXT:    linalg.yield %[[V8]] : f32
// CHECK-NEXT:  } -> tensor<2x3xf32>
// CHECK-NEXT:  return %[[V1]] : tensor<2x3xf32>
func.func @hardswish_grad(%x: tensor<2x3xf32>, %dy: tensor<2x3xf32>) -> tensor<2x3xf32> {
  %0 = "tinytrain.hardswish_grad"(%x, %dy) : (tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<2x3xf32>
  return %0 : tensor<2x3xf32>
}

// -----

// hardsigmoid: min(max(x + 3, 0), 6) / 6.
// CHECK-DAG:   #[[MAP:map[0-9]*]] = affine_map<(d0, d1) -> (d0, d1)>
// CHECK-LABEL: func.func @hardsigmoid(
// CHECK-SAME:    %[[ARG0:.*]]: tensor<2x3xf32>) -> tensor<2x3xf32> {
// CHECK-NEXT:  %[[V0:.*]] = tensor.empty() : tensor<2x3xf32>
// CHECK-NEXT:  %[[V1:.*]] = linalg.generic {indexing_maps = [#[[MAP]], #[[MAP]]], iterator_types = ["parallel", "parallel"]} ins(%[[ARG0]] : tensor<2x3xf32>) outs(%[[V0]] : tensor<2x3xf32>) {
// CHECK-NEXT:  ^bb0(%[[IN:.*]]: f32, %[[OUT:.*]]: f32):
// CHECK-NEXT:    %[[CST:.*]] = arith.constant 3.000000e+00 : f32
// CHECK-NEXT:    %[[V2:.*]] = arith.addf %[[IN]], %[[CST]] : f32
// CHECK-NEXT:    %[[CST_0:.*]] = arith.constant 0.000000e+00 : f32
// CHECK-NEXT:    %[[C0:.*]] = arith.cmpf ugt, %[[V2]], %[[CST_0]] : f32
// CHECK-NEXT:    %[[V3:.*]] = arith.select %[[C0]], %[[V2]], %[[CST_0]] : f32
// CHECK-NEXT:    %[[CST_1:.*]] = arith.constant 6.000000e+00 : f32
// CHECK-NEXT:    %[[C1:.*]] = arith.cmpf ult, %[[V3]], %[[CST_1]] : f32
// CHECK-NEXT:    %[[V4:.*]] = arith.select %[[C1]], %[[V3]], %[[CST_1]] : f32
// CHECK-NEXT:    %[[CST_2:.*]] = arith.constant 6.000000e+00 : f32
// CHECK-NEXT:    %[[V5:.*]] = arith.divf %[[V4]], %[[CST_2]] : f32
// CHECK-NEXT:    linalg.yield %[[V5]] : f32
// CHECK-NEXT:  } -> tensor<2x3xf32>
// CHECK-NEXT:  return %[[V1]] : tensor<2x3xf32>
func.func @hardsigmoid(%x: tensor<2x3xf32>) -> tensor<2x3xf32> {
  %0 = "tinytrain.hardsigmoid"(%x) : (tensor<2x3xf32>) -> tensor<2x3xf32>
  return %0 : tensor<2x3xf32>
}

// -----

// hardsigmoid_grad: dy * (1/6) strictly inside (-3, 3), else 0.
// CHECK-DAG:   #[[MAP:map[0-9]*]] = affine_map<(d0, d1) -> (d0, d1)>
// CHECK-LABEL: func.func @hardsigmoid_grad(
// CHECK-SAME:    %[[ARG0:.*]]: tensor<2x3xf32>, %[[ARG1:.*]]: tensor<2x3xf32>) -> tensor<2x3xf32> {
// CHECK-NEXT:  %[[V0:.*]] = tensor.empty() : tensor<2x3xf32>
// CHECK-NEXT:  %[[V1:.*]] = linalg.generic {indexing_maps = [#[[MAP]], #[[MAP]], #[[MAP]]], iterator_types = ["parallel", "parallel"]} ins(%[[ARG0]], %[[ARG1]] : tensor<2x3xf32>, tensor<2x3xf32>) outs(%[[V0]] : tensor<2x3xf32>) {
// CHECK-NEXT:  ^bb0(%[[IN:.*]]: f32, %[[IN_0:.*]]: f32, %[[OUT:.*]]: f32):
// CHECK-NEXT:    %[[CST:.*]] = arith.constant -3.000000e+00 : f32
// CHECK-NEXT:    %[[V2:.*]] = arith.cmpf ogt, %[[IN]], %[[CST]] : f32
// CHECK-NEXT:    %[[CST_1:.*]] = arith.constant 3.000000e+00 : f32
// CHECK-NEXT:    %[[V3:.*]] = arith.cmpf olt, %[[IN]], %[[CST_1]] : f32
// CHECK-NEXT:    %[[V4:.*]] = arith.andi %[[V2]], %[[V3]] : i1
// CHECK-NEXT:    %[[CST_2:.*]] = arith.constant 0.166666672 : f32
// CHECK-NEXT:    %[[V5:.*]] = arith.mulf %[[IN_0]], %[[CST_2]] : f32
// CHECK-NEXT:    %[[CST_3:.*]] = arith.constant 0.000000e+00 : f32
// CHECK-NEXT:    %[[V6:.*]] = arith.select %[[V4]], %[[V5]], %[[CST_3]] : f32
// CHECK-NEXT:    linalg.yield %[[V6]] : f32
// CHECK-NEXT:  } -> tensor<2x3xf32>
// CHECK-NEXT:  return %[[V1]] : tensor<2x3xf32>
func.func @hardsigmoid_grad(%x: tensor<2x3xf32>, %dy: tensor<2x3xf32>) -> tensor<2x3xf32> {
  %0 = "tinytrain.hardsigmoid_grad"(%x, %dy) : (tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<2x3xf32>
  return %0 : tensor<2x3xf32>
}

// -----

// sigmoid, stable: e = exp(-|x|); x >= 0 ? 1 / (1 + e) : e / (1 + e).
// CHECK-DAG:   #[[MAP:map[0-9]*]] = affine_map<(d0, d1) -> (d0, d1)>
// CHECK-LABEL: func.func @sigmoid(
// CHECK-SAME:    %[[ARG0:.*]]: tensor<2x3xf32>) -> tensor<2x3xf32> {
// CHECK-NEXT:  %[[V0:.*]] = tensor.empty() : tensor<2x3xf32>
// CHECK-NEXT:  %[[V1:.*]] = linalg.generic {indexing_maps = [#[[MAP]], #[[MAP]]], iterator_types = ["parallel", "parallel"]} ins(%[[ARG0]] : tensor<2x3xf32>) outs(%[[V0]] : tensor<2x3xf32>) {
// CHECK-NEXT:  ^bb0(%[[IN:.*]]: f32, %[[OUT:.*]]: f32):
// CHECK-NEXT:    %[[CST:.*]] = arith.constant 1.000000e+00 : f32
// CHECK-NEXT:    %[[V2:.*]] = math.absf %[[IN]] : f32
// CHECK-NEXT:    %[[V3:.*]] = arith.negf %[[V2]] : f32
// CHECK-NEXT:    %[[V4:.*]] = math.exp %[[V3]] : f32
// CHECK-NEXT:    %[[V5:.*]] = arith.addf %[[CST]], %[[V4]] : f32
// CHECK-NEXT:    %[[CST_0:.*]] = arith.constant 0.000000e+00 : f32
// CHECK-NEXT:    %[[V6:.*]] = arith.cmpf oge, %[[IN]], %[[CST_0]] : f32
// CHECK-NEXT:    %[[V7:.*]] = arith.select %[[V6]], %[[CST]], %[[V4]] : f32
// CHECK-NEXT:    %[[V8:.*]] = arith.divf %[[V7]], %[[V5]] : f32
// CHECK-NEXT:    linalg.yield %[[V8]] : f32
// CHECK-NEXT:  } -> tensor<2x3xf32>
// CHECK-NEXT:  return %[[V1]] : tensor<2x3xf32>
func.func @sigmoid(%x: tensor<2x3xf32>) -> tensor<2x3xf32> {
  %0 = "tinytrain.sigmoid"(%x) : (tensor<2x3xf32>) -> tensor<2x3xf32>
  return %0 : tensor<2x3xf32>
}

// -----

// sigmoid_grad from the forward output: dy * (1 - y) * y.
// CHECK-DAG:   #[[MAP:map[0-9]*]] = affine_map<(d0, d1) -> (d0, d1)>
// CHECK-LABEL: func.func @sigmoid_grad(
// CHECK-SAME:    %[[ARG0:.*]]: tensor<2x3xf32>, %[[ARG1:.*]]: tensor<2x3xf32>) -> tensor<2x3xf32> {
// CHECK-NEXT:  %[[V0:.*]] = tensor.empty() : tensor<2x3xf32>
// CHECK-NEXT:  %[[V1:.*]] = linalg.generic {indexing_maps = [#[[MAP]], #[[MAP]], #[[MAP]]], iterator_types = ["parallel", "parallel"]} ins(%[[ARG0]], %[[ARG1]] : tensor<2x3xf32>, tensor<2x3xf32>) outs(%[[V0]] : tensor<2x3xf32>) {
// CHECK-NEXT:  ^bb0(%[[IN:.*]]: f32, %[[IN_0:.*]]: f32, %[[OUT:.*]]: f32):
// CHECK-NEXT:    %[[CST:.*]] = arith.constant 1.000000e+00 : f32
// CHECK-NEXT:    %[[V2:.*]] = arith.subf %[[CST]], %[[IN]] : f32
// CHECK-NEXT:    %[[V3:.*]] = arith.mulf %[[IN_0]], %[[V2]] : f32
// CHECK-NEXT:    %[[V4:.*]] = arith.mulf %[[V3]], %[[IN]] : f32
// CHECK-NEXT:    linalg.yield %[[V4]] : f32
// CHECK-NEXT:  } -> tensor<2x3xf32>
// CHECK-NEXT:  return %[[V1]] : tensor<2x3xf32>
func.func @sigmoid_grad(%y: tensor<2x3xf32>, %dy: tensor<2x3xf32>) -> tensor<2x3xf32> {
  %0 = "tinytrain.sigmoid_grad"(%y, %dy) : (tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<2x3xf32>
  return %0 : tensor<2x3xf32>
}

// -----

// leaky_relu: x > 0 ? x : alpha * x.
// CHECK-DAG:   #[[MAP:map[0-9]*]] = affine_map<(d0, d1) -> (d0, d1)>
// CHECK-LABEL: func.func @leaky_relu(
// CHECK-SAME:    %[[ARG0:.*]]: tensor<2x3xf32>) -> tensor<2x3xf32> {
// CHECK-NEXT:  %[[V0:.*]] = tensor.empty() : tensor<2x3xf32>
// CHECK-NEXT:  %[[V1:.*]] = linalg.generic {indexing_maps = [#[[MAP]], #[[MAP]]], iterator_types = ["parallel", "parallel"]} ins(%[[ARG0]] : tensor<2x3xf32>) outs(%[[V0]] : tensor<2x3xf32>) {
// CHECK-NEXT:  ^bb0(%[[IN:.*]]: f32, %[[OUT:.*]]: f32):
// CHECK-NEXT:    %[[CST:.*]] = arith.constant 0.000000e+00 : f32
// CHECK-NEXT:    %[[V2:.*]] = arith.cmpf ogt, %[[IN]], %[[CST]] : f32
// CHECK-NEXT:    %[[CST_0:.*]] = arith.constant 2.500000e-01 : f32
// CHECK-NEXT:    %[[V3:.*]] = arith.mulf %[[IN]], %[[CST_0]] : f32
// CHECK-NEXT:    %[[V4:.*]] = arith.select %[[V2]], %[[IN]], %[[V3]] : f32
// CHECK-NEXT:    linalg.yield %[[V4]] : f32
// CHECK-NEXT:  } -> tensor<2x3xf32>
// CHECK-NEXT:  return %[[V1]] : tensor<2x3xf32>
func.func @leaky_relu(%x: tensor<2x3xf32>) -> tensor<2x3xf32> {
  %0 = "tinytrain.leaky_relu"(%x) {alpha = 0.25 : f32} : (tensor<2x3xf32>) -> tensor<2x3xf32>
  return %0 : tensor<2x3xf32>
}

// -----

// leaky_relu_grad: x > 0 ? dy : alpha * dy.
// CHECK-DAG:   #[[MAP:map[0-9]*]] = affine_map<(d0, d1) -> (d0, d1)>
// CHECK-LABEL: func.func @leaky_relu_grad(
// CHECK-SAME:    %[[ARG0:.*]]: tensor<2x3xf32>, %[[ARG1:.*]]: tensor<2x3xf32>) -> tensor<2x3xf32> {
// CHECK-NEXT:  %[[V0:.*]] = tensor.empty() : tensor<2x3xf32>
// CHECK-NEXT:  %[[V1:.*]] = linalg.generic {indexing_maps = [#[[MAP]], #[[MAP]], #[[MAP]]], iterator_types = ["parallel", "parallel"]} ins(%[[ARG0]], %[[ARG1]] : tensor<2x3xf32>, tensor<2x3xf32>) outs(%[[V0]] : tensor<2x3xf32>) {
// CHECK-NEXT:  ^bb0(%[[IN:.*]]: f32, %[[IN_0:.*]]: f32, %[[OUT:.*]]: f32):
// CHECK-NEXT:    %[[CST:.*]] = arith.constant 0.000000e+00 : f32
// CHECK-NEXT:    %[[V2:.*]] = arith.cmpf ogt, %[[IN]], %[[CST]] : f32
// CHECK-NEXT:    %[[CST_1:.*]] = arith.constant 2.500000e-01 : f32
// CHECK-NEXT:    %[[V3:.*]] = arith.mulf %[[IN_0]], %[[CST_1]] : f32
// CHECK-NEXT:    %[[V4:.*]] = arith.select %[[V2]], %[[IN_0]], %[[V3]] : f32
// CHECK-NEXT:    linalg.yield %[[V4]] : f32
// CHECK-NEXT:  } -> tensor<2x3xf32>
// CHECK-NEXT:  return %[[V1]] : tensor<2x3xf32>
func.func @leaky_relu_grad(%x: tensor<2x3xf32>, %dy: tensor<2x3xf32>) -> tensor<2x3xf32> {
  %0 = "tinytrain.leaky_relu_grad"(%x, %dy) {alpha = 0.25 : f32} : (tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<2x3xf32>
  return %0 : tensor<2x3xf32>
}

// -----

// Broadcast mul (squeeze-excite): the rhs's broadcast unit dims are reshaped away, its map is
// a projection onto the kept dims (N, C).
// CHECK-DAG:   #[[MAP:map[0-9]*]] = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>
// CHECK-DAG:   #[[MAP1:map[0-9]*]] = affine_map<(d0, d1, d2, d3) -> (d0, d3)>
// CHECK-LABEL: func.func @mul(
// CHECK-SAME:    %[[ARG0:.*]]: tensor<2x3x3x4xf32>, %[[ARG1:.*]]: tensor<2x1x1x4xf32>) -> tensor<2x3x3x4xf32> {
// CHECK-NEXT:  %[[COLLAPSED:.*]] = tensor.collapse_shape %[[ARG1]] {{\[\[}}0, 1, 2, 3]] : tensor<2x1x1x4xf32> into tensor<8xf32>
// CHECK-NEXT:  %[[EXPANDED:.*]] = tensor.expand_shape %[[COLLAPSED]] {{\[\[}}0, 1]] output_shape [2, 4] : tensor<8xf32> into tensor<2x4xf32>
// CHECK-NEXT:  %[[V0:.*]] = tensor.empty() : tensor<2x3x3x4xf32>
// CHECK-NEXT:  %[[V1:.*]] = linalg.generic {indexing_maps = [#[[MAP]], #[[MAP1]], #[[MAP]]], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%[[ARG0]], %[[EXPANDED]] : tensor<2x3x3x4xf32>, tensor<2x4xf32>) outs(%[[V0]] : tensor<2x3x3x4xf32>) {
// CHECK-NEXT:  ^bb0(%[[IN:.*]]: f32, %[[IN_0:.*]]: f32, %[[OUT:.*]]: f32):
// CHECK-NEXT:    %[[V2:.*]] = arith.mulf %[[IN]], %[[IN_0]] : f32
// CHECK-NEXT:    linalg.yield %[[V2]] : f32
// CHECK-NEXT:  } -> tensor<2x3x3x4xf32>
// CHECK-NEXT:  return %[[V1]] : tensor<2x3x3x4xf32>
func.func @mul(%x: tensor<2x3x3x4xf32>, %s: tensor<2x1x1x4xf32>) -> tensor<2x3x3x4xf32> {
  %0 = "tinytrain.mul"(%x, %s) : (tensor<2x3x3x4xf32>, tensor<2x1x1x4xf32>) -> tensor<2x3x3x4xf32>
  return %0 : tensor<2x3x3x4xf32>
}

// -----

// sum_to: a reduction over the broadcast dims (H, W) into the kept ones, reshaped to the result.
// CHECK-DAG:   #[[MAP:map[0-9]*]] = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>
// CHECK-DAG:   #[[MAP1:map[0-9]*]] = affine_map<(d0, d1, d2, d3) -> (d0, d3)>
// CHECK-LABEL: func.func @sum_to(
// CHECK-SAME:    %[[ARG0:.*]]: tensor<2x3x3x4xf32>) -> tensor<2x1x1x4xf32> {
// CHECK-NEXT:  %[[CST:.*]] = arith.constant 0.000000e+00 : f32
// CHECK-NEXT:  %[[V0:.*]] = tensor.empty() : tensor<2x4xf32>
// CHECK-NEXT:  %[[V1:.*]] = linalg.fill ins(%[[CST]] : f32) outs(%[[V0]] : tensor<2x4xf32>) -> tensor<2x4xf32>
// CHECK-NEXT:  %[[V2:.*]] = linalg.generic {indexing_maps = [#[[MAP]], #[[MAP1]]], iterator_types = ["parallel", "reduction", "reduction", "parallel"]} ins(%[[ARG0]] : tensor<2x3x3x4xf32>) outs(%[[V1]] : tensor<2x4xf32>) {
// CHECK-NEXT:  ^bb0(%[[IN:.*]]: f32, %[[OUT:.*]]: f32):
// CHECK-NEXT:    %[[V3:.*]] = arith.addf %[[OUT]], %[[IN]] : f32
// CHECK-NEXT:    linalg.yield %[[V3]] : f32
// CHECK-NEXT:  } -> tensor<2x4xf32>
// CHECK-NEXT:  %[[COLLAPSED:.*]] = tensor.collapse_shape %[[V2]] {{\[\[}}0, 1]] : tensor<2x4xf32> into tensor<8xf32>
// CHECK-NEXT:  %[[EXPANDED:.*]] = tensor.expand_shape %[[COLLAPSED]] {{\[\[}}0, 1, 2, 3]] output_shape [2, 1, 1, 4] : tensor<8xf32> into tensor<2x1x1x4xf32>
// CHECK-NEXT:  return %[[EXPANDED]] : tensor<2x1x1x4xf32>
func.func @sum_to(%x: tensor<2x3x3x4xf32>) -> tensor<2x1x1x4xf32> {
  %0 = "tinytrain.sum_to"(%x) : (tensor<2x3x3x4xf32>) -> tensor<2x1x1x4xf32>
  return %0 : tensor<2x1x1x4xf32>
}

// -----

// channel_affine: x * scale[c] + shift[c].
// CHECK-DAG:   #[[MAP:map[0-9]*]] = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>
// CHECK-DAG:   #[[MAP1:map[0-9]*]] = affine_map<(d0, d1, d2, d3) -> (d3)>
// CHECK-LABEL: func.func @channel_affine(
// CHECK-SAME:    %[[ARG0:.*]]: tensor<1x2x2x3xf32>, %[[ARG1:.*]]: tensor<3xf32>, %[[ARG2:.*]]: tensor<3xf32>) -> tensor<1x2x2x3xf32> {
// CHECK-NEXT:  %[[V0:.*]] = tensor.empty() : tensor<1x2x2x3xf32>
// CHECK-NEXT:  %[[V1:.*]] = linalg.generic {indexing_maps = [#[[MAP]], #[[MAP1]], #[[MAP1]], #[[MAP]]], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%[[ARG0]], %[[ARG1]], %[[ARG2]] : tensor<1x2x2x3xf32>, tensor<3xf32>, tensor<3xf32>) outs(%[[V0]] : tensor<1x2x2x3xf32>) {
// CHECK-NEXT:  ^bb0(%[[IN:.*]]: f32, %[[IN_0:.*]]: f32, %[[IN_1:.*]]: f32, %[[OUT:.*]]: f32):
// CHECK-NEXT:    %[[V2:.*]] = arith.mulf %[[IN]], %[[IN_0]] : f32
// CHECK-NEXT:    %[[V3:.*]] = arith.addf %[[V2]], %[[IN_1]] : f32
// CHECK-NEXT:    linalg.yield %[[V3]] : f32
// CHECK-NEXT:  } -> tensor<1x2x2x3xf32>
// CHECK-NEXT:  return %[[V1]] : tensor<1x2x2x3xf32>
func.func @channel_affine(%x: tensor<1x2x2x3xf32>, %a: tensor<3xf32>, %b: tensor<3xf32>) -> tensor<1x2x2x3xf32> {
  %0 = "tinytrain.channel_affine"(%x, %a, %b) : (tensor<1x2x2x3xf32>, tensor<3xf32>, tensor<3xf32>) -> tensor<1x2x2x3xf32>
  return %0 : tensor<1x2x2x3xf32>
}
