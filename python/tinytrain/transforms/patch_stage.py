"""`patch-stage`: run the frozen high-resolution first stage of an int8 network patch by patch.

At 128x128 the first blocks of the paper's networks hold the biggest activations of the whole
training step (MobileNetV2-w0.35's second block expands to 64x64x48 int8 = 192 KB) although no
gradient ever reaches them: with a sparse update they are inference only. This pass splits the
output of that stage (the "cut", a tensor at 1/`factor` of the input resolution or more) into a
`grid` x `grid` set of spatial patches and computes each patch separately from the slice of the
input its receptive field needs (the halo is recomputed, as in MCUNetV2's patch-based inference),
so each intermediate tensor exists only at patch size. The patches are chained one after the other
(each patch's input slice is taken after the previous patch has been written: a
`util.optimization_barrier` dependency), so IREE never schedules two patches at once.

The result is bit-identical: every output element is computed by the same integer operations from
the same inputs. A convolution's zero padding is applied only where the patch touches the border of
the tensor (`tensor.pad` with the input zero point), and the patch's convolution then runs without
padding.

Which ops form the stage: starting at the function's input (`tinytrain.input`), the
`tinytrain.qconv2d` / `tinytrain.qadd` / `tinytrain.quantize` ops whose activation operands come from
the stage and whose weight and bias are frozen (not `tinytrain.trainable`). A cut is valid where
exactly one stage value is used after it (a block boundary). The pass takes the last valid cut whose
spatial size is at least the input's / `factor` and holds the fewest bytes (the deepest of equals:
a block's output, not the expanded tensor inside the next block). A function whose first op is trained, or whose
stage is smaller than the grid, is left as it is. Each patched function gets a
`tinytrain.patch_stage` attribute for the reports: grid, cut layer, cut shape, number of ops, and
the stage's multiply-accumulates whole (`macs`) and patched (`patched_macs`, with the halo).

Later stages (`stages`, default 2): from the assembled cut, the next stage (down to 1/(2·`factor`)
of the input's height, then 1/(4·`factor`), ...) in 2x2 patches, one after the other, where that
pays: among its valid cuts the one whose patches have the smallest estimated peak (the stage's
input and output whole beside the worst op of its largest patch: operands, result and a padded
convolution's zero-filled window), taken if that is at most 3/4 of the same estimate for the whole
tensors. Halos grow with every block a stage spans, so this is usually the next downsampling block
alone: ProxylessNAS-w0.3 and MCUNet-5FPS at 128x128 expand 32x32x16 to 48 channels for a 7x7
stride-2 depthwise convolution (a 37x37x48 padded tensor, their forward's peak, beside its input)
right after the first stage. Reported as `tinytrain.patch_stage2`, ... (same fields).

Options: `grid` (patches per side, 1 disables the pass), `factor` (how far down the stage goes),
`stages` (how many consecutive stages at most; 1: the first only).
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from torch_mlir import ir
from torch_mlir.dialects import arith, func, tensor

from tinytrain.errors import CompileError
from tinytrain.irfuncs import arg_attrs, layer_name, tensor_bytes
from tinytrain.passes import ModulePass

__all__ = ["PatchStagePass", "find_stage"]

_ELEMENTWISE = ("tinytrain.qadd", "tinytrain.quantize")
_CONV = "tinytrain.qconv2d"


def _shape(v: ir.Value) -> list[int]:
    return list(ir.RankedTensorType(v.type).shape)


def _ints(op, name: str) -> list[int]:
    return list(ir.DenseI64ArrayAttr(op.attributes[name]))


def _attrs(op) -> dict:
    m = op.operation.attributes
    return {m[i].name: m[i].attr for i in range(len(m))}


@dataclasses.dataclass
class Stage:
    """The ops of a function's patchable stage (block order) and its cut value."""

    input: ir.Value
    ops: list
    cut: ir.Value

    @property
    def cut_layer(self) -> str:
        return layer_name(self.ops[-1])


def _conv_macs(op, out_shape) -> int:
    kh, kw, cin_g, cout = ir.RankedTensorType(op.operands[1].type).shape
    n, oh, ow, _ = out_shape
    return n * oh * ow * cout * kh * kw * cin_g


