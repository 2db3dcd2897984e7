"""tinytrain -> linalg-on-tensors (+ tensor, arith, math): the input IREE compiles.

Each `tinytrain` op becomes one or a few linalg ops (named convolutions where they exist, so
IREE's tuned conv paths apply; `linalg.generic` elsewhere). Function signatures are kept:
trained parameters stay arguments tied to results (`iree.abi.output`).

Frozen parameters: when `values` (name -> array) is given, every argument tagged
`tinytrain.param` but not `tinytrain.trainable` becomes a constant
(`dense_resource` blob) and disappears from the signature; IREE then places it with the other
constants (flash on a microcontroller). Without `values` (e.g. in lit tests) they stay arguments.

Gradient lowering, in words (paper Sec. 2.3):
- conv input-gradient = stride-1 convolution of the zero-dilated, padded output gradient with the
  spatially flipped, in/out-transposed kernel (`conv_2d_nhwc_hwcf` / `depthwise_conv_2d_nhwc_hwc`);
- conv weight-gradient = a contraction of the padded input with the output gradient over
  (N, OH, OW) at stride `s` (one `linalg.generic`);
- the loss and its gradient use the max-shifted log-sum-exp, as PyTorch does.
"""

from __future__ import annotations

import re

import numpy as np
from torch_mlir import ir

from tinytrain.errors import CompileError
from tinytrain.irtext import (Emitter, func_args, func_ops, parse_module, resource_blob,
                              shape_of, tensor_type)

__all__ = ["ToLinalgPass", "lower_to_linalg"]

F32 = "f32"


# ----------------------------------------------------------------------------------------------
# Text builders
# ----------------------------------------------------------------------------------------------


def _amap(ndims: int, results) -> str:
    dims = ", ".join(f"d{i}" for i in range(ndims))
    return f"affine_map<({dims}) -> ({', '.join(results)})>"


def _ident(ndims: int) -> str:
    return _amap(ndims, [f"d{i}" for i in range(ndims)])


