# RUN: %PYTHON %s | filecheck %s
# The layers of issue #7: each case prints its @forward under the case's name. Activations stay
# NHWC (PyTorch's dims are permuted into the ops' attributes), parameters are tagged arguments.

import torch
import torch.nn as nn
import torch.nn.functional as F

from harness import Net, head, run, show  # noqa: F401

from tinytrain.lowering.conversions.torch_to_tinytrain import import_model


# CHECK-LABEL: {{^}}conv_same_even_kernel{{$}}
# CHECK:      %[[P:[0-9]+]] = "tinytrain.pad"(%{{.*}}) {high = array<i64: 0, 1, 1, 0>, low = array<i64: 0, 0, 0, 0>} : (tensor<1x6x6x3xf32>) -> tensor<1x7x7x3xf32>
# CHECK-NEXT: "tinytrain.conv2d"(%[[P]], %{{.*}}, %{{.*}}) {groups = 1 : i64, padding = array<i64: 1, 1>, strides = array<i64: 1, 1>} : (tensor<1x7x7x3xf32>, tensor<4x4x3x4xf32>, tensor<4xf32>) -> tensor<1x6x6x4xf32>
@run
def conv_same_even_kernel():
    show(nn.Sequential(nn.Conv2d(3, 4, 4, padding="same"), *head(4)), 1, 3, 6, 6)


# CHECK-LABEL: {{^}}zero_pad_nchw_to_nhwc{{$}}
# CHECK:      "tinytrain.pad"(%{{.*}}) {high = array<i64: 0, 3, 2, 0>, low = array<i64: 0, 1, 0, 0>} : (tensor<1x5x5x3xf32>) -> tensor<1x9x7x3xf32>
# CHECK-NEXT: "tinytrain.global_avg_pool"
@run
def zero_pad_nchw_to_nhwc():
    show(nn.Sequential(nn.ZeroPad2d((0, 2, 1, 3)), *head(3)), 1, 3, 5, 5)


# CHECK-LABEL: {{^}}max_pool_ceil_mode{{$}}
# CHECK:      "tinytrain.max_pool2d"(%{{.*}}) {kernel = array<i64: 3, 3>, padding = array<i64: 0, 0, 1, 1>, strides = array<i64: 2, 2>} : (tensor<1x10x10x3xf32>) -> tensor<1x5x5x3xf32>
# CHECK-NEXT: "tinytrain.max_pool2d"(%{{.*}}) {kernel = array<i64: 2, 2>, padding = array<i64: 1, 1, 1, 1>, strides = array<i64: 2, 2>} : (tensor<1x5x5x3xf32>) -> tensor<1x3x3x3xf32>
@run
def max_pool_ceil_mode():
    # 10 -> 5: one extra bottom/right row; 5 -> 3: the window that would start in the bottom
    # padding is dropped (PyTorch's rule), so no extra padding.
    show(nn.Sequential(nn.MaxPool2d(3, 2, ceil_mode=True), nn.MaxPool2d(2, 2, padding=1, ceil_mode=True),
                       *head(3)), 1, 3, 10, 10)


# CHECK-LABEL: {{^}}avg_pool_divisors{{$}}
# CHECK:      "tinytrain.avg_pool2d"(%{{.*}}) {divisor = "window", kernel = array<i64: 3, 3>, padding = array<i64: 1, 1, 1, 1>, strides = array<i64: 2, 2>} : (tensor<1x8x8x3xf32>) -> tensor<1x4x4x3xf32>
# CHECK-NEXT: "tinytrain.avg_pool2d"(%{{.*}}) {divisor = "valid", kernel = array<i64: 3, 3>, padding = array<i64: 1, 1, 1, 1>, strides = array<i64: 1, 1>} : (tensor<1x4x4x3xf32>) -> tensor<1x4x4x3xf32>
@run
def avg_pool_divisors():
    show(nn.Sequential(nn.AvgPool2d(3, 2, 1), nn.AvgPool2d(3, 1, 1, count_include_pad=False), *head(3)),
         1, 3, 8, 8)


# CHECK-LABEL: {{^}}activations_in_place{{$}}
# CHECK:      %[[C:[0-9]+]] = "tinytrain.conv2d"
# CHECK-NEXT: %[[A:[0-9]+]] = "tinytrain.hardswish"(%[[C]]) : (tensor<1x4x4x4xf32>) -> tensor<1x4x4x4xf32>
# CHECK-NEXT: %[[B:[0-9]+]] = "tinytrain.hardsigmoid"(%[[A]])
# CHECK-NEXT: %[[S:[0-9]+]] = "tinytrain.sigmoid"(%[[B]])
# CHECK-NEXT: "tinytrain.leaky_relu"(%[[S]]) {alpha = 1.000000e-01 : f32}
@run
def activations_in_place():
    show(nn.Sequential(nn.Conv2d(3, 4, 1), nn.Hardswish(inplace=True), nn.Hardsigmoid(inplace=True),
                       nn.Sigmoid(), nn.LeakyReLU(0.1, inplace=True), *head(4)), 1, 3, 4, 4)


