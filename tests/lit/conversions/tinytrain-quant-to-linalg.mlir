// RUN: tinytrain-opt -p to-linalg --split-input-file %s | filecheck %s

// The int8 ops (dialects/tinytrain_quant.py) lowered to linalg: the device rule of
// tinytrain.reference (integer arithmetic in i32 / i64 inside linalg.generic). Bit-exactness against
// the numpy reference is tested on the host in tests/python/test_quant_lowering.py.

// Dense int8 conv: the input is padded with its zero point (-3, a real zero) and cropped to the
// window the strided conv reads; conv_2d_nhwc_hwcf_q folds `x - x_zero` into an i8 x i8 -> i32
// dot product accumulated from 0; one generic adds the bias with int32 saturation (step 0) and
// requantizes in i64 with the per-channel multiplier / shift constants (steps 2-5; step 3's
// rounding is floor((p + 2^30) / 2^31), an add and an arithmetic shift).
// CHECK-DAG:   #[[MAP:map[0-9]*]] = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>
// CHECK-DAG:   #[[MAP1:map[0-9]*]] = affine_map<(d0, d1, d2, d3) -> (d3)>
// CHECK-LABEL: func.func @qconv2d(
// CHECK-SAME:    %[[ARG0:.*]]: tensor<1x4x4x2xi8>, %[[ARG1:.*]]: tensor<3x3x2x2xi8>, %[[ARG2:.*]]: tensor<2xi32>) -> tensor<1x2x2x2xi8> {
// CHECK-NEXT:  %[[PADDED:.*]] = tensor.pad %[[ARG0]] low[0, 1, 1, 0] high[0, 0, 0, 0] {
// CHECK-NEXT:  ^bb0(%[[ARG3:.*]]: index, %[[ARG4:.*]]: index, %[[ARG5:.*]]: index, %[[ARG6:.*]]: index):
// CHECK-NEXT:    %[[C_3_I8:.*]] = arith.constant -3 : i8
// CHECK-NEXT:    tensor.yield %[[C_3_I8]] : i8
// CHECK-NEXT:  } : tensor<1x4x4x2xi8> to tensor<1x5x5x2xi8>
// CHECK-NEXT:  %[[C_3_I32:.*]] = arith.constant -3 : i32
// CHECK-NEXT:  %[[C0_I32:.*]] = arith.constant 0 : i32
// CHECK-NEXT:  %[[C0_I32_0:.*]] = arith.constant 0 : i32
// CHECK-NEXT:  %[[V0:.*]] = tensor.empty() : tensor<1x2x2x2xi32>
// CHECK-NEXT:  %[[V1:.*]] = linalg.fill ins(%[[C0_I32_0]] : i32) outs(%[[V0]] : tensor<1x2x2x2xi32>) -> tensor<1x2x2x2xi32>
// CHECK-NEXT:  %[[V2:.*]] = linalg.conv_2d_nhwc_hwcf_q {dilations = dense<1> : tensor<2xi64>, strides = dense<2> : tensor<2xi64>} ins(%[[PADDED]], %[[ARG1]], %[[C_3_I32]], %[[C0_I32]] : tensor<1x5x5x2xi8>, tensor<3x3x2x2xi8>, i32, i32) outs(%[[V1]] : tensor<1x2x2x2xi32>) -> tensor<1x2x2x2xi32>
// CHECK-NEXT:  %[[CST:.*]] = arith.constant dense<1073741824> : tensor<2xi32>
// CHECK-NEXT:  %[[CST_1:.*]] = arith.constant dense<[-2, -3]> : tensor<2xi32>
// CHECK-NEXT:  %[[V3:.*]] = tensor.empty() : tensor<1x2x2x2xi8>
// CHECK-NEXT:  %[[V4:.*]] = linalg.generic {indexing_maps = [#[[MAP]], #[[MAP1]], #[[MAP1]], #[[MAP1]], #[[MAP]]], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%[[V2]], %[[ARG2]], %[[CST]], %[[CST_1]] : tensor<1x2x2x2xi32>, tensor<2xi32>, tensor<2xi32>, tensor<2xi32>) outs(%[[V3]] : tensor<1x2x2x2xi8>) {
// CHECK-NEXT:  ^bb0(%[[IN:.*]]: i32, %[[IN_2:.*]]: i32, %[[IN_3:.*]]: i32, %[[IN_4:.*]]: i32, %[[OUT:.*]]: i8):
// CHECK-NEXT:    %[[V5:.*]] = arith.extsi %[[IN]] : i32 to i64
// CHECK-NEXT:    %[[V6:.*]] = arith.extsi %[[IN_2]] : i32 to i64
// CHECK-NEXT:    %[[V7:.*]] = arith.addi %[[V5]], %[[V6]] : i64
// CHECK-NEXT:    %[[C_2147483648_I64:.*]] = arith.constant -2147483648 : i64
// CHECK-NEXT:    %[[V8:.*]] = arith.maxsi %[[V7]], %[[C_2147483648_I64]] : i64
// CHECK-NEXT:    %[[C2147483647_I64:.*]] = arith.constant 2147483647 : i64
// CHECK-NEXT:    %[[V9:.*]] = arith.minsi %[[V8]], %[[C2147483647_I64]] : i64
// CHECK-NEXT:    %[[V10:.*]] = arith.extsi %[[IN_3]] : i32 to i64
// CHECK-NEXT:    %[[V11:.*]] = arith.extsi %[[IN_4]] : i32 to i64
// CHECK-NEXT:    %[[C0_I64:.*]] = arith.constant 0 : i64
// CHECK-NEXT:    %[[V12:.*]] = arith.maxsi %[[V11]], %[[C0_I64]] : i64
// CHECK-NEXT:    %[[V13:.*]] = arith.subi %[[C0_I64]], %[[V11]] : i64
// CHECK-NEXT:    %[[V14:.*]] = arith.maxsi %[[V13]], %[[C0_I64]] : i64
// CHECK-NEXT:    %[[V15:.*]] = arith.shli %[[V9]], %[[V12]] : i64
// CHECK-NEXT:    %[[C_2147483648_I64_5:.*]] = arith.constant -2147483648 : i64
// CHECK-NEXT:    %[[V16:.*]] = arith.maxsi %[[V15]], %[[C_2147483648_I64_5]] : i64
// CHECK-NEXT:    %[[C2147483647_I64_6:.*]] = arith.constant 2147483647 : i64
// CHECK-NEXT:    %[[V17:.*]] = arith.minsi %[[V16]], %[[C2147483647_I64_6]] : i64
// CHECK-NEXT:    %[[V18:.*]] = arith.muli %[[V17]], %[[V10]] : i64
// CHECK-NEXT:    %[[C1073741824_I64:.*]] = arith.constant 1073741824 : i64
// CHECK-NEXT:    %[[V19:.*]] = arith.addi %[[V18]], %[[C1073741824_I64]] : i64
// CHECK-NEXT:    %[[C31_I64:.*]] = arith.constant 31 : i64
// CHECK-NEXT:    %[[V20:.*]] = arith.shrsi %[[V19]], %[[C31_I64]] : i64
// CHECK-NEXT:    %[[C_2147483648_I64_7:.*]] = arith.constant -2147483648 : i64
// CHECK-NEXT:    %[[V21:.*]] = arith.cmpi eq, %[[V17]], %[[C_2147483648_I64_7]] : i64
// CHECK-NEXT:    %[[V22:.*]] = arith.cmpi eq, %[[V10]], %[[C_2147483648_I64_7]] : i64
// CHECK-NEXT:    %[[V23:.*]] = arith.andi %[[V21]], %[[V22]] : i1
// CHECK-NEXT:    %[[C2147483647_I64_8:.*]] = arith.constant 2147483647 : i64
// CHECK-NEXT:    %[[V24:.*]] = arith.select %[[V23]], %[[C2147483647_I64_8]], %[[V20]] : i64
// CHECK-NEXT:    %[[C1_I64:.*]] = arith.constant 1 : i64
// CHECK-NEXT:    %[[C0_I64_9:.*]] = arith.constant 0 : i64
// CHECK-NEXT:    %[[V25:.*]] = arith.shli %[[C1_I64]], %[[V14]] : i64
// CHECK-NEXT:    %[[V26:.*]] = arith.subi %[[V25]], %[[C1_I64]] : i64
// CHECK-NEXT:    %[[V27:.*]] = arith.andi %[[V24]], %[[V26]] : i64
// CHECK-NEXT:    %[[V28:.*]] = arith.cmpi slt, %[[V24]], %[[C0_I64_9]] : i64
// CHECK-NEXT:    %[[V29:.*]] = arith.extui %[[V28]] : i1 to i64
// CHECK-NEXT:    %[[V30:.*]] = arith.shrsi %[[V26]], %[[C1_I64]] : i64
// CHECK-NEXT:    %[[V31:.*]] = arith.addi %[[V30]], %[[V29]] : i64
// CHECK-NEXT:    %[[V32:.*]] = arith.cmpi sgt, %[[V27]], %[[V31]] : i64
// CHECK-NEXT:    %[[V33:.*]] = arith.extui %[[V32]] : i1 to i64
// CHECK-NEXT:    %[[V34:.*]] = arith.shrsi %[[V24]], %[[V14]] : i64
// CHECK-NEXT:    %[[V35:.*]] = arith.addi %[[V34]], %[[V33]] : i64
// CHECK-NEXT:    %[[C5_I64:.*]] = arith.constant 5 : i64
// CHECK-NEXT:    %[[V36:.*]] = arith.addi %[[V35]], %[[C5_I64]] : i64
// CHECK-NEXT:    %[[C_128_I64:.*]] = arith.constant -128 : i64
// CHECK-NEXT:    %[[V37:.*]] = arith.maxsi %[[V36]], %[[C_128_I64]] : i64
// CHECK-NEXT:    %[[C127_I64:.*]] = arith.constant 127 : i64
// CHECK-NEXT:    %[[V38:.*]] = arith.minsi %[[V37]], %[[C127_I64]] : i64
// CHECK-NEXT:    %[[V39:.*]] = arith.trunci %[[V38]] : i64 to i8
// CHECK-NEXT:    linalg.yield %[[V39]] : i8
// CHECK-NEXT:  } -> tensor<1x2x2x2xi8>
// CHECK-NEXT:  return %[[V4]] : tensor<1x2x2x2xi8>
func.func @qconv2d(%x: tensor<1x4x4x2xi8>, %w: tensor<3x3x2x2xi8>, %b: tensor<2xi32>) -> tensor<1x2x2x2xi8> {
  %0 = "tinytrain.qconv2d"(%x, %w, %b) {strides = array<i64: 2, 2>, padding = array<i64: 1, 1>, groups = 1 : i64, input_scale = 5.000000e-01 : f64, input_zero_point = -3 : i64, weight_scales = array<f64: 2.500000e-01, 1.250000e-01>, output_scale = 1.000000e+00 : f64, output_zero_point = 5 : i64, multiplier = array<i32: 1073741824, 1073741824>, shift = array<i32: -2, -3>, clamp = array<i64: -128, 127>} : (tensor<1x4x4x2xi8>, tensor<3x3x2x2xi8>, tensor<2xi32>) -> tensor<1x2x2x2xi8>
  return %0 : tensor<1x2x2x2xi8>
}

