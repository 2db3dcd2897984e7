// RUN: not tinytrain-opt --split-input-file %s 2>&1 | filecheck %s
// The int8 ops' verifiers reject malformed ops and name the op and the problem.

func.func @qconv_multiplier_not_from_scales(%x: tensor<1x4x4x2xi8>, %w: tensor<1x1x2x2xi8>, %b: tensor<2xi32>) {
  // CHECK: 'tinytrain.qconv2d' op multiplier/shift of channel 1 are (1073741824, -2), the scales give (1073741824, -1)
  %0 = "tinytrain.qconv2d"(%x, %w, %b) {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, groups = 1 : i64,
         input_scale = 1.0 : f64, input_zero_point = 0 : i64, weight_scales = array<f64: 0.5, 0.25>,
         output_scale = 1.0 : f64, output_zero_point = 0 : i64,
         multiplier = array<i32: 1073741824, 1073741824>, shift = array<i32: 0, -2>, clamp = array<i64: -128, 127>}
       : (tensor<1x4x4x2xi8>, tensor<1x1x2x2xi8>, tensor<2xi32>) -> tensor<1x4x4x2xi8>
  return
}

// -----

func.func @qconv_float_input(%x: tensor<1x4x4x2xf32>, %w: tensor<1x1x2x2xi8>, %b: tensor<2xi32>) {
  // CHECK: 'tinytrain.qconv2d' op input must have element type i8, got f32
  %0 = "tinytrain.qconv2d"(%x, %w, %b) {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, groups = 1 : i64,
         input_scale = 1.0 : f64, input_zero_point = 0 : i64, weight_scales = array<f64: 0.5, 0.25>,
         output_scale = 1.0 : f64, output_zero_point = 0 : i64,
         multiplier = array<i32: 1073741824, 1073741824>, shift = array<i32: 0, -1>, clamp = array<i64: -128, 127>}
       : (tensor<1x4x4x2xf32>, tensor<1x1x2x2xi8>, tensor<2xi32>) -> tensor<1x4x4x2xi8>
  return
}

// -----

func.func @qconv_bias_not_i32(%x: tensor<1x4x4x2xi8>, %w: tensor<1x1x2x2xi8>, %b: tensor<2xi8>) {
  // CHECK: 'tinytrain.qconv2d' op bias must have element type i32, got i8
  %0 = "tinytrain.qconv2d"(%x, %w, %b) {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, groups = 1 : i64,
         input_scale = 1.0 : f64, input_zero_point = 0 : i64, weight_scales = array<f64: 0.5, 0.25>,
         output_scale = 1.0 : f64, output_zero_point = 0 : i64,
         multiplier = array<i32: 1073741824, 1073741824>, shift = array<i32: 0, -1>, clamp = array<i64: -128, 127>}
       : (tensor<1x4x4x2xi8>, tensor<1x1x2x2xi8>, tensor<2xi8>) -> tensor<1x4x4x2xi8>
  return
}

// -----

func.func @qconv_wrong_output_shape(%x: tensor<1x4x4x2xi8>, %w: tensor<3x3x1x2xi8>, %b: tensor<2xi32>) {
  // CHECK: 'tinytrain.qconv2d' op output shape [1, 4, 4, 2] differs from the expected [1, 2, 2, 2]
  %0 = "tinytrain.qconv2d"(%x, %w, %b) {strides = array<i64: 2, 2>, padding = array<i64: 1, 1>, groups = 2 : i64,
         input_scale = 1.0 : f64, input_zero_point = 0 : i64, weight_scales = array<f64: 0.5, 0.25>,
         output_scale = 1.0 : f64, output_zero_point = 0 : i64,
         multiplier = array<i32: 1073741824, 1073741824>, shift = array<i32: 0, -1>, clamp = array<i64: -128, 127>}
       : (tensor<1x4x4x2xi8>, tensor<3x3x1x2xi8>, tensor<2xi32>) -> tensor<1x4x4x2xi8>
  return
}

// -----

