// RUN: tinytrain-opt -p 'to-linalg{kernels=ttk}' --split-input-file %s | filecheck %s
// RUN: tinytrain-opt -p 'to-linalg{kernels=iree}' --split-input-file %s | filecheck %s --check-prefix=IREE
// RUN: tinytrain-opt -p 'to-linalg{kernels=ttk-f32}' --split-input-file %s | filecheck %s --check-prefix=F32

// to-linalg{kernels=ttk}: a pointwise qconv2d inside ttk_conv1x1_s8's contract becomes one
// flow.dispatch of a stream.executable calling the kernel (hal.import.static); the weights are
// packed [C_out][C_in] by a linalg.transpose IREE folds at compile time. The dense 3x3 conv with
// K*K*C_in <= 64 (a first conv) becomes a dispatch of ttk_iree_conv_s8 on the unpadded input, its
// weights packed to int16 channel pairs by one linalg.generic (ttk_pack_conv_q15's layout, 2 w: 27 k
// padded to 28, 2 channels = 1 pair: 56 lanes). kernels=iree (the default, the host) lowers both
// to linalg. A depthwise 3x3 s2 becomes a dispatch of ttk_iree_dwconv_s8 on the unpadded input
// (the kernel pads; a second, transient result is its scratch). Padding 0 (a pre-padded patch of `patch-stage`) is inside both kernels'
// contracts too (the padding is a constant of the dispatch); any other padding is not.

