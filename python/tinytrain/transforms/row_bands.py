"""`row-bands`: run a chain of int8 convolutions (an inverted-residual block's expansion, depthwise
and projection) band of rows by band of rows, so that its wide inner tensors never exist whole
(issue #9).

Outside the patched first stages (`patch-stage`) the largest tensors of the forward pass are the
inner ones of the low-resolution blocks: at 128x128 MobileNetV2-w0.35's blocks 11-13 expand 8x8x32
to 8x8x192, and the expansion's output and the depthwise output (12,288 B of int8 each) are live
together while the depthwise runs. Those blocks are trained (their weights or biases), so
`patch-stage`, which takes only frozen ops whose tensors the backward pass never reads, leaves them
whole. What the backward pass reads of them, though, is often only their packed clamp masks
(`qclamp_mask`, 1 bit per value): then nothing but the chain itself needs the inner tensors whole.

The chain: `qconv2d` ops of one block (their layers' parent module) c_0 -> c_1 -> ... -> c_k
(k >= 1), each reading the one before as its input, where every inner value (the results of c_0 .. c_{k-1}) is read only by the next conv and by
`qclamp_mask` ops; its input and its output (c_k's result) may have any readers. Its weights may be
trained (the band reads them in the forward pass, upstream of every update). Chains whose largest
inner value has at least `min_bytes` are split.

Each band computes the output rows [r0, r1) of c_k from the rows of the chain's input that their
receptive field needs (the halo rows are recomputed, as in `patch-stage`; a convolution's zero
padding is applied only at the tensor's border), and the packed clamp masks of the inner rows it
owns (every inner row is owned by exactly one band: the first band that computes it). The bands
are chained one after the other (`util.optimization_barrier` on the chain's input and the pieces
assembled so far), so IREE never runs two at once and each band's inner tensors die before the
next band's exist; the output and the masks are assembled whole (`tensor.insert_slice`). Every
value is computed by the same integer operations from the same inputs: the program's numbers do
not change.

Only chains whose kernels have at most `max_kernel` rows are split (each band recomputes
kernel - stride halo rows per conv: a 7x7 depthwise at stride 2 needs 13 expansion rows for 4
output rows, so MCUNet-5FPS's 7x7 blocks are left to `patch-stage`). How many bands: the fewest
(2 or more, at most `bands` and the output's height) whose largest inner band has at most
`band_bytes`, else `bands`. At 8x8 a 3x3 depthwise needs one halo row on
each side, so 2 bands compute 10 rows of the expansion instead of 8 (+25% of its
multiply-accumulates), 4 bands 14.

Run it after the passes that rewrite the backward pass (`channel-groups`, `reorder-updates`) and
before `pin-clamp-masks`. With `patch-stage`, use that pass's `bands` option instead: its stage
choice then counts the banded blocks at their bands' size, and only the chains its patched stages
leave are split (a frozen block may be patched or banded, never both).
Options: `bands` (1 disables the pass), `min_bytes`, `band_bytes`, `max_kernel`.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from torch_mlir import ir

from tinytrain.dialects import tinytrain_quant as tq
from tinytrain.errors import CompileError
from tinytrain.irfuncs import layer_name, tensor_bytes
from tinytrain.memory_report import block_of
from tinytrain.passes import ModulePass
from tinytrain.transforms.patch_stage import (Stage, _Patch, _rel, _shape, _slice, _split, assemble_in_pieces,
                                              for_each_func)

__all__ = ["RowBandsPass", "apply_bands", "banded_sizes", "find_chains", "plan_bands"]

_CONV = "tinytrain.qconv2d"
_MASK = "tinytrain.qclamp_mask"


@dataclasses.dataclass
class Chain:
    """A chain of convs (`ops`, in order) and the `qclamp_mask` ops of its inner values
    (`masks[i]`: those of `ops[i]`'s result, i < len(ops) - 1)."""

    ops: list
    masks: list

    @property
    def inner_bytes(self) -> int:
        return max(tensor_bytes(op.results[0]) for op in self.ops[:-1])

    def stage(self) -> Stage:
        return Stage(self.ops[0].operands[0], list(self.ops), self.ops[-1].results[0])


def _is_conv(op) -> bool:
    return op.operation.name == _CONV


def _next_in_chain(op):
    """(the conv that reads `op`'s result as its input, its masks) when every reader of the result
    is that one conv or a `qclamp_mask`, else None."""
    nxt, masks = None, []
    for use in op.results[0].uses:
        owner = use.owner
        if owner.name == _MASK:
            masks.append(owner.opview if hasattr(owner, "opview") else owner)
        elif owner.name == _CONV and use.operand_number == 0 and nxt is None:
            nxt = owner
        else:
            return None
    return None if nxt is None else (nxt.opview if hasattr(nxt, "opview") else nxt, masks)


def find_chains(fn) -> list[Chain]:
    """The maximal chains of `fn` (module docstring), in program order."""
    block = fn.regions[0].blocks[0]
    taken: set = set()
    chains = []
    for op in block.operations:
        if not _is_conv(op) or op.operation in taken or len(_shape(op.results[0])) != 4:
            continue
        ops, masks = [op], []
        while True:
            step = _next_in_chain(ops[-1])
            if step is None or step[0].operation in taken or block_of(layer_name(step[0])) != block_of(layer_name(op)):
                break
            ops.append(step[0])
            masks.append(step[1])
        if len(ops) > 1:
            taken.update(o.operation for o in ops)
            chains.append(Chain(ops, masks))
    return chains


def _owned(needs: list) -> list | None:
    """Per band, the rows of a value it owns: from the end of the previous band's rows (0 for the
    first) to the end of its own; None when the bands leave a row out or end short of the value."""
    owned, end = [], 0
    for lo, hi in needs:
        if lo > end or hi <= end:
            return None
        owned.append((end, hi))
        end = hi
    return owned


def _band_bytes(chain: Chain, n: int) -> list[int]:
    """Per inner value of `chain` (`chain.ops[i]`'s result, i < len - 1), the bytes of its largest
    band when the chain runs in `n` bands of rows."""
    stage = chain.stage()
    _, h, w, _ = _shape(stage.cut)
    patches = [_Patch(stage, (r, (0, w))) for r in _split(h, n)]
    out = []
    for i, op in enumerate(chain.ops[:-1]):
        v = op.results[0]
        rows = max(p.need[i + 1][0][1] - p.need[i + 1][0][0] for p in patches)
        out.append(tensor_bytes(v) * rows // _shape(v)[1])
    return out


def _band_count(chain: Chain, bands: int, band_bytes: int) -> int:
    top = max(1, min(bands, _shape(chain.ops[-1].results[0])[1]))
    for n in range(2, top + 1):
        if max(_band_bytes(chain, n)) <= band_bytes:
            return n
    return top


def band_chain(chain: Chain, n: int) -> bool:
    """Replace `chain` by `n` bands of rows (module docstring); False (nothing changed) when the
    bands would not own every inner row."""
    stage = chain.stage()
    out = stage.cut
    _, h, w, _ = _shape(out)
    spans = _split(h, n)
    patches = [_Patch(stage, (r, (0, w))) for r in spans]
    owned = {}
    for i, masks in enumerate(chain.masks):
        if masks:
            rows = _owned([p.need[i + 1][0] for p in patches])
            if rows is None or rows[-1][1] != _shape(chain.ops[i].results[0])[1]:
                return False
            owned[i] = rows
    masks = [(i, m) for i, ms in enumerate(chain.masks) for m in ms]

    def build(b, x):
        """Band b's output rows, then its rows of every mask (each mask made after the output's
        piece is inserted, as the pieces are yielded)."""
        p, (r0, _) = patches[b], spans[b]
        got = p.build_all(x)
        yield got[len(chain.ops)], [0, r0, 0, 0]
        for i, ms in enumerate(chain.masks):
            if not ms:
                continue
            o0, o1 = owned[i][b]
            y = _slice(got[i + 1], _rel(((o0, o1), (0, _shape(chain.ops[i].results[0])[2])), p.need[i + 1]))
            for m in ms:
                mt = ir.RankedTensorType(m.results[0].type)
                rt = ir.RankedTensorType.get([mt.shape[0], o1 - o0] + list(mt.shape[2:]), mt.element_type)
                yield tq.QClampMaskOp(y, m.attributes["clamp"], rt).result, [0, o0, 0, 0]

    last = chain.ops[-1]
    wholes = [out] + [m.results[0] for _, m in masks]
    with ir.InsertionPoint(last), last.location:
        accs = assemble_in_pieces(stage.input, wholes, [lambda x, b=b: build(b, x) for b in range(n)])
    for v, acc in zip(wholes, accs):
        v.replace_all_uses_with(acc)
    for _, m in masks:
        m.operation.erase()
    for op in reversed(chain.ops):
        op.operation.erase()
    return True


def _kernel_rows(op) -> int:
    return ir.RankedTensorType(op.operands[1].type).shape[0]


def plan_bands(fn, bands: int, min_bytes: int, band_bytes: int, max_kernel: int = 3) -> list[tuple[Chain, int]]:
    """The chains of `fn` the pass splits, each with its number of bands (module docstring)."""
    if bands < 2:
        return []
    plan = []
    for chain in find_chains(fn):
        if chain.inner_bytes >= min_bytes and all(_kernel_rows(op) <= max_kernel for op in chain.ops):
            n = _band_count(chain, bands, band_bytes)
            if n > 1:
                plan.append((chain, n))
    return plan


def banded_sizes(plan: list[tuple[Chain, int]], key) -> dict:
    """`key(value)` -> the bytes of that inner value's largest band, for every inner value of the
    chains in `plan` (what `patch-stage`'s estimate counts for them)."""
    return {key(op.results[0]): size for chain, n in plan for op, size in zip(chain.ops, _band_bytes(chain, n))}


def apply_bands(fn, plan: list[tuple[Chain, int]]) -> None:
    """Split the chains of `plan` and name them in `fn`'s `tinytrain.row_bands` attribute
    (`layer:bands ...`)."""
    done = []
    for chain, n in plan:
        name = layer_name(chain.ops[-1])
        if band_chain(chain, n):
            done.append(f"{name}:{n}")
    if done:
        fn.attributes["tinytrain.row_bands"] = ir.StringAttr.get(" ".join(done))


@dataclasses.dataclass(frozen=True)
class RowBandsPass(ModulePass):
    argument: ClassVar[str] = "row-bands"
    summary: ClassVar[str] = ("Compute each chain of int8 convolutions whose inner tensors only it reads (but "
                              "for packed clamp masks) in bands of rows, one after the other (bit-identical).")
    option_docs: ClassVar[dict[str, str]] = {
        "bands": "the most bands of a chain (1: leave the functions as they are)",
        "min_bytes": "split a chain whose largest inner tensor has at least this many bytes",
        "band_bytes": "the fewest bands whose largest inner band has at most this many bytes "
                      "(else `bands`)",
        "max_kernel": "split only chains whose kernels have at most this many rows (the halo grows with them)",
    }

    bands: int = 4
    min_bytes: int = 8192
    band_bytes: int = 8192
    max_kernel: int = 3

    def run(self, module: ir.Operation) -> None:
        if self.bands < 1 or self.min_bytes < 0 or self.band_bytes < 1:
            raise CompileError(f"row-bands: bands and band_bytes must be >= 1 and min_bytes >= 0, got "
                               f"bands={self.bands}, min_bytes={self.min_bytes}, band_bytes={self.band_bytes}",
                               stage=self.argument)
        if self.bands > 1:
            for_each_func(module, self._run_func)

    def _run_func(self, fn) -> None:
        apply_bands(fn, plan_bands(fn, self.bands, self.min_bytes, self.band_bytes, self.max_kernel))
