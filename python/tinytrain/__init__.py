"""tinytrain: compile a PyTorch model into a training program for 256 KB microcontrollers.

    import tinytrain
    prog = tinytrain.compile(model.eval(), torch.randn(1, 3, 64, 64), trainable="all", lr=0.01)
    loss = prog.train_step(images, labels)
"""

from tinytrain.compiler import TARGETS, CompiledModel, NonFiniteStepError, compile
from tinytrain.errors import CompileError, UnsupportedModelError

__all__ = ["compile", "CompiledModel", "CompileError", "UnsupportedModelError", "NonFiniteStepError",
           "TARGETS", "CheckpointConfig"]
__version__ = "0.1.0"


def __getattr__(name):
    # The firmware module (and its IREE tooling imports) loads only when asked for.
    if name == "CheckpointConfig":
        from tinytrain.lowering.cortexm.firmware import CheckpointConfig

        return CheckpointConfig
    raise AttributeError(f"module 'tinytrain' has no attribute {name!r}")