// CHECK:       func.func private @ttk_iree_conv_s8(memref<48xi8>, memref<56xi16>, memref<2xi32>, memref<2xi32>, memref<2xi32>, memref<32xi8>, index, index, index, index, index, index, index, index, index, index, index) attributes {hal.import.static}
// CHECK:       }) {sym_name = "[[CONV:ttk_conv_s8_4_4_3_2_3_1_1_5_0_m128_127]]", sym_visibility = "private"}
// CHECK:       "stream.executable"() ({
// CHECK:         "stream.executable.export"() ({
// CHECK:           "stream.return"(%[[ONE:.*]], %[[ONE]], %[[ONE]]) : (index, index, index) -> ()
// CHECK:         }) {function_ref = @[[EXE:ttk_conv1x1_s8_16_2_3_m3_5_m128_127]], sym_name = "[[EXE]]", sym_visibility = "public"}
// CHECK:         builtin.module {
// CHECK:           func.func private @ttk_iree_conv1x1_s8(memref<32xi8>, memref<6xi8>, memref<3xi32>, memref<3xi32>, memref<3xi32>, memref<48xi8>, memref<{{[0-9]+}}xi8>, index, index, index, index, index, index, index) attributes {hal.import.static}
// CHECK:           func.func @[[EXE]](%[[X:.*]]: !stream.binding, %{{.*}}: !stream.binding, %{{.*}}: !stream.binding, %{{.*}}: !stream.binding, %{{.*}}: !stream.binding, %{{.*}}: !stream.binding, %{{.*}}: !stream.binding) {
// CHECK:             "stream.binding.subspan"(%[[X]], %{{.*}}) : (!stream.binding, index) -> memref<32xi8>
// CHECK:             call @ttk_iree_conv1x1_s8(
// CHECK:         "stream.executable.end"() : () -> ()
// CHECK:       }) {sym_name = "[[EXE]]", sym_visibility = "private"}
// CHECK-LABEL: func.func @pw_and_3x3(
// CHECK:         linalg.transpose ins(%{{.*}} : tensor<2x3xi8>) outs(%{{.*}} : tensor<3x2xi8>) permutation = [1, 0]
// CHECK:         %[[D:.*]]:2 = "flow.dispatch"(%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}) {entry_points = [@[[EXE]]::@[[EXE]]], operandSegmentSizes = array<i32: 0, 5, 0, 0>, tied_operands = [-1 : index, -1 : index]} : (tensor<32xi8>, tensor<6xi8>, tensor<3xi32>, tensor<3xi32>, tensor<3xi32>) -> (tensor<48xi8>, tensor<{{[0-9]+}}xi8>)
// CHECK:         tensor.expand_shape %[[D]]#0
// CHECK-NOT:     low[0, 1, 1, 0]
// CHECK:         tensor.pad %{{.*}} low[0, 0] high[1, 0]
// CHECK:         linalg.generic {{.*}} ins(%{{.*}} : tensor<7x2x2x1x2xi8>) outs(%{{.*}} : tensor<1x7x2x2x2xi16>)
// CHECK:         %[[E:.*]] = arith.extsi %{{.*}} : i8 to i16
// CHECK-NEXT:    %[[E2:.*]] = arith.addi %[[E]], %[[E]] : i16
// CHECK-NEXT:    linalg.yield %[[E2]] : i16
// CHECK:         "flow.dispatch"({{.*}}) {entry_points = [@[[CONV]]::@[[CONV]]], operandSegmentSizes = array<i32: 0, 5, 0, 0>, tied_operands = [-1 : index]} : (tensor<48xi8>, tensor<56xi16>, tensor<2xi32>, tensor<2xi32>, tensor<2xi32>) -> tensor<32xi8>
// CHECK-NOT:     linalg.conv_2d_nhwc_hwcf_q
// IREE-NOT:      flow.dispatch
// IREE-COUNT-2:  linalg.conv_2d_nhwc_hwcf_q
func.func @pw_and_3x3(%x: tensor<1x4x4x2xi8>, %w: tensor<1x1x2x3xi8>, %b: tensor<3xi32>, %w3: tensor<3x3x3x2xi8>, %b3: tensor<2xi32>) -> tensor<1x4x4x2xi8> {
  %0 = "tinytrain.qconv2d"(%x, %w, %b) {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, groups = 1 : i64, input_scale = 5.000000e-01 : f64, input_zero_point = -3 : i64, weight_scales = array<f64: 2.500000e-01, 1.250000e-01, 1.250000e-01>, output_scale = 1.000000e+00 : f64, output_zero_point = 5 : i64, multiplier = array<i32: 1073741824, 1073741824, 1073741824>, shift = array<i32: -2, -3, -3>, clamp = array<i64: -128, 127>} : (tensor<1x4x4x2xi8>, tensor<1x1x2x3xi8>, tensor<3xi32>) -> tensor<1x4x4x3xi8>
  %1 = "tinytrain.qconv2d"(%0, %w3, %b3) {strides = array<i64: 1, 1>, padding = array<i64: 1, 1>, groups = 1 : i64, input_scale = 5.000000e-01 : f64, input_zero_point = 5 : i64, weight_scales = array<f64: 2.500000e-01, 1.250000e-01>, output_scale = 1.000000e+00 : f64, output_zero_point = 0 : i64, multiplier = array<i32: 1073741824, 1073741824>, shift = array<i32: -2, -3>, clamp = array<i64: -128, 127>} : (tensor<1x4x4x3xi8>, tensor<3x3x3x2xi8>, tensor<2xi32>) -> tensor<1x4x4x2xi8>
  return %1 : tensor<1x4x4x2xi8>
}

// -----

// CHECK:       "stream.executable"() ({
// CHECK:           func.func private @ttk_iree_dwconv_s8(memref<96xi8>, memref<54xi8>, memref<6xi32>, memref<6xi32>, memref<6xi32>, memref<24xi8>, memref<576xi8>, index, index, index, index, index, index, index, index, index, index) attributes {hal.import.static}
// CHECK:       }) {sym_name = "[[DW:ttk_dwconv_s8_4_4_6_3_2_1_m3_5_m128_127]]", sym_visibility = "private"}
// CHECK-LABEL: func.func @dw3x3_s2(
// CHECK-NOT:     tensor.pad
// CHECK:         "flow.dispatch"({{.*}}) {entry_points = [@[[DW]]::@[[DW]]], operandSegmentSizes = array<i32: 0, 5, 0, 0>, tied_operands = [-1 : index, -1 : index]} : (tensor<96xi8>, tensor<54xi8>, tensor<6xi32>, tensor<6xi32>, tensor<6xi32>) -> (tensor<24xi8>, tensor<576xi8>)
// IREE-LABEL:  func.func @dw3x3_s2(
// IREE:          linalg.depthwise_conv_2d_nhwc_hwc_q
func.func @dw3x3_s2(%x: tensor<1x4x4x6xi8>, %w: tensor<3x3x1x6xi8>, %b: tensor<6xi32>) -> tensor<1x2x2x6xi8> {
  %0 = "tinytrain.qconv2d"(%x, %w, %b) {strides = array<i64: 2, 2>, padding = array<i64: 1, 1>, groups = 6 : i64, input_scale = 5.000000e-01 : f64, input_zero_point = -3 : i64, weight_scales = array<f64: 2.500000e-01, 2.500000e-01, 2.500000e-01, 2.500000e-01, 2.500000e-01, 2.500000e-01>, output_scale = 1.000000e+00 : f64, output_zero_point = 5 : i64, multiplier = array<i32: 1073741824, 1073741824, 1073741824, 1073741824, 1073741824, 1073741824>, shift = array<i32: -2, -2, -2, -2, -2, -2>, clamp = array<i64: -128, 127>} : (tensor<1x4x4x6xi8>, tensor<3x3x1x6xi8>, tensor<6xi32>) -> tensor<1x2x2x6xi8>
  return %0 : tensor<1x2x2x6xi8>
}

