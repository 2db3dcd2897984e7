"""sparse-update / sparse-narrow: train only the first r*C_out output channels of a weight (paper
Sec. 2.2, "sparse tensor update"; issue #9 point 3).

`sparse-update{weights=<param>:<ratio>,...}` runs on `@forward`, BEFORE `autodiff`. Each listed
weight parameter `P` (the weight of a `conv2d` / `qconv2d`, directly or through the `quantize` of
an fp32 master copy, or of a `linear`) with ratio r < 1 is split along its output-channel axis
(axis 3 of an HWIO conv weight, axis 0 of a `[O, I]` linear weight):

    %P       : the trained slice, channels [0, k), k = floor(r * C_out)   (keeps the name P and
               gets {tinytrain.sparse_channels = k : i64, tinytrain.sparse_of = C_out : i64})
    %P_rest  : the frozen rest, channels [k, C_out), a new parameter "<P>.frozen" tagged
               {tinytrain.frozen}: never trainable (not even by trainable=all); `to-linalg`
               makes it a constant (flash on the device)
    %joined  = tinytrain.concat(%P, %P_rest) {axis}  replaces every use of the old argument.

The int8 per-channel attributes of the conv (`weight_scales`, multipliers) are untouched: the
joined weight is the whole weight, channel for channel, so the forward pass is bit-identical.
A ratio of 1 leaves the weight alone (trained whole, if it is trainable). Depthwise (and grouped)
convs: output channel o belongs to group o / (C_out / groups), so the first k output channels are
the first k / (C_out / groups) groups (all of a depthwise conv's k channels); k must be a whole
number of groups' outputs (always true for depthwise).

`sparse-narrow` runs AFTER `autodiff` (and before `qas`): the adjoint of the concat slices the
full weight gradient, `slice(conv2d_grad_weight(x, g))`. The pass pushes the slice down to the
operands: `slice(channel_scale(a, s))` -> `channel_scale(slice(a), s[k range])`, and
`slice(conv2d_grad_weight(x, g))` -> `conv2d_grad_weight(x', slice(g))` (x' = the input channels of
the kept groups; the groups attribute counts the kept groups), `slice(linear_grad_weight(x, g))`
-> `linear_grad_weight(x, slice(g))`. Afterwards the weight gradient is computed for the k trained
output channels only: no full-size weight gradient remains (the pass fails if one would).

Why a concat of the two parameters first: one conv op keeps the forward and input-gradient
kernels (and the int8 requantization attributes) exactly as they are through autodiff, and the
narrowing above is a local rewrite of the weight gradient.

`sparse-split` runs after `sparse-narrow` (and `qas`): the joined weight would be a transient the
size of the whole weight (int8 on the device: 18,816 bytes for MobileNetV2-w0.35's 56 -> 336
pointwise convs) that IREE materializes at the start of the step and keeps until the layer's
backward pass. For a dense or pointwise conv (groups = 1) whose join is read only as a conv
weight, the pass computes the conv per part instead, so no whole weight ever exists:

    conv(x, join(A, B), b)           -> concat(conv(x, A, b[:k]), conv(x, B, b[k:]))  (channels;
                                        per-channel weight_scales / multiplier / shift cut alike)
    conv2d_grad_input(g, join(A, B)) -> conv2d_grad_input(g[..., :k], A) + conv2d_grad_input(g[..., k:], B)

(int8: the input gradient reads `channel_scale(join, s)`, split into `channel_scale(A, s[:k])`
and `channel_scale(B, s[k:])`). The forward is bit-identical (each output channel is the same
dot product and requantization); the input gradient sums the same products in two groups. The
cost is the output concat (activation-sized). Depthwise joins (the kept groups' input channels
would have to be sliced too; their weights are small) and linear weights keep the join.
"""

from __future__ import annotations

import dataclasses
import math
from fractions import Fraction
from typing import ClassVar

from torch_mlir import ir
from torch_mlir.dialects import func