// -----

// Depthwise int8 conv: the kernel [3, 3, 1, C] is collapsed to [3, 3, C]; clamp [-128, 0].
// CHECK-DAG:   #[[MAP:map[0-9]*]] = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>
// CHECK-DAG:   #[[MAP1:map[0-9]*]] = affine_map<(d0, d1, d2, d3) -> (d3)>
// CHECK-LABEL: func.func @qconv2d_depthwise(
// CHECK-SAME:    %[[ARG0:.*]]: tensor<1x3x3x2xi8>, %[[ARG1:.*]]: tensor<3x3x1x2xi8>, %[[ARG2:.*]]: tensor<2xi32>) -> tensor<1x3x3x2xi8> {
// CHECK-NEXT:  %[[PADDED:.*]] = tensor.pad %[[ARG0]] low[0, 1, 1, 0] high[0, 1, 1, 0] {
// CHECK-NEXT:  ^bb0(%[[ARG3:.*]]: index, %[[ARG4:.*]]: index, %[[ARG5:.*]]: index, %[[ARG6:.*]]: index):
// CHECK-NEXT:    %[[C_128_I8:.*]] = arith.constant -128 : i8
// CHECK-NEXT:    tensor.yield %[[C_128_I8]] : i8
// CHECK-NEXT:  } : tensor<1x3x3x2xi8> to tensor<1x5x5x2xi8>
// CHECK-NEXT:  %[[C_128_I32:.*]] = arith.constant -128 : i32
// CHECK-NEXT:  %[[C0_I32:.*]] = arith.constant 0 : i32
// CHECK-NEXT:  %[[C0_I32_0:.*]] = arith.constant 0 : i32
// CHECK-NEXT:  %[[V0:.*]] = tensor.empty() : tensor<1x3x3x2xi32>
// CHECK-NEXT:  %[[V1:.*]] = linalg.fill ins(%[[C0_I32_0]] : i32) outs(%[[V0]] : tensor<1x3x3x2xi32>) -> tensor<1x3x3x2xi32>
// CHECK-NEXT:  %[[COLLAPSED:.*]] = tensor.collapse_shape %[[ARG1]] {{\[\[}}0], [1], [2, 3]] : tensor<3x3x1x2xi8> into tensor<3x3x2xi8>
// CHECK-NEXT:  %[[V2:.*]] = linalg.depthwise_conv_2d_nhwc_hwc_q {dilations = dense<1> : tensor<2xi64>, strides = dense<1> : tensor<2xi64>} ins(%[[PADDED]], %[[COLLAPSED]], %[[C_128_I32]], %[[C0_I32]] : tensor<1x5x5x2xi8>, tensor<3x3x2xi8>, i32, i32) outs(%[[V1]] : tensor<1x3x3x2xi32>) -> tensor<1x3x3x2xi32>
// CHECK-NEXT:  %[[CST:.*]] = arith.constant dense<1073741824> : tensor<2xi32>
// CHECK-NEXT:  %[[CST_1:.*]] = arith.constant dense<[-2, -3]> : tensor<2xi32>
// CHECK-NEXT:  %[[V3:.*]] = tensor.empty() : tensor<1x3x3x2xi8>
// CHECK-NEXT:  %[[V4:.*]] = linalg.generic {indexing_maps = [#[[MAP]], #[[MAP1]], #[[MAP1]], #[[MAP1]], #[[MAP]]], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%[[V2]], %[[ARG2]], %[[CST]], %[[CST_1]] : tensor<1x3x3x2xi32>, tensor<2xi32>, tensor<2xi32>, tensor<2xi32>) outs(%[[V3]] : tensor<1x3x3x2xi8>) {
// CHECK-NEXT:  ^bb0(%[[IN:.*]]: i32, %[[IN_2:.*]]: i32, %[[IN_3:.*]]: i32, %[[IN_4:.*]]: i32, %[[OUT:.*]]: i8):
// CHECK-NEXT:    %[[V5:.*]] = arith.extsi %[[IN]] : i32 to i64
// CHECK-NEXT:    %[[V6:.*]] = arith.extsi %[[IN_2]] : i32 to i64
// CHECK-NEXT:    %[[V7:.*]] = arith.addi %[[V5]], %[[V6]] : i64
// CHECK-NEXT:    %[[C_2147483648_I64:.*]] = arith.constant -2147483648 : i64
// CHECK-NEXT:    %[[V8:.*]] = arith.maxsi %[[V7]], %[[C_2147483648_I64]] : i64
// CHECK-NEXT:    %[[C2147483647_I64:.*]] = arith.constant 2147483647 : i64
// CHECK-NEXT:    %[[V9:.*]] = arith.minsi %[[V8]], %[[C2147483647_I64]] : i64
// CHECK-NEXT:    %[[V10:.*]] = arith.extsi %[[IN_3]] : i32 to i64
// CHECK-NEXT:    %[[V11:.*]] = arith.extsi %[[IN_4]] : i32 to i64
// CHECK-NEXT:    %[[C0_I64:.*]] = arith.constant 0 : i64
// CHECK-NEXT:    %[[V12:.*]] = arith.maxsi %[[V11]], %[[C0_I64]] : i64
// CHECK-NEXT:    %[[V13:.*]] = arith.subi %[[C0_I64]], %[[V11]] : i64
// CHECK-NEXT:    %[[V14:.*]] = arith.maxsi %[[V13]], %[[C0_I64]] : i64
// CHECK-NEXT:    %[[V15:.*]] = arith.shli %[[V9]], %[[V12]] : i64
// CHECK-NEXT:    %[[C_2147483648_I64_5:.*]] = arith.constant -2147483648 : i64
// CHECK-NEXT:    %[[V16:.*]] = arith.maxsi %[[V15]], %[[C_2147483648_I64_5]] : i64
// CHECK-NEXT:    %[[C2147483647_I64_6:.*]] = arith.constant 2147483647 : i64
// CHECK-NEXT:    %[[V17:.*]] = arith.minsi %[[V16]], %[[C2147483647_I64_6]] : i64
// CHECK-NEXT:    %[[V18:.*]] = arith.muli %[[V17]], %[[V10]] : i64
// CHECK-NEXT:    %[[C1073741824_I64:.*]] = arith.constant 1073741824 : i64
// CHECK-NEXT:    %[[V19:.*]] = arith.addi %[[V18]], %[[C1073741824_I64]] : i64
// CHECK-NEXT:    %[[C31_I64:.*]] = arith.constant 31 : i64
// CHECK-NEXT:    %[[V20:.*]] = arith.shrsi %[[V19]], %[[C31_I64]] : i64
// CHECK-NEXT:    %[[C_2147483648_I64_7:.*]] = arith.constant -2147483648 : i64
// CHECK-NEXT:    %[[V21:.*]] = arith.cmpi eq, %[[V17]], %[[C_2147483648_I64_7]] : i64
// CHECK-NEXT:    %[[V22:.*]] = arith.cmpi eq, %[[V10]], %[[C_2147483648_I64_7]] : i64
// CHECK-NEXT:    %[[V23:.*]] = arith.andi %[[V21]], %[[V22]] : i1
// CHECK-NEXT:    %[[C2147483647_I64_8:.*]] = arith.constant 2147483647 : i64
// CHECK-NEXT:    %[[V24:.*]] = arith.select %[[V23]], %[[C2147483647_I64_8]], %[[V20]] : i64
// CHECK-NEXT:    %[[C1_I64:.*]] = arith.constant 1 : i64
// CHECK-NEXT:    %[[C0_I64_9:.*]] = arith.constant 0 : i64
// CHECK-NEXT:    %[[V25:.*]] = arith.shli %[[C1_I64]], %[[V14]] : i64
// CHECK-NEXT:    %[[V26:.*]] = arith.subi %[[V25]], %[[C1_I64]] : i64
// CHECK-NEXT:    %[[V27:.*]] = arith.andi %[[V24]], %[[V26]] : i64
// CHECK-NEXT:    %[[V28:.*]] = arith.cmpi slt, %[[V24]], %[[C0_I64_9]] : i64
// CHECK-NEXT:    %[[V29:.*]] = arith.extui %[[V28]] : i1 to i64
// CHECK-NEXT:    %[[V30:.*]] = arith.shrsi %[[V26]], %[[C1_I64]] : i64
// CHECK-NEXT:    %[[V31:.*]] = arith.addi %[[V30]], %[[V29]] : i64
// CHECK-NEXT:    %[[V32:.*]] = arith.cmpi sgt, %[[V27]], %[[V31]] : i64
// CHECK-NEXT:    %[[V33:.*]] = arith.extui %[[V32]] : i1 to i64
// CHECK-NEXT:    %[[V34:.*]] = arith.shrsi %[[V24]], %[[V14]] : i64
// CHECK-NEXT:    %[[V35:.*]] = arith.addi %[[V34]], %[[V33]] : i64
// CHECK-NEXT:    %[[C_128_I64:.*]] = arith.constant -128 : i64
// CHECK-NEXT:    %[[V36:.*]] = arith.addi %[[V35]], %[[C_128_I64]] : i64
// CHECK-NEXT:    %[[C_128_I64_10:.*]] = arith.constant -128 : i64
// CHECK-NEXT:    %[[V37:.*]] = arith.maxsi %[[V36]], %[[C_128_I64_10]] : i64
// CHECK-NEXT:    %[[C0_I64_11:.*]] = arith.constant 0 : i64
// CHECK-NEXT:    %[[V38:.*]] = arith.minsi %[[V37]], %[[C0_I64_11]] : i64
// CHECK-NEXT:    %[[V39:.*]] = arith.trunci %[[V38]] : i64 to i8
// CHECK-NEXT:    linalg.yield %[[V39]] : i8
// CHECK-NEXT:  } -> tensor<1x3x3x2xi8>
// CHECK-NEXT:  return %[[V4]] : tensor<1x3x3x2xi8>
func.func @qconv2d_depthwise(%x: tensor<1x3x3x2xi8>, %w: tensor<3x3x1x2xi8>, %b: tensor<2xi32>) -> tensor<1x3x3x2xi8> {
  %0 = "tinytrain.qconv2d"(%x, %w, %b) {strides = array<i64: 1, 1>, padding = array<i64: 1, 1>, groups = 2 : i64, input_scale = 5.000000e-01 : f64, input_zero_point = -128 : i64, weight_scales = array<f64: 2.500000e-01, 1.250000e-01>, output_scale = 1.000000e+00 : f64, output_zero_point = -128 : i64, multiplier = array<i32: 1073741824, 1073741824>, shift = array<i32: -2, -3>, clamp = array<i64: -128, 0>} : (tensor<1x3x3x2xi8>, tensor<3x3x1x2xi8>, tensor<2xi32>) -> tensor<1x3x3x2xi8>
  return %0 : tensor<1x3x3x2xi8>
}

