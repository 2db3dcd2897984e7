"""Build and run the kernel runner (runtime/kernels/test/ttk_runner.c) for the host or a QEMU
board, and encode its cases. Shared by tests/python/test_cortexm_kernels.py and
bench/cortexm_kernels.py.

A case is an op id, 16 int32 parameters, input arrays and the output size; ``run`` returns the
raw output bytes and the timer ticks of every case (QEMU ``-icount shift=0``: one tick = 40
instructions on both mps2 boards, whose SysTick runs at 25 MHz).
"""

from __future__ import annotations

import dataclasses
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
RUNTIME = ROOT / "runtime"
KERNELS = RUNTIME / "kernels"
BOARD_DIR = RUNTIME / "boards" / "common"

OPS = {"conv1x1": 1, "linear": 2, "dwconv": 3, "conv": 4, "dw_grad_input": 5,
       "pw_grad_input": 6, "pw_grad_weight": 7, "dw_grad_weight": 8, "mask": 9, "requant": 10}

# board -> (CPU flags as in runtime/boards/<board>/board.cmake, QEMU machine, SysTick Hz)
BOARDS = {
    "mps2-an386": (["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"], 25_000_000),
    "mps2-an500": (["-mcpu=cortex-m7", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv5-d16"], 25_000_000),
}
TARGET_BOARD = {"cortex-m4": "mps2-an386", "cortex-m7": "mps2-an500"}

KERNEL_SOURCES = [KERNELS / "src" / "ttk_s8.c", KERNELS / "src" / "ttk_f32.c"]
# -g1: line tables only (file:line in sanitizer reports and backtraces), no variable locations:
# gcc's variable tracking is a third of its time on ttk_s8.c (its specialised kernels are
# ~0.5 MB of code); the machine code is the same as with -g (objdump -d identical, host and M4).
CFLAGS = ["-std=c99", "-O2", "-g1", "-Wall", "-Wextra", "-Werror", f"-I{KERNELS / 'include'}",
          f"-I{BOARD_DIR}", f"-I{RUNTIME / 'include'}"]


@dataclasses.dataclass
class Case:
    op: str
    params: list
    inputs: list            # numpy arrays, written as raw little-endian bytes
    out_bytes: int

    def encode(self) -> bytes:
        p = [int(v) for v in self.params] + [0] * (16 - len(self.params))
        if len(p) != 16:
            raise ValueError("at most 16 parameters")
        blobs = [np.ascontiguousarray(a).tobytes() for a in self.inputs]
        head = struct.pack("<II16iI", 0x434B5454, OPS[self.op], *p, len(blobs))
        head += struct.pack(f"<{len(blobs) + 1}I", *[len(b) for b in blobs], self.out_bytes)
        return head + b"".join(b + b"\0" * (-len(b) % 8) for b in blobs)


@dataclasses.dataclass
class Runner:
    path: Path
    board: str              # "host" or a QEMU machine

    @property
    def instructions_per_tick(self) -> float | None:
        return None if self.board == "host" else 1e9 / BOARDS[self.board][1]


def build(out_dir, board: str, *, arena_kb: int = 160, ram_kb: int = 256,
          portable: bool = False) -> Runner:
    """Compile the runner for ``board`` ("host": gcc with ASan/UBSan and the portable C path)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    runner = KERNELS / "test" / "ttk_runner.c"
    defs = [f"-DTTK_ARENA_BYTES=({arena_kb}u*1024u)"] + (["-DTTK_PORTABLE"] if portable else [])
    if board == "host":
        exe = out / "ttk_runner_host"
        # -O1 (AddressSanitizer's recommended level): gcc takes 67 s on ttk_s8.c with the
        # sanitizers at -O2, 37 s at -O1 (the boards' builds keep -O2: they test the real code)
        flags = ["-O1" if f == "-O2" else f for f in CFLAGS]
        cmd = ["gcc", *flags, "-pedantic", "-D_POSIX_C_SOURCE=200809L", *defs, "-fsanitize=address,undefined",
               "-fno-sanitize-recover=all", "-o", str(exe), str(runner), *map(str, KERNEL_SOURCES),
               str(RUNTIME / "boards" / "host" / "board_host.c"), "-lm"]
    else:
        cpu, _ = BOARDS[board]
        exe = out / f"ttk_runner_{board}.elf"
        board_src = [BOARD_DIR / f for f in ("startup.c", "semihost.c", "timer.c", "mpu.c")]
        cmd = ["arm-none-eabi-gcc", *cpu, *CFLAGS, *defs, "-ffreestanding", "-ffunction-sections",
               "-fdata-sections", "-nostartfiles", "--specs=nano.specs", f"-T{BOARD_DIR / 'mps2.ld'}",
               "-Wl,--gc-sections", "-Wl,-z,noexecstack", f"-Wl,--defsym=__ram_size={ram_kb}K",
               "-Wl,--defsym=__stack_size=8192", "-o", str(exe), str(runner),
               *map(str, KERNEL_SOURCES), *map(str, board_src), "-lm", "-lc", "-lgcc"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"build failed: {' '.join(cmd)}\n{proc.stderr}")
    return Runner(exe, board)


def qemu_available() -> bool:
    return shutil.which("qemu-system-arm") is not None and shutil.which("arm-none-eabi-gcc") is not None


def run(runner: Runner, cases: list, workdir, *, timeout: float = 300.0) -> list:
    """Run every case; returns [(output bytes, ticks)] in order."""
    wd = Path(workdir)
    wd.mkdir(parents=True, exist_ok=True)
    (wd / "ttk_cases.bin").write_bytes(b"".join(c.encode() for c in cases))
    out_file = wd / "ttk_out.bin"
    if out_file.exists():
        out_file.unlink()
    if runner.board == "host":
        cmd = [str(runner.path)]
    else:
        cmd = ["qemu-system-arm", "-M", runner.board, "-icount", "shift=0", "-display", "none",
               "-monitor", "none", "-serial", "none", "-chardev", "stdio,id=sh0",
               "-semihosting-config", "enable=on,target=native,chardev=sh0",
               "-kernel", str(runner.path)]
    proc = subprocess.run(cmd, cwd=wd, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)
    log = proc.stdout + proc.stderr
    if proc.returncode != 0 or f"DONE {len(cases)}" not in log:
        raise RuntimeError(f"runner failed (rc={proc.returncode}):\n{log[-3000:]}")
    raw = out_file.read_bytes()
    res, pos = [], 0
    for _ in cases:
        (n,) = struct.unpack_from("<I", raw, pos)
        data = raw[pos + 4:pos + 4 + n]
        (ticks,) = struct.unpack_from("<Q", raw, pos + 4 + n)
        res.append((data, ticks))
        pos += 12 + n
    if pos != len(raw):
        raise RuntimeError("trailing bytes in ttk_out.bin")
    return res


# ------------------------------------------------------------------------------------------
# Case builders (inputs + the op's parameter list); the oracle lives in ttk_oracle.py.

def quant_params(rng, c_out: int, *, eff_range=(2e-4, 5e-2), relu6: bool | str = True,
                 positive_shift: bool = False):
    """Random per-channel multipliers from random scales via frexp, zero points, clamp.

    relu6=True: a clamp range narrower than int8 ([y_zero, y_zero + 100]); "folded": ReLU6
    folded into the output scale as calibrated models do (y_scale = 6/255, y_zero = -128, so the
    clamp is the full int8 range); False: no activation (full int8 range)."""
    from ttk_oracle import quantize_multiplier

    effs = rng.uniform(*eff_range, size=c_out)
    if positive_shift:
        effs[::2] = rng.uniform(1.0, 6.0, size=effs[::2].shape)
    mq = [quantize_multiplier(float(e)) for e in effs]
    y_zero = int(rng.integers(-128, 0)) if relu6 else int(rng.integers(-20, 20))
    if relu6 == "folded":
        relu6, y_zero = False, -128
    q = {"x_zero": int(rng.integers(-128, 128)), "y_zero": y_zero,
         "act_min": y_zero if relu6 else -128, "act_max": min(127, y_zero + 100) if relu6 else 127,
         "mult": np.array([m for m, _ in mq], np.int32), "shift": np.array([s for _, s in mq], np.int32)}
    return q


def s8(rng, shape):
    return rng.integers(-128, 128, size=shape, dtype=np.int64).astype(np.int8)


def bias32(rng, n, span=4000):
    return rng.integers(-span, span, size=n).astype(np.int32)


def case_conv1x1(x, w_io, bias, q, op="conv1x1", scratch: int = -1) -> Case:
    """scratch: kernel scratch bytes (-1 = all the runner has, 0 = none: register-only path,
    -2 - n = the kernel's minimum plus n channel pairs: several weight blocks)."""
    p, c_in = x.shape
    c_out = w_io.shape[1]
    b = bias if bias is not None else np.zeros(c_out, np.int32)
    return Case(op, [p, c_in, c_out, q["x_zero"], q["y_zero"], q["act_min"], q["act_max"],
                     int(bias is not None), scratch], [x, w_io, b, q["mult"], q["shift"]], p * c_out)


def case_dwconv(x, w, k, stride, bias, q, pad: int | None = None, scratch: int = -1) -> Case:
    """pad: padding on each side, (k-1)/2 by default (0: a pre-padded input). scratch: -1
    `ttk_dwconv_s8_scratch_size` bytes (the SMLAD path, 4 output rows per strip), -2
    `ttk_dwconv_s8_scratch_min` (one output row per strip), 0 none (the one-MAC path), n > 0
    n bytes (more rows per strip than `ttk_dwconv_s8_scratch_size`'s)."""
    from ttk_oracle import out_size

    h, wd, c = x.shape
    pad = (k - 1) // 2 if pad is None else pad
    b = bias if bias is not None else np.zeros(c, np.int32)
    n = out_size(h, k, stride, pad) * out_size(wd, k, stride, pad) * c
    return Case("dwconv", [h, wd, c, k, stride, q["x_zero"], q["y_zero"], q["act_min"],
                           q["act_max"], int(bias is not None), pad, scratch], [x, w, b, q["mult"], q["shift"]], n)


def case_conv(x, w, k, stride, bias, q, pad: int | None = None) -> Case:
    """pad: padding on each side, (k-1)/2 by default (0: a pre-padded input)."""
    from ttk_oracle import out_size

    h, wd, c_in = x.shape
    c_out = w.shape[3]
    pad = (k - 1) // 2 if pad is None else pad
    b = bias if bias is not None else np.zeros(c_out, np.int32)
    n = out_size(h, k, stride, pad) * out_size(wd, k, stride, pad) * c_out
    return Case("conv", [h, wd, c_in, c_out, k, stride, q["x_zero"], q["y_zero"], q["act_min"],
                         q["act_max"], int(bias is not None), pad], [x, w, b, q["mult"], q["shift"]], n)


def f32_bits(v: float) -> int:
    return struct.unpack("<i", struct.pack("<f", v))[0]
