"""Pass registry and pipeline driver.

Every tinytrain pass is registered here by its pipeline name. A pipeline string follows
`mlir-opt`'s `--pass-pipeline` syntax and may mix tinytrain's passes with upstream ones:

    builtin.module(canonicalize,autodiff{lr=1e-05 trainable=all},to-linalg,cse)

or the short form without the `builtin.module(...)` anchor (`tinytrain-opt -p`). Our passes are
added to the `PassManager` as Python passes, everything else as upstream pipeline text, so a
typo in an upstream pass name is MLIR's own error.

Where things go: a pass on the `tinytrain` dialect lives in `python/tinytrain/transforms/<name>.py`
with its lit test in `tests/lit/transforms/<name>.mlir`; a conversion between levels lives in
`lowering/conversions/` with its lit tests in `tests/lit/conversions/`. Register it in `PASSES`.
"""

from __future__ import annotations

import importlib
import re

from torch_mlir import ir
from torch_mlir.passmanager import PassManager

from tinytrain.errors import CompileError
from tinytrain.passes import ModulePass, PassOptionError

__all__ = ["PASSES", "pass_class", "parse_pipeline", "build_pass_manager", "run_pipeline",
           "PipelineError"]

#: pipeline name -> "module:Class" (imported on first use, so `tinytrain-opt` starts fast).
PASSES: dict[str, str] = {
    "torch-to-tinytrain": "tinytrain.lowering.conversions.torch_to_tinytrain:TorchToTinytrainPass",
    "autodiff": "tinytrain.transforms.autodiff:AutodiffPass",
    "quantize": "tinytrain.transforms.quantize:QuantizePass",
    "qas": "tinytrain.transforms.qas:QasPass",
    "sparse-update": "tinytrain.transforms.sparse_update:SparseUpdatePass",
    "sparse-narrow": "tinytrain.transforms.sparse_update:SparseNarrowPass",
    "sparse-split": "tinytrain.transforms.sparse_update:SparseSplitPass",
    "patch-stage": "tinytrain.transforms.patch_stage:PatchStagePass",
    "batch-stage": "tinytrain.transforms.batch_stage:BatchStagePass",
    "channel-groups": "tinytrain.transforms.channel_groups:ChannelGroupsPass",
    "row-bands": "tinytrain.transforms.row_bands:RowBandsPass",
    "grad-storage": "tinytrain.transforms.grad_storage:GradStoragePass",
    "reorder-updates": "tinytrain.transforms.reorder_updates:ReorderUpdatesPass",
    "pin-clamp-masks": "tinytrain.transforms.pin_masks:PinClampMasksPass",
    "to-linalg": "tinytrain.lowering.conversions.tinytrain_to_linalg:ConvertTinytrainToLinalgPass",
}


class PipelineError(CompileError, ValueError):
    """A pipeline string does not parse, or names a pass that does not exist."""


def pass_class(name: str) -> type[ModulePass]:
    mod, cls = PASSES[name].split(":")
    return getattr(importlib.import_module(mod), cls)


def _split_top(text: str, sep: str = ",") -> list[str]:
    """Split at `sep` outside of braces and parentheses."""
    out, depth, cur = [], 0, ""
    for ch in text:
        if ch in "{(":
            depth += 1
        elif ch in "})":
            depth -= 1
            if depth < 0:
                raise PipelineError(f"unbalanced '{ch}' in pass pipeline '{text}'", stage="pipeline")
        if ch == sep and depth == 0:
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if depth != 0:
        raise PipelineError(f"unbalanced braces in pass pipeline '{text}'", stage="pipeline")
    if cur.strip():
        out.append(cur.strip())
    return [p for p in out if p]


def _split_options(text: str) -> dict[str, str]:
    """`lr=1e-05 trainable=a,b` -> {'lr': '1e-05', 'trainable': 'a,b'} (space-separated, as MLIR)."""
    opts = {}
    for tok in _split_top(text.strip(), " "):
        if "=" not in tok:
            raise PipelineError(f"pass option '{tok}' must be key=value", stage="pipeline")
        k, v = tok.split("=", 1)
        opts[k.strip()] = v.strip().strip("'\"")
    return opts


def parse_pipeline(text: str) -> list[ModulePass | str]:
    """Parse a pipeline string into tinytrain pass objects and upstream pipeline elements."""
    text = text.strip()
    m = re.fullmatch(r"builtin\.module\s*\((.*)\)", text, flags=re.S)
    if m:
        text = m.group(1)
    out: list[ModulePass | str] = []
    for item in _split_top(text):
        m = re.fullmatch(r"([\w.-]+)\s*(?:\{(.*)\})?", item, flags=re.S)
        if not m:
            raise PipelineError(f"cannot parse pass '{item}'", stage="pipeline")
        name, opts = m.group(1), m.group(2)
        if name in PASSES:
            out.append(pass_class(name).from_options(_split_options(opts or "")))
        else:
            out.append(item)  # an upstream pass; PassManager checks its name and options
    return out


def build_pass_manager(elements: list[ModulePass | str], context: ir.Context, *,
                       verify: bool = True) -> PassManager:
    pm = PassManager("builtin.module", context=context)
    pm.enable_verifier(verify)
    for e in elements:
        if isinstance(e, ModulePass):
            e.add_to(pm)
        else:
            try:
                pm.add(e)
            except ValueError as err:
                ours = ", ".join(sorted(PASSES))
                raise PipelineError(f"unknown or malformed pass '{e}' ({err}); tinytrain's passes: "
                                    f"{ours}; upstream MLIR passes are also accepted", stage="pipeline") from None
    return pm


def run_pipeline(module: ir.Module, elements, *, stage: str = "pipeline",
                 print_ir_after_all: bool = False) -> None:
    """Run `elements` (a pipeline string or parsed elements) on `module`, in place.

    A CompileError raised by one of our passes propagates unchanged; a verifier failure or an
    upstream pass error becomes a CompileError carrying MLIR's diagnostics."""
    if isinstance(elements, str):
        elements = parse_pipeline(elements)
    pm = build_pass_manager(elements, module.context)
    if print_ir_after_all:
        pm.enable_ir_printing()
    try:
        pm.run(module.operation)
    except ir.MLIRError as e:
        raise CompileError(f"{stage}: {e}", stage=stage, ir_text=None) from None


__all__ += ["PassOptionError"]