// -----

// int8 residual add (TFLite ADD): (q - zero) << 20 on each side, compile-time multipliers
// (0.5 / (2 * 0.5) = 2^-1 -> shift 0; 0.25 / 1 -> shift -1; 1 / (2^20 * 1) -> shift -19). A side's
// rescaled value depends on its int8 alone: two 256-entry i32 tables computed at compile time by
// the reference, indexed by q + 128 (lhs: q = -128 -> (-128 - 1) << 20 * 0.5 = -129 * 2^19 =
// 0xFBF80000, q = -127 -> -128 * 2^19; rhs: q = -128 -> (-128 + 2) << 20 * 0.25 = -126 * 2^18 =
// 0xFE080000); the sum rescaled to the output (the 64-bit product of step 3, step 4's rounding
// right shift by 19), + 3, clamped.
// CHECK-DAG:   #[[MAP:map[0-9]*]] = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>
// CHECK-LABEL: func.func @qadd(
// CHECK-SAME:    %[[ARG0:.*]]: tensor<1x2x2x3xi8>, %[[ARG1:.*]]: tensor<1x2x2x3xi8>) -> tensor<1x2x2x3xi8> {
// CHECK-NEXT:  %[[TA:.*]] = arith.constant dense<"0x0000F8FB000000FC{{[0-9A-F]*}}"> : tensor<256xi32>
// CHECK-NEXT:  %[[TB:.*]] = arith.constant dense<"0x000008FE00000CFE{{[0-9A-F]*}}"> : tensor<256xi32>
// CHECK-NEXT:  %[[V0:.*]] = tensor.empty() : tensor<1x2x2x3xi8>
// CHECK-NEXT:  %[[V1:.*]] = linalg.generic {indexing_maps = [#[[MAP]], #[[MAP]], #[[MAP]]], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%[[ARG0]], %[[ARG1]] : tensor<1x2x2x3xi8>, tensor<1x2x2x3xi8>) outs(%[[V0]] : tensor<1x2x2x3xi8>) {
// CHECK-NEXT:  ^bb0(%[[IN:.*]]: i8, %[[IN_1:.*]]: i8, %[[OUT:.*]]: i8):
// CHECK-NEXT:    %[[V2:.*]] = arith.extsi %[[IN]] : i8 to i32
// CHECK-NEXT:    %[[C128:.*]] = arith.constant 128 : i32
// CHECK-NEXT:    %[[V3:.*]] = arith.addi %[[V2]], %[[C128]] : i32
// CHECK-NEXT:    %[[V4:.*]] = arith.index_cast %[[V3]] : i32 to index
// CHECK-NEXT:    %[[RA:.*]] = tensor.extract %[[TA]][%[[V4]]] : tensor<256xi32>
// CHECK-NEXT:    %[[V5:.*]] = arith.extsi %[[IN_1]] : i8 to i32
// CHECK-NEXT:    %[[C128_2:.*]] = arith.constant 128 : i32
// CHECK-NEXT:    %[[V6:.*]] = arith.addi %[[V5]], %[[C128_2]] : i32
// CHECK-NEXT:    %[[V7:.*]] = arith.index_cast %[[V6]] : i32 to index
// CHECK-NEXT:    %[[RB:.*]] = tensor.extract %[[TB]][%[[V7]]] : tensor<256xi32>
// CHECK-NEXT:    %[[V8:.*]] = arith.addi %[[RA]], %[[RB]] : i32
// CHECK-NEXT:    %[[V9:.*]] = arith.extsi %[[V8]] : i32 to i64
// CHECK-NEXT:    %[[M0:.*]] = arith.constant 1073741824 : i64
// CHECK-NEXT:    %[[V10:.*]] = arith.muli %[[V9]], %[[M0]] : i64
// CHECK-NEXT:    %[[NUDGE:.*]] = arith.constant 1073741824 : i64
// CHECK-NEXT:    %[[V11:.*]] = arith.addi %[[V10]], %[[NUDGE]] : i64
// CHECK-NEXT:    %[[C31:.*]] = arith.constant 31 : i64
// CHECK-NEXT:    %[[V12:.*]] = arith.shrsi %[[V11]], %[[C31]] : i64
// CHECK-NEXT:    %[[V13:.*]] = arith.trunci %[[V12]] : i64 to i32
// CHECK-NEXT:    %[[C19:.*]] = arith.constant 19 : i32
// CHECK-NEXT:    %[[C1:.*]] = arith.constant 1 : i32
// CHECK-NEXT:    %[[C0:.*]] = arith.constant 0 : i32
// CHECK-NEXT:    %[[V14:.*]] = arith.shli %[[C1]], %[[C19]] : i32
// CHECK-NEXT:    %[[MASK:.*]] = arith.subi %[[V14]], %[[C1]] : i32
// CHECK-NEXT:    %[[REM:.*]] = arith.andi %[[V13]], %[[MASK]] : i32
// CHECK-NEXT:    %[[NEG:.*]] = arith.cmpi slt, %[[V13]], %[[C0]] : i32
// CHECK-NEXT:    %[[V18:.*]] = arith.extui %[[NEG]] : i1 to i32
// CHECK-NEXT:    %[[V19:.*]] = arith.shrsi %[[MASK]], %[[C1]] : i32
// CHECK-NEXT:    %[[THR:.*]] = arith.addi %[[V19]], %[[V18]] : i32
// CHECK-NEXT:    %[[UP:.*]] = arith.cmpi sgt, %[[REM]], %[[THR]] : i32
// CHECK-NEXT:    %[[V22:.*]] = arith.extui %[[UP]] : i1 to i32
// CHECK-NEXT:    %[[V23:.*]] = arith.shrsi %[[V13]], %[[C19]] : i32
// CHECK-NEXT:    %[[V24:.*]] = arith.addi %[[V23]], %[[V22]] : i32
// CHECK-NEXT:    %[[C3:.*]] = arith.constant 3 : i32
// CHECK-NEXT:    %[[V25:.*]] = arith.addi %[[V24]], %[[C3]] : i32
// CHECK-NEXT:    %[[LO:.*]] = arith.constant -128 : i32
// CHECK-NEXT:    %[[V26:.*]] = arith.maxsi %[[V25]], %[[LO]] : i32
// CHECK-NEXT:    %[[HI:.*]] = arith.constant 127 : i32
// CHECK-NEXT:    %[[V27:.*]] = arith.minsi %[[V26]], %[[HI]] : i32
// CHECK-NEXT:    %[[V28:.*]] = arith.trunci %[[V27]] : i32 to i8
// CHECK-NEXT:    linalg.yield %[[V28]] : i8
// CHECK-NEXT:  } -> tensor<1x2x2x3xi8>
// CHECK-NEXT:  return %[[V1]] : tensor<1x2x2x3xi8>
func.func @qadd(%a: tensor<1x2x2x3xi8>, %b: tensor<1x2x2x3xi8>) -> tensor<1x2x2x3xi8> {
  %0 = "tinytrain.qadd"(%a, %b) {lhs_scale = 5.000000e-01 : f64, lhs_zero_point = 1 : i64, rhs_scale = 2.500000e-01 : f64, rhs_zero_point = -2 : i64, output_scale = 1.000000e+00 : f64, output_zero_point = 3 : i64, clamp = array<i64: -128, 127>} : (tensor<1x2x2x3xi8>, tensor<1x2x2x3xi8>) -> tensor<1x2x2x3xi8>
  return %0 : tensor<1x2x2x3xi8>
}

