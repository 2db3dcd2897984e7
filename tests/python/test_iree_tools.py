"""The IREE boundary shared by both backends (lowering/iree_tools.py): tools come from the pinned
wheels only, another IREE version is a clear CompileError, and an iree-compile failure or crash
names a reproducer file holding the input MLIR and the command line."""

import importlib.metadata
import os
import re
import sys
import tomllib
from pathlib import Path

import pytest

from tinytrain.errors import CompileError
from tinytrain.lowering import iree_tools
from tinytrain.lowering.cortexm import iree_static
from tinytrain.lowering.host import iree_host

ROOT = Path(__file__).resolve().parents[2]


def _pyproject_pin(dist: str) -> str:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pins = [d.split("==")[1] for d in deps if d.split("==")[0].strip() == dist]
    assert len(pins) == 1, f"pyproject.toml must pin {dist} exactly once"
    return pins[0]


@pytest.mark.parametrize("dist", [iree_tools.COMPILER_DIST, iree_tools.RUNTIME_DIST])
def test_the_pin_is_the_one_in_pyproject(dist):
    assert iree_tools.pinned_version(dist) == _pyproject_pin(dist)


def test_the_installed_compiler_is_the_pinned_one():
    required = _pyproject_pin(iree_tools.COMPILER_DIST)
    assert iree_tools.check_iree_version() == required
    path = Path(iree_tools.iree_tool("iree-compile"))
    files = {Path(f.locate()).resolve() for f in importlib.metadata.files(iree_tools.COMPILER_DIST)}
    assert path.resolve() in files, f"{path} is not a file of the installed {iree_tools.COMPILER_DIST}"
    assert iree_tools._tool_release(str(path)) == required.split("rc")[0]


def _fake_tool(folder: Path, name: str, body: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)
    return path


def test_tools_are_never_taken_from_path(tmp_path, monkeypatch):
    for name in ("iree-compile", "iree-run-module"):
        _fake_tool(tmp_path, name, "echo 'IREE compiler version 3.13.0 @ fake'")
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("IREE_TOOL_PATH", str(tmp_path))
    for name, dist in (("iree-compile", iree_tools.COMPILER_DIST),
                       ("iree-run-module", iree_tools.RUNTIME_DIST)):
        found = Path(iree_tools.iree_tool(name))
        assert found.parent != tmp_path
        files = {Path(f.locate()).resolve() for f in importlib.metadata.files(dist)}
        assert found.resolve() in files, f"{name}: {found} does not belong to {dist}"


def test_another_installed_iree_version_is_a_clear_compile_error(monkeypatch, tmp_path):
    real = importlib.metadata.version
    monkeypatch.setattr(iree_tools.importlib.metadata, "version",
                        lambda d: "3.14.0" if d == iree_tools.COMPILER_DIST else real(d))
    required = _pyproject_pin(iree_tools.COMPILER_DIST)
    expect = rf"iree-base-compiler 3\.14\.0 is installed.*requires exactly iree-base-compiler=={re.escape(required)}"
    with pytest.raises(iree_tools.IreeVersionMismatch, match=expect) as e:
        iree_host.compile_host("func.func @f() { return }")
    assert isinstance(e.value, CompileError) and e.value.stage == "iree-version"
    with pytest.raises(iree_tools.IreeVersionMismatch, match=expect):
        iree_static.build_static_module("func.func @train_step() { return }", tmp_path)


def test_a_compiler_binary_of_another_release_is_refused(tmp_path):
    fake = _fake_tool(tmp_path, "iree-compile", "echo 'IREE (https://iree.dev):'; "
                      "echo '  IREE compiler version 3.12.1rc20260101 @ 0123abc'")
    with pytest.raises(iree_tools.IreeVersionMismatch,
                       match=rf"{re.escape(str(fake))} is IREE compiler 3\.12\.1, but tinytrain requires "
                             rf"iree-base-compiler=={re.escape(_pyproject_pin(iree_tools.COMPILER_DIST))}"):
        iree_tools.check_tool_version(str(fake))


