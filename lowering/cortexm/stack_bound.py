"""Static worst-case stack depth of a linked Cortex-M firmware (the stack reserve, issue #9).

The firmware runs everything on the main stack: the reset handler branches to
``tt_board_start``, which calls ``main`` (the harness), the runtime, the generated schedule and,
through the IREE library's dispatch table, the kernels; exceptions stack their frame on the same
stack. :func:`analyze` reads the ELF (its symbols and the words of its loaded sections) and
``arm-none-eabi-objdump -d`` of its code, and computes:

- each function's frame: the sum of every stack decrement in its body (``push``, ``vpush``,
  ``stmdb sp!``, ``vstmdb sp!``, ``sub sp, #N`` / ``sub.w sp, sp, #N`` / ``subw``,
  ``str* ..., [sp, #-N]!``). Compiled code keeps a static stack offset at every instruction,
  so the sum bounds the deepest offset. For our own C code GCC's ``-fstack-usage`` files
  (``*.su``) are read as well and the larger number is kept;
- its callees: ``bl``/``blx`` to a symbol, and branches (``b``, ``b.w``, ``cbz``, conditional)
  whose target lies in another function (tail calls, counted as calls: conservative);
- indirect calls (``blx rN``, ``bx rN`` other than ``lr``, ``ldr pc, [rN ...]``, ``mov pc,
  rN``): the runtime calls the dispatch functions through the IREE library's table. They are
  resolved conservatively: the callee may be **any function whose address is taken**, i.e. any
  function whose Thumb address (``addr | 1``) an absolute relocation wrote into the image (the
  library's export table, literal pools, ``.rodata``/``.data``: the firmware links with
  ``--emit-relocs``; an ELF without relocations has every aligned word scanned instead) or a
  ``movw``/``movt`` pair builds, except the vector table (its entries are the exception entries below, not pointers the code
  calls) and the C++ unwind tables (``.ARM.exidx``/``.ARM.extab``, read only by the exception
  unwinder, whose own calls are analysed like any other code when it is reachable);
- refusal (:class:`UnboundedStack`, a ``CompileError`` naming the functions): a function
  reachable from an entry point that moves the stack pointer by a register (``alloca``, a
  VLA: ``sub sp, rN``, ``mov sp, rN``, ``msr msp``), that GCC reports as ``dynamic``, that
  recurses (a cycle in the call graph, indirect edges included), or that branches into code
  without a symbol. Nothing is guessed: the caller then keeps the fixed reserve and says so.

The bound = depth of the reset handler (thread mode) + one exception frame and the deepest
handler per preemption level: the firmware sets no priorities, so every configurable exception
(SysTick, and MemManage/BusFault/UsageFault, which are disabled and escalate) shares priority 0
and cannot preempt another; HardFault (-1) can preempt them and NMI (-2) can preempt HardFault.
An exception frame is 26 words (8 core + 18 FP: lazy stacking reserves the full FP area) plus 4
bytes of alignment padding (CCR.STKALIGN).
"""

from __future__ import annotations

import bisect
import re
import struct
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from tinytrain.errors import CompileError

#: One exception frame with FP context (26 words) + the 8-byte alignment pad.
EXCEPTION_FRAME = 26 * 4 + 4
#: Added to the bound before rounding: room for what the analysis cannot see (none known; the
#: MPU guard below the stack faults with a clear message if the bound were ever exceeded).
STACK_MARGIN = 256
#: The MPU guard needs the reserve in whole KB.
STACK_GRANULE = 1024

