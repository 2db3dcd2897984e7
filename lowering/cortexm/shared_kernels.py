"""Slice offsets as push constants, so that IREE compiles one kernel for slices of the same shape.

IREE folds a static ``tensor.extract_slice`` / ``tensor.insert_slice`` into the kernel that reads
or writes it: the offsets become constants in the kernel's ``dispatch.tensor.load`` / ``store``.
Two dispatches that differ only in those offsets are then two kernels. The compiler makes many
such dispatches on purpose: ``channel-groups`` computes a depthwise layer's backward pass for
channels [0, 12), then [12, 24), ...; ``patch-stage`` runs the first stage patch by patch; a
trained bias or weight is updated group by group. On a Cortex-M each of these kernels is code in
flash (MobileNetV2-w0.35 `99kb` at 128x128: 24 kernels ``matmul_like_64x12x24_i8xi8xi32`` alone).

:func:`share_slice_kernels` rewrites the linalg module handed to ``iree-compile`` for a Cortex-M
target: where slices of one shape (the same op, source, result and sizes) are taken at two or
more different offsets, the offsets of the dimensions they cut become SSA values hidden behind a
``util.optimization_barrier`` (one per distinct offset and function), so IREE cannot fold them:
it passes them to the kernel as push constants (the host program, ``hal2c``'s static schedule,
records their values per dispatch) and deduplicates the now identical kernels. The results are
the same slices; only where the offsets live changes.

Slices that read the step input keep static offsets: a streamed input (``input_stream.py``) is
brought in per kernel as the byte hull of its static loads. So do the slices our own kernels
(``to-linalg{kernels=ttk}``, ``flow.dispatch``) read or write: they take 64-byte-aligned buffers.
"""

from __future__ import annotations

from collections import defaultdict

from iree.compiler import ir
from iree.compiler.dialects import arith, tensor

from .dispatch_memory import DYNAMIC, static_slice
from .schedule_model import step_input_index

__all__ = ["share_slice_kernels"]

_RESHAPES = ("tensor.expand_shape", "tensor.collapse_shape")
# ops a streamed input may pass through before a slice reads it
_VIEWS = ("tensor.extract_slice", "tensor.expand_shape", "tensor.collapse_shape", "tensor.pad")


def _reads_input(value, step_input) -> bool:
    while step_input is not None:
        if value == step_input:
            return True
        owner = value.owner
        if isinstance(owner, ir.Block) or owner.name not in _VIEWS:
            return False
        value = owner.operands[0]
    return False


def _touches_our_kernels(op) -> bool:
    """Whether slice ``op`` feeds (an extract) or takes (an insert) a ``flow.dispatch`` of our own
    kernels (``to-linalg{kernels=ttk}``), through reshapes: those take their buffers at a
    64-byte-aligned offset, which a slice at a push-constant offset does not promise."""
    if op.name == "tensor.insert_slice":
        v = op.operands[0]
        while not isinstance(v.owner, ir.Block) and v.owner.name in _RESHAPES:
            v = v.owner.operands[0]
        return not isinstance(v.owner, ir.Block) and v.owner.name == "flow.dispatch"
    work = [op.results[0]]
    while work:
        for use in work.pop().uses:
            user = use.owner
            if user.name == "flow.dispatch":
                return True
            if user.name in _RESHAPES:
                work.append(user.results[0])
    return False


def _cut_dims(shape, sizes) -> tuple:
    """The channel dims a static slice with ``sizes`` of a tensor of ``shape`` cuts, or () when it
    cuts none or others."""
    dims = tuple(d for d, (n, size) in enumerate(zip(shape, sizes)) if size != n)
    return dims if set(dims) <= _channel_dims(shape) else ()


def _channel_dims(shape: list) -> set:
    """The dims of a tensor that hold channels: the last one (NHWC activations, HWCF / HWC
    weights, biases), and a 1x1 conv weight's input channels. A patch's or a band's spatial
    slices keep static offsets: IREE places their zero padding and in-place inserts from them."""
    dims = {len(shape) - 1}
    if len(shape) == 4 and shape[0] == shape[1] == 1:
        dims.add(2)
    return dims


def _step_input(func, train: str, predict: str):
    args = func.regions[0].blocks[0].arguments
    index = step_input_index(ir.StringAttr(func.attributes["sym_name"]).value, len(args), train, predict)
    return None if index is None else args[index]


def _rewrite_function(func, step_input) -> int:
    block = func.regions[0].blocks[0]
    # (op, types of the operands and the result, sizes, strides, cut dims) -> [(op, its offsets)]
    groups = defaultdict(list)
    for op in block.operations:
        op = op.operation
        if op.name not in ("tensor.extract_slice", "tensor.insert_slice"):
            continue
        whole = ir.RankedTensorType(op.operands[0 if op.name == "tensor.extract_slice" else 1].type).shape
        got = static_slice(op, len(whole))
        if got is None:
            continue
        offsets, sizes, strides = (tuple(v) for v in got)
        dims = _cut_dims(whole, sizes)
        if not dims or (op.name == "tensor.extract_slice" and _reads_input(op.operands[0], step_input)) \
                or _touches_our_kernels(op):
            continue
        key = (op.name, *(str(v.type) for v in op.operands), str(op.results[0].type), sizes, strides, dims)
        groups[key].append((op, offsets))
    shared = [(key[-1], key[-3], key[-2], members) for key, members in groups.items()
              if len({offsets for _, offsets in members}) > 1]
    if not shared:
        return 0
    barriers = {}
    index = ir.IndexType.get()

    def hidden(n: int):
        if n not in barriers:   # at the block's start (before its first op now: ops get erased)
            start = ir.InsertionPoint(block.operations[0])
            with ir.Location.unknown():
                c = arith.ConstantOp(index, n, ip=start)
                barriers[n] = ir.Operation.create("util.optimization_barrier", results=[index],
                                                  operands=[c.result], ip=start).result
        return barriers[n]

    count = 0
    for dims, sizes, strides, members in shared:
        for op, offsets in members:
            static = [DYNAMIC if d in dims else o for d, o in enumerate(offsets)]
            dynamic = [hidden(offsets[d]) for d in dims]
            ip = ir.InsertionPoint(op)
            if op.name == "tensor.extract_slice":
                new = tensor.ExtractSliceOp(op.results[0].type, op.operands[0], dynamic, [], [], static, sizes,
                                            strides, loc=op.location, ip=ip)
            else:
                new = tensor.InsertSliceOp(op.operands[0], op.operands[1], dynamic, [], [], static, sizes, strides,
                                           results=[op.results[0].type], loc=op.location, ip=ip)
            op.results[0].replace_all_uses_with(new.result)
            op.erase()
            count += 1
    return count


def share_slice_kernels(text: str, train: str = "train_step", predict: str = "predict") -> tuple[str, int]:
    """``text`` (a linalg module, printed with its locations) with the offsets of same-shaped
    slices taken at different offsets hidden behind barriers (module docstring); also how many
    slices it rewrote. ``train`` / ``predict``: the functions whose step input (``train(state...,
    input, label)``, ``predict(params..., input)``) keeps its static slices."""
    with ir.Context():
        try:
            module = ir.Module.parse(text)
        except ir.MLIRError:   # not valid MLIR: iree-compile says why (CompileError, reproducer)
            return text, 0
        count = 0
        for op in module.body.operations:
            op = op.operation
            if op.name == "func.func" and op.regions[0].blocks:
                count += _rewrite_function(op, _step_input(op, train, predict))
        if not count:
            return text, 0
        return module.operation.get_asm(enable_debug_info=True), count
