"""IREE driver for the host: linalg text -> llvm-cpu `.vmfb`, and a thin runtime wrapper.

The compile runs `iree-compile` (from the pinned `iree-base-compiler` wheel, located and
version-checked by `tinytrain.lowering.iree_tools`) as a subprocess so that its diagnostics reach
the user verbatim; the module runs on IREE's `local-sync` device (one thread, deterministic).
A compile that ran before (same linalg text, flags and iree-compile) is read from the compile
cache instead (`tinytrain.lowering.compile_cache`; `TINYTRAIN_COMPILE_CACHE=off` turns it off).
"""

from __future__ import annotations

import importlib.metadata
import tempfile
from pathlib import Path

import numpy as np

from tinytrain.lowering.compile_cache import cached_output
from tinytrain.lowering.iree_tools import COMPILER_DIST, iree_tool, run_iree_compile, verify_flag

__all__ = ["HOST_FLAGS", "HOST_ALLOCATORS", "iree_tool", "compile_host", "HostModule", "LazyHostModule",
           "HostFunction", "to_numpy"]

HOST_FLAGS = [
    "--iree-hal-target-device=local",
    "--iree-hal-local-target-device-backends=llvm-cpu",
    "--iree-llvmcpu-target-cpu=host",
    # Keep f64 as f64: the int8 `quantize` / `dequantize` lowerings compute in double, as
    # `tinytrain.reference` defines them (IREE demotes f64 to f32 by default).
    "--iree-input-demote-f64-to-f32=false",
    # The module runs on `local-sync` (one thread): IREE's split of each dispatch into
    # workgroups for threads only adds tile remainders and per-workgroup overhead there. E.g. the
    # input gradient of MobileNetV2-w0.35's 1x1 conv to 1280 at 176 px, batch 1 (a 36x112x1280
    # matmul), was split into 56-column tiles (16 + 16 + 16 + 8 vectors): 0.194 -> 0.117 ms
    # without the split; the whole `last` step there 1.73 -> 1.39 ms, 128 px batch 8 `all`
    # 25.0 -> 22.0 ms (`bench/host_profile.py <case>`, kernel time / step time, same machine
    # state; losses and parameters after 5 steps bit-identical at 64 and 176 px `last`).
    "--iree-llvmcpu-disable-distribution",
    # IREE 3.13's x86 codegen for an AMD EPYC (znver4, AVX-512) gives some i8 x i8 -> i32
    # convolutions vectors over its check's limit and stops ("One or more operations with large
    # vector sizes (16384 bytes) were found"): e.g. the 1x1 conv of a 1x5x16x16 row band by
    # 1x1x16x96 in MobileNetV2-w0.35's patched first stage at 128x128 (`conv_2d_nhwc_hwcf_q`, and
    # the plain conv of a frozen weight); the host .vmfb of the paper's models did not build there.
    # With the check off it compiles them (the check changes no code of a dispatch that passes it).
    "--iree-llvmcpu-fail-on-large-vector=false",
]


def compile_host(linalg_text: str, out_path: Path | None = None, extra_flags=(),
                 repro_dir: Path | None = None) -> bytes:
    """Compile linalg text for this machine's CPU; returns the `.vmfb` bytes (and writes them to
    `out_path` when given). A failure raises `CompileError` (an iree-compile crash
    `iree_tools.InternalCompilerError`) naming a reproducer file written to `repro_dir`
    (default: a new temporary folder)."""
    flags = [*HOST_FLAGS, *extra_flags, verify_flag()]  # the verifier flag in the cache key too

    def build() -> bytes:
        with tempfile.TemporaryDirectory(prefix="tinytrain-") as tmp:
            src = Path(tmp) / "model.linalg.mlir"
            dst = Path(tmp) / "model.vmfb"
            src.write_text(linalg_text)
            run_iree_compile(src, flags, dst, what="the host .vmfb", repro_dir=repro_dir)
            return dst.read_bytes()

    data = cached_output("vmfb", iree_tool("iree-compile"), importlib.metadata.version(COMPILER_DIST), flags,
                         linalg_text, build)
    if out_path is not None:
        Path(out_path).write_bytes(data)
    return data


#: Allocator of the host device. IREE's default heap allocator mallocs every transient buffer of
#: every call afresh; at batch 8 the kernel then zero-fills ~13 k fresh pages per MobileNetV2
#: step (a third of the step). The caching allocator keeps freed buffers and hands them out again.
HOST_ALLOCATORS = ("caching",)


