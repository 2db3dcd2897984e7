"""IREE's own int8 kernels for bench/cortexm_kernels.py: one layer (int8 matmul / depthwise conv
with zero point, int32 bias, the spec's requantization written in linalg/arith i64, clamp) is
compiled by iree-compile into the Cortex-M static library with the project's flags
(lowering/cortexm/iree_static.py), scheduled by our runtime and timed in QEMU.

The same layer also runs as an IREE dispatch that calls our kernel (`pw_ttk_mlir`: a
`stream.executable` whose workgroup function calls `ttk_iree_conv1x1_s8`, declared
`hal.import.static`; runtime/kernels/src/ttk_iree.c is linked into the firmware): IREE still
schedules the dispatch and allocates its bindings (input, packed weights, output, scratch).

The requantization is literal gemmlowp (nudge by sign, divsi = truncation toward zero), so the
output must equal the numpy oracle bit for bit; the bench reports whether it does.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "firmware"))

import ttk_kernels as tk  # noqa: E402
import ttk_oracle as oracle  # noqa: E402


def _dense(a: np.ndarray, ty: str) -> str:
    vals = ", ".join(str(int(v)) for v in a.ravel())
    shape = "x".join(str(d) for d in a.shape)
    return f"dense<[{vals}]> : tensor<{shape}x{ty}>" if a.ndim == 1 else \
        f"dense<{_nested(a)}> : tensor<{shape}x{ty}>"


def _nested(a) -> str:
    if a.ndim == 1:
        return "[" + ", ".join(str(int(v)) for v in a) + "]"
    return "[" + ", ".join(_nested(s) for s in a) + "]"


def _requant_generic(acc: str, shape: list, c: int, q: dict, rank: int) -> str:
    """linalg.generic: acc (+bias already added) -> int8 by the spec, per channel (last dim)."""
    dims = ", ".join(f"d{i}" for i in range(rank))
    ident = f"affine_map<({dims}) -> ({dims})>"
    chan = f"affine_map<({dims}) -> (d{rank - 1})>"
    ty = "x".join(map(str, shape))
    return f"""
  %y = linalg.generic {{indexing_maps = [{ident}, {chan}, {chan}, {ident}], iterator_types = [{", ".join(['"parallel"'] * rank)}]}}
      ins({acc}, %mult, %shift : tensor<{ty}xi32>, tensor<{c}xi32>, tensor<{c}xi32>) outs(%ey : tensor<{ty}xi8>) {{
  ^bb0(%a: i32, %m: i32, %s: i32, %o: i8):
    %c0 = arith.constant 0 : i32
    %c1 = arith.constant 1 : i32
    %left = arith.maxsi %s, %c0 : i32
    %ns = arith.subi %c0, %s : i32
    %right = arith.maxsi %ns, %c0 : i32
    %al = arith.shli %a, %left : i32
    %a64 = arith.extsi %al : i32 to i64
    %m64 = arith.extsi %m : i32 to i64
    %ab = arith.muli %a64, %m64 : i64
    %z64 = arith.constant 0 : i64
    %pos = arith.cmpi sge, %ab, %z64 : i64
    %np = arith.constant 1073741824 : i64
    %nn = arith.constant -1073741823 : i64
    %nudge = arith.select %pos, %np, %nn : i64
    %num = arith.addi %ab, %nudge : i64
    %d = arith.constant 2147483648 : i64
    %hi = arith.divsi %num, %d : i64
    %xr = arith.trunci %hi : i64 to i32
    %p2 = arith.shli %c1, %right : i32
    %mask = arith.subi %p2, %c1 : i32
    %rem = arith.andi %xr, %mask : i32
    %half = arith.shrsi %mask, %c1 : i32
    %neg = arith.cmpi slt, %xr, %c0 : i32
    %negi = arith.extui %neg : i1 to i32
    %thr = arith.addi %half, %negi : i32
    %sh = arith.shrsi %xr, %right : i32
    %up = arith.cmpi sgt, %rem, %thr : i32
    %upi = arith.extui %up : i1 to i32
    %r = arith.addi %sh, %upi : i32
    %yz = arith.constant {q["y_zero"]} : i32
    %lo = arith.constant {q["act_min"]} : i32
    %hiv = arith.constant {q["act_max"]} : i32
    %r1 = arith.addi %r, %yz : i32
    %r2 = arith.maxsi %r1, %lo : i32
    %r3 = arith.minsi %r2, %hiv : i32
    %r8 = arith.trunci %r3 : i32 to i8
    linalg.yield %r8 : i8
  }} -> tensor<{ty}xi8>
  return %y : tensor<{ty}xi8>
}}
"""


def pw_mlir(x_shape, w, bias, q) -> str:
    p, k = x_shape
    n = w.shape[1]
    return f"""
