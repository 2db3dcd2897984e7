# RUN: %PYTHON %s | filecheck %s
# One case per torch op the importer converts: each prints its @forward under the case's name.
# Activations are NHWC, conv weights HWIO, parameters are arguments tagged with their names.

import numpy as np
import torch
import torch.nn as nn

from harness import Net, head, run, show  # noqa: F401


# CHECK-LABEL: {{^}}conv_dense{{$}}
# CHECK:      func.func @forward(%[[W:[a-z0-9_]+]]: tensor<3x3x3x4xf32> {tinytrain.param = "0.weight"}, %[[B:[a-z0-9_]+]]: tensor<4xf32> {tinytrain.param = "0.bias"}
# CHECK-SAME: %[[X:[a-z0-9_]+]]: tensor<1x8x8x3xf32> {tinytrain.input}) -> tensor<1x3xf32>
# CHECK-NEXT: "tinytrain.conv2d"(%[[X]], %[[W]], %[[B]]) {groups = 1 : i64, padding = array<i64: 1, 1>, strides = array<i64: 2, 2>}
# CHECK-SAME: -> tensor<1x4x4x4xf32>
@run
def conv_dense():
    show(nn.Sequential(nn.Conv2d(3, 4, 3, 2, 1), *head(4)), 1, 3, 8, 8)


# CHECK-LABEL: {{^}}conv_without_bias{{$}}
# CHECK:      func.func @forward(%[[W:[a-z0-9_]+]]: tensor<5x5x3x4xf32> {tinytrain.param = "0.weight"}, %{{.*}}: tensor<3x4xf32> {tinytrain.param = "3.weight"}
# CHECK-SAME: %[[X:[a-z0-9_]+]]: tensor<2x7x7x3xf32> {tinytrain.input})
# CHECK-NEXT: %[[ZERO:[a-z0-9_]+]] = arith.constant dense<0.000000e+00> : tensor<4xf32>
# CHECK-NEXT: "tinytrain.conv2d"(%[[X]], %[[W]], %[[ZERO]]) {groups = 1 : i64, padding = array<i64: 0, 0>, strides = array<i64: 1, 1>}
# CHECK-SAME: -> tensor<2x3x3x4xf32>
@run
def conv_without_bias():
    show(nn.Sequential(nn.Conv2d(3, 4, 5, 1, 0, bias=False), *head(4)), 2, 3, 7, 7)


# CHECK-LABEL: {{^}}conv_depthwise{{$}}
# CHECK:      func.func @forward(%[[W:[a-z0-9_]+]]: tensor<3x3x1x4xf32> {tinytrain.param = "0.weight"}
# CHECK-NEXT: "tinytrain.conv2d"(%{{.*}}, %[[W]], %{{.*}}) {groups = 4 : i64, padding = array<i64: 1, 1>, strides = array<i64: 1, 1>}
# CHECK-SAME: -> tensor<1x6x6x4xf32>
@run
def conv_depthwise():
    show(nn.Sequential(nn.Conv2d(4, 4, 3, 1, 1, groups=4), *head(4)), 1, 4, 6, 6)


# CHECK-LABEL: {{^}}batch_norm_folded{{$}}
# CHECK:      func.func @forward(%[[W:[a-z0-9_]+]]: tensor<1x1x3x4xf32> {tinytrain.param = "0.weight"}, %[[B:[a-z0-9_]+]]: tensor<4xf32> {tinytrain.param = "0.bias"}, %{{.*}}: tensor<3x4xf32> {tinytrain.param = "4.weight"}
# CHECK-NEXT: "tinytrain.conv2d"(%{{.*}}, %[[W]], %[[B]])
# CHECK-NEXT: "tinytrain.global_avg_pool"
# CHECK-NOT:  batch_norm
# CHECK:      weight scaled by gamma / sqrt(var + eps): True
# CHECK-NEXT: bias = beta - mean * gamma / sqrt(var + eps): True
@run
def batch_norm_folded():
    torch.manual_seed(1)
    conv, bn = nn.Conv2d(3, 4, 1, bias=False), nn.BatchNorm2d(4, eps=1e-3)
    with torch.no_grad():
        for t in (bn.weight, bn.bias, bn.running_mean):
            t.normal_()
        bn.running_var.uniform_(0.5, 2.0)
    imported = show(nn.Sequential(conv, bn, *head(4)), 1, 3, 4, 4)
    scale = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach()
    hwio = (conv.weight * scale[:, None, None, None]).detach().permute(2, 3, 1, 0).numpy()
    print("weight scaled by gamma / sqrt(var + eps):", np.allclose(imported.params["0.weight"], hwio, atol=1e-6))
    bias = (bn.bias - bn.running_mean * scale).detach().numpy()
    print("bias = beta - mean * gamma / sqrt(var + eps):", np.allclose(imported.params["0.bias"], bias, atol=1e-6))