class HostModule:
    """A loaded `.vmfb` on the `local-sync` device (one thread, synchronous, IREE's caching
    allocator); call functions with numpy arrays, or bind arguments once with `function()`."""

    def __init__(self, vmfb: bytes, *, allocators=HOST_ALLOCATORS):
        import iree.runtime as rt

        self._rt = rt
        self.device = rt.get_driver("local-sync").create_default_device(
            allocators=list(allocators) or None)
        config = rt.Config(device=self.device)
        self._ctx = rt.SystemContext(config=config)
        self._vm = rt.VmModule.copy_buffer(self._ctx.instance, vmfb)
        self._ctx.add_vm_module(self._vm)
        self._mod = self._ctx.modules.module
        self._functions: dict[str, HostFunction] = {}

    def call(self, fn: str, *args) -> list[np.ndarray]:
        """Call `fn`; returns host copies of the results."""
        return [to_numpy(o) for o in self.call_device(fn, *args)]

    def call_device(self, fn: str, *args) -> list:
        """Call `fn` (numpy arrays or device arrays of earlier calls in); returns the results as
        device arrays, so that state kept between calls never crosses to the host."""
        out = self._mod[fn](*args)
        return list(out) if isinstance(out, (list, tuple)) else [out]

    def function(self, fn: str) -> "HostFunction":
        """The entry point `fn` with a persistent argument list (see `HostFunction`); one object
        per name, so argument bindings and staging buffers live as long as this module."""
        f = self._functions.get(fn)
        if f is None:
            f = self._functions[fn] = HostFunction(self, fn)
        return f


class LazyHostModule:
    """The host module of a program compiled for a Cortex-M target: the same linalg compiled for
    this machine, but only when first used (a host call, `vmfb`), because a user who only builds
    firmware should not wait for a second iree-compile (a third of a device compile). A failed
    host compile then raises its `CompileError` at that first use; `ensure_compiled()` compiles
    at once (target="host"). Calls as `HostModule`'s (`call`, `call_device`, `function`)."""

    def __init__(self, linalg_text: str, extra_flags=()):
        self._text, self._flags = linalg_text, tuple(extra_flags)
        self._vmfb: bytes | None = None
        self._module: HostModule | None = None

    @property
    def vmfb(self) -> bytes:
        if self._vmfb is None:
            self._vmfb = compile_host(self._text, extra_flags=self._flags)
        return self._vmfb

    def ensure_compiled(self) -> "LazyHostModule":
        """Compile now (a no-op once compiled); returns self."""
        self.vmfb
        return self

    @property
    def module(self) -> HostModule:
        if self._module is None:
            self._module = HostModule(self.vmfb)
        return self._module

    def call(self, fn: str, *args) -> list[np.ndarray]:
        return self.module.call(fn, *args)

    def call_device(self, fn: str, *args) -> list:
        return self.module.call_device(fn, *args)

    def function(self, fn: str) -> "HostFunction":
        return self.module.function(fn)


