"""IREE driver for the host: linalg text -> llvm-cpu `.vmfb`, and a thin runtime wrapper.

The compile runs `iree-compile` (from the pinned `iree-base-compiler` wheel, located and
version-checked by `tinytrain.lowering.iree_tools`) as a subprocess so that its diagnostics reach
the user verbatim; the module runs on IREE's `local-sync` device (one thread, deterministic).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from tinytrain.lowering.iree_tools import iree_tool, run_iree_compile

__all__ = ["HOST_FLAGS", "iree_tool", "compile_host", "HostModule", "to_numpy"]

HOST_FLAGS = [
    "--iree-hal-target-device=local",
    "--iree-hal-local-target-device-backends=llvm-cpu",
    "--iree-llvmcpu-target-cpu=host",
    # Keep f64 as f64: the int8 `quantize` / `dequantize` lowerings compute in double, as
    # `tinytrain.reference` defines them (IREE demotes f64 to f32 by default).
    "--iree-input-demote-f64-to-f32=false",
]


def compile_host(linalg_text: str, out_path: Path | None = None, extra_flags=(),
                 repro_dir: Path | None = None) -> bytes:
    """Compile linalg text for this machine's CPU; returns the `.vmfb` bytes (and writes them to
    `out_path` when given). A failure raises `CompileError` (an iree-compile crash
    `iree_tools.InternalCompilerError`) naming a reproducer file written to `repro_dir`
    (default: a new temporary folder)."""
    with tempfile.TemporaryDirectory(prefix="tinytrain-") as tmp:
        src = Path(tmp) / "model.linalg.mlir"
        dst = Path(tmp) / "model.vmfb"
        src.write_text(linalg_text)
        run_iree_compile(src, [*HOST_FLAGS, *extra_flags], dst, what="the host .vmfb",
                         repro_dir=repro_dir)
        data = dst.read_bytes()
    if out_path is not None:
        Path(out_path).write_bytes(data)
    return data


class HostModule:
    """A loaded `.vmfb` on the `local-sync` device; call functions with numpy arrays."""

    def __init__(self, vmfb: bytes):
        import iree.runtime as rt

        self._rt = rt
        config = rt.Config("local-sync")
        self._ctx = rt.SystemContext(config=config)
        self._vm = rt.VmModule.copy_buffer(self._ctx.instance, vmfb)
        self._ctx.add_vm_module(self._vm)
        self._mod = self._ctx.modules.module

    def call(self, fn: str, *args) -> list[np.ndarray]:
        """Call `fn`; returns host copies of the results."""
        return [to_numpy(o) for o in self.call_device(fn, *args)]

    def call_device(self, fn: str, *args) -> list:
        """Call `fn` (numpy arrays or device arrays of earlier calls in); returns the results as
        device arrays, so that state kept between calls never crosses to the host."""
        out = self._mod[fn](*args)
        return list(out) if isinstance(out, (list, tuple)) else [out]


def to_numpy(value) -> np.ndarray:
    """A host copy of a device array (copied while it is alive: `to_host()` may alias its buffer)."""
    return np.array(value.to_host() if hasattr(value, "to_host") else value, copy=True)


