"""Mean softmax cross-entropy over the batch and its gradient w.r.t. the logits, both with the
max-shifted log-sum-exp (as PyTorch): `lse[n] = m[n] + log(sum_k exp(z[n, k] - m[n]))`,
`loss = mean_n(lse[n] - z[n, label[n]])`, `dz = (softmax(z) - onehot(label)) / N`."""

from __future__ import annotations

import math

from torch_mlir import ir
from torch_mlir.dialects import arith, linalg
from torch_mlir.dialects import math as mathd

from tinytrain.dialects import tinytrain as tt

from .builders import (PARALLEL, REDUCTION, amap, const_f32, dims, empty, full, generic, identity,
                       shape_of)

__all__ = ["convert_softmax_cross_entropy", "convert_softmax_cross_entropy_grad", "PATTERNS"]


def _lse_parts(z: ir.Value):
    """Row max `m[n]` and `s[n] = sum_k exp(z[n, k] - m[n])`."""
    n, _ = shape_of(z)
    d0, _ = dims(2)
    m = generic([z], full([n], -math.inf), [identity(2), amap(2, [d0])], [PARALLEL, REDUCTION],
                lambda a, acc: arith.MaximumFOp(acc, a).result)

    def sum_exp(a, mx, acc):
        return arith.AddFOp(acc, mathd.ExpOp(arith.SubFOp(a, mx).result).result).result

    s = generic([z, m], full([n]), [identity(2), amap(2, [d0]), amap(2, [d0])],
                [PARALLEL, REDUCTION], sum_exp)
    return m, s


def _is_label(label: ir.Value) -> ir.Value:
    """Inside a generic over `[N, K]`: whether the class index (dim 1) equals `label` (i32/i64)."""
    k = linalg.IndexOp(1).result
    lab = arith.IndexCastOp(ir.IndexType.get(), label).result
    return arith.CmpIOp(arith.CmpIPredicate.eq, k, lab).result


def convert_softmax_cross_entropy(op, adaptor, type_converter, rewriter):
    z, labels = adaptor.logits, adaptor.labels
    n, _ = shape_of(z)
    with rewriter.ip, op.location:
        m, s = _lse_parts(z)
        zero = const_f32(0.0)
        d0, _ = dims(2)

        def pick(a, lab, acc):  # z[n, label[n]]
            return arith.AddFOp(acc, arith.SelectOp(_is_label(lab), a, zero).result).result

        picked = generic([z, labels], full([n]), [identity(2), amap(2, [d0]), amap(2, [d0])],
                         [PARALLEL, REDUCTION], pick)

        def nll(mx, se, zl, acc):  # sum_n (m + log s - z[label])
            lse = arith.AddFOp(mx, mathd.LogOp(se).result).result
            return arith.AddFOp(acc, arith.SubFOp(lse, zl).result).result

        (e0,) = dims(1)
        total = generic([m, s, picked], full([]), [amap(1, [e0])] * 3 + [amap(1, [])], [REDUCTION], nll)
        count = const_f32(float(n))
        result = generic([total], empty([]), [amap(0, []), amap(0, [])], [],
                         lambda t, acc: arith.DivFOp(t, count).result)
    rewriter.replace_op(op, [result])


def convert_softmax_cross_entropy_grad(op, adaptor, type_converter, rewriter):
    z, labels = adaptor.logits, adaptor.labels
    n, k = shape_of(z)
    with rewriter.ip, op.location:
        m, s = _lse_parts(z)
        one, zero, count = const_f32(1.0), const_f32(0.0), const_f32(float(n))

        def body(a, mx, se, lab, acc):
            p = arith.DivFOp(mathd.ExpOp(arith.SubFOp(a, mx).result).result, se).result
            onehot = arith.SelectOp(_is_label(lab), one, zero).result
            return arith.DivFOp(arith.SubFOp(p, onehot).result, count).result

        d0, _ = dims(2)
        maps = [identity(2), amap(2, [d0]), amap(2, [d0]), amap(2, [d0]), identity(2)]
        result = generic([z, m, s, labels], empty([n, k]), maps, [PARALLEL, PARALLEL], body)
    rewriter.replace_op(op, [result])


PATTERNS = {
    tt.SoftmaxCrossEntropyOp: convert_softmax_cross_entropy,
    tt.SoftmaxCrossEntropyGradOp: convert_softmax_cross_entropy_grad,
}