func.func @qconv_short_shift(%x: tensor<1x4x4x2xi8>, %w: tensor<1x1x2x2xi8>, %b: tensor<2xi32>) {
  // CHECK: 'tinytrain.qconv2d' op 'shift' has 1 entries, expected 2
  %0 = "tinytrain.qconv2d"(%x, %w, %b) {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, groups = 1 : i64,
         input_scale = 1.0 : f64, input_zero_point = 0 : i64, weight_scales = array<f64: 0.5, 0.25>,
         output_scale = 1.0 : f64, output_zero_point = 0 : i64,
         multiplier = array<i32: 1073741824, 1073741824>, shift = array<i32: 0>, clamp = array<i64: -128, 127>}
       : (tensor<1x4x4x2xi8>, tensor<1x1x2x2xi8>, tensor<2xi32>) -> tensor<1x4x4x2xi8>
  return
}

// -----

func.func @qconv_zero_point_out_of_range(%x: tensor<1x4x4x2xi8>, %w: tensor<1x1x2x2xi8>, %b: tensor<2xi32>) {
  // CHECK: 'tinytrain.qconv2d' op requires an integer 'output_zero_point' attribute in [-128, 127]
  %0 = "tinytrain.qconv2d"(%x, %w, %b) {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, groups = 1 : i64,
         input_scale = 1.0 : f64, input_zero_point = 0 : i64, weight_scales = array<f64: 0.5, 0.25>,
         output_scale = 1.0 : f64, output_zero_point = 128 : i64,
         multiplier = array<i32: 1073741824, 1073741824>, shift = array<i32: 0, -1>, clamp = array<i64: -128, 127>}
       : (tensor<1x4x4x2xi8>, tensor<1x1x2x2xi8>, tensor<2xi32>) -> tensor<1x4x4x2xi8>
  return
}

// -----

func.func @qadd_bad_clamp(%a: tensor<4xi8>, %b: tensor<4xi8>) {
  // CHECK: 'tinytrain.qadd' op clamp [10, 0] must be [lo, hi] with -128 <= lo <= hi <= 127
  %0 = "tinytrain.qadd"(%a, %b) {lhs_scale = 0.5 : f64, lhs_zero_point = 0 : i64, rhs_scale = 0.5 : f64,
         rhs_zero_point = 0 : i64, output_scale = 1.0 : f64, output_zero_point = 0 : i64, clamp = array<i64: 10, 0>}
       : (tensor<4xi8>, tensor<4xi8>) -> tensor<4xi8>
  return
}

// -----

func.func @qadd_negative_scale(%a: tensor<4xi8>, %b: tensor<4xi8>) {
  // CHECK: 'tinytrain.qadd' op requires a positive float 'rhs_scale' attribute
  %0 = "tinytrain.qadd"(%a, %b) {lhs_scale = 0.5 : f64, lhs_zero_point = 0 : i64, rhs_scale = -0.5 : f64,
         rhs_zero_point = 0 : i64, output_scale = 1.0 : f64, output_zero_point = 0 : i64, clamp = array<i64: -128, 127>}
       : (tensor<4xi8>, tensor<4xi8>) -> tensor<4xi8>
  return
}

// -----

func.func @qavg_pool_float(%x: tensor<1x2x2x3xf32>) {
  // CHECK: 'tinytrain.qavg_pool' op input must have element type i8, got f32
  %0 = "tinytrain.qavg_pool"(%x) : (tensor<1x2x2x3xf32>) -> tensor<1x3xi8>
  return
}

// -----

func.func @quantize_wrong_result_type(%x: tensor<4xf32>) {
  // CHECK: 'tinytrain.quantize' op result must have element type i8, got i32
  %0 = "tinytrain.quantize"(%x) {scale = 0.5 : f64, zero_point = 0 : i64} : (tensor<4xf32>) -> tensor<4xi32>
  return
}

// -----

func.func @dequantize_missing_zero_point(%x: tensor<4xi8>) {
  // CHECK: 'tinytrain.dequantize' op requires an integer 'zero_point' attribute in [-128, 127]
  %0 = "tinytrain.dequantize"(%x) {scale = 0.5 : f64} : (tensor<4xi8>) -> tensor<4xf32>
  return
}