// -----

// Global average pool: i32 sum over H, W, then (s + sign(s) * 3) / 6 truncated (ties away from 0).
// CHECK-DAG:   #[[MAP:map[0-9]*]] = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>
// CHECK-DAG:   #[[MAP1:map[0-9]*]] = affine_map<(d0, d1, d2, d3) -> (d0, d3)>
// CHECK-DAG:   #[[MAP2:map[0-9]*]] = affine_map<(d0, d1) -> (d0, d1)>
// CHECK-LABEL: func.func @qavg_pool(
// CHECK-SAME:    %[[ARG0:.*]]: tensor<1x2x3x4xi8>) -> tensor<1x4xi8> {
// CHECK-NEXT:  %[[C0_I32:.*]] = arith.constant 0 : i32
// CHECK-NEXT:  %[[V0:.*]] = tensor.empty() : tensor<1x4xi32>
// CHECK-NEXT:  %[[V1:.*]] = linalg.fill ins(%[[C0_I32]] : i32) outs(%[[V0]] : tensor<1x4xi32>) -> tensor<1x4xi32>
// CHECK-NEXT:  %[[V2:.*]] = linalg.generic {indexing_maps = [#[[MAP]], #[[MAP1]]], iterator_types = ["parallel", "reduction", "reduction", "parallel"]} ins(%[[ARG0]] : tensor<1x2x3x4xi8>) outs(%[[V1]] : tensor<1x4xi32>) {
// CHECK-NEXT:  ^bb0(%[[IN:.*]]: i8, %[[OUT:.*]]: i32):
// CHECK-NEXT:    %[[V5:.*]] = arith.extsi %[[IN]] : i8 to i32
// CHECK-NEXT:    %[[V6:.*]] = arith.addi %[[OUT]], %[[V5]] : i32
// CHECK-NEXT:    linalg.yield %[[V6]] : i32
// CHECK-NEXT:  } -> tensor<1x4xi32>
// CHECK-NEXT:  %[[V3:.*]] = tensor.empty() : tensor<1x4xi8>
// CHECK-NEXT:  %[[V4:.*]] = linalg.generic {indexing_maps = [#[[MAP2]], #[[MAP2]]], iterator_types = ["parallel", "parallel"]} ins(%[[V2]] : tensor<1x4xi32>) outs(%[[V3]] : tensor<1x4xi8>) {
// CHECK-NEXT:  ^bb0(%[[IN:.*]]: i32, %[[OUT:.*]]: i8):
// CHECK-NEXT:    %[[V5:.*]] = arith.extsi %[[IN]] : i32 to i64
// CHECK-NEXT:    %[[C0_I64:.*]] = arith.constant 0 : i64
// CHECK-NEXT:    %[[V6:.*]] = arith.cmpi sge, %[[V5]], %[[C0_I64]] : i64
// CHECK-NEXT:    %[[C3_I64:.*]] = arith.constant 3 : i64
// CHECK-NEXT:    %[[C_3_I64:.*]] = arith.constant -3 : i64
// CHECK-NEXT:    %[[V7:.*]] = arith.select %[[V6]], %[[C3_I64]], %[[C_3_I64]] : i64
// CHECK-NEXT:    %[[V8:.*]] = arith.addi %[[V5]], %[[V7]] : i64
// CHECK-NEXT:    %[[C6_I64:.*]] = arith.constant 6 : i64
// CHECK-NEXT:    %[[V9:.*]] = arith.divsi %[[V8]], %[[C6_I64]] : i64
// CHECK-NEXT:    %[[C_128_I64:.*]] = arith.constant -128 : i64
// CHECK-NEXT:    %[[V10:.*]] = arith.maxsi %[[V9]], %[[C_128_I64]] : i64
// CHECK-NEXT:    %[[C127_I64:.*]] = arith.constant 127 : i64
// CHECK-NEXT:    %[[V11:.*]] = arith.minsi %[[V10]], %[[C127_I64]] : i64
// CHECK-NEXT:    %[[V12:.*]] = arith.trunci %[[V11]] : i64 to i8
// CHECK-NEXT:    linalg.yield %[[V12]] : i8
// CHECK-NEXT:  } -> tensor<1x4xi8>
// CHECK-NEXT:  return %[[V4]] : tensor<1x4xi8>
func.func @qavg_pool(%x: tensor<1x2x3x4xi8>) -> tensor<1x4xi8> {
  %0 = "tinytrain.qavg_pool"(%x) : (tensor<1x2x3x4xi8>) -> tensor<1x4xi8>
  return %0 : tensor<1x4xi8>
}

