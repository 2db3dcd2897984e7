"""The paper's three pretrained int8 MCU models and its 15 sparse-update schemes, as typed data.

The files in `mcu_models/` (MIT License, Copyright (c) 2022 MIT HAN Lab; `mcu_models/LICENSE`)
are the ImageNet-pretrained, post-training-quantized networks of Lin et al. 2022 (Fig. 10,
Table 1): MobileNetV2-w0.35, ProxylessNAS-w0.3 and MCUNet-5FPS, 128x128 RGB input, 1000 classes.
`mcu_models/README.md` describes the files and the integer forward they define
(`tinytrain.reference` implements it).

    from tinytrain.pretrained import load_mcu_model, load_sparse_scheme
    m = load_mcu_model("mbv2-w0.35")
    m.first_conv.weight.shape        # (3, 3, 3, 16): int8, HWIO
    [c.name for c in m.convs()][:3]  # ['first_conv', 'blocks.0.depthwise', 'blocks.0.pointwise2']
    s = load_sparse_scheme("mbv2-w0.35", "49kb")
    s.weight_updates[0]              # WeightUpdate(index=36, name='blocks.12.pointwise1', ratio=1.0, channels=192)

`tinytrain.pretrained.graph.build_forward(m)` turns a model into a `tinytrain` int8 `@forward`
(bit-exact with `tinytrain.reference.forward` once compiled); `tinytrain.int8.compile_training`
trains it (fp32 head, QAS).

Layouts (those of the `tinytrain` dialect): activations NHWC; conv weights HWIO,
`[KH, KW, C_in / groups, C_out]` (depthwise: `[KH, KW, 1, C]`), converted from the files'
PyTorch OIHW `[C_out, C_in / groups, KH, KW]`; the classifier (a 1x1 conv in the files) is kept
as a conv, weight `[1, 1, C_in, 1000]`. Biases are int32, `w_scales` float32 per output channel.

Quantization: `real = scale * (q - zero)`. Weights are symmetric per output channel
(`real_w[..., o] = w_scales[o] * w[..., o]`), activations int8 with a per-tensor scale and zero
point; the int32 bias has scale `x_scale * w_scales[o]` and zero point 0.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "MODEL_NAMES",
    "MalformedModelError",
    "QConv",
    "QResidual",
    "QAvgPool",
    "Block",
    "McuModel",
    "WeightUpdate",
    "SparseScheme",
    "models_dir",
    "load_mcu_model",
    "load_sparse_scheme",
    "sparse_scheme_names",
]

MODEL_NAMES = ("mbv2-w0.35", "proxyless-w0.3", "mcunet-5fps")


class MalformedModelError(ValueError):
    """A model or scheme file does not have the structure `mcu_models/README.md` describes.
    The message names the file and the entry (e.g. `blocks.3.depthwise.params.y_zero`)."""


def models_dir() -> Path:
    """The folder of the shipped model files (inside the installed package)."""
    return Path(str(resources.files("tinytrain.pretrained") / "mcu_models"))


# ----------------------------------------------------------------------------- data classes


@dataclass(frozen=True, eq=False)
class QConv:
    """One int8 convolution (dense, pointwise or depthwise; also the classifier, a 1x1 conv).

    `y_q = clamp(requant(conv(x_q - x_zero, weight) + bias) + y_zero, -128, 127)`, padding
    `(k - 1) / 2` (in the real domain, i.e. `x_zero` in the int8 domain). There is no separate
    activation: ReLU6 is the clamp itself (`y_zero = -128`, `y_scale = 6 / 255`).
    """

    name: str  #: e.g. "first_conv", "blocks.3.depthwise", "classifier"
    weight: np.ndarray  #: int8, HWIO `[KH, KW, C_in / groups, C_out]`
    bias: np.ndarray  #: int32 `[C_out]`, scale `x_scale * w_scales`
    w_scales: np.ndarray  #: float32 `[C_out]`, symmetric per output channel
    x_scale: float
    x_zero: int
    y_scale: float
    y_zero: int
    stride: int
    groups: int
    in_hw: int | None  #: input height = width at 128x128 model input (None: not in the file)
    out_hw: int | None

    @property
    def kernel_size(self) -> int:
        return int(self.weight.shape[0])

    @property
    def padding(self) -> int:
        return (self.kernel_size - 1) // 2

    @property
    def in_channels(self) -> int:
        return int(self.weight.shape[2]) * self.groups

    @property
    def out_channels(self) -> int:
        return int(self.weight.shape[3])

    @property
    def depthwise(self) -> bool:
        return self.groups > 1 and self.groups == self.in_channels == self.out_channels

    def effective_scale(self) -> np.ndarray:
        """float64 `[C_out]`: `x_scale * w_scales / y_scale`, evaluated in this order in double
        (the requantization multiplier; `tinytrain.reference.quantize_multiplier` turns it
        into fixed point)."""
        return (np.float64(self.x_scale) * self.w_scales.astype(np.float64)) / np.float64(self.y_scale)

    def multiplier_shift(self) -> tuple[np.ndarray, np.ndarray]:
        """int32 `(M0, shift)` per output channel: the fixed-point form of `effective_scale()`
        that the device kernels and `tinytrain.qconv2d` use (`tinytrain.reference`, rule b)."""
        from tinytrain.reference import quantize_multiplier

        return quantize_multiplier(self.effective_scale())


@dataclass(frozen=True)
class QResidual:
    """Identity shortcut of a block: `y = requant((x_in - x_zero) * x_scale + (c - c_zero) * c_scale)`
    where `x_in` is the block input and `c` the block's `pointwise2` output (its `y_scale`,
    `y_zero`); the sum has `y_scale`, `y_zero`."""

    channels: int
    hw: int | None
    x_scale: float
    x_zero: int
    y_scale: float
    y_zero: int


@dataclass(frozen=True)
class QAvgPool:
    """Global average pool over H and W of the last block's int8 output: `round(mean(x_q))`
    without zero-point shift, so the output keeps the input's `scale` and `zero`."""

    channels: int
    in_hw: int
    scale: float
    zero: int