class _B:
    """Builder of linalg text on top of an Emitter."""

    def __init__(self, em: Emitter):
        self.em = em

    def cst(self, value: float, ty: str = F32) -> str:
        n = self.em.fresh("c")
        if ty == F32:
            text = "0xFF800000" if value == -np.inf else f"{float(value):e}"
            self.em.raw(f"{n} = arith.constant {text} : f32")
        else:
            self.em.raw(f"{n} = arith.constant {int(value)} : {ty}")
        return n

    def empty(self, shape) -> str:
        n = self.em.fresh("e")
        ty = tensor_type(shape)
        self.em.raw(f"{n} = tensor.empty() : {ty}")
        return self.em.declare(n, ty)

    def full(self, shape, value: float = 0.0) -> str:
        c = self.cst(value)
        e = self.empty(shape)
        n = self.em.fresh("f")
        ty = tensor_type(shape)
        self.em.raw(f"{n} = linalg.fill ins({c} : f32) outs({e} : {ty}) -> {ty}")
        return self.em.declare(n, ty)

    def generic(self, ins: list[str], out: str, maps: list[str], iters: list[str],
                body: list[str], loc: str = "") -> str:
        """`linalg.generic`; `body` lines use %a0.. for inputs, %acc for the output element and
        must end by producing %res, which is yielded. An empty body yields %a0 (a copy or
        broadcast)."""
        em = self.em
        tag = em.fresh("g")[1:]
        ren = {f"%a{i}": f"%{tag}_a{i}" for i in range(len(ins))}
        ren["%acc"] = f"%{tag}_acc"
        ren["%res"] = f"%{tag}_res"

        def sub(line: str) -> str:
            return re.sub(r"%(a\d+|acc|res|t\d*)\b", lambda m: ren.get(m.group(0), f"%{tag}_{m.group(1)}"), line)

        in_types = [em.types[i] for i in ins]
        out_t = em.types[out]
        in_elts = [_elt(t) for t in in_types]
        bb_args = ", ".join(f"{ren[f'%a{i}']}: {e}" for i, e in enumerate(in_elts))
        bb_args = (bb_args + ", " if bb_args else "") + f"{ren['%acc']}: f32"
        iter_text = ", ".join(f'"{i}"' for i in iters)
        ins_text = f"ins({', '.join(ins)} : {', '.join(in_types)}) " if ins else ""
        n = em.fresh("r")
        em.raw(f"{n} = linalg.generic {{indexing_maps = [{', '.join(maps)}], iterator_types = [{iter_text}]}} "
               f"{ins_text}outs({out} : {out_t}) {{")
        em.raw(f"^bb0({bb_args}):")
        for line in body:
            em.raw("  " + sub(line))
        em.raw(f"  linalg.yield {ren['%res'] if body else ren['%a0']} : f32")
        em.raw(f"}} -> {out_t}{(' ' + loc) if loc else ''}")
        return em.declare(n, out_t)

    def ew(self, ins: list[str], body: list[str], loc: str = "") -> str:
        """Elementwise op over tensors of one shape."""
        shape = shape_from(self.em.types[ins[0]])
        r = len(shape)
        out = self.empty(shape)
        return self.generic(ins, out, [_ident(r)] * (len(ins) + 1), ["parallel"] * r, body, loc)

    def conv_input(self, x: str, padding, kernel, out_hw, strides) -> str:
        """Zero-pad `x` (NHWC) by `padding` and crop it to exactly the rows/columns a convolution
        reads, `(O - 1) * s + K`. (IREE 3.13 miscompiles a conv whose input has unread rows once
        unit output dims are folded, so the window is always exact.)"""
        n, h, w, c = shape_from(self.em.types[x])
        need = [(o - 1) * s + k for o, s, k in zip(out_hw, strides, kernel)]
        high = [max(0, nd - d - p) for nd, d, p in zip(need, (h, w), padding)]
        cur = x
        if any(padding) or any(high):
            zero = self.cst(0.0)
            ph, pw = padding
            shape = [n, h + ph + high[0], w + pw + high[1], c]
            ty = tensor_type(shape)
            r = self.em.fresh("p")
            self.em.raw(f"{r} = tensor.pad {cur} low[0, {ph}, {pw}, 0] high[0, {high[0]}, {high[1]}, 0] {{")
            self.em.raw(f"^bb0({', '.join(f'{r}_i{i}: index' for i in range(4))}):")
            self.em.raw(f"  tensor.yield {zero} : f32")
            self.em.raw(f"}} : {self.em.types[cur]} to {ty}")
            cur = self.em.declare(r, ty)
        shape = shape_from(self.em.types[cur])
        if shape[1] != need[0] or shape[2] != need[1]:
            ty = tensor_type([n, need[0], need[1], c])
            r = self.em.fresh("crop")
            self.em.raw(f"{r} = tensor.extract_slice {cur}[0, 0, 0, 0] [{n}, {need[0]}, {need[1]}, {c}] "
                        f"[1, 1, 1, 1] : {self.em.types[cur]} to {ty}")
            cur = self.em.declare(r, ty)
        return cur

    def reshape(self, x: str, shape) -> str:
        em = self.em
        src = shape_from(em.types[x])
        if list(src) == list(shape):
            return x
        cur = x
        if len(src) != 1:
            total = int(np.prod(src)) if src else 1
            n = em.fresh("cs")
            grp = "[" + ", ".join(str(i) for i in range(len(src))) + "]"
            ty = tensor_type([total])
            em.raw(f"{n} = tensor.collapse_shape {cur} [{grp}] : {em.types[cur]} into {ty}")
            cur = em.declare(n, ty)
        if len(shape) == 1:
            return cur
        n = em.fresh("es")
        grp = "[" + ", ".join(str(i) for i in range(len(shape))) + "]"
        ty = tensor_type(shape)
        em.raw(f"{n} = tensor.expand_shape {cur} [{grp}] output_shape [{', '.join(map(str, shape))}] "
               f": {em.types[cur]} into {ty}")
        return em.declare(n, ty)


def _elt(type_text: str) -> str:
    """Element type of a ranked tensor type's text: `tensor<1x8xi32>` -> `i32`."""
    return type_text[len("tensor<"):-1].split("x")[-1]


def shape_from(type_text: str) -> list[int]:
    m = re.match(r"tensor<(.*)>", type_text)
    parts = m.group(1).split("x")
    return [int(p) for p in parts[:-1]]