// -----

// quantize in f64: roundeven(x / scale) + zero, clamped, to i8.
// CHECK-DAG:   #[[MAP:map[0-9]*]] = affine_map<(d0, d1) -> (d0, d1)>
// CHECK-LABEL: func.func @quantize(
// CHECK-SAME:    %[[ARG0:.*]]: tensor<2x3xf32>) -> tensor<2x3xi8> {
// CHECK-NEXT:  %[[V0:.*]] = tensor.empty() : tensor<2x3xi8>
// CHECK-NEXT:  %[[V1:.*]] = linalg.generic {indexing_maps = [#[[MAP]], #[[MAP]]], iterator_types = ["parallel", "parallel"]} ins(%[[ARG0]] : tensor<2x3xf32>) outs(%[[V0]] : tensor<2x3xi8>) {
// CHECK-NEXT:  ^bb0(%[[IN:.*]]: f32, %[[OUT:.*]]: i8):
// CHECK-NEXT:    %[[V2:.*]] = arith.extf %[[IN]] : f32 to f64
// CHECK-NEXT:    %[[CST:.*]] = arith.constant 2.500000e-01 : f64
// CHECK-NEXT:    %[[V3:.*]] = arith.divf %[[V2]], %[[CST]] : f64
// CHECK-NEXT:    %[[V4:.*]] = math.roundeven %[[V3]] : f64
// CHECK-NEXT:    %[[CST_0:.*]] = arith.constant -1.000000e+00 : f64
// CHECK-NEXT:    %[[V5:.*]] = arith.addf %[[V4]], %[[CST_0]] : f64
// CHECK-NEXT:    %[[CST_1:.*]] = arith.constant -1.280000e+02 : f64
// CHECK-NEXT:    %[[V6:.*]] = arith.maximumf %[[V5]], %[[CST_1]] : f64
// CHECK-NEXT:    %[[CST_2:.*]] = arith.constant 1.270000e+02 : f64
// CHECK-NEXT:    %[[V7:.*]] = arith.minimumf %[[V6]], %[[CST_2]] : f64
// CHECK-NEXT:    %[[V8:.*]] = arith.fptosi %[[V7]] : f64 to i8
// CHECK-NEXT:    linalg.yield %[[V8]] : i8
// CHECK-NEXT:  } -> tensor<2x3xi8>
// CHECK-NEXT:  return %[[V1]] : tensor<2x3xi8>
func.func @quantize(%x: tensor<2x3xf32>) -> tensor<2x3xi8> {
  %0 = "tinytrain.quantize"(%x) {scale = 2.500000e-01 : f64, zero_point = -1 : i64} : (tensor<2x3xf32>) -> tensor<2x3xi8>
  return %0 : tensor<2x3xi8>
}

