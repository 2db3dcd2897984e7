"""Static schedule extraction: interpret IREE's HAL-phase host program at build time.

``iree-compile --compile-to=hal`` leaves a host *program* (device selection, executable
creation, memoized command buffers, queue allocations, fences). This module executes that
program symbolically with IREE's own MLIR Python bindings: integers are concrete, buffers are
symbolic (function argument, flash constant pool, or an arena allocation with a lifetime), and
every device-side effect is recorded in program order as a fill, copy or dispatch with its export
name, workgroup count, push constants and bindings (region + offset + length).

The result (:class:`Schedule`) is packed into one arena (by allocation lifetime, 64-byte aligned)
and turned into C tables by :mod:`tinytrain.lowering.cortexm.schedule_c`. Anything that cannot be a static
schedule (dynamic shapes, data-dependent host control flow, functions that re-bind mutable
globals, unknown HAL ops) raises :class:`Unsupported` naming the op and the reason.
"""

from __future__ import annotations

import numpy as np

from .hal_constants import constant_bytes, parse_resources
from .schedule_model import (ALIGN, NULL, UNKNOWN, Alloc, Buf, Command, CommandBuffer, Function,
                             IODesc, Schedule, Token, Unsupported, View, _align, _dtype_size)

__all__ = ["ALIGN", "Schedule", "Unsupported", "_align", "extract_schedule"]

# --------------------------------------------------------------------------------------------
# Interpreter
# --------------------------------------------------------------------------------------------

_CMP = {0: lambda a, b: a == b, 1: lambda a, b: a != b, 2: lambda a, b: a < b,
        3: lambda a, b: a <= b, 4: lambda a, b: a > b, 5: lambda a, b: a >= b,
        6: lambda a, b: a < b, 7: lambda a, b: a <= b, 8: lambda a, b: a > b,
        9: lambda a, b: a >= b}