BAD_MLIR = "func.func @train_step(%x: tensor<4xf32>) -> tensor<4xf32> {\n  return %y : tensor<4xf32>\n}\n"


def _check_reproducer(path: Path, source: str, flag: str):
    text = path.read_text()
    assert text.endswith(source)
    run = [line for line in text.splitlines() if line.startswith("// RUN: iree-compile %s ")]
    assert len(run) == 1 and flag in run[0], text[:600]


def test_iree_compile_diagnostics_are_a_compile_error_with_a_reproducer(tmp_path):
    with pytest.raises(CompileError, match="iree-compile failed .*cortex-m4 static library") as e:
        iree_static.build_static_module(BAD_MLIR, tmp_path / "m4", prefix="bad")
    assert not isinstance(e.value, iree_tools.InternalCompilerError)
    assert e.value.stage == "iree-compile" and e.value.ir_text == BAD_MLIR
    assert "use of undeclared SSA value name" in str(e.value)
    repro = Path(re.search(r"reproducer \(input MLIR \+ command line\): (\S+)", str(e.value)).group(1))
    assert repro.parent == tmp_path / "m4"
    _check_reproducer(repro, BAD_MLIR, "--iree-llvmcpu-link-static")

    with pytest.raises(CompileError, match="host .vmfb") as e:
        iree_host.compile_host(BAD_MLIR, repro_dir=tmp_path / "host")
    repro = Path(re.search(r"reproducer \(input MLIR \+ command line\): (\S+)", str(e.value)).group(1))
    assert repro.parent == tmp_path / "host"
    _check_reproducer(repro, BAD_MLIR, "--iree-hal-target-device=local")


@pytest.mark.parametrize("body, reason", [
    ("kill -SEGV $$", "killed by signal SIGSEGV"),
    ("echo 'PLEASE submit a bug report to https://github.com/llvm/llvm-project/issues/' >&2; exit 1",
     "exit code 1"),
])
def test_an_iree_compile_crash_is_an_internal_error_with_a_reproducer(tmp_path, monkeypatch, body, reason):
    crashing = _fake_tool(tmp_path / "bin", "iree-compile", body)
    monkeypatch.setattr(iree_tools, "iree_tool", lambda name: str(crashing))
    src = tmp_path / "model.linalg.mlir"
    src.write_text(BAD_MLIR)
    with pytest.raises(iree_tools.InternalCompilerError) as e:
        iree_tools.run_iree_compile(src, ["--iree-hal-target-device=local"], tmp_path / "out.vmfb",
                                    what="the host .vmfb", repro_dir=tmp_path / "repro")
    msg = str(e.value)
    assert msg.startswith(f"internal compiler failure: iree-compile crashed ({reason})")
    assert "bug in tinytrain or IREE" in msg and str(e.value.reproducer) in msg
    assert isinstance(e.value, CompileError) and e.value.stage == "iree-compile"
    assert e.value.reproducer.parent == tmp_path / "repro"
    _check_reproducer(e.value.reproducer, BAD_MLIR, "--iree-hal-target-device=local")


def test_there_is_one_tool_locator():
    """Both backends get iree-compile from iree_tools; nothing else in lowering/ looks for it (the
    one other tool lookup is ccache's, for the firmware's C compiles)."""
    offenders = []
    for path in (ROOT / "lowering").rglob("*.py"):
        if path.name == "iree_tools.py":
            continue
        for line in path.read_text().splitlines():
            if ("shutil.which" in line and 'which("ccache")' not in line) or "sys.executable" in line \
                    or "find_tool" in line:
                offenders.append(f"{path.relative_to(ROOT)}: {line.strip()}")
    assert offenders == []
    assert iree_host.iree_tool is iree_tools.iree_tool
    assert sys.modules[iree_static.__name__].run_iree_compile is iree_tools.run_iree_compile


