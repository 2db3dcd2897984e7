"""The one place that finds IREE's command-line tools, checks their version and runs iree-compile.

Both backends (``host/iree_host.py``: llvm-cpu ``.vmfb``; ``cortexm/iree_static.py``: static
library + HAL program) compile through :func:`run_iree_compile`.

* **Location.** Tools come from the installed IREE wheels only: compiler tools from the
  ``iree-base-compiler`` package (``iree/compiler/_mlir_libs/``), runtime tools from
  ``iree-base-runtime`` (``iree/_runtime_libs/``). Neither ``PATH`` nor IREE's own
  ``IREE_TOOL_PATH`` is consulted, so a different ``iree-compile`` elsewhere on the machine is
  never picked up silently.
* **Version.** tinytrain pins IREE exactly in ``pyproject.toml`` (the single source of the pin,
  read here from tinytrain's installed metadata). The installed distribution must have exactly
  that version, and ``iree-compile --version`` must report the same release (IREE builds its
  releases from a candidate, so the binary says e.g. ``3.13.0rc20261016`` for ``3.13.0``).
  The executable-library ABI and the HAL program that ``cortexm/hal2c.py`` interprets change
  between IREE releases, so any other version is refused with :class:`IreeVersionMismatch`.
* **Failures.** A non-zero exit of iree-compile is a :class:`~tinytrain.errors.CompileError`
  (stage ``iree-compile``) carrying IREE's diagnostics; a crash (signal, LLVM/MLIR crash banner)
  is an :class:`InternalCompilerError`. Both write a reproducer file (input MLIR + command line)
  and name its path.
* **IR verifier.** iree-compile runs with ``--verify=false``: MLIR's verifier after every pass of
  IREE's pipeline took about a third of a compile (MobileNetV2-w0.35 training program: 29 s ->
  20 s) and never changes the output (the ``.vmfb`` / static library is byte-identical). The input
  is still verified when iree-compile parses it. A failed compile is run again with the verifier
  on, so its diagnostics name the pass whose output was invalid; ``TINYTRAIN_IREE_VERIFY=1``
  keeps the verifier on for every compile.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import re
import shlex
import signal
import subprocess
import tempfile
from pathlib import Path
from typing import Sequence

from tinytrain.errors import CompileError

__all__ = ["COMPILER_DIST", "RUNTIME_DIST", "IreeVersionMismatch", "InternalCompilerError",
           "pinned_version", "check_iree_version", "check_tool_version", "iree_tool",
           "run_iree_compile", "verify_flag", "VERIFY_ENV", "write_reproducer"]

COMPILER_DIST = "iree-base-compiler"
RUNTIME_DIST = "iree-base-runtime"

# tool name -> (distribution, package whose folder holds the executable)
_COMPILER_TOOLS = ("iree-compile", "iree-opt", "iree-link", "iree-lld")
_TOOL_PACKAGE = {COMPILER_DIST: "iree.compiler._mlir_libs", RUNTIME_DIST: "iree._runtime_libs"}

# What LLVM/MLIR print when they crash rather than report a diagnostic.
_CRASH_MARKERS = ("PLEASE submit a bug report", "Stack dump:", "LLVM ERROR:", "Assertion `",
                  "UNREACHABLE executed")


class IreeVersionMismatch(CompileError):
    """The installed IREE is not the version tinytrain is pinned to (message: found/required)."""

    def __init__(self, message: str):
        super().__init__(message, stage="iree-version")


class InternalCompilerError(CompileError):
    """iree-compile crashed: a bug in tinytrain or IREE, not in the user's model.
    ``reproducer`` is the file with the input MLIR and the command line."""

    def __init__(self, message: str, *, stage: str, ir_text: str | None = None,
                 reproducer: Path | None = None):
        super().__init__(message, stage=stage, ir_text=ir_text)
        self.reproducer = reproducer


def pinned_version(dist: str) -> str:
    """The exact version tinytrain requires for ``dist`` (``name==X`` in pyproject.toml)."""
    try:
        requires = importlib.metadata.requires("tinytrain") or []
    except importlib.metadata.PackageNotFoundError:
        raise CompileError("tinytrain is not installed, so its pinned IREE version is unknown: "
                           "install it with `make setup` (pip install -e .)",
                           stage="iree-version") from None
    for req in requires:
        m = re.fullmatch(r"\s*([A-Za-z0-9_.-]+)\s*==\s*([^\s;]+)\s*", req)
        if m and m.group(1).lower().replace("_", "-") == dist:
            return m.group(2)
    raise CompileError(f"tinytrain's metadata pins no exact version of {dist} "
                       f"(expected '{dist}==X' in pyproject.toml dependencies)", stage="iree-version")


def check_iree_version(dist: str = COMPILER_DIST) -> str:
    """Raise :class:`IreeVersionMismatch` unless the installed ``dist`` is the pinned version;
    return that version."""
    required = pinned_version(dist)
    try:
        found = importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        raise IreeVersionMismatch(f"{dist} is not installed; tinytrain requires {dist}=={required} "
                                  "(run `make setup`)") from None
    if found != required:
        raise IreeVersionMismatch(
            f"{dist} {found} is installed, but tinytrain requires exactly {dist}=={required}: "
            f"the IREE executable-library ABI and HAL program format differ between releases. "
            f"Install the pinned version (`pip install {dist}=={required}` or `make setup`).")
    return found


_TOOL_RELEASE: dict = {}


def _tool_release(path: str) -> str:
    """The ``X.Y.Z`` release an IREE tool reports with ``--version`` (cached per path)."""
    if path not in _TOOL_RELEASE:
        proc = subprocess.run([path, "--version"], capture_output=True, text=True)
        m = re.search(r"IREE compiler version (\d+\.\d+\.\d+)", proc.stdout + proc.stderr)
        if proc.returncode != 0 or m is None:
            raise IreeVersionMismatch(f"{path} --version did not report an IREE compiler version "
                                      f"(exit {proc.returncode}): {(proc.stdout + proc.stderr)[:300]!r}")
        _TOOL_RELEASE[path] = m.group(1)
    return _TOOL_RELEASE[path]


def check_tool_version(path: str, dist: str = COMPILER_DIST) -> None:
    """Raise :class:`IreeVersionMismatch` unless the compiler tool at ``path`` reports the
    release pinned for ``dist``."""
    required = pinned_version(dist)
    found = _tool_release(path)
    if found != required.split("rc")[0]:
        raise IreeVersionMismatch(f"{path} is IREE compiler {found}, but tinytrain requires "
                                  f"{dist}=={required}: reinstall the pinned wheel (`make setup`).")


def iree_tool(name: str) -> str:
    """Absolute path of the IREE tool ``name`` from the pinned wheels (version-checked)."""
    dist = COMPILER_DIST if name in _COMPILER_TOOLS else RUNTIME_DIST
    check_iree_version(dist)
    spec = importlib.util.find_spec(_TOOL_PACKAGE[dist])
    if spec is None or not spec.submodule_search_locations:
        raise CompileError(f"the {dist} wheel has no {_TOOL_PACKAGE[dist]} package: reinstall "
                           f"{dist}=={pinned_version(dist)} (`make setup`)", stage="iree-version")
    path = Path(list(spec.submodule_search_locations)[0]) / name
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise CompileError(f"'{name}' is not an executable of the installed {dist} wheel "
                           f"(looked for {path}); tinytrain uses only the pinned wheels' tools",
                           stage="iree-version")
    if dist == COMPILER_DIST and name == "iree-compile":
        check_tool_version(str(path), dist)
    return str(path)


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def write_reproducer(mlir_text: str, cmd: Sequence[str], input_path: Path, reason: str,
                     directory: Path | None = None, cwd: Path | None = None) -> Path:
    """Write ``mlir_text`` with the failing command line (input replaced by ``%s``; ``cwd``: the
    folder it ran in, for relative paths) as a comment header to a new file in ``directory`` (a
    fresh temporary folder if None); return its path."""
    d = Path(directory) if directory is not None else Path(tempfile.mkdtemp(prefix="tinytrain-repro-"))
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"iree-compile-repro-{input_path.stem.replace('.', '-')}.mlir"
    args = ["iree-compile", *("%s" if a == str(input_path) else a for a in cmd[1:])]
    header = [f"// Reproducer written by tinytrain: iree-compile failed ({reason}).",
              f"// IREE: {COMPILER_DIST} {importlib.metadata.version(COMPILER_DIST)} "
              f"(tool: {cmd[0]})",
              "// Replay: replace %s with this file's path"
              + (f", in the folder {cwd}:" if cwd is not None else ":"),
              f"// RUN: {shlex.join(args)}", ""]
    path.write_text("\n".join(header) + mlir_text)
    return path


#: The environment variable that keeps MLIR's verifier on after every pass of iree-compile.
VERIFY_ENV = "TINYTRAIN_IREE_VERIFY"


def verify_flag() -> str:
    """``--verify=false`` (the default) or ``--verify=true`` when ``$TINYTRAIN_IREE_VERIFY`` is 1."""
    value = os.environ.get(VERIFY_ENV, "0").strip().lower()
    if value not in ("0", "1", "", "false", "true", "no", "yes", "off", "on"):
        raise CompileError(f"{VERIFY_ENV}={value!r}: expected 1 (verify the IR after every pass of "
                           f"iree-compile) or 0 (the default: verify the input only)", stage="iree-compile")
    return "--verify=true" if value in ("1", "true", "yes", "on") else "--verify=false"


def run_iree_compile(src: Path, flags: Sequence[str], output: Path, *, what: str,
                     repro_dir: Path | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run the pinned ``iree-compile src flags... -o output`` (with :func:`verify_flag` unless
    ``flags`` set ``--verify`` themselves) in the folder ``cwd`` (default: this process's), which
    relative paths in ``src``, ``flags`` and ``output`` are taken from.

    ``what`` names the job in messages (e.g. "the cortex-m4 static library"). A failure without
    the per-pass verifier is run again with it (its diagnostics name the pass that broke the IR).
    On failure a reproducer goes to ``repro_dir`` (default: a new temporary folder) and a
    :class:`CompileError` (diagnostics) or :class:`InternalCompilerError` (crash) is raised.
    """
    src = Path(src)
    if not any(f == "--verify" or f.startswith("--verify=") for f in flags):
        flags = [*flags, verify_flag()]
    cmd = [iree_tool("iree-compile"), str(src), *flags, "-o", str(output)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd)
    if proc.returncode == 0:
        return proc
    if "--verify=false" in cmd:  # the failure again, with MLIR's verifier after every pass
        cmd = [f if f != "--verify=false" else "--verify=true" for f in cmd]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd)
        if proc.returncode == 0:  # cannot happen (the verifier only adds checks); keep its output
            return proc
    text = (Path(cwd) / src if cwd is not None else src).read_text()
    reason = _describe_exit(proc.returncode)
    diag = proc.stderr[-4000:].rstrip()
    crashed = proc.returncode < 0 or any(m in proc.stderr for m in _CRASH_MARKERS)
    repro = write_reproducer(text, cmd, src, reason, repro_dir, cwd)
    if crashed:
        raise InternalCompilerError(
            f"internal compiler failure: iree-compile crashed ({reason}) while building {what}. "
            f"This is a bug in tinytrain or IREE, not in your model; please report it with the "
            f"reproducer {repro} (input MLIR + command line).\n{diag}",
            stage="iree-compile", ir_text=text, reproducer=repro)
    raise CompileError(f"iree-compile failed ({reason}) while building {what}:\n{diag}\n"
                       f"reproducer (input MLIR + command line): {repro}",
                       stage="iree-compile", ir_text=text)
