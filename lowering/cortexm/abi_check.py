"""Build-time guard for IREE's executable-library ABI (version 6, iree-base-compiler 3.13).

The device runtime (``runtime/include/tt/iree_abi.h``) declares the library structs itself, so
every build re-reads the LLVM IR that ``iree-compile`` dumps for the static library
(``--iree-hal-dump-executable-intermediates-to``) and fails loudly when the version, a struct's
field list, or the query function's version check differs from what the runtime was written for.
It also returns the export table (ordinal, name, binding and push-constant counts) so the
generated schedule can name kernels by ordinal and the runtime can re-check them at init.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from tinytrain.errors import CompileError

ABI_VERSION = 6

# Field lists as LLVM IR types; the C mirror is runtime/include/tt/iree_abi.h.
EXPECTED_TYPES = {
    "iree_hal_executable_library_header_t": "{ i32, ptr, i32, i32 }",
    "iree_hal_executable_dispatch_attrs_v0_t":
        "{ i64, i16, i8, i8, i32, i32, i16, i16, i64, i64, i64, i64, i64 }",
    "iree_hal_executable_library_v0_t":
        "{ ptr, %iree_hal_executable_import_table_v0_t, %iree_hal_executable_export_table_v0_t, "
        "%iree_hal_executable_constant_table_v0_t, %iree_hal_executable_source_file_table_v0_t }",
    "iree_hal_executable_import_table_v0_t": "{ i32, ptr }",
    "iree_hal_executable_export_table_v0_t":
        "{ i32, ptr, ptr, ptr, ptr, ptr, ptr, ptr, ptr, ptr }",
    "iree_hal_executable_constant_table_v0_t": "{ i32 }",
    "iree_hal_executable_source_file_table_v0_t": "{ i32, ptr }",
    "iree_hal_executable_dispatch_state_v0_t":
        "{ i32, i32, i16, i16, i32, i32, i16, i8, i8, ptr, ptr, ptr }",
    "iree_hal_executable_workgroup_state_v0_t": "{ i32, i32, i16, i16, i32, ptr, i32 }",
}


# Present only when some kernel reads the struct (e.g. no kernel with >1 workgroup).
OPTIONAL_TYPES = {"iree_hal_executable_dispatch_state_v0_t", "iree_hal_executable_workgroup_state_v0_t"}


class AbiMismatch(CompileError):
    """The compiler's executable library does not match the runtime's ABI declaration
    (stage ``cortex-m``)."""

    def __init__(self, message: str):
        super().__init__(message, stage="cortex-m")


@dataclass(frozen=True)
class Export:
    ordinal: int
    name: str
    constant_count: int
    binding_count: int


def _find_linked_ll(dump_dir: Path, library: str) -> Path:
    cands = sorted(Path(dump_dir).glob(f"*{library}*.linked.ll")) or sorted(Path(dump_dir).glob("*.linked.ll"))
    if len(cands) != 1:
        raise AbiMismatch(f"expected one *.linked.ll for {library} in {dump_dir}, found {len(cands)}")
    return cands[0]


def check_library(dump_dir: Path, library: str) -> list:
    """Check the ABI of ``library`` from its dumped LLVM IR; return its exports by ordinal."""
    return check_library_text(_find_linked_ll(dump_dir, library).read_text(), library)


def check_library_text(text: str, library: str) -> list:
    """:func:`check_library` on the text of the library's ``*.linked.ll``.

    Everything is found by symbol and struct-type name (``@<library>_library_query_v0_names``,
    ``%iree_hal_executable_library_header_t``), never by LLVM's value numbering: the query
    function's version parameter is whatever its first parameter is called, and string constants
    are resolved by their global name, numbered (``@3``) or not (``@.str.3``).
    """
    for name, fields in EXPECTED_TYPES.items():
        m = re.search(r"^%" + re.escape(name) + r" = type (\{.*\})$", text, re.M)
        if m is None and name in OPTIONAL_TYPES:
            continue  # LLVM drops struct types no kernel touches
        if m is None:
            raise AbiMismatch(f"struct {name} missing from the compiler's output (ABI changed?)")
        if m.group(1) != fields:
            raise AbiMismatch(f"struct {name} is {m.group(1)}, runtime expects {fields}")
    query = f"{library}_library_query"
    header = _global_init(text, f"{query}_v0_header", "%iree_hal_executable_library_header_t")
    m = re.match(r"\{ i32 (\d+),", header or "")
    if m is None or int(m.group(1)) != ABI_VERSION:
        got = m.group(1) if m else "none"
        raise AbiMismatch(f"library {library} header version is {got}, runtime expects {ABI_VERSION}")
    _check_query_function(text, library)
    lib = _global_init(text, f"{query}_v0", "%iree_hal_executable_library_v0_t")
    if lib is None:
        raise AbiMismatch(f"library {library} has no v0 library descriptor")
    if "%iree_hal_executable_import_table_v0_t zeroinitializer" not in lib:
        raise AbiMismatch(f"library {library} imports host functions; the runtime provides none")
    if "%iree_hal_executable_constant_table_v0_t zeroinitializer" not in lib:
        raise AbiMismatch(f"library {library} needs executable constants; the runtime passes none")

    names_init = _global_init(text, f"{query}_v0_names", r"\[\d+ x ptr\]")
    if names_init is None:
        raise AbiMismatch(f"library {library} has no export names table")
    strings = _string_constants(text)
    refs = re.findall(r"ptr @(\S+?)(?=[,\]\s])", names_init)
    if len(refs) != names_init.count("ptr"):
        raise AbiMismatch(f"export names table of {library} holds something other than plain "
                          f"string globals: {names_init[:200]}")
    missing = [r for r in refs if r not in strings]
    if missing:
        raise AbiMismatch(f"export names table of {library} points at @{missing[0]}, which is not "
                          "a string constant")
    names = [strings[r] for r in refs]
    count = re.search(r"%iree_hal_executable_export_table_v0_t \{ i32 (\d+),", lib)
    if count is None or int(count.group(1)) != len(names):
        raise AbiMismatch(f"export table of {library} declares {count.group(1) if count else 'no'} "
                          f"exports, its names table has {len(names)}")
    attrs = [(0, 0)] * len(names)
    table = _global_init(text, f"{query}_v0_attrs",
                         r"\[\d+ x %iree_hal_executable_dispatch_attrs_v0_t\]")
    if table is not None:
        rows = re.findall(r"\{ i64 -?\d+, i16 (\d+), i8 (\d+), i8 (\d+),", table)
        if len(rows) != len(names):
            raise AbiMismatch("export attrs table and names table differ in length")
        if any(int(r[0]) != 0 for r in rows):
            raise AbiMismatch("a kernel needs workgroup local memory; the runtime provides none")
        attrs = [(int(r[1]), int(r[2])) for r in rows]
    return [Export(i, n, c, b) for i, (n, (c, b)) in enumerate(zip(names, attrs))]


def _global_init(text: str, symbol: str, type_pattern: str) -> str | None:
    """Initializer text of the constant global ``@symbol`` of the given type (any linkage)."""
    m = re.search(r"^@" + re.escape(symbol) + r" = (?:[\w()]+ )*constant " + type_pattern
                  + r" (.*?)(?:, align \d+)?$", text, re.M)
    return m.group(1) if m else None


def _string_constants(text: str) -> dict:
    """``{global name: text}`` of every NUL-terminated ``[N x i8] c"..."`` constant."""
    return {m.group(1): m.group(2) for m in re.finditer(
        r'^@("[^"]+"|[-$.\w]+) = (?:[\w()]+ )*constant \[\d+ x i8\] c"([^"]*)\\00"', text, re.M)}


def _check_query_function(text: str, library: str) -> None:
    """``<library>_library_query(version, env)`` must return the v0 library exactly when
    ``version == ABI_VERSION``: an ``icmp eq`` of its first parameter with the constant, and a
    ``select`` on that comparison between ``@<library>_library_query_v0`` and null."""
    query = f"{library}_library_query"
    m = re.search(r"^define [^@\n]*@" + re.escape(query) + r"\(i32(?: \w+)* (%[-$.\w]+), ptr[^)]*\)"
                  r"[^{\n]*\{\n(.*?)^\}", text, re.M | re.S)
    if m is None:
        raise AbiMismatch(f"{query}(i32 version, ptr environment) is not defined in the library")
    param, body = re.escape(m.group(1)), m.group(2)
    cmps = re.findall(r"(%[-$.\w]+) = icmp eq i32 (?:" + param + r", (-?\d+)|(-?\d+), " + param + ")",
                      body)
    versions = {int(a or b) for _, a, b in cmps}
    if versions != {ABI_VERSION}:
        raise AbiMismatch(f"{query} does not accept exactly version {ABI_VERSION} "
                          f"(compares its version argument with {sorted(versions) or 'nothing'})")
    conds = "|".join(re.escape(c) for c, _, _ in cmps)
    if not re.search(r"= select i1 (?:" + conds + r"), ptr @" + re.escape(query) + r"_v0, ptr null",
                     body):
        raise AbiMismatch(f"{query} does not return @{query}_v0 exactly for version {ABI_VERSION}")