from tinytrain.dialects import tinytrain as tt
from tinytrain.dialects import tinytrain_layers as tl
from tinytrain.dialects import tinytrain_quant as tq
from tinytrain.errors import CompileError
from tinytrain.irfuncs import arg_attrs, find_func
from tinytrain.passes import ModulePass

__all__ = ["SparseUpdatePass", "SparseNarrowPass", "WeightSlice", "RATIOS", "parse_ratio", "plan_slices",
           "split_values", "merge_values", "FROZEN_SUFFIX"]

#: The channel ratios of the paper's sparse tensor update.
RATIOS = (Fraction(1, 8), Fraction(1, 4), Fraction(1, 2), Fraction(1))
FROZEN_SUFFIX = ".frozen"
_RATIO_TEXT = "1/8, 1/4, 1/2 or 1"


def parse_ratio(value, where: str) -> Fraction:
    """A ratio in {1/8, 1/4, 1/2, 1} from a number or a string ("0.25", "1/4")."""
    try:
        if isinstance(value, bool):
            raise ValueError
        r = Fraction(value) if not isinstance(value, float) else Fraction(value).limit_denominator(64)
    except (ValueError, TypeError, ZeroDivisionError):
        raise ValueError(f"{where}: ratio {value!r} is not a number; allowed ratios: {_RATIO_TEXT}") from None
    if r not in RATIOS:
        raise ValueError(f"{where}: ratio {value!r} is not allowed; the sparse update trains 1/8, 1/4, 1/2 "
                         f"or all of a weight's output channels (write one of {_RATIO_TEXT})")
    return r


@dataclasses.dataclass(frozen=True)
class WeightSlice:
    """A weight trained on its first `channels` of `of` output channels (along `axis`)."""

    name: str
    axis: int
    channels: int
    of: int

    @property
    def frozen_name(self) -> str:
        return self.name + FROZEN_SUFFIX


def _forward(module: ir.Operation, stage: str) -> func.FuncOp:
    fwd = find_func(module, "forward")
    if fwd is not None:
        return fwd
    raise CompileError(f"{stage}: the module has no @forward function (run it before autodiff)",
                       stage=stage, loc=module.location)


def _param_names(attrs) -> list[str | None]:
    return [ir.StringAttr(a["tinytrain.param"]).value if "tinytrain.param" in a else None for a in attrs]


_CONVS = ("tinytrain.conv2d", "tinytrain.qconv2d")


def _weight_use(arg: ir.Value):
    """(op consuming `arg` as a weight, output-channel axis), looking through the `quantize` of
    an fp32 master copy; (None, None) when `arg` is not (only) a conv / linear weight."""
    uses = list(arg.uses)
    if len(uses) != 1:
        return None, None
    owner, pos = uses[0].owner, uses[0].operand_number
    if owner.name == "tinytrain.quantize":
        inner = list(owner.results[0].uses)
        if len(inner) != 1:
            return None, None
        owner, pos = inner[0].owner, inner[0].operand_number
        if owner.name not in _CONVS:
            return None, None
    if owner.name in _CONVS and pos == 1:
        return owner, 3
    if owner.name == "tinytrain.linear" and pos == 1:
        return owner, 0
    return None, None


