"""The compile cache of the host `.vmfb` (lowering/compile_cache.py): a second compile of the same
text and flags is a cache hit with the same bytes and runs no iree-compile; another text, another
flag or another compiler misses; a broken cache folder costs only the compile; `off` disables it.
The firmware's C compiles go through ccache with its store in the same folder: a second firmware
project of another model compiles none of the runtime again, and the stack bound still reads
every function's `-fstack-usage` record. The Cortex-M static library is cached too (iree-compile runs
in the module's folder with relative paths, so its outputs do not depend on the folder): a second
build in another folder runs no iree-compile and writes the same files, fresh, and an optional
flag iree-compile had to drop is dropped (with its warning) again."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tinytrain.lowering import compile_cache
from tinytrain.lowering.host import iree_host
from tinytrain.lowering.host.iree_host import HostModule, compile_host

TEXT = """func.func @f(%x: tensor<4xf32>) -> tensor<4xf32> {
  %y = arith.addf %x, %x : tensor<4xf32>
  return %y : tensor<4xf32>
}
"""


@pytest.fixture
def compiles(monkeypatch, tmp_path):
    """The cache in a fresh folder; counts iree-compile runs."""
    monkeypatch.setenv("TINYTRAIN_COMPILE_CACHE", str(tmp_path / "cache"))
    runs = []
    real = iree_host.run_iree_compile

    def counted(*a, **k):
        runs.append(a)
        return real(*a, **k)

    monkeypatch.setattr(iree_host, "run_iree_compile", counted)
    return runs


def test_the_same_compile_is_read_from_the_cache(compiles, tmp_path):
    first = compile_host(TEXT)
    assert len(compiles) == 1 and len(list((tmp_path / "cache").iterdir())) == 1
    again = compile_host(TEXT, out_path=tmp_path / "m.vmfb")
    assert len(compiles) == 1 and again == first and (tmp_path / "m.vmfb").read_bytes() == first
    x = np.arange(4, dtype=np.float32)
    np.testing.assert_array_equal(HostModule(again).call("f", x)[0], 2 * x)
    # a different text, a different flag: compiled
    compile_host(TEXT.replace("addf %x, %x", "mulf %x, %x"))
    compile_host(TEXT, extra_flags=("--iree-opt-const-eval=false",))
    assert len(compiles) == 3


def test_another_compiler_binary_misses(compiles, monkeypatch):
    compile_host(TEXT)
    key_parts = []
    real = compile_cache._key
    monkeypatch.setattr(compile_cache, "_key", lambda *a: key_parts.append(a) or real(*a))
    monkeypatch.setattr(iree_host.importlib.metadata, "version", lambda d: "0.0.0-other")
    monkeypatch.setattr(iree_host, "iree_tool", lambda name: "/elsewhere/iree-compile")
    with pytest.raises(Exception):  # a miss: it runs the (missing) other compiler
        compile_host(TEXT)
    assert key_parts and key_parts[0][:2] == ("/elsewhere/iree-compile", "0.0.0-other")
    assert len(compiles) == 2


def test_an_unwritable_or_corrupt_cache_only_costs_the_compile(compiles, monkeypatch, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("TINYTRAIN_COMPILE_CACHE", str(blocker))
    a = compile_host(TEXT)
    b = compile_host(TEXT)
    assert len(compiles) == 2
    x = np.arange(4, dtype=np.float32)
    for m in (a, b):
        np.testing.assert_array_equal(HostModule(m).call("f", x)[0], 2 * x)
    # an empty entry (a crash between create and write cannot leave one, but a full disk can) is a miss
    monkeypatch.setenv("TINYTRAIN_COMPILE_CACHE", str(tmp_path / "c2"))
    compile_host(TEXT)
    (entry,) = list((tmp_path / "c2").iterdir())
    entry.write_bytes(b"")
    compile_host(TEXT)
    assert len(compiles) == 4 and entry.stat().st_size > 0


def test_off_disables_it_and_the_folder_is_bounded(compiles, monkeypatch, tmp_path):
    monkeypatch.setenv("TINYTRAIN_COMPILE_CACHE", "off")
    compile_host(TEXT)
    compile_host(TEXT)
    assert len(compiles) == 2 and not (tmp_path / "cache").exists()
    monkeypatch.setenv("TINYTRAIN_COMPILE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(compile_cache, "MAX_ENTRIES", 2)
    for op in ("addf", "mulf", "subf"):
        compile_host(TEXT.replace("addf", op))
    names = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert len(names) == 2
    (tmp_path / "cache" / "ccache").mkdir()  # ccache's store: never evicted as an entry
    compile_host(TEXT.replace("addf", "maximumf"))
    assert (tmp_path / "cache" / "ccache").is_dir()
    assert len([p for p in (tmp_path / "cache").iterdir() if p.is_file()]) == 2
    # the bytes are bounded too: the least recently used entries go until the rest fit (the entry
    # just stored stays, even alone over the bound)
    old = {p.name for p in (tmp_path / "cache").iterdir() if p.is_file()}
    monkeypatch.setattr(compile_cache, "MAX_ENTRIES", 10)
    monkeypatch.setattr(compile_cache, "MAX_BYTES", 1)
    compile_host(TEXT.replace("addf", "minimumf"))
    left = [p for p in (tmp_path / "cache").iterdir() if p.is_file()]
    assert len(left) == 1 and left[0].name not in old


def test_the_default_folder(monkeypatch, tmp_path):
    monkeypatch.delenv("TINYTRAIN_COMPILE_CACHE", raising=False)
    monkeypatch.setenv("TINYTRAIN_CACHE", str(tmp_path))
    assert compile_cache.cache_dir() == tmp_path / "compile-cache"
    monkeypatch.setenv("TINYTRAIN_COMPILE_CACHE", "0")
    assert compile_cache.cache_dir() is None


@pytest.mark.skipif(shutil.which("ccache") is None or shutil.which("arm-none-eabi-gcc") is None,
                    reason="needs ccache and arm-none-eabi-gcc (make setup installs them)")
def test_firmware_c_compiles_go_through_ccache(monkeypatch, tmp_path):
    from tinytrain.lowering.cortexm import firmware, iree_static

    monkeypatch.setenv("TINYTRAIN_COMPILE_CACHE", "off")
    assert compile_cache.ccache_settings(tmp_path) == ([], {})
    monkeypatch.setenv("TINYTRAIN_COMPILE_CACHE", str(tmp_path / "cache"))
    launcher, env = compile_cache.ccache_settings(tmp_path / "proj")
    assert launcher == [f"-DCMAKE_C_COMPILER_LAUNCHER={shutil.which('ccache')}"]
    assert env["CCACHE_DIR"] == str(tmp_path / "cache" / "ccache")
    assert env["CCACHE_BASEDIR"] == str((tmp_path / "proj").resolve())

    def stats() -> dict:
        out = subprocess.run(["ccache", "--print-stats"], env={**os.environ, **env}, capture_output=True,
                             text=True, check=True).stdout
        return dict(line.split("\t") for line in out.splitlines() if "\t" in line)

    bounds = []
    for i, text in enumerate((TEXT, TEXT.replace("addf", "mulf"))):  # two models, two projects
        mod = iree_static.build_static_module(text.replace("@f", "@predict"), tmp_path / f"m{i}",
                                              target="cortex-m4", sram_bytes=None)
        fw = firmware.build_firmware(mod, tmp_path / f"fw{i}", board="mps2-an386", sram_kb=256)
        bounds.append(fw.stack_bound)
        if i == 0:
            first = stats()
    second = stats()
    misses = int(second["direct_cache_miss"]) - int(first["direct_cache_miss"])
    hits = int(second["direct_cache_hit"]) - int(first["direct_cache_hit"])
    assert misses <= 1 and hits >= 5, (hits, misses)  # only the model's generated C compiles again
    assert bounds[0] is not None and bounds[0] == bounds[1]  # the .su files came back from the cache


def _static_files(folder):
    """Every file of a module folder but the reproducer of a failed attempt (with an optional flag)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and not p.name.startswith("iree-compile-repro-")}