@dataclass(frozen=True)
class Block:
    """An inverted-residual block: [pointwise1] -> depthwise -> pointwise2 [+ identity residual]."""

    index: int
    pointwise1: QConv | None  #: None in block 0 (expansion ratio 1)
    depthwise: QConv
    pointwise2: QConv
    residual: QResidual | None

    def convs(self) -> list[QConv]:
        """The block's convolutions in forward order."""
        return [c for c in (self.pointwise1, self.depthwise, self.pointwise2) if c is not None]

    @property
    def out_scale(self) -> float:
        return self.residual.y_scale if self.residual else self.pointwise2.y_scale

    @property
    def out_zero(self) -> int:
        return self.residual.y_zero if self.residual else self.pointwise2.y_zero


@dataclass(frozen=True)
class McuModel:
    """A whole network: first_conv -> blocks -> global average pool -> classifier (1x1 conv)."""

    name: str
    input_hw: int  #: 128
    first_conv: QConv
    blocks: tuple[Block, ...]
    pool: QAvgPool
    classifier: QConv

    @property
    def num_classes(self) -> int:
        return self.classifier.out_channels

    def convs(self) -> list[QConv]:
        """Every convolution in forward order, classifier excluded. The position in this list
        is the paper's layer index used by the sparse-update schemes (`first_conv` = 0)."""
        out = [self.first_conv]
        for b in self.blocks:
            out += b.convs()
        return out

    def conv(self, name: str) -> QConv:
        """The convolution called `name` (e.g. "blocks.3.depthwise" or "classifier")."""
        for c in self.convs() + [self.classifier]:
            if c.name == name:
                return c
        raise KeyError(f"{self.name} has no convolution named {name!r}")


@dataclass(frozen=True)
class WeightUpdate:
    """One weight tensor a scheme trains: the conv at paper index `index`, its first `channels`
    output channels (`floor(ratio * C_out)`; 0 = bias only)."""

    index: int
    name: str
    ratio: float
    channels: int


@dataclass(frozen=True)
class SparseScheme:
    """One of the paper's searched sparse-update schemes (`sparse_schemes.json`).

    The classifier is always trained (fp32) and is not part of the numbering."""

    model: str
    name: str  #: analytic extra memory, e.g. "49kb"
    n_bias_update: int  #: the biases of the last n convolutions are trained
    bias_layers: tuple[str, ...]  #: their names, in forward order
    weight_updates: tuple[WeightUpdate, ...]
    weight_select_criteria: str  #: "magnitude+" (see mcu_models/README.md)


# ----------------------------------------------------------------------------- validation helpers


