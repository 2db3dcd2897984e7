"""A step whose loss is not finite leaves the trained state exactly as it was (the compiled
`sgd_update` is guarded by the loss), and the host API says so."""

import numpy as np
import pytest
import torch
from torch import nn

import tinytrain


@pytest.fixture(scope="module")
def prog():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, 1, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(4, 3)).eval()
    return tinytrain.compile(model, torch.randn(2, 1, 6, 6), lr=0.1)


def _state(p):
    return {k: v.clone() for k, v in p.state_dict().items()}


def test_overflowing_step_is_skipped_and_reported(prog):
    good = _state(prog)
    # Finite inputs and finite parameters whose logits overflow float32: loss is NaN/Inf.
    huge = {k: v.clone() for k, v in good.items()}
    huge["4.weight"] = torch.full_like(good["4.weight"], 3e38)
    huge["4.weight"][0] = -3e38
    prog.load_state_dict(huge)
    before = _state(prog)
    x = torch.rand(2, 1, 6, 6) + 1.0
    with pytest.raises(tinytrain.NonFiniteStepError, match="update was skipped and the parameters are unchanged"):
        prog.train_step(x, [0, 2])
    after = _state(prog)
    for k in before:  # bit for bit: no parameter moved, none became NaN
        assert torch.equal(before[k], after[k]), k
    assert prog.rejected_steps == 1
    # The same program keeps training once the state is sane again.
    prog.load_state_dict(good)
    loss = prog.train_step(x, [0, 2])
    assert np.isfinite(loss)
    moved = [k for k in good if not torch.equal(good[k], prog.state_dict()[k])]
    assert moved, "a finite step must update the parameters"
    assert prog.rejected_steps == 1