def test_the_same_static_library_is_read_from_the_cache(monkeypatch, tmp_path):
    import time
    import warnings

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "firmware"))
    import cortexm_programs as models
    from tinytrain.lowering.cortexm import iree_static

    monkeypatch.setenv("TINYTRAIN_COMPILE_CACHE", str(tmp_path / "cache"))
    runs, real = [], iree_static.run_iree_compile
    monkeypatch.setattr(iree_static, "run_iree_compile", lambda *a, **k: (runs.append(a), real(*a, **k))[1])
    text = models.sgd_linear_mlir(8, 4, 0.01)
    with pytest.warns(UserWarning, match="iree-compile failed with --tinytrain-no-such-flag"):
        a = iree_static.build_static_module(text, tmp_path / "a", target="cortex-m4", sram_bytes=None,
                                            optional_flags=("--tinytrain-no-such-flag",))
    assert len(runs) == 2  # with the optional flag (fails), then without
    before = time.time() - 1
    with pytest.warns(UserWarning, match="iree-compile failed with --tinytrain-no-such-flag"):
        b = iree_static.build_static_module(text, tmp_path / "b", target="cortex-m4", sram_bytes=None,
                                            optional_flags=("--tinytrain-no-such-flag",))
    assert len(runs) == 2 and b.dropped_flags == a.dropped_flags and b.arena_bytes == a.arena_bytes
    fa, fb = _static_files(tmp_path / "a"), _static_files(tmp_path / "b")
    assert fa == fb and {f"{a.prefix}_lib.o", f"{a.prefix}.hal.mlir", f"{a.prefix}_model.c"} <= set(fa), sorted(fa)
    assert any(k.startswith("exe/") for k in fb) and any(k.startswith("sources/") for k in fb)
    assert b.object_path.stat().st_mtime >= before  # fresh: a firmware build in that folder relinks
    # another target, another text: compiled
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        iree_static.build_static_module(text, tmp_path / "c", target="cortex-m7", sram_bytes=None)
        iree_static.build_static_module(models.sgd_linear_mlir(8, 5, 0.01), tmp_path / "d", target="cortex-m4",
                                        sram_bytes=None)
    assert len(runs) == 4
    # a damaged entry (a truncated archive) costs only the compile, like any broken cache entry
    for entry in (tmp_path / "cache").glob("*.static.tar"):
        entry.write_bytes(entry.read_bytes()[:100])
    with pytest.warns(UserWarning, match="iree-compile failed with --tinytrain-no-such-flag"):
        e = iree_static.build_static_module(text, tmp_path / "e", target="cortex-m4", sram_bytes=None,
                                            optional_flags=("--tinytrain-no-such-flag",))
    assert len(runs) == 6 and e.dropped_flags == a.dropped_flags
    assert _static_files(tmp_path / "e") == fb
    # ... and is replaced by that compile's archive: the next build reads it
    with pytest.warns(UserWarning, match="iree-compile failed with --tinytrain-no-such-flag"):
        iree_static.build_static_module(text, tmp_path / "f", target="cortex-m4", sram_bytes=None,
                                        optional_flags=("--tinytrain-no-such-flag",))
    assert len(runs) == 6 and _static_files(tmp_path / "f") == fb