// -----

// dequantize in f64: scale * (q - zero), rounded once to f32.
// CHECK-DAG:   #[[MAP:map[0-9]*]] = affine_map<(d0, d1) -> (d0, d1)>
// CHECK-LABEL: func.func @dequantize(
// CHECK-SAME:    %[[ARG0:.*]]: tensor<2x3xi8>) -> tensor<2x3xf32> {
// CHECK-NEXT:  %[[V0:.*]] = tensor.empty() : tensor<2x3xf32>
// CHECK-NEXT:  %[[V1:.*]] = linalg.generic {indexing_maps = [#[[MAP]], #[[MAP]]], iterator_types = ["parallel", "parallel"]} ins(%[[ARG0]] : tensor<2x3xi8>) outs(%[[V0]] : tensor<2x3xf32>) {
// CHECK-NEXT:  ^bb0(%[[IN:.*]]: i8, %[[OUT:.*]]: f32):
// CHECK-NEXT:    %[[V2:.*]] = arith.extsi %[[IN]] : i8 to i64
// CHECK-NEXT:    %[[C_1_I64:.*]] = arith.constant -1 : i64
// CHECK-NEXT:    %[[V3:.*]] = arith.subi %[[V2]], %[[C_1_I64]] : i64
// CHECK-NEXT:    %[[V4:.*]] = arith.sitofp %[[V3]] : i64 to f64
// CHECK-NEXT:    %[[CST:.*]] = arith.constant 2.500000e-01 : f64
// CHECK-NEXT:    %[[V5:.*]] = arith.mulf %[[CST]], %[[V4]] : f64
// CHECK-NEXT:    %[[V6:.*]] = arith.truncf %[[V5]] : f64 to f32
// CHECK-NEXT:    linalg.yield %[[V6]] : f32
// CHECK-NEXT:  } -> tensor<2x3xf32>
// CHECK-NEXT:  return %[[V1]] : tensor<2x3xf32>
func.func @dequantize(%x: tensor<2x3xi8>) -> tensor<2x3xf32> {
  %0 = "tinytrain.dequantize"(%x) {scale = 2.500000e-01 : f64, zero_point = -1 : i64} : (tensor<2x3xi8>) -> tensor<2x3xf32>
  return %0 : tensor<2x3xf32>
}

// -----

// Training ops. channel_scale: f32(x) * scale[c] over the last axis (dequantized int8 weights).
// CHECK-DAG:   #[[MAP:map[0-9]*]] = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>
// CHECK-DAG:   #[[MAP1:map[0-9]*]] = affine_map<(d0, d1, d2, d3) -> (d3)>
// CHECK-LABEL: func.func @channel_scale(
// CHECK-SAME:    %[[ARG0:.*]]: tensor<1x1x2x3xi8>) -> tensor<1x1x2x3xf32> {
// CHECK-NEXT:  %[[CST:.*]] = arith.constant dense<[2.500000e-01, 5.000000e-01, 1.000000e+00]> : tensor<3xf32>
// CHECK-NEXT:  %[[V0:.*]] = tensor.empty() : tensor<1x1x2x3xf32>
// CHECK-NEXT:  %[[V1:.*]] = linalg.generic {indexing_maps = [#[[MAP]], #[[MAP1]], #[[MAP]]], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%[[ARG0]], %[[CST]] : tensor<1x1x2x3xi8>, tensor<3xf32>) outs(%[[V0]] : tensor<1x1x2x3xf32>) {
// CHECK-NEXT:  ^bb0(%[[IN:.*]]: i8, %[[IN_0:.*]]: f32, %[[OUT:.*]]: f32):
// CHECK-NEXT:    %[[V2:.*]] = arith.sitofp %[[IN]] : i8 to f32
// CHECK-NEXT:    %[[V3:.*]] = arith.mulf %[[V2]], %[[IN_0]] : f32
// CHECK-NEXT:    linalg.yield %[[V3]] : f32
// CHECK-NEXT:  } -> tensor<1x1x2x3xf32>
// CHECK-NEXT:  return %[[V1]] : tensor<1x1x2x3xf32>
func.func @channel_scale(%w: tensor<1x1x2x3xi8>) -> tensor<1x1x2x3xf32> {
  %0 = "tinytrain.channel_scale"(%w) {scales = array<f64: 2.500000e-01, 5.000000e-01, 1.000000e+00>} : (tensor<1x1x2x3xi8>) -> tensor<1x1x2x3xf32>
  return %0 : tensor<1x1x2x3xf32>
}

// -----

