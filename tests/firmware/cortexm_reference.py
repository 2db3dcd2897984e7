"""Host reference for the firmware tests: the same linalg module as an llvm-cpu ``.vmfb``.

The module is compiled for the host CPU with ``iree-compile`` (IREE's Python API) and run with
``iree.runtime`` (local-sync), one call per training step, feeding the new parameters back.
"""

from __future__ import annotations

import numpy as np


def compile_vmfb(linalg_text: str, cpu: str = "generic") -> bytes:
    import iree.compiler as ireec

    return ireec.compile_str(linalg_text, target_backends=["llvm-cpu"],
                             extra_args=[f"--iree-llvmcpu-target-cpu={cpu}"])


class HostModule:
    """A loaded ``.vmfb`` with ``train_step`` / ``predict`` callables."""

    def __init__(self, vmfb: bytes):
        import iree.runtime as rt

        self._ctx = rt.SystemContext(config=rt.Config("local-sync"))
        vm = rt.VmModule.copy_buffer(self._ctx.instance, vmfb)
        self._ctx.add_vm_module(vm)
        self._mod = self._ctx.modules[vm.name]

    def train(self, params: list, xs, labels) -> list:
        """Run one step per sample; return [(params after step i, loss i)]."""
        out = []
        params = [np.array(p, dtype=np.float32) for p in params]
        for x, y in zip(xs, labels):
            res = self._mod["train_step"](*params, np.asarray(x, np.float32),
                                          np.array([y], dtype=np.int32))
            res = [np.asarray(r.to_host() if hasattr(r, "to_host") else r) for r in res]
            params = [r.copy() for r in res[:-1]]
            out.append((params, float(res[-1])))
        return out

    def predict(self, params: list, x) -> np.ndarray:
        res = self._mod["predict"](*params, np.asarray(x, np.float32))
        return np.asarray(res.to_host() if hasattr(res, "to_host") else res)


def assert_trace_matches(trace, ref, target: str) -> None:
    """Device trace `[(params, loss)]` vs host reference, step by step: loss and parameters within
    1e-6; bit-exact on the Cortex-M4, whose code has no fused multiply-add (LLVM keeps vmul +
    vadd, like the x86 "generic" host). The M7 code contracts into vfma: within 1e-6 only."""
    assert len(trace) == len(ref), (len(trace), len(ref))
    for step, ((dev_params, dev_loss), (ref_params, ref_loss)) in enumerate(zip(trace, ref)):
        assert abs(dev_loss - ref_loss) <= 1e-6, f"step {step} loss {dev_loss} vs {ref_loss}"
        for i, (d, r) in enumerate(zip(dev_params, ref_params)):
            np.testing.assert_allclose(d, r, rtol=0, atol=1e-6, err_msg=f"step {step} param {i}")
            if target == "cortex-m4":
                assert np.array_equal(d.view(np.uint32), r.view(np.uint32)), f"step {step} param {i}"


def compile_linalg(model, example_input, **kwargs):
    """`tinytrain.compile(model, example_input, **kwargs)` (target "host") without its eager host
    `.vmfb`: the firmware tests take the program's `stages["linalg"]` and `program_params()` and
    compile their own reference from that linalg (`compile_vmfb`, the generic CPU, bit-exact with
    the Cortex-M4), so compile()'s `--iree-llvmcpu-target-cpu=host` build (a whole iree-compile)
    would go unused. The program's host module then compiles on its first use, as for a
    Cortex-M target."""
    import pytest

    import tinytrain
    from tinytrain.lowering.host.iree_host import LazyHostModule

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(LazyHostModule, "ensure_compiled", lambda self: self)
        return tinytrain.compile(model, example_input, **kwargs)