def test_our_kernels_program_shares_the_host_compile_of_irees(monkeypatch):
    """With `kernels="ttk"` the firmware has its own lowering, but the host program (the device's
    reference) is the same text as with `kernels="iree"`, resource names included (the host module
    is lowered before the device clone, so it gets the plain `param_<name>` constants): the
    compile cache serves both with one host compile. No firmware is built here."""
    from tinytrain import compiler, int8
    from tinytrain.pretrained import load_mcu_model
    from tinytrain.pretrained.graph import build_forward, truncate

    monkeypatch.setattr(compiler, "_build_firmware", lambda *a, **k: None)
    texts = {}
    for kernels in ("iree", "ttk"):
        g = build_forward(truncate(load_mcu_model("mbv2-w0.35"), 2), classifier="fp32", num_classes=4,
                          input_hw=16, seed=0)
        prog = int8.compile_training(g, ["blocks.1.pointwise2.weight", "fc.weight", "fc.bias"], lr=0.05,
                                     target="cortex-m4", kernels=kernels)
        texts[kernels] = prog.stages
    assert "linalg_device" in texts["ttk"] and texts["ttk"]["linalg_device"] != texts["ttk"]["linalg"]
    assert "param_blocks_0_depthwise_weight" in texts["ttk"]["linalg"]
    assert texts["ttk"]["linalg"] == texts["iree"]["linalg"]
