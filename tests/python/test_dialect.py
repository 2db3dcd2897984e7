"""The dialect definition: IRDL file in sync, every op lowered, verifiers run from Python."""

from pathlib import Path

import pytest
from torch_mlir import ir

from tinytrain.dialects import OP_NAMES
from tinytrain.context import new_context, parse_module
from tinytrain.errors import CompileError
from tinytrain.lowering.conversions.tinytrain_to_linalg import PATTERNS
from tinytrain.tools.opt import irdl_text

ROOT = Path(__file__).resolve().parents[2]


def test_committed_irdl_matches_the_python_definition():
    committed = (ROOT / "dialects" / "tinytrain.irdl.mlir").read_text()
    assert committed == irdl_text(), "regenerate with: tinytrain-opt --dump-irdl > dialects/tinytrain.irdl.mlir"


# Ops defined ahead of their lowering, each with the reason. An entry must go once the op is
# lowered (its strict xfail below then fails as XPASS).
PENDING_LOWERING: dict[str, str] = {}


def test_every_op_has_a_lowering():
    lowered = {op.OPERATION_NAME for op in PATTERNS}
    assert sorted(set(OP_NAMES) - set(PENDING_LOWERING)) == sorted(lowered - set(PENDING_LOWERING))
    assert lowered <= set(OP_NAMES), "lowerings registered for ops the dialect does not define"


@pytest.mark.parametrize("op", [pytest.param(op, marks=pytest.mark.xfail(strict=True, reason=why))
                                for op, why in sorted(PENDING_LOWERING.items())])
def test_pending_lowering(op):
    assert op in {p.OPERATION_NAME for p in PATTERNS}


def test_verifier_error_names_the_op_through_the_api():
    ctx = new_context()
    bad = ('func.func @f(%a: tensor<2x3xf32>) { %0 = "tinytrain.relu"(%a) : (tensor<2x3xf32>) -> tensor<3x2xf32>\n'
           ' return }')
    with pytest.raises(CompileError, match=r"'tinytrain.relu' op expects f32 operands and result of one shape"):
        parse_module(bad, ctx, stage="test")
    with ctx:
        assert ir.Module.parse('func.func @g() { return }').operation.verify()
