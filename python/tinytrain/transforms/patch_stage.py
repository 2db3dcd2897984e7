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

Which ops a stage may hold: starting at the function's input (`tinytrain.input`), the
`tinytrain.qconv2d` / `tinytrain.qadd` / `tinytrain.quantize` ops whose activation operands come from
the stage and whose weight and bias are frozen (not `tinytrain.trainable`). A cut is valid where
exactly one stage value is used after it (a block boundary): so a stage never holds a trained layer
nor a tensor the backward reads (an activation saved for a weight gradient or a ReLU mask). A
function whose first op is trained, or whose stages are smaller than the grid, is left as it is.

Which stages (`choose_stages`): a chain of consecutive stages, the first from the function's input
to a valid cut at least 1/`factor` of the input's height in `grid` x `grid` patches, stage k from
stage k-1's assembled cut down to 1/(`factor`·2^(k-1)) of the input's height, in 2x2 to `grid` x
`grid` patches (each computed from the assembled cut before it), at most `stages` of them. Of all
such chains (none included) the pass takes the one whose function has the smallest estimated forward
peak, then the fewest recomputed multiply-accumulates (halos), then the fewest stages (of ties, the
deepest). The estimate (`_Liveness`) covers the forward ops (those before the first op that depends
on an argument other than the input and the parameters, e.g. the label), each op's bytes being the
tensors live while it runs (a tensor lives from its writer to its last reader anywhere in the
function, so activations saved for the backward count through the rest of the forward): the ops
after the last stage whole, and each patched stage as its input and output whole beside the worst op
of its largest patch (operands, result). So the chain goes exactly as deep as the whole function's
peak needs: at 128x128 MobileNetV2-w0.35 patches its blocks 0-5, MCUNet-5FPS its blocks 0-4 (their
16x16 expansions otherwise bound the forward); and halos, which grow with every block a stage spans,
are weighed against cutting the network in more, shorter stages. Each patched stage is reported as a
function attribute (`tinytrain.patch_stage`, `tinytrain.patch_stage2`, ...): grid, cut layer, cut
shape, number of ops, and the stage's multiply-accumulates whole (`macs`) and patched
(`patched_macs`, with the halo).

The estimate follows the firmware when told so: `streamed_input` (the Cortex-M firmware streams the
input: only the bytes each kernel loads are in SRAM, from the first to the last byte of its box,
read by the kernel alone) and `fused_padding` (the Cortex-M compile fuses a convolution's zero
padding into it; without it a padded convolution also counts its zero-filled window).
`tinytrain.int8` sets both on Cortex-M targets. The firmware's layout places a streamed input's
late reads where it has room (`lowering/cortexm/replan.py`), so the estimate of a patched stage
is what the device holds there (ProxylessNAS-w0.3 `98kb` at 128x128: 39,697 B estimated and
planned at its first conv with 4x4 patches, 30,176 B at blocks.2 with 8x8).

With `bands` > 1 the pass then splits chains of convolutions its stages leave in bands of rows,
as the `row-bands` pass does (`transforms/row_bands.py`): its estimate counts every chain
`row-bands` would split at its bands' size, and of those it splits the ones whose whole tensors
would hold more than the chosen estimated forward peak (the others only add recomputed halo). A
frozen block is patched or banded, never both, and the stage choice knows what the banded blocks
will hold (at 128x128 MobileNetV2-w0.35's 16x16x96 and 8x8x192 blocks).

The estimate covers the forward ops only. When the program's peak is elsewhere (its backward
pass), `floor` says so: estimated forward peaks below it tie, the chain with the fewest
recomputed MACs among them wins, and the first stage may then take any grid up to `grid`
(`tinytrain.int8.compile_training` measures the floor from a first plan of the program).

Options: `grid` (patches per side of the first stage, the most of the later ones; 1: no patches),
`factor` (how far down the first stage goes), `stages` (how many consecutive stages at most;
1: the first only), `streamed_input`, `fused_padding`, `bands`, `floor`, `band_min_bytes`,
`band_bytes`.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from torch_mlir import ir
from torch_mlir.dialects import arith, func, tensor

from tinytrain.errors import CompileError
from tinytrain.irfuncs import arg_attrs, layer_name, optimization_barrier, tensor_bytes
from tinytrain.passes import ModulePass