_BIN = {"arith.addi": lambda a, b: a + b, "arith.subi": lambda a, b: a - b,
        "arith.muli": lambda a, b: a * b, "arith.divui": lambda a, b: a // b,
        "arith.divsi": lambda a, b: int(a / b), "arith.remui": lambda a, b: a % b,
        "arith.ceildivui": lambda a, b: -(-a // b), "arith.andi": lambda a, b: a & b,
        "arith.ori": lambda a, b: a | b, "arith.xori": lambda a, b: a ^ b,
        "arith.shli": lambda a, b: a << b, "arith.shrui": lambda a, b: a >> b,
        "arith.maxui": max, "arith.minui": min, "arith.maxsi": max, "arith.minsi": min}

_PASS = {"hal.command_buffer.execution_barrier", "hal.command_buffer.finalize",
         "hal.buffer.assert", "hal.device.queue.barrier", "hal.device.queue.flush",
         "util.optimization_barrier"}


class _Interpreter:
    def __init__(self, module, ctx, resources: dict):
        self.ctx = ctx
        self.resources = resources
        self.globals: dict = {}
        self.funcs: dict = {}
        self.initializers = []
        self.clock = 0
        self.allocs: list = []
        self.commands: dict = {}
        self.scope = "__init"
        self.library = None
        for op in module.body.operations:
            name = op.operation.name
            if name == "util.global":
                attrs = op.operation.attributes
                sym = str(attrs["sym_name"]).strip('"')
                init = attrs["initial_value"] if "initial_value" in attrs else None
                self.globals[sym] = self._attr_value(init) if init is not None else None
            elif name == "util.func":
                self.funcs[str(op.operation.attributes["sym_name"]).strip('"')] = op
            elif name == "util.initializer":
                self.initializers.append(op)
            elif name == "hal.executable":
                self._read_executable(op)
            elif name in ("builtin.module", "module_terminator"):
                pass
            elif name not in ("hal.executable.source", "util.func"):
                raise Unsupported(f"unknown top-level op '{name}'")

    def _read_executable(self, op):
        for inner in op.regions[0].blocks[0].operations:
            if inner.operation.name != "hal.executable.binary":
                continue
            attrs = inner.operation.attributes
            if str(attrs["format"]).strip('"') != "static":
                raise Unsupported("executable is not a static library (need --iree-llvmcpu-link-static)")
            raw = bytes(int(x) & 0xFF for x in np.array(attrs["data"]))
            if self.library is not None:
                raise Unsupported("more than one executable library (keep --iree-hal-link-executables)")
            self.library = raw.rstrip(b"\0").decode()

    @staticmethod
    def _attr_value(attr):
        from iree.compiler import ir
        if isinstance(attr, ir.BoolAttr):
            return int(attr.value)
        if isinstance(attr, ir.IntegerAttr):
            return attr.value
        raise Unsupported(f"global initial value {attr} not supported")

    # ---- driver --------------------------------------------------------------------------
    def tick(self) -> int:
        self.clock += 1
        return self.clock

    def run_region(self, region, args):
        block = region.blocks[0]
        env = {}
        for a, v in zip(block.arguments, args):
            env[a] = v
        while True:
            nxt = None
            for op in block.operations:
                o = op.operation
                name = o.name
                if name == "cf.br":
                    nxt = (o.successors[0], [env[v] for v in o.operands])
                    break
                if name == "cf.cond_br":
                    seg = list(o.attributes["operandSegmentSizes"])
                    cond = env[o.operands[0]]
                    if cond is UNKNOWN or not isinstance(cond, int):
                        raise Unsupported("host control flow depends on run-time data")
                    vals = [env[v] for v in o.operands]
                    t_args, f_args = vals[1:1 + seg[1]], vals[1 + seg[1]:]
                    nxt = (o.successors[0], t_args) if cond else (o.successors[1], f_args)
                    break
                if name == "util.return":
                    return [env[v] for v in o.operands]
                results = self.eval(o, [env[v] for v in o.operands])
                for r, v in zip(o.results, results):
                    env[r] = v
            if nxt is None:
                raise Unsupported("block without terminator")
            block = nxt[0]
            for a, v in zip(block.arguments, nxt[1]):
                env[a] = v

    def run(self, public: list):
        for init in self.initializers:
            self.run_region(init.regions[0], [])
        for a in self.allocs:
            if a.end is None:
                a.persistent = True
        funcs = []
        for name in public:
            funcs.append(self.run_function(name))
        return funcs

    def run_function(self, name: str) -> Function:
        if name not in self.funcs:
            raise Unsupported(f"no public function @{name} in the HAL program")
        fop = self.funcs[name]
        self.scope = name
        self.commands[name] = []
        self.inputs: dict = {}
        nargs = len(fop.regions[0].blocks[0].arguments)
        args = []
        for i in range(nargs):
            a = Alloc("arg", 0, name, name=f"arg{i}", arg=i, persistent=True)
            args.append(View(Buf(a, 0, 0), (), ""))
        results = self.run_region(fop.regions[0], args)
        end = self.tick()
        for a in self.allocs:
            if a.scope == name and a.end is None:
                a.end = end
        inputs = []
        for i in range(nargs):
            if i not in self.inputs:
                raise Unsupported(f"@{name} argument {i} has no static shape assertion")
            inputs.append(self.inputs[i])
        outputs = []
        for r in results:
            if not isinstance(r, View):
                raise Unsupported(f"@{name} returns a non-tensor value")
            tied = r.buf.alloc.arg if r.buf.alloc.kind == "arg" else -1
            outputs.append(IODesc(r.shape, r.dtype, r.buf.length, r.buf, tied))
        return Function(name, inputs, outputs, self.commands[name])

    # ---- op semantics --------------------------------------------------------------------
    def eval(self, o, a):
        name = o.name
        if name in _PASS:
            return [None] * len(o.results)
        if name == "arith.constant":
            return [self._attr_value(o.attributes["value"])]
        if name in _BIN:
            if UNKNOWN in a[:2]:
                return [UNKNOWN]
            return [_BIN[name](a[0], a[1])]
        if name == "arith.cmpi":
            return [int(_CMP[o.attributes["predicate"].value](a[0], a[1]))]
        if name == "arith.select":
            if a[0] is UNKNOWN:
                raise Unsupported("host select depends on run-time data")
            return [a[1] if a[0] else a[2]]
        if name in ("arith.index_cast", "arith.index_castui", "arith.extui", "arith.extsi",
                    "arith.trunci"):
            return [a[0]]
        handler = getattr(self, "op_" + name.replace(".", "_"), None)
        if handler is None:
            raise Unsupported(f"HAL op '{name}' is not supported by the static scheduler")
        return handler(o, a)

    def op_util_null(self, o, a):
        return [NULL]

    def op_util_cmp_eq(self, o, a):
        return [int(a[0] is a[1] or a[0] == a[1])]

    def op_util_global_load(self, o, a):
        return [self.globals[str(o.attributes["global"]).lstrip("@")]]

    def op_util_global_store(self, o, a):
        sym = str(o.attributes["global"]).lstrip("@")
        if self.scope != "__init":
            raise Unsupported(f"@{self.scope} stores to mutable global @{sym}: training state "
                              "must be function arguments tied to results (iree.abi.output)")
        self.globals[sym] = a[0]
        return []

    def op_util_call(self, o, a):
        callee = str(o.attributes["callee"]).lstrip("@")
        return self.run_region(self.funcs[callee].regions[0], a)

    def op_util_status_check_ok(self, o, a):
        if a[0] not in (0, UNKNOWN):
            msg = str(o.attributes["message"]) if "message" in o.attributes else ""
            raise Unsupported(f"host program fails on the static device: {msg[:200]}")
        return []

    def op_util_buffer_constant(self, o, a):
        data = constant_bytes(str(o.attributes["value"]), self.ctx, self.resources)
        alloc = Alloc("pool", len(data), self.scope, name="constant", data=data, persistent=True)
        self.allocs.append(alloc)
        return [Buf(alloc, 0, len(data))]

    def op_util_buffer_size(self, o, a):
        return [a[0].length]

    def op_hal_devices_count(self, o, a):
        return [1]

    def op_hal_devices_get(self, o, a):
        return [Token("device")]

    def op_hal_device_query(self, o, a):
        cat = str(o.attributes["category"]).strip('"')
        key = str(o.attributes["key"]).strip('"')
        if cat == "hal.device.id":
            return [1, int(key.startswith("local"))]
        if cat == "hal.executable.format":
            return [1, int(key == "static")]
        raise Unsupported(f"device query {cat}::{key} has no static answer")

    def op_hal_device_allocator(self, o, a):
        return [Token("allocator")]

    def op_hal_executable_create(self, o, a):
        return [Token("executable")]

    def op_hal_executable_lookup_function(self, o, a):
        ref = str(o.attributes["entry_point"])
        return [Token("function", ref.split("::@")[-1])]

    def op_hal_fence_create(self, o, a):
        return [Token("fence")]

    def op_hal_fence_join(self, o, a):
        return [Token("fence")]

    def op_hal_fence_await(self, o, a):
        return [0]

    def op_hal_element_type(self, o, a):
        return [str(o.attributes["type"])]

    def op_hal_encoding_type(self, o, a):
        return ["dense_row_major"]

    def op_hal_memory_type(self, o, a):
        return [0]

    def op_hal_buffer_usage(self, o, a):
        return [0]

    def op_hal_buffer_view_assert(self, o, a):
        view = a[0]
        arg = view.buf.alloc
        shape = tuple(a[3:])
        if any(d is UNKNOWN for d in shape):
            raise Unsupported("dynamic shape on a function argument")
        if arg.kind == "arg" and self.scope != "__init":
            view.shape, view.dtype = shape, a[1]
            self.inputs[arg.arg] = IODesc(shape, a[1], 0)
        return []

    def op_hal_buffer_view_buffer(self, o, a):
        view = a[0]
        arg = view.buf.alloc
        if arg.kind == "arg" and arg.arg in self.inputs:
            desc = self.inputs[arg.arg]
            n = int(np.prod(desc.shape)) if desc.shape else 1
            desc.length = n * _dtype_size(desc.dtype)
            arg.size = desc.length
            return [Buf(arg, 0, desc.length)]
        return [view.buf]

    def op_hal_buffer_view_dim(self, o, a):
        raise Unsupported("dynamic shapes (hal.buffer_view.dim) cannot be scheduled statically")

    def op_hal_buffer_view_rank(self, o, a):
        raise Unsupported("dynamic ranks (hal.buffer_view.rank) cannot be scheduled statically")

    def op_hal_buffer_view_create(self, o, a):
        buf = a[0]
        return [View(Buf(buf.alloc, buf.offset + a[1], a[2]), tuple(a[5:]), a[3])]

    def op_hal_buffer_length(self, o, a):
        return [a[0].length]

    def op_hal_buffer_subspan(self, o, a):
        return [Buf(a[0].alloc, a[0].offset + a[1], a[2])]

    def op_hal_allocator_import(self, o, a):
        src = a[4]
        return [1, Buf(src.alloc, src.offset + a[5], a[6])]

    def _new_alloc(self, size):
        alloc = Alloc("arena", size, self.scope, name=f"alloc{len(self.allocs)}",
                      start=self.tick())
        self.allocs.append(alloc)
        return [Buf(alloc, 0, size)]

    def op_hal_allocator_allocate(self, o, a):
        return self._new_alloc(a[-1])

    def op_hal_device_queue_alloca(self, o, a):
        if a[-1] is UNKNOWN:
            raise Unsupported("allocation size depends on run-time data")
        return self._new_alloc(a[-1])

    def op_hal_device_queue_dealloca(self, o, a):
        a[4].alloc.end = self.tick()
        return []

    def _emit(self, cmd: Command):
        for r in cmd.refs:
            al = r.alloc
            if al.kind == "arena" and not (al.start <= cmd.time and (al.end is None or cmd.time <= al.end)):
                raise Unsupported(f"command uses {al.name} outside its allocation lifetime")
            if r.offset + r.length > al.size and al.kind != "arg":
                raise Unsupported(f"binding [{r.offset}, +{r.length}) exceeds {al.name} ({al.size} B)")
        self.commands.setdefault(self.scope, []).append(cmd)
        if self.scope == "__init":
            self._simulate(cmd)

    def _simulate(self, cmd: Command):
        """Track init-time buffer contents so constant-only buffers can move to flash."""
        if cmd.op == "dispatch":
            for r in cmd.refs:
                r.alloc.written_by_dispatch = True
            return
        dst = cmd.refs[-1]
        al = dst.alloc
        if al.kind != "arena" or al.written_by_dispatch:
            return
        if al.content is None:
            al.content = bytearray(al.size)
        if cmd.op == "fill":
            pat = (cmd.pattern & ((1 << (8 * cmd.pattern_length)) - 1)).to_bytes(cmd.pattern_length, "little")
            al.content[dst.offset:dst.offset + cmd.length] = (pat * (cmd.length // cmd.pattern_length + 1))[:cmd.length]
        else:
            src = cmd.refs[0]
            if src.alloc.kind == "pool":
                al.content[dst.offset:dst.offset + cmd.length] = src.alloc.data[src.offset:src.offset + cmd.length]
            elif src.alloc.kind == "arena" and src.alloc.content is not None and not src.alloc.written_by_dispatch:
                al.content[dst.offset:dst.offset + cmd.length] = src.alloc.content[src.offset:src.offset + cmd.length]
            else:
                al.written_by_dispatch = True

    def op_hal_device_queue_fill(self, o, a):
        width = o.operands[7].type.width // 8
        self._emit(Command("fill", self.tick(), [Buf(a[4].alloc, a[4].offset + a[5], a[6])],
                           length=a[6], pattern=a[7], pattern_length=width))
        return []

    def op_hal_device_queue_copy(self, o, a):
        src = Buf(a[4].alloc, a[4].offset + a[5], a[8])
        dst = Buf(a[6].alloc, a[6].offset + a[7], a[8])
        self._emit(Command("copy", self.tick(), [src, dst], length=a[8]))
        return []

    def op_hal_device_queue_update(self, o, a):
        return self.op_hal_device_queue_copy(o, a)

    def op_hal_ex_file_from_memory(self, o, a):
        src = a[3]
        return [Token("file", Buf(src.alloc, src.offset + a[4], a[5]))]

    def op_hal_device_queue_read(self, o, a):
        f = a[4]
        if not isinstance(f, Token) or f.what != "file":
            raise Unsupported("queue.read from an external file")
        src = Buf(f.payload.alloc, f.payload.offset + a[5], a[8])
        dst = Buf(a[6].alloc, a[6].offset + a[7], a[8])
        self._emit(Command("copy", self.tick(), [src, dst], length=a[8]))
        return []

    def op_hal_command_buffer_create(self, o, a):
        return [CommandBuffer()]

    def op_hal_command_buffer_fill_buffer(self, o, a):
        width = o.operands[4].type.width // 8
        a[0].entries.append(("fill", a[1], a[2], a[3], a[4], width))
        return []

    def op_hal_command_buffer_copy_buffer(self, o, a):
        a[0].entries.append(("copy", a[1], a[2], a[3], a[4], a[5]))
        return []

    def op_hal_command_buffer_update_buffer(self, o, a):
        return self.op_hal_command_buffer_copy_buffer(o, a)

    def op_hal_command_buffer_dispatch(self, o, a):
        seg = list(o.attributes["operandSegmentSizes"])
        pos = list(np.cumsum([0] + seg))
        part = [a[pos[i]:pos[i + 1]] for i in range(len(seg))]
        fn = part[2][0]
        if not (isinstance(fn, Token) and fn.what == "function"):
            raise Unsupported("dispatch target is not resolved by name")
        wg = tuple(p[0] for p in part[3:6])
        if any(not isinstance(w, int) for w in wg):
            raise Unsupported(f"workgroup count of {fn.payload} is not a compile-time constant")
        consts = tuple(part[6])
        if any(not isinstance(c, int) for c in consts):
            raise Unsupported(f"push constants of {fn.payload} are not compile-time constants")
        binds = list(zip(part[7], part[8], part[9]))
        a[0].entries.append(("dispatch", fn.payload, wg, consts, binds))
        return []

    def _resolve(self, ref, off, length, slots):
        if isinstance(ref, Buf):
            return Buf(ref.alloc, ref.offset + off, length)
        if isinstance(ref, int) and slots is not None:
            s = slots[ref]
            return Buf(s.alloc, s.offset + off, length)
        raise Unsupported("command buffer binding cannot be resolved statically")

    def _execute(self, cb: CommandBuffer, slots):
        for e in cb.entries:
            if e[0] == "fill":
                tgt = self._resolve(e[1], e[2], e[3], slots)
                self._emit(Command("fill", self.tick(), [tgt], length=e[3], pattern=e[4],
                                   pattern_length=e[5]))
            elif e[0] == "copy":
                src = self._resolve(e[1], e[2], e[5], slots)
                dst = self._resolve(e[3], e[4], e[5], slots)
                self._emit(Command("copy", self.tick(), [src, dst], length=e[5]))
            else:
                refs = [self._resolve(b, off, ln, slots) for b, off, ln in e[4]]
                self._emit(Command("dispatch", self.tick(), refs, export=e[1], workgroups=e[2],
                                   constants=e[3]))

    def op_hal_device_queue_execute(self, o, a):
        for cb in a[4:]:
            self._execute(cb, None)
        return []

    def op_hal_device_queue_execute_indirect(self, o, a):
        n = (len(a) - 5) // 3
        bufs, offs, lens = a[5:5 + n], a[5 + n:5 + 2 * n], a[5 + 2 * n:]
        slots = [Buf(b.alloc, b.offset + off, ln) for b, off, ln in zip(bufs, offs, lens)]
        self._execute(a[4], slots)
        return []


# --------------------------------------------------------------------------------------------
# Packing
# --------------------------------------------------------------------------------------------

def _fold_constants(interp: _Interpreter) -> None:
    """Init-time buffers holding only constant bytes (hoisted splats) become flash constants."""
    init_cmds = interp.commands.get("__init", [])
    folded = set()
    for al in interp.allocs:
        if al.kind == "arena" and al.persistent and al.scope == "__init" \
                and not al.written_by_dispatch and al.content is not None:
            al.kind, al.data = "pool", bytes(al.content)
            folded.add(id(al))
    interp.commands["__init"] = [c for c in init_cmds
                                 if not (c.op != "dispatch" and id(c.refs[-1].alloc) in folded)]


def _pack(allocs: list, base: int) -> int:
    """First-fit by size over lifetime intervals; returns the end offset."""
    placed: list = []
    end = base
    for al in sorted(allocs, key=lambda x: (-x.size, x.start)):
        live = [o for o in placed if not (al.end < o.start or o.end < al.start)]
        off, moved = base, True
        while moved:
            moved = False
            for other in live:
                if off < other.offset + _align(other.size) and other.offset < off + _align(al.size):
                    off, moved = other.offset + _align(other.size), True
        al.offset = off
        placed.append(al)
        end = max(end, off + _align(al.size))
    return end


def extract_schedule(hal_text: str, functions: list) -> Schedule:
    """Interpret ``hal_text`` and return the static schedule of the public ``functions``."""
    from iree.compiler import ir

    ctx = ir.Context()
    try:
        module = ir.Module.parse(hal_text, ctx)
    except Exception as e:  # noqa: BLE001 - the parser raises a generic MLIRError
        raise Unsupported(f"HAL IR does not parse with IREE's bindings: {e}") from e
    interp = _Interpreter(module, ctx, parse_resources(hal_text))
    if interp.library is None:
        raise Unsupported("no static executable library in the HAL program")
    funcs = interp.run(functions)
    _fold_constants(interp)

    pool = bytearray()
    for al in interp.allocs:
        if al.kind == "pool":
            al.offset = len(pool)
            pool += al.data + bytes(_align(len(al.data)) - len(al.data))
    persistent = [a for a in interp.allocs if a.kind == "arena" and a.persistent]
    off = 0
    for al in persistent:
        al.offset = off
        off += _align(al.size)
    persistent_size = off
    arena = persistent_size
    for scope in ["__init"] + functions:
        trans = [a for a in interp.allocs if a.kind == "arena" and not a.persistent and a.scope == scope]
        arena = max(arena, _pack(trans, persistent_size))
    init_cmds = interp.commands.get("__init", [])
    all_funcs = ([Function("__init", [], [], init_cmds)] if init_cmds else []) + funcs
    return Schedule(interp.library, all_funcs, bytes(pool), arena, persistent_size, interp.allocs)