def _frozen_operand(v: ir.Value, frozen_args: set) -> bool:
    if isinstance(v.owner, ir.Block):
        return ir.BlockArgument(v).arg_number in frozen_args
    return v.owner.name == "arith.constant"


def _accept(op, in_stage, frozen) -> bool:
    name = op.operation.name
    if name == _CONV:
        return in_stage(op.operands[0]) and all(frozen(v) for v in op.operands[1:])
    return name in _ELEMENTWISE and all(in_stage(v) for v in op.operands)


def find_stage(fn: func.FuncOp, factor: int) -> Stage | None:
    """The patchable stage of `fn` (module docstring), or None."""
    return grow_stage(fn, factor, _accept)


def grow_stage(fn: func.FuncOp, factor: int, accept, input_escapes: bool = True) -> Stage | None:
    """The stage of `fn` that `accept(op, in_stage, frozen)` admits op by op from the function's
    input (`in_stage(v)`: v is the input or a result of an admitted op; `frozen(v)`: v is a frozen
    parameter or a constant), cut at the last valid cut (exactly one stage value used after it;
    with `input_escapes`, the input counts as a stage value) at least 1/`factor` of the input's
    height that holds the fewest bytes; or None."""
    best = None
    for stage in stage_cuts(fn, factor, accept, input_escapes):
        if best is None or tensor_bytes(stage.cut) <= tensor_bytes(best.cut):
            best = stage
    return best


def stage_cuts(fn: func.FuncOp, factor: int, accept, input_escapes: bool = True,
               start: ir.Value | None = None) -> list[Stage]:
    """Every stage of `fn` `grow_stage` considers (one per valid cut at least 1/`factor` of the
    function input's height, shallowest first), grown from `start` (a stage already patched) when
    given, else from the function's input."""
    block = fn.regions[0].blocks[0]
    attrs = arg_attrs(fn)
    inputs = [i for i, d in enumerate(attrs) if "tinytrain.input" in d]
    if len(inputs) != 1:
        return []
    x = block.arguments[inputs[0]]
    if len(_shape(x)) != 4:
        return []
    h_in = _shape(x)[1]
    if start is not None:
        if len(_shape(start)) != 4:
            return []
        x = start
    frozen_args = {i for i, d in enumerate(attrs) if "tinytrain.param" in d and "tinytrain.trainable" not in d}
    members: list = []
    values = [x]

    def in_stage(v):
        return any(v == s for s in values)

    for op in block.operations:
        if accept(op, in_stage, lambda v: _frozen_operand(v, frozen_args)) and len(op.results) == 1 and \
                len(_shape(op.results[0])) == 4:
            members.append(op)
            values.append(op.results[0])
    # a value escapes the prefix members[:k] if a user of it is outside the stage or at a position >= k:
    # `reach[j]` is the value's last user position (len(members) for a user outside the stage)
    position = {m.operation: i for i, m in enumerate(members)}
    candidates = ([x] if input_escapes else []) + [m.results[0] for m in members]
    reach = []
    for v in candidates:
        last = -1
        for u in v.uses:
            last = max(last, position.get(u.owner.operation, len(members)))
        reach.append(last)
    offset = 1 if input_escapes else 0  # candidates[offset + i] is members[i]'s result
    found = []
    for k in range(1, len(members) + 1):
        # the cut (members[k - 1]'s result) must escape, every other value before it must not
        if reach[offset + k - 1] < k:
            continue
        if any(reach[j] >= k for j in range(offset + k - 1)):
            continue
        cut = members[k - 1].results[0]
        if _shape(cut)[1] * factor >= h_in:
            found.append(Stage(x, members[:k], cut))
    return found


def _split(n: int, parts: int) -> list[tuple[int, int]]:
    b = [round(i * n / parts) for i in range(parts + 1)]
    return [(b[i], b[i + 1]) for i in range(parts) if b[i + 1] > b[i]]


