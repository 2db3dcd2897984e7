// RUN: %PYTHON -c "import numpy as np; f = lambda *v: np.array(v, np.float32); np.savez('%t.npz', **{'c.weight': f(0.5, -0.25).reshape(1, 1, 1, 2), 'c.bias': f(0.1, -0.2), 'fc.weight': f(1, 2, 3, -4, 0.5, 0).reshape(3, 2), 'fc.bias': f(0, 0, 0), 'a.weight': f(1, -1).reshape(1, 1, 1, 2), 'a.bias': f(0, 0)})"
// RUN: tinytrain-opt --split-input-file -p 'quantize{params=%t.npz}' %s | filecheck %s
// RUN: tinytrain-opt --split-input-file -p 'quantize{params=%t.npz classifier=int8}' %s | filecheck %s --check-prefix=INT8

// conv + ReLU + global average pool + linear, ranges written by hand (a calibration sets them):
//   input [-1, 1]:        scale 2/255 = 0.00784313..., zero round_half_even(-128 + 127.5) = 0
//   ReLU output [0, 0.6]: scale 0.6/255 = 0.00235294..., zero -128; ReLU's clamp = [-128, 127]
//   weights [0.5, -0.25]: s_W = [0.5, 0.25] / 127 = [0.0039370, 0.0019685] (ints [127, -127])
//   multipliers s_x s_W / s_y = [0.0131234, 0.0065617] = 0.839895 * [2^-6, 2^-7]:
//   M0 = round(0.839895 * 2^31) = 1803660807, shift [-6, -7].
// fp32 classifier (default): the pool keeps its input's scale and zero point; dequantize, then
// the same fp32 linear. int8 classifier: reshape, 1x1 qconv2d (weight [1, 1, 2, 3], range
// [-2, 3.1]: scale 5.1/255 = 0.02, zero round(-128 + 100) = -28), reshape, dequantize.
// CHECK-LABEL: func.func @forward(
// CHECK-SAME:    %[[W:.*]]: tensor<1x1x1x2xi8> {tinytrain.param = "c.weight"}, %[[B:.*]]: tensor<2xi32> {tinytrain.param = "c.bias"}, %[[FW:.*]]: tensor<3x2xf32> {tinytrain.param = "fc.weight"}, %[[FB:.*]]: tensor<3xf32> {tinytrain.param = "fc.bias"}, %[[X:.*]]: tensor<1x2x2x1xf32> {tinytrain.input})
// CHECK-NEXT:    %[[Q:.*]] = "tinytrain.quantize"(%[[X]]) {scale = 0.0078431372549019607 : f64, zero_point = 0 : i64}
// CHECK-NEXT:    %[[C:.*]] = "tinytrain.qconv2d"(%[[Q]], %[[W]], %[[B]]) {clamp = array<i64: -128, 127>, groups = 1 : i64, input_scale = 0.0078431372549019607 : f64, input_zero_point = 0 : i64, multiplier = array<i32: 1803660807, 1803660807>, output_scale = 0.002352941176470588 : f64, output_zero_point = -128 : i64, padding = array<i64: 0, 0>, shift = array<i32: -6, -7>, strides = array<i64: 1, 1>, weight_scales = array<f64: 0.003937007874015748, 0.001968503937007874>}
// CHECK-NEXT:    %[[P:.*]] = "tinytrain.qavg_pool"(%[[C]]) : (tensor<1x2x2x2xi8>) -> tensor<1x2xi8>
// CHECK-NEXT:    %[[D:.*]] = "tinytrain.dequantize"(%[[P]]) {scale = 0.002352941176470588 : f64, zero_point = -128 : i64}
// CHECK-NEXT:    %[[L:.*]] = "tinytrain.linear"(%[[D]], %[[FW]], %[[FB]]) : (tensor<1x2xf32>, tensor<3x2xf32>, tensor<3xf32>) -> tensor<1x3xf32>
// CHECK-NEXT:    return %[[L]]
// INT8-LABEL: func.func @forward(
// INT8-SAME:     %[[FW:arg[0-9]+]]: tensor<1x1x2x3xi8> {tinytrain.param = "fc.weight"}, %[[FB:arg[0-9]+]]: tensor<3xi32> {tinytrain.param = "fc.bias"}
// INT8:          %[[P:.*]] = "tinytrain.qavg_pool"
// INT8-NEXT:     %[[R:.*]] = "tinytrain.reshape"(%[[P]]) : (tensor<1x2xi8>) -> tensor<1x1x1x2xi8>
// INT8-NEXT:     %[[C:.*]] = "tinytrain.qconv2d"(%[[R]], %[[FW]], %[[FB]]) {{.*}}input_scale = 0.002352941176470588 : f64, input_zero_point = -128 : i64, {{.*}}output_scale = 0.019999999999999997 : f64, output_zero_point = -28 : i64
// INT8-NEXT:     %[[R2:.*]] = "tinytrain.reshape"(%[[C]]) : (tensor<1x1x1x3xi8>) -> tensor<1x3xi8>
// INT8-NEXT:     %[[D:.*]] = "tinytrain.dequantize"(%[[R2]]) {scale = 0.019999999999999997 : f64, zero_point = -28 : i64} : (tensor<1x3xi8>) -> tensor<1x3xf32>
// INT8-NEXT:     return %[[D]]
func.func @forward(%w: tensor<1x1x1x2xf32> {tinytrain.param = "c.weight"}, %b: tensor<2xf32> {tinytrain.param = "c.bias"}, %fw: tensor<3x2xf32> {tinytrain.param = "fc.weight"}, %fb: tensor<3xf32> {tinytrain.param = "fc.bias"}, %x: tensor<1x2x2x1xf32> {tinytrain.input, tinytrain.range = array<f64: -1.0, 1.0>}) -> tensor<1x3xf32> {
  %0 = "tinytrain.conv2d"(%x, %w, %b) {groups = 1 : i64, padding = array<i64: 0, 0>, strides = array<i64: 1, 1>} : (tensor<1x2x2x1xf32>, tensor<1x1x1x2xf32>, tensor<2xf32>) -> tensor<1x2x2x2xf32>
  %1 = "tinytrain.relu"(%0) {tinytrain.range = array<f64: 0.0, 0.6>} : (tensor<1x2x2x2xf32>) -> tensor<1x2x2x2xf32>
  %2 = "tinytrain.global_avg_pool"(%1) : (tensor<1x2x2x2xf32>) -> tensor<1x2xf32>
  %3 = "tinytrain.linear"(%2, %fw, %fb) {tinytrain.range = array<f64: -2.0, 3.1>} : (tensor<1x2xf32>, tensor<3x2xf32>, tensor<3xf32>) -> tensor<1x3xf32>
  return %3 : tensor<1x3xf32>
}

