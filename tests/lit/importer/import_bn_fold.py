# RUN: %PYTHON %s | filecheck %s
# The importer: NHWC activations, HWIO weights, BatchNorm folded into the conv (which gains a
# bias parameter), ReLU6, depthwise conv, flatten of a 1x1 map, Linear.

import torch
import torch.nn as nn

from tinytrain.lowering.conversions.torch_to_tinytrain import import_model

torch.manual_seed(0)
model = nn.Sequential(
    nn.Conv2d(3, 8, 3, 2, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU6(),
    nn.Conv2d(8, 8, 3, 1, 1, groups=8), nn.ReLU(),
    nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5),
).eval()
imported = import_model(model, torch.randn(1, 3, 16, 16))
print(imported.module)
print(sorted(imported.params))

# CHECK-LABEL: func.func @forward(
# CHECK-SAME: %arg0: tensor<3x3x3x8xf32> {tinytrain.param = "0.weight"}
# CHECK-SAME: %arg1: tensor<8xf32> {tinytrain.param = "0.bias"}
# CHECK-SAME: %arg2: tensor<3x3x1x8xf32> {tinytrain.param = "3.weight"}
# CHECK-SAME: %arg6: tensor<1x16x16x3xf32> {tinytrain.input}) -> tensor<1x5xf32>
# CHECK: "tinytrain.conv2d"(%arg6, %arg0, %arg1) {groups = 1 : i64, padding = array<i64: 1, 1>, strides = array<i64: 2, 2>} {{.*}} -> tensor<1x8x8x8xf32>
# CHECK-NOT: batch_norm
# CHECK: "tinytrain.relu6"
# CHECK: "tinytrain.conv2d"({{.*}}) {groups = 8 : i64
# CHECK: "tinytrain.relu"
# CHECK: "tinytrain.global_avg_pool"{{.*}} -> tensor<1x8xf32>
# CHECK: "tinytrain.linear"{{.*}} -> tensor<1x5xf32>
# CHECK: ['0.bias', '0.weight', '3.bias', '3.weight', '7.bias', '7.weight']
