"""A content-addressed cache of iree-compile outputs (the host `.vmfb`; the Cortex-M static
library's files as one archive, `cortexm/iree_static.py`).

Compiling the same program twice (the same linalg text, the same flags, the same pinned
iree-compile) gives the same module (byte for byte when the source file has the same path: the
path of the temporary source file is all that differs), so the second compile can be a file read. The key is the
SHA-256 of the iree-compile binary's version string, its path, the flags and the input text; a
hit returns the stored bytes, a miss runs iree-compile and stores its output (written to a
temporary file, then renamed: concurrent compiles never see half an entry).

Where: ``$TINYTRAIN_COMPILE_CACHE`` (a folder), else ``compile-cache/`` in ``$TINYTRAIN_CACHE``
(default ``~/.cache/tinytrain``). ``TINYTRAIN_COMPILE_CACHE=off`` (or ``0``) turns it off. At most
``MAX_ENTRIES`` entries and ``MAX_BYTES`` bytes of them are kept: storing one more removes the
least recently used until both hold (a host `.vmfb` of a whole network is a few MB, a static
library's archive with its LLVM IR dumps up to ~10 MB). An entry its reader cannot use (a damaged
archive) is compiled again and overwritten.

The C compiles of a Cortex-M firmware build (our runtime and kernels, the same in every
firmware; `runtime/kernels/src/ttk_s8.c` alone takes 11 s) go through ccache when it is
installed (`ccache_settings`), with its store in ``ccache/`` of the same folder.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Sequence

__all__ = ["MAX_ENTRIES", "MAX_BYTES", "CCACHE_MAX_SIZE", "cache_dir", "cached_output", "ccache_settings"]

MAX_ENTRIES = 200
MAX_BYTES = 1 << 30
_OFF = ("off", "0", "false", "no")


def cache_dir() -> Path | None:
    """The cache folder, or None when the cache is off."""
    env = os.environ.get("TINYTRAIN_COMPILE_CACHE")
    if env is not None:
        return None if env.strip().lower() in _OFF else Path(env)
    from tinytrain.datasets import cache_root

    return cache_root() / "compile-cache"


#: Size limit of the ccache store (ccache drops the least recently used objects beyond it).
CCACHE_MAX_SIZE = "500M"


def ccache_settings(project_dir: Path) -> tuple[list[str], dict[str, str]]:
    """(extra cmake configure arguments, environment variables) that route a CMake project's C
    compiles through ccache, or ([], {}) when the cache is off or ccache is not installed (the
    build then compiles everything, as without a cache). Paths under `project_dir` are hashed
    relative to the build folder (``CCACHE_BASEDIR``), so the runtime's sources hit in every
    firmware project; ccache also restores the ``-fstack-usage`` files the stack bound reads."""
    folder, ccache = cache_dir(), shutil.which("ccache")
    if folder is None or ccache is None:
        return [], {}
    env = {"CCACHE_DIR": str(folder / "ccache"), "CCACHE_BASEDIR": str(Path(project_dir).resolve()),
           "CCACHE_NOHASHDIR": "1", "CCACHE_MAXSIZE": CCACHE_MAX_SIZE}
    return [f"-DCMAKE_C_COMPILER_LAUNCHER={ccache}"], env


def _key(tool: str, version: str, flags: Sequence[str], text: str, kind: str) -> str:
    h = hashlib.sha256()
    for part in (kind, tool, version, "\0".join(flags), text):
        h.update(part.encode())
        h.update(b"\0\0")
    return h.hexdigest()


def cached_output(kind: str, tool: str, version: str, flags: Sequence[str], text: str,
                  build: Callable[[], bytes], accept: Callable[[bytes], bool] | None = None) -> bytes:
    """The output of compiling `text` with `flags` (`kind` names the output, e.g. "vmfb"): the
    stored bytes when this exact compile ran before (and `accept(stored bytes)` is true, when
    given), else `build()`'s, then stored (replacing an entry `accept` refused)."""
    folder = cache_dir()
    if folder is None:
        return build()
    entry = folder / f"{_key(tool, version, flags, text, kind)}.{kind}"
    try:
        data = entry.read_bytes()
    except OSError:
        data = None
    if data and (accept is None or accept(data)):
        try:
            os.utime(entry)  # least recently used goes first
        except OSError:
            pass
        return data
    data = build()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, entry)
        _evict(folder, keep=entry)
    except OSError:
        pass  # a read-only or full cache folder only costs the next compile its time
    return data


def _evict(folder: Path, keep: Path) -> None:
    """Remove the least recently used entries but `keep` (the one just stored, even when it alone
    is over MAX_BYTES) until MAX_ENTRIES and MAX_BYTES hold."""
    entries = []
    for p in folder.iterdir():
        try:
            if not p.name.startswith(".tmp-") and p != keep and p.is_file():
                st = p.stat()
                entries.append((st.st_mtime, st.st_size, p))
        except OSError:
            pass  # removed meanwhile by another process's eviction
    entries.sort(key=lambda e: e[0])
    count, size = len(entries) + 1, sum(e[1] for e in entries) + keep.stat().st_size
    for _, n, p in entries:
        if count <= MAX_ENTRIES and size <= MAX_BYTES:
            break
        try:
            p.unlink()
        except OSError:
            pass
        count, size = count - 1, size - n