// -----

// Residual add + ReLU6 fused into qadd. The conv (no activation, range [-1, 1]) has scale 2/255,
// zero 0; the add's output range [-0.5, 8] (written by hand wider than ReLU6's 6 to show the
// clamp): scale 8.5/255 = 0.0333..., zero round(-128 + 15) = -113, ReLU6 clamp
// [-113, -113 + round(6 / scale) = -113 + 180 = 67]. The graph returns the dequantized result.
// CHECK-LABEL: func.func @forward(
// CHECK:         %[[Q:.*]] = "tinytrain.quantize"
// CHECK-NEXT:    %[[C:.*]] = "tinytrain.qconv2d"(%[[Q]], {{.*}}clamp = array<i64: -128, 127>{{.*}}output_scale = 0.0078431372549019607 : f64, output_zero_point = 0 : i64
// CHECK-NEXT:    %[[A:.*]] = "tinytrain.qadd"(%[[C]], %[[C]]) {clamp = array<i64: -113, 67>, lhs_scale = 0.0078431372549019607 : f64, lhs_zero_point = 0 : i64, output_scale = 0.033333333333333333 : f64, output_zero_point = -113 : i64, rhs_scale = 0.0078431372549019607 : f64, rhs_zero_point = 0 : i64}
// CHECK-NEXT:    %[[D:.*]] = "tinytrain.dequantize"(%[[A]]) {scale = 0.033333333333333333 : f64, zero_point = -113 : i64}
// CHECK-NEXT:    return %[[D]]
func.func @forward(%w: tensor<1x1x1x2xf32> {tinytrain.param = "a.weight"}, %b: tensor<2xf32> {tinytrain.param = "a.bias"}, %x: tensor<1x2x2x1xf32> {tinytrain.input, tinytrain.range = array<f64: -1.0, 1.0>}) -> tensor<1x2x2x2xf32> {
  %0 = "tinytrain.conv2d"(%x, %w, %b) {groups = 1 : i64, padding = array<i64: 0, 0>, strides = array<i64: 1, 1>, tinytrain.range = array<f64: -1.0, 1.0>} : (tensor<1x2x2x1xf32>, tensor<1x1x1x2xf32>, tensor<2xf32>) -> tensor<1x2x2x2xf32>
  %1 = "tinytrain.add"(%0, %0) : (tensor<1x2x2x2xf32>, tensor<1x2x2x2xf32>) -> tensor<1x2x2x2xf32>
  %2 = "tinytrain.relu6"(%1) {tinytrain.range = array<f64: -0.5, 8.0>} : (tensor<1x2x2x2xf32>) -> tensor<1x2x2x2xf32>
  return %2 : tensor<1x2x2x2xf32>
}
