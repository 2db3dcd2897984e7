"""Passes on the `tinytrain` dialect, one per file, registered by their command-line name."""

from tinytrain.transforms.autodiff import AutodiffPass

__all__ = ["PASSES", "AutodiffPass"]


def _to_linalg():
    from tinytrain.lowering.conversions.tinytrain_to_linalg import ConvertTinytrainToLinalgPass

    return ConvertTinytrainToLinalgPass


#: kebab-case name -> pass class (lowerings are loaded lazily).
PASSES = {
    "autodiff": lambda: AutodiffPass,
    "to-linalg": _to_linalg,
}