def _conv_attrs(op):
    """(strides, padding, groups) of a conv or conv-gradient op (verified by the dialect)."""
    a = op.attributes
    return (list(ir.DenseI64ArrayAttr(a["strides"])), list(ir.DenseI64ArrayAttr(a["padding"])),
            ir.IntegerAttr(a["groups"]).value)


def _dense2(vals) -> str:
    return f"dense<[{vals[0]}, {vals[1]}]> : tensor<2xi64>"


# ----------------------------------------------------------------------------------------------
# Op lowerings: each takes (builder, op, operand names, loc) and returns the result name.
# ----------------------------------------------------------------------------------------------


def _conv2d(b: _B, op, ins, loc):
    x, w, bias = ins
    strides, padding, groups = _conv_attrs(op)
    out_shape = shape_of(op.results[0])
    em = b.em
    # The bias, broadcast over N, H, W, is the accumulator the convolution adds into.
    init = b.generic([bias], b.empty(out_shape), [_amap(4, ["d3"]), _ident(4)], ["parallel"] * 4, [])
    kernel = shape_from(em.types[w])[:2]
    xp = b.conv_input(x, padding, kernel, out_shape[1:3], strides)
    ty = tensor_type(out_shape)
    n = em.fresh("conv")
    attrs = f"{{dilations = {_dense2([1, 1])}, strides = {_dense2(strides)}}}"
    if groups == 1:
        em.raw(f"{n} = linalg.conv_2d_nhwc_hwcf {attrs} ins({xp}, {w} : {em.types[xp]}, {em.types[w]}) "
               f"outs({init} : {ty}) -> {ty} {loc}")
    else:
        w3 = _depthwise_kernel(b, w)
        em.raw(f"{n} = linalg.depthwise_conv_2d_nhwc_hwc {attrs} ins({xp}, {w3} : {em.types[xp]}, "
               f"{em.types[w3]}) outs({init} : {ty}) -> {ty} {loc}")
    return em.declare(n, ty)


def _depthwise_kernel(b: _B, w: str) -> str:
    kh, kw, _, c = shape_from(b.em.types[w])
    n = b.em.fresh("k")
    ty = tensor_type([kh, kw, c])
    b.em.raw(f"{n} = tensor.collapse_shape {w} [[0], [1], [2, 3]] : {b.em.types[w]} into {ty}")
    return b.em.declare(n, ty)


def _conv2d_grad_input(b: _B, op, ins, loc):
    dy, w = ins
    strides, padding, groups = _conv_attrs(op)
    n_, h, wd, c = shape_of(op.results[0])
    _, oh, ow, f = shape_from(b.em.types[dy])
    kh, kw = shape_from(b.em.types[w])[:2]
    lo_h, lo_w = kh - 1 - padding[0], kw - 1 - padding[1]
    if lo_h < 0 or lo_w < 0:
        raise CompileError(f"conv2d_grad_input: padding {padding} larger than kernel-1 is not "
                           f"supported ({op.location})", stage="to-linalg")
    hb = max(h + kh - 1, lo_h + (oh - 1) * strides[0] + 1)
    wb = max(wd + kw - 1, lo_w + (ow - 1) * strides[1] + 1)
    em = b.em
    z = b.full([n_, hb, wb, f])
    d = em.fresh("dil")
    zt = em.types[z]
    em.raw(f"{d} = tensor.insert_slice {dy} into {z}[0, {lo_h}, {lo_w}, 0] [{n_}, {oh}, {ow}, {f}] "
           f"[1, {strides[0]}, {strides[1]}, 1] : {em.types[dy]} into {zt}")
    em.declare(d, zt)
    out = b.full([n_, h, wd, c])
    ty = em.types[out]
    attrs = f"{{dilations = {_dense2([1, 1])}, strides = {_dense2([1, 1])}}}"
    r = em.fresh("dx")
    wf = _flipped_kernel(b, w, groups)
    conv = "linalg.conv_2d_nhwc_hwcf" if groups == 1 else "linalg.depthwise_conv_2d_nhwc_hwc"
    em.raw(f"{r} = {conv} {attrs} ins({d}, {wf} : {zt}, {em.types[wf]}) outs({out} : {ty}) -> {ty} {loc}")
    return em.declare(r, ty)


