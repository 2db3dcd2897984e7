"""The "Supported layers and models" table of the README, rendered from the cases the tests run.

`LAYER_CASES` and `ZOO_MODELS` are the single declaration of what is supported:
`tests/python/test_layers.py` and `tests/python/test_zoo.py` run exactly these cases (each test
module checks that its builders and these keys are the same set), comparing gradients with
torch.autograd and SGD steps with torch.optim.SGD; `tests/python/test_support_table.py` checks
that the README embeds the table rendered here.

    python -m tinytrain.tools.support_table            # print the table
    python -m tinytrain.tools.support_table --write README.md   # replace it in the README
"""

from __future__ import annotations

import argparse
import dataclasses
import pathlib
import sys

__all__ = ["LayerCase", "ZooModel", "LAYER_CASES", "ZOO_MODELS", "render", "embed", "BEGIN", "END"]

BEGIN = "<!-- support-table:begin -->"
END = "<!-- support-table:end -->"


@dataclasses.dataclass(frozen=True)
class LayerCase:
    key: str          # the test case id (tests/python/test_layers.py)
    pytorch: str      # what the user writes
    tinytrain: str    # what the importer builds
    notes: str = ""


@dataclasses.dataclass(frozen=True)
class ZooModel:
    key: str          # the test case id (tests/python/test_zoo.py)
    model: str        # the architecture as its authors ship it
    source: str       # where its code comes from (an installed, pinned test dependency)
    input: tuple      # N, C, H, W of the test's input
    trained: tuple | str  # "all", or the name prefixes of the tensors the test trains and checks
    notes: str = ""


_TV = "torchvision 0.28.0"
_MCUNET = "mcunet 0.1.1.post202206170200"

LAYER_CASES = [
    LayerCase("conv_same_k3", "`Conv2d(padding='same')`, odd kernel", "`conv2d` (symmetric padding)"),
    LayerCase("conv_same_k4", "`Conv2d(padding='same')`, even kernel", "`pad` (bottom/right) + `conv2d`",
              "the odd row/column goes bottom/right, as in PyTorch"),
    LayerCase("conv_large_padding", "`Conv2d(3, 4, 1, padding=1)`, `Conv2d(.., 3, 2, padding=(3, 2))`",
              "`conv2d` (padding up to and beyond the kernel)"),
    LayerCase("zero_pad", "`nn.ZeroPad2d`, `F.pad` (zeros, any sides)", "`pad`"),
    LayerCase("max_pool", "`nn.MaxPool2d(3, 2, padding=1)`", "`max_pool2d`"),
    LayerCase("max_pool_ceil", "`nn.MaxPool2d(..., ceil_mode=True)`", "`max_pool2d` (extra bottom/right padding)",
              "the last window starts inside the input or the left padding, as in PyTorch"),
    LayerCase("avg_pool", "`nn.AvgPool2d(2)`; `(3, 2, 1)` with `count_include_pad` True/False",
              "`avg_pool2d` (divisor \"window\" / \"valid\")",
              "`ceil_mode=True` only where it adds no partial window (else a clear error)"),
    LayerCase("hardswish_hardsigmoid", "`nn.Hardswish`, `nn.Hardsigmoid` (also `inplace=True`)",
              "`hardswish`, `hardsigmoid`"),
    LayerCase("sigmoid_leaky_relu", "`nn.Sigmoid`, `nn.LeakyReLU(0.1)` (also `inplace=True`)",
              "`sigmoid`, `leaky_relu`"),
    LayerCase("squeeze_excite", "`x * s`, `s * x`, `t *= t` with s `[N, C, 1, 1]` (squeeze-excite)",
              "`mul` (the full-shape operand is lhs)"),
    LayerCase("concat", "`torch.cat([a, b, c], 1)`", "a chain of binary `concat`"),
    LayerCase("batch_norm_unfolded", "`BatchNorm2d` not after a conv (or the conv has other users); "
              "`BatchNorm1d` after `Linear`", "`channel_affine`",
              "trainable `<bn>.weight` = gamma/sqrt(var+eps), `<bn>.bias` = beta - mean * weight"),
]

