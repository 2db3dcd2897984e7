"""The pass infrastructure: every tinytrain pass is an MLIR pass that `PassManager` runs.

A pass is a frozen dataclass deriving from `ModulePass`:

```python
@dataclasses.dataclass(frozen=True)
class MyPass(ModulePass):
    argument: ClassVar[str] = "my-pass"           # its name in a pipeline
    summary: ClassVar[str] = "One line for --help."
    lr: float = 0.01                              # an option: `my-pass{lr=1e-05}`
    option_docs: ClassVar[dict[str, str]] = {"lr": "SGD learning rate"}

    def run(self, module: ir.Operation) -> None:  # mutates the builtin.module in place
        ...
```

- Options are the dataclass fields whose type is `bool`, `int`, `float`, `str` or `tuple[str, ...]`
  (a comma-separated list in a pipeline string, as MLIR's list options). Fields of any other type
  (e.g. the parameter values the linalg conversion inlines) are not command-line options; the
  Python driver sets them.
- `run` builds IR with the bindings' op builders under an `ir.InsertionPoint`; it never prints and
  re-parses IR. A user-caused problem is a `CompileError` naming the op and its location; the
  PassManager verifies the module after every pass.
- `tinytrain.pipeline` registers every pass by its `argument` and parses pipeline strings that
  mix them with upstream passes (`canonicalize`, `cse`, ...).
"""

from __future__ import annotations

import dataclasses
import typing
from typing import ClassVar

from torch_mlir import ir

from tinytrain.errors import CompileError

__all__ = ["ModulePass", "PassOptionError"]


class PassOptionError(CompileError, ValueError):
    """A pass option is unknown or its value does not parse as the option's type."""


_TRUE = ("1", "true", "on", "yes")
_FALSE = ("0", "false", "off", "no")


def _parse_value(pass_name: str, key: str, text: str, ty):
    def bad(expected: str) -> PassOptionError:
        return PassOptionError(f"option '{key}' of pass '{pass_name}' expects {expected}, got '{text}'",
                               stage=pass_name)

    if ty is bool:
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise bad("true or false")
    if ty is int:
        try:
            return int(text, 0)
        except ValueError:
            raise bad("an integer") from None
    if ty is float:
        try:
            return float(text)
        except ValueError:
            raise bad("a number (e.g. 0.01 or 1e-05)") from None
    if ty is str:
        return text
    if typing.get_origin(ty) is tuple:
        return tuple(t.strip() for t in text.split(",") if t.strip())
    raise bad(f"a value of type {ty}")  # pragma: no cover - guarded by option_types()


class ModulePass:
    """Base of tinytrain's passes (see the module docstring)."""

    argument: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    option_docs: ClassVar[dict[str, str]] = {}

    def run(self, module: ir.Operation) -> None:
        raise NotImplementedError(f"{type(self).__name__}.run")

    # -- PassManager glue ---------------------------------------------------------------------------
    def __call__(self, op: ir.Operation, pass_) -> None:
        """The callback `PassManager.add` invokes. A CompileError propagates out of `pm.run`
        unchanged, so callers see the message that names the op."""
        self.run(op)

    def add_to(self, pm) -> None:
        pm.add(self, name=type(self).__name__, argument=self.argument, description=self.summary)

    # -- options ----------------------------------------------------------------------------------
    @classmethod
    def option_types(cls) -> dict[str, object]:
        """`{field name: type}` of the fields that are command-line options."""
        hints = typing.get_type_hints(cls)
        out = {}
        for f in dataclasses.fields(cls):
            ty = hints[f.name]
            if ty in (bool, int, float, str) or (typing.get_origin(ty) is tuple):
                out[f.name] = ty
        return out

    @classmethod
    def from_options(cls, options: dict[str, str]) -> "ModulePass":
        """Build the pass from `{'lr': '1e-05', ...}` (keys may use '-' or '_')."""
        types = cls.option_types()
        kwargs = {}
        for key, text in options.items():
            name = key.replace("-", "_")
            if name not in types:
                known = ", ".join(k.replace("_", "-") for k in types) or "none"
                raise PassOptionError(f"unknown option '{key}' of pass '{cls.argument}'; options: {known}",
                                      stage=cls.argument)
            kwargs[name] = _parse_value(cls.argument, key, text, types[name])
        return cls(**kwargs)

    def options_text(self) -> str:
        """The pass as a pipeline element, e.g. `autodiff{lr=1e-05 trainable=all}`."""
        parts = []
        for name, ty in self.option_types().items():
            v = getattr(self, name)
            if isinstance(v, tuple):
                v = ",".join(v)
            elif isinstance(v, bool):
                v = "true" if v else "false"
            parts.append(f"{name.replace('_', '-')}={v}")
        return self.argument + ("{" + " ".join(parts) + "}" if parts else "")

    @classmethod
    def help_text(cls) -> str:
        lines = [f"  {cls.argument}: {cls.summary}"]
        defaults = {f.name: f.default for f in dataclasses.fields(cls)}
        for name, ty in cls.option_types().items():
            tname = getattr(ty, "__name__", str(ty)).replace("tuple", "list")
            doc = cls.option_docs.get(name, "")
            lines.append(f"      {name.replace('_', '-')}={tname} (default {defaults[name]!r}) {doc}")
        return "\n".join(lines)