// -----

// Padding 0 (the patches of `patch-stage` are padded by an explicit tensor.pad): a depthwise 5x5 s2
// on a 1x9x8x4 patch and a dense 3x3 s1 first conv, both dispatches of our kernels with pad = 0
// (the 7th constant of the executable's name); a depthwise 5x5 with padding 1 (neither 0 nor
// (K-1)/2) stays IREE's linalg.

// CHECK:       }) {sym_name = "[[DW0:ttk_dwconv_s8_9_8_4_5_2_0_m3_5_m128_127]]", sym_visibility = "private"}
// CHECK:       }) {sym_name = "[[CONV0:ttk_conv_s8_6_5_3_2_3_1_0_5_0_m128_127]]", sym_visibility = "private"}
// CHECK-LABEL: func.func @pad0(
// CHECK:         "flow.dispatch"({{.*}}) {entry_points = [@[[CONV0]]::@[[CONV0]]], {{.*}} -> tensor<24xi8>
// CHECK:         "flow.dispatch"({{.*}}) {entry_points = [@[[DW0]]::@[[DW0]]], {{.*}} : (tensor<288xi8>, tensor<100xi8>, tensor<4xi32>, tensor<4xi32>, tensor<4xi32>) -> (tensor<24xi8>, tensor<1184xi8>)
// CHECK:         tensor.pad %{{.*}} low[0, 1, 1, 0] high[0, 1, 1, 0]
// CHECK:         linalg.depthwise_conv_2d_nhwc_hwc_q
// CHECK-NOT:     "flow.dispatch"
// IREE-LABEL:  func.func @pad0(
// IREE-NOT:      "flow.dispatch"
// IREE:          linalg.conv_2d_nhwc_hwcf_q
// IREE-COUNT-2:  linalg.depthwise_conv_2d_nhwc_hwc_q
func.func @pad0(%x0: tensor<1x6x5x3xi8>, %w3: tensor<3x3x3x2xi8>, %b3: tensor<2xi32>, %x: tensor<1x9x8x4xi8>, %w: tensor<5x5x1x4xi8>, %b: tensor<4xi32>) -> (tensor<1x4x3x2xi8>, tensor<1x3x2x4xi8>, tensor<1x7x6x4xi8>) {
  %0 = "tinytrain.qconv2d"(%x0, %w3, %b3) {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, groups = 1 : i64, input_scale = 5.000000e-01 : f64, input_zero_point = 5 : i64, weight_scales = array<f64: 2.500000e-01, 1.250000e-01>, output_scale = 1.000000e+00 : f64, output_zero_point = 0 : i64, multiplier = array<i32: 1073741824, 1073741824>, shift = array<i32: -2, -3>, clamp = array<i64: -128, 127>} : (tensor<1x6x5x3xi8>, tensor<3x3x3x2xi8>, tensor<2xi32>) -> tensor<1x4x3x2xi8>
  %1 = "tinytrain.qconv2d"(%x, %w, %b) {strides = array<i64: 2, 2>, padding = array<i64: 0, 0>, groups = 4 : i64, input_scale = 5.000000e-01 : f64, input_zero_point = -3 : i64, weight_scales = array<f64: 2.500000e-01, 2.500000e-01, 2.500000e-01, 2.500000e-01>, output_scale = 1.000000e+00 : f64, output_zero_point = 5 : i64, multiplier = array<i32: 1073741824, 1073741824, 1073741824, 1073741824>, shift = array<i32: -2, -2, -2, -2>, clamp = array<i64: -128, 127>} : (tensor<1x9x8x4xi8>, tensor<5x5x1x4xi8>, tensor<4xi32>) -> tensor<1x3x2x4xi8>
  %2 = "tinytrain.qconv2d"(%x, %w, %b) {strides = array<i64: 1, 1>, padding = array<i64: 1, 1>, groups = 4 : i64, input_scale = 5.000000e-01 : f64, input_zero_point = -3 : i64, weight_scales = array<f64: 2.500000e-01, 2.500000e-01, 2.500000e-01, 2.500000e-01>, output_scale = 1.000000e+00 : f64, output_zero_point = 5 : i64, multiplier = array<i32: 1073741824, 1073741824, 1073741824, 1073741824>, shift = array<i32: -2, -2, -2, -2>, clamp = array<i64: -128, 127>} : (tensor<1x9x8x4xi8>, tensor<5x5x1x4xi8>, tensor<4xi32>) -> tensor<1x7x6x4xi8>
  return %0, %1, %2 : tensor<1x4x3x2xi8>, tensor<1x3x2x4xi8>, tensor<1x7x6x4xi8>
}