ZOO_MODELS = [
    ZooModel("mobilenet_v2_w035", "`mobilenet_v2(width_mult=0.35, num_classes=10)`", _TV, (2, 3, 32, 32), "all",
             "`ReLU6(inplace=True)`, `Dropout`"),
    ZooModel("mnasnet0_5", "`mnasnet0_5(num_classes=10)`", _TV, (1, 3, 32, 32),
             ("layers.12", "layers.13", "layers.14", "classifier"), "`ReLU(inplace=True)`, `x.mean([2, 3])`"),
    ZooModel("mobilenet_v3_small", "`mobilenet_v3_small(num_classes=10)`", _TV, (1, 3, 32, 32),
             ("features.11", "features.12", "classifier"),
             "`Hardswish(inplace=True)`, squeeze-excite (`Hardsigmoid`, `scale * input`)"),
    ZooModel("resnet_basic_blocks", "stem + `MaxPool2d` + 2 `resnet.BasicBlock`s (one strided, with downsample)",
             _TV, (2, 3, 32, 32), "all", "`out += identity`, `ReLU(inplace=True)`"),
    ZooModel("squeezenet1_1", "`squeezenet1_1(num_classes=10)`", _TV, (1, 3, 64, 64),
             ("features.11", "features.12", "classifier"), "`Fire`: `torch.cat`; `MaxPool2d(ceil_mode=True)`"),
    ZooModel("mcunet_proxyless", "`ProxylessNASNets.build_from_config` (kernels 3/5/7, expand 1/3/6, "
             "identity residual)", _MCUNET, (1, 3, 32, 32), "all", "`x.mean(3).mean(2)`, `ReLU6(inplace=True)`"),
    ZooModel("mcunet_mobilenet_v2", "`MobileNetV2(n_classes=10, width_mult=0.35)`", _MCUNET, (1, 3, 32, 32),
             ("blocks.15", "blocks.16", "feature_mix_layer", "classifier")),
]


def _row(cells) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def render() -> str:
    """The Markdown of the table (two tables: layers, then models), between BEGIN and END."""
    lines = [BEGIN, "", "Layers (beyond the core Conv2d / BatchNorm2d-folded / Linear / ReLU / ReLU6 / add / "
             "global average pool / flatten / Dropout set), each a test case comparing gradients "
             "with `torch.autograd` and 3 SGD steps with `torch.optim.SGD`:", "",
             _row(["PyTorch", "tinytrain op", "notes", "test case"]), _row(["---"] * 4)]
    lines += [_row([c.pytorch, c.tinytrain, c.notes, f"`test_layers.py::{c.key}`"]) for c in LAYER_CASES]
    lines += ["", "Models written outside this project, compiled unchanged (host, gradients of the trained "
              "tensors vs `torch.autograd` on the BN-folded model at 1e-4 relative, 3 SGD steps):", "",
              _row(["model", "code from", "input", "trained", "exercises", "test case"]), _row(["---"] * 6)]
    lines += [_row([m.model, m.source, "x".join(str(d) for d in m.input),
                    "all" if m.trained == "all" else ", ".join(f"`{p}*`" for p in m.trained),
                    m.notes, f"`test_zoo.py::{m.key}`"]) for m in ZOO_MODELS]
    lines += ["", END]
    return "\n".join(lines)


def embed(readme: str) -> str:
    """`readme` with the text between BEGIN and END replaced by the rendered table."""
    if BEGIN not in readme or END not in readme:
        raise ValueError(f"the README has no '{BEGIN}' ... '{END}' block")
    head, rest = readme.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return head + render() + tail


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tinytrain.tools.support_table", description=__doc__.splitlines()[0])
    parser.add_argument("--write", metavar="README", type=pathlib.Path,
                        help="replace the table between the markers in this file")
    args = parser.parse_args(argv)
    if args.write is None:
        print(render())
        return 0
    try:
        text = args.write.read_text()
        args.write.write_text(embed(text))
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
