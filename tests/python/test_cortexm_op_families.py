"""Every op-family network of the numerics tests trains in QEMU (Cortex-M4) like on the host."""

import numpy as np
import pytest
import torch
from conftest import randomize_bn
from test_numerics import OP_FAMILIES

import tinytrain


@pytest.mark.parametrize("name", sorted(OP_FAMILIES))
def test_op_family_trains_on_cortex_m4_like_the_host(name, tmp_path):
    torch.manual_seed(0)
    model, hw = OP_FAMILIES[name]
    model = randomize_bn(model)
    prog = tinytrain.compile(model, torch.randn(1, 3, hw, hw), lr=0.1, target="cortex-m4",
                             build_dir=tmp_path / "fw")
    g = torch.Generator().manual_seed(5)
    xs = torch.randn(3, 3, hw, hw, generator=g)
    ys = torch.tensor([0, 2, 1])
    res = prog.run_qemu(train=(xs, ys), workdir=tmp_path / "run")
    assert res.returncode == 0, res.output[-2000:]
    assert len(res.trace) == 3
    for step, (device_params, device_loss) in enumerate(res.trace):
        host_loss = prog.train_step(xs[step:step + 1], ys[step:step + 1])
        assert abs(device_loss - host_loss) <= 1e-6 * max(1.0, abs(host_loss)), step
        for d, h in zip(device_params, prog.program_params()):
            np.testing.assert_allclose(d, h, rtol=0, atol=1e-6 * max(1.0, float(np.abs(h).max())))