_COND = r"(?:eq|ne|cs|hs|cc|lo|mi|pl|vs|vc|hi|ls|ge|lt|gt|le|al)?"
_LINE = re.compile(r"^\s*([0-9a-f]+):\s+(\S+)\s*(.*?)\s*$")
_HEAD = re.compile(r"^([0-9a-f]+) <(.+)>:$")
_TARGET = re.compile(r"^([0-9a-f]+) <")
_IMM = re.compile(r"#(-?(?:0x[0-9a-f]+|\d+))")
# the instruction patterns, compiled once (the analysis reads every instruction of the firmware)
_REGLIST = re.compile(r"\{([^}]*)\}")
_PUSH = re.compile(f"push{_COND}|vpush{_COND}")
_STMDB = re.compile(f"(?:stmdb|stmfd|vstmdb){_COND}")
_SP_WRITEBACK = re.compile(r"\[sp, #-(\d+)\]!|\[sp\], #-(\d+)")
_COMPARE = re.compile(f"(?:cmp|cmn|tst|teq){_COND}")
_LDM_STM_UP = re.compile(f"(?:ldm|ldmia|ldmfd|vldmia|stmia|stmea|vstmia){_COND}")
_LDM_STM = re.compile(f"v?(?:ldm|stm)(?:ia|db|fd|ea)?{_COND}")
_SUB = re.compile(f"(?:sub|subw|subs){_COND}")
_ADD = re.compile(f"(?:add|addw|adds){_COND}")
_BLX = re.compile(f"blx{_COND}")
_REG = re.compile(r"r\d+|ip|lr|fp|sl|sb")
_BX = re.compile(f"bx{_COND}")
_LDM = re.compile(f"ldm(?:ia|fd|db)?{_COND}")
_LDR = re.compile(f"ldr{_COND}")
_LDR_PC_SP = re.compile(r"pc, \[sp\]")
_MOV = re.compile(f"mov{_COND}")
_BRANCH = re.compile(f"(?:bl|blx|b|cbz|cbnz){_COND}")
_MOVS = re.compile(f"movs?{_COND}")
_NO_DEF = re.compile(r"str|vst|push|stm|cmp|cmn|tst|teq|it|pld")
_BRANCH_ANY = re.compile(f"(?:b|bl|blx|bx|cbz|cbnz){_COND}")
_REG_IMM = re.compile(r"(r\d+|ip|lr|fp|sl|sb), #(\d+)")
_BFC_OPS = re.compile(r"(\w+), #0, #(\d+)")
_SUB_ADD = re.compile(r"(?:sub|add|subw|addw)")
_FROM_FP_IMM = re.compile(r"\w+, (?:r7|fp), #\d+")
_FROM_FP = re.compile(r"\w+, (?:r7|fp)")
_B_UNCOND = re.compile(r"b(?:\.[wn])?")


class UnboundedStack(CompileError):
    """The stack depth has no static bound (dynamic stack, recursion, unknown code)."""

    def __init__(self, message: str):
        super().__init__(message, stage="stack-bound")


@dataclass
class Function:
    name: str
    addr: int
    size: int
    frame: int = 0                                    #: bytes this function pushes/allocates
    calls: set = field(default_factory=set)           #: start addresses of direct callees
    indirect: list = field(default_factory=list)      #: addresses of indirect calls/jumps
    dynamic: list = field(default_factory=list)       #: "0xADDR: insn" moving sp by a register
    unknown: list = field(default_factory=list)       #: branch targets outside every function


@dataclass
class StackBound:
    """The worst-case stack of one firmware: ``bound`` bytes, and how it was reached."""

    bound: int
    thread_depth: int                  #: reset handler -> main -> ... (no exception)
    path: list                         #: [(function, frame bytes)] of the deepest thread path
    exceptions: list                   #: [(level, handler, depth incl. its frame)] added on top
    indirect_callees: list             #: functions an indirect call may reach (address taken)
    functions: int                     #: functions analysed

    @property
    def reserve(self) -> int:
        """The stack reserve: bound + :data:`STACK_MARGIN`, rounded up to whole KB."""
        return reserve_for(self.bound)

    def describe(self) -> str:
        chain = " -> ".join(f"{n} ({b} B)" for n, b in self.path)
        exc = "; ".join(f"{lvl}: {h} {d} B" for lvl, h, d in self.exceptions)
        return (f"stack bound {self.bound} B (thread {self.thread_depth} B: {chain}; exceptions "
                f"on top, frame {EXCEPTION_FRAME} B each: {exc}); indirect calls may reach "
                f"{len(self.indirect_callees)} address-taken functions; reserve {self.reserve} B "
                f"(+{STACK_MARGIN} B margin, whole KB)")


