"""torch.nn.Module -> `tinytrain` forward function (NHWC, BatchNorm folded).

- `importer.py`: torch.export, the checks users hit first, torch-mlir's FX importer (with our
  hooks), and `import_model`, the driver;
- `conversion.py`: `TorchToTinytrainPass` (pipeline name `torch-to-tinytrain`), which replaces
  the torch-dialect function by `func.func @forward(params..., input) -> logits` built with the
  tinytrain op builders, and the `Conversion` state its op handlers share;
- `ops/`: one handler per torch op, by family, and the `HANDLERS` table;
- `frontend.py`: FX-side facts (shapes, layers, source lines) and the supported set.

The forward function's contract: activations NHWC, conv weights HWIO; every eval-mode BatchNorm
is folded into the conv that feeds it (the folded conv gets a bias parameter); parameters are
function arguments tagged `{tinytrain.param = "<name>"}` (values returned beside the module,
never embedded), the input is the last argument, tagged `{tinytrain.input}`. Anything
unsupported stops the import with an `UnsupportedModelError` naming the operator, the layer
(module path and class), the user's source line and the supported set.
"""

from .conversion import TorchToTinytrainPass
from .frontend import SUPPORTED_LAYERS
from .importer import ImportedModel, import_model, to_torch_layout

__all__ = ["ImportedModel", "import_model", "SUPPORTED_LAYERS", "to_torch_layout", "TorchToTinytrainPass"]