def _flipped_kernel(b: _B, w: str, groups: int) -> str:
    """`Wf[kh, kw, f, c] = W[KH-1-kh, KW-1-kw, c, f]` (depthwise: `Wf[kh, kw, c] = W[.., 0, c]`).

    Written as a gather (`tensor.extract` at computed indices) rather than an indexing map with
    negative coefficients, which IREE 3.13's reshape propagation mishandles."""
    kh, kw, cg, f = shape_from(b.em.types[w])
    dense = groups == 1
    shape = [kh, kw, f, cg] if dense else [kh, kw, f]
    body = [f"%t{i} = linalg.index {i} : index" for i in range(len(shape))]
    body += [f"%t{len(shape)} = arith.constant {kh - 1} : index",
             f"%t{len(shape) + 1} = arith.constant {kw - 1} : index",
             f"%t7 = arith.subi %t{len(shape)}, %t0 : index",
             f"%t8 = arith.subi %t{len(shape) + 1}, %t1 : index"]
    if dense:
        idx = "%t7, %t8, %t3, %t2"
    else:
        body.append("%t9 = arith.constant 0 : index")
        idx = "%t7, %t8, %t9, %t2"
    body.append(f"%res = tensor.extract {w}[{idx}] : {b.em.types[w]}")
    r = len(shape)
    return b.generic([], b.empty(shape), [_ident(r)], ["parallel"] * r, body)


def _conv2d_grad_weight(b: _B, op, ins, loc):
    x, dy = ins
    strides, padding, groups = _conv_attrs(op)
    kh, kw, cg, f = shape_of(op.results[0])
    xp = b.conv_input(x, padding, (kh, kw), shape_from(b.em.types[dy])[1:3], strides)
    sh, sw = strides
    mac = ["%t = arith.mulf %a0, %a1 : f32", "%res = arith.addf %acc, %t : f32"]
    if groups == 1:
        # dims: d0=kh d1=kw d2=c d3=f d4=n d5=oh d6=ow
        out = b.full([kh, kw, cg, f])
        maps = [_amap(7, ["d4", f"d5 * {sh} + d0", f"d6 * {sw} + d1", "d2"]),
                _amap(7, ["d4", "d5", "d6", "d3"]), _amap(7, ["d0", "d1", "d2", "d3"])]
        return b.generic([xp, dy], out, maps, ["parallel"] * 4 + ["reduction"] * 3, mac, loc)
    # depthwise: d0=kh d1=kw d2=c d3=n d4=oh d5=ow
    out = b.full([kh, kw, f])
    maps = [_amap(6, ["d3", f"d4 * {sh} + d0", f"d5 * {sw} + d1", "d2"]),
            _amap(6, ["d3", "d4", "d5", "d2"]), _amap(6, ["d0", "d1", "d2"])]
    r = b.generic([xp, dy], out, maps, ["parallel"] * 3 + ["reduction"] * 3, mac, loc)
    return b.reshape(r, [kh, kw, 1, f])


def _bias_grad(b: _B, op, ins, loc):
    (g,) = ins
    shape = shape_from(b.em.types[g])
    r = len(shape)
    out = b.full([shape[-1]])
    return b.generic([g], out, [_ident(r), _amap(r, [f"d{r - 1}"])],
                     ["reduction"] * (r - 1) + ["parallel"], ["%res = arith.addf %acc, %a0 : f32"], loc)


def _linear(b: _B, op, ins, loc):
    x, w, bias = ins
    n, o = shape_of(op.results[0])
    init = b.generic([bias], b.empty([n, o]), [_amap(2, ["d1"]), _ident(2)], ["parallel"] * 2, [])
    maps = [_amap(3, ["d0", "d2"]), _amap(3, ["d1", "d2"]), _amap(3, ["d0", "d1"])]
    return b.generic([x, w], init, maps, ["parallel", "parallel", "reduction"],
                     ["%t = arith.mulf %a0, %a1 : f32", "%res = arith.addf %acc, %t : f32"], loc)


def _linear_grad_input(b: _B, op, ins, loc):
    g, w = ins
    n, i = shape_of(op.results[0])
    maps = [_amap(3, ["d0", "d2"]), _amap(3, ["d2", "d1"]), _amap(3, ["d0", "d1"])]
    return b.generic([g, w], b.full([n, i]), maps, ["parallel", "parallel", "reduction"],
                     ["%t = arith.mulf %a0, %a1 : f32", "%res = arith.addf %acc, %t : f32"], loc)


