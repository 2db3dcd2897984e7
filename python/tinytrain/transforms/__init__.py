"""Passes on the `tinytrain` dialect, one per file (`<name>.py`, lit test in
`tests/lit/transforms/<name>.mlir`), registered by name in `tinytrain.pipeline.PASSES`."""

from tinytrain.transforms.autodiff import AutodiffPass

__all__ = ["AutodiffPass"]
