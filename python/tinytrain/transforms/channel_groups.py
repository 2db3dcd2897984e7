"""`channel-groups`: run the backward pass of a depthwise layer in channel groups, so that its fp32
activation gradients never exist whole (issue #9).

In an inverted-residual block the backward pass goes: the gradient of the block output, through
the 1x1 projection (`conv2d_grad_input`, a reduction over the block's output channels) to the
expanded width C, the clamp mask of the depthwise output (`qclamp_grad`), the transposed depthwise
conv, the clamp mask of the expansion output, and the 1x1 expansion's input gradient (a reduction
over C back to the narrow width). Everything between the two reductions is channel-local: channel c
of each of these fp32 tensors depends only on channel c of the one before. At 128x128 these
tensors are the largest of the backward pass (MCUNet-5FPS: 4x4x576 f32, 36,864 B each, two of them
live together at the peak of its `99kb` scheme, MobileNetV2-w0.35: 8x8x192, 49,152 B).

The pass takes such a chain (the "region": a dense `conv2d_grad_input`, or the `add` of two of them
that `sparse-split` makes of a projection whose weight is trained in part, and the channel-local ops
reachable from it: `qclamp_grad` / `qmask_grad` on it, depthwise `conv2d_grad_input`, channel
`slice`s; when the region holds a depthwise op, or a packed clamp mask and no dense input
gradient after it, and one of its gradients has at least `min_bytes`)
and computes it group by group of channels: for channels [c0, c1) the projection's input gradient with
the weight's rows c0..c1, the masks of those channels, the depthwise transposed conv with those
channels' filters, ... Where the region ends, its consumers take the groups:

- the 1x1/dense input gradient of the expansion: the sum of the groups' partial gradients (each
  with the weight's columns of its channels), each group's summed into the running sum by
  `conv2d_grad_input_acc` (in the sum's storage: one block-width tensor, not an old and a new
  one); when that gradient's only reader adds it to a value computed before the region (the
  skip path's gradient at a residual block's input), the sum starts from that value and replaces
  the add;
- with `bias_updates` (the default; off, the groups' bias gradients are concatenated for one
  update at the end: fewer kernels), a `bias_grad` feeding only the SGD update of a trained bias
  (through its QAS scalings): per group, the group's sums and the update of its channels,
  inserted into the parameter as a weight's are below (nothing waits for the last group:
  MobileNetV2-w0.35 `99kb` held 24 blocks.13 and 10 blocks.16 group sums, 1-2 KB, through the
  later blocks' backward; plan 112,272 -> 110,480 B); any other `bias_grad`: the groups' sums,
  concatenated;
- a depthwise weight gradient: per group (its input's channels sliced), concatenated (weight-sized);
- a dense weight gradient feeding only the SGD update of a trained parameter: per group, the
  gradient of the group's output channels and their update, written into the parameter
  (`tinytrain.insert`: the parameter's value after group k is the insert of group k's update into
  its value after group k-1, and group k reads its weight columns from that value, so IREE does
  every update in place in the parameter's own storage: no updated copy waits for the end of the
  step; MobileNetV2-w0.35 `138kb` on the M7 with 2x2 patches: 265,600 -> 239,936 B);
- anything else (e.g. a dense weight gradient of a trained slice): the groups concatenated back
  into the tensor it reads (only that consumer's channels).

Group k+1 starts after group k's results exist (`util.optimization_barrier` on the region's input
and group k's partial results), so IREE never runs two groups at once and each group's tensors die
before the next group's are made. A region input that is the gradient of a global average pool
through its input's clamp (a network's last block: `global_avg_pool_grad` then `qmask_grad` or
`qclamp_grad`) is not carried: each group remakes it from the pooled gradient and the mask (or the
int8 activation), which the barriers carry instead (MCUNet-5FPS `99kb` at 128x128: its 4x4x160
fp32 output gradient, 10,240 B, lived through all ten groups of blocks.13; plan 129,536 ->
127,936 B). The numbers are those of the whole computation up to the order
of the fp32 sums of the partial input gradients (a few ulp).

Groups: the channel boundaries of every slice in the region, plus cuts into `groups` parts of the
region's width, or more parts where the biggest gradient's groups would exceed `group_bytes`
(multiples of 4 channels; of 8 with packed clamp masks, so they slice on whole bytes).
Options: `groups` (1 disables the pass), `min_bytes`, `group_bytes`, `recompute`.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from torch_mlir import ir

from tinytrain.dialects import tinytrain as tt
from tinytrain.dialects import tinytrain_layers as tl
from tinytrain.dialects import tinytrain_quant as tq
from tinytrain.errors import CompileError
from tinytrain.irfuncs import layer_name, optimization_barrier, tensor_bytes
from tinytrain.passes import ModulePass
from tinytrain.transforms.patch_stage import _shape
from tinytrain.transforms.quantize import _i64

__all__ = ["ChannelGroupsPass"]

_GRAD_INPUT = "tinytrain.conv2d_grad_input"
_GRAD_WEIGHT = "tinytrain.conv2d_grad_weight"
_MASKS = ("tinytrain.qclamp_grad", "tinytrain.qmask_grad")


def _groups(op) -> int:
    return ir.IntegerAttr(op.attributes["groups"]).value


def _ty(shape, like: ir.Value) -> ir.RankedTensorType:
    return ir.RankedTensorType.get(list(shape), ir.RankedTensorType(like.type).element_type)


def _slice(v: ir.Value, axis: int, lo: int, hi: int) -> ir.Value:
    """`v[..., lo:hi, ...]` along `axis` (v itself when that is all of it)."""
    shape = _shape(v)
    if (lo, hi) == (0, shape[axis]):
        return v
    off = [0] * len(shape)
    off[axis] = lo
    shape[axis] = hi - lo
    return tl.SliceOp(v, ir.DenseI64ArrayAttr.get(off), _ty(shape, v)).result


def _op(x):
    """The `ir.Operation` of an op view, operation or use owner (None for a block)."""
    if isinstance(x, ir.Block):
        return None
    return x.operation if hasattr(x, "operation") else x


def _root_slice(v: ir.Value, axis: int, lo: int, hi: int) -> ir.Value:
    """`v[..., lo:hi, ...]` along `axis`, taken from the tensor a chain of `slice`s of `v` starts
    at (a parameter argument: the new reader reads the argument itself, so `reorder-updates` and
    the in-place update keep it before the parameter's update)."""
    src = _op(v.owner)
    if src is not None and src.name == "tinytrain.slice" and (lo, hi) != (0, _shape(v)[axis]):
        off = list(ir.DenseI64ArrayAttr(src.attributes["offsets"]))
        return _root_slice(src.operands[0], axis, off[axis] + lo, off[axis] + hi) if _only_axis(off, axis) \
            else _slice(v, axis, lo, hi)
    return _slice(v, axis, lo, hi)


def _only_axis(off: list, axis: int) -> bool:
    return all(o == 0 for i, o in enumerate(off) if i != axis)


def _recompute(y: ir.Value, lo: int, hi: int, depth: int = 2, after: ir.Value | None = None) -> ir.Value:
    """Channels [lo, hi) of the int8 activation `y`, recomputed from the forward pass's ops where
    that is channel-local (a depthwise `qconv2d`: the same channels of its input, recursively; a
    dense `qconv2d`: its whole input with the weight's columns lo..hi; a channel `concat`: the side
    holding them), so the activation need not stay alive from the forward pass until backward.
    `after`: a value the recomputation waits for (a barrier on the dense conv's input), so that
    IREE does not run it earlier, while that value's inputs are still alive.
    The integer ops are the forward ones on a channel slice: the same int8 values. Anything
    else (or `depth` 0): a slice of `y`."""
    src = _op(y.owner)
    if depth == 0 or src is None:
        return _slice(y, 3, lo, hi)
    if src.name == "tinytrain.concat" and ir.IntegerAttr(src.attributes["axis"]).value == 3:
        left = _shape(src.operands[0])[3]
        if hi <= left:
            return _recompute(src.operands[0], lo, hi, depth, after)
        if lo >= left:
            return _recompute(src.operands[1], lo - left, hi - left, depth, after)
        return _slice(y, 3, lo, hi)
    if src.name != "tinytrain.qconv2d":
        return _slice(y, 3, lo, hi)
    a = src.attributes
    x, w, b = src.operands
    cout, groups = _shape(y)[3], _groups(src)
    if groups == 1:
        xg, g = (x if after is None else optimization_barrier([x, after])[0]), a["groups"]
    elif groups == cout == _shape(x)[3] and _shape(w)[2] == 1:
        xg = _recompute(x, lo, hi, depth - 1, after)
        g = _i64(hi - lo)
    else:
        return _slice(y, 3, lo, hi)
    per = lambda name, kind: kind.get(list(kind(a[name]))[lo:hi])  # noqa: E731  (per output channel)
    return tq.QConv2dOp(xg, _root_slice(w, 3, lo, hi), _root_slice(b, 0, lo, hi), a["strides"], a["padding"], g,
                        a["input_scale"], a["input_zero_point"], per("weight_scales", ir.DenseF64ArrayAttr),
                        a["output_scale"], a["output_zero_point"], per("multiplier", ir.DenseI32ArrayAttr),
                        per("shift", ir.DenseI32ArrayAttr), a["clamp"], _ty(_shape(y)[:3] + [hi - lo], y),
                        loc=src.location).result


def _weight_slice(w: ir.Value, axis: int, lo: int, hi: int, recompute: bool = False,
                  after: ir.Value | None = None) -> ir.Value:
    """A slice of a dequantized tensor: a `channel_scale(p)` / `dequantize(p)` is rebuilt on the
    slice of `p`, so the slice reads the int8 tensor, never a whole fp32 copy of it (`recompute`:
    an activation's slice recomputed, waiting for `after`: `_recompute`)."""
    shape = _shape(w)
    if (lo, hi) == (0, shape[axis]):
        return w
    src = _op(w.owner)
    if src is not None and src.name == "tinytrain.channel_scale":
        scales = list(ir.DenseF64ArrayAttr(src.attributes["scales"]))
        if axis == len(shape) - 1:
            scales = scales[lo:hi]
        piece = _slice(src.operands[0], axis, lo, hi)
        return tq.ChannelScaleOp(piece, ir.DenseF64ArrayAttr.get(scales), _ty(_shape(piece), w)).result
    if src is not None and src.name == "tinytrain.dequantize":
        q = src.operands[0]
        piece = _recompute(q, lo, hi, after=after) if recompute and axis == 3 else _slice(q, axis, lo, hi)
        return tq.DequantizeOp(piece, src.attributes["scale"], src.attributes["zero_point"],
                               _ty(_shape(piece), w)).result
    return _slice(w, axis, lo, hi)


def _concat(values: list, axis: int) -> ir.Value:
    out = values[0]
    for v in values[1:]:
        shape = _shape(out)
        shape[axis] += _shape(v)[axis]
        out = tl.ConcatOp(out, v, _i64(axis), _ty(shape, out)).result
    return out


def _channel_slice(op) -> int | None:
    """The channel offset of a `slice` that only narrows the last axis, else None."""
    if op.name != "tinytrain.slice":
        return None
    x, y = _shape(op.operands[0]), _shape(op.results[0])
    off = list(ir.DenseI64ArrayAttr(op.attributes["offsets"]))
    if len(x) != 4 or any(o for o in off[:-1]) or x[:-1] != y[:-1]:
        return None
    return off[-1]


_UPDATES = ("tinytrain.qsgd_update", "tinytrain.sgd_update")


def _only_user(v: ir.Value):
    users = [_op(u.owner) for u in v.uses]
    return users[0] if len(users) == 1 else None


def _update_chain(grad_op) -> list | None:
    """[channel_scale..., update] when the weight gradient `grad_op` only feeds per-output-channel
    scalings and then the SGD update of a parameter argument returned as is, else None."""
    chain, v = [], grad_op.results[0]
    while True:
        u = _only_user(v)
        if u is None:
            return None
        if u.name == "tinytrain.channel_scale":
            chain.append(u)
            v = u.results[0]
            continue
        if u.name not in _UPDATES or not (u.operands[1] == v) or not isinstance(u.operands[0].owner, ir.Block):
            return None
        ret = _only_user(u.results[0])
        if ret is None or ret.name != "func.return":
            return None
        return chain + [u]


def _attr_names(op) -> list:
    return [a if isinstance(a, str) else a.name for a in op.attributes]


def _dense_weight_kind(op) -> tuple[str, list | None]:
    """How a dense weight gradient reading the groups is computed: "weight_update" (per-group
    gradients and updates, each written into the parameter in place: nothing held) whenever it
    only feeds its parameter's update (then with that update chain, `_update_chain`), else the
    one holding the fewest bytes until the last group: "concat" (its output gradient's groups
    concatenated back) or "dense_weight" (per-group fp32 weight gradients, concatenated)."""
    chain = _update_chain(op)
    if chain:
        return "weight_update", chain
    dy, dw = tensor_bytes(op.operands[1]), tensor_bytes(op.results[0])
    return min([(dy, "concat"), (dw, "dense_weight")])[1], None


class _Skip(Exception):
    """The region cannot be split (the pass leaves it as it is)."""


class _Region:
    """A dense input gradient and the channel-local ops after it (see the module doc). `seed`: the
    op whose result the region starts from: a dense `conv2d_grad_input`, or the `add` of the
    partial input gradients (`parts`) of a projection split in two by `sparse-split`."""

    def __init__(self, seed, parts=None, bias_updates: bool = False):
        self.seed = seed
        self.bias_updates = bias_updates
        self.parts = list(parts) if parts else [seed]   # the dense input gradients the seed sums
        self.base: dict = {}              # region value -> offset of its channel 0 among the seed's
        self.consumers: list = []         # (op, operand index, kind)
        self.chains: dict = {}            # consumer index -> update chain of a "weight_update" one
        self.has_depthwise = False
        self.has_mask = False
        self.has_clamp = False            # an int8 activation's clamp gradient (`qclamp_grad`)
        self.masks_recomputable = True    # every packed mask a `qclamp_mask` of an int8 activation
        self._grow()

    def _grow(self) -> None:
        value = self.seed.results[0]
        self.base[value] = 0
        work = [value]
        members = [self.seed]
        while work:
            v = work.pop()
            base, c = self.base[v], _shape(v)[-1]
            for use in v.uses:
                u = _op(use.owner)
                i = use.operand_number
                if u.name in _MASKS and i == 0:
                    self.has_clamp |= u.name == "tinytrain.qclamp_grad"
                    if u.name == "tinytrain.qmask_grad":
                        src = _op(u.operands[1].owner)
                        self.has_mask = True
                        self.masks_recomputable &= src is not None and src.name == "tinytrain.qclamp_mask"
                    out = u.results[0]
                elif (u.name == _GRAD_INPUT and i == 0 and _groups(u) == c > 1
                      and _shape(u.results[0])[-1] == c):
                    self.has_depthwise = True
                    out = u.results[0]
                elif _channel_slice(u) is not None:
                    out = u.results[0]
                    if out in self.base:
                        continue
                    self.base[out] = base + _channel_slice(u)
                    members.append(u)
                    work.append(out)
                    continue
                else:
                    if u.name == "tinytrain.bias_grad":
                        chain = _update_chain(u) if self.bias_updates else None
                        kind = "bias_update" if chain else "bias"
                        if chain:
                            self.chains[len(self.consumers)] = chain
                    elif u.name == _GRAD_INPUT and i == 0 and _groups(u) == 1:
                        kind = "sum"
                    elif u.name == _GRAD_WEIGHT and i == 1 and _groups(u) == c > 1:
                        kind = "depthwise_weight"
                    elif u.name == _GRAD_WEIGHT and i == 1 and _groups(u) == 1:
                        kind, chain = _dense_weight_kind(u)
                        if chain:
                            self.chains[len(self.consumers)] = chain
                    else:
                        kind = "concat"
                    self.consumers.append((u, i, kind))
                    continue
                if out not in self.base:
                    self.base[out] = base
                    members.append(u)
                    work.append(out)
        self.members = members

    def bounds(self, parts: int, recompute: bool = False) -> list[int]:
        """The group boundaries; on whole bytes of the packed masks unless the groups recompute
        the masked activations (`recompute`, every mask a `qclamp_mask`)."""
        width = _shape(self.seed.results[0])[-1]
        packed = self.has_mask and not (recompute and self.masks_recomputable)
        cuts = {0, width}
        for v, b in self.base.items():
            cuts |= {b, b + _shape(v)[-1]}
        step = -(-width // parts)
        unit = 8 if packed else 4    # whole bytes of a packed mask; words of int8 channels
        step = -(-step // unit) * unit
        cuts |= set(range(0, width, step))
        out = sorted(cuts)
        if packed and any(c % 8 for c in out):
            raise _Skip("a packed clamp mask would be cut inside a byte")
        return out


def _block_index(block: ir.Block) -> dict:
    return {op.operation: i for i, op in enumerate(block.operations)}


def _hoist(value: ir.Value, anchor, block: ir.Block, region_ops: set) -> None:
    """Move the op defining `value` (and what it needs) before `anchor` when it comes after it."""
    src = _op(value.owner)
    if src is None:
        return
    index = _block_index(block)
    if src.operation not in index or index[src.operation] < index[anchor.operation]:
        return
    if src.operation in region_ops:
        raise _Skip("a consumer's operand depends on the region")
    for v in src.operands:
        _hoist(v, anchor, block, region_ops)
    src.move_before(anchor)


#: ops erased when the split leaves them unread (a packed mask whose groups recompute it)
_DEAD_OK = ("tinytrain.channel_scale", "tinytrain.dequantize", "tinytrain.slice", "tinytrain.qclamp_mask")


def _erase_dead(ops: list) -> None:
    """Erase the view ops (dequantization, slice, packed mask) among `ops` that nothing reads any more, and
    then their operands' producers, recursively (the old ops' weights the groups re-slice)."""
    work = [op for op in ops if op.name in _DEAD_OK]
    while work:
        op = work.pop()
        if any(True for res in op.results for _ in res.uses):
            continue
        feeds = [_op(v.owner) for v in op.operands]
        op.erase()
        work += [f for f in feeds if f is not None and f.name in _DEAD_OK and f not in work]


class _Remade:
    """An output gradient the groups remake from small inputs instead of keeping it: the
    `global_avg_pool_grad` of a pooled gradient, through the clamp gradient of the pooled
    activation (`qmask_grad` with its packed mask, or `qclamp_grad` with the int8 activation).
    At a network's last block (MCUNet-5FPS: 4x4x160 fp32, 10,240 B from 640 B of pooled gradient
    and 320 B of mask) it would otherwise live through every group of the block's backward."""

    _OPS = ("tinytrain.global_avg_pool_grad", "tinytrain.qmask_grad", "tinytrain.qclamp_grad")

    def __init__(self, ops: list, leaves: list):
        self.ops, self.leaves = ops, leaves     # ops in program order; their outside operands

    @classmethod
    def of(cls, g: ir.Value):
        ops, work = [], [g]
        while work:
            src = _op(work.pop().owner)
            if src is None or src.name not in cls._OPS:
                return None
            ops.append(src)
            if src.name == "tinytrain.global_avg_pool_grad":
                continue
            work.append(src.operands[0])  # the masks' gradient operand; operand 1: the mask
        if ops[-1].name != "tinytrain.global_avg_pool_grad":
            return None
        ops.reverse()
        made = {op.results[0] for op in ops}
        leaves = list({v: None for op in ops for v in op.operands if v not in made})
        if 2 * sum(tensor_bytes(v) for v in leaves) > tensor_bytes(g):
            return None
        return cls(ops, leaves)

    def build(self, leaves: list) -> ir.Value:
        """The gradient from `leaves` (this group's values of `self.leaves`), at the insertion
        point: the same ops on them."""
        value = dict(zip(self.leaves, leaves))
        for op in self.ops:
            new = op.operation.clone()
            for i, v in enumerate(op.operands):
                new.operands[i] = value[v]
            value[op.results[0]] = new.results[0]
        return value[self.ops[-1].results[0]]


class _Splitter:
    def __init__(self, region: _Region, block: ir.Block, parts: int, recompute: bool):
        self.recompute = recompute
        self.r = region
        self.block = block
        self.bounds = region.bounds(parts, recompute)

    def run(self) -> int:
        r = self.r
        seed = r.seed
        split_sum = r.parts != [seed]
        region_ops = {op.operation for op in r.members} | {p.operation for p in r.parts}
        # every operand the groups read from outside the region must exist before the seed (the
        # seed's own operands are its parts' results: what the parts read)
        for op in r.parts + r.members[1:]:
            for i, v in enumerate(op.operands):
                if v not in r.base:
                    _hoist(v, seed, self.block, region_ops)
        for u, i, kind in r.consumers:
            if kind == "concat":  # stays where it is, reading the groups concatenated
                continue
            for j, v in enumerate(u.operands):
                if j != i:
                    _hoist(v, seed, self.block, region_ops)
        groups = list(zip(self.bounds[:-1], self.bounds[1:]))
        # consumer index -> running value (sum; an updated parameter: its groups inserted so far)
        # or list of pieces
        acc: dict = {n: r.chains[n][-1].operands[0] for n in r.chains}
        sums = _Sums(r, seed, _block_index(self.block))
        self.into = sums.into
        acc.update(sums.seeds)
        done: list = []  # what the next group's barrier waits for besides the carried values
        with ir.InsertionPoint(seed), seed.location:
            g_ins = [p.operands[0] for p in r.parts]   # the output gradient(s) the seed reads
            # an output gradient cheap to remake (`_Remade`) is remade in each group from its
            # inputs, which the groups carry instead: it lives in one group's input gradient only
            remade = [_Remade.of(g) for g in g_ins]
            kept = [g for g, m in zip(g_ins, remade) if m is None]     # carried as they are
            leaves = [v for m in remade if m is not None for v in m.leaves]
            for k, (c0, c1) in enumerate(groups):
                if k:
                    # (not a parameter's insert chain: its storage is the argument's, and IREE
                    # requires one resource lifetime for a barrier's values; the next group reads
                    # a weight's chain, which orders it after this group's update; a bias's chain
                    # it may not read, so the group's bias gradients go through the barrier, which
                    # orders the next group after them: without them a region whose consumers
                    # are all bias updates (MobileNetV2-w0.35 73kb's blocks.10) would have IREE
                    # run every group's first kernel at once)
                    carried = [(key, j) for key, val in acc.items() if key not in r.chains
                               for j in ([None] if not isinstance(val, list) else range(len(val)))]
                    vals = [acc[key] if j is None else acc[key][j] for key, j in carried]
                    out = optimization_barrier([*kept, *leaves, *vals, *done])
                    kept, leaves = out[:len(kept)], out[len(kept):len(kept) + len(leaves)]
                    for (key, j), v in zip(carried, out[len(kept) + len(leaves):]):
                        if j is None:
                            acc[key] = v
                        else:
                            acc[key][j] = v
                elif leaves:
                    # (new values, so that IREE does not merge the remade gradient with the
                    # original one, which its other readers keep before the groups)
                    leaves = optimization_barrier(leaves)
                g_ins, it_kept, it_leaves = [], iter(kept), iter(leaves)
                for m in remade:
                    if m is None:
                        g_ins.append(next(it_kept))
                    else:
                        g_ins.append(m.build([next(it_leaves) for _ in m.leaves]))
                # the group reads the parameters it updates from their partly updated values
                # (its own channels are still the old ones): each update is then in place
                params = {acc[n]: r.chains[n][-1].operands[0] for n in r.chains}
                before = {w: {_op(u.owner) for u in w.uses} for w in params.values()}
                done = self._group(g_ins, c0, c1, acc)
                if k:
                    for cur, w in params.items():
                        for use in list(w.uses):
                            user = _op(use.owner)
                            if user not in before[w] and user.name == "tinytrain.slice":
                                user.operands[use.operand_number] = cur
            finals = {}
            for n, (u, i, kind) in enumerate(r.consumers):
                if kind == "sum" and sums.into[n] != n:
                    continue  # summed into another consumer's sum
                val = acc[n]
                if kind in ("sum", "weight_update", "bias_update"):
                    finals[n] = val
                elif kind == "bias":
                    finals[n] = _concat(val, 0)
                else:
                    finals[n] = _concat(val, 3)
        mine = {op.operation for op in r.members} | {u.operation for u, i, kind in r.consumers} | \
            {p.operation for p in r.parts}
        feeds = [_op(v.owner) for op in r.members + r.parts for v in op.operands] + \
            [_op(v.owner) for u, i, kind in r.consumers if kind != "concat" for v in u.operands]
        feeds = list({f: None for f in feeds if f is not None and f not in mine})
        for n, (u, i, kind) in enumerate(r.consumers):
            if kind == "concat":
                u.operands[i] = finals[n]
            elif kind in ("weight_update", "bias_update"):
                chain = r.chains[n]
                chain[-1].results[0].replace_all_uses_with(finals[n])
                for op in reversed(chain):
                    op.erase()
                u.erase()
            elif kind == "sum":
                if sums.into[n] == n:  # (a consumer summed into another is erased with its root)
                    sums.replace(n, finals[n])
            else:
                u.results[0].replace_all_uses_with(finals[n])
                u.erase()
        index = _block_index(self.block)
        for op in sorted(r.members, key=lambda o: -index[o]):
            if any(True for res in op.results for _ in res.uses):
                raise CompileError(f"channel-groups: {op.name} still has users after the split (internal error)",
                                   stage="channel-groups")
            op.erase()
        if split_sum:  # the partial input gradients the seed summed: read by nothing now
            for p in r.parts:
                p.erase()
        _erase_dead(feeds)
        return len(groups)

    def _local(self, v: ir.Value, c0: int, c1: int, pieces: dict):
        """(channels lo..hi of `v` that group [c0, c1) covers, its piece) when `v` has a piece
        for the group, else None."""
        if v not in pieces:
            return None
        base = self.r.base[v]
        lo, hi = c0 - base, c1 - base
        return (lo, hi, pieces[v]) if 0 <= lo and hi <= _shape(v)[-1] else None

    def _group(self, g_ins: list, c0: int, c1: int, acc: dict) -> list:
        """Group [c0, c1) from the output gradient(s) `g_ins`, its results added to `acc`; returns
        its bias gradients of "bias_update" consumers (the next group's barrier waits for them)."""
        r = self.r
        done = []
        pieces: dict = {}
        out = r.seed.results[0]
        ty = _ty(_shape(out)[:-1] + [c1 - c0], out)
        # the seed's channels c0..c1: each dense input gradient with its weight's rows c0..c1 (a
        # split projection: both parts, summed as the seed sums them, value by value)
        total = None
        for part, g in zip(r.parts, g_ins):
            total = _grad_input(total, g, _weight_slice(part.operands[1], 2, c0, c1), part.attributes, ty)
        pieces[out] = total
        for op in r.members[1:]:
            res = op.results[0]
            local = self._local(op.operands[0], c0, c1, pieces)
            if local is None:
                continue
            lo, hi, p = local
            if op.name == "tinytrain.slice":
                b = r.base[res]
                if b <= c0 and c1 <= b + _shape(res)[-1]:
                    pieces[res] = p
                continue
            ty = _ty(_shape(res)[:-1] + [c1 - c0], res)
            if op.name == "tinytrain.qclamp_grad":
                y = _recompute(op.operands[1], lo, hi, after=total) if self.recompute \
                    else _slice(op.operands[1], 3, lo, hi)
                pieces[res] = tq.QClampGradOp(p, y, op.attributes["clamp"], ty).result
            elif op.name == "tinytrain.qmask_grad" and self.recompute and r.masks_recomputable:
                # the mask's channels from the recomputed activation: no byte boundary to keep
                src = _op(op.operands[1].owner)
                y = _recompute(src.operands[0], lo, hi, after=total)
                pieces[res] = tq.QClampGradOp(p, y, src.attributes["clamp"], ty).result
            elif op.name == "tinytrain.qmask_grad":
                m = _slice(op.operands[1], 3, lo // 8, hi // 8)
                pieces[res] = tq.QMaskGradOp(p, m, ty).result
            else:  # depthwise transposed conv
                at = op.attributes
                wd = _weight_slice(op.operands[1], 3, lo, hi)
                pieces[res] = tt.Conv2dGradInputOp(p, wd, at["strides"], at["padding"], _i64(c1 - c0), ty).result
        for n, (u, i, kind) in enumerate(r.consumers):
            local = self._local(u.operands[i], c0, c1, pieces)
            if local is None:
                continue
            lo, hi, p = local
            if kind == "sum":
                k = self.into[n]
                acc[k] = _grad_input(acc.get(k), p, _weight_slice(u.operands[1], 3, lo, hi), u.attributes,
                                     u.results[0].type)
            elif kind == "bias":
                acc.setdefault(n, []).append(tt.BiasGradOp(p, _ty([hi - lo], u.results[0])).result)
            elif kind == "bias_update":
                # the group's bias gradient updates the bias's channels lo..hi at once: no group's
                # gradient waits for the last group (its recomputed activations, which read these
                # channels, come before it: the gradient depends on them)
                g = tt.BiasGradOp(p, _ty([hi - lo], u.results[0])).result
                done.append(g)
                acc[n] = self._update(acc[n], g, r.chains[n], 0, lo, hi)
            elif kind == "depthwise_weight":
                at = u.attributes
                x = _weight_slice(u.operands[0], 3, lo, hi, self.recompute, after=pieces[r.seed.results[0]])
                ty = _ty(_shape(u.results[0])[:-1] + [hi - lo], u.results[0])
                acc.setdefault(n, []).append(tt.Conv2dGradWeightOp(x, p, at["strides"], at["padding"], _i64(hi - lo),
                                                                    ty).result)
            elif kind == "weight_update":
                continue  # after this group's partial input gradients (below)
            elif kind == "dense_weight":
                at = u.attributes
                ty = _ty(_shape(u.results[0])[:-1] + [hi - lo], u.results[0])
                acc.setdefault(n, []).append(tt.Conv2dGradWeightOp(u.operands[0], p, at["strides"], at["padding"],
                                                                    at["groups"], ty).result)
            else:
                acc.setdefault(n, []).append(p)
        for n, (u, i, kind) in enumerate(r.consumers):
            local = self._local(u.operands[i], c0, c1, pieces) if kind == "weight_update" else None
            if local is None:
                continue
            lo, hi, p = local
            # the group's update writes the parameter's channels lo..hi in place: after every
            # read of them (this group's partial input gradients read the weight's columns)
            sums = [m for m, (_, _, k) in enumerate(r.consumers) if k == "sum" and m in acc]
            out = optimization_barrier([p] + [acc[m] for m in sums])
            for m, val in zip(sums, out[1:]):
                acc[m] = val
            at = u.attributes
            g = tt.Conv2dGradWeightOp(u.operands[0], out[0], at["strides"], at["padding"], at["groups"],
                                      _ty(_shape(u.results[0])[:-1] + [hi - lo], u.results[0])).result
            acc[n] = self._update(acc[n], g, r.chains[n], 3, lo, hi)
        return done

    @staticmethod
    def _update(cur: ir.Value, g: ir.Value, chain: list, axis: int, lo: int, hi: int) -> ir.Value:
        """`cur` (a parameter, its earlier groups updated) with channels lo..hi (on `axis`) updated
        by `g`, their gradient, through `chain` (its per-channel scalings, then its SGD update)."""
        for op in chain[:-1]:
            scales = list(ir.DenseF64ArrayAttr(op.attributes["scales"]))[lo:hi]
            g = tq.ChannelScaleOp(g, ir.DenseF64ArrayAttr.get(scales), g.type).result
        upd = chain[-1]
        param = _slice(cur, axis, lo, hi)
        new = ir.Operation.create(upd.name, results=[param.type], operands=[param, g, upd.operands[2]],
                                  attributes={k: upd.attributes[k] for k in _attr_names(upd)}, loc=upd.location)
        offsets = [0] * len(_shape(cur))
        offsets[axis] = lo
        return tl.InsertOp(cur, new.results[0], ir.DenseI64ArrayAttr.get(offsets), cur.type).result


class _Sums:
    """How the region's "sum" consumers (dense input gradients summed over the groups) are summed.

    Each sum is a running value that every group's partial gradient is added to in its storage
    (`conv2d_grad_input_acc`). Two sums whose only reader adds them (the trained and the frozen
    part of a projection `sparse-split` cut in two) share one running value; a sum whose only
    reader adds it to a value that exists before the region (the skip path's gradient at a
    residual block's input) starts from that value. Either way the add is gone and no second
    block-width tensor holds a sum."""

    def __init__(self, region: _Region, seed, index: dict):
        self.r = region
        sums = [n for n, (_, _, kind) in enumerate(region.consumers) if kind == "sum"]
        self.into = {n: n for n in sums}    # consumer -> the consumer whose running value it adds to
        self.value = {n: region.consumers[n][0].results[0] for n in sums}  # what a root's sum stands for
        self.adds = {n: [] for n in sums}   # the adds a root's final sum replaces, innermost first
        self.seeds: dict = {}               # root -> its running value's start
        for n in sums:
            if self.into[n] != n:
                continue
            while True:
                add, other = _added_to(self.value[n])
                m = None if add is None else \
                    next((m for m in sums if m != n and self.into[m] == m and self.value[m] == other), None)
                if m is None:
                    break
                for j in sums:
                    if self.into[j] == m:
                        self.into[j] = n
                self.adds[n] += self.adds.pop(m) + [add]
                self.value[n] = add.results[0]
            # (add, other): the reader of the merged sum, from the loop's last look
            if add is not None and _defined_before(other, seed, index):
                with ir.InsertionPoint(seed), seed.location:
                    self.seeds[n] = optimization_barrier([other])[0]
                self.adds[n].append(add)
                self.value[n] = add.results[0]

    def replace(self, n: int, final) -> None:
        """After the groups: root `n`'s final sum replaces what it stands for; the adds it replaces
        and the consumers summed into it are erased."""
        self.value[n].replace_all_uses_with(final)
        for add in reversed(self.adds[n]):
            add.erase()
        for j, root in self.into.items():
            if root == n:
                self.r.consumers[j][0].erase()


def _added_to(v: ir.Value):
    """(the `tinytrain.add` that is the only reader of `v`, its other operand), or (None, None)."""
    uses = list(v.uses)
    if len(uses) != 1:
        return None, None
    add = _op(uses[0].owner)
    if add is None or add.name != "tinytrain.add":
        return None, None
    return add, add.operands[1 - uses[0].operand_number]


def _defined_before(v: ir.Value, anchor, index: dict) -> bool:
    """`v` is an argument of the block or the result of an op that comes before `anchor`."""
    src = _op(v.owner)
    return src is None or index.get(src.operation, len(index)) < index[anchor.operation]


def _grad_input(acc, g: ir.Value, w: ir.Value, attrs, ty) -> ir.Value:
    """The input gradient of `g` through `w` (`attrs`: the conv's), added to the running sum `acc`
    (`conv2d_grad_input_acc`: summed in the accumulator's storage) unless `acc` is None."""
    if acc is None:
        return tt.Conv2dGradInputOp(g, w, attrs["strides"], attrs["padding"], attrs["groups"], ty).result
    return tt.Conv2dGradInputAccOp(acc, g, w, attrs["strides"], attrs["padding"], attrs["groups"], ty).result


def _dense_grad_input(v: ir.Value):
    """The op of `v` when it is an fp32 4-D dense `conv2d_grad_input`, else None."""
    op = _op(v.owner)
    if op is None or op.name != _GRAD_INPUT or _groups(op) != 1:
        return None
    if len(_shape(v)) != 4 or str(ir.RankedTensorType(v.type).element_type) != "f32":
        return None
    return op


def _split_sum(op):
    """The two dense input gradients an `add` sums when it is `sparse-split`'s sum of a split
    projection's partial input gradients (each read by this add only), else None."""
    if op.name != "tinytrain.add" or len(op.operands) != 2:
        return None
    parts = [_dense_grad_input(v) for v in op.operands]
    if any(p is None or _only_user(p.results[0]) != op for p in parts) or parts[0] == parts[1]:
        return None
    return parts


def _regions(block: ir.Block, min_bytes: int, bias_updates: bool = False) -> list:
    out = []
    for op in block.operations:
        op = op.operation
        parts = _split_sum(op)
        if parts is not None:
            region = _Region(op, parts, bias_updates)
        elif len(op.results) == 1 and _dense_grad_input(op.results[0]) is not None:
            user = _only_user(op.results[0])
            if user is not None and _split_sum(user) is not None:
                continue  # a part of a split projection's sum: the sum is the region's seed
            region = _Region(op, bias_updates=bias_updates)
        else:
            continue
        # the biggest gradient of the region: a stride-2 depthwise layer's input gradient is 4x its seed
        if max(tensor_bytes(v) for v in region.base) < min_bytes:
            continue
        # A region without a depthwise op but with a clamp gradient and no dense input gradient
        # after it (the lowest trained block of a sparse scheme: the depthwise output's mask, then
        # its bias gradient) splits too: IREE does not fuse an unpacked mask into the contraction
        # before it, so the input gradient and its masked copy would both exist whole
        # (MCUNet-5FPS 49kb, blocks.7: two 8x8x160 fp32 tensors, 81,920 B). The same with the
        # int8 activation instead of a mask (`qclamp_grad`: the projection's weight gradient keeps
        # it) and a split projection's two partial gradients: MobileNetV2-w0.35 73kb, blocks.10,
        # two 8x8x144 fp32 tensors (with the guard chain's barriers, `tied.py`: plan 153,024 ->
        # 105,728 B). Only with bias gradients after it: a depthwise weight gradient in groups is
        # no dispatch of our kernel (`kernels="ttk-f32"`; test_cortexm_kernel_dispatch), and no
        # published scheme has such a region
        kinds = [kind for _, _, kind in region.consumers]
        if region.has_depthwise or ("sum" not in kinds and (
                region.has_mask or (region.has_clamp and all(kind in ("bias", "bias_update") for kind in kinds)))):
            out.append(region)
    # a region whose seed another region consumes (a dense input gradient it rewrites) is left whole
    taken = {_op(u) for r in out for u, _, _ in r.consumers}
    return [r for r in out if r.has_depthwise or not ({_op(r.seed), *map(_op, r.parts)} & taken)]


@dataclasses.dataclass(frozen=True)
class ChannelGroupsPass(ModulePass):
    argument: ClassVar[str] = "channel-groups"
    summary: ClassVar[str] = ("Compute the backward pass of each depthwise layer (from the input gradient of "
                              "the 1x1 conv after it to the one before it) in groups of channels, one "
                              "group after the other, so its fp32 gradients never exist whole.")
    option_docs: ClassVar[dict[str, str]] = {
        "groups": "channel groups per region (about; slice boundaries add some); 1 disables the pass",
        "min_bytes": "only regions with an fp32 gradient of at least this many bytes",
        "group_bytes": "more groups where the region's biggest gradient would leave groups above this "
                       "many bytes (0: exactly `groups`)",
        "bias_updates": "update a trained bias group by group (each group's channels inserted into the "
                        "parameter in place) instead of concatenating the groups' bias gradients for one "
                        "update at the end (less SRAM, more code)",
        "recompute": "recompute each group's int8 activations (the clamp masks' outputs, the depthwise "
                     "weight gradient's input) from the forward ops instead of keeping them from the "
                     "forward pass",
    }

    groups: int = 4
    # 4 KB rather than 8 KB: since a streamed input's late patches no longer hold the forward's
    # layout above the input's 49 KB (replan.py), a depthwise backward holds the step's peak at
    # 128x128: the paper's ~100 KB schemes plan 128,832 -> 123,264 B (MobileNetV2-w0.35 99kb),
    # 148,480 -> 139,648 B (MCUNet-5FPS 99kb), ProxylessNAS-w0.3 98kb 135,296 -> 133,760 B, for
    # +1.4% instructions of MobileNetV2-w0.35's 49kb step with our kernels (2 KB: 120,064 /
    # 135,040 / 133,760 B for +5.4%); the pass runs for Cortex-M only (the host compiles with one
    # group). 3 KB rather than 4 KB once the last block's output gradient was remade per group
    # (`_Remade`) and the groups' recomputed activations waited for their input gradient: MCUNet-5FPS
    # 99kb is then bound by blocks.9's groups (two 8x8x48 fp32 gradients live beside them): plan
    # 126,080 -> 124,544 B (4x4 patches), +1.5% instructions of the MobileNetV2-w0.35 49kb step
    # (5x5 patches: 49,182,600 -> 49,907,760); 2 KB overflowed the board's flash then. 2 KB rather
    # than 3 KB once the groups share their kernels (`lowering/cortexm/shared_kernels.py`: slice
    # offsets as push constants): MobileNetV2-w0.35 99kb on the M7, plan 111,808 -> 109,504 B,
    # .text 1,696,432 -> 1,835,712 B, instructions per step 326,817,640 -> 320,958,760 (1.5 KB: the
    # same plan, 327,662,920 instructions; 1 KB: 109,888 B, its first conv's patches then hold the
    # peak).
    min_bytes: int = 8192
    group_bytes: int = 2048
    recompute: bool = True
    # on by default since small constants left the Cortex-M kernels (8223f48): each group's bias
    # update is a kernel of its own, and at 3de554c the firmware of MobileNetV2-w0.35 138kb and
    # ProxylessNAS-w0.3 148kb then overflowed the board's 4 MB of flash (by 260,104 / 66,104 B);
    # at fa88fc1 their .text is 3,771,584 / 3,883,392 B, plans 150,912 -> 149,120 B and
    # 168,576 -> 167,296 B
    bias_updates: bool = True

    def _parts(self, region: _Region) -> int:
        """`groups`, or more where the region's biggest gradient would leave groups above
        `group_bytes` (at least 4 channels a group)."""
        biggest = max(tensor_bytes(v) for v in region.base)
        width = _shape(region.seed.results[0])[-1]
        more = -(-biggest // self.group_bytes) if self.group_bytes else 1
        return max(self.groups, min(more, width // 4))

    def run(self, module: ir.Operation) -> None:
        if self.groups < 1 or self.min_bytes < 0 or self.group_bytes < 0:
            raise CompileError(f"channel-groups: groups must be >= 1, min_bytes and group_bytes >= 0, got "
                               f"groups={self.groups}, min_bytes={self.min_bytes}, group_bytes={self.group_bytes}",
                               stage=self.argument)
        if self.groups == 1:
            return
        module.context.allow_unregistered_dialects = True
        with module.context, module.location:
            for fn in list(module.regions[0].blocks[0].operations):
                if fn.operation.name != "func.func":
                    continue
                block = fn.regions[0].blocks[0]
                split = []
                for region in _regions(block, self.min_bytes, self.bias_updates):
                    layer, width = layer_name(region.seed), _shape(region.seed.results[0])[-1]
                    try:
                        n = _Splitter(region, block, self._parts(region), self.recompute).run()
                    except _Skip:
                        continue
                    split.append(ir.DictAttr.get({
                        "layer": ir.StringAttr.get(layer), "channels": _i64(width),
                        "groups": _i64(n)}))
                if split:
                    fn.attributes["tinytrain.channel_groups"] = ir.ArrayAttr.get(split)