// -----

// The fp32 input gradient of a dense 1x1 stride-1 conv: with kernels=ttk-f32 a dispatch of our
// ttk_iree_conv1x1_grad_input_f32 (P = N*H*W = 8 pixels, F = 3 output, C = 2 input channels);
// a 3x3 one stays IREE's generic. kernels=ttk (int8 kernels only) and kernels=iree lower both to
// linalg.
// F32:           func.func private @ttk_iree_conv1x1_grad_input_f32(memref<24xf32>, memref<6xf32>, memref<16xf32>, index, index, index) attributes {hal.import.static}
// F32:       }) {sym_name = "[[GX:ttk_conv1x1_grad_input_f32_8_3_2]]", sym_visibility = "private"}
// F32-LABEL: func.func @grad_input_1x1(
// F32:         "flow.dispatch"({{.*}}) {entry_points = [@[[GX]]::@[[GX]]], operandSegmentSizes = array<i32: 0, 2, 0, 0>, tied_operands = [-1 : index]} : (tensor<24xf32>, tensor<6xf32>) -> tensor<16xf32>
// F32:         linalg.generic
// F32-NOT:     flow.dispatch
// F32:         return
// CHECK-LABEL: func.func @grad_input_1x1(
// CHECK-NOT:     flow.dispatch
// CHECK-COUNT-2: linalg.generic
// IREE-LABEL:  func.func @grad_input_1x1(
// IREE-NOT:      flow.dispatch
// IREE-COUNT-2:  linalg.generic
func.func @grad_input_1x1(%dy: tensor<2x2x2x3xf32>, %w: tensor<1x1x2x3xf32>, %dy3: tensor<1x2x2x3xf32>, %w3: tensor<3x3x2x3xf32>) -> (tensor<2x2x2x2xf32>, tensor<1x2x2x2xf32>) {
  %0 = "tinytrain.conv2d_grad_input"(%dy, %w) {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, groups = 1 : i64} : (tensor<2x2x2x3xf32>, tensor<1x1x2x3xf32>) -> tensor<2x2x2x2xf32>
  %1 = "tinytrain.conv2d_grad_input"(%dy3, %w3) {strides = array<i64: 1, 1>, padding = array<i64: 1, 1>, groups = 1 : i64} : (tensor<1x2x2x3xf32>, tensor<3x3x2x3xf32>) -> tensor<1x2x2x2xf32>
  return %0, %1 : tensor<2x2x2x2xf32>, tensor<1x2x2x2xf32>
}

// -----