# CHECK-LABEL: {{^}}relu{{$}}
# CHECK:      %[[Y:[a-z0-9_]+]] = "tinytrain.conv2d"
# CHECK-NEXT: "tinytrain.relu"(%[[Y]]) : (tensor<1x4x4x4xf32>) -> tensor<1x4x4x4xf32>
@run
def relu():
    show(nn.Sequential(nn.Conv2d(3, 4, 1), nn.ReLU(), *head(4)), 1, 3, 4, 4)


# CHECK-LABEL: {{^}}relu6_and_hardtanh{{$}}
# CHECK:      %[[Y:[a-z0-9_]+]] = "tinytrain.conv2d"
# CHECK-NEXT: %[[R:[a-z0-9_]+]] = "tinytrain.relu6"(%[[Y]]) : (tensor<1x4x4x4xf32>) -> tensor<1x4x4x4xf32>
# CHECK-NEXT: "tinytrain.relu6"(%[[R]]) : (tensor<1x4x4x4xf32>) -> tensor<1x4x4x4xf32>
@run
def relu6_and_hardtanh():
    show(nn.Sequential(nn.Conv2d(3, 4, 1), nn.ReLU6(), nn.Hardtanh(0.0, 6.0), *head(4)), 1, 3, 4, 4)


# CHECK-LABEL: {{^}}residual_add{{$}}
# CHECK:      %[[A:[a-z0-9_]+]] = "tinytrain.conv2d"
# CHECK-NEXT: %[[B:[a-z0-9_]+]] = "tinytrain.conv2d"
# CHECK-NEXT: %[[S:[a-z0-9_]+]] = "tinytrain.add"(%[[A]], %[[B]]) : (tensor<1x4x4x4xf32>, tensor<1x4x4x4xf32>) -> tensor<1x4x4x4xf32>
# CHECK-NEXT: "tinytrain.global_avg_pool"(%[[S]]) : (tensor<1x4x4x4xf32>) -> tensor<1x4xf32>
@run
def residual_add():
    show(Net(lambda m, x: m.fc(torch.mean(m.conv(x) + m.conv(x), dim=(2, 3))),
             conv=nn.Conv2d(3, 4, 1), fc=nn.Linear(4, 2)), 1, 3, 4, 4)


# CHECK-LABEL: {{^}}mean_keepdim{{$}}
# CHECK:      %[[X:[a-z0-9_]+]]: tensor<1x4x4x3xf32> {tinytrain.input})
# CHECK-NEXT: %[[P:[a-z0-9_]+]] = "tinytrain.global_avg_pool"(%[[X]]) : (tensor<1x4x4x3xf32>) -> tensor<1x3xf32>
# CHECK-NEXT: %[[K:[a-z0-9_]+]] = "tinytrain.reshape"(%[[P]]) : (tensor<1x3xf32>) -> tensor<1x1x1x3xf32>
# CHECK-NEXT: "tinytrain.reshape"(%[[K]]) : (tensor<1x1x1x3xf32>) -> tensor<1x3xf32>
@run
def mean_keepdim():
    show(Net(lambda m, x: m.fc(x.mean(dim=(-1, -2), keepdim=True).flatten(1)), fc=nn.Linear(3, 2)), 1, 3, 4, 4)