// qclamp_grad: the gradient passes where the int8 output is strictly inside [lo, hi] = [-128, 100].
// CHECK-DAG:   #[[MAP:map[0-9]*]] = affine_map<(d0, d1) -> (d0, d1)>
// CHECK-LABEL: func.func @qclamp_grad(
// CHECK-SAME:    %[[ARG0:.*]]: tensor<2x3xf32>, %[[ARG1:.*]]: tensor<2x3xi8>) -> tensor<2x3xf32> {
// CHECK-NEXT:  %[[V0:.*]] = tensor.empty() : tensor<2x3xf32>
// CHECK-NEXT:  %[[V1:.*]] = linalg.generic {indexing_maps = [#[[MAP]], #[[MAP]], #[[MAP]]], iterator_types = ["parallel", "parallel"]} ins(%[[ARG0]], %[[ARG1]] : tensor<2x3xf32>, tensor<2x3xi8>) outs(%[[V0]] : tensor<2x3xf32>) {
// CHECK-NEXT:  ^bb0(%[[IN:.*]]: f32, %[[IN_0:.*]]: i8, %[[OUT:.*]]: f32):
// CHECK-NEXT:    %[[C_128_I8:.*]] = arith.constant -128 : i8
// CHECK-NEXT:    %[[V2:.*]] = arith.cmpi sgt, %[[IN_0]], %[[C_128_I8]] : i8
// CHECK-NEXT:    %[[C100_I8:.*]] = arith.constant 100 : i8
// CHECK-NEXT:    %[[V3:.*]] = arith.cmpi slt, %[[IN_0]], %[[C100_I8]] : i8
// CHECK-NEXT:    %[[V4:.*]] = arith.andi %[[V2]], %[[V3]] : i1
// CHECK-NEXT:    %[[CST:.*]] = arith.constant 0.000000e+00 : f32
// CHECK-NEXT:    %[[V5:.*]] = arith.select %[[V4]], %[[IN]], %[[CST]] : f32
// CHECK-NEXT:    linalg.yield %[[V5]] : f32
// CHECK-NEXT:  } -> tensor<2x3xf32>
// CHECK-NEXT:  return %[[V1]] : tensor<2x3xf32>
func.func @qclamp_grad(%g: tensor<2x3xf32>, %y: tensor<2x3xi8>) -> tensor<2x3xf32> {
  %0 = "tinytrain.qclamp_grad"(%g, %y) {clamp = array<i64: -128, 100>} : (tensor<2x3xf32>, tensor<2x3xi8>) -> tensor<2x3xf32>
  return %0 : tensor<2x3xf32>
}

// -----

// qclamp_mask: bit k of byte [i, j] = (-128 < y[i, 8 j + k] < 100), an OR-reduction over the
// channels viewed as [.., C / 8, 8].
// CHECK-DAG:   #[[MAP:map[0-9]*]] = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
// CHECK-DAG:   #[[MAP1:map[0-9]*]] = affine_map<(d0, d1, d2) -> (d0, d1)>
// CHECK-LABEL: func.func @qclamp_mask(
// CHECK-SAME:    %[[Y:.*]]: tensor<2x16xi8>) -> tensor<2x2xi8> {
// CHECK-NEXT:  %[[E:.*]] = tensor.expand_shape %[[Y]] {{\[}}[0], [1, 2]] output_shape [2, 2, 8] : tensor<2x16xi8> into tensor<2x2x8xi8>
// CHECK-NEXT:  %[[Z:.*]] = arith.constant 0 : i8
// CHECK-NEXT:  %[[V0:.*]] = tensor.empty() : tensor<2x2xi8>
// CHECK-NEXT:  %[[V1:.*]] = linalg.fill ins(%[[Z]] : i8) outs(%[[V0]] : tensor<2x2xi8>) -> tensor<2x2xi8>
// CHECK-NEXT:  %[[V2:.*]] = linalg.generic {indexing_maps = [#[[MAP]], #[[MAP1]]], iterator_types = ["parallel", "parallel", "reduction"]} ins(%[[E]] : tensor<2x2x8xi8>) outs(%[[V1]] : tensor<2x2xi8>) {
// CHECK-NEXT:  ^bb0(%[[IN:.*]]: i8, %[[OUT:.*]]: i8):
// CHECK-NEXT:    %[[LO:.*]] = arith.constant -128 : i8
// CHECK-NEXT:    %[[A:.*]] = arith.cmpi sgt, %[[IN]], %[[LO]] : i8
// CHECK-NEXT:    %[[HI:.*]] = arith.constant 100 : i8
// CHECK-NEXT:    %[[B:.*]] = arith.cmpi slt, %[[IN]], %[[HI]] : i8
// CHECK-NEXT:    %[[INSIDE:.*]] = arith.andi %[[A]], %[[B]] : i1
// CHECK-NEXT:    %[[K:.*]] = linalg.index 2 : index
// CHECK-NEXT:    %[[K8:.*]] = arith.index_cast %[[K]] : index to i8
// CHECK-NEXT:    %[[ONE:.*]] = arith.constant 1 : i8
// CHECK-NEXT:    %[[BIT:.*]] = arith.shli %[[ONE]], %[[K8]] : i8
// CHECK-NEXT:    %[[Z2:.*]] = arith.constant 0 : i8
// CHECK-NEXT:    %[[SEL:.*]] = arith.select %[[INSIDE]], %[[BIT]], %[[Z2]] : i8
// CHECK-NEXT:    %[[OR:.*]] = arith.ori %[[OUT]], %[[SEL]] : i8
// CHECK-NEXT:    linalg.yield %[[OR]] : i8
// CHECK-NEXT:  } -> tensor<2x2xi8>
// CHECK-NEXT:  return %[[V2]] : tensor<2x2xi8>
func.func @qclamp_mask(%y: tensor<2x16xi8>) -> tensor<2x2xi8> {
  %0 = "tinytrain.qclamp_mask"(%y) {clamp = array<i64: -128, 100>} : (tensor<2x16xi8>) -> tensor<2x2xi8>
  return %0 : tensor<2x2xi8>
}

// -----