SMALL_MLIR = """func.func @f(%a: tensor<8x16xf32>, %b: tensor<16x4xf32>) -> tensor<8x4xf32> {
  %z = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<8x4xf32>
  %f = linalg.fill ins(%z : f32) outs(%e : tensor<8x4xf32>) -> tensor<8x4xf32>
  %m = linalg.matmul ins(%a, %b : tensor<8x16xf32>, tensor<16x4xf32>) outs(%f : tensor<8x4xf32>) -> tensor<8x4xf32>
  return %m : tensor<8x4xf32>
}
"""


def test_iree_compile_skips_the_per_pass_verifier_and_builds_the_same_module(tmp_path, monkeypatch):
    """By default iree-compile runs with `--verify=false` (a third of its time); TINYTRAIN_IREE_VERIFY=1
    turns the verifier on; the module is byte-identical either way; a wrong value is refused."""
    seen, real_run = [], iree_tools.subprocess.run
    monkeypatch.setattr(iree_tools.subprocess, "run", lambda cmd, **kw: (seen.append(cmd), real_run(cmd, **kw))[1])
    src = tmp_path / "m.mlir"
    src.write_text(SMALL_MLIR)
    monkeypatch.delenv(iree_tools.VERIFY_ENV, raising=False)
    iree_tools.run_iree_compile(src, iree_host.HOST_FLAGS, tmp_path / "a.vmfb", what="a test module")
    monkeypatch.setenv(iree_tools.VERIFY_ENV, "1")
    iree_tools.run_iree_compile(src, iree_host.HOST_FLAGS, tmp_path / "b.vmfb", what="a test module")
    seen = [c for c in seen if "-o" in c]  # (not the version check of the first iree_tool call)
    assert "--verify=false" in seen[0] and "--verify=true" in seen[1] and len(seen) == 2
    assert (tmp_path / "a.vmfb").read_bytes() == (tmp_path / "b.vmfb").read_bytes()
    monkeypatch.setenv(iree_tools.VERIFY_ENV, "sometimes")
    with pytest.raises(CompileError, match="TINYTRAIN_IREE_VERIFY='sometimes': expected 1"):
        iree_tools.run_iree_compile(src, iree_host.HOST_FLAGS, tmp_path / "c.vmfb", what="a test module")


@pytest.mark.parametrize("env, runs", [(None, ["--verify=false", "--verify=true"]), ("1", ["--verify=true"])])
def test_a_failed_compile_is_run_again_with_the_verifier(tmp_path, monkeypatch, env, runs):
    """The diagnostics and the reproducer of a failure come from a run with the per-pass verifier
    (it names the pass that broke the IR); with TINYTRAIN_IREE_VERIFY=1 there is one run only."""
    log = tmp_path / "args.log"
    failing = _fake_tool(tmp_path / "bin", "iree-compile",
                         f'echo "$@" >> {log}; echo "error: failed in run $(wc -l < {log})" >&2; exit 1')
    monkeypatch.setattr(iree_tools, "iree_tool", lambda name: str(failing))
    if env is None:
        monkeypatch.delenv(iree_tools.VERIFY_ENV, raising=False)
    else:
        monkeypatch.setenv(iree_tools.VERIFY_ENV, env)
    src = tmp_path / "model.linalg.mlir"
    src.write_text(BAD_MLIR)
    with pytest.raises(CompileError) as e:
        iree_tools.run_iree_compile(src, ["--iree-hal-target-device=local"], tmp_path / "out.vmfb",
                                    what="the host .vmfb", repro_dir=tmp_path / "repro")
    lines = log.read_text().splitlines()
    assert [next(a for a in ln.split() if a.startswith("--verify=")) for ln in lines] == runs
    assert f"error: failed in run {len(runs)}" in str(e.value)
    repro = Path(re.search(r"reproducer \(input MLIR \+ command line\): (\S+)", str(e.value)).group(1))
    _check_reproducer(repro, BAD_MLIR, "--verify=true")
