// batch-stage: the frozen stage (a 3x3 stride-2 conv, relu6, a 1x1 conv and a residual add) of a
// batch of 3 8x8 images, computed in chunks of 2 and 1 images, the second after the first.
// RUN: tinytrain-opt -p 'batch-stage{chunk=2}' %s | filecheck %s
// RUN: tinytrain-opt -p 'batch-stage{chunk=0}' %s | filecheck %s --check-prefix=OFF
// RUN: tinytrain-opt -p 'batch-stage{chunk=3}' %s | filecheck %s --check-prefix=OFF
// RUN: tinytrain-opt -p 'batch-stage{chunk=1 factor=1}' %s | filecheck %s --check-prefix=SHALLOW
// RUN: not tinytrain-opt -p 'batch-stage{chunk=-1}' %s 2>&1 | filecheck %s --check-prefix=BAD
//
// CHECK-LABEL: func.func @forward(
// CHECK-SAME: tinytrain.batch_stage = {chunk = 2 : i64, cut = "add", cut_shape = array<i64: 3, 4, 4, 2>, ops = 4 : i64}
// CHECK: %[[E:.*]] = tensor.empty() : tensor<3x4x4x2xf32>
// CHECK: %[[S0:.*]] = tensor.extract_slice %arg4[0, 0, 0, 0] [2, 8, 8, 1] [1, 1, 1, 1] : tensor<3x8x8x1xf32> to tensor<2x8x8x1xf32>
// The convolution keeps its padding (a whole image):
// CHECK: "tinytrain.conv2d"(%[[S0]], %arg0, %arg1) {{.*}}padding = array<i64: 1, 1>{{.*}} : (tensor<2x8x8x1xf32>, tensor<3x3x1x2xf32>, tensor<2xf32>) -> tensor<2x4x4x2xf32>
// CHECK: "tinytrain.relu6"({{.*}}) : (tensor<2x4x4x2xf32>) -> tensor<2x4x4x2xf32>
// CHECK: "tinytrain.conv2d"({{.*}}) {{.*}} : (tensor<2x4x4x2xf32>, tensor<1x1x2x2xf32>, tensor<2xf32>) -> tensor<2x4x4x2xf32>
// CHECK: "tinytrain.add"({{.*}}) : (tensor<2x4x4x2xf32>, tensor<2x4x4x2xf32>) -> tensor<2x4x4x2xf32>
// CHECK: %[[A0:.*]] = tensor.insert_slice %{{.*}} into %[[E]][0, 0, 0, 0] [2, 4, 4, 2] [1, 1, 1, 1]
// The next chunk starts after the first one is stored:
// CHECK: %[[B:.*]]:2 = "util.optimization_barrier"(%arg4, %[[A0]])
// CHECK: tensor.extract_slice %[[B]]#0[2, 0, 0, 0] [1, 8, 8, 1] [1, 1, 1, 1] : tensor<3x8x8x1xf32> to tensor<1x8x8x1xf32>
// CHECK: "tinytrain.add"({{.*}}) : (tensor<1x4x4x2xf32>, tensor<1x4x4x2xf32>) -> tensor<1x4x4x2xf32>
// CHECK: %[[LAST:.*]] = tensor.insert_slice %{{.*}} into %[[B]]#1[2, 0, 0, 0] [1, 4, 4, 2] [1, 1, 1, 1]
// CHECK-NOT: "util.optimization_barrier"
// The trained layer after the cut reads the whole batch:
// CHECK: "tinytrain.conv2d"(%[[LAST]], %arg5, %arg6) {{.*}} : (tensor<3x4x4x2xf32>, tensor<1x1x2x2xf32>, tensor<2xf32>) -> tensor<3x4x4x2xf32>
//
// CHECK-LABEL: func.func @first_layer_trained(
// CHECK-NOT: tinytrain.batch_stage
// CHECK-NOT: tensor.extract_slice
//
// OFF-NOT: tensor.extract_slice
// OFF-NOT: tinytrain.batch_stage
//
// With factor=1 the stage may not go below the input's resolution: no cut qualifies.
// SHALLOW-NOT: tinytrain.batch_stage
//
// BAD: batch-stage: chunk must be >= 0 and factor >= 1, got chunk=-1, factor=4
func.func @forward(%w1: tensor<3x3x1x2xf32> {tinytrain.param = "c1.weight"}, %b1: tensor<2xf32> {tinytrain.param = "c1.bias"},
                   %w2: tensor<1x1x2x2xf32> {tinytrain.param = "c2.weight"}, %b2: tensor<2xf32> {tinytrain.param = "c2.bias"},
                   %x: tensor<3x8x8x1xf32> {tinytrain.input},
                   %w3: tensor<1x1x2x2xf32> {tinytrain.param = "c3.weight", tinytrain.trainable}, %b3: tensor<2xf32> {tinytrain.param = "c3.bias", tinytrain.trainable}) -> tensor<3x2xf32> {
  %y1 = "tinytrain.conv2d"(%x, %w1, %b1) {strides = array<i64: 2, 2>, padding = array<i64: 1, 1>, groups = 1 : i64} : (tensor<3x8x8x1xf32>, tensor<3x3x1x2xf32>, tensor<2xf32>) -> tensor<3x4x4x2xf32> loc("c1")
  %r1 = "tinytrain.relu6"(%y1) : (tensor<3x4x4x2xf32>) -> tensor<3x4x4x2xf32> loc("r1")
  %y2 = "tinytrain.conv2d"(%r1, %w2, %b2) {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, groups = 1 : i64} : (tensor<3x4x4x2xf32>, tensor<1x1x2x2xf32>, tensor<2xf32>) -> tensor<3x4x4x2xf32> loc("c2")
  %s = "tinytrain.add"(%r1, %y2) : (tensor<3x4x4x2xf32>, tensor<3x4x4x2xf32>) -> tensor<3x4x4x2xf32> loc("add")
  %y3 = "tinytrain.conv2d"(%s, %w3, %b3) {strides = array<i64: 1, 1>, padding = array<i64: 0, 0>, groups = 1 : i64} : (tensor<3x4x4x2xf32>, tensor<1x1x2x2xf32>, tensor<2xf32>) -> tensor<3x4x4x2xf32> loc("c3")
  %p = "tinytrain.global_avg_pool"(%y3) : (tensor<3x4x4x2xf32>) -> tensor<3x2xf32>
  return %p : tensor<3x2xf32>
}

func.func @first_layer_trained(%w1: tensor<3x3x1x2xf32> {tinytrain.param = "c1.weight", tinytrain.trainable}, %b1: tensor<2xf32> {tinytrain.param = "c1.bias", tinytrain.trainable},
                               %x: tensor<3x8x8x1xf32> {tinytrain.input}) -> tensor<3x2xf32> {
  %y1 = "tinytrain.conv2d"(%x, %w1, %b1) {strides = array<i64: 2, 2>, padding = array<i64: 1, 1>, groups = 1 : i64} : (tensor<3x8x8x1xf32>, tensor<3x3x1x2xf32>, tensor<2xf32>) -> tensor<3x4x4x2xf32> loc("c1")
  %r1 = "tinytrain.relu6"(%y1) : (tensor<3x4x4x2xf32>) -> tensor<3x4x4x2xf32> loc("r1")
  %p = "tinytrain.global_avg_pool"(%r1) : (tensor<3x4x4x2xf32>) -> tensor<3x2xf32>
  return %p : tensor<3x2xf32>
}
