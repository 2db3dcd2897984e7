# RUN: %PYTHON %s | filecheck %s
# Every tinytrain op (and parameter argument) is located at its layer ("<module path> (<class>)")
# around the Python call stack, so later diagnostics name the layer; the per-node names the
# importer uses to find the FX node of a torch op (e.g. loc("conv2d"(...))) do not leak into
# @forward (each CHECK-NEXT below matches a location from its start).

import inspect

import torch
import torch.nn as nn

from tinytrain.lowering.conversions.torch_to_tinytrain import import_model


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, 1, 1)
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        h = torch.relu(self.conv(x))
        return self.fc(h.mean((2, 3)))


imported = import_model(Net().eval(), torch.randn(1, 3, 4, 4))
forward = imported.module.body.operations[0]
first = inspect.getsourcelines(Net.forward)[1]  # the `def forward` line
print(f"lines h={first + 1} return={first + 2}")
for arg, attrs in zip(forward.arguments, forward.arg_attrs):
    print("arg", attrs, arg.location)
for op in forward.entry_block.operations:
    print(op.operation.name, op.location)

# CHECK:      lines h=[[H:[0-9]+]] return=[[R:[0-9]+]]
# CHECK-NEXT: arg {tinytrain.param = "conv.weight"} loc("conv (Conv2d)"(callsite("{{.*}}/torch/nn/modules/conv.py":{{[0-9]+}}:0 at "{{.*}}locations.py":[[H]]:0)))
# CHECK:      arg {tinytrain.param = "fc.bias"} loc("fc (Linear)"(callsite("{{.*}}/torch/nn/modules/linear.py":{{[0-9]+}}:0 at "{{.*}}locations.py":[[R]]:0)))
# CHECK-NEXT: arg {tinytrain.input}
# CHECK-NEXT: tinytrain.conv2d loc("conv (Conv2d)"(callsite("{{.*}}/torch/nn/modules/conv.py":{{[0-9]+}}:0 at "{{.*}}locations.py":[[H]]:0)))
# CHECK-NEXT: tinytrain.relu loc("<root> (Net)"("{{.*}}locations.py":[[H]]:0))
# CHECK-NEXT: tinytrain.global_avg_pool loc("<root> (Net)"("{{.*}}locations.py":[[R]]:0))
# CHECK-NEXT: tinytrain.linear loc("fc (Linear)"(callsite("{{.*}}/torch/nn/modules/linear.py":{{[0-9]+}}:0 at "{{.*}}locations.py":[[R]]:0)))
# CHECK-NEXT: func.return loc("fc (Linear)"(
