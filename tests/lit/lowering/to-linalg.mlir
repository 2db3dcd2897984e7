// RUN: tinytrain-opt -p 'autodiff{lr=0.5},to-linalg' %s | filecheck %s

func.func @forward(%w: tensor<3x3x1x4xf32> {tinytrain.param = "conv.weight"},
                   %b: tensor<4xf32> {tinytrain.param = "conv.bias"},
                   %dw: tensor<3x3x1x4xf32> {tinytrain.param = "dw.weight"},
                   %db: tensor<4xf32> {tinytrain.param = "dw.bias"},
                   %fw: tensor<3x4xf32> {tinytrain.param = "fc.weight"},
                   %fb: tensor<3xf32> {tinytrain.param = "fc.bias"},
                   %x: tensor<1x8x8x1xf32> {tinytrain.input}) -> tensor<1x3xf32> {
  %0 = "tinytrain.conv2d"(%x, %w, %b) {strides = array<i64: 2, 2>, padding = array<i64: 1, 1>, groups = 1 : i64} : (tensor<1x8x8x1xf32>, tensor<3x3x1x4xf32>, tensor<4xf32>) -> tensor<1x4x4x4xf32>
  %1 = "tinytrain.relu6"(%0) : (tensor<1x4x4x4xf32>) -> tensor<1x4x4x4xf32>
  %2 = "tinytrain.conv2d"(%1, %dw, %db) {strides = array<i64: 1, 1>, padding = array<i64: 1, 1>, groups = 4 : i64} : (tensor<1x4x4x4xf32>, tensor<3x3x1x4xf32>, tensor<4xf32>) -> tensor<1x4x4x4xf32>
  %3 = "tinytrain.global_avg_pool"(%2) : (tensor<1x4x4x4xf32>) -> tensor<1x4xf32>
  %4 = "tinytrain.linear"(%3, %fw, %fb) : (tensor<1x4xf32>, tensor<3x4xf32>, tensor<3xf32>) -> tensor<1x3xf32>
  return %4 : tensor<1x3xf32>
}

// CHECK-LABEL: func.func @train_step(
// CHECK-SAME: {iree.abi.output = 0 : index
// No tinytrain op survives the lowering.
// CHECK-NOT: "tinytrain.
// Forward: padded, exactly-cropped input into named convolutions seeded with the bias.
// CHECK: tensor.pad
// CHECK: linalg.conv_2d_nhwc_hwcf {dilations = dense<1> : tensor<2xi64>, strides = dense<2> : tensor<2xi64>}
// CHECK: arith.minimumf
// CHECK: linalg.depthwise_conv_2d_nhwc_hwc
// Loss: max-shifted log-sum-exp.
// CHECK: math.exp
// CHECK: math.log
// Input gradient of the depthwise conv: zero-dilated gradient, flipped kernel, stride-1 conv.
// CHECK: tensor.insert_slice
// CHECK: tensor.extract
// CHECK: linalg.depthwise_conv_2d_nhwc_hwc
// SGD update of the first conv weight.
// CHECK: arith.subf
// CHECK: return
// CHECK-LABEL: func.func @predict(
// CHECK-NOT: "tinytrain.
// CHECK: return