// qmask_grad: grad[i, 8 j + k] where bit k of mask[i, j] is 1, else 0.
// CHECK-DAG:   #[[MAP:map[0-9]*]] = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
// CHECK-DAG:   #[[MAP1:map[0-9]*]] = affine_map<(d0, d1, d2) -> (d0, d1)>
// CHECK-LABEL: func.func @qmask_grad(
// CHECK-SAME:    %[[G:.*]]: tensor<2x16xf32>, %[[M:.*]]: tensor<2x2xi8>) -> tensor<2x16xf32> {
// CHECK-NEXT:  %[[E:.*]] = tensor.expand_shape %[[G]] {{\[}}[0], [1, 2]] output_shape [2, 2, 8] : tensor<2x16xf32> into tensor<2x2x8xf32>
// CHECK-NEXT:  %[[V0:.*]] = tensor.empty() : tensor<2x2x8xf32>
// CHECK-NEXT:  %[[V1:.*]] = linalg.generic {indexing_maps = [#[[MAP]], #[[MAP1]], #[[MAP]]], iterator_types = ["parallel", "parallel", "parallel"]} ins(%[[E]], %[[M]] : tensor<2x2x8xf32>, tensor<2x2xi8>) outs(%[[V0]] : tensor<2x2x8xf32>) {
// CHECK-NEXT:  ^bb0(%[[IN:.*]]: f32, %[[IN_0:.*]]: i8, %[[OUT:.*]]: f32):
// CHECK-NEXT:    %[[K:.*]] = linalg.index 2 : index
// CHECK-NEXT:    %[[K8:.*]] = arith.index_cast %[[K]] : index to i8
// CHECK-NEXT:    %[[SH:.*]] = arith.shrui %[[IN_0]], %[[K8]] : i8
// CHECK-NEXT:    %[[ONE:.*]] = arith.constant 1 : i8
// CHECK-NEXT:    %[[BIT:.*]] = arith.andi %[[SH]], %[[ONE]] : i8
// CHECK-NEXT:    %[[CST:.*]] = arith.constant 0.000000e+00 : f32
// CHECK-NEXT:    %[[Z:.*]] = arith.constant 0 : i8
// CHECK-NEXT:    %[[SET:.*]] = arith.cmpi ne, %[[BIT]], %[[Z]] : i8
// CHECK-NEXT:    %[[SEL:.*]] = arith.select %[[SET]], %[[IN]], %[[CST]] : f32
// CHECK-NEXT:    linalg.yield %[[SEL]] : f32
// CHECK-NEXT:  } -> tensor<2x2x8xf32>
// CHECK-NEXT:  %[[C:.*]] = tensor.collapse_shape %[[V1]] {{\[}}[0], [1, 2]] : tensor<2x2x8xf32> into tensor<2x16xf32>
// CHECK-NEXT:  return %[[C]] : tensor<2x16xf32>
func.func @qmask_grad(%g: tensor<2x16xf32>, %m: tensor<2x2xi8>) -> tensor<2x16xf32> {
  %0 = "tinytrain.qmask_grad"(%g, %m) : (tensor<2x16xf32>, tensor<2x2xi8>) -> tensor<2x16xf32>
  return %0 : tensor<2x16xf32>
}

// -----

// qsgd_update of an int8 weight: clamp(p - roundeven(lr * g), -127, 127) in i32 (the step
// clamped to +-256 first: beyond it the result saturates either way, then rounded half to even
// by adding and subtracting 1.5 * 2^23), or p unchanged when the step's loss is not finite
// (loss - loss == 0 fails for NaN/Inf) or lr * g is NaN (cmpf ord).
// CHECK-DAG:   #[[MAP:map[0-9]*]] = affine_map<(d0) -> (d0)>
// CHECK-LABEL: func.func @qsgd_update(
// CHECK-SAME:    %[[ARG0:.*]]: tensor<4xi8>, %[[ARG1:.*]]: tensor<4xf32>, %[[ARG2:.*]]: tensor<f32>) -> tensor<4xi8> {
// CHECK-NEXT:  %[[EXTRACTED:.*]] = tensor.extract %[[ARG2]][] : tensor<f32>
// CHECK-NEXT:  %[[CST:.*]] = arith.constant 0.000000e+00 : f32
// CHECK-NEXT:  %[[V0:.*]] = arith.subf %[[EXTRACTED]], %[[EXTRACTED]] : f32
// CHECK-NEXT:  %[[V1:.*]] = arith.cmpf oeq, %[[V0]], %[[CST]] : f32
// CHECK-NEXT:  %[[V2:.*]] = tensor.empty() : tensor<4xi8>
// CHECK-NEXT:  %[[V3:.*]] = linalg.generic {indexing_maps = [#[[MAP]], #[[MAP]], #[[MAP]]], iterator_types = ["parallel"]} ins(%[[ARG0]], %[[ARG1]] : tensor<4xi8>, tensor<4xf32>) outs(%[[V2]] : tensor<4xi8>) {
// CHECK-NEXT:  ^bb0(%[[IN:.*]]: i8, %[[IN_0:.*]]: f32, %[[OUT:.*]]: i8):
// CHECK-NEXT:    %[[CST_1:.*]] = arith.constant 5.000000e-01 : f32
// CHECK-NEXT:    %[[V4:.*]] = arith.mulf %[[CST_1]], %[[IN_0]] : f32
// CHECK-NEXT:    %[[V5:.*]] = arith.cmpf ord, %[[V4]], %[[V4]] : f32
// CHECK-NEXT:    %[[V6:.*]] = arith.andi %[[V1]], %[[V5]] : i1
// CHECK-NEXT:    %[[CST_2:.*]] = arith.constant -2.560000e+02 : f32
// CHECK-NEXT:    %[[V7:.*]] = arith.cmpf ugt, %[[V4]], %[[CST_2]] : f32
// CHECK-NEXT:    %[[V8:.*]] = arith.select %[[V7]], %[[V4]], %[[CST_2]] : f32
// CHECK-NEXT:    %[[CST_3:.*]] = arith.constant 2.560000e+02 : f32
// CHECK-NEXT:    %[[V9:.*]] = arith.cmpf ult, %[[V8]], %[[CST_3]] : f32
// CHECK-NEXT:    %[[V10:.*]] = arith.select %[[V9]], %[[V8]], %[[CST_3]] : f32
// CHECK-NEXT:    %[[CST_4:.*]] = arith.constant 0x4B400000 : f32
// CHECK-NEXT:    %[[V11:.*]] = arith.addf %[[V10]], %[[CST_4]] : f32
// CHECK-NEXT:    %[[CST_5:.*]] = arith.constant 0x4B400000 : f32
// CHECK-NEXT:    %[[V12:.*]] = arith.subf %[[V11]], %[[CST_5]] : f32
// CHECK-NEXT:    %[[V13:.*]] = arith.extsi %[[IN]] : i8 to i32
// CHECK-NEXT:    %[[V14:.*]] = arith.fptosi %[[V12]] : f32 to i32
// CHECK-NEXT:    %[[V15:.*]] = arith.subi %[[V13]], %[[V14]] : i32
// CHECK-NEXT:    %[[C_127_I32:.*]] = arith.constant -127 : i32
// CHECK-NEXT:    %[[V16:.*]] = arith.maxsi %[[V15]], %[[C_127_I32]] : i32
// CHECK-NEXT:    %[[C127_I32:.*]] = arith.constant 127 : i32
// CHECK-NEXT:    %[[V17:.*]] = arith.minsi %[[V16]], %[[C127_I32]] : i32
// CHECK-NEXT:    %[[V18:.*]] = arith.trunci %[[V17]] : i32 to i8
// CHECK-NEXT:    %[[V19:.*]] = arith.select %[[V6]], %[[V18]], %[[IN]] : i8
// CHECK-NEXT:    linalg.yield %[[V19]] : i8
// CHECK-NEXT:  } -> tensor<4xi8>
// CHECK-NEXT:  return %[[V3]] : tensor<4xi8>
func.func @qsgd_update(%w: tensor<4xi8>, %g: tensor<4xf32>, %l: tensor<f32>) -> tensor<4xi8> {
  %0 = "tinytrain.qsgd_update"(%w, %g, %l) {lr = 5.000000e-01 : f32} : (tensor<4xi8>, tensor<4xf32>, tensor<f32>) -> tensor<4xi8>
  return %0 : tensor<4xi8>
}
