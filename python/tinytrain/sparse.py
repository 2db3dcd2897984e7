"""Sparse-update schemes (paper Sec. 2.2): what a training step updates, as a compile option.

A scheme is given as a JSON file path, a dict, a `tinytrain.pretrained.SparseScheme`, or the name
of one of the paper's fifteen published schemes (`"49kb"`, ... for the model being compiled;
`tinytrain.pretrained.sparse_scheme_names(model)` lists them). Two forms:

- **paper form** (the paper's config keys; only for the paper's int8 models, whose convolutions
  are numbered in forward order, `first_conv` = 0, classifier excluded):

      {"n_bias_update": 16,                       # biases of the last 16 convolutions
       "manual_weight_idx": [36, 39, 41],         # weights of these convolutions ...
       "weight_update_ratio": [1, 0, 0.25]}       # ... first ratio*C_out output channels (0 = bias only)

  The classifier (the fp32 head `fc.weight`, `fc.bias`) is always trained. An optional
  `"weight_select_criteria"` is accepted; whatever it says, the trained channels are the FIRST
  `floor(ratio * C_out)` (as the authors' compiler does; see `mcu_models/README.md`).

- **explicit form** (any model, by parameter name):

      {"parameters": {"features.3.conv.weight": "1/4", "features.3.conv.bias": 1,
                      "classifier.weight": 1, "classifier.bias": 1}}

  Every listed parameter is trained; a conv or linear weight may give a ratio in
  {1/8, 1/4, 1/2, 1} (a number or "1/8"), every other parameter 1.

`resolve(spec, ...)` checks the scheme against the model and returns a `SparseUpdate`: the
trainable names and the weights trained on a slice, which the compile drivers turn into
`autodiff{trainable=...}` and `sparse-update{weights=...}`. Mistakes (unknown layer or
parameter, a ratio not allowed, an index out of range, a YAML file) raise `ValueError` naming the
entry and the fix.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from tinytrain.transforms.sparse_update import RATIOS, parse_ratio

__all__ = ["SparseUpdate", "resolve", "read_scheme", "PAPER_KEYS"]

PAPER_KEYS = ("n_bias_update", "manual_weight_idx", "weight_update_ratio")
_OPTIONAL_PAPER_KEYS = ("weight_select_criteria",)
_PAPER_RATIOS = (Fraction(0),) + RATIOS


@dataclass(frozen=True)
class SparseUpdate:
    """A resolved scheme: `parameters` maps each trained parameter to its ratio (1 = whole)."""

    parameters: dict[str, Fraction]
    source: str = "scheme"

    @property
    def trainable(self) -> list[str]:
        return list(self.parameters)

    @property
    def sliced(self) -> dict[str, Fraction]:
        """The weights trained on a fraction of their output channels."""
        return {k: r for k, r in self.parameters.items() if r < 1}

    def pass_option(self) -> tuple[str, ...]:
        """The `weights` option of `sparse-update`: `<name>:<ratio>` per sliced weight."""
        return tuple(f"{k}:{r}" for k, r in self.sliced.items())


def read_scheme(path: str | Path) -> dict:
    """A scheme file (JSON) as a dict."""
    p = Path(path)
    if p.suffix.lower() in (".yaml", ".yml"):
        raise ValueError(f"sparse scheme {p}: YAML is not supported (tinytrain has no YAML parser "
                         "dependency); write the same keys as JSON")
    if not p.is_file():
        raise ValueError(f"sparse scheme {p}: no such file; give a JSON file, a dict, or a published "
                         "scheme name such as '49kb'")
    try:
        d = json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"sparse scheme {p}: not valid JSON: {e}") from None
    if not isinstance(d, dict):
        raise ValueError(f"sparse scheme {p}: expected a JSON object with {', '.join(PAPER_KEYS)} or "
                         f"'parameters', got {type(d).__name__}")
    return d


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _paper(d: dict, convs: list[str], extra: list[str], where: str) -> dict[str, Fraction]:
    """The paper form against the model's convolutions `convs` (paper indexing); `extra`: the
    classifier's parameters, always trained."""
    unknown = sorted(set(d) - set(PAPER_KEYS) - set(_OPTIONAL_PAPER_KEYS))
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; the paper form has {', '.join(PAPER_KEYS)} "
                         f"(and optionally {', '.join(_OPTIONAL_PAPER_KEYS)})")
    missing = [k for k in PAPER_KEYS if k not in d]
    if missing:
        raise ValueError(f"{where}: missing key(s) {missing} (the paper form needs all of {', '.join(PAPER_KEYS)})")
    n = len(convs)
    nb = d["n_bias_update"]
    if not _is_int(nb) or not 0 <= nb <= n:
        raise ValueError(f"{where}: n_bias_update = {nb!r} must be a whole number in [0, {n}] (the model has "
                         f"{n} convolutions, classifier excluded)")
    idx, ratios = d["manual_weight_idx"], d["weight_update_ratio"]
    if not isinstance(idx, list) or not isinstance(ratios, list) or len(idx) != len(ratios):
        raise ValueError(f"{where}: manual_weight_idx and weight_update_ratio must be lists of equal length "
                         "(one ratio per listed convolution)")
    out: dict[str, Fraction] = {f"{c}.bias": Fraction(1) for c in convs[n - nb:]}
    seen = set()
    for i, r in zip(idx, ratios):
        if not _is_int(i) or not 0 <= i < n:
            raise ValueError(f"{where}: manual_weight_idx {i!r} is out of range: the model's convolutions are "
                             f"numbered 0 ({convs[0]}) to {n - 1} ({convs[-1]}) in forward order, classifier "
                             "excluded")
        if i in seen:
            raise ValueError(f"{where}: manual_weight_idx lists convolution {i} ({convs[i]}) twice")
        seen.add(i)
        try:
            ratio = Fraction(0) if r == 0 and not isinstance(r, bool) else parse_ratio(r, f"{where}: convolution {i} ({convs[i]})")
        except ValueError as e:
            raise ValueError(f"{e} (0 = bias only)") from None
        if ratio > 0:
            out[f"{convs[i]}.weight"] = ratio
    for p in extra:
        out[p] = Fraction(1)
    return out