__all__ = ["PatchStagePass", "assemble_in_pieces", "find_stage"]

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
    _graph: tuple | None = dataclasses.field(default=None, init=False, repr=False, compare=False)

    @property
    def cut_layer(self) -> str:
        return layer_name(self.ops[-1])

    def graph(self) -> tuple[dict, list, list]:
        """The stage as plain numbers (read once from the IR): (value index by `_key`: 0 the
        input, i + 1 the result of op i; per value (height, width, bytes per pixel); per op
        (stage operand indices, None or a conv's (kernel, strides, padding, MACs per output
        pixel)))."""
        if self._graph is None:
            values = [self.input] + [m.results[0] for m in self.ops]
            index = {_key(v): i for i, v in enumerate(values)}
            sizes = [(h, w, tensor_bytes(v) // max(1, h * w)) for v in values for _, h, w, _ in [_shape(v)]]
            nodes = []
            for op in self.ops:
                if op.operation.name == _CONV:
                    kh, kw, cin_g, cout = ir.RankedTensorType(op.operands[1].type).shape
                    conv = ((kh, kw), tuple(_ints(op, "strides")), tuple(_ints(op, "padding")), kh * kw * cin_g * cout)
                    nodes.append(((index[_key(op.operands[0])],), conv))
                else:
                    nodes.append((tuple(index[_key(u)] for u in op.operands), None))
            self._graph = (index, sizes, nodes)
        return self._graph


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
    """The single stage of `fn` ending at its smallest valid cut at least 1/`factor` of the input's
    height (the deepest of equals; module docstring: which ops a stage may hold), or None. The
    pass itself takes the chain of stages `choose_stages` finds."""
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
    return _window(ir.RankedTensorType(op.operands[1].type).shape[:2], _ints(op, "strides"), _ints(op, "padding"),
                   out_box)


def _window(k, s, p, out_box):
    """`_conv_window` from the conv's kernel size, strides and padding."""
    return tuple((a * s[i] - p[i], (b - 1) * s[i] - p[i] + k[i]) for i, (a, b) in enumerate(out_box))


def _clip(box, hw):
    return tuple((max(0, a), min(n, b)) for (a, b), n in zip(box, hw))


class _Patch:
    """Builds one patch of the stage (insertion point set by the caller)."""

    def __init__(self, stage: Stage, out_box):
        self.stage = stage
        index, _, nodes = stage.graph()
        self.key = lambda v: index[_key(v)]
        rows, cols = _needs(stage, 0, out_box[0]), _needs(stage, 1, out_box[1])
        self.need = need = {i: (rows[i], cols[i]) for i in rows}
        self.macs = sum(conv[3] * _area(need[i + 1]) for i, (_, conv) in enumerate(nodes)
                        if conv is not None and i + 1 in need)

    def build(self, x: ir.Value) -> ir.Value:
        """The cut's patch, computed from `x` (the stage input, or a barrier-chained alias)."""
        return self.build_all(x)[len(self.stage.ops)]

    def build_all(self, x: ir.Value) -> dict:
        """Every stage value's box this patch needs (`Stage.graph` index -> value; `need` gives
        the box), computed from `x`."""
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
        return got


def _needs(stage: Stage, dim: int, span: tuple[int, int]) -> dict[int, tuple[int, int]]:
    """The rows (`dim` 0) or columns (1) of every stage value (`Stage.graph` index) that the cut's
    `span` of rows / columns needs: a box's rows and columns are needed independently."""
    _, sizes, nodes = stage.graph()
    need = {len(nodes): span}
    for i in range(len(nodes) - 1, -1, -1):
        out = need.get(i + 1)
        if out is None:
            continue
        operands, conv = nodes[i]
        if conv is not None:
            (k, s, p), u = (conv[0][dim], conv[1][dim], conv[2][dim]), operands[0]
            wants = [(u, (max(0, out[0] * s - p), min(sizes[u][dim], (out[1] - 1) * s - p + k)))]
        else:
            wants = [(u, out) for u in operands]
        for u, (a, b) in wants:
            old = need.get(u)
            need[u] = (a, b) if old is None else (min(old[0], a), max(old[1], b))
    return need


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


@dataclasses.dataclass(frozen=True)
class PatchStagePass(ModulePass):
    argument: ClassVar[str] = "patch-stage"
    summary: ClassVar[str] = ("Compute the frozen high-resolution first stages of every function in spatial "
                              "patches (halo recomputed, bit-identical), one patch after the other, as deep as "
                              "its estimated forward peak needs.")
    option_docs: ClassVar[dict[str, str]] = {
        "grid": "patches per side of the first stage's output, the most of a later stage's (1: leave the "
                "functions as they are)",
        "factor": "the stage ends at the last block boundary whose output is at least 1/factor of the "
                  "input's height",
        "stages": "consecutive stages at most: stage k starts at stage k-1's cut and ends at 1/(factor*2^(k-1)) "
                  "of the input's height or above, in 2x2 to grid x grid patches; the pass takes the chain "
                  "(none included) with the smallest estimated forward peak, then the fewest recomputed MACs",
        "streamed_input": "the estimate counts the input only where a kernel reads it (the firmware streams "
                          "it: `tinytrain.int8` on Cortex-M)",
        "fused_padding": "the estimate counts no zero-filled window for a padded convolution (the target's "
                         "compile fuses the padding into it: `tinytrain.int8` on Cortex-M)",
        "bands": "then split the chains the patched stages leave in up to this many bands of rows, as "
                 "`row-bands` does, where they would hold more than the chosen estimated forward peak "
                 "(1: none); the stage choice counts them at their bands' size",
        "floor": "the stage choice counts an estimated forward peak below this many bytes as this many "
                 "(the program's peak outside the patched stages, e.g. its backward pass): the chain with "
                 "the fewest recomputed MACs among those below it wins, and the first stage may take any "
                 "grid from 2x2 to grid x grid (0: the smallest estimated peak, the first stage at grid)",
        "band_min_bytes": "`row-bands`' min_bytes",
        "band_bytes": "`row-bands`' band_bytes",
    }

    grid: int = 2
    factor: int = 4
    stages: int = 4
    streamed_input: bool = False
    fused_padding: bool = False
    bands: int = 1
    floor: int = 0
    band_min_bytes: int = 8192
    band_bytes: int = 8192

    def run(self, module: ir.Operation) -> None:
        if self.floor < 0:
            raise CompileError(f"patch-stage: floor must be >= 0 bytes, got {self.floor}", stage=self.argument)
        if self.grid < 1 or self.factor < 1 or self.stages < 1:
            raise CompileError(f"patch-stage: grid, factor and stages must be >= 1, got grid={self.grid}, "
                               f"factor={self.factor}, stages={self.stages}", stage=self.argument)
        if self.grid > 1:
            for_each_func(module, self._run_func)

    def _run_func(self, fn) -> None:
        from tinytrain.transforms import row_bands

        bands = row_bands.plan_bands(fn, self.bands, self.band_min_bytes, self.band_bytes)
        peak, chain = choose_stages(fn, self.grid, self.factor, self.stages, self.streamed_input,
                                    self.fused_padding, row_bands.banded_sizes(bands, _key), with_peak=True,
                                    floor=self.floor)
        patched = {op.operation for stage, _ in chain for op in stage.ops}
        if bands:  # split only where the whole chain would hold more than the chosen peak (before erasing)
            whole = _Liveness(fn, self.streamed_input, self.fused_padding)
            bands = [(c, n) for c, n in bands if not any(op.operation in patched for op in c.ops) and
                     max(whole.bytes[i] if i < whole.end else 0
                         for i in (whole.pos[op.operation] for op in c.ops)) > peak]
        start = None
        for k, (stage, grid) in enumerate(chain, 1):
            if k > 1:  # the chosen stage again, grown from the previous stage's assembled cut
                again = [s for s in stage_cuts(fn, self.factor << (k - 1), _accept, start=start)
                         if s.ops[-1].operation == stage.ops[-1].operation]
                if not again:
                    raise CompileError(f"patch-stage: stage {k} (cut {stage.cut_layer}) is no longer a valid cut "
                                       f"once stage {k - 1} is patched (an internal error)", stage=self.argument)
                stage = again[0]
            start, info = _patch_stage(stage, grid)
            fn.attributes["tinytrain.patch_stage" + (str(k) if k > 1 else "")] = info
        row_bands.apply_bands(fn, bands)


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
    acc = replace_in_pieces(stage, [(p.build, [0, r0, c0, 0]) for p, ((r0, _), (c0, _)) in zip(patches, boxes)])
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


def _area(box) -> int:
    return (box[0][1] - box[0][0]) * (box[1][1] - box[1][0])


def _worst_op_bytes(stage: Stage, need: dict, fused_padding: bool, streamed_input: bool) -> int:
    """The bytes one op of a patch of `stage` (its boxes: `_Patch.need`) touches at its worst: its
    stage operands, its result and (unless `fused_padding`) a padded convolution's zero-filled
    window. A `streamed_input` counts the bytes from the first to the last element of its box: what
    its reader brings in for the kernel (`lowering/cortexm/input_stream.py`)."""
    _, sizes, nodes = stage.graph()
    worst = 0
    for i, (operands, conv) in enumerate(nodes):
        out = need.get(i + 1)
        if out is None:
            continue
        size = sizes[i + 1][2] * _area(out)
        for u in operands:
            (r0, r1), (c0, c1) = need[u]
            h, w, px = sizes[u]
            size += px * ((r1 - r0 - 1) * w + (c1 - c0) if u == 0 and streamed_input else (r1 - r0) * (c1 - c0))
        if not fused_padding and conv is not None and any(conv[2]):
            size += sizes[operands[0]][2] * _area(_window(*conv[:3], out))
        worst = max(worst, size)
    return worst


def _patched_cost(stage: Stage, grid: int, streamed_input: bool, fused_padding: bool) -> tuple[int, int]:
    """A patched stage's (estimated peak, recomputed multiply-accumulates): its input (unless it
    is a `streamed_input`) and output whole beside the worst op of its largest patch
    (`_worst_op_bytes`); the patches' MACs beyond the whole stage's."""
    n, h, w, c = _shape(stage.cut)
    _, sizes, nodes = stage.graph()
    rows = [_needs(stage, 0, r) for r in _split(h, grid)]
    cols = [_needs(stage, 1, q) for q in _split(w, grid)]
    worst = max(_worst_op_bytes(stage, {i: (r[i], q[i]) for i in r}, fused_padding, streamed_input)
                for r in rows for q in cols)
    # the patches' MACs: per conv, its output pixels summed over every (row span, column span)
    def spans(needs, i):
        return sum(x[i][1] - x[i][0] for x in needs if i in x)

    extra = sum(conv[3] * (spans(rows, i + 1) * spans(cols, i + 1) - sizes[i + 1][0] * sizes[i + 1][1])
                for i, (_, conv) in enumerate(nodes) if conv is not None)
    return (0 if streamed_input else tensor_bytes(stage.input)) + tensor_bytes(stage.cut) + worst, extra


class _Liveness:
    """Estimated bytes of the forward ops of a function (the ops before the first one that depends
    on an argument that is neither the input nor a parameter, e.g. the label): a tensor is live
    from the op that writes it (the input: from the start) to its last reader anywhere in the
    function (an activation saved for the backward stays live through the forward); an op's
    estimate is the bytes live while it runs plus (unless `fused_padding`) a padded convolution's
    zero-filled window. A `streamed_input` is live only in the ops that read it, whole (the firmware
    brings in the bytes each reader loads from the caller's buffer, `_hull_bytes`)."""

    def __init__(self, fn: func.FuncOp, streamed_input: bool, fused_padding: bool, sizes: dict | None = None):
        block = fn.regions[0].blocks[0]
        attrs = arg_attrs(fn)
        self.ops = ops = list(block.operations)
        self.pos = pos = {op.operation: i for i, op in enumerate(ops)}
        tainted = {i for i, d in enumerate(attrs) if "tinytrain.input" not in d and "tinytrain.param" not in d}
        dep: set = set()
        end = len(ops)
        for i, op in enumerate(ops):
            if any(_arg_number(v) in tainted if isinstance(v.owner, ir.Block) else v.owner.operation in dep
                   for v in op.operands):
                dep.add(op.operation)
                end = min(end, i)
        self.end, self.fused_padding = end, fused_padding
        inputs = [block.arguments[i] for i, d in enumerate(attrs) if "tinytrain.input" in d]
        # (key, bytes, first op, last op) of every tensor the forward ops write, and the input
        self.values = []
        for v, d in [(x, -1) for x in inputs] + [(r, i) for i, op in enumerate(ops[:end]) for r in op.results]:
            if not isinstance(v.type, ir.RankedTensorType):
                continue
            last = max([self._top(u.owner) for u in v.uses], default=d)
            size = (sizes or {}).get(_key(v), tensor_bytes(v))
            self.values.append((_key(v), 0 if d < 0 and streamed_input else size, d, last))
        diff = [0] * (end + 2)
        for _, b, d, last in self.values:
            lo, hi = max(d, 0), min(last, end - 1)
            if lo <= hi:
                diff[lo] += b
                diff[hi + 1] -= b
        if streamed_input:
            for x in inputs:
                for i in {self._top(u.owner) for u in x.uses}:
                    diff[min(i, end)] += tensor_bytes(x)
                    diff[min(i, end) + 1] -= tensor_bytes(x)
        self.bytes, run = [], 0
        for i in range(end):
            run += diff[i]
            self.bytes.append(run + self.window(i))
        self.suffix = [0] * (end + 1)  # suffix[i]: the largest estimate of ops i, i+1, ...
        for i in range(end - 1, -1, -1):
            self.suffix[i] = max(self.suffix[i + 1], self.bytes[i])

    def _top(self, op) -> int:
        """The position of the function-level op that holds `op` (len(ops) if none)."""
        op = op.operation
        while op not in self.pos:
            op = op.parent
            if op is None or op.name == "func.func":
                return len(self.ops)
            op = op.operation
        return self.pos[op]

    def window(self, i: int) -> int:
        op = self.ops[i]
        if self.fused_padding or op.operation.name != _CONV or not any(_ints(op, "padding")):
            return 0
        out = _shape(op.results[0])
        return _box_bytes(op.operands[0], _conv_window(op, ((0, out[1]), (0, out[2]))))

    def span(self, stage: Stage) -> tuple[int, int]:
        """The positions of the first and the last op of `stage`."""
        return self.pos[stage.ops[0].operation], self.pos[stage.ops[-1].operation]

    def between(self, a: int, b: int) -> int:
        """The largest estimate of the ops strictly between positions `a` and `b` (whole: no
        stage's inner tensor is live there)."""
        return max(self.bytes[a + 1:b], default=0)

    def patched(self, stage: Stage, est: int) -> int:
        """The estimated peak while `stage`, patched, runs: its own estimate `est` beside the
        tensors live across it, and the ops among its own that are not in it (they run before the
        patched stage, which is placed at its last op) without its inner tensors but with its
        input, which the patches read until the last."""
        a, b = self.span(stage)
        members = {m.operation for m in stage.ops}
        x, cut = _key(stage.input), _key(stage.cut)
        inner = {_key(m.results[0]) for m in stage.ops} - {cut}
        worst = est + sum(n for k, n, d, e in self.values if d < a and e > b and k not in (x, cut))
        for i in range(a, b):
            if self.ops[i].operation not in members:
                live = sum(n for k, n, d, e in self.values if k not in inner and d <= i and (i <= e or k == x))
                worst = max(worst, live + self.window(i))
        return worst


def _arg_number(v: ir.Value) -> int:
    return ir.BlockArgument(v).arg_number


def _key(v: ir.Value):
    """A hashable name of a value: (its defining op, result number), or ("arg", argument number)."""
    if isinstance(v.owner, ir.Block):
        return ("arg", _arg_number(v))
    return (v.owner.operation, ir.OpResult(v).result_number)


def choose_stages(fn: func.FuncOp, grid: int, factor: int, stages: int, streamed_input: bool = False,
                  fused_padding: bool = False, sizes: dict | None = None, with_peak: bool = False,
                  floor: int = 0):
    """The consecutive stages (`[(stage, grid)]`, at most `stages`; possibly none) whose patching
    gives `fn` the smallest estimated forward peak (`_Liveness`: the ops before the first stage,
    each patched stage (`_Liveness.patched`), the ops between stages and the ops after the last
    one, whole), then the fewest recomputed multiply-accumulates (halos), then the fewest stages
    (of completions that tie on all three, the deepest: more of the network in patches at no
    cost). Stage 1 starts at the function's input, ends at a valid cut at least 1/`factor` of the
    input's height and has `grid` x `grid` patches; stage k starts at stage k-1's cut, ends at
    1/(`factor`*2^(k-1)) or above, in 2x2 to `grid` x `grid` patches. Searched exactly: the best
    completions from each cut (the ones no other beats on all three counts) are computed once.
    The stages are grown from the original function; `PatchStagePass` grows each again from the
    previous one's assembled cut. `sizes`: the bytes the estimate counts for some values (`_key`
    -> bytes; the `row-bands` chains' inner values at their bands' size). `with_peak`: return
    (the chosen chain's estimated forward peak, the chain). `floor`: an estimated peak below it
    counts as `floor` (the program's peak elsewhere, e.g. in its backward pass: below it a smaller
    forward peak gains nothing, so the fewest recomputed MACs win), and stage 1 takes any grid from
    2x2 to `grid` x `grid`, as later stages do."""
    live = _Liveness(fn, streamed_input, fused_padding, sizes)
    fronts: dict = {}
    costs: dict = {}

    def front(start, at: int, k: int) -> list:
        """The best completions [(peak, macs, count, -position of the last stage's end, stages)]
        after the stage ending at position `at` with cut `start` (None, -1: the function's
        input), stage `k` next."""
        key = (None if start is None else _key(start), k)
        if key in fronts:
            return fronts[key]
        options = [(max(floor, live.suffix[at + 1]), 0, 0, -at, ())]
        grids = [grid] if k == 1 and not floor else range(2, grid + 1)
        for st in stage_cuts(fn, factor << (k - 1), _accept, start=start) if k <= stages else []:
            first, last = live.span(st)
            if last >= live.end:
                continue
            streamed = streamed_input and isinstance(st.input.owner, ir.Block)
            for g in grids:
                if _shape(st.cut)[1] < g or _shape(st.cut)[2] < g:
                    continue
                ck = (_key(st.input), _key(st.cut), g)
                if ck not in costs:  # the same stage is a candidate for several k
                    est, extra = _patched_cost(st, g, streamed, fused_padding)
                    costs[ck] = (live.patched(st, est), extra)
                here, extra = costs[ck]
                here = max(floor, live.between(at, first), here)
                options += [(max(here, p), extra + m, n + 1, depth, ((st, g),) + rest)
                            for p, m, n, depth, rest in front(st.cut, last, k + 1)]
        kept: list = []  # sorted: an option is beaten iff a kept one is no worse in macs and count
        for o in sorted(options, key=lambda o: o[:4]):
            if not any(q[1] <= o[1] and q[2] <= o[2] for q in kept):
                kept.append(o)
        fronts[key] = kept
        return kept

    best = min(front(None, -1, 1), key=lambda o: o[:4])
    return (best[0], list(best[4])) if with_peak else list(best[4])


def for_each_func(module: ir.Operation, run) -> None:
    """`run(fn)` for every `func.func` of `module` (IREE's `util` ops allowed in the context)."""
    module.context.allow_unregistered_dialects = True
    with module.context, module.location:
        for op in list(module.regions[0].blocks[0].operations):
            if op.operation.name == "func.func":
                run(op.opview)


def replace_in_pieces(stage: Stage, pieces) -> ir.Value:
    """Replace `stage` by its cut computed piece by piece, one piece after the other: `pieces` is a
    list of `(build, offsets)`, `build(x)` the cut's block at `offsets` computed from `x` (the
    stage input, or for every piece after the first an alias of it that a
    `util.optimization_barrier` makes wait for the previous pieces: `assemble_in_pieces`). The
    stage's ops are erased; returns the assembled cut."""
    last = stage.ops[-1]
    with ir.InsertionPoint(last), last.location:
        acc, = assemble_in_pieces(stage.input, [stage.cut],
                                  [lambda x, b=build, o=offsets: [(b(x), o)] for build, offsets in pieces])
    stage.cut.replace_all_uses_with(acc)
    for op in reversed(stage.ops):
        op.operation.erase()
    return acc


def assemble_in_pieces(x: ir.Value, wholes: list, builds: list) -> list:
    """New values of the types of `wholes`, each assembled from pieces (`tensor.insert_slice` into a
    `tensor.empty`) at the current insertion point: `builds[k](x)` yields, for every whole in order,
    `(piece, offsets)`; each piece is inserted as soon as it is yielded (a generator builds the next
    one after it). For every build after the first, `x` and the partly assembled values first pass
    through one `util.optimization_barrier`, so each build waits for the ones before it and IREE
    never runs two at once."""
    accs = [tensor.EmptyOp(_shape(v), ir.RankedTensorType(v.type).element_type).result for v in wholes]
    for k, build in enumerate(builds):
        if k:
            x, *accs = optimization_barrier([x, *accs])
        done = []
        for acc, (piece, offsets) in zip(accs, build(x), strict=True):
            done.append(tensor.InsertSliceOp(piece, acc, [], [], [], offsets, _shape(piece),
                                             [1] * len(offsets)).result)
        accs = done
    return accs