class _Reader:
    def __init__(self, path: Path):
        self.path = path

    def fail(self, where: str, msg: str):
        raise MalformedModelError(f"{self.path.name}: {where}: {msg}")

    def get(self, d: Any, key: str, where: str) -> Any:
        if not isinstance(d, dict):
            self.fail(where, f"expected an object, got {type(d).__name__}")
        if key not in d:
            self.fail(where, f"missing key {key!r}")
        return d[key]

    def integer(self, d, key, where, lo=None, hi=None) -> int:
        v = self.get(d, key, where)
        if isinstance(v, bool) or not isinstance(v, int):
            self.fail(f"{where}.{key}", f"expected an integer, got {v!r}")
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            self.fail(f"{where}.{key}", f"{v} is outside [{lo}, {hi}]")
        return v

    def scale(self, d, key, where) -> float:
        v = self.get(d, key, where)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
            self.fail(f"{where}.{key}", f"expected a finite positive scale, got {v!r}")
        return float(v)


def _array(r: _Reader, arrays, spec, where: str, dtype: str, shape: tuple[int, ...]) -> np.ndarray:
    name = r.get(spec, "array", where)
    if name not in arrays:
        r.fail(where, f"array {name!r} is not in the .npz file")
    a = arrays[name]
    if a.dtype != np.dtype(dtype):
        r.fail(where, f"array {name!r} has dtype {a.dtype}, expected {dtype}")
    declared = tuple(r.get(spec, "shape", where))
    if tuple(a.shape) != declared:
        r.fail(where, f"array {name!r} has shape {tuple(a.shape)}, the file declares {declared}")
    if tuple(a.shape) != shape:
        r.fail(where, f"array {name!r} has shape {tuple(a.shape)}, expected {shape} from the layer's "
                      "channels, groups and kernel size")
    return a