// The fp32 weight gradient of a dense 1x1 stride-1 conv whose input is a dequantize of the saved
// int8 activation: with kernels=ttk-f32 a dispatch of our ttk_iree_conv1x1_grad_weight_f32 on the
// int8 tensor itself (P = 4 pixels, C = 3, F = 4, x_zero = -3; the scale an f32 constant
// operand); one whose input is not a dequantize stays IREE's generic.
// F32:           func.func private @ttk_iree_conv1x1_grad_weight_f32(memref<12xi8>, memref<1xf32>, memref<16xf32>, memref<12xf32>, index, index, index, index) attributes {hal.import.static}
// F32:       }) {sym_name = "[[GW:ttk_conv1x1_grad_weight_f32_4_3_4_m3]]", sym_visibility = "private"}
// F32-LABEL: func.func @grad_weight_1x1(
// F32:         %[[S:.*]] = arith.constant dense<5.000000e-01> : tensor<1xf32>
// F32:         %[[X:.*]] = tensor.collapse_shape %arg0 {{\[\[}}0, 1, 2, 3]] : tensor<1x2x2x3xi8> into tensor<12xi8>
// F32:         "flow.dispatch"(%[[X]], %[[S]], %{{.*}}) {entry_points = [@[[GW]]::@[[GW]]], operandSegmentSizes = array<i32: 0, 3, 0, 0>, tied_operands = [-1 : index]} : (tensor<12xi8>, tensor<1xf32>, tensor<16xf32>) -> tensor<12xf32>
// F32:         linalg.generic {{.*}}iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction", "reduction", "reduction"]
// F32-NOT:     flow.dispatch
// F32:         return
// CHECK-LABEL: func.func @grad_weight_1x1(
// CHECK-NOT:     flow.dispatch
// CHECK:         return
func.func @grad_weight_1x1(%x: tensor<1x2x2x3xi8>, %dy: tensor<1x2x2x4xf32>, %xf: tensor<1x2x2x3xf32>) -> (tensor<1x1x3x4xf32>, tensor<1x1x3x4xf32>) {
  %xr = "tinytrain.dequantize"(%x) {scale = 5.000000e-01 : f64, zero_point = -3 : i64} : (tensor<1x2x2x3xi8>) -> tensor<1x2x2x3xf32>
  %0 = "tinytrain.conv2d_grad_weight"(%xr, %dy) {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, groups = 1 : i64} : (tensor<1x2x2x3xf32>, tensor<1x2x2x4xf32>) -> tensor<1x1x3x4xf32>
  %1 = "tinytrain.conv2d_grad_weight"(%xf, %dy) {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, groups = 1 : i64} : (tensor<1x2x2x3xf32>, tensor<1x2x2x4xf32>) -> tensor<1x1x3x4xf32>
  return %0, %1 : tensor<1x1x3x4xf32>, tensor<1x1x3x4xf32>
}

// -----

// The fp32 input gradient of a depthwise 3x3 stride-2 conv with padding 1: with kernels=ttk-f32 a
// dispatch of our ttk_iree_dwconv_grad_input_f32 (H = W = 4, C = 5, K = 3, stride 2); one with
// padding 0 (outside the kernel's contract) stays IREE's generic.
// F32:           func.func private @ttk_iree_dwconv_grad_input_f32(memref<20xf32>, memref<45xf32>, memref<80xf32>, index, index, index, index, index) attributes {hal.import.static}
// F32:       }) {sym_name = "[[DX:ttk_dwconv_grad_input_f32_4_4_5_3_2]]", sym_visibility = "private"}
// F32-LABEL: func.func @grad_input_dw(
// F32:         "flow.dispatch"({{.*}}) {entry_points = [@[[DX]]::@[[DX]]], operandSegmentSizes = array<i32: 0, 2, 0, 0>, tied_operands = [-1 : index]} : (tensor<20xf32>, tensor<45xf32>) -> tensor<80xf32>
// F32:         linalg.generic
// F32-NOT:     flow.dispatch
// F32:         return
// CHECK-LABEL: func.func @grad_input_dw(
// CHECK-NOT:     flow.dispatch
// CHECK:         return
func.func @grad_input_dw(%dy: tensor<1x2x2x5xf32>, %w: tensor<3x3x1x5xf32>, %dy0: tensor<1x2x2x5xf32>) -> (tensor<1x4x4x5xf32>, tensor<1x4x4x5xf32>) {
  %0 = "tinytrain.conv2d_grad_input"(%dy, %w) {strides = array<i64: 2, 2>, padding = array<i64: 1, 1>, groups = 5 : i64} : (tensor<1x2x2x5xf32>, tensor<3x3x1x5xf32>) -> tensor<1x4x4x5xf32>
  %1 = "tinytrain.conv2d_grad_input"(%dy0, %w) {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, groups = 5 : i64} : (tensor<1x2x2x5xf32>, tensor<3x3x1x5xf32>) -> tensor<1x4x4x5xf32>
  return %0, %1 : tensor<1x4x4x5xf32>, tensor<1x4x4x5xf32>
}

