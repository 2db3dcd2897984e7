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

Structure: one handler per op (``@_handles("hal.device.queue.copy")``), each reading its operands
and attributes through the named accessors of IREE's generated op views; ops that are safe to
skip are listed with their reason in :data:`IGNORED_OPS`; any other op stops the build.
Golden inputs and outputs for this module live in ``tests/fixtures/hal/``.
"""

from __future__ import annotations

import operator

import numpy as np
from iree.compiler import ir
from iree.compiler.dialects import arith, cf, hal, util  # noqa: F401 - registers the op views

from .hal_constants import constant_bytes, parse_resources
from .schedule_model import (ALIGN, NULL, UNKNOWN, Alloc, Buf, Command, CommandBuffer, Function,
                             IODesc, Schedule, Token, Unsupported, View, _align, _dtype_size, loc_names)

__all__ = ["ALIGN", "IGNORED_OPS", "Schedule", "Unsupported", "extract_schedule", "public_functions"]

# --------------------------------------------------------------------------------------------
# Reading ops: IREE's generated op views and their named accessors
# --------------------------------------------------------------------------------------------
# Every operand and attribute is read by its ODS name (``view.source_buffer``), never by
# position: if an IREE release adds, drops or renames one, the read fails loudly here instead of
# silently shifting the meaning of the others.

def _view(o):
    """The generated op view (e.g. ``hal.DeviceQueueCopyOp``) of operation ``o``."""
    view = o.opview
    if type(view) is ir.OpView:
        raise Unsupported(f"IREE's Python bindings have no op class for '{o.name}': the static "
                          "scheduler reads every op through its named accessors")
    return view


def _get(view, name: str):
    """Operand, operand list or attribute ``name`` of ``view``; a missing accessor means the op
    changed in this IREE release and stops the build, naming the op and the accessor."""
    try:
        return getattr(view, name)
    except AttributeError:
        raise Unsupported(f"'{view.operation.name}' has no accessor '{name}' in IREE's Python "
                          "bindings: the op changed in this IREE release; hal2c's handler for it "
                          "must be updated") from None


class _Env(dict):
    """SSA value -> interpreted value; ``env(value)`` / ``env.all(values)`` read operands."""

    def __call__(self, value):
        return self[value]

    def all(self, values) -> list:
        return [self[v] for v in values]


def _attr_value(attr):
    if isinstance(attr, ir.BoolAttr):
        return int(attr.value)
    if isinstance(attr, ir.IntegerAttr):
        return attr.value
    raise Unsupported(f"value {attr} is not an integer; the static scheduler evaluates only "
                      "integer host values")


def _symbol(attr) -> str:
    return ir.FlatSymbolRefAttr(attr).value


def _int_width(t) -> int:
    if isinstance(t, ir.IndexType):
        return 64
    if isinstance(t, ir.IntegerType):
        return t.width
    raise Unsupported(f"type {t} is not an integer type")


# Ops that have no effect on a static schedule, each with the reason. Any other op without a
# handler below is an Unsupported error naming it.
IGNORED_OPS = {
    "hal.command_buffer.execution_barrier":
        "the runtime executes a schedule's commands one at a time in program order, so every "
        "barrier between them already holds",
    "hal.command_buffer.finalize":
        "ends recording; recorded commands are only replayed by queue.execute here",
    "hal.device.queue.barrier":
        "orders fences on the queue; the device has one in-order queue and no fences",
    "hal.device.queue.flush":
        "a submission hint; commands are recorded in program order as they are issued",
}

# Static answers of the one device: IREE's local device running our static library.
DEVICE_QUERIES = {
    "hal.device.id": lambda key: key.startswith("local"),
    "hal.executable.format": lambda key: key == "static",
}

_P = arith.CmpIPredicate
_CMP = {_P.eq: operator.eq, _P.ne: operator.ne,
        _P.slt: operator.lt, _P.sle: operator.le, _P.sgt: operator.gt, _P.sge: operator.ge,
        _P.ult: operator.lt, _P.ule: operator.le, _P.ugt: operator.gt, _P.uge: operator.ge}
_UNSIGNED = {_P.ult, _P.ule, _P.ugt, _P.uge}


def _divsi(a, b):
    q = abs(a) // abs(b)
    return q if (a < 0) == (b < 0) else -q


_BIN = {"arith.addi": operator.add, "arith.subi": operator.sub, "arith.muli": operator.mul,
        "arith.divui": operator.floordiv, "arith.divsi": _divsi, "arith.remui": operator.mod,
        "arith.ceildivui": lambda a, b: -(-a // b), "arith.andi": operator.and_,
        "arith.ori": operator.or_, "arith.xori": operator.xor, "arith.shli": operator.lshift,
        "arith.shrui": operator.rshift, "arith.maxui": max, "arith.minui": min,
        "arith.maxsi": max, "arith.minsi": min}

_CASTS = ("arith.index_cast", "arith.index_castui", "arith.extui", "arith.extsi", "arith.trunci")

_HANDLERS: dict = {}


def _handles(*names):
    """Register a handler ``fn(interp, view, env) -> list of result values`` for op ``names``."""
    def register(fn):
        for n in names:
            _HANDLERS[n] = fn
        return fn
    return register


# --------------------------------------------------------------------------------------------
# Interpreter state and driver
# --------------------------------------------------------------------------------------------

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
                view = _view(op.operation)
                init = _get(view, "initial_value")
                self.globals[_get(view, "sym_name").value] = _attr_value(init) if init is not None else None
            elif name == "util.func":
                self.funcs[_get(_view(op.operation), "sym_name").value] = op
            elif name == "util.initializer":
                self.initializers.append(op)
            elif name == "hal.executable":
                self._read_executable(op)
            elif name != "hal.executable.source":
                raise Unsupported(f"unknown top-level op '{name}'")

    def _read_executable(self, op):
        for inner in op.regions[0].blocks[0].operations:
            if inner.operation.name != "hal.executable.binary":
                continue
            view = _view(inner.operation)
            if _get(view, "format").value != "static":
                raise Unsupported("executable is not a static library (need --iree-llvmcpu-link-static)")
            raw = bytes(int(x) & 0xFF for x in np.array(_get(view, "data")))
            if self.library is not None:
                raise Unsupported("more than one executable library (keep --iree-hal-link-executables)")
            self.library = raw.rstrip(b"\0").decode()

    def tick(self) -> int:
        self.clock += 1
        return self.clock

    def run_region(self, region, args):
        block = region.blocks[0]
        env = _Env(zip(block.arguments, args))
        while True:
            nxt = None
            for op in block.operations:
                o = op.operation
                name = o.name
                if name == "cf.br":
                    nxt = (o.successors[0], env.all(_get(_view(o), "destOperands")))
                    break
                if name == "cf.cond_br":
                    view = _view(o)
                    cond = env(_get(view, "condition"))
                    if not isinstance(cond, int):
                        raise Unsupported("host control flow depends on run-time data")
                    nxt = ((o.successors[0], env.all(_get(view, "trueDestOperands"))) if cond else
                           (o.successors[1], env.all(_get(view, "falseDestOperands"))))
                    break
                if name == "util.return":
                    return env.all(_get(_view(o), "operands_"))
                results = self.eval(o, env)
                if len(results) != len(o.results):
                    raise Unsupported(f"'{name}': handler gave {len(results)} values for "
                                      f"{len(o.results)} results")
                env.update(zip(o.results, results))
            if nxt is None:
                raise Unsupported("block without terminator")
            block = nxt[0]
            env.update(zip(block.arguments, nxt[1]))

    def run(self, public: list):
        for init in self.initializers:
            self.run_region(init.regions[0], [])
        for a in self.allocs:
            if a.end is None:
                a.persistent = True
        return [self.run_function(name) for name in public]

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

    def eval(self, o, env: _Env) -> list:
        name = o.name
        if name in IGNORED_OPS:
            if len(o.results):
                raise Unsupported(f"'{name}' now has results; it is no longer a no-op for the "
                                  "static scheduler")
            return []
        handler = _HANDLERS.get(name)
        if handler is None:
            raise Unsupported(f"HAL op '{name}' is not supported by the static scheduler")
        return handler(self, _view(o), env)

    # ---- helpers shared by handlers -----------------------------------------------------
    def new_alloc(self, size):
        if not isinstance(size, int):
            raise Unsupported("allocation size depends on run-time data")
        alloc = Alloc("arena", size, self.scope, name=f"alloc{len(self.allocs)}", start=self.tick())
        self.allocs.append(alloc)
        return Buf(alloc, 0, size)

    def emit(self, cmd: Command):
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

    def resolve(self, ref, off, length, slots):
        if isinstance(ref, Buf):
            return Buf(ref.alloc, ref.offset + off, length)
        if isinstance(ref, int) and slots is not None:
            s = slots[ref]
            return Buf(s.alloc, s.offset + off, length)
        raise Unsupported("command buffer binding cannot be resolved statically")

    def execute(self, cb: CommandBuffer, slots):
        for e in cb.entries:
            if e[0] == "fill":
                _, target, offset, length, pattern, width = e
                self.emit(Command("fill", self.tick(), [self.resolve(target, offset, length, slots)],
                                  length=length, pattern=pattern, pattern_length=width))
            elif e[0] == "copy":
                _, source, source_offset, target, target_offset, length = e
                src = self.resolve(source, source_offset, length, slots)
                dst = self.resolve(target, target_offset, length, slots)
                self.emit(Command("copy", self.tick(), [src, dst], length=length))
            else:
                _, export, workgroups, constants, bindings, layers = e
                refs = [self.resolve(b, off, ln, slots) for b, off, ln in bindings]
                self.emit(Command("dispatch", self.tick(), refs, export=export,
                                  workgroups=workgroups, constants=constants, layers=layers))


# --------------------------------------------------------------------------------------------
# Handlers: arith and util
# --------------------------------------------------------------------------------------------

@_handles("arith.constant")
def _arith_constant(it, op, env):
    return [_attr_value(_get(op, "value"))]


@_handles(*_BIN)
def _arith_binary(it, op, env):
    a, b = env(_get(op, "lhs")), env(_get(op, "rhs"))
    if UNKNOWN in (a, b):
        return [UNKNOWN]
    return [_BIN[op.operation.name](a, b)]


@_handles("arith.cmpi")
def _arith_cmpi(it, op, env):
    lhs, rhs = _get(op, "lhs"), _get(op, "rhs")
    a, b = env(lhs), env(rhs)
    if not (isinstance(a, int) and isinstance(b, int)):
        return [UNKNOWN]
    try:
        pred = arith.CmpIPredicate(_get(op, "predicate").value)
    except ValueError:
        raise Unsupported(f"arith.cmpi predicate {_get(op, 'predicate')} is unknown") from None
    if pred in _UNSIGNED:
        mask = (1 << _int_width(lhs.type)) - 1
        a, b = a & mask, b & mask
    return [int(_CMP[pred](a, b))]


@_handles("arith.select")
def _arith_select(it, op, env):
    cond = env(_get(op, "condition"))
    if not isinstance(cond, int):
        raise Unsupported("host select depends on run-time data")
    return [env(_get(op, "true_value")) if cond else env(_get(op, "false_value"))]


@_handles(*_CASTS)
def _arith_cast(it, op, env):
    v = env(_get(op, "in_"))
    if op.operation.name == "arith.trunci" and isinstance(v, int):
        width = _int_width(_get(op, "out").type)
        if not -(1 << (width - 1)) <= v < (1 << width):
            raise Unsupported(f"arith.trunci of {v} to i{width} drops bits")
    return [v]


@_handles("util.null")
def _util_null(it, op, env):
    return [NULL]


@_handles("util.cmp.eq")
def _util_cmp_eq(it, op, env):
    a, b = env(_get(op, "lhs")), env(_get(op, "rhs"))
    return [int(a is b or a == b)]


@_handles("util.optimization_barrier")
def _util_optimization_barrier(it, op, env):
    return env.all(_get(op, "operands_"))


@_handles("util.global.load")
def _util_global_load(it, op, env):
    return [it.globals[_symbol(_get(op, "global_"))]]


@_handles("util.global.store")
def _util_global_store(it, op, env):
    sym = _symbol(_get(op, "global_"))
    if it.scope != "__init":
        raise Unsupported(f"@{it.scope} stores to mutable global @{sym}: training state "
                          "must be function arguments tied to results (iree.abi.output)")
    it.globals[sym] = env(_get(op, "value"))
    return []


@_handles("util.call")
def _util_call(it, op, env):
    callee = _symbol(_get(op, "callee"))
    if callee not in it.funcs:
        raise Unsupported(f"call to @{callee}, which is not defined in the HAL program")
    return it.run_region(it.funcs[callee].regions[0], env.all(_get(op, "operands_")))


@_handles("util.status.check_ok")
def _util_status_check_ok(it, op, env):
    if env(_get(op, "status")) not in (0, UNKNOWN):
        msg = _get(op, "message")
        raise Unsupported(f"host program fails on the static device: {msg.value[:200] if msg else ''}")
    return []


@_handles("util.buffer.constant")
def _util_buffer_constant(it, op, env):
    data = constant_bytes(str(_get(op, "value")), it.ctx, it.resources)
    alloc = Alloc("pool", len(data), it.scope, name="constant", data=data, persistent=True)
    it.allocs.append(alloc)
    return [Buf(alloc, 0, len(data))]


@_handles("util.buffer.size")
def _util_buffer_size(it, op, env):
    return [env(_get(op, "operand")).length]


# --------------------------------------------------------------------------------------------
# Handlers: HAL device, executables, fences, type codes
# --------------------------------------------------------------------------------------------

@_handles("hal.devices.count")
def _hal_devices_count(it, op, env):
    return [1]


@_handles("hal.devices.get")
def _hal_devices_get(it, op, env):
    if env(_get(op, "index")) != 0:
        raise Unsupported("the host program asks for a second device; the target has one")
    return [Token("device")]


@_handles("hal.device.query")
def _hal_device_query(it, op, env):
    cat, key = _get(op, "category").value, _get(op, "key").value
    if cat not in DEVICE_QUERIES:
        raise Unsupported(f"device query {cat}::{key} has no static answer")
    return [1, int(DEVICE_QUERIES[cat](key))]


@_handles("hal.device.allocator")
def _hal_device_allocator(it, op, env):
    return [Token("allocator")]


@_handles("hal.executable.create")
def _hal_executable_create(it, op, env):
    return [Token("executable")]


@_handles("hal.executable.lookup.function")
def _hal_executable_lookup_function(it, op, env):
    return [Token("function", ir.SymbolRefAttr(_get(op, "entry_point")).value[-1])]


@_handles("hal.fence.create", "hal.fence.join")
def _hal_fence(it, op, env):
    return [Token("fence")]


@_handles("hal.fence.await")
def _hal_fence_await(it, op, env):
    return [0]


@_handles("hal.element_type")
def _hal_element_type(it, op, env):
    return [str(ir.TypeAttr(_get(op, "type_")).value)]


@_handles("hal.encoding_type")
def _hal_encoding_type(it, op, env):
    enc = _get(op, "encoding")
    if enc is not None:
        raise Unsupported(f"tensor encoding {enc} is not dense row-major")
    return ["dense_row_major"]


@_handles("hal.memory_type", "hal.buffer_usage")
def _hal_type_bits(it, op, env):
    return [0]


# --------------------------------------------------------------------------------------------
# Handlers: buffers and buffer views
# --------------------------------------------------------------------------------------------

@_handles("hal.buffer_view.assert")
def _hal_buffer_view_assert(it, op, env):
    view = env(_get(op, "buffer_view"))
    dtype = env(_get(op, "element_type"))
    shape = tuple(env.all(_get(op, "shape")))
    if any(not isinstance(d, int) for d in shape):
        raise Unsupported("dynamic shape on a function argument")
    arg = view.buf.alloc
    if arg.kind == "arg" and it.scope != "__init":
        view.shape, view.dtype = shape, dtype
        it.inputs[arg.arg] = IODesc(shape, dtype, 0)
    return []


@_handles("hal.buffer_view.buffer")
def _hal_buffer_view_buffer(it, op, env):
    view = env(_get(op, "buffer_view"))
    arg = view.buf.alloc
    if arg.kind == "arg" and arg.arg in it.inputs:
        desc = it.inputs[arg.arg]
        n = int(np.prod(desc.shape)) if desc.shape else 1
        desc.length = n * _dtype_size(desc.dtype)
        arg.size = desc.length
        return [Buf(arg, 0, desc.length)]
    return [view.buf]


@_handles("hal.buffer.assert")
def _hal_buffer_assert(it, op, env):
    buf, need = env(_get(op, "buffer")), env(_get(op, "minimum_length"))
    if isinstance(need, int) and isinstance(buf, Buf) and buf.length < need:
        raise Unsupported(f"{_get(op, 'message').value}: buffer of {buf.length} B, the host "
                          f"program requires at least {need} B")
    return []


@_handles("hal.buffer_view.dim")
def _hal_buffer_view_dim(it, op, env):
    raise Unsupported("dynamic shapes (hal.buffer_view.dim) cannot be scheduled statically")


@_handles("hal.buffer_view.rank")
def _hal_buffer_view_rank(it, op, env):
    raise Unsupported("dynamic ranks (hal.buffer_view.rank) cannot be scheduled statically")


@_handles("hal.buffer_view.create")
def _hal_buffer_view_create(it, op, env):
    buf = env(_get(op, "source_buffer"))
    offset, length = env(_get(op, "source_offset")), env(_get(op, "source_length"))
    return [View(Buf(buf.alloc, buf.offset + offset, length), tuple(env.all(_get(op, "shape"))),
                 env(_get(op, "element_type")))]


@_handles("hal.buffer.length")
def _hal_buffer_length(it, op, env):
    return [env(_get(op, "buffer")).length]


@_handles("hal.buffer.subspan")
def _hal_buffer_subspan(it, op, env):
    buf = env(_get(op, "source_buffer"))
    return [Buf(buf.alloc, buf.offset + env(_get(op, "source_offset")), env(_get(op, "length")))]


@_handles("hal.allocator.import")
def _hal_allocator_import(it, op, env):
    src = env(_get(op, "source"))
    return [1, Buf(src.alloc, src.offset + env(_get(op, "offset")), env(_get(op, "length")))]


@_handles("hal.allocator.allocate")
def _hal_allocator_allocate(it, op, env):
    return [it.new_alloc(env(_get(op, "result_size")))]


@_handles("hal.device.queue.alloca")
def _hal_device_queue_alloca(it, op, env):
    return [it.new_alloc(env(_get(op, "result_size")))]


@_handles("hal.device.queue.dealloca")
def _hal_device_queue_dealloca(it, op, env):
    env(_get(op, "buffer")).alloc.end = it.tick()
    return []


@_handles("hal.ex.file.from_memory")
def _hal_ex_file_from_memory(it, op, env):
    buf = env(_get(op, "buffer"))
    return [Token("file", Buf(buf.alloc, buf.offset + env(_get(op, "offset")), env(_get(op, "length"))))]


# --------------------------------------------------------------------------------------------
# Handlers: queue operations (executed at once) and command buffers (recorded, then executed)
# --------------------------------------------------------------------------------------------

@_handles("hal.device.queue.fill")
def _hal_device_queue_fill(it, op, env):
    pattern = _get(op, "pattern")
    target, offset, length = (env(_get(op, "target_buffer")), env(_get(op, "target_offset")),
                              env(_get(op, "length")))
    it.emit(Command("fill", it.tick(), [Buf(target.alloc, target.offset + offset, length)],
                    length=length, pattern=env(pattern), pattern_length=_int_width(pattern.type) // 8))
    return []


@_handles("hal.device.queue.copy", "hal.device.queue.update")
def _hal_device_queue_copy(it, op, env):
    src, dst = env(_get(op, "source_buffer")), env(_get(op, "target_buffer"))
    length = env(_get(op, "length"))
    it.emit(Command("copy", it.tick(),
                    [Buf(src.alloc, src.offset + env(_get(op, "source_offset")), length),
                     Buf(dst.alloc, dst.offset + env(_get(op, "target_offset")), length)],
                    length=length))
    return []


@_handles("hal.device.queue.read")
def _hal_device_queue_read(it, op, env):
    f = env(_get(op, "source_file"))
    if not isinstance(f, Token) or f.what != "file":
        raise Unsupported("queue.read from an external file")
    dst, length = env(_get(op, "target_buffer")), env(_get(op, "length"))
    src = Buf(f.payload.alloc, f.payload.offset + env(_get(op, "source_offset")), length)
    it.emit(Command("copy", it.tick(),
                    [src, Buf(dst.alloc, dst.offset + env(_get(op, "target_offset")), length)],
                    length=length))
    return []


@_handles("hal.command_buffer.create")
def _hal_command_buffer_create(it, op, env):
    return [CommandBuffer()]


@_handles("hal.command_buffer.fill_buffer")
def _hal_command_buffer_fill_buffer(it, op, env):
    pattern = _get(op, "pattern")
    env(_get(op, "command_buffer")).entries.append(
        ("fill", env(_get(op, "target_buffer")), env(_get(op, "target_offset")),
         env(_get(op, "length")), env(pattern), _int_width(pattern.type) // 8))
    return []


@_handles("hal.command_buffer.copy_buffer", "hal.command_buffer.update_buffer")
def _hal_command_buffer_copy_buffer(it, op, env):
    env(_get(op, "command_buffer")).entries.append(
        ("copy", env(_get(op, "source_buffer")), env(_get(op, "source_offset")),
         env(_get(op, "target_buffer")), env(_get(op, "target_offset")), env(_get(op, "length"))))
    return []


@_handles("hal.command_buffer.dispatch")
def _hal_command_buffer_dispatch(it, op, env):
    fn = env(_get(op, "entry_point"))
    if not (isinstance(fn, Token) and fn.what == "function"):
        raise Unsupported("dispatch target is not resolved by name")
    wg = tuple(env(_get(op, f"workgroup_{d}")) for d in "xyz")
    if any(not isinstance(w, int) for w in wg):
        raise Unsupported(f"workgroup count of {fn.payload} is not a compile-time constant")
    consts = tuple(env.all(_get(op, "constants")))
    if any(not isinstance(c, int) for c in consts):
        raise Unsupported(f"push constants of {fn.payload} are not compile-time constants")
    binds = list(zip(env.all(_get(op, "binding_buffers")), env.all(_get(op, "binding_offsets")),
                     env.all(_get(op, "binding_lengths"))))
    env(_get(op, "command_buffer")).entries.append(("dispatch", fn.payload, wg, consts, binds,
                                                   tuple(loc_names(op.location))))
    return []


@_handles("hal.device.queue.execute")
def _hal_device_queue_execute(it, op, env):
    it.execute(env(_get(op, "command_buffer")), None)
    return []


@_handles("hal.device.queue.execute.indirect")
def _hal_device_queue_execute_indirect(it, op, env):
    slots = [Buf(b.alloc, b.offset + off, ln) for b, off, ln in
             zip(env.all(_get(op, "binding_buffers")), env.all(_get(op, "binding_offsets")),
                 env.all(_get(op, "binding_lengths")))]
    it.execute(env(_get(op, "command_buffer")), slots)
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


def _parse(hal_text: str):
    ctx = ir.Context()
    try:
        return ir.Module.parse(hal_text, ctx), ctx
    except Exception as e:  # noqa: BLE001 - the parser raises a generic MLIRError
        raise Unsupported(f"HAL IR does not parse with IREE's bindings: {e}") from e


def public_functions(hal_text: str) -> list:
    """Names of the public ``util.func`` entry points of a HAL program, in program order."""
    module, _ = _parse(hal_text)
    names = []
    for op in module.body.operations:
        if op.operation.name == "util.func":
            view = _view(op.operation)
            vis = _get(view, "sym_visibility")
            if (vis is None or vis.value == "public") and len(op.operation.regions[0].blocks):
                names.append(_get(view, "sym_name").value)
    return names


def extract_schedule(hal_text: str, functions: list) -> Schedule:
    """Interpret ``hal_text`` and return the static schedule of the public ``functions``."""
    module, ctx = _parse(hal_text)
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
