"""A trained parameter that the backward pass reads is read before its in-place update
(to-linalg's `order_tied_reads`, lowering/conversions/tinytrain_to_linalg/tied.py), by both of
its dependencies, checked on IREE: a weight smaller than its output gradient gets a late copy
(`c2.weight`: 512 B against 4 KB), a larger one the loss guard (`fc.weight`: 640 B against the
40 B logits gradient). Each step's update must equal `p - lr * grad` of the same program's
gradients, and the step must match torch.optim.SGD; without the ordering IREE may write a
weight before its input gradient reads it (test_iree_tied_hazard.py)."""

import torch
import torch.nn as nn
from conftest import assert_sgd_tracks, assert_step_is_sgd_of_gradients

import tinytrain


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, 1, 1)
        self.c2 = nn.Conv2d(8, 16, 1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        h = torch.relu(self.c2(torch.relu(self.c1(x))))
        return self.fc(h.mean(3).mean(2))


def test_late_copy_and_guard_give_the_sgd_update_of_the_gradients():
    torch.manual_seed(0)
    model = Net().eval()
    x = torch.randn(1, 3, 8, 8)
    prog = tinytrain.compile(model, x, lr=0.1, gradients=True)
    text = prog.stages["linalg"]
    # one late copy (a select broadcasting a 0-d token over c2.weight) and one guard (a 0-d
    # generic reading the loss and fc's input gradient)
    copies = [ln for ln in text.splitlines() if "tensor<1x1x8x16xf32>, tensor<f32>)" in ln and "ins(" in ln]
    guards = [ln for ln in text.splitlines() if 'iterator_types = []} ins(' in ln and "tensor<f32>, tensor<1x16xf32>)" in ln]
    assert len(copies) == 1 and len(guards) == 1, (copies, guards)
    before = assert_step_is_sgd_of_gradients(prog, x, torch.tensor([3]))
    prog.load_state_dict({k: torch.from_numpy(v) for k, v in before.items()})
    xs = [torch.randn(1, 3, 8, 8) for _ in range(3)]
    ys = [torch.randint(0, 10, (1,)) for _ in range(3)]
    assert_sgd_tracks(prog, model, xs, ys, lr=0.1)