def reserve_for(bound: int) -> int:
    """Stack reserve for a bound: + :data:`STACK_MARGIN`, rounded up to :data:`STACK_GRANULE`."""
    return -(-(int(bound) + STACK_MARGIN) // STACK_GRANULE) * STACK_GRANULE


# ---- the ELF: sections and symbols (ELF32 little-endian, as arm-none-eabi-ld writes it) -------

#: Relocations that store a whole address in a word (R_ARM_ABS32, R_ARM_TARGET1).
_ABS_WORD = (2, 38)


def _read_elf(path: Path):
    """(loaded sections [(name, addr, bytes)], FUNC symbols [(name, addr, size)], addresses of
    the words an absolute relocation wrote, or None when the ELF keeps no relocations)."""
    raw = Path(path).read_bytes()
    if raw[:4] != b"\x7fELF" or raw[4] != 1 or raw[5] != 1:
        raise ValueError(f"{path}: not a 32-bit little-endian ELF file")
    shoff, = struct.unpack_from("<I", raw, 0x20)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", raw, 0x2E)
    heads = [struct.unpack_from("<IIIIIIIIII", raw, shoff + i * shentsize) for i in range(shnum)]
    names = heads[shstrndx]

    def name_at(table, off):
        start = table[4] + off
        return raw[start:raw.index(b"\0", start)].decode()

    sections, symbols, sites = [], [], None
    for h in heads:
        sh_name, sh_type, flags, addr, off, size, link, info = h[:8]
        if sh_type == 9 and heads[info][2] & 2:                     # SHT_REL of a loaded section
            sites = sites or []
            for i in range(size // 8):
                r_offset, r_info = struct.unpack_from("<II", raw, off + i * 8)
                if r_info & 0xFF in _ABS_WORD:
                    sites.append(r_offset)
        if flags & 2 and sh_type == 1:                              # SHF_ALLOC, PROGBITS
            sections.append((name_at(names, sh_name), addr, raw[off:off + size]))
        if sh_type == 2:                                            # SHT_SYMTAB
            strtab = heads[link]
            for i in range(size // 16):
                st_name, value, st_size, info, _, _ = struct.unpack_from("<IIIBBH", raw, off + i * 16)
                if info & 0xF == 2:                                 # STT_FUNC
                    symbols.append((name_at(strtab, st_name), value & ~1, st_size))
    return sections, symbols, sites


# ---- instructions ------------------------------------------------------------------------------

def _list_bytes(operands: str) -> int:
    """Bytes of a register list: ``{r4-r7, lr}`` 4 each, ``{d8-d15}`` 8 each, ``{s16-s31}`` 4 each."""
    m = _REGLIST.search(operands)
    nbytes = 0
    for item in (s.strip() for s in m.group(1).split(",")) if m else ():
        lo, _, hi = item.partition("-")
        count = int(hi[1:]) - int(lo[1:]) + 1 if hi else 1
        nbytes += count * (8 if lo.startswith("d") else 4)
    return nbytes


def _decrement(mnem: str, ops: str) -> int | None:
    """Bytes the instruction moves sp down by (0: none), or None when sp is moved by a
    register (dynamic stack)."""
    base = mnem.split(".")[0]
    first = ops.split(",")[0].strip() if ops else ""
    if _PUSH.fullmatch(base):
        return _list_bytes(ops)
    if first == "sp!" and _STMDB.fullmatch(base):
        return _list_bytes(ops)
    m = _SP_WRITEBACK.search(ops)     # pre/post-indexed writeback down
    if m:
        return int(m.group(1) or m.group(2))
    if first in ("sp", "sp!", "msp", "psp"):
        if _COMPARE.fullmatch(base):
            return 0
        if first == "sp!" and _LDM_STM_UP.fullmatch(base):
            return 0                                                # pop (sp moves up)
        if first == "sp" and _LDM_STM.fullmatch(base):
            return 0                                                # sp as a base, no writeback
        rest = [s.strip() for s in ops.split(",")[1:]]
        if rest and rest[0] == "sp":
            rest = rest[1:]
        if len(rest) == 1 and rest[0].startswith("#"):
            n = int(_IMM.match(rest[0]).group(1), 0)
            if _SUB.fullmatch(base):
                return max(n, 0)
            if _ADD.fullmatch(base):
                return max(-n, 0)
        return None                                                 # mov sp, rN; sub sp, rN; msr
    return 0


def _is_indirect(mnem: str, ops: str) -> bool:
    base = mnem.split(".")[0]
    first = ops.split(",")[0].strip() if ops else ""
    if _BLX.fullmatch(base) and _REG.fullmatch(first):
        return True
    if _BX.fullmatch(base):
        return first != "lr"
    if _LDM.fullmatch(base) and "pc}" in ops:
        return first not in ("sp", "sp!")                           # ldm rN, {..., pc}: a jump
    if first == "pc":
        if _LDR.fullmatch(base):
            return not _LDR_PC_SP.match(ops)                 # ldr pc, [sp], #4: return
        return _MOV.fullmatch(base) is not None
    return False


def _call_target(mnem: str, ops: str) -> int | None:
    """The target address of a call or branch to a symbol (``bl 8c0 <foo>``), else None."""
    base = mnem.split(".")[0]
    if not _BRANCH.fullmatch(base):
        return None
    target = ops.split(",")[-1].strip()
    m = _TARGET.match(target)
    return int(m.group(1), 16) if m else None


def _disassemble(elf: Path) -> list:
    proc = subprocess.run(["arm-none-eabi-objdump", "-d", "--no-show-raw-insn", str(elf)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"arm-none-eabi-objdump -d {elf} failed: {proc.stderr[-2000:]}")
    out = []
    for line in proc.stdout.splitlines():
        m = _LINE.match(line)
        if m and not _HEAD.match(line):
            ops = m.group(3).split(";")[0].split("@")[0].strip()
            out.append((int(m.group(1), 16), m.group(2), ops))
    return out


def read_stack_usage(paths) -> dict:
    """{function: (bytes, qualifiers)} from GCC ``-fstack-usage`` files; a name defined in several
    files (static functions) keeps its largest frame and any ``dynamic`` qualifier."""
    usage = {}
    for p in paths:
        for line in Path(p).read_text().splitlines():
            parts = line.split("\t")
            if len(parts) != 3:
                continue
            name, size, qual = parts[0].rsplit(":", 1)[-1], int(parts[1]), parts[2]
            old_size, old_qual = usage.get(name, (0, ""))
            dynamic = next((q for q in (qual, old_qual) if "dynamic" in q), qual)
            usage[name] = (max(size, old_size), dynamic)
    return usage


# ---- the call graph ------------------------------------------------------------------------------

def _functions(elf: Path, usage: dict) -> tuple[dict, list, list]:
    """({start: Function}, address-taken functions, the vector table)."""
    sections, symbols, sites = _read_elf(elf)
    funcs: dict[int, Function] = {}
    for name, addr, size in sorted(symbols, key=lambda s: (s[1], -s[2])):
        if addr not in funcs:
            funcs[addr] = Function(name, addr, size)
    starts = sorted(funcs)
    for a, b in zip(starts, starts[1:] + [None]):
        if funcs[a].size == 0:      # assembly without .size (libgcc): up to the next function
            funcs[a].size = (b if b is not None else _end_of(sections, a)) - a
    insns = [i for i in _disassemble(elf) if i[1] != ".word"]   # literal pools: words below
    _add_gaps(funcs, insns)
    starts = sorted(funcs)
    ends = [funcs[a].addr + funcs[a].size for a in starts]

    def owner(addr):
        i = bisect.bisect_right(starts, addr) - 1
        return funcs[starts[i]] if i >= 0 and addr < ends[i] else None

    movw: dict[tuple, int] = {}
    defs: dict[tuple, list] = {}          # (function, register) -> its last two definitions
    pointers: set[int] = set()
    for addr, mnem, ops in insns:
        f = owner(addr)
        if f is None:
            continue
        base = mnem.split(".")[0]
        first = ops.split(",")[0].strip()
        # fast paths: only an instruction naming sp (or a push) moves it, only a branch or a write
        # to pc jumps, only b* / cb* call (the firmware has ~10^5 instructions)
        touches_sp = "sp" in ops or base.startswith(("push", "vpush"))
        if not touches_sp:
            d = 0
        elif _MOVS.fullmatch(base) and first == "sp":
            d = _sp_from_register(defs.get((f.addr, ops.split(",")[1].strip()), []))
        else:
            d = _decrement(mnem, ops)
        if d is None:
            f.dynamic.append(f"0x{addr:x}: {mnem} {ops}")
        else:
            f.frame += d
        if (_REG.fullmatch(first)
                and not _NO_DEF.match(base)
                and not _BRANCH_ANY.fullmatch(base)):
            defs[(f.addr, first)] = (defs.get((f.addr, first), []) + [(base, ops)])[-2:]
        if (base.startswith("b") or "pc" in ops) and _is_indirect(mnem, ops):
            f.indirect.append(addr)
        target = _call_target(mnem, ops) if base.startswith(("b", "c")) else None
        if target is not None:
            g = owner(target)
            if g is None:
                f.unknown.append(f"0x{addr:x}: {mnem} {ops}")
            elif g is not f or (target == f.addr and mnem.startswith("bl")):
                f.calls.add(g.addr)
        # movw/movt pairs build addresses (LLVM's default for armv7-m): a function pointer too
        m = _REG_IMM.fullmatch(ops) if base in ("movw", "movt") else None
        if m and base == "movw":
            movw[(f.addr, m.group(1))] = int(m.group(2))
        elif m and base == "movt" and (f.addr, m.group(1)) in movw:
            pointers.add((int(m.group(2)) << 16) | movw.pop((f.addr, m.group(1))))
    for f in funcs.values():
        if f.name in usage:
            size, qual = usage[f.name]
            f.frame = max(f.frame, size)
            if "dynamic" in qual and "bounded" not in qual:
                f.dynamic.append(f"-fstack-usage: {qual}")
    vector_words = _vector_table(sections)
    pointers |= set(_pointer_words(sections, sites, len(vector_words) * 4))
    taken = sorted({p & ~1 for p in pointers if p & 1 and (p & ~1) in funcs})
    return funcs, [funcs[a] for a in taken], vector_words


def _sp_from_register(history: list) -> int | None:
    """Bytes ``mov sp, rN`` moves sp down by, from rN's last definitions, or None (dynamic):
    LLVM realigns the frame (``mov rN, sp; bfc rN, #0, #k; mov sp, rN``: at most 2^k - 4 bytes
    down, sp being word aligned) and restores sp from the frame pointer in epilogues
    (``sub.w rN, r7, #N; mov sp, rN``: back up to a depth the prologue already counted)."""
    if not history:
        return None
    base, ops = history[-1]
    m = _BFC_OPS.fullmatch(ops)
    if base == "bfc" and m and len(history) == 2 and history[0] == ("mov", f"{m.group(1)}, sp"):
        return (1 << int(m.group(2))) - 4
    if _SUB_ADD.fullmatch(base) and _FROM_FP_IMM.fullmatch(ops):
        return 0
    if base == "mov" and _FROM_FP.fullmatch(ops):
        return 0
    return None


def _add_gaps(funcs: dict, insns: list) -> None:
    """Code between symbols (newlib's assembly has helpers before its entry labels) becomes a
    function of its own, which falls through into the next function unless its last
    instruction (padding ``nop`` aside) returns or branches away."""
    starts = sorted(funcs)
    ends = [funcs[a].addr + funcs[a].size for a in starts]
    gap, gaps = None, []
    for addr, mnem, ops in insns:
        i = bisect.bisect_right(starts, addr) - 1
        if i >= 0 and addr < ends[i]:
            gap = None
            continue
        if gap is None or addr >= gap.addr + gap.size + 4:
            prev = f"{funcs[starts[i]].name}+0x{addr - starts[i]:x}" if i >= 0 else f"0x{addr:x}"
            gap = Function(f"{prev} (no symbol)", addr, 0)
            gaps.append((gap, starts[i + 1] if i + 1 < len(starts) else None, []))
        gap.size = addr + 4 - gap.addr
        if mnem != "nop":
            gaps[-1][2][:] = [(mnem, ops)]
    for gap, nxt, last in gaps:
        funcs[gap.addr] = gap
        ends_flow = last and (_returns(*last[0]) or _B_UNCOND.fullmatch(last[0][0]))
        if nxt is not None and not ends_flow:
            gap.calls.add(nxt)


def _returns(mnem: str, ops: str) -> bool:
    """An unconditional return: ``bx lr``, ``pop {..., pc}``, ``ldm sp!, {..., pc}``,
    ``ldr pc, [sp], #4``."""
    base = mnem.split(".")[0]
    return ((base == "bx" and ops == "lr") or (base in ("pop", "ldmia", "ldm") and "pc}" in ops)
            or (base == "ldr" and ops.startswith("pc, [sp]")))


def _pointer_words(sections, sites, skip: int):
    """Words of the image that may hold a function's address: those an absolute relocation
    wrote (the firmware links with ``--emit-relocs``), else every aligned word (conservative,
    but the model's constants then look like pointers too); never the vector table below
    ``skip`` nor the unwind tables."""
    for name, base, data in sections:
        if name.startswith((".ARM.exidx", ".ARM.extab")):
            continue
        if sites is None:
            offsets = range(0, len(data) - 3, 4)
        else:
            offsets = [a - base for a in sites if base <= a <= base + len(data) - 4]
        for off in offsets:
            if base + off >= skip:
                yield struct.unpack_from("<I", data, off)[0]


def _end_of(sections, addr: int) -> int:
    return next((base + len(data) for _, base, data in sections if base <= addr < base + len(data)),
                addr)


def _vector_table(sections) -> list:
    """The 16 system vectors at address 0 (VTOR's reset value): [initial sp, reset, NMI, ...]."""
    for name, base, data in sections:
        if base == 0 and len(data) >= 64:
            return list(struct.unpack_from("<16I", data, 0))
    raise ValueError("no vector table at address 0 in the firmware")


def analyze(elf, su_files=()) -> StackBound:
    """The worst-case stack of the firmware ``elf`` (:class:`StackBound`); ``su_files``: GCC
    ``-fstack-usage`` outputs of our C code. Raises :class:`UnboundedStack` when a function
    reachable from an exception vector has no static bound."""
    funcs, taken, vectors = _functions(Path(elf), read_stack_usage(su_files))
    depth: dict[int, tuple] = {}
    active: list = []

    def visit(f: Function) -> tuple:
        if f.addr in depth:
            return depth[f.addr]
        if f.addr in (a.addr for a in active):
            cycle = [a.name for a in active[[a.addr for a in active].index(f.addr):]] + [f.name]
            raise UnboundedStack("recursion (a cycle in the call graph, indirect calls resolved to "
                                 f"every address-taken function): {' -> '.join(cycle)}")
        if f.dynamic:
            raise UnboundedStack(f"{f.name} moves the stack pointer by a register (alloca or a "
                                 f"variable-length array): {'; '.join(f.dynamic[:3])}")
        if f.unknown:
            raise UnboundedStack(f"{f.name} branches into code without a symbol: {'; '.join(f.unknown[:3])}")
        active.append(f)
        callees = [funcs[a] for a in sorted(f.calls)] + (taken if f.indirect else [])
        best = (0, [])
        for g in callees:
            d = visit(g)
            if d[0] > best[0]:
                best = d
        active.pop()
        depth[f.addr] = (f.frame + best[0], [(f.name, f.frame)] + best[1])
        return depth[f.addr]

    def handler(addr: int):
        f = funcs.get(addr & ~1)
        if f is None:
            raise UnboundedStack(f"exception vector 0x{addr:08x} is not a function of the firmware")
        return f

    reset = handler(vectors[1])
    thread, path = visit(reset)
    levels = [("priority 0 (SysTick, configurable faults)", [v for v in vectors[4:16] if v]),
              ("HardFault", [vectors[3]]), ("NMI", [vectors[2]])]
    exceptions, total = [], thread
    for level, addrs in levels:
        worst = max(((visit(handler(a))[0], handler(a).name) for a in addrs), default=None)
        if worst is not None:
            exceptions.append((level, worst[1], EXCEPTION_FRAME + worst[0]))
            total += EXCEPTION_FRAME + worst[0]
    return StackBound(total, thread, path, exceptions, [f.name for f in taken], len(funcs))


def su_files(build_dir) -> list:
    """The ``-fstack-usage`` files of a firmware build folder."""
    return sorted(Path(build_dir).rglob("*.su"))