# A flatten of a spatial map goes back to NCHW first, so the elements keep PyTorch's order.
# CHECK-LABEL: {{^}}flatten_spatial{{$}}
# CHECK:      %[[X:[a-z0-9_]+]]: tensor<1x2x2x3xf32> {tinytrain.input})
# CHECK-NEXT: %[[T:[a-z0-9_]+]] = "tinytrain.transpose"(%[[X]]) {permutation = array<i64: 0, 3, 1, 2>} : (tensor<1x2x2x3xf32>) -> tensor<1x3x2x2xf32>
# CHECK-NEXT: %[[F:[a-z0-9_]+]] = "tinytrain.reshape"(%[[T]]) : (tensor<1x3x2x2xf32>) -> tensor<1x12xf32>
# CHECK-NEXT: "tinytrain.linear"(%[[F]], %{{.*}}, %{{.*}}) : (tensor<1x12xf32>, tensor<2x12xf32>, tensor<2xf32>) -> tensor<1x2xf32>
@run
def flatten_spatial():
    show(Net(lambda m, x: m.fc(torch.flatten(x, 1)), fc=nn.Linear(3 * 2 * 2, 2)), 1, 3, 2, 2)


# Dropout in eval mode is the identity; a Linear without bias gets a zero bias.
# CHECK-LABEL: {{^}}view_and_dropout{{$}}
# CHECK:      %[[P:[a-z0-9_]+]] = "tinytrain.global_avg_pool"
# CHECK-NEXT: %[[V:[a-z0-9_]+]] = "tinytrain.reshape"(%[[P]]) : (tensor<1x3xf32>) -> tensor<1x3xf32>
# CHECK-NEXT: %[[ZERO:[a-z0-9_]+]] = arith.constant dense<0.000000e+00> : tensor<2xf32>
# CHECK-NEXT: "tinytrain.linear"(%[[V]], %{{.*}}, %[[ZERO]]) : (tensor<1x3xf32>, tensor<2x3xf32>, tensor<2xf32>) -> tensor<1x2xf32>
# CHECK-NEXT: return
@run
def view_and_dropout():
    show(Net(lambda m, x: m.fc(m.drop(x.mean(dim=(2, 3)).view(1, -1))),
             drop=nn.Dropout(0.5), fc=nn.Linear(3, 2, bias=False)), 1, 3, 4, 4)


def _residual_in_place(m, x):
    out = m.act6(m.conv(x))
    out += x
    return m.fc(m.drop(m.act(out).mean(dim=(2, 3))))


# In-place forms become the out-of-place ops (the modified tensor is not read again).
# CHECK-LABEL: {{^}}in_place_forms{{$}}
# CHECK:      %[[X:[a-z0-9_]+]]: tensor<1x4x4x3xf32> {tinytrain.input})
# CHECK-NEXT: %[[C:[a-z0-9_]+]] = "tinytrain.conv2d"(%[[X]],
# CHECK-NEXT: %[[R6:[a-z0-9_]+]] = "tinytrain.relu6"(%[[C]])
# CHECK-NEXT: %[[S:[a-z0-9_]+]] = "tinytrain.add"(%[[R6]], %[[X]])
# CHECK-NEXT: %[[R:[a-z0-9_]+]] = "tinytrain.relu"(%[[S]])
# CHECK-NEXT: %[[P:[a-z0-9_]+]] = "tinytrain.global_avg_pool"(%[[R]])
# CHECK-NEXT: "tinytrain.linear"(%[[P]],
@run
def in_place_forms():
    show(Net(_residual_in_place, conv=nn.Conv2d(3, 3, 3, 1, 1), act6=nn.ReLU6(inplace=True),
             act=nn.ReLU(inplace=True), drop=nn.Dropout(0.2, inplace=True), fc=nn.Linear(3, 2)), 1, 3, 4, 4)


# A mean over W then over H is one global average pool.
# CHECK-LABEL: {{^}}mean_over_w_then_h{{$}}
# CHECK:      %[[X:[a-z0-9_]+]]: tensor<1x4x4x3xf32> {tinytrain.input})
# CHECK-NEXT: %[[P:[a-z0-9_]+]] = "tinytrain.global_avg_pool"(%[[X]]) : (tensor<1x4x4x3xf32>) -> tensor<1x3xf32>
# CHECK-NEXT: "tinytrain.linear"(%[[P]],
@run
def mean_over_w_then_h():
    show(Net(lambda m, x: m.fc(x.mean(3).mean(2)), fc=nn.Linear(3, 2)), 1, 3, 4, 4)