func.func @predict(%x: tensor<{p}x{k}xi8>) -> tensor<{p}x{n}xi8> {{
  %w = arith.constant {_dense(w, "i8")}
  %bias = arith.constant {_dense(bias, "i32")}
  %mult = arith.constant {_dense(q["mult"], "i32")}
  %shift = arith.constant {_dense(q["shift"], "i32")}
  %xz = arith.constant {q["x_zero"]} : i32
  %wz = arith.constant 0 : i32
  %e = tensor.empty() : tensor<{p}x{n}xi32>
  %b = linalg.generic {{indexing_maps = [affine_map<(i, j) -> (j)>, affine_map<(i, j) -> (i, j)>], iterator_types = ["parallel", "parallel"]}}
      ins(%bias : tensor<{n}xi32>) outs(%e : tensor<{p}x{n}xi32>) {{
  ^bb0(%bv: i32, %o: i32):
    linalg.yield %bv : i32
  }} -> tensor<{p}x{n}xi32>
  %acc = linalg.quantized_matmul ins(%x, %w, %xz, %wz : tensor<{p}x{k}xi8>, tensor<{k}x{n}xi8>, i32, i32) outs(%b : tensor<{p}x{n}xi32>) -> tensor<{p}x{n}xi32>
  %ey = tensor.empty() : tensor<{p}x{n}xi8>""" + _requant_generic("%acc", [p, n], n, q, 2)


def pw_ttk_mlir(x_shape, w, bias, q) -> str:
    """The pointwise layer of `pw_mlir` as one IREE dispatch of our kernel, as
    `to-linalg{kernels=ttk}` emits it for a qconv2d (lowering/conversions/tinytrain_to_linalg/
    kernels.py; written out here for the bench's raw quantization parameters): weights packed
    [C_out][C_in] here, the layer's shapes, zero points and clamp baked into the workgroup
    function, the scratch a second (transient) result of the dispatch."""
    from tinytrain.lowering.conversions.tinytrain_to_linalg.kernels import conv1x1_scratch_bytes

    p, k = x_shape
    n = w.shape[1]
    scratch = conv1x1_scratch_bytes(k, n)
    w_oi = np.ascontiguousarray(w.T).ravel()
    sig = [f"memref<{m}x{t}>" for m, t in ((p * k, "i8"), (n * k, "i8"), (n, "i32"), (n, "i32"),
                                           (n, "i32"), (p * n, "i8"), (scratch, "i8"))]
    names = ["x", "w", "b", "m", "s", "y", "scr"]
    consts = {"p": p, "k": k, "n": n, "xz": q["x_zero"], "yz": q["y_zero"], "lo": q["act_min"],
              "hi": q["act_max"]}
    ctypes = ", ".join(sig + ["index"] * len(consts))
    subspans = "\n".join(f"      %{nm}m = stream.binding.subspan %{nm}[%c0] : !stream.binding -> {t}"
                          for nm, t in zip(names, sig))
    cdefs = "\n".join(f"      %{c} = arith.constant {v} : index" for c, v in consts.items())
    args = ", ".join([f"%{nm}m" for nm in names] + [f"%{c}" for c in consts])
    return f"""
stream.executable private @ttk {{
  stream.executable.export public @conv1x1_s8 workgroups() -> (index, index, index) {{
    %c1 = arith.constant 1 : index
    stream.return %c1, %c1, %c1 : index, index, index
  }}
  builtin.module {{
    func.func private @ttk_iree_conv1x1_s8({ctypes}) attributes {{hal.import.static}}
    func.func @conv1x1_s8({", ".join(f"%{nm}: !stream.binding" for nm in names)}) {{
      %c0 = arith.constant 0 : index
{subspans}
{cdefs}
      func.call @ttk_iree_conv1x1_s8({args}) : ({ctypes}) -> ()
      return
    }}
  }}
}}
func.func @predict(%x: tensor<{p}x{k}xi8>) -> tensor<{p}x{n}xi8> {{
  %w = arith.constant {_dense(w_oi, "i8")}
  %bias = arith.constant {_dense(bias, "i32")}
  %mult = arith.constant {_dense(q["mult"], "i32")}
  %shift = arith.constant {_dense(q["shift"], "i32")}
  %xf = tensor.collapse_shape %x [[0, 1]] : tensor<{p}x{k}xi8> into tensor<{p * k}xi8>
  %y:2 = flow.dispatch @ttk::@conv1x1_s8(%xf, %w, %bias, %mult, %shift) : (tensor<{p * k}xi8>, tensor<{n * k}xi8>, tensor<{n}xi32>, tensor<{n}xi32>, tensor<{n}xi32>) -> (tensor<{p * n}xi8>, tensor<{scratch}xi8>)
  %ye = tensor.expand_shape %y#0 [[0, 1]] output_shape [{p}, {n}] : tensor<{p * n}xi8> into tensor<{p}x{n}xi8>
  return %ye : tensor<{p}x{n}xi8>
}}
"""


def dw_mlir(x_shape, w, k, stride, bias, q) -> str:
    h, wd, c = x_shape
    pad = (k - 1) // 2
    oh, ow = oracle.out_size(h, k, stride), oracle.out_size(wd, k, stride)
    hp, wp = h + 2 * pad, wd + 2 * pad
    return f"""
func.func @predict(%x: tensor<1x{h}x{wd}x{c}xi8>) -> tensor<1x{oh}x{ow}x{c}xi8> {{
  %w = arith.constant {_dense(w.reshape(k, k, c), "i8")}
  %bias = arith.constant {_dense(bias, "i32")}
  %mult = arith.constant {_dense(q["mult"], "i32")}
  %shift = arith.constant {_dense(q["shift"], "i32")}
  %xz = arith.constant {q["x_zero"]} : i32
  %xz8 = arith.constant {q["x_zero"]} : i8
  %wz = arith.constant 0 : i32
  %xp = tensor.pad %x low[0, {pad}, {pad}, 0] high[0, {pad}, {pad}, 0] {{
  ^bb0(%i0: index, %i1: index, %i2: index, %i3: index):
    tensor.yield %xz8 : i8
  }} : tensor<1x{h}x{wd}x{c}xi8> to tensor<1x{hp}x{wp}x{c}xi8>
  %e = tensor.empty() : tensor<1x{oh}x{ow}x{c}xi32>
  %b = linalg.generic {{indexing_maps = [affine_map<(n, i, j, c) -> (c)>, affine_map<(n, i, j, c) -> (n, i, j, c)>], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}}
      ins(%bias : tensor<{c}xi32>) outs(%e : tensor<1x{oh}x{ow}x{c}xi32>) {{
  ^bb0(%bv: i32, %o: i32):
    linalg.yield %bv : i32
  }} -> tensor<1x{oh}x{ow}x{c}xi32>
  %acc = linalg.depthwise_conv_2d_nhwc_hwc_q {{dilations = dense<1> : tensor<2xi64>, strides = dense<{stride}> : tensor<2xi64>}}
      ins(%xp, %w, %xz, %wz : tensor<1x{hp}x{wp}x{c}xi8>, tensor<{k}x{k}x{c}xi8>, i32, i32) outs(%b : tensor<1x{oh}x{ow}x{c}xi32>) -> tensor<1x{oh}x{ow}x{c}xi32>
  %ey = tensor.empty() : tensor<1x{oh}x{ow}x{c}xi8>""" + _requant_generic("%acc", [1, oh, ow, c], c, q, 4)


#: Our kernels as the firmware links them when a dispatch calls one (`pw_ttk_mlir`).
TTK_SOURCES = [tk.KERNELS / "src" / "ttk_s8.c", tk.KERNELS / "src" / "ttk_iree.c"]


#: The model-independent C of the one-layer firmware: our kernels, runtime and board support.
SUPPORT_SOURCES = [*TTK_SOURCES, *[tk.RUNTIME / "src" / f for f in ("model.c", "train.c", "status.c")],
                   *[tk.BOARD_DIR / f for f in ("startup.c", "semihost.c", "timer.c", "mpu.c")]]
_CFLAGS = ["-std=c99", "-O2", "-ffreestanding", "-ffunction-sections", "-fdata-sections"]


@functools.lru_cache(maxsize=None)
def _support_objects(target: str) -> tuple[str, ...]:
    """`SUPPORT_SOURCES` compiled once per process and target (gcc spends ~10 s on ttk_s8.c, and
    every `build_and_run` links the same objects); removed at exit."""
    cpu, _ = tk.BOARDS[tk.TARGET_BOARD[target]]
    out = Path(tempfile.mkdtemp(prefix=f"ttk-support-{target}-"))
    atexit.register(shutil.rmtree, out, True)
    objs = []
    for i, src in enumerate(SUPPORT_SOURCES):
        obj = out / f"{i}_{src.stem}.o"
        cmd = ["arm-none-eabi-gcc", *cpu, *_CFLAGS, f"-I{tk.RUNTIME / 'include'}", f"-I{tk.BOARD_DIR}",
               f"-I{tk.KERNELS / 'include'}", "-c", str(src), "-o", str(obj)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"compiling {src.name} failed:\n{proc.stderr[-3000:]}")
        objs.append(str(obj))
    return tuple(objs)


def build_and_run(text: str, x: np.ndarray, out_shape, work: Path, target: str, out_dtype=np.int8):
    """Compile the one-layer `@predict` `text` into the static library, link it with our
    runtime (and our kernels, for a dispatch that calls one), run it once in QEMU: returns
    (instructions of the tt_run call, output)."""
    from tinytrain.lowering.cortexm import iree_static

    mod = iree_static.build_static_module(text, work, target=target, prefix="k", sram_bytes=None)
    board = tk.TARGET_BOARD[target]
    cpu, hz = tk.BOARDS[board]
    bd = tk.BOARD_DIR
    elf = work / "iree_kernel.elf"
    cmd = ["arm-none-eabi-gcc", *cpu, *_CFLAGS, f"-I{tk.RUNTIME / 'include'}", f"-I{bd}", f"-I{work}",
           "-nostartfiles", "--specs=nano.specs", f"-T{bd / 'mps2.ld'}", "-Wl,--gc-sections",
           "-Wl,-z,noexecstack", "-Wl,--defsym=__ram_size=1536K", "-Wl,--defsym=__stack_size=8192",
           f"-I{tk.KERNELS / 'include'}",
           "-o", str(elf), str(tk.KERNELS / "test" / "ttk_iree_main.c"), str(mod.c_path),
           *_support_objects(target), str(mod.object_path), "-lm", "-lc", "-lgcc"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"IREE firmware link failed:\n{proc.stderr[-3000:]}")
    (work / "iree_in.bin").write_bytes(np.ascontiguousarray(x).tobytes())
    q = subprocess.run(["qemu-system-arm", "-M", board, "-icount", "shift=0", "-display", "none",
                        "-monitor", "none", "-serial", "none", "-chardev", "stdio,id=sh0",
                        "-semihosting-config", "enable=on,target=native,chardev=sh0",
                        "-kernel", str(elf)], cwd=work, capture_output=True, text=True, timeout=1200,
                       stdin=subprocess.DEVNULL)
    log = q.stdout + q.stderr
    ticks = [int(t.split("=")[1]) for t in log.split() if t.startswith("ticks=")]
    if q.returncode != 0 or not ticks:
        raise RuntimeError(f"IREE firmware failed:\n{log[-2000:]}")
    y = np.frombuffer((work / "iree_out.bin").read_bytes(), out_dtype).reshape(out_shape)
    return ticks[0] * 1e9 / hz, y


def run(work: Path, targets) -> tuple[list, list]:
    """IREE's kernel (impl "IREE") and ours dispatched by IREE (impl "tinytrain via IREE") for a
    few layers on each target; rows as bench/cortexm_kernels.py writes them, and notes."""
    pw_layers = {}  # name -> (weights, bias, quantization) of the pointwise layers
    rng = np.random.default_rng(11)
    layers = []
    q = tk.quant_params(rng, 96, relu6="folded")
    x, w, b = tk.s8(rng, (64 * 64, 16)), tk.s8(rng, (16, 96)), tk.bias32(rng, 96)
    layers.append(("pw 16->96 @64x64", "int8 pointwise", pw_mlir(x.shape, w, b, q), x,
                   oracle.conv1x1(x, w, b, q), 64 * 64 * 16 * 96))
    pw_layers["pw 16->96 @64x64"] = (w, b, q)
    q = tk.quant_params(rng, 56, relu6=False)
    x, w, b = tk.s8(rng, (64, 336)), tk.s8(rng, (336, 56)), tk.bias32(rng, 56)
    layers.append(("pw 336->56 @8x8 (project)", "int8 pointwise", pw_mlir(x.shape, w, b, q), x,
                   oracle.conv1x1(x, w, b, q), 64 * 336 * 56))
    pw_layers["pw 336->56 @8x8 (project)"] = (w, b, q)
    q = tk.quant_params(rng, 96, relu6="folded")
    x, w, b = tk.s8(rng, (32, 32, 96)), tk.s8(rng, (3, 3, 1, 96)), tk.bias32(rng, 96)
    layers.append(("dw3x3 s1 C96 @32x32", "int8 depthwise", dw_mlir(x.shape, w, 3, 1, b, q),
                   x[None], oracle.dwconv(x, w, 3, 1, b, q)[None], 32 * 32 * 96 * 9))
    q = tk.quant_params(rng, 48, relu6="folded")
    x, w, b = tk.s8(rng, (64, 64, 48)), tk.s8(rng, (3, 3, 1, 48)), tk.bias32(rng, 48)
    layers.append(("dw3x3 s2 C48 @64x64 (features.2)", "int8 depthwise",
                   dw_mlir(x.shape, w, 3, 2, b, q), x[None], oracle.dwconv(x, w, 3, 2, b, q)[None],
                   32 * 32 * 48 * 9))
    # Our pointwise kernel as an IREE dispatch (pw_ttk_mlir) on the same layers and inputs.
    for name, family, _, x, ref, macs in list(layers[:2]):
        w, b, q = pw_layers[name]
        layers.append((name, "int8 pointwise (tinytrain via IREE dispatch)", pw_ttk_mlir(x.shape, w, b, q),
                       x, ref, macs))
    rows, notes = [], []
    for li, (name, family, text, x, ref, macs) in enumerate(layers):
        for target in targets:
            d = work / f"{li}-{target}"
            d.mkdir(parents=True, exist_ok=True)
            t0 = time.time()
            try:
                insns, y = build_and_run(text, x, ref.shape, d, target)
            except Exception as e:  # noqa: BLE001 - reported, the rest of the bench goes on
                notes.append(f"IREE {name} on {target}: not built ({type(e).__name__}: {str(e)[:300]})")
                continue
            impl = "tinytrain via IREE" if "via IREE" in family else "IREE"
            rows.append({"kernel": name, "family": family.split(" (")[0], "impl": impl, "target": target,
                         "board": tk.TARGET_BOARD[target], "macs": macs, "instructions": int(insns),
                         "instr_per_mac": round(insns / macs, 3),
                         "output_matches_oracle": bool(np.array_equal(y, ref))})
            print(f"[iree] {name} {target}: {insns / macs:.3f} instr/MAC ({time.time() - t0:.1f} s)",
                  flush=True)
    notes.append("IREE rows: iree-compile 3.13 static library with the project's cortex-m4/m7 "
                 "flags (+dsp), linalg.quantized_matmul / depthwise_conv_2d_nhwc_hwc_q + the "
                 "requantization as an i64 linalg.generic; timed around tt_run of the one-layer "
                 "@predict (includes the schedule's fills/copies, e.g. the padded input).")
    notes.append("tinytrain via IREE rows: the same one-layer @predict with the conv as one IREE "
                 "dispatch (stream.executable, hal.import.static) calling our kernel "
                 "(runtime/kernels/src/ttk_iree.c), weights packed at compile time, scratch a "
                 "transient result; timed like the IREE rows.")
    return rows, notes