def _linear_grad_weight(b: _B, op, ins, loc):
    x, g = ins
    o, i = shape_of(op.results[0])
    maps = [_amap(3, ["d2", "d1"]), _amap(3, ["d2", "d0"]), _amap(3, ["d0", "d1"])]
    return b.generic([x, g], b.full([o, i]), maps, ["parallel", "parallel", "reduction"],
                     ["%t = arith.mulf %a0, %a1 : f32", "%res = arith.addf %acc, %t : f32"], loc)


def _add(b, op, ins, loc):
    return b.ew(ins, ["%res = arith.addf %a0, %a1 : f32"], loc)


def _relu(b, op, ins, loc):
    z = b.cst(0.0)
    return b.ew(ins, [f"%res = arith.maximumf %a0, {z} : f32"], loc)


def _relu6(b, op, ins, loc):
    z, six = b.cst(0.0), b.cst(6.0)
    return b.ew(ins, [f"%t = arith.maximumf %a0, {z} : f32", f"%res = arith.minimumf %t, {six} : f32"], loc)


def _relu_grad(b, op, ins, loc):
    z = b.cst(0.0)
    return b.ew(ins, [f"%t = arith.cmpf ogt, %a0, {z} : f32", f"%res = arith.select %t, %a1, {z} : f32"], loc)


def _relu6_grad(b, op, ins, loc):
    z, six = b.cst(0.0), b.cst(6.0)
    return b.ew(ins, [f"%t1 = arith.cmpf ogt, %a0, {z} : f32", f"%t2 = arith.cmpf olt, %a0, {six} : f32",
                      "%t3 = arith.andi %t1, %t2 : i1", f"%res = arith.select %t3, %a1, {z} : f32"], loc)


def _global_avg_pool(b, op, ins, loc):
    (x,) = ins
    n, h, w, c = shape_from(b.em.types[x])
    s = b.generic([x], b.full([n, c]), [_ident(4), _amap(4, ["d0", "d3"])],
                  ["parallel", "reduction", "reduction", "parallel"], ["%res = arith.addf %acc, %a0 : f32"])
    hw = b.cst(float(h * w))
    return b.ew([s], [f"%res = arith.divf %a0, {hw} : f32"], loc)


def _global_avg_pool_grad(b, op, ins, loc):
    (g,) = ins
    n, h, w, c = shape_of(op.results[0])
    hw = b.cst(float(h * w))
    return b.generic([g], b.empty([n, h, w, c]), [_amap(4, ["d0", "d3"]), _ident(4)], ["parallel"] * 4,
                     [f"%res = arith.divf %a0, {hw} : f32"], loc)


def _reshape(b, op, ins, loc):
    return b.reshape(ins[0], shape_of(op.results[0]))


def _transpose(b, op, ins, loc):
    perm = list(ir.DenseI64ArrayAttr(op.attributes["permutation"]))
    shape = shape_of(op.results[0])
    out = b.empty(shape)
    n = b.em.fresh("tr")
    ty = tensor_type(shape)
    b.em.raw(f"{n} = linalg.transpose ins({ins[0]} : {b.em.types[ins[0]]}) outs({out} : {ty}) "
             f"permutation = [{', '.join(map(str, perm))}] {loc}")
    return b.em.declare(n, ty)


def _lse_parts(b: _B, z: str):
    """Row max `m[n]` and `s[n] = sum_k exp(z[n, k] - m[n])`."""
    n, _ = shape_from(b.em.types[z])
    m = b.generic([z], b.full([n], -np.inf), [_ident(2), _amap(2, ["d0"])], ["parallel", "reduction"],
                  ["%res = arith.maximumf %acc, %a0 : f32"])
    s = b.generic([z, m], b.full([n]), [_ident(2), _amap(2, ["d0"]), _amap(2, ["d0"])],
                  ["parallel", "reduction"],
                  ["%t1 = arith.subf %a0, %a1 : f32", "%t2 = math.exp %t1 : f32",
                   "%res = arith.addf %acc, %t2 : f32"])
    return m, s


