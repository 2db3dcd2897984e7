"""Shared by the importer's lit cases (not a test itself: lit.cfg.py excludes it): `run` prints a
case's name as a FileCheck label and runs it, `show` imports a model and prints its @forward."""

import torch

from tinytrain.lowering.conversions.torch_to_tinytrain import import_model
from tinytrain.models import FunctionModule as Net  # noqa: F401 (re-exported for the cases)
from tinytrain.models import classifier_head


def run(f):
    print(f"{f.__name__}\n{'-' * len(f.__name__)}")
    f()
    print()
    return f


def show(model, *shape):
    torch.manual_seed(0)
    imported = import_model(model.eval(), torch.randn(*shape))
    print(imported.module)
    return imported


def head(c, k=3):
    return classifier_head(c, k)