class HostFunction:
    """One entry point called through IREE's VM directly, with arguments bound once.

    The per-call path of `iree.runtime`'s `FunctionInvoker` packs every argument (a numpy array is
    copied into a fresh device buffer) and wraps every result in a `DeviceArray`. For a training
    step whose parameters stay on the device and are updated in place (`iree.abi.output`), all of
    that is the same from one call to the next. Here:

    - `bind(i, value)` sets argument `i` once: a device buffer view (e.g. a result of an earlier
      call) is passed as is, a numpy array is copied into a device buffer;
    - `stage(i, shape, dtype)` binds argument `i` to a host-visible device buffer allocated once
      and returns a numpy view of it: write each call's input into that view (one copy, no
      allocation). The call is synchronous (`local-sync`) and the function only reads it, so
      reusing it is safe;
    - `__call__()` invokes the function with the bound list and returns the raw result list
      (`VmVariantList`); `result(rets, i)` gives result `i` as a `HalBufferView`, `scalar(rets, i)`
      a 0-d / 1-element result as a Python float.
    """

    def __init__(self, host: HostModule, name: str):
        rt = host._rt
        self._rt = rt
        self.name = name
        self.device = host.device
        self._vm_context = host._ctx.vm_context
        self._vm_function = host._mod[name].vm_function
        decl = self._vm_function.reflection.get("iree.abi.declaration", "")
        self.num_args, self.num_results = _count_decl(decl)
        self._refs: list = [None] * self.num_args
        self.views: list = [None] * self.num_args  # the bound buffer views (read-only: use bind)
        self._maps: list = [None] * self.num_args  # numpy views of staged buffers
        self._mapped: dict = {}
        self._args = None  # VmVariantList, rebuilt after a bind
        self._buffer_view_cls = rt.HalBufferView

    def bind(self, i: int, value) -> None:
        """Bind argument `i` to a device buffer view (kept) or a numpy array (copied)."""
        if not isinstance(value, self._buffer_view_cls):
            value = self.upload(value)
        if self.views[i] is value:
            return
        self.views[i] = value
        self._refs[i] = value.ref
        self._maps[i] = None
        self._args = None

    def bound(self, i: int):
        """The buffer view bound to argument `i` (None if unbound)."""
        return self.views[i]

    def upload(self, array) -> "object":
        """A device buffer view holding a copy of `array`."""
        rt = self._rt
        a = np.ascontiguousarray(array)
        return self.device.allocator.allocate_buffer_copy(
            memory_type=rt.MemoryType.DEVICE_LOCAL, allowed_usage=rt.BufferUsage.DEFAULT,
            device=self.device, buffer=a, element_type=_element_type(rt, a.dtype))

    def stage(self, i: int, shape, dtype) -> np.ndarray:
        """Bind argument `i` to a reusable host-visible buffer of `shape`/`dtype`; returns a numpy
        view of it to write each call's input into (the same view on every call)."""
        rt = self._rt
        dtype = np.dtype(dtype)
        shape = [int(d) for d in shape]
        view = self.views[i]
        if self._maps[i] is not None and view is not None and list(view.shape) == shape \
                and self._maps[i].dtype == dtype:
            return self._maps[i]
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        buf = self.device.allocator.allocate_buffer(
            memory_type=rt.MemoryType.DEVICE_LOCAL | rt.MemoryType.HOST_VISIBLE,
            allowed_usage=rt.BufferUsage.DEFAULT | rt.BufferUsage.MAPPING,
            allocation_size=max(nbytes, 1))
        view = rt.HalBufferView(buf, shape, _element_type(rt, dtype))
        self.bind(i, view)
        mapped = view.map()
        arr = mapped.asarray(shape, dtype)
        self._maps[i] = arr
        self._mapped[i] = mapped  # the mapping must outlive the numpy view of it
        return arr

    def __call__(self):
        if self._args is None:
            missing = [i for i, r in enumerate(self._refs) if r is None]
            if missing:
                raise ValueError(f"@{self.name}: arguments {missing} are not bound")
            args = self._rt.VmVariantList(self.num_args)
            for r in self._refs:
                args.push_ref(r)
            self._args = args
        rets = self._rt.VmVariantList(self.num_results)
        self._vm_context.invoke(self._vm_function, self._args, rets)
        return rets

    def result(self, rets, i: int):
        """Result `i` of a call as a device buffer view."""
        return rets.get_as_object(i, self._buffer_view_cls)

    def scalar(self, rets, i: int) -> float:
        """Result `i` (a single f32 element) as a Python float."""
        bv = rets.get_as_object(i, self._buffer_view_cls)
        return bv.map().asarray(bv.shape, _F32).item()


_F32 = np.dtype(np.float32)


def _element_type(rt, dtype):
    from iree.runtime.array_interop import map_dtype_to_element_type

    et = map_dtype_to_element_type(np.dtype(dtype))
    if et is None:
        raise TypeError(f"no IREE element type for numpy dtype {np.dtype(dtype)}")
    return et


def _count_decl(decl: str) -> tuple[int, int]:
    """(arguments, results) of a function from its `iree.abi.declaration` reflection, e.g.
    `sync func @f(%input0: tensor<4xf32> {...}, %input1: ...) -> (%output0: ..., %output1: ...)`."""
    import re

    head, _, tail = decl.partition("->")
    return len(re.findall(r"%input\d+", head)), max(len(re.findall(r"%output\d+", tail)), 1)


def to_numpy(value) -> np.ndarray:
    """A host copy of a device array or buffer view (copied while it is alive: `to_host()` and
    `map()` alias its buffer)."""
    if hasattr(value, "to_host"):
        return np.array(value.to_host(), copy=True)
    if hasattr(value, "element_type") and hasattr(value, "map"):  # a HalBufferView
        return np.array(value.map().asarray(list(value.shape), view_dtype(value)), copy=True)
    return np.array(value, copy=True)


def view_dtype(view) -> np.dtype:
    """The numpy dtype of a HalBufferView's elements."""
    import iree.runtime as rt

    return np.dtype(rt.HalElementType.map_to_dtype(view.element_type))
