"""Logic of `bench/memory.py` (issue #9's memory harness) that its numbers rely on, without
compiling: the PyTorch side trains exactly the scheme's update (its tensors, and a partial-ratio
weight only on its first r * C_out output channels, with the dense gradient there), the
device-vs-host comparison catches a difference, and `--only` refuses unknown names."""

import numpy as np
import pytest
from conftest import load_bench


@pytest.fixture(scope="module")
def bench():
    return load_bench("memory")


def test_pytorch_update_is_the_schemes_sparse_update(bench):
    """The 49kb scheme of mbv2-w0.35 on its fp32 twin (at 32x32, fully convolutional): the
    trained set is the compiler's (`tinytrain.sparse.resolve`); after one step the frozen tensors
    and the frozen channels of a sliced weight are unchanged, and the trained channels moved by
    exactly -lr times the dense gradient (the sparse step = the dense step with the frozen part
    masked)."""
    import torch

    from tinytrain.pretrained import load_mcu_model

    model = load_mcu_model("mbv2-w0.35")
    net, names = bench.torch_twin(model)
    trainable, sliced = bench.torch_update(model, names, "49kb")
    assert sliced and set(sliced) < set(trainable) and {"fc.weight", "fc.bias"} <= set(trainable)
    assert all(0 < k < names[n].shape[0] for n, k in sliced.items())
    torch.manual_seed(0)
    x, y = torch.rand(1, 3, 32, 32) * 2 - 1, torch.tensor([3])
    before = {n: p.detach().clone() for n, p in names.items()}
    for p in names.values():
        p.requires_grad_(True)
    torch.nn.functional.cross_entropy(net(x), y).backward()
    dense = {n: p.grad.detach().clone() for n, p in names.items()}
    for p in names.values():
        p.grad = None
    bench.torch_step(net, names, trainable, sliced, x, y, lr=0.5)
    for n, p in names.items():
        after = p.detach()
        if n not in trainable:
            assert torch.equal(after, before[n]), f"{n} is frozen but changed"
            continue
        k = sliced.get(n, after.shape[0])
        assert torch.equal(after[k:], before[n][k:]), f"{n}: a frozen channel changed"
        torch.testing.assert_close(after[:k], before[n][:k] - 0.5 * dense[n][:k], rtol=0, atol=1e-6)
    assert not torch.equal(names["fc.weight"].detach(), before["fc.weight"])


def test_compare_states_flags_every_kind_of_difference(bench):
    i8, f32 = np.arange(6, dtype=np.int8), np.linspace(-2, 2, 5).astype(np.float32)
    names = ["w", "head"]
    assert bench.compare_states(names, [i8, f32], [i8.copy(), f32 + 1e-7], 1.5, 1.5) == []
    off_by_one = i8.copy()
    off_by_one[2] += 1
    assert bench.compare_states(names, [off_by_one, f32], [i8, f32], 1.5, 1.5) == \
        ["w: 1 integer values differ, by up to 1"]
    assert bench.compare_states(names, [i8, f32 + 1e-5], [i8, f32], 1.5, 1.5)[0].startswith("head: max")
    assert bench.compare_states(names, [i8.astype(np.int32), f32], [i8, f32], 1.5, 1.5)[0].startswith("w: int32")
    assert bench.compare_states(names, [i8, f32], [i8, f32], 1.5, 1.5 + 1e-5)[0].startswith("loss:")
    # --grad-dtype bf16: one integer step on at most 5% of a tensor, float state and loss to 1e-3
    big = np.arange(40, dtype=np.int8)
    one = big.copy()
    one[3] += 1
    assert bench.compare_states(["w"], [one], [big], 1.5, 1.5 + 1e-5, bf16=True) == []
    two = one.copy()
    two[5] += 2
    assert bench.compare_states(["w"], [two], [big], 1.5, 1.5, bf16=True) == ["w: 2 integer values differ, by up to 2"]
    many = big.copy()
    many[:3] += 1
    assert bench.compare_states(["w"], [many], [big], 1.5, 1.5, bf16=True)[0].startswith("w: 3 integer values")
    assert bench.compare_states(["head"], [f32 + 1e-2], [f32], 1.5, 1.5, bf16=True)[0].startswith("head: max")


def test_only_names_models_and_published_schemes(bench):
    assert bench.parse_only(["mbv2_w035:49kb", "proxyless-w0.3"]) == {"mbv2_w035": ["49kb"], "proxyless_w03": None}
    assert bench.parse_only(["mcunet_5fps", "mcunet_5fps:99kb"]) == {"mcunet_5fps": None}
    with pytest.raises(SystemExit, match="no published scheme '99kb'.*98kb"):
        bench.parse_only(["proxyless_w03:99kb"])
    with pytest.raises(SystemExit, match="unknown model 'resnet'"):
        bench.parse_only(["resnet"])
