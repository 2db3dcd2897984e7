"""The MLIR context every stage of tinytrain works in, and parsing at the edges.

Inside the compiler, IR is built with op builders; text is parsed only where it enters from
outside: a file given to `tinytrain-opt`, a test's input.
"""

from __future__ import annotations

from torch_mlir import ir

from tinytrain.dialects import TinyTrain
from tinytrain.errors import CompileError

__all__ = ["new_context", "parse_module"]


def new_context() -> ir.Context:
    """A context with the upstream dialects and `tinytrain` loaded."""
    ctx = ir.Context()
    with ctx, ir.Location.unknown():
        TinyTrain.load()
    return ctx


def parse_module(text: str, ctx: ir.Context, stage: str) -> ir.Module:
    """Parse (and verify) MLIR text from outside the compiler; on failure raise a CompileError
    naming `stage` with MLIR's diagnostics."""
    with ctx:
        try:
            return ir.Module.parse(text)
        except ir.MLIRError as e:
            raise CompileError(f"{stage}: invalid IR:\n{e}", stage=stage, ir_text=text) from None
