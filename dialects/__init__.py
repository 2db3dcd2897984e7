"""The `tinytrain` MLIR dialect (IRDL, defined from Python): the core ops in `tinytrain.py`, the
layers of real mobile CNNs (pooling, padding, concat, more activations, ...) in
`tinytrain_layers.py`."""

from . import tinytrain_layers  # noqa: F401  (registers its ops on the dialect)
from .tinytrain import TinyTrain, conv_output_hw

#: Every op of the dialect, sorted by name.
OP_NAMES = sorted(op.OPERATION_NAME for op in TinyTrain.operations)

__all__ = ["TinyTrain", "OP_NAMES", "conv_output_hw"]