def plan_slices(module, ratios: dict[str, Fraction], stage: str = "sparse-update") -> list[WeightSlice]:
    """The slices `sparse-update` makes for `ratios` (parameter name -> ratio) on the module's
    `@forward`, checked: every name is a parameter, a ratio below 1 names a conv or linear weight
    with at least one trained channel (and, for a grouped conv, whole groups)."""
    op = module.operation if isinstance(module, ir.Module) else module
    fwd = _forward(op, stage)
    block = fwd.regions[0].blocks[0]
    names = _param_names(arg_attrs(fwd))
    index = {n: i for i, n in enumerate(names) if n is not None}
    out = []
    for name, r in ratios.items():
        r = parse_ratio(r, f"{stage}: '{name}'") if not isinstance(r, Fraction) else r
        if name not in index:
            import difflib
            close = difflib.get_close_matches(name, list(index), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise CompileError(f"{stage}: unknown parameter '{name}'{hint} The model's parameters are: "
                               + ", ".join(index), stage=stage, loc=fwd.location)
        if r == 1:
            continue
        arg = block.arguments[index[name]]
        user, axis = _weight_use(arg)
        if user is None:
            raise CompileError(f"{stage}: '{name}' has ratio {r}, but only the weight of a conv2d/qconv2d or "
                               "linear can be trained on a fraction of its output channels; give it ratio 1 "
                               "(biases and other parameters are trained whole)", stage=stage,
                               loc=fwd.location)
        shape = list(ir.RankedTensorType(arg.type).shape)
        c = shape[axis]
        k = math.floor(r * c)
        if k < 1:
            raise CompileError(f"{stage}: '{name}' has {c} output channels; ratio {r} trains none of them "
                               f"(use a ratio of at least 1/{c})", stage=stage, loc=user.location)
        if axis == 3:
            groups = ir.IntegerAttr(user.attributes["groups"]).value
            per = c // groups
            if groups > 1 and k % per:
                raise CompileError(f"{stage}: '{name}' (groups={groups}, {per} output channels per group): "
                                   f"ratio {r} keeps {k} channels, not a whole number of groups; choose a "
                                   f"ratio that keeps a multiple of {per}", stage=stage, loc=user.location)
        out.append(WeightSlice(name, axis, k, c))
    return out


def split_values(values: dict, slices: list[WeightSlice]) -> dict:
    """`values` (name -> array, program layout) with each sliced weight replaced by its trained
    slice and `<name>.frozen` holding the rest (what the split `@forward` takes)."""
    import numpy as np

    out = dict(values)
    for s in slices:
        full = np.asarray(values[s.name])
        lo = [slice(None)] * full.ndim
        hi = [slice(None)] * full.ndim
        lo[s.axis], hi[s.axis] = slice(0, s.channels), slice(s.channels, None)
        out[s.name] = np.ascontiguousarray(full[tuple(lo)])
        out[s.frozen_name] = np.ascontiguousarray(full[tuple(hi)])
    return out


def merge_values(trained, frozen, s: WeightSlice):
    """The whole weight: the trained slice joined with the frozen rest."""
    import numpy as np

    return np.concatenate([np.asarray(trained), np.asarray(frozen)], axis=s.axis)


def _parse_weights(entries: tuple[str, ...], stage: str) -> dict[str, Fraction]:
    out = {}
    for e in entries:
        name, sep, ratio = e.rpartition(":")
        if not sep or not name:
            raise CompileError(f"{stage}: option weights expects <parameter>:<ratio> entries (e.g. "
                               f"blocks.3.pointwise1.weight:1/4), got '{e}'", stage=stage)
        if name in out:
            raise CompileError(f"{stage}: '{name}' is listed twice in weights", stage=stage)
        try:
            out[name] = parse_ratio(ratio, f"{stage}: '{name}'")
        except ValueError as err:
            raise CompileError(str(err), stage=stage) from None
    return out


@dataclasses.dataclass(frozen=True)
class SparseUpdatePass(ModulePass):
    argument: ClassVar[str] = "sparse-update"
    summary: ClassVar[str] = ("Split each listed weight of @forward into a trained slice (its first "
                              "ratio*C_out output channels) and a frozen rest joined by tinytrain.concat "
                              "(run before autodiff; sparse-narrow after it).")
    option_docs: ClassVar[dict[str, str]] = {
        "weights": "comma-separated <parameter>:<ratio>, ratio in 1/8, 1/4, 1/2, 1 (e.g. conv.weight:1/4)",
    }

    weights: tuple[str, ...] = ()

    def run(self, module: ir.Operation) -> None:
        with module.context, module.location:
            self._run(module)

    def _run(self, module: ir.Operation) -> None:
        slices = plan_slices(module, _parse_weights(self.weights, self.argument), self.argument)
        if not slices:
            return
        fwd = _forward(module, self.argument)
        old = fwd.regions[0].blocks[0]
        attrs = arg_attrs(fwd)
        names = _param_names(attrs)
        by_name = {s.name: s for s in slices}
        types, new_attrs, origin = [], [], []  # origin: (old arg index, None | "slice" | "rest")
        i64 = ir.IntegerType.get_signless(64)
        for i, (a, d) in enumerate(zip(old.arguments, attrs)):
            s = by_name.get(names[i])
            if s is None:
                types.append(a.type)
                new_attrs.append(d)
                origin.append((i, None))
                continue
            t = ir.RankedTensorType(a.type)
            for part, n in (("slice", s.channels), ("rest", s.of - s.channels)):
                shape = list(t.shape)
                shape[s.axis] = n
                types.append(ir.RankedTensorType.get(shape, t.element_type))
                if part == "slice":
                    new_attrs.append({**d, "tinytrain.sparse_channels": ir.IntegerAttr.get(i64, s.channels),
                                      "tinytrain.sparse_of": ir.IntegerAttr.get(i64, s.of)})
                else:
                    new_attrs.append({"tinytrain.param": ir.StringAttr.get(s.frozen_name),
                                      "tinytrain.frozen": ir.UnitAttr.get()})
                origin.append((i, part))
        ftype = ir.FunctionType(ir.TypeAttr(fwd.attributes["function_type"]).value)
        with ir.InsertionPoint(fwd), fwd.location:
            new = func.FuncOp("forward", ir.FunctionType.get(types, list(ftype.results)))
        new.arg_attrs = ir.ArrayAttr.get([ir.DictAttr.get(d) for d in new_attrs])
        entry = new.add_entry_block()
        for op in list(old.operations):
            entry.append(op.detach_from_parent())
        first = entry.operations[0] if len(entry.operations) else None
        parts: dict[int, dict[str, ir.Value]] = {}
        for pos, (i, part) in enumerate(origin):
            if part is None:
                old.arguments[i].replace_all_uses_with(entry.arguments[pos])
            else:
                parts.setdefault(i, {})[part] = entry.arguments[pos]
        for i, p in parts.items():
            s = by_name[names[i]]
            with ir.InsertionPoint(first), ir.Location.name(f"{s.name} (sparse update)"):
                joined = tl.ConcatOp(p["slice"], p["rest"], ir.IntegerAttr.get(i64, s.axis),
                                     old.arguments[i].type).result
            old.arguments[i].replace_all_uses_with(joined)
        fwd.operation.erase()


# ----------------------------------------------------------------------------------------------
# sparse-narrow
# ----------------------------------------------------------------------------------------------


def _i64s(op, name: str) -> list[int]:
    return list(ir.DenseI64ArrayAttr(op.attributes[name]))


def _shape(v: ir.Value) -> list[int]:
    return list(ir.RankedTensorType(v.type).shape)


def _slice(v: ir.Value, offsets: list[int], shape: list[int], loc) -> ir.Value:
    if not any(offsets) and shape == _shape(v):
        return v
    t = ir.RankedTensorType.get(shape, ir.RankedTensorType(v.type).element_type)
    return tl.SliceOp(v, ir.DenseI64ArrayAttr.get(offsets), t, loc=loc).result


def _only_along(offsets, in_shape, out_shape, axis) -> bool:
    return all(o == 0 and a == b for d, (o, a, b) in enumerate(zip(offsets, in_shape, out_shape)) if d != axis)


def _producer(v: ir.Value) -> ir.Operation | None:
    """The op defining `v` (None for a block argument)."""
    owner = v.owner
    return None if isinstance(owner, ir.Block) else owner.operation


def _narrow(sl) -> bool:
    """Rewrite one `tinytrain.slice` of a weight gradient (see the module docstring); True if it
    changed the IR."""
    src = sl.operands[0]
    producer = _producer(src)
    if producer is None or len(list(src.uses)) != 1:
        return False
    off, in_shape, out_shape = _i64s(sl, "offsets"), _shape(src), _shape(sl.results[0])
    loc, name = sl.location, producer.name
    rank = len(in_shape)
    with ir.InsertionPoint(sl), loc:
        if name == "tinytrain.channel_scale" and _only_along(off, in_shape, out_shape, rank - 1):
            o, k = off[-1], out_shape[-1]
            scales = list(ir.DenseF64ArrayAttr(producer.attributes["scales"]))[o:o + k]
            inner = _slice(producer.operands[0], off, out_shape, loc)
            new = tq.ChannelScaleOp(inner, ir.DenseF64ArrayAttr.get(scales), sl.results[0].type).result
        elif name == "tinytrain.conv2d_grad_weight" and _only_along(off, in_shape, out_shape, 3):
            x, g = producer.operands
            o, k, c = off[3], out_shape[3], in_shape[3]
            groups = ir.IntegerAttr(producer.attributes["groups"]).value
            per = c // groups
            xs, gs = _shape(x), _shape(g)
            if groups == 1:  # every output channel reads every input channel
                x2, kept = x, 1
            elif o % per or k % per:
                return False
            else:  # the kept groups' input channels
                cg = xs[3] // groups
                x2, kept = _slice(x, [0, 0, 0, (o // per) * cg], xs[:3] + [(k // per) * cg], loc), k // per
            g2 = _slice(g, [0, 0, 0, o], gs[:3] + [k], loc)
            new = tt.Conv2dGradWeightOp(x2, g2, producer.attributes["strides"], producer.attributes["padding"],
                                        ir.IntegerAttr.get(ir.IntegerType.get_signless(64), kept),
                                        sl.results[0].type).result
        elif name == "tinytrain.linear_grad_weight" and _only_along(off, in_shape, out_shape, 0):
            x, g = producer.operands
            gs = _shape(g)
            g2 = _slice(g, [0, off[0]], [gs[0], out_shape[0]], loc)
            new = tt.LinearGradWeightOp(x, g2, sl.results[0].type).result
        else:
            return False
    sl.results[0].replace_all_uses_with(new)
    sl.erase()
    producer.erase()
    return True


def _sparse_args(f) -> list[tuple[int, str, int]]:
    """(argument index, parameter name, trained channels) of the sliced trainable weights."""
    out = []
    for i, d in enumerate(arg_attrs(f)):
        if "tinytrain.sparse_channels" in d and "tinytrain.trainable" in d:
            out.append((i, ir.StringAttr(d["tinytrain.param"]).value,
                        ir.IntegerAttr(d["tinytrain.sparse_channels"]).value))
    return out


_WEIGHT_GRADS = ("tinytrain.conv2d_grad_weight", "tinytrain.linear_grad_weight")


@dataclasses.dataclass(frozen=True)
class SparseNarrowPass(ModulePass):
    argument: ClassVar[str] = "sparse-narrow"
    summary: ClassVar[str] = ("After autodiff: compute the weight gradient of a sparse-update slice for its "
                              "trained output channels only (push the slice into the weight-gradient op).")

    def run(self, module: ir.Operation) -> None:
        with module.context, module.location:
            self._run(module)

    def _run(self, module: ir.Operation) -> None:
        changed = True
        while changed:
            slices = []

            def visit(op):
                if op.operation.name == "tinytrain.slice":
                    slices.append(op.operation)
                return ir.WalkResult.ADVANCE

            module.walk(visit)
            changed = False
            for sl in slices:
                changed |= _narrow(sl)
        self._check(module)

    def _check(self, module: ir.Operation) -> None:
        """No weight-gradient op of a sliced weight may have more output channels than its slice."""
        for op in module.regions[0].blocks[0].operations:
            if op.operation.name != "func.func":
                continue
            f = op.opview
            block = f.regions[0].blocks[0]
            for i, name, k in _sparse_args(f):
                for use in block.arguments[i].uses:
                    upd = use.owner
                    if upd.name not in ("tinytrain.sgd_update", "tinytrain.qsgd_update"):
                        continue
                    g = upd.operands[1]
                    if _producer(g) is not None and _producer(g).name == "tinytrain.sgd_momentum":
                        g = _producer(g).operands[1]  # momentum: the gradient the buffer accumulates
                    while _producer(g) is not None and _producer(g).name == "tinytrain.channel_scale":
                        g = _producer(g).operands[0]
                    src = _producer(g)
                    if src is None or src.name not in _WEIGHT_GRADS or _shape(g) != _shape(block.arguments[i]):
                        raise CompileError(f"{self.argument}: the gradient of the sparse weight '{name}' ({k} "
                                           f"trained channels) is not a weight-gradient op of its slice "
                                           f"(got {src.name if src else 'an argument'} of shape {_shape(g)}); run sparse-narrow "
                                           "right after autodiff", stage=self.argument, loc=upd.location)


# ----------------------------------------------------------------------------------------------
# sparse-split
# ----------------------------------------------------------------------------------------------

#: Per-output-channel attributes of a conv (sliced with its output channels).
_CHANNEL_ATTRS = {"weight_scales": ir.DenseF64ArrayAttr, "multiplier": ir.DenseI32ArrayAttr,
                  "shift": ir.DenseI32ArrayAttr}


def _is_arg_with(v: ir.Value, attr: str, attrs: list) -> bool:
    """`v` is a block argument whose attributes (`attrs`: the function's, by position) have `attr`."""
    return isinstance(v.owner, ir.Block) and attr in attrs[ir.BlockArgument(v).arg_number]


def _split_uses(join, attrs: list) -> tuple[list, list] | None:
    """(forward convs, input-gradient convs) reading the sparse join `join` as their weight, or
    None when `join` is not a pointwise/dense conv weight's join or has any other reader.
    `attrs`: the function's argument attributes."""
    if (ir.IntegerAttr(join.attributes["axis"]).value != 3 or len(_shape(join.results[0])) != 4
            or not _is_arg_with(join.operands[0], "tinytrain.sparse_channels", attrs)
            or not _is_arg_with(join.operands[1], "tinytrain.frozen", attrs)):
        return None
    fwd, grads = [], []
    for use in join.results[0].uses:
        op = use.owner
        if _dense_weight_use(op, use.operand_number, _CONVS):
            fwd.append(op)
        elif _dense_weight_use(op, use.operand_number, ("tinytrain.conv2d_grad_input",)):
            grads.append(op)  # fp32: the input gradient reads the weight
        elif op.name == "tinytrain.channel_scale":  # int8: it reads the dequantized weight
            for u in op.results[0].uses:
                if not _dense_weight_use(u.owner, u.operand_number, ("tinytrain.conv2d_grad_input",)):
                    return None
                grads.append(u.owner)
        else:
            return None
    return fwd, grads


def _dense_weight_use(op, operand: int, names) -> bool:
    return op.name in names and operand == 1 and ir.IntegerAttr(op.attributes["groups"]).value == 1


def _channel_attrs(op, lo: int, hi: int) -> dict:
    """The op's attributes with every per-output-channel array cut to channels [lo, hi)."""
    return {name: _CHANNEL_ATTRS[name].get(list(_CHANNEL_ATTRS[name](value))[lo:hi])
            if name in _CHANNEL_ATTRS else value for name, value in _attrs(op).items()}


def _attrs(op) -> dict:
    """The op's attributes, name -> attribute."""
    return {name: op.attributes[name] for name in op.attributes}


def _clone_with(op, operands: list, attrs: dict, result_type) -> ir.Value:
    new = ir.Operation.create(op.name, results=[result_type], operands=operands, attributes=attrs,
                              loc=op.location)
    return new.results[0]


def _with_channels(t: ir.Type, n: int) -> ir.Type:
    rt = ir.RankedTensorType(t)
    shape = list(rt.shape)
    shape[-1] = n
    return ir.RankedTensorType.get(shape, rt.element_type)


def _split_forward(conv, parts) -> None:
    """`conv(x, join(A, B), b)` -> `concat(conv(x, A, b[:k]), conv(x, B, b[k:]))` on channels."""
    x, _, bias = conv.operands
    y = conv.results[0]
    halves = []
    with ir.InsertionPoint(conv), conv.location:
        for w, lo, hi in parts:
            b = _slice(bias, [lo], [hi - lo], conv.location)
            halves.append(_clone_with(conv, [x, w, b], _channel_attrs(conv, lo, hi),
                                      _with_channels(y.type, hi - lo)))
        joined = tl.ConcatOp(halves[0], halves[1], ir.IntegerAttr.get(ir.IntegerType.get_signless(64), 3),
                             y.type).result
    y.replace_all_uses_with(joined)
    conv.erase()


def _split_grad_input(grad, parts) -> None:
    """`conv2d_grad_input(g, join(A, B))` -> the sum over the two parts of
    `conv2d_grad_input(g[..., part], part)`; an int8 weight read as `channel_scale(join, s)`
    is read as `channel_scale(part, s[part])`."""
    g, w_in = grad.operands
    scale = _producer(w_in)
    if scale is not None and scale.name != "tinytrain.channel_scale":
        scale = None  # fp32: w_in is the join itself
    scales = list(ir.DenseF64ArrayAttr(scale.attributes["scales"])) if scale is not None else None
    gs = _shape(g)
    terms = []
    with ir.InsertionPoint(grad), grad.location:
        for w, lo, hi in parts:
            ws = w if scale is None else tq.ChannelScaleOp(w, ir.DenseF64ArrayAttr.get(scales[lo:hi]),
                                                           _with_channels(w_in.type, hi - lo),
                                                           loc=scale.location).result
            gp = _slice(g, [0, 0, 0, lo], gs[:3] + [hi - lo], grad.location)
            terms.append(_clone_with(grad, [gp, ws], _attrs(grad),
                                     grad.results[0].type))
        total = tt.AddOp(terms[0], terms[1], grad.results[0].type).result
    grad.results[0].replace_all_uses_with(total)
    grad.erase()
    if scale is not None and not list(w_in.uses):
        scale.erase()


@dataclasses.dataclass(frozen=True)
class SparseSplitPass(ModulePass):
    argument: ClassVar[str] = "sparse-split"
    summary: ClassVar[str] = ("Compute a dense/pointwise conv with a sparse-update weight as two convs, one "
                              "per part (trained slice, frozen rest), so the joined whole weight never "
                              "exists (run after sparse-narrow and qas).")

    def run(self, module: ir.Operation) -> None:
        with module.context, module.location:
            for op in module.regions[0].blocks[0].operations:
                if op.operation.name == "func.func" and op.regions[0].blocks:
                    self._split(op.opview)

    def _split(self, f) -> None:
        joins = [op.operation for op in f.regions[0].blocks[0].operations
                 if op.operation.name == "tinytrain.concat"]
        attrs = arg_attrs(f) if joins else []
        for join in joins:
            uses = _split_uses(join, attrs)
            if uses is None:
                continue
            a, b = join.operands
            k, c = _shape(a)[3], _shape(join.results[0])[3]
            parts = [(a, 0, k), (b, k, c)]
            fwd, grads = uses
            for conv in fwd:
                _split_forward(conv, parts)
            for grad in grads:
                _split_grad_input(grad, parts)
            join.erase()