def _label_is(dim: str = "1") -> list[str]:
    # %a<label> holds the i32 label; compares it with the class index of iteration dim `dim`.
    return [f"%t8 = linalg.index {dim} : index", "%t9 = arith.index_cast %LAB : i32 to index",
            "%t10 = arith.cmpi eq, %t8, %t9 : index"]


def _softmax_cross_entropy(b, op, ins, loc):
    z, lab = ins
    n, k = shape_from(b.em.types[z])
    m, s = _lse_parts(b, z)
    zero = b.cst(0.0)
    picked = b.generic([z, lab], b.full([n]), [_ident(2), _amap(2, ["d0"]), _amap(2, ["d0"])],
                       ["parallel", "reduction"],
                       [l.replace("%LAB", "%a1") for l in _label_is()] +
                       [f"%t11 = arith.select %t10, %a0, {zero} : f32", "%res = arith.addf %acc, %t11 : f32"])
    total = b.generic([m, s, picked], b.full([]), [_amap(1, ["d0"])] * 3 + [_amap(1, [])], ["reduction"],
                      ["%t1 = math.log %a1 : f32", "%t2 = arith.addf %a0, %t1 : f32",
                       "%t3 = arith.subf %t2, %a2 : f32", "%res = arith.addf %acc, %t3 : f32"])
    cnt = b.cst(float(n))
    return b.generic([total], b.empty([]), [_amap(0, []), _amap(0, [])], [],
                     [f"%res = arith.divf %a0, {cnt} : f32"], loc)


def _softmax_cross_entropy_grad(b, op, ins, loc):
    z, lab = ins
    n, k = shape_from(b.em.types[z])
    m, s = _lse_parts(b, z)
    one, zero, cnt = b.cst(1.0), b.cst(0.0), b.cst(float(n))
    maps = [_ident(2), _amap(2, ["d0"]), _amap(2, ["d0"]), _amap(2, ["d0"]), _ident(2)]
    return b.generic([z, m, s, lab], b.empty([n, k]), maps, ["parallel", "parallel"],
                     ["%t1 = arith.subf %a0, %a1 : f32", "%t2 = math.exp %t1 : f32",
                      "%t3 = arith.divf %t2, %a2 : f32"] +
                     [l.replace("%LAB", "%a3") for l in _label_is()] +
                     [f"%t11 = arith.select %t10, {one}, {zero} : f32", "%t12 = arith.subf %t3, %t11 : f32",
                      f"%res = arith.divf %t12, {cnt} : f32"], loc)


def _sgd_update(b, op, ins, loc):
    lr = float(ir.FloatAttr(op.attributes["lr"]).value)
    c = b.cst(lr)
    return b.ew(ins, [f"%t = arith.mulf {c}, %a1 : f32", "%res = arith.subf %a0, %t : f32"], loc)


_LOWERINGS = {
    "tinytrain.conv2d": _conv2d,
    "tinytrain.conv2d_grad_input": _conv2d_grad_input,
    "tinytrain.conv2d_grad_weight": _conv2d_grad_weight,
    "tinytrain.bias_grad": _bias_grad,
    "tinytrain.linear": _linear,
    "tinytrain.linear_grad_input": _linear_grad_input,
    "tinytrain.linear_grad_weight": _linear_grad_weight,
    "tinytrain.add": _add,
    "tinytrain.relu": _relu,
    "tinytrain.relu6": _relu6,
    "tinytrain.relu_grad": _relu_grad,
    "tinytrain.relu6_grad": _relu6_grad,
    "tinytrain.global_avg_pool": _global_avg_pool,
    "tinytrain.global_avg_pool_grad": _global_avg_pool_grad,
    "tinytrain.reshape": _reshape,
    "tinytrain.transpose": _transpose,
    "tinytrain.softmax_cross_entropy": _softmax_cross_entropy,
    "tinytrain.softmax_cross_entropy_grad": _softmax_cross_entropy_grad,
    "tinytrain.sgd_update": _sgd_update,
}


# ----------------------------------------------------------------------------------------------
# Module driver
# ----------------------------------------------------------------------------------------------


def _resource_key(name: str) -> str:
    return "param_" + re.sub(r"[^A-Za-z0-9_]", "_", name)


