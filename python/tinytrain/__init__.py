"""tinytrain: compile a PyTorch model into a training program for 256 KB microcontrollers.

    import tinytrain
    prog = tinytrain.compile(model.eval(), torch.randn(1, 3, 64, 64), trainable="all", lr=0.01)
    loss = prog.train_step(images, labels)
"""

__all__ = ["compile", "CompiledModel", "CompileError", "UnsupportedModelError", "NonFiniteStepError",
           "TARGETS", "CheckpointConfig"]
__version__ = "0.1.0"

# The public names load on first use (PEP 562): `import tinytrain` alone, and the tools that need
# only the dialect and its passes (tinytrain-opt, the lit tests), do not pay for importing torch,
# torch-mlir's FX importer and IREE (about 5 s).
_LAZY = {
    "compile": "tinytrain.compiler",
    "CompiledModel": "tinytrain.compiler",
    "NonFiniteStepError": "tinytrain.compiler",
    "TARGETS": "tinytrain.compiler",
    "CompileError": "tinytrain.errors",
    "UnsupportedModelError": "tinytrain.errors",
    "CheckpointConfig": "tinytrain.lowering.cortexm.firmware",
}


def __getattr__(name):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tinytrain' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
