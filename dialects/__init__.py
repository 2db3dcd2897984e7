"""The `tinytrain` MLIR dialect (IRDL, defined from Python)."""

from .tinytrain import OP_NAMES, TinyTrain, conv_output_hw

__all__ = ["TinyTrain", "OP_NAMES", "conv_output_hw"]