def _lower_func(name: str, func, values: dict | None, blobs: dict) -> str:
    em = Emitter()
    b = _B(em)
    names = {}
    sig = []
    for i, a in enumerate(func_args(func)):
        if values is not None and a.param and "tinytrain.trainable" not in a.attrs:
            if a.param not in values:
                raise CompileError(f"to-linalg: no value for frozen parameter '{a.param}'", stage="to-linalg")
            arr = np.ascontiguousarray(values[a.param], dtype=np.float32)
            if list(arr.shape) != shape_from(a.type):
                raise CompileError(f"to-linalg: value of '{a.param}' has shape {list(arr.shape)}, "
                                   f"the function expects {a.type}", stage="to-linalg")
            key = _resource_key(a.param)
            blobs[key] = arr
            n = em.fresh("w")
            em.raw(f"{n} = arith.constant dense_resource<{key}> : {a.type}")
            names[a.value] = em.declare(n, a.type)
            continue
        n = em.declare(f"%arg{i}", a.type)
        names[a.value] = n
        sig.append((n, a.type, a.attr_text()))
    ops = list(func.regions[0].blocks[0].operations)
    snapshots = _snapshot_tied_weights(b, func, ops, names)
    for op in ops[:-1]:
        ins = [names[v] for v in op.operands]
        if op.name in _SNAPSHOT_READERS:
            ins = [snapshots.get(v, n) for v, n in zip(op.operands, ins)]
        loc = str(op.location)
        if op.name == "arith.constant":
            em.copy(op, names)
            continue
        lower = _LOWERINGS.get(op.name)
        if lower is None:
            raise CompileError(f"to-linalg: no lowering for '{op.name}' at {loc}", stage="to-linalg")
        names[op.results[0]] = lower(b, op, ins, loc)
    results = [names[v] for v in ops[-1].operands]
    return em.function(name, sig, results)


# Ops that read a trained weight after the forward pass, and the update that overwrites it.
_SNAPSHOT_READERS = ("tinytrain.conv2d_grad_input", "tinytrain.linear_grad_input", "tinytrain.sgd_update")


def _snapshot_tied_weights(b: _B, func, ops, names) -> dict:
    """Copies of the tied (updated-in-place) weights that the backward pass reads.

    IREE 3.13 does not order a read of an `iree.abi.output` argument before the in-place write
    of its tied result unless the read is upstream of the write (found here; see
    tests/python/test_numerics.py::test_update_equals_sgd_on_gradients). The forward pass is
    upstream of every update, but an input-gradient op reading weight W is not upstream of W's
    update. So such a W is first copied (`x + 0.0`, which does not fold), the input-gradient op
    and the update both read the copy, and the update depends on the copy: the argument's storage
    is only overwritten after every read of it. The copy costs one transient buffer per such W.
    """
    tied = {a.value for a in func_args(func) if "iree.abi.output" in a.attrs}
    wanted = []
    for op in ops:
        if op.name in ("tinytrain.conv2d_grad_input", "tinytrain.linear_grad_input"):
            w = op.operands[1]
            if w in tied and w not in wanted:
                wanted.append(w)
    out = {}
    for w in wanted:
        z = b.cst(0.0)
        out[w] = b.ew([names[w]], [f"%res = arith.addf %a0, {z} : f32"])
    return out


class ToLinalgPass:
    """Lower every function of a tinytrain module to linalg-on-tensors."""

    name = "to-linalg"

    def __init__(self, values: dict[str, np.ndarray] | None = None):
        self.values = values

    def run(self, module, ctx):
        return parse_module(lower_to_linalg(module, self.values), ctx, stage=self.name)


def lower_to_linalg(module, values: dict[str, np.ndarray] | None = None) -> str:
    """The linalg module as text (frozen parameters inlined as blobs when `values` is given)."""
    blobs: dict[str, np.ndarray] = {}
    funcs = [_lower_func(name, f, values, blobs) for name, f in func_ops(module).items()]
    text = "module {\n" + "\n".join(funcs) + "\n}\n"
    if blobs:
        entries = ",\n".join(f"      {k}: \"{resource_blob(v)}\"" for k, v in blobs.items())
        text += "\n{-#\n  dialect_resources: {\n    builtin: {\n" + entries + "\n    }\n  }\n#-}\n"
    return text
