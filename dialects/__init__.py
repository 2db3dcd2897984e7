"""The `tinytrain` MLIR dialect (IRDL, defined from Python).

- `tinytrain.py`: the core float forward, gradient and update ops;
- `tinytrain_layers.py`: the layers of real mobile CNNs (pooling, padding, concat, more
  activations, broadcast multiply, per-channel affine) and their adjoints;
- `tinytrain_quant.py`: the int8 forward ops.

All register on the same dialect class; importing them here registers them before the dialect is
first loaded."""

from . import tinytrain_layers  # noqa: F401  (registers its ops on the dialect)
from .tinytrain import TinyTrain, conv_output_hw
from .tinytrain_layers import LAYER_OP_NAMES
from .tinytrain_quant import QUANT_OP_NAMES

#: Every op of the dialect, sorted by name.
OP_NAMES = sorted(op.OPERATION_NAME for op in TinyTrain.operations)

__all__ = ["TinyTrain", "OP_NAMES", "LAYER_OP_NAMES", "QUANT_OP_NAMES", "conv_output_hw"]
