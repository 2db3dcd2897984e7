// RUN: tinytrain-opt -p to-linalg --split-input-file %s | filecheck %s --check-prefixes=CHECK,SELECT
// RUN: tinytrain-opt -p 'to-linalg{clamp=select}' --split-input-file %s | filecheck %s --check-prefixes=CHECK,SELECT
// RUN: tinytrain-opt -p 'to-linalg{clamp=minmax}' --split-input-file %s | filecheck %s --check-prefixes=CHECK,MINMAX
// RUN: not tinytrain-opt -p 'to-linalg{clamp=vmaxnm}' %s 2>&1 | filecheck %s --check-prefix=BAD

// The clamp lowering per target (to-linalg{clamp=...}, set by compile() from the target):
// select (default; host, cortex-m4): cmpf ugt/ult + select, NaN-propagating and equal to
// maximumf/minimumf on every input; minmax (cortex-m7): maxnumf/minnumf (VMAXNM/VMINNM), a NaN
// input gives the bound.
// BAD: to-linalg: option clamp='vmaxnm' is not one of select, minmax

// CHECK-DAG:   #[[MAP:map[0-9]*]] = affine_map<(d0, d1) -> (d0, d1)>
// CHECK-LABEL: func.func @relu(
// CHECK-SAME:    %[[ARG0:.*]]: tensor<2x3xf32>) -> tensor<2x3xf32> {
// CHECK-NEXT:    %[[V0:.*]] = tensor.empty() : tensor<2x3xf32>
// CHECK-NEXT:    %[[V1:.*]] = linalg.generic {indexing_maps = [#[[MAP]], #[[MAP]]], iterator_types = ["parallel", "parallel"]} ins(%[[ARG0]] : tensor<2x3xf32>) outs(%[[V0]] : tensor<2x3xf32>) {
// CHECK-NEXT:    ^bb0(%[[IN:.*]]: f32, %[[OUT:.*]]: f32):
// CHECK-NEXT:      %[[CST:.*]] = arith.constant 0.000000e+00 : f32
// SELECT-NEXT:     %[[C:.*]] = arith.cmpf ugt, %[[IN]], %[[CST]] : f32
// SELECT-NEXT:     %[[V2:.*]] = arith.select %[[C]], %[[IN]], %[[CST]] : f32
// MINMAX-NEXT:     %[[V2:.*]] = arith.maxnumf %[[IN]], %[[CST]] : f32
// CHECK-NEXT:      linalg.yield %[[V2]] : f32
// CHECK-NEXT:    } -> tensor<2x3xf32>
// CHECK-NEXT:    return %[[V1]] : tensor<2x3xf32>
func.func @relu(%a: tensor<2x3xf32>) -> tensor<2x3xf32> {
  %0 = "tinytrain.relu"(%a) : (tensor<2x3xf32>) -> tensor<2x3xf32>
  return %0 : tensor<2x3xf32>
}

// -----

// CHECK-DAG:   #[[MAP:map[0-9]*]] = affine_map<(d0, d1) -> (d0, d1)>
// CHECK-LABEL: func.func @relu6(
// CHECK-SAME:    %[[ARG0:.*]]: tensor<2x3xf32>) -> tensor<2x3xf32> {
// CHECK-NEXT:    %[[V0:.*]] = tensor.empty() : tensor<2x3xf32>
// CHECK-NEXT:    %[[V1:.*]] = linalg.generic {indexing_maps = [#[[MAP]], #[[MAP]]], iterator_types = ["parallel", "parallel"]} ins(%[[ARG0]] : tensor<2x3xf32>) outs(%[[V0]] : tensor<2x3xf32>) {
// CHECK-NEXT:    ^bb0(%[[IN:.*]]: f32, %[[OUT:.*]]: f32):
// CHECK-NEXT:      %[[CST:.*]] = arith.constant 0.000000e+00 : f32
// SELECT-NEXT:     %[[C:.*]] = arith.cmpf ugt, %[[IN]], %[[CST]] : f32
// SELECT-NEXT:     %[[V2:.*]] = arith.select %[[C]], %[[IN]], %[[CST]] : f32
// MINMAX-NEXT:     %[[V2:.*]] = arith.maxnumf %[[IN]], %[[CST]] : f32
// CHECK-NEXT:      %[[CST_0:.*]] = arith.constant 6.000000e+00 : f32
// SELECT-NEXT:     %[[C0:.*]] = arith.cmpf ult, %[[V2]], %[[CST_0]] : f32
// SELECT-NEXT:     %[[V3:.*]] = arith.select %[[C0]], %[[V2]], %[[CST_0]] : f32
// MINMAX-NEXT:     %[[V3:.*]] = arith.minnumf %[[V2]], %[[CST_0]] : f32
// CHECK-NEXT:      linalg.yield %[[V3]] : f32
// CHECK-NEXT:    } -> tensor<2x3xf32>
// CHECK-NEXT:    return %[[V1]] : tensor<2x3xf32>
func.func @relu6(%a: tensor<2x3xf32>) -> tensor<2x3xf32> {
  %0 = "tinytrain.relu6"(%a) : (tensor<2x3xf32>) -> tensor<2x3xf32>
  return %0 : tensor<2x3xf32>
}

// -----

// hardsigmoid's relu6(x + 3) follows the same option.
// CHECK-LABEL: func.func @hardsigmoid(
// CHECK:           %[[V2:.*]] = arith.addf
// SELECT-NEXT:     arith.constant 0.000000e+00
// SELECT-NEXT:     arith.cmpf ugt, %[[V2]]
// MINMAX-NEXT:     %[[Z:.*]] = arith.constant 0.000000e+00
// MINMAX-NEXT:     arith.maxnumf %[[V2]], %[[Z]] : f32
// MINMAX:          arith.minnumf
// SELECT:          arith.cmpf ult
// CHECK:           arith.divf
func.func @hardsigmoid(%x: tensor<2x3xf32>) -> tensor<2x3xf32> {
  %0 = "tinytrain.hardsigmoid"(%x) : (tensor<2x3xf32>) -> tensor<2x3xf32>
  return %0 : tensor<2x3xf32>
}
