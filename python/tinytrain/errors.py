"""Errors raised by the tinytrain compiler."""

from __future__ import annotations

__all__ = ["CompileError", "UnsupportedModelError"]


class CompileError(Exception):
    """A compilation stage failed. `stage` names it; `ir_text`, when set, is the IR it was working
    on (the facade writes it next to the build outputs so the failure can be replayed with
    `tinytrain-opt`)."""

    def __init__(self, message: str, *, stage: str = "", ir_text: str | None = None, loc=None):
        super().__init__(message)
        self.stage = stage
        self.ir_text = ir_text
        self.loc = loc  # the `ir.Location` of the op at fault, when there is one


class UnsupportedModelError(CompileError):
    """The PyTorch model uses an operator or configuration that tinytrain cannot compile.
    The message names the operator, the layer and what is supported."""