def _conv_window(op, out_box):
    """(input box needed, unclipped) for output box ((r0, r1), (c0, c1)) of a conv."""
    k = ir.RankedTensorType(op.operands[1].type).shape[:2]
    s, p = _ints(op, "strides"), _ints(op, "padding")
    return tuple((a * s[i] - p[i], (b - 1) * s[i] - p[i] + k[i]) for i, (a, b) in enumerate(out_box))


def _clip(box, hw):
    return tuple((max(0, a), min(n, b)) for (a, b), n in zip(box, hw))


def _union(a, b):
    if a is None:
        return b
    return tuple((min(x0, y0), max(x1, y1)) for (x0, x1), (y0, y1) in zip(a, b))


class _Patch:
    """Builds one patch of the stage (insertion point set by the caller)."""

    def __init__(self, stage: Stage, out_box):
        self.stage = stage
        values = [stage.input] + [m.results[0] for m in stage.ops]

        def key(v):
            for i, s in enumerate(values):
                if v == s:
                    return i
            raise AssertionError("value outside the stage")

        self.key = key
        need = {len(stage.ops): out_box}
        for i in range(len(stage.ops) - 1, -1, -1):
            op = stage.ops[i]
            box = need.get(i + 1)
            if box is None:
                continue
            if op.operation.name == _CONV:
                u = op.operands[0]
                want = _clip(_conv_window(op, box), _shape(u)[1:3])
                need[key(u)] = _union(need.get(key(u)), want)
            else:
                for u in op.operands:
                    need[key(u)] = _union(need.get(key(u)), box)
        self.need = need
        self.macs = sum(_conv_macs(op, [1, b[0][1] - b[0][0], b[1][1] - b[1][0], 0])
                        for op, b in ((op, need.get(i + 1)) for i, op in enumerate(stage.ops))
                        if b is not None and op.operation.name == _CONV)

    def build(self, x: ir.Value) -> ir.Value:
        """The cut's patch, computed from `x` (the stage input, or a barrier-chained alias)."""
        st, need = self.stage, self.need
        got = {0: _slice(x, need[0])}
        for i, op in enumerate(st.ops):
            box = need.get(i + 1)
            if box is None:
                continue
            name = op.operation.name
            n, _, _, c = _shape(op.results[0])
            rt = ir.RankedTensorType.get([n, box[0][1] - box[0][0], box[1][1] - box[1][0], c],
                                         ir.RankedTensorType(op.results[0].type).element_type)
            if name == _CONV:
                u = op.operands[0]
                win = _conv_window(op, box)
                clipped = _clip(win, _shape(u)[1:3])
                src = _slice(got[self.key(u)], _rel(clipped, need[self.key(u)]))
                low = [clipped[d][0] - win[d][0] for d in range(2)]
                high = [win[d][1] - clipped[d][1] for d in range(2)]
                if any(low) or any(high):
                    src = _pad(src, low, high, ir.IntegerAttr(op.attributes["input_zero_point"]).value)
                attrs = _attrs(op)
                attrs["padding"] = ir.DenseI64ArrayAttr.get([0, 0])
                new = ir.Operation.create(name, results=[rt], operands=[src, op.operands[1], op.operands[2]],
                                          attributes=attrs, loc=op.location)
            else:
                operands = [_slice(got[self.key(u)], _rel(box, need[self.key(u)])) for u in op.operands]
                new = ir.Operation.create(name, results=[rt], operands=operands, attributes=_attrs(op),
                                          loc=op.location)
            got[i + 1] = new.results[0]
        return got[len(st.ops)]


def _rel(box, base):
    return tuple((a - b0, b - b0) for (a, b), (b0, _) in zip(box, base))


def _slice(v: ir.Value, box) -> ir.Value:
    n, h, w, c = _shape(v)
    (r0, r1), (c0, c1) = box
    if (r0, r1, c0, c1) == (0, h, 0, w):
        return v
    et = ir.RankedTensorType(v.type).element_type
    rt = ir.RankedTensorType.get([n, r1 - r0, c1 - c0, c], et)
    return tensor.ExtractSliceOp(rt, v, [], [], [], [0, r0, c0, 0], [n, r1 - r0, c1 - c0, c], [1, 1, 1, 1]).result