// -----

// The fp32 weight gradient of a depthwise 3x3 stride-2 conv whose input is a dequantize of the
// saved int8 activation: with kernels=ttk-f32 a dispatch of our ttk_iree_dwconv_grad_weight_f32 on
// the int8 tensor itself (x_zero = -3, the scale an f32 constant operand, all 5 channels); one
// whose input is not a dequantize stays IREE's generic.
// F32:           func.func private @ttk_iree_dwconv_grad_weight_f32(memref<80xi8>, memref<1xf32>, memref<20xf32>, memref<45xf32>, index, index, index, index, index, index, index, index) attributes {hal.import.static}
// F32:       }) {sym_name = "[[DW:ttk_dwconv_grad_weight_f32_4_4_5_3_2_m3_5_5]]", sym_visibility = "private"}
// F32-LABEL: func.func @grad_weight_dw(
// F32:         %[[S:.*]] = arith.constant dense<5.000000e-01> : tensor<1xf32>
// F32:         %[[X:.*]] = tensor.collapse_shape %arg0 {{\[\[}}0, 1, 2, 3]] : tensor<1x4x4x5xi8> into tensor<80xi8>
// F32:         "flow.dispatch"(%[[X]], %[[S]], %{{.*}}) {entry_points = [@[[DW]]::@[[DW]]], operandSegmentSizes = array<i32: 0, 3, 0, 0>, tied_operands = [-1 : index]} : (tensor<80xi8>, tensor<1xf32>, tensor<20xf32>) -> tensor<45xf32>
// F32:         linalg.generic {{.*}}iterator_types = ["parallel", "parallel", "parallel", "reduction", "reduction", "reduction"]
// F32-NOT:     flow.dispatch
// F32:         return
// CHECK-LABEL: func.func @grad_weight_dw(
// CHECK-NOT:     flow.dispatch
// CHECK:         return
func.func @grad_weight_dw(%x: tensor<1x4x4x5xi8>, %dy: tensor<1x2x2x5xf32>, %xf: tensor<1x4x4x5xf32>) -> (tensor<3x3x1x5xf32>, tensor<3x3x1x5xf32>) {
  %xr = "tinytrain.dequantize"(%x) {scale = 5.000000e-01 : f64, zero_point = -3 : i64} : (tensor<1x4x4x5xi8>) -> tensor<1x4x4x5xf32>
  %0 = "tinytrain.conv2d_grad_weight"(%xr, %dy) {strides = array<i64: 2, 2>, padding = array<i64: 1, 1>, groups = 5 : i64} : (tensor<1x4x4x5xf32>, tensor<1x2x2x5xf32>) -> tensor<3x3x1x5xf32>
  %1 = "tinytrain.conv2d_grad_weight"(%xf, %dy) {strides = array<i64: 2, 2>, padding = array<i64: 1, 1>, groups = 5 : i64} : (tensor<1x4x4x5xf32>, tensor<1x2x2x5xf32>) -> tensor<3x3x1x5xf32>
  return %0, %1 : tensor<3x3x1x5xf32>, tensor<3x3x1x5xf32>
}

// -----

