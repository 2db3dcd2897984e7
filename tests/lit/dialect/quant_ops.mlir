// RUN: tinytrain-opt %s | filecheck %s
// Every int8 op of the tinytrain dialect (dialects/tinytrain_quant.py) parses, verifies and
// prints back.

// CHECK-LABEL: func.func @int8_forward
func.func @int8_forward(%x: tensor<1x4x4x2xf32>, %w: tensor<3x3x1x2xi8>, %b: tensor<2xi32>,
                        %pw: tensor<1x1x2x2xi8>) -> tensor<1x2xf32> {
  // CHECK: "tinytrain.quantize"(%{{.*}}) {scale = 5.000000e-01 : f64, zero_point = -3 : i64} : (tensor<1x4x4x2xf32>) -> tensor<1x4x4x2xi8>
  %q = "tinytrain.quantize"(%x) {scale = 0.5 : f64, zero_point = -3 : i64} : (tensor<1x4x4x2xf32>) -> tensor<1x4x4x2xi8>
  // depthwise, eff = 0.5 * [0.25, 0.125] / 1.0 = [2^-3, 2^-4] -> multiplier 2^30, shift -2 / -3
  // CHECK: "tinytrain.qconv2d"(%{{.*}}, %{{.*}}, %{{.*}}) {clamp = array<i64: -128, 127>, groups = 2 : i64
  // CHECK-SAME: multiplier = array<i32: 1073741824, 1073741824>
  // CHECK-SAME: shift = array<i32: -2, -3>
  // CHECK-SAME: weight_scales = array<f64: 2.500000e-01, 1.250000e-01>
  %c = "tinytrain.qconv2d"(%q, %w, %b) {strides = array<i64: 1, 1>, padding = array<i64: 1, 1>, groups = 2 : i64,
         input_scale = 0.5 : f64, input_zero_point = -3 : i64, weight_scales = array<f64: 0.25, 0.125>,
         output_scale = 1.0 : f64, output_zero_point = -128 : i64,
         multiplier = array<i32: 1073741824, 1073741824>, shift = array<i32: -2, -3>, clamp = array<i64: -128, 127>}
       : (tensor<1x4x4x2xi8>, tensor<3x3x1x2xi8>, tensor<2xi32>) -> tensor<1x4x4x2xi8>
  // pointwise with a fused ReLU (clamp from the output zero point), eff = 1.0 * [0.75, 0.5] / 2.0
  // CHECK: "tinytrain.qconv2d"
  // CHECK-SAME: clamp = array<i64: 5, 127>
  %p = "tinytrain.qconv2d"(%c, %pw, %b) {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, groups = 1 : i64,
         input_scale = 1.0 : f64, input_zero_point = -128 : i64, weight_scales = array<f64: 0.75, 0.5>,
         output_scale = 2.0 : f64, output_zero_point = 5 : i64,
         multiplier = array<i32: 1610612736, 1073741824>, shift = array<i32: -1, -1>, clamp = array<i64: 5, 127>}
       : (tensor<1x4x4x2xi8>, tensor<1x1x2x2xi8>, tensor<2xi32>) -> tensor<1x4x4x2xi8>
  // CHECK: "tinytrain.qadd"(%{{.*}}, %{{.*}}) {clamp = array<i64: -128, 127>, lhs_scale = 5.000000e-01 : f64, lhs_zero_point = -3 : i64
  %a = "tinytrain.qadd"(%q, %p) {lhs_scale = 0.5 : f64, lhs_zero_point = -3 : i64, rhs_scale = 2.0 : f64,
         rhs_zero_point = 5 : i64, output_scale = 2.5 : f64, output_zero_point = 0 : i64, clamp = array<i64: -128, 127>}
       : (tensor<1x4x4x2xi8>, tensor<1x4x4x2xi8>) -> tensor<1x4x4x2xi8>
  // CHECK: "tinytrain.qavg_pool"(%{{.*}}) : (tensor<1x4x4x2xi8>) -> tensor<1x2xi8>
  %g = "tinytrain.qavg_pool"(%a) : (tensor<1x4x4x2xi8>) -> tensor<1x2xi8>
  // CHECK: "tinytrain.dequantize"(%{{.*}}) {scale = 2.500000e+00 : f64, zero_point = 0 : i64} : (tensor<1x2xi8>) -> tensor<1x2xf32>
  %d = "tinytrain.dequantize"(%g) {scale = 2.5 : f64, zero_point = 0 : i64} : (tensor<1x2xi8>) -> tensor<1x2xf32>
  return %d : tensor<1x2xf32>
}