def _pad(v: ir.Value, low, high, value: int) -> ir.Value:
    n, h, w, c = _shape(v)
    et = ir.RankedTensorType(v.type).element_type
    rt = ir.RankedTensorType.get([n, h + low[0] + high[0], w + low[1] + high[1], c], et)
    pad = tensor.PadOp(rt, v, [], [], [0, low[0], low[1], 0], [0, high[0], high[1], 0])
    block = pad.region.blocks.append(*([ir.IndexType.get()] * 4))
    with ir.InsertionPoint(block):
        tensor.YieldOp(arith.ConstantOp(et, ir.IntegerAttr.get(et, value)).result)
    return pad.result


def _barrier(values: list[ir.Value]) -> list[ir.Value]:
    """`util.optimization_barrier` (IREE): its results are its operands, but IREE cannot look
    through it, so whatever reads a result waits for every operand."""
    op = ir.Operation.create("util.optimization_barrier", results=[v.type for v in values], operands=values)
    return list(op.results)


@dataclasses.dataclass(frozen=True)
class PatchStagePass(ModulePass):
    argument: ClassVar[str] = "patch-stage"
    summary: ClassVar[str] = ("Compute the frozen high-resolution first stage of every function in grid x grid "
                              "spatial patches (halo recomputed, bit-identical), one patch after the other.")
    option_docs: ClassVar[dict[str, str]] = {
        "grid": "patches per side of the stage output (1: leave the functions as they are)",
        "factor": "the stage ends at the last block boundary whose output is at least 1/factor of the "
                  "input's height",
        "stages": "consecutive stages at most: stage k starts at stage k-1's cut and ends at 1/(factor*2^(k-1)) "
                  "of the input's height, in 2x2 patches, where that lowers its estimated peak by a quarter",
    }

    grid: int = 2
    factor: int = 4
    stages: int = 2

    def run(self, module: ir.Operation) -> None:
        if self.grid < 1 or self.factor < 1 or self.stages < 1:
            raise CompileError(f"patch-stage: grid, factor and stages must be >= 1, got grid={self.grid}, "
                               f"factor={self.factor}, stages={self.stages}", stage=self.argument)
        if self.grid > 1:
            for_each_func(module, self._run_func)

    def _run_func(self, fn) -> None:
        stage = find_stage(fn, self.factor)
        if stage is None:
            return
        patched = _patch_stage(stage, self.grid)
        if patched is None:
            return
        acc, info = patched
        fn.attributes["tinytrain.patch_stage"] = info
        grid, factor = min(self.grid, 2), self.factor
        for k in range(2, self.stages + 1):
            factor *= 2
            stage = _later_stage(fn, factor, acc, grid)
            if stage is None:
                return
            acc, info = _patch_stage(stage, grid)
            fn.attributes[f"tinytrain.patch_stage{k}"] = info


def _patch_stage(stage: Stage, grid: int):
    """Replace `stage` by its `grid` x `grid` patches: (the assembled cut, the report attribute),
    or None when the cut is smaller than the grid."""
    n, h, w, c = _shape(stage.cut)
    if h < grid or w < grid:
        return None
    boxes = [(r, q) for r in _split(h, grid) for q in _split(w, grid)]
    patches = [_Patch(stage, box) for box in boxes]
    whole = sum(_conv_macs(op, _shape(op.results[0])) for op in stage.ops if op.operation.name == _CONV)
    cut_layer, ops = layer_name(stage.ops[-1]), len(stage.ops)
    acc = replace_in_pieces(stage, [(p.build, [0, r0, c0, 0], [n, r1 - r0, c1 - c0, c])
                                    for p, ((r0, r1), (c0, c1)) in zip(patches, boxes)])
    i64 = ir.IntegerType.get_signless(64)
    return acc, ir.DictAttr.get({
        "grid": ir.IntegerAttr.get(i64, grid), "cut": ir.StringAttr.get(cut_layer),
        "cut_shape": ir.DenseI64ArrayAttr.get([n, h, w, c]),
        "ops": ir.IntegerAttr.get(i64, ops),
        "macs": ir.IntegerAttr.get(i64, whole),
        "patched_macs": ir.IntegerAttr.get(i64, sum(p.macs for p in patches))})