def _explicit(d: dict, names: list[str], where: str) -> dict[str, Fraction]:
    import difflib

    unknown = sorted(set(d) - {"parameters"})
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; write {{\"parameters\": {{name: ratio}}}} or the "
                         f"paper form ({', '.join(PAPER_KEYS)})")
    params = d["parameters"]
    if not isinstance(params, dict) or not params:
        raise ValueError(f"{where}: 'parameters' must be a non-empty object of parameter name -> ratio")
    out = {}
    for name, r in params.items():
        if name not in names:
            close = difflib.get_close_matches(name, names, n=3)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise ValueError(f"{where}: unknown parameter '{name}'.{hint} The model's parameters are: "
                             + ", ".join(names))
        out[name] = parse_ratio(r, f"{where}: '{name}'")
    return out


def resolve(spec, *, param_names: list[str], model=None, head: tuple[str, ...] = ()) -> SparseUpdate:
    """Check `spec` (path, dict, `SparseScheme` or published scheme name) against a model with
    parameters `param_names`. `model` (a `tinytrain.pretrained.McuModel`) enables the paper
    form and published names; `head` lists the classifier parameters the paper form always
    trains. Ratios below 1 are checked against the layer itself by `sparse-update`."""
    from tinytrain.pretrained import SparseScheme

    where = "sparse scheme"
    if isinstance(spec, SparseScheme):
        d = {"n_bias_update": spec.n_bias_update, "manual_weight_idx": [u.index for u in spec.weight_updates],
             "weight_update_ratio": [u.ratio for u in spec.weight_updates]}
        where = f"sparse scheme {spec.model}/{spec.name}"
    elif isinstance(spec, (str, Path)) and (Path(spec).is_file() or not (isinstance(spec, str) and _looks_published(spec))):
        d = read_scheme(spec)
        where = f"sparse scheme {spec}"
    elif isinstance(spec, str):
        d, where = _published(spec, model), f"sparse scheme '{spec}'"
    elif isinstance(spec, dict):
        d = spec
    else:
        raise TypeError(f"a sparse scheme is a JSON file path, a dict, a SparseScheme or a published scheme "
                        f"name, got {type(spec).__name__}")
    if "parameters" in d:
        return SparseUpdate(_explicit(d, param_names, where), where)
    if any(k in d for k in PAPER_KEYS):
        if model is None:
            raise ValueError(f"{where}: the paper form ({', '.join(PAPER_KEYS)}) numbers the convolutions of the "
                             "paper's int8 models; for this model write the explicit form "
                             "{\"parameters\": {\"<name>.weight\": \"1/4\", \"<name>.bias\": 1, ...}}")
        convs = [c.name for c in model.convs()]
        return SparseUpdate(_paper(d, convs, list(head), where), where)
    raise ValueError(f"{where}: expected the keys {', '.join(PAPER_KEYS)} (paper form) or 'parameters' "
                     f"(explicit form), got {sorted(d)}")


def _looks_published(spec: str) -> bool:
    return not spec.lower().endswith((".json", ".yaml", ".yml")) and "/" not in spec and "\\" not in spec


def _published(name: str, model) -> dict:
    from tinytrain.pretrained import MODEL_NAMES, load_sparse_scheme, sparse_scheme_names

    if model is None:
        raise ValueError(f"sparse scheme '{name}': published schemes exist only for the paper's models "
                         f"({', '.join(MODEL_NAMES)}); give a JSON file or a dict in the explicit form")
    base = model.name.split("[")[0]  # a truncated model keeps its paper name before "[:n]"
    names = sparse_scheme_names(base)
    if name not in names:
        raise ValueError(f"sparse scheme '{name}': no such published scheme for {base}; published: "
                         f"{', '.join(names)} (or give a .json file)")
    s = load_sparse_scheme(base, name)
    return {"n_bias_update": s.n_bias_update, "manual_weight_idx": [u.index for u in s.weight_updates],
            "weight_update_ratio": [u.ratio for u in s.weight_updates]}
