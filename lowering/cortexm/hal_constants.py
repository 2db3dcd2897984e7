"""Serialize IREE ``util.buffer.constant`` values (frozen weights) to bytes for the flash pool.

Weights reach the HAL phase as ``#util.composite<Nxi8, [elements...]>``: ``dense_resource<key>``
blobs (read from the module's ``{-# dialect_resources #-}`` section, whose first 4 bytes are the
blob alignment) and ``dense<...>`` attributes (parsed with IREE's MLIR bindings), concatenated.
The byte offset of each weight inside the composite is baked into the kernels, so the whole
composite is placed in the pool as one piece.
"""

from __future__ import annotations

import re

import numpy as np

from .schedule_model import Unsupported


def parse_resources(text: str) -> dict:
    """``{-# dialect_resources #-}`` blobs as ``{key: bytes}`` (4-byte alignment prefix dropped)."""
    out = {}
    start = text.rfind("{-#")
    if start < 0:
        return out
    for m in re.finditer(r'^\s*("[^"]+"|[^\s:]+):\s*"0x([0-9A-Fa-f]*)"', text[start:], re.M):
        out[m.group(1).strip('"')] = bytes.fromhex(m.group(2))[4:]
    return out


def _split_top(text: str) -> list:
    parts, depth, cur = [], 0, []
    for ch in text:
        if ch in "<[({":
            depth += 1
        elif ch in ">])}":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    if "".join(cur).strip():
        parts.append("".join(cur).strip())
    return [p for p in parts if p]


_NP = {"f32": np.float32, "f16": np.float16, "f64": np.float64, "i8": np.int8, "i16": np.int16,
       "i32": np.int32, "i64": np.int64, "ui8": np.uint8}


def _element_bytes(text: str, ctx, resources: dict) -> bytes:
    from iree.compiler import ir

    m = re.match(r"dense_resource<([^>]+)>\s*:\s*(.*)$", text, re.S)
    if m:
        key = m.group(1).strip('"')
        if key not in resources:
            raise Unsupported(f"constant blob '{key}' is not in the module's dialect_resources")
        return resources[key]
    attr = ir.Attribute.parse(text, ctx)
    if not isinstance(attr, ir.DenseElementsAttr):
        raise Unsupported(f"constant element kind not supported: {text[:80]}")
    etype = str(attr.type.element_type)
    if etype not in _NP:
        raise Unsupported(f"constant element type {etype} not supported")
    shape = tuple(attr.type.shape)
    if attr.is_splat:
        v = attr.get_splat_value()
        return np.full(shape, v.value, dtype=_NP[etype]).tobytes()
    return np.array(attr).astype(_NP[etype]).tobytes()


def constant_bytes(attr_text: str, ctx, resources: dict) -> bytes:
    """Serialize a ``util.buffer.constant`` value (composite or dense) to bytes."""
    t = attr_text.strip()
    m = re.match(r"#util\.composite<(\d+)xi8,\s*\[(.*)\]>$", t, re.S)
    if m:
        data = b"".join(_element_bytes(e, ctx, resources) for e in _split_top(m.group(2)))
        if len(data) != int(m.group(1)):
            raise Unsupported(f"composite constant is {len(data)} bytes, declared {m.group(1)}")
        return data
    return _element_bytes(t, ctx, resources)