// A sparse update's depthwise weight gradient of the leading 2 of 5 channels (the input a slice
// of the dequantized int8 activation, dY a slice too): the dispatch reads the whole int8 tensor
// and dY (C = 5, N = 2 channels computed, dY's channel stride 5); with a dY of only the 2 trained
// channels the same kernel reads it with channel stride 2; a slice at another offset stays
// IREE's generic.
// F32:       }) {sym_name = "[[DT:ttk_dwconv_grad_weight_f32_4_4_5_3_2_m3_2_2]]", sym_visibility = "private"}
// F32:       }) {sym_name = "[[DS:ttk_dwconv_grad_weight_f32_4_4_5_3_2_m3_2_5]]", sym_visibility = "private"}
// F32-LABEL: func.func @grad_weight_dw_slice(
// F32:         %[[X:.*]] = tensor.collapse_shape %arg0 {{\[\[}}0, 1, 2, 3]] : tensor<1x4x4x5xi8> into tensor<80xi8>
// F32:         %[[G:.*]] = tensor.collapse_shape %arg1 {{\[\[}}0, 1, 2, 3]] : tensor<1x2x2x5xf32> into tensor<20xf32>
// F32:         "flow.dispatch"(%[[X]], %{{.*}}, %[[G]]) {entry_points = [@[[DS]]::@[[DS]]], operandSegmentSizes = array<i32: 0, 3, 0, 0>, tied_operands = [-1 : index]} : (tensor<80xi8>, tensor<1xf32>, tensor<20xf32>) -> tensor<18xf32>
// F32:         linalg.generic {{.*}}iterator_types = ["parallel", "parallel", "parallel", "reduction", "reduction", "reduction"]
// F32:         %[[G2:.*]] = tensor.collapse_shape %arg2 {{\[\[}}0, 1, 2, 3]] : tensor<1x2x2x2xf32> into tensor<8xf32>
// F32:         "flow.dispatch"(%{{.*}}, %{{.*}}, %[[G2]]) {entry_points = [@[[DT]]::@[[DT]]], operandSegmentSizes = array<i32: 0, 3, 0, 0>, tied_operands = [-1 : index]} : (tensor<80xi8>, tensor<1xf32>, tensor<8xf32>) -> tensor<18xf32>
// F32-NOT:     flow.dispatch
// F32:         return
func.func @grad_weight_dw_slice(%x: tensor<1x4x4x5xi8>, %dy: tensor<1x2x2x5xf32>, %dy2: tensor<1x2x2x2xf32>) -> (tensor<3x3x1x2xf32>, tensor<3x3x1x2xf32>, tensor<3x3x1x2xf32>) {
  %xr = "tinytrain.dequantize"(%x) {scale = 5.000000e-01 : f64, zero_point = -3 : i64} : (tensor<1x4x4x5xi8>) -> tensor<1x4x4x5xf32>
  %xs = "tinytrain.slice"(%xr) {offsets = array<i64: 0, 0, 0, 0>} : (tensor<1x4x4x5xf32>) -> tensor<1x4x4x2xf32>
  %gs = "tinytrain.slice"(%dy) {offsets = array<i64: 0, 0, 0, 0>} : (tensor<1x2x2x5xf32>) -> tensor<1x2x2x2xf32>
  %0 = "tinytrain.conv2d_grad_weight"(%xs, %gs) {strides = array<i64: 2, 2>, padding = array<i64: 1, 1>, groups = 2 : i64} : (tensor<1x4x4x2xf32>, tensor<1x2x2x2xf32>) -> tensor<3x3x1x2xf32>
  %xs3 = "tinytrain.slice"(%xr) {offsets = array<i64: 0, 0, 0, 3>} : (tensor<1x4x4x5xf32>) -> tensor<1x4x4x2xf32>
  %gs3 = "tinytrain.slice"(%dy) {offsets = array<i64: 0, 0, 0, 3>} : (tensor<1x2x2x5xf32>) -> tensor<1x2x2x2xf32>
  %1 = "tinytrain.conv2d_grad_weight"(%xs3, %gs3) {strides = array<i64: 2, 2>, padding = array<i64: 1, 1>, groups = 2 : i64} : (tensor<1x4x4x2xf32>, tensor<1x2x2x2xf32>) -> tensor<3x3x1x2xf32>
  %2 = "tinytrain.conv2d_grad_weight"(%xs, %dy2) {strides = array<i64: 2, 2>, padding = array<i64: 1, 1>, groups = 2 : i64} : (tensor<1x4x4x2xf32>, tensor<1x2x2x2xf32>) -> tensor<3x3x1x2xf32>
  return %0, %1, %2 : tensor<3x3x1x2xf32>, tensor<3x3x1x2xf32>, tensor<3x3x1x2xf32>
}
