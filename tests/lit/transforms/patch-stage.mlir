// patch-stage: the frozen stage (a 3x3 stride-2 conv, then a 1x1 conv and a residual add) of a
// 6x6 input, computed in 2x2 patches of its 3x3 output: rows and columns split [0, 2) + [2, 3).
// With the input streamed (only the bytes a kernel reads are in memory) the patched stage's
// estimated peak (output whole 18 B + the first patch's conv: input rows 0-3 up to column 3, 22 B,
// its 2x2x2 output, 8 B, its 5x5 zero-padded window, 25 B: 73 B) is below the whole conv's (input
// 36 B + output 18 B + padded window 49 B); cutting at c1 or after the add costs the same (no
// halo: the 1x1 conv and the add need no neighbours), so the deeper cut is taken.
// RUN: tinytrain-opt -p 'patch-stage{grid=2 streamed-input=true}' %s | filecheck %s
// RUN: tinytrain-opt -p 'patch-stage{grid=1}' %s | filecheck %s --check-prefix=OFF
// RUN: tinytrain-opt -p 'patch-stage{grid=2 factor=1 streamed-input=true}' %s | filecheck %s --check-prefix=SHALLOW
// RUN: tinytrain-opt -p 'patch-stage{grid=2}' %s | filecheck %s --check-prefix=NOGAIN
// RUN: not tinytrain-opt -p 'patch-stage{grid=0}' %s 2>&1 | filecheck %s --check-prefix=BAD
//
// Patch (rows [0, 2), cols [0, 2)): the 3x3 stride-2 conv reads input rows/cols [-1, 4): the
// slice [0, 4) and one row/column of zero-point padding (-128) on the top/left border only; the
// conv itself then has no padding.
// CHECK-LABEL: func.func @forward(
// CHECK-SAME: attributes {tinytrain.patch_stage = {cut = "add", cut_shape = array<i64: 1, 3, 3, 2>, grid = 2 : i64, macs = 198 : i64, ops = 3 : i64, patched_macs = 198 : i64}}
// CHECK: %[[E:.*]] = tensor.empty() : tensor<1x3x3x2xi8>
// CHECK: %[[S0:.*]] = tensor.extract_slice %arg4[0, 0, 0, 0] [1, 4, 4, 1] [1, 1, 1, 1] : tensor<1x6x6x1xi8> to tensor<1x4x4x1xi8>
// CHECK: tensor.pad %[[S0]] low[0, 1, 1, 0] high[0, 0, 0, 0]
// CHECK: arith.constant -128 : i8
// CHECK: "tinytrain.qconv2d"({{.*}}) {{.*}}padding = array<i64: 0, 0>{{.*}} : (tensor<1x5x5x1xi8>, tensor<3x3x1x2xi8>, tensor<2xi32>) -> tensor<1x2x2x2xi8>
// CHECK: "tinytrain.qconv2d"({{.*}}) {{.*}} : (tensor<1x2x2x2xi8>, tensor<1x1x2x2xi8>, tensor<2xi32>) -> tensor<1x2x2x2xi8>
// CHECK: "tinytrain.qadd"({{.*}}) {{.*}} : (tensor<1x2x2x2xi8>, tensor<1x2x2x2xi8>) -> tensor<1x2x2x2xi8>
// CHECK: %[[A0:.*]] = tensor.insert_slice %{{.*}} into %[[E]][0, 0, 0, 0] [1, 2, 2, 2] [1, 1, 1, 1]
// The next patch (rows [0, 2), cols [2, 3)) starts after the first one is stored:
// CHECK: %[[B:.*]]:2 = "util.optimization_barrier"(%arg4, %[[A0]])
// CHECK: tensor.extract_slice %[[B]]#0[0, 0, 3, 0] [1, 4, 3, 1] [1, 1, 1, 1] : tensor<1x6x6x1xi8> to tensor<1x4x3x1xi8>
// CHECK: tensor.pad %{{.*}} low[0, 1, 0, 0] high[0, 0, 0, 0]
// CHECK: -> tensor<1x2x1x2xi8>
// CHECK: tensor.insert_slice %{{.*}} into %[[B]]#1[0, 0, 2, 0] [1, 2, 1, 2] [1, 1, 1, 1]
// CHECK: "util.optimization_barrier"
// CHECK: "util.optimization_barrier"
// CHECK-NOT: "util.optimization_barrier"
// The last patch (rows [2, 3), cols [2, 3)): input rows/cols [3, 6), no padding at all.
// CHECK: tensor.extract_slice %{{.*}}[0, 3, 3, 0] [1, 3, 3, 1] [1, 1, 1, 1]
// CHECK-NOT: tensor.pad
// CHECK: %[[LAST:.*]] = tensor.insert_slice %{{.*}}[0, 2, 2, 0] [1, 1, 1, 2] [1, 1, 1, 1]
// CHECK: "tinytrain.qavg_pool"(%[[LAST]])
//
// OFF-NOT: tensor.extract_slice
// OFF-NOT: tinytrain.patch_stage
//
// With factor=1 the stage may not go below the input's resolution: no cut qualifies.
// SHALLOW-NOT: tinytrain.patch_stage
//
// With the input whole in memory the patched stage would hold it beside its output and a patch
// (36 + 18 + 49 = 103 B), no less than the whole conv (103 B): the function is left as it is.
// NOGAIN-NOT: tinytrain.patch_stage
// NOGAIN-NOT: tensor.extract_slice
//
// BAD: patch-stage: grid, factor and stages must be >= 1, got grid=0, factor=4, stages=4
func.func @forward(%w1: tensor<3x3x1x2xi8> {tinytrain.param = "c1.weight"}, %b1: tensor<2xi32> {tinytrain.param = "c1.bias"},
                   %w2: tensor<1x1x2x2xi8> {tinytrain.param = "c2.weight"}, %b2: tensor<2xi32> {tinytrain.param = "c2.bias"},
                   %x: tensor<1x6x6x1xi8> {tinytrain.input}) -> tensor<1x2xi8> {
  %y1 = "tinytrain.qconv2d"(%x, %w1, %b1) {strides = array<i64: 2, 2>, padding = array<i64: 1, 1>, groups = 1 : i64, input_scale = 5.000000e-01 : f64, input_zero_point = -128 : i64, weight_scales = array<f64: 2.500000e-01, 5.000000e-01>, output_scale = 1.000000e+00 : f64, output_zero_point = 0 : i64, multiplier = array<i32: 1073741824, 1073741824>, shift = array<i32: -2, -1>, clamp = array<i64: -128, 127>} : (tensor<1x6x6x1xi8>, tensor<3x3x1x2xi8>, tensor<2xi32>) -> tensor<1x3x3x2xi8> loc("c1")
  %y2 = "tinytrain.qconv2d"(%y1, %w2, %b2) {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, groups = 1 : i64, input_scale = 1.000000e+00 : f64, input_zero_point = 0 : i64, weight_scales = array<f64: 2.500000e-01, 5.000000e-01>, output_scale = 1.000000e+00 : f64, output_zero_point = 0 : i64, multiplier = array<i32: 1073741824, 1073741824>, shift = array<i32: -1, 0>, clamp = array<i64: -128, 127>} : (tensor<1x3x3x2xi8>, tensor<1x1x2x2xi8>, tensor<2xi32>) -> tensor<1x3x3x2xi8> loc("c2")
  %s = "tinytrain.qadd"(%y1, %y2) {lhs_scale = 1.000000e+00 : f64, lhs_zero_point = 0 : i64, rhs_scale = 1.000000e+00 : f64, rhs_zero_point = 0 : i64, output_scale = 1.000000e+00 : f64, output_zero_point = 0 : i64, clamp = array<i64: -128, 127>} : (tensor<1x3x3x2xi8>, tensor<1x3x3x2xi8>) -> tensor<1x3x3x2xi8> loc("add")
  %p = "tinytrain.qavg_pool"(%s) : (tensor<1x3x3x2xi8>) -> tensor<1x2xi8>
  return %p : tensor<1x2xi8>
}
