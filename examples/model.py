"""Example model file for `tinytrain compile` (see examples/iree_run_module.sh)."""

import torch

from tinytrain.models import small_cnn

torch.manual_seed(0)
model = small_cnn(num_classes=10, in_channels=1)
example_input = torch.randn(1, 1, 28, 28)
