"""Cortex-M firmware: a CMake project per compiled model, its build, and runs under QEMU.

:func:`build_firmware` writes a ready CMake project (runtime + board support + harness +
the generated schedule module + IREE's kernel object, ``runtime/toolchains/arm-none-eabi.cmake``)
and builds it; the linker script enforces the SRAM budget with an ASSERT, and the compiler's own
plan is checked first (:class:`iree_static.SramBudgetError`). The stack reserve is computed from
the firmware itself (:func:`compute_stack`: link once with the smallest reserve, bound the
worst-case stack of that ELF with ``stack_bound.py``, then link again with the bound + margin;
only the link step runs again). :func:`run_qemu` runs the ELF on
``mps2-an386`` (Cortex-M4F) or ``mps2-an500`` (Cortex-M7) with semihosting, feeding training and
evaluation samples through host files, and parses the harness output and the ``MEM`` line.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tinytrain.errors import CompileError

from . import schedule_c, stack_bound
from .iree_static import StaticModule

RUNTIME_DIR = Path(__file__).resolve().parents[2] / "runtime"

BOARDS = {
    "mps2-an386": {"dir": "mps2_an386", "target": "cortex-m4", "cpu_hz": 25_000_000},
    "mps2-an500": {"dir": "mps2_an500", "target": "cortex-m7", "cpu_hz": 25_000_000},
}
#: Both boards' flash (runtime/boards/common/mps2.ld), KB.
BOARD_FLASH_KB = 4096


class FirmwareBuildError(CompileError):
    """CMake or the linker failed (stage ``firmware``); ``str()`` carries the tool output (e.g.
    the SRAM ASSERT)."""

    def __init__(self, message: str):
        super().__init__(message, stage="firmware")


@dataclass
class Firmware:
    """A built firmware. ``state`` is the trained-parameter layout at the arena start
    (dicts with offset, length, shape); ``module`` is None when loaded from disk."""

    elf: Path
    project_dir: Path
    board: str
    sram_kb: int
    stack_bytes: int
    state: list
    state_bytes: int
    module: StaticModule | None = None
    input_dtype: str = "float32"
    output_dtype: str = "float32"                     # predict's output (tt_out_*.bin records)
    output_shape: list = field(default_factory=list)
    text: int = 0
    data: int = 0
    bss: int = 0
    #: the IREE kernels in ``text``: how many dispatch functions, and their code's bytes
    #: (``kernel_code``); the rest of ``text`` is the frozen weights, the schedule's tables,
    #: the runtime and the harness
    kernels: int = 0
    kernel_code: int = 0
    #: the linked ELF's worst-case stack (``stack_bound.analyze``), None without a static bound
    stack_bound: int | None = None

    def save_manifest(self) -> Path:
        path = self.project_dir / "firmware.json"
        keys = ("board", "sram_kb", "stack_bytes", "state", "state_bytes", "input_dtype",
                "output_dtype", "output_shape", "text", "data", "bss", "kernels", "kernel_code", "stack_bound")
        meta = {k: getattr(self, k) for k in keys}
        meta["elf"] = str(self.elf.relative_to(self.project_dir))
        path.write_text(json.dumps(meta, indent=2) + "\n")
        return path


def load_firmware(project_dir) -> Firmware:
    """A firmware built earlier by :func:`build_firmware` (reads ``firmware.json``)."""
    d = Path(project_dir)
    meta = json.loads((d / "firmware.json").read_text())
    elf = d / meta.pop("elf")
    return Firmware(elf=elf, project_dir=d, **meta)


@dataclass
class QemuResult:
    returncode: int
    output: str
    mem: dict = field(default_factory=dict)
    steps: list = field(default_factory=list)        # [(loss, ticks)] per training step
    trace: list = field(default_factory=list)        # [([params...], loss)] per training step
    evals: dict = field(default_factory=dict)        # {"before": (correct, total), "after": ...}
    outputs: dict = field(default_factory=dict)      # {"before": array [records, *output shape], ...}
    instructions_per_tick: float = 0.0
    checkpoints: list = field(default_factory=list)  # CKPT lines: dicts (op, status, slot, seq, ...)
    rejected: list = field(default_factory=list)     # [(record index, status)] refused samples
    final_state: list | None = None                  # tt_state.bin (with `checkpoint=`): params
    final_steps: tuple | None = None                 # (steps, rejected_steps) at the end
    power_cut: int | None = None                     # NVM operations done before a simulated cut


@dataclass
class CheckpointConfig:
    """Checkpointing in the harness (``tt_ckpt.cfg``); the board NVM is ``tt_nvm.bin`` in the
    work folder, kept between runs (a device's flash outlives a power cycle).

    ``every``: save after every ``every`` accepted steps (0: never). ``restore``: restore the
    newest checkpoint at boot and skip the training records it already consumed. ``cut_after``:
    cut the power after that many NVM erase/program operations (0: never); ``tear`` applies half
    of the cut operation first. ``page_size``/``page_count``: geometry of a new NVM file
    (``page_count=0``: the fewest pages that hold two slots of the model's state)."""

    every: int = 0
    restore: bool = False
    cut_after: int = 0
    tear: bool = False
    page_size: int = 256
    page_count: int = 64

    def slot_pages(self, state_bytes: int) -> int:
        """Pages of one slot: a header page and the state (as ``tt_checkpoint_slot_pages``)."""
        return 1 + -(-int(state_bytes) // self.page_size)

    def resolved(self, state_bytes: int) -> "CheckpointConfig":
        """This configuration checked against a model with ``state_bytes`` of trained state
        (ValueError/TypeError naming the field), with ``page_count=0`` made concrete."""
        for name in ("every", "cut_after", "page_size", "page_count"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                raise TypeError(f"CheckpointConfig.{name} must be a whole number, got {v!r}")
            if not 0 <= int(v) <= 0xFFFFFFFF:
                raise ValueError(f"CheckpointConfig.{name}={v}: must be in [0, 2**32)")
        for name in ("restore", "tear"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise TypeError(f"CheckpointConfig.{name} must be True or False, got "
                                f"{getattr(self, name)!r}")
        if self.page_size < 64 or self.page_size % 4:
            raise ValueError(f"CheckpointConfig.page_size={self.page_size}: an NVM page must be "
                             "at least 64 bytes (the checkpoint header) and a multiple of 4")
        need = 2 * self.slot_pages(state_bytes)
        count = int(self.page_count) or need
        if count < need:
            raise ValueError(f"CheckpointConfig: {count} NVM pages of {self.page_size} bytes cannot "
                             f"hold two checkpoint slots of this model ({state_bytes} bytes of state "
                             f"need {need // 2} pages each); use page_count >= {need} or 0 (auto)")
        return CheckpointConfig(int(self.every), bool(self.restore), int(self.cut_after),
                                bool(self.tear), int(self.page_size), count)

    def pack(self) -> bytes:
        return np.array([self.every, int(self.restore), self.cut_after, int(self.tear),
                         self.page_size, self.page_count], dtype="<u4").tobytes()


def write_project(module: StaticModule, project_dir, *, board: str, sram_kb: int,
                  stack_bytes: int, flash_kb: int | None = None) -> Path:
    """Write a self-contained CMake project for the firmware of ``module`` into ``project_dir``:
    the generated sources, IREE's kernel object and a copy of the runtime (``tt_runtime/``), so
    the folder builds anywhere with the arm-none-eabi toolchain file it contains. ``flash_kb``:
    None, the boards' (:data:`BOARD_FLASH_KB`); more only for an ELF that is analysed and never
    run (the stack probe)."""
    d = Path(project_dir)
    d.mkdir(parents=True, exist_ok=True)
    for p in (module.c_path, module.h_path, module.object_path):
        if p.parent.resolve() != d.resolve():
            shutil.copy2(p, d / p.name)
    vendored = d / "tt_runtime"
    if vendored.exists():
        shutil.rmtree(vendored)
    shutil.copytree(RUNTIME_DIR, vendored, ignore=shutil.ignore_patterns("host", "README.md"))
    # Dispatches of our kernels (to-linalg{kernels=ttk}) leave `ttk_iree_*` undefined in IREE's
    # object: the project then links runtime/kernels too.
    ttk = "\n  TTK_KERNELS" if b"ttk_iree_" in module.object_path.read_bytes() else ""
    flash = f"\n  FLASH_KB {int(BOARD_FLASH_KB if flash_kb is None else flash_kb)}"
    (d / "CMakeLists.txt").write_text(f"""# Generated by tinytrain.lowering.cortexm.firmware: firmware for model '{module.prefix}'.
# Build:  cmake -S . -B build -DCMAKE_TOOLCHAIN_FILE=tt_runtime/toolchains/arm-none-eabi.cmake
#         cmake --build build
# Run:    qemu-system-arm -M {board} -semihosting-config enable=on,target=native -nographic \\
#           -kernel build/firmware.elf
cmake_minimum_required(VERSION 3.20)
project(tt_firmware_{module.prefix} C)
set(TT_BOARD {BOARDS[board]['dir']})
add_subdirectory(tt_runtime)
tt_add_firmware(firmware
  MODEL_HEADER {module.h_path.name}
  SOURCES {module.c_path.name}
  OBJECTS {module.object_path.name}
  SRAM_KB {sram_kb}
  STACK_BYTES {stack_bytes}{flash}{ttk})
""")
    return d / "CMakeLists.txt"


#: The probe link of :func:`compute_stack`: all of QEMU's RAM and the smallest reserve. The
#: budget does not change the code, only the addresses of the data and the stack. Its flash is
#: larger than the boards' (:data:`BOARD_FLASH_KB`), so the plan of a program whose code does
#: not fit a board (every parameter trained) still gets its stack bound; that ELF never runs.
PROBE_SRAM_KB = 4096
PROBE_FLASH_KB = 65536


def _build_project(module: StaticModule, proj: Path, board: str, sram_kb: int, stack_bytes: int,
                   flash_kb: int | None = None) -> Path:
    """Write and build the CMake project; returns the ELF (a rebuild in the same folder with
    other numbers only links again). Code and constants beyond the flash: a
    ``FirmwareBuildError`` saying by how much."""
    from tinytrain.lowering.compile_cache import ccache_settings

    write_project(module, proj, board=board, sram_kb=sram_kb, stack_bytes=stack_bytes, flash_kb=flash_kb)
    build = proj / "build"
    toolchain = proj / "tt_runtime" / "toolchains" / "arm-none-eabi.cmake"
    launcher, env = ccache_settings(proj)  # the runtime's objects from earlier builds (if ccache is installed)
    for cmd in (["cmake", "-S", str(proj), "-B", str(build), f"-DCMAKE_TOOLCHAIN_FILE={toolchain}",
                 "-DCMAKE_BUILD_TYPE=Release", *launcher],
                ["cmake", "--build", str(build), "-j2"]):
        proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **env})
        if proc.returncode != 0:
            over = re.search(r"region `FLASH' overflowed by (\d+) bytes", proc.stdout + proc.stderr)
            if over:
                raise FirmwareBuildError(
                    f"the firmware's code and constants do not fit the board's "
                    f"{BOARD_FLASH_KB if flash_kb is None else flash_kb} KB of flash "
                    f"(over by {int(over.group(1)):,} B): each trained layer's channel groups and each "
                    f"patch shape are kernels of their own; fewer trained layers, channel_groups=1 or fewer "
                    f"patches (patches=) make less code, at more SRAM")
            raise FirmwareBuildError(f"{' '.join(cmd[:2])} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return build / "firmware.elf"


def _analyze(elf: Path):
    """(StackBound, None) of a linked firmware, or (None, why it has no static bound)."""
    try:
        return stack_bound.analyze(elf, stack_bound.su_files(elf.parent)), None
    except stack_bound.UnboundedStack as e:
        return None, str(e)


def compute_stack(module: StaticModule, project_dir=None):
    """The worst-case stack of ``module``'s firmware (``stack_bound.StackBound``), kept in
    ``module.stack``: the firmware is linked with :data:`PROBE_SRAM_KB` and a 1 KB reserve in
    ``project_dir`` (default ``module.out_dir / "stack_probe"``) and its ELF analysed. When the
    code has no static bound (dynamic stack, recursion) ``module.stack_error`` says why, the
    fixed 8 KB reserve stays and a warning is issued; the budget's contributors name it too."""
    if module.stack is not None or module.stack_error is not None:
        return module.stack
    if module.target not in TARGET_BOARD:
        raise ValueError(f"compute_stack: {module.target} has no firmware (Cortex-M targets only)")
    if module.planned_sram(stack_bound.STACK_GRANULE) > PROBE_SRAM_KB * 1024:
        module.stack_error = (f"not computed: the plan exceeds {PROBE_SRAM_KB} KB (all of QEMU's RAM) "
                              "even without a stack")
        return None
    proj = Path(project_dir or module.out_dir / "stack_probe").resolve()
    elf = _build_project(module, proj, TARGET_BOARD[module.target], PROBE_SRAM_KB,
                         stack_bound.STACK_GRANULE, flash_kb=PROBE_FLASH_KB)
    module.stack, module.stack_error = _analyze(elf)
    if module.stack_error is not None:
        warnings.warn(f"the firmware's stack has no static bound, reserving a fixed 8 KB: "
                      f"{module.stack_error}", stacklevel=2)
    return module.stack


def build_firmware(module: StaticModule, out_dir, *, board: str = "mps2-an386", sram_kb: int = 256,
                   stack_bytes: int | None = None, check_budget: bool = True) -> Firmware:
    """Generate and build the firmware project; returns the ELF and its section sizes.

    ``stack_bytes``: the stack reserve (a multiple of 1 KB); None: the computed one
    (:func:`compute_stack`, linked in this project first unless ``module`` has it already).
    ``check_budget=False`` skips the compiler's SRAM check so the linker's ASSERT can be tested.
    """
    if board not in BOARDS:
        raise ValueError(f"unknown board {board!r}; choose one of {sorted(BOARDS)}")
    if BOARDS[board]["target"] != module.target:
        raise ValueError(f"board {board} is a {BOARDS[board]['target']}, module was compiled "
                         f"for {module.target}")
    proj = Path(out_dir).resolve()  # cmake resolves relative paths against other folders
    computed = stack_bytes is None
    # probed here: the final link has the same objects, so the probe's bound is this ELF's
    probed_here = computed and module.stack is None and module.stack_error is None
    if computed:
        compute_stack(module, proj)
        stack_bytes = module.stack_reserve
    if stack_bytes <= 0 or stack_bytes % 1024:
        raise ValueError(f"stack_bytes={stack_bytes}: must be a positive multiple of 1024 (MPU guard)")
    if check_budget:
        module.check_sram(sram_kb * 1024, stack_bytes)
    elf = _build_project(module, proj, board, sram_kb, stack_bytes)
    bound = module.stack if probed_here else _analyze(elf)[0]
    if computed and module.stack is not None and (bound is None or bound.bound > module.stack.bound):
        raise FirmwareBuildError(f"the linked firmware's stack bound ({bound.bound if bound else 'none'}) "
                                 f"differs from the probe link's ({module.stack.bound} B)")
    state = _state_layout(module)
    fw = Firmware(elf, proj, board, sram_kb, stack_bytes, state, module.state_bytes, module,
                  _input_dtype(module), *_output_type(module),
                  stack_bound=bound.bound if bound is not None else None)
    out = subprocess.run(["arm-none-eabi-size", "-A", str(elf)], capture_output=True, text=True,
                         check=True).stdout
    sec = {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\.\w+)\s+(\d+)", out, re.M)}
    fw.text, fw.data, fw.bss = sec.get(".text", 0), sec.get(".data", 0), sec.get(".bss", 0)
    fw.kernels, fw.kernel_code = kernel_code(elf)
    fw.save_manifest()
    return fw


def kernel_code(elf) -> tuple[int, int]:
    """(how many, bytes of code) of the IREE kernels linked into ``elf``: its function symbols of
    the static library's dispatches (``<function>_dispatch_<n>_<shape>``), read by the stack
    analysis' ELF reader."""
    _, symbols, _ = stack_bound._read_elf(elf)
    sizes = [size for name, _, size in symbols if "_dispatch_" in name]
    return len(sizes), sum(sizes)


# ---- host files for the harness ------------------------------------------------------------

_NP_DTYPE = {"f32": "float32", "i32": "int32", "i8": "int8", "ui8": "uint8", "f16": "float16",
             "i16": "int16", "i64": "int64", "f64": "float64"}


def _state_layout(module: StaticModule) -> list:
    fn = module.schedule.function("train_step") if "train_step" in module.functions else None
    return [{"offset": sl.offset, "length": sl.length, "shape": list(sl.shape),
             "dtype": _NP_DTYPE[fn.inputs[sl.index].dtype]}
            for sl in schedule_c.plan_state(module.schedule, "train_step")]


def _input_dtype(module: StaticModule) -> str:
    if "train_step" in module.functions:
        return _NP_DTYPE[module.functions["train_step"]["inputs"][-2]["dtype"]]
    return _NP_DTYPE[module.functions["predict"]["inputs"][-1]["dtype"]]


def _output_type(module: StaticModule) -> tuple[str, list]:
    """(numpy dtype, shape) of predict's output (float32, [] without a predict)."""
    if "predict" not in module.functions:
        return "float32", []
    out = module.functions["predict"]["outputs"][0]
    return _NP_DTYPE[out["dtype"]], list(out["shape"])


def pack_state(fw: Firmware, params: list) -> bytes:
    """Trained parameters in the arena's state layout (each 64-byte aligned)."""
    if len(params) != len(fw.state):
        raise ValueError(f"{len(params)} parameters given, the model trains {len(fw.state)}")
    buf = bytearray(fw.state_bytes)
    for i, (s, p) in enumerate(zip(fw.state, params)):
        raw = np.ascontiguousarray(p, dtype=s["dtype"]).tobytes()
        if len(raw) != s["length"]:
            raise ValueError(f"parameter {i}: {len(raw)} bytes, expected {s['length']}")
        buf[s["offset"]:s["offset"] + s["length"]] = raw
    return bytes(buf)


def unpack_state(fw: Firmware, raw: bytes) -> list:
    return [np.frombuffer(raw[s["offset"]:s["offset"] + s["length"]], dtype=s["dtype"])
            .reshape(s["shape"]).copy() for s in fw.state]


def pack_samples(xs, labels, input_dtype: str = "float32") -> bytes:
    """Records of (input, i32 label) for tt_train.bin / tt_eval.bin."""
    out = bytearray()
    for x, y in zip(xs, labels):
        out += np.ascontiguousarray(x, dtype=input_dtype).tobytes()
        out += np.int32(y).tobytes()
    return bytes(out)


def _prepare(fw: Firmware, wd: Path, train, evaluate, params, checkpoint=None) -> None:
    wd.mkdir(parents=True, exist_ok=True)
    for name in ("tt_params.bin", "tt_train.bin", "tt_eval.bin", "tt_trace.bin", "tt_ckpt.cfg",
                 "tt_state.bin", "tt_out_before.bin", "tt_out_after.bin"):  # never tt_nvm.bin: the board's NVM persists
        (wd / name).unlink(missing_ok=True)
    if checkpoint is not None:
        (wd / "tt_ckpt.cfg").write_bytes(checkpoint.pack())
    if params is not None:
        (wd / "tt_params.bin").write_bytes(pack_state(fw, params))
    if train is not None:
        (wd / "tt_train.bin").write_bytes(pack_samples(*train, fw.input_dtype))
    if evaluate is not None:
        (wd / "tt_eval.bin").write_bytes(pack_samples(*evaluate, fw.input_dtype))


def _parse(fw: Firmware, wd: Path, returncode: int, output: str) -> QemuResult:
    res = QemuResult(returncode, output)
    m = re.search(r"^MEM (.*)$", res.output, re.M)
    if m:
        res.mem = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(1))}
    for m in re.finditer(r"^STEP (\d+) loss_bits=(\d+) ticks=(\d+)$", res.output, re.M):
        loss = float(np.uint32(int(m.group(2))).view(np.float32))
        res.steps.append((loss, int(m.group(3))))
    for m in re.finditer(r"^EVAL (\w+) correct=(\d+) total=(\d+)$", res.output, re.M):
        res.evals[m.group(1)] = (int(m.group(2)), int(m.group(3)))
    for tag in ("before", "after"):
        out = wd / f"tt_out_{tag}.bin"
        if out.exists() and fw.output_shape:
            res.outputs[tag] = np.fromfile(out, dtype=fw.output_dtype).reshape(-1, *fw.output_shape)
    for m in re.finditer(r"^CKPT (\w+) (.*)$", res.output, re.M):
        info = dict(re.findall(r"(\w+)=(\S+)", m.group(2)))
        res.checkpoints.append({"op": m.group(1), "status": info["status"], "slot": info["slot"],
                                "seq": int(info["seq"]), "steps": int(info["steps"]),
                                "rejected": int(info["rejected"]), "slotA": info["slotA"],
                                "slotB": info["slotB"]})
    res.rejected = [(int(a), b) for a, b in re.findall(r"^REJECT (\d+) (\w+)$", res.output, re.M)]
    m = re.search(r"^NVM power cut after (\d+) operations$", res.output, re.M)
    res.power_cut = int(m.group(1)) if m else None
    state = wd / "tt_state.bin"
    if state.exists():
        raw = state.read_bytes()
        res.final_state = unpack_state(fw, raw[:fw.state_bytes])
        res.final_steps = tuple(int(v) for v in np.frombuffer(raw[fw.state_bytes:], "<u8"))
    trace = wd / "tt_trace.bin"
    if trace.exists():
        raw, rec = trace.read_bytes(), fw.state_bytes + 4
        for i in range(len(raw) // rec):
            chunk = raw[i * rec:(i + 1) * rec]
            res.trace.append((unpack_state(fw, chunk[:-4]),
                              float(np.frombuffer(chunk[-4:], dtype=np.float32)[0])))
    return res


def _check_nvm(path: Path, cfg: CheckpointConfig, state_bytes: int) -> None:
    """An existing NVM image must fit the page geometry of ``cfg`` and hold two slots."""
    size = path.stat().st_size
    need = 2 * cfg.slot_pages(state_bytes)
    if size % cfg.page_size or size // cfg.page_size < need:
        raise ValueError(f"NVM image {path} ({size} bytes) does not fit {cfg.page_size}-byte pages "
                         f"with two checkpoint slots of {need // 2} pages (this model's "
                         f"{state_bytes}-byte state): was it written with another page size or "
                         "for another model?")


def run_qemu(fw: Firmware, workdir, *, train=None, evaluate=None, params=None,
             timeout: float = 120.0, icount: bool = True,
             checkpoint: CheckpointConfig | None = None, nvm=None) -> QemuResult:
    """Run ``fw`` with ``train``/``evaluate`` = (xs, labels) and optional ``params``.

    The harness reads its inputs from files in ``workdir`` (semihosting). ``icount`` runs with
    ``-icount shift=0`` so SysTick ticks convert exactly to guest instructions. A firmware built
    for the ``host`` board runs natively instead (ticks are then nanoseconds). ``checkpoint``
    turns on checkpoints in the board NVM file ``workdir/tt_nvm.bin`` (:class:`CheckpointConfig`),
    which is kept between runs like a device's flash. ``nvm``: another file to use as the
    board's NVM instead (copied in before the run and replaced atomically after it; a missing
    file starts erased).
    """
    wd = Path(workdir)
    if checkpoint is not None and not isinstance(checkpoint, CheckpointConfig):
        raise TypeError(f"checkpoint must be a CheckpointConfig, got {type(checkpoint).__name__}")
    if nvm is not None and checkpoint is None:
        raise ValueError("nvm= is the board's checkpoint memory: pass checkpoint=CheckpointConfig(...) "
                         "too")
    if checkpoint is not None:
        checkpoint = checkpoint.resolved(fw.state_bytes)
        board_nvm = wd / "tt_nvm.bin"
        if nvm is not None:
            nvm = Path(nvm).resolve()
            if nvm.is_dir():
                raise ValueError(f"nvm={nvm} is a folder; pass the NVM image file")
            if nvm.exists():
                _check_nvm(nvm, checkpoint, fw.state_bytes)
            elif checkpoint.restore:
                raise ValueError(f"nothing to restore: the NVM image {nvm} does not exist")
        elif board_nvm.exists():
            _check_nvm(board_nvm, checkpoint, fw.state_bytes)
    _prepare(fw, wd, train, evaluate, params, checkpoint)
    if nvm is not None:
        board_nvm.unlink(missing_ok=True)
        if nvm.exists():
            shutil.copyfile(nvm, board_nvm)
    if fw.board == "host":
        cmd = [str(fw.elf)]
    else:
        cmd = ["qemu-system-arm", "-M", fw.board, "-display", "none", "-monitor", "none",
               "-serial", "none", "-chardev", "stdio,id=sh0",
               "-semihosting-config", "enable=on,target=native,chardev=sh0", "-kernel", str(fw.elf)]
        if icount:
            cmd[3:3] = ["-icount", "shift=0"]
    try:
        proc = subprocess.run(cmd, cwd=wd, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        raise TimeoutError(f"firmware did not finish within {timeout} s: {' '.join(cmd)}") from e
    if nvm is not None and board_nvm.exists():
        tmp = nvm.with_name(nvm.name + ".tmp")
        shutil.copyfile(board_nvm, tmp)
        tmp.replace(nvm)
    res = _parse(fw, wd, proc.returncode, proc.stdout + proc.stderr)
    peak = res.mem.get("stack_peak")
    if fw.stack_bound is not None and peak is not None and peak > fw.stack_bound:
        warnings.warn(f"the device's painted stack peak ({peak} B) exceeds the firmware's computed "
                      f"worst-case stack ({fw.stack_bound} B): lowering/cortexm/stack_bound.py "
                      "missed a frame", stacklevel=2)
    if fw.board != "host" and icount:
        res.instructions_per_tick = 1e9 / BOARDS[fw.board]["cpu_hz"]
    return res


def build_host(module: StaticModule, out_dir, *, sanitize: bool = True) -> Firmware:
    """Build the harness natively for a module compiled with ``target="host"`` (gcc; ASan and
    UBSan by default): the same runtime, schedule and harness as the firmware."""
    if module.target != "host":
        raise ValueError(f"module was compiled for {module.target}, not for the host")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    exe = out / f"{module.prefix}_host"
    rt = RUNTIME_DIR
    cmd = ["gcc", "-std=c99", "-O1", "-g", "-Wall", "-Wextra", "-Werror", "-D_POSIX_C_SOURCE=199309L",
           f"-I{rt / 'include'}", f"-I{rt / 'boards' / 'common'}", f"-I{module.h_path.parent}",
           f'-DTT_MODEL_HEADER="{module.h_path.name}"',
           *(["-fsanitize=address,undefined", "-fno-sanitize-recover=all"] if sanitize else []),
           str(rt / "firmware" / "tt_fw_main.c"), str(rt / "boards" / "host" / "board_host.c"),
           *[str(rt / "src" / f) for f in ("model.c", "train.c", "status.c", "checkpoint.c")],
           str(rt / "boards" / "common" / "nvm_file.c"),
           str(module.c_path), str(module.object_path), "-no-pie", "-lm", "-o", str(exe)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise FirmwareBuildError(f"host build failed:\n{proc.stderr[-3000:]}")
    state = _state_layout(module)
    return Firmware(exe, out, "host", 0, 0, state, module.state_bytes, module, _input_dtype(module),
                    *_output_type(module))


TARGET_BOARD = {b["target"]: name for name, b in BOARDS.items()}


def compile_firmware(linalg_text: str, out_dir, *, target: str = "cortex-m4", params=None,
                     sram_kb: int = 256, prefix: str = "model",
                     stack_bytes: int | None = None, extra_flags: tuple = (),
                     stream_input: bool = False, optional_flags: tuple = ()) -> Firmware:
    """linalg text -> static module (``out_dir/static``) -> firmware (``out_dir/firmware``).

    ``params``: initial trained parameters (numpy, ``train_step`` argument order), stored in
    flash and loaded by ``tt_model_init``. Raises ``SramBudgetError`` if the plan exceeds
    ``sram_kb``. ``stack_bytes``: None = the computed reserve (:func:`build_firmware`). ``target="host"`` builds the same harness natively with ASan/UBSan.
    ``extra_flags``: more iree-compile flags (e.g. the int8 programs' f64 switch).
    ``stream_input``: read the step input range by range (``input_stream.py``).
    ``optional_flags``: iree-compile flags dropped if it fails with them (``build_static_module``).
    """
    from .iree_static import build_static_module

    out = Path(out_dir)
    module = build_static_module(linalg_text, out / "static", target=target, prefix=prefix,
                                 state_init=params, sram_bytes=None, extra_flags=tuple(extra_flags),
                                 stream_input=stream_input, optional_flags=tuple(optional_flags))
    if target == "host":
        return build_host(module, out / "host")
    return build_firmware(module, out / "firmware", board=TARGET_BOARD[target], sram_kb=sram_kb,
                          stack_bytes=stack_bytes)


def main(argv=None) -> int:
    """``python -m tinytrain.lowering.cortexm.firmware run-qemu PROJECT [--train F.npz] [--eval F.npz]``

    Runs a firmware project built by :func:`build_firmware`. The ``.npz`` files hold ``x``
    (NHWC inputs, one per leading index) and ``y`` (int labels). Exit status = firmware's.
    """
    ap = argparse.ArgumentParser(prog="python -m tinytrain.lowering.cortexm.firmware")
    sub = ap.add_subparsers(dest="cmd", required=True)
    rq = sub.add_parser("run-qemu", help="run a built firmware project in QEMU")
    rq.add_argument("project")
    rq.add_argument("--train", type=Path)
    rq.add_argument("--eval", type=Path)
    rq.add_argument("--workdir", type=Path)
    rq.add_argument("--timeout", type=float, default=600.0)
    args = ap.parse_args(argv)
    fw = load_firmware(args.project)

    def samples(path):
        if path is None:
            return None
        z = np.load(path)
        return list(z["x"]), [int(v) for v in z["y"]]

    res = run_qemu(fw, args.workdir or Path(args.project) / "run", train=samples(args.train),
                   evaluate=samples(args.eval), timeout=args.timeout)
    sys.stdout.write(res.output)
    return res.returncode


if __name__ == "__main__":
    sys.exit(main())