# CHECK-LABEL: {{^}}squeeze_excite_mul{{$}}
# CHECK:      %[[X:[0-9]+]] = "tinytrain.conv2d"
# CHECK-NEXT: "tinytrain.global_avg_pool"(%[[X]])
# CHECK-NEXT: "tinytrain.reshape"
# CHECK-NEXT: %[[S:[0-9]+]] = "tinytrain.sigmoid"
# CHECK-NEXT: "tinytrain.mul"(%[[X]], %[[S]]) : (tensor<1x5x5x4xf32>, tensor<1x1x1x4xf32>) -> tensor<1x5x5x4xf32>
@run
def squeeze_excite_mul():
    # s * x with s [N, C, 1, 1] first: the full-shape x becomes the mul's lhs.
    def se(m, x):
        h = m.conv(x)
        return m.lin(m.pool(torch.sigmoid(m.pool(h)) * h).flatten(1))

    show(Net(se, conv=nn.Conv2d(3, 4, 1), pool=nn.AdaptiveAvgPool2d(1), lin=nn.Linear(4, 2)), 1, 3, 5, 5)


# CHECK-LABEL: {{^}}cat_channels{{$}}
# CHECK:      %[[A:[0-9]+]] = "tinytrain.concat"(%{{.*}}, %{{.*}}) {axis = 3 : i64} : (tensor<1x4x4x2xf32>, tensor<1x4x4x3xf32>) -> tensor<1x4x4x5xf32>
# CHECK-NEXT: "tinytrain.concat"(%[[A]], %{{.*}}) {axis = 3 : i64} : (tensor<1x4x4x5xf32>, tensor<1x4x4x3xf32>) -> tensor<1x4x4x8xf32>
@run
def cat_channels():
    show(Net(lambda m, x: m.lin(torch.cat([m.a(x), m.b(x), x], 1).mean((2, 3))),
             a=nn.Conv2d(3, 2, 1), b=nn.Conv2d(3, 3, 3, padding=1), lin=nn.Linear(8, 2)), 1, 3, 4, 4)


# CHECK-LABEL: {{^}}batch_norm_not_after_conv{{$}}
# CHECK:      func.func @forward(%[[W:[a-z0-9_]+]]: tensor<1x1x3x4xf32> {tinytrain.param = "0.weight"}, %{{.*}}: tensor<4xf32> {tinytrain.param = "0.bias"}, %[[G:[a-z0-9_]+]]: tensor<4xf32> {tinytrain.param = "2.weight"}, %[[B:[a-z0-9_]+]]: tensor<4xf32> {tinytrain.param = "2.bias"}
# CHECK:      %[[R:[0-9]+]] = "tinytrain.relu"
# CHECK-NEXT: "tinytrain.channel_affine"(%[[R]], %[[G]], %[[B]]) : (tensor<1x3x3x4xf32>, tensor<4xf32>, tensor<4xf32>) -> tensor<1x3x3x4xf32>
# CHECK:      scale = gamma / sqrt(var + eps): True
# CHECK-NEXT: shift = beta - mean * scale: True
@run
def batch_norm_not_after_conv():
    bn = nn.BatchNorm2d(4)
    with torch.no_grad():
        bn.running_mean.uniform_(-1, 1), bn.running_var.uniform_(0.5, 2), bn.weight.uniform_(0.5, 2)
        bn.bias.uniform_(-1, 1)
    torch.manual_seed(0)
    imported = import_model(nn.Sequential(nn.Conv2d(3, 4, 1), nn.ReLU(), bn, *head(4)).eval(),
                            torch.randn(1, 3, 3, 3))
    print(imported.module)
    scale = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach().numpy()
    shift = (bn.bias - bn.running_mean * bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach().numpy()
    print("scale = gamma / sqrt(var + eps):", bool(abs(imported.params["2.weight"] - scale).max() < 1e-6))
    print("shift = beta - mean * scale:", bool(abs(imported.params["2.bias"] - shift).max() < 1e-6))


# CHECK-LABEL: {{^}}conv_padding_beyond_kernel{{$}}
# CHECK:      %[[P:[0-9]+]] = "tinytrain.pad"(%{{.*}}) {high = array<i64: 0, 1, 0, 0>, low = array<i64: 0, 1, 0, 0>} : (tensor<1x6x6x3xf32>) -> tensor<1x8x6x3xf32>
# CHECK-NEXT: "tinytrain.conv2d"(%[[P]], %{{.*}}, %{{.*}}) {groups = 1 : i64, padding = array<i64: 2, 2>, strides = array<i64: 2, 2>} : (tensor<1x8x6x3xf32>, tensor<3x3x3x4xf32>, tensor<4xf32>) -> tensor<1x5x4x4xf32>
@run
def conv_padding_beyond_kernel():
    # padding (3, 2) with a 3x3 kernel: the conv keeps k - 1 = 2, a pad adds the row beyond it.
    show(nn.Sequential(nn.Conv2d(3, 4, 3, 2, padding=(3, 2)), *head(4)), 1, 3, 6, 6)
