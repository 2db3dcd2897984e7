"""Fully connected layers."""

from __future__ import annotations

from tinytrain.dialects.tinytrain import LinearOp

from ..conversion import Conversion, TVal, tensor_type


def linear(cv: Conversion, op) -> None:
    """`aten.linear(x [N, I], weight [O, I], bias [O] | None)`; the weight keeps PyTorch's layout."""
    x = cv.tensor(op, op.operands[0])
    w_name, b_name = cv.param_name(op.operands[1]), cv.param_name(op.operands[2])
    if len(x.shape) != 2:
        cv.fail(op, f"Linear on a rank-{len(x.shape)} input is not supported (flatten first)")
    if w_name is None:
        cv.fail(op, "the Linear weight must be a parameter of the model")
    loc = cv.loc(op)
    w = cv.model.state[w_name].float()
    w_arg = cv.param(w_name, w.numpy(), "plain", loc)
    if b_name is not None:
        b_arg = cv.param(b_name, cv.model.state[b_name].float().numpy(), "plain", loc)
    else:
        b_arg = cv.zeros([w.shape[0]], loc)
    shape = [x.shape[0], w.shape[0]]
    y = LinearOp(x.value, w_arg, b_arg, tensor_type(shape), loc=loc).result
    cv.bind(op.result, TVal(y, shape))