def _box_bytes(v: ir.Value, box) -> int:
    n, h, w, c = _shape(v)
    return tensor_bytes(v) * (box[0][1] - box[0][0]) * (box[1][1] - box[1][0]) // max(1, h * w)


def _worst_op_bytes(stage: Stage, need: dict | None = None) -> int:
    """The bytes one op of `stage` touches at its worst: its stage operands, its result and a
    padded convolution's zero-filled window; `need`: a patch's boxes (`_Patch.need`), None: the
    whole tensors."""
    values = [stage.input] + [m.results[0] for m in stage.ops]

    def box(i, v):
        return need.get(i) if need is not None else ((0, _shape(v)[1]), (0, _shape(v)[2]))

    worst = 0
    for i, op in enumerate(stage.ops):
        out = box(i + 1, op.results[0])
        if out is None:
            continue
        size = _box_bytes(op.results[0], out)
        for u in op.operands:
            k = next((j for j, s in enumerate(values) if u == s), None)
            if k is not None:
                size += _box_bytes(u, box(k, u))
        if op.operation.name == _CONV and any(_ints(op, "padding")):
            size += _box_bytes(op.operands[0], _conv_window(op, out))
        worst = max(worst, size)
    return worst


def _patched_bytes(stage: Stage, grid: int) -> int:
    """A patched stage's estimated peak: its input and output whole beside the worst op of its
    largest patch."""
    n, h, w, c = _shape(stage.cut)
    boxes = [(r, q) for r in _split(h, grid) for q in _split(w, grid)]
    return tensor_bytes(stage.input) + tensor_bytes(stage.cut) + \
        max(_worst_op_bytes(stage, _Patch(stage, b).need) for b in boxes)


def _later_stage(fn, factor: int, start: ir.Value, grid: int) -> Stage | None:
    """The stage after a patched one (from its cut `start`, down to 1/`factor` of the input's
    height) whose patches have the smallest estimated peak, if that is at most three quarters of
    its worst op's whole tensors (halos grow with every block a stage spans, so the deepest cut is
    rarely the best); or None."""
    best = None
    for stage in stage_cuts(fn, factor, _accept, start=start):
        n, h, w, c = _shape(stage.cut)
        if h < grid or w < grid:
            continue
        est = _patched_bytes(stage, grid)
        if 4 * est <= 3 * _worst_op_bytes(stage) and (best is None or est < best[0]):
            best = (est, stage)
    return None if best is None else best[1]


def for_each_func(module: ir.Operation, run) -> None:
    """`run(fn)` for every `func.func` of `module` (IREE's `util` ops allowed in the context)."""
    module.context.allow_unregistered_dialects = True
    with module.context, module.location:
        for op in list(module.regions[0].blocks[0].operations):
            if op.operation.name == "func.func":
                run(op.opview)


def replace_in_pieces(stage: Stage, pieces) -> ir.Value:
    """Replace `stage` by its cut computed piece by piece, one piece after the other: `pieces` is a
    list of `(build, offsets, sizes)`, `build(x)` the cut's block at `offsets` / `sizes` computed
    from `x` (the stage input, or for every piece after the first an alias of it that a
    `util.optimization_barrier` makes wait for the previous pieces). The stage's ops are erased;
    returns the assembled cut."""
    last = stage.ops[-1]
    with ir.InsertionPoint(last), last.location:
        acc = tensor.EmptyOp(_shape(stage.cut), ir.RankedTensorType(stage.cut.type).element_type).result
        x = stage.input
        for k, (build, offsets, sizes) in enumerate(pieces):
            if k:
                x, acc = _barrier([x, acc])
            acc = tensor.InsertSliceOp(build(x), acc, [], [], [], offsets, sizes, [1, 1, 1, 1]).result
    stage.cut.replace_all_uses_with(acc)
    for op in reversed(stage.ops):
        op.operation.erase()
    return acc
