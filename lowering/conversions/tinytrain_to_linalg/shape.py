"""Shape ops: `reshape` (row-major, `tensor.collapse_shape` / `tensor.expand_shape`) and
`transpose` (`linalg.transpose`)."""

from __future__ import annotations

from torch_mlir import ir
from torch_mlir.dialects import linalg

from tinytrain.dialects import tinytrain as tt

from .builders import empty, reshape, shape_of

__all__ = ["convert_reshape", "convert_transpose", "PATTERNS"]


def convert_reshape(op, adaptor, type_converter, rewriter):
    with rewriter.ip, op.location:
        result = reshape(adaptor.input, shape_of(op.result))
    rewriter.replace_op(op, [result])


def convert_transpose(op, adaptor, type_converter, rewriter):
    perm = ir.DenseI64ArrayAttr(op.attributes["permutation"])
    with rewriter.ip, op.location:
        result = linalg.transpose(adaptor.input, outs=[empty(shape_of(op.result))],
                                  permutation=perm).results[0]
    rewriter.replace_op(op, [result])


PATTERNS = {
    tt.ReshapeOp: convert_reshape,
    tt.TransposeOp: convert_transpose,
}