def _conv(r: _Reader, arrays, d, name: str, classifier: bool = False) -> QConv:
    cin = r.integer(d, "in_channel", name, 1)
    cout = r.integer(d, "out_channel", name, 1)
    groups = r.integer(d, "groups", name, 1)
    stride = r.integer(d, "stride", name, 1)
    ks = r.get(d, "kernel_size", name)
    if not (isinstance(ks, list) and len(ks) == 2 and ks[0] == ks[1] and isinstance(ks[0], int)
            and ks[0] >= 1 and ks[0] % 2 == 1):
        r.fail(f"{name}.kernel_size", f"expected [k, k] with k odd, got {ks!r}")
    k = ks[0]
    if cin % groups or cout % groups:
        r.fail(name, f"in_channel {cin} and out_channel {cout} must be multiples of groups {groups}")
    if not classifier and r.get(d, "act", name) is not None:
        r.fail(f"{name}.act", f"expected null (ReLU6 is the int8 clamp), got {d['act']!r}")
    in_hw = out_hw = None
    if not classifier:
        in_hw = r.integer(d, "in_shape", name, 1)
        out_hw = r.integer(d, "out_shape", name, 1)
        if out_hw != -(-in_hw // stride):
            r.fail(name, f"out_shape {out_hw} != ceil(in_shape {in_hw} / stride {stride})")
    p = r.get(d, "params", name)
    pw = f"{name}.params"
    w = _array(r, arrays, r.get(p, "weight", pw), f"{pw}.weight", "int8", (cout, cin // groups, k, k))
    b = _array(r, arrays, r.get(p, "bias", pw), f"{pw}.bias", "int32", (cout,))
    ws = _array(r, arrays, r.get(p, "w_scales", pw), f"{pw}.w_scales", "float32", (cout,))
    if not (np.all(np.isfinite(ws)) and np.all(ws > 0)):
        r.fail(f"{pw}.w_scales", "every per-channel weight scale must be finite and positive")
    return QConv(
        name=name,
        weight=np.ascontiguousarray(w.transpose(2, 3, 1, 0)),  # OIHW -> HWIO
        bias=b.copy(),
        w_scales=ws.copy(),
        x_scale=r.scale(p, "x_scale", pw),
        x_zero=r.integer(p, "x_zero", pw, -128, 127),
        y_scale=r.scale(p, "y_scale", pw),
        y_zero=r.integer(p, "y_zero", pw, -128, 127),
        stride=stride,
        groups=groups,
        in_hw=in_hw,
        out_hw=out_hw,
    )


def _chain(r: _Reader, layer: str, scale: float, zero: int, prev: str, pscale: float, pzero: int):
    """A layer's input quantization must be its producer's output quantization."""
    if zero != pzero or not math.isclose(scale, pscale, rel_tol=1e-6):
        r.fail(layer, f"input quantization (scale {scale!r}, zero {zero}) differs from the output "
                      f"of {prev} (scale {pscale!r}, zero {pzero})")


def _shape_chain(r: _Reader, layer: str, c: QConv, channels: int, hw: int | None, prev: str):
    if c.in_channels != channels:
        r.fail(layer, f"takes {c.in_channels} channels, {prev} gives {channels}")
    if c.in_hw is not None and hw is not None and c.in_hw != hw:
        r.fail(layer, f"takes {c.in_hw}x{c.in_hw} inputs, {prev} gives {hw}x{hw}")


def _parse_model(name: str, json_path: Path, npz_path: Path) -> McuModel:
    r = _Reader(json_path)
    try:
        d = json.loads(json_path.read_text())
    except json.JSONDecodeError as e:
        raise MalformedModelError(f"{json_path.name}: not valid JSON: {e}") from None
    if not npz_path.exists():
        raise MalformedModelError(f"{json_path.name}: its arrays file {npz_path.name} is missing")
    with np.load(npz_path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}

    first = _conv(r, arrays, r.get(d, "first_conv", "<root>"), "first_conv")
    if first.in_channels != 3 or first.groups != 1:
        r.fail("first_conv", f"expected a dense conv on 3 RGB channels, got {first.in_channels} channels, "
                             f"groups {first.groups}")
    input_hw = first.in_hw
    for key in ("feature_mix",):
        if r.get(d, key, "<root>") is not None:
            r.fail(key, "a feature_mix conv is not supported (null in the paper's three models)")
    raw_blocks = r.get(d, "blocks", "<root>")
    if not isinstance(raw_blocks, list) or not raw_blocks:
        r.fail("blocks", "expected a non-empty list")

    prev, scale, zero, ch, hw = "first_conv", first.y_scale, first.y_zero, first.out_channels, first.out_hw
    blocks = []
    for i, bd in enumerate(raw_blocks):
        where = f"blocks.{i}"
        if r.get(bd, "se", where) is not None:
            r.fail(f"{where}.se", "squeeze-excite is not supported (null in the paper's three models)")
        convs = {}
        for part in ("pointwise1", "depthwise", "pointwise2"):
            cd = r.get(bd, part, where)
            if cd is None:
                if part != "pointwise1":
                    r.fail(f"{where}.{part}", "is null; every block needs a depthwise and a pointwise2 conv")
                convs[part] = None
                continue
            c = _conv(r, arrays, cd, f"{where}.{part}")
            _shape_chain(r, c.name, c, ch, hw, prev)
            _chain(r, c.name, c.x_scale, c.x_zero, prev, scale, zero)
            if part == "depthwise" and not c.depthwise:
                r.fail(c.name, f"expected a depthwise conv (groups = channels), got groups {c.groups} "
                               f"with {c.in_channels} -> {c.out_channels} channels")
            if part != "depthwise" and (c.kernel_size != 1 or c.groups != 1 or c.stride != 1):
                r.fail(c.name, "expected a 1x1, stride-1, dense (pointwise) conv")
            convs[part] = c
            prev, scale, zero, ch, hw = c.name, c.y_scale, c.y_zero, c.out_channels, c.out_hw
        res = None
        rd = r.get(bd, "residual", where)
        if rd is not None:
            block_in = blocks[-1] if blocks else None
            in_ch = block_in.pointwise2.out_channels if block_in else first.out_channels
            in_scale = block_in.out_scale if block_in else first.y_scale
            in_zero = block_in.out_zero if block_in else first.y_zero
            in_hw = (block_in.pointwise2.out_hw if block_in else first.out_hw)
            rp = r.get(rd, "params", f"{where}.residual")
            res = QResidual(
                channels=r.integer(rd, "in_channel", f"{where}.residual", 1),
                hw=r.integer(rd, "in_shape", f"{where}.residual", 1),
                x_scale=r.scale(rp, "x_scale", f"{where}.residual.params"),
                x_zero=r.integer(rp, "x_zero", f"{where}.residual.params", -128, 127),
                y_scale=r.scale(rp, "y_scale", f"{where}.residual.params"),
                y_zero=r.integer(rp, "y_zero", f"{where}.residual.params", -128, 127),
            )
            if not (res.channels == in_ch == ch and res.hw == in_hw == hw):
                r.fail(f"{where}.residual", f"identity shortcut needs equal shapes: block input "
                                            f"{in_ch}x{in_hw}x{in_hw}, block output {ch}x{hw}x{hw}, "
                                            f"residual declares {res.channels}x{res.hw}x{res.hw}")
            _chain(r, f"{where}.residual", res.x_scale, res.x_zero, f"the input of {where}", in_scale, in_zero)
            prev, scale, zero = f"{where}.residual", res.y_scale, res.y_zero
        blocks.append(Block(i, convs["pointwise1"], convs["depthwise"], convs["pointwise2"], res))

    pool = QAvgPool(channels=ch, in_hw=hw, scale=scale, zero=zero)
    cls = _conv(r, arrays, r.get(d, "classifier", "<root>"), "classifier", classifier=True)
    if cls.kernel_size != 1 or cls.groups != 1 or cls.stride != 1:
        r.fail("classifier", "expected a 1x1, stride-1, dense conv")
    _shape_chain(r, "classifier", cls, ch, None, "the global average pool")
    _chain(r, "classifier", cls.x_scale, cls.x_zero, "the global average pool", scale, zero)
    return McuModel(name=name, input_hw=input_hw, first_conv=first, blocks=tuple(blocks), pool=pool,
                    classifier=cls)


def load_mcu_model(name: str, directory: str | Path | None = None) -> McuModel:
    """Load one of `MODEL_NAMES` ("mbv2-w0.35", "proxyless-w0.3", "mcunet-5fps").

    `directory` (default: the shipped `mcu_models/`) holds `<name>.json` and `<name>.npz`.
    Raises `MalformedModelError` naming the entry when a file does not have the documented
    structure, or its layers do not chain (channels, resolution, quantization parameters)."""
    folder = Path(directory) if directory is not None else models_dir()
    json_path = folder / f"{name}.json"
    if not json_path.exists():
        known = sorted(p.stem for p in folder.glob("*.json") if p.stem != "sparse_schemes")
        raise FileNotFoundError(f"no model {name!r} in {folder}; available: {', '.join(known) or 'none'}")
    return _parse_model(name, json_path, folder / f"{name}.npz")


def _schemes(directory: str | Path | None) -> tuple[Path, dict]:
    path = (Path(directory) if directory is not None else models_dir()) / "sparse_schemes.json"
    try:
        return path, json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise MalformedModelError(f"{path.name}: not valid JSON: {e}") from None


def sparse_scheme_names(model: str, directory: str | Path | None = None) -> list[str]:
    """The scheme names published for `model`, e.g. ["49kb", "73kb", "99kb", "123kb", "138kb"]."""
    path, d = _schemes(directory)
    if model not in d:
        raise KeyError(f"{path.name} has no schemes for model {model!r}; models: {', '.join(d)}")
    return list(d[model])


def load_sparse_scheme(model: str | McuModel, name: str, directory: str | Path | None = None) -> SparseScheme:
    """One of the paper's sparse-update schemes for `model` (a name or a loaded `McuModel`).

    Conv indices follow the paper (`McuModel.convs()` order, classifier excluded); they are
    resolved to layer names and the channel counts `floor(ratio * C_out)` are computed."""
    m = model if isinstance(model, McuModel) else load_mcu_model(model, directory)
    path, d = _schemes(directory)
    r = _Reader(path)
    if m.name not in d:
        raise KeyError(f"{path.name} has no schemes for model {m.name!r}; models: {', '.join(d)}")
    if name not in d[m.name]:
        raise KeyError(f"{path.name} has no scheme {name!r} for {m.name}; schemes: {', '.join(d[m.name])}")
    s = d[m.name][name]
    where = f"{m.name}.{name}"
    convs = m.convs()
    n_bias = r.integer(s, "n_bias_update", where, 0, len(convs))
    idx = r.get(s, "manual_weight_idx", where)
    ratios = r.get(s, "weight_update_ratio", where)
    if not isinstance(idx, list) or not isinstance(ratios, list) or len(idx) != len(ratios):
        r.fail(where, "manual_weight_idx and weight_update_ratio must be lists of equal length")
    updates = []
    for i, ratio in zip(idx, ratios):
        if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < len(convs):
            r.fail(f"{where}.manual_weight_idx", f"{i!r} is not a conv index in [0, {len(convs)})")
        if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 <= ratio <= 1:
            r.fail(f"{where}.weight_update_ratio", f"{ratio!r} is not in [0, 1]")
        c = convs[i]
        updates.append(WeightUpdate(index=i, name=c.name, ratio=float(ratio),
                                    channels=int(math.floor(ratio * c.out_channels))))
    if len({u.index for u in updates}) != len(updates):
        r.fail(f"{where}.manual_weight_idx", "lists a conv twice")
    crit = r.get(s, "weight_select_criteria", where)
    if not isinstance(crit, str):
        r.fail(f"{where}.weight_select_criteria", f"expected a string, got {crit!r}")
    return SparseScheme(
        model=m.name,
        name=name,
        n_bias_update=n_bias,
        bias_layers=tuple(c.name for c in convs[len(convs) - n_bias:]),
        weight_updates=tuple(updates),
        weight_select_criteria=crit,
    )
