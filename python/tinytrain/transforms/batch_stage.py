"""`batch-stage`: run the frozen high-resolution first stage of a batched float network image by
image (the host target's).

With a sparse update (e.g. only the last block trained) the first blocks of a network are
inference only, and at batch > 1 their activations are the largest tensors of the step
(MobileNetV2-w0.35 at 176x176, batch 8: the second block expands to 8x88x88x48 f32 = 12 MB).
IREE runs one dispatch per layer over the whole batch, so each such tensor is written to memory by
one dispatch and read back by the next: far beyond the caches, the early 1x1 and depthwise
convolutions of the step are memory-bound (bench/results/host_profile_mbv2_w035_176_b8_last.md and
`_b1_last.md`: features.2's expand convolution 1.53 ms at batch 8 against 0.10 ms at batch 1, 1.9x
the time per image; its stride-2 depthwise convolution 1.53 against 0.053 ms, 3.6x). This pass
computes that stage for `chunk` images at a time, one chunk after the other, so each intermediate
tensor exists only at chunk size (1.5 MB per image for the expand above) and stays in the cache
between the dispatches that write and read it. The chunks are chained (each chunk's input slice is
taken after the previous chunk's output has been written, a `util.optimization_barrier`
dependency), so IREE never schedules the same layer of all chunks together.

The result is the same computation per image: a convolution's output for one image depends only on
that image, so every output element is computed from the same inputs by the same operations.

Which ops form the stage (as in `patch-stage`, for the float ops): starting at the function's input
(`tinytrain.input`), the `tinytrain.conv2d` ops whose activation operand comes from the stage and
whose weight and bias are frozen (not `tinytrain.trainable`), and the per-element / per-image ops
(`relu`, `relu6`, `hardswish`, `hardsigmoid`, `sigmoid`, `leaky_relu`, same-shape `add` / `mul`,
`max_pool2d`, `avg_pool2d`, `pad`) whose operands all come from the stage. A cut is valid where exactly
one stage value is used after it (a block boundary: no activation of the stage is kept for a
backward pass). The pass takes the last valid cut whose spatial size is at least the input's /
`factor` and holds the fewest bytes (the deepest of equals). A function whose first op is trained,
whose input has a batch of at most `chunk`, or without a valid cut is left as it is. Each split
function gets a `tinytrain.batch_stage` attribute for the reports: chunk, cut layer, cut shape,
number of ops.

Options: `chunk` (images per chunk; 0 disables the pass), `factor` (how far down the stage goes).
The host runs `chunk=2 factor=4` (`compiler.BATCH_STAGE_BY_TARGET`; chunks of 1 and 4 images and
the stage down to 1/8 were measured too: bench/host_batch_stage.py,
bench/results/host_batch_stage.md).
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from torch_mlir import ir
from torch_mlir.dialects import tensor

from tinytrain.errors import CompileError
from tinytrain.irfuncs import layer_name
from tinytrain.passes import ModulePass

from .patch_stage import Stage, _attrs, _shape, for_each_func, grow_stage, replace_in_pieces

__all__ = ["BatchStagePass", "find_batch_stage"]

_CONV = "tinytrain.conv2d"
#: ops computed per image whose operands are all activations of the stage
_PER_IMAGE = ("tinytrain.relu", "tinytrain.relu6", "tinytrain.hardswish", "tinytrain.hardsigmoid",
              "tinytrain.sigmoid", "tinytrain.leaky_relu", "tinytrain.add", "tinytrain.mul",
              "tinytrain.max_pool2d", "tinytrain.avg_pool2d", "tinytrain.pad")


def find_batch_stage(fn, factor: int) -> Stage | None:
    """The stage of `fn` to compute chunk by chunk (module docstring), or None."""

    def accept(op, in_stage, frozen):
        name = op.operation.name
        if name == _CONV:
            ok = in_stage(op.operands[0]) and all(frozen(v) for v in op.operands[1:])
        else:
            # every operand an activation of the stage, of the result's shape for add / mul (no
            # broadcast operand such as a squeeze-excite scale; pooling and padding change H, W)
            ok = name in _PER_IMAGE and all(in_stage(v) for v in op.operands) and (
                name not in ("tinytrain.add", "tinytrain.mul") or
                all(_shape(v) == _shape(op.results[0]) for v in op.operands))
        return ok and len(op.results) == 1 and len(_shape(op.results[0])) == 4 and \
            _shape(op.results[0])[0] == _shape(op.operands[0])[0]

    # the input itself may be read after the stage (e.g. by a trained first layer elsewhere)
    return grow_stage(fn, factor, accept, input_escapes=False)


def _batch_slice(v: ir.Value, start: int, size: int) -> ir.Value:
    shape = _shape(v)
    rt = ir.RankedTensorType.get([size, *shape[1:]], ir.RankedTensorType(v.type).element_type)
    return tensor.ExtractSliceOp(rt, v, [], [], [], [start, 0, 0, 0], [size, *shape[1:]], [1, 1, 1, 1]).result


def _build_chunk(stage: Stage, x: ir.Value, size: int) -> ir.Value:
    """The cut for the `size` images of `x` (a batch slice of the stage input)."""
    got = [(stage.input, x)]

    def lookup(v):
        for s, c in got:
            if v == s:
                return c
        return v  # a frozen weight / bias

    for op in stage.ops:
        res = ir.RankedTensorType(op.results[0].type)
        rt = ir.RankedTensorType.get([size, *res.shape[1:]], res.element_type)
        new = ir.Operation.create(op.operation.name, results=[rt], operands=[lookup(v) for v in op.operands],
                                  attributes=_attrs(op), loc=op.location)
        got.append((op.results[0], new.results[0]))
    return got[-1][1]


@dataclasses.dataclass(frozen=True)
class BatchStagePass(ModulePass):
    argument: ClassVar[str] = "batch-stage"
    summary: ClassVar[str] = ("Compute the frozen high-resolution first stage of every batched function "
                              "`chunk` images at a time, one chunk after the other (same results).")
    option_docs: ClassVar[dict[str, str]] = {
        "chunk": "images per chunk (0: leave the functions as they are)",
        "factor": "the stage ends at the last block boundary whose output is at least 1/factor of the "
                  "input's height",
    }

    chunk: int = 1
    factor: int = 4

    def run(self, module: ir.Operation) -> None:
        if self.chunk < 0 or self.factor < 1:
            raise CompileError(f"batch-stage: chunk must be >= 0 and factor >= 1, got chunk={self.chunk}, "
                               f"factor={self.factor}", stage=self.argument)
        if self.chunk:
            for_each_func(module, self._run_func)

    def _run_func(self, fn) -> None:
        stage = find_batch_stage(fn, self.factor)
        if stage is None:
            return
        n, h, w, c = _shape(stage.cut)
        if n <= self.chunk:
            return
        cut_layer, ops = layer_name(stage.ops[-1]), len(stage.ops)
        pieces = []
        for start in range(0, n, self.chunk):
            size = min(self.chunk, n - start)
            pieces.append((lambda x, start=start, size=size: _build_chunk(stage, _batch_slice(x, start, size), size),
                           [start, 0, 0, 0]))
        replace_in_pieces(stage, pieces)
        i64 = ir.IntegerType.get_signless(64)
        fn.attributes["tinytrain.batch_stage"] = ir.DictAttr.get({
            "chunk": ir.IntegerAttr.get(i64, self.chunk), "cut": ir.StringAttr.get(cut_layer),
            "cut_shape": ir.DenseI64ArrayAttr.get([n, h, w, c]),
            "ops": ir.IntegerAttr.get(i64, ops)})
