"""The `tinytrain` MLIR dialect (IRDL, defined from Python).

- `tinytrain.py`: the core float forward, gradient and update ops;
- `tinytrain_layers.py`: the layers of real mobile CNNs (pooling, padding, concat, more
  activations, broadcast multiply, per-channel affine) and their adjoints;
- `tinytrain_quant.py`: the int8 forward ops.

All register on the same dialect class; importing them here registers them before the dialect is
first loaded."""

from torch_mlir._mlir_libs._mlir import globals as _mlir_globals

from . import tinytrain_layers  # noqa: F401  (registers its ops on the dialect)
from .tinytrain import TinyTrain, conv_output_hw
from .tinytrain_layers import LAYER_OP_NAMES
from .tinytrain_quant import QUANT_OP_NAMES

#: Every op of the dialect, sorted by name.
OP_NAMES = sorted(op.OPERATION_NAME for op in TinyTrain.operations)

# MLIR's Python bindings look for a dialect's Python module (`<prefix>.<namespace>`) whenever they
# wrap one of its ops, and remember only a successful import: without our package among the
# prefixes every `tinytrain.*` op wrapped retried `import torch_mlir.dialects.tinytrain` and failed
# (thousands of failed imports per compile, ~25% of a whole network's front-end time).
if __name__ not in _mlir_globals.dialect_search_modules:
    _mlir_globals.append_dialect_search_prefix(__name__)

__all__ = ["TinyTrain", "OP_NAMES", "LAYER_OP_NAMES", "QUANT_OP_NAMES", "conv_output_hw"]
