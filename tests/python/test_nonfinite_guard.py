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


def test_finite_loss_with_an_overflowing_gradient_restores_the_state():
    """Conv weights 1e-30 on inputs of 1e37 keep the activations (~1e8), the logits (~1e12)
    and so the loss finite, but the conv weight gradient sums 64 positions of 1e37 x 1e4/64
    and overflows to Inf: the compiled update would write -Inf (its guard only sees the loss).
    The host API notices the non-finite state, puts the parameters of before the step back
    (bit for bit) and raises; the next good step trains normally."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 3, 1, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(2, 3)).eval()
    prog = tinytrain.compile(model, torch.randn(1, 1, 8, 8), lr=0.01, gradients=True)
    sd = prog.state_dict()
    sd["0.weight"] = torch.full_like(sd["0.weight"], 1e-30)
    sd["3.weight"] = torch.tensor([[1e4, 1e4], [-1e4, -1e4], [0.0, 0.0]])
    prog.load_state_dict(sd)
    x = torch.full((1, 1, 8, 8), 1e37)
    grads, loss = prog.gradients(x, [2])
    assert np.isfinite(loss) and not np.isfinite(grads["0.weight"]).all()  # the case it guards
    for step in range(2):  # the first step binds fresh buffers, the second updates in place
        before = _state(prog)
        with pytest.raises(tinytrain.NonFiniteStepError, match="restored to their values before"):
            prog.train_step(x, [2])
        after = _state(prog)
        for k in before:
            assert torch.equal(before[k], after[k]), k
        assert prog.rejected_steps == step + 1
    good = torch.randn(1, 1, 8, 8)
    ref = {k: v.clone() for k, v in after.items()}
    worst = int(np.argmin(prog.predict(good)[0]))  # a label with a gradient far from 0
    assert np.isfinite(prog.train_step(good, [worst]))
    assert not all(torch.equal(ref[k], prog.state_dict()[k]) for k in ref)
    assert all(torch.isfinite(v).all() for v in prog.state_dict().values())
    assert prog.rejected_steps == 2
