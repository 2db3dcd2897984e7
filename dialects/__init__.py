"""The `tinytrain` MLIR dialect (IRDL, defined from Python).

`tinytrain.py` holds the float forward, gradient and update ops; `tinytrain_quant.py` adds the
int8 forward ops to the same dialect class (importing it here registers them before the dialect
is first loaded)."""

from .tinytrain import TinyTrain, conv_output_hw
from .tinytrain_quant import QUANT_OP_NAMES

OP_NAMES = sorted(op.OPERATION_NAME for op in TinyTrain.operations)

__all__ = ["TinyTrain", "OP_NAMES", "QUANT_OP_NAMES", "conv_output_hw"]
