"""Emit one C module (tables + constant pool) for a static schedule (see hal2c.py).

Output: ``<prefix>_model.c`` defining ``const tt_model_desc_t <prefix>_model`` (command, binding
and push-constant tables, export names, I/O descriptors, the 64-byte aligned constant pool and
the initial trained parameters, all ``const`` = flash) and ``<prefix>_model.h`` with the sizes
(arena, pool, state, input, label, output) the caller needs to allocate its buffers.

Arena layout: ``[state: trained parameters][persistent][transient]``; the schedule's arena
offsets are shifted by the state size. An input placed in the transient arena
(``input_overlay.py``) has an ARENA reference in its I/O descriptor and the header names its
offset per function (``<P>_TRAIN_INPUT_OFFSET``, ``<P>_PREDICT_INPUT_OFFSET``,
``TT_MODEL_INPUT_IN_ARENA``). A streamed input (``input_stream.py``) stays the caller's argument;
its read-input copies are ``TT_CMD_READ_INPUT`` commands and the header defines
``TT_MODEL_INPUT_STREAMED``. The trained parameters are the arguments of
``train_step`` that are tied to its results and must come first (interface contract).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .schedule_model import ALIGN, Schedule, Unsupported, _align

REGION = {"arena": "TT_REGION_ARENA", "pool": "TT_REGION_POOL", "arg": "TT_REGION_ARG"}
DTYPE = {"f32": "TT_DTYPE_F32", "i32": "TT_DTYPE_I32", "i8": "TT_DTYPE_I8", "ui8": "TT_DTYPE_U8",
         "f16": "TT_DTYPE_F16", "i16": "TT_DTYPE_I16", "i64": "TT_DTYPE_I64",
         "f64": "TT_DTYPE_F64", "i1": "TT_DTYPE_I1"}


@dataclass
class StateSlot:
    index: int
    offset: int
    length: int
    shape: tuple


def plan_state(schedule: Schedule, train: str) -> list:
    """Trained parameters = ``train`` inputs tied to outputs; they must be the first inputs."""
    try:
        fn = schedule.function(train)
    except KeyError:
        return []
    tied = sorted({o.tied_input for o in fn.outputs if o.tied_input >= 0})
    if tied != list(range(len(tied))):
        raise Unsupported(f"@{train}: tied (trained) arguments {tied} must be the first arguments")
    slots, off = [], 0
    for i in tied:
        slots.append(StateSlot(i, off, fn.inputs[i].length, fn.inputs[i].shape))
        off += _align(fn.inputs[i].length)
    return slots


def state_bytes(slots: list) -> int:
    """Arena bytes of the trained parameters' slots (:func:`plan_state`), at the arena's start."""
    return sum(_align(s.length) for s in slots)


def _bytes_c(data: bytes) -> str:
    if not data:
        return "0"
    hexes = [f"0x{b:02x}" for b in data]
    return ",\n".join(", ".join(hexes[i:i + 16]) for i in range(0, len(hexes), 16))


def _ref(kind: str, index: int, offset: int, length: int) -> str:
    return f"{{{REGION[kind]}, {index}u, {offset}u, {length}u}}"


def emit(schedule: Schedule, exports: list, prefix: str, *, train: str = "train_step",
         predict: str = "predict", state_init: list | None = None,
         unaligned: dict | None = None) -> tuple[str, str, dict]:
    """Return (C source, header, sizes) for ``schedule``.

    ``exports`` is the library's export table (abi_check.Export list). ``state_init`` are the
    initial trained parameters (numpy arrays, in argument order) or None (zeros). ``unaligned``:
    export name -> bit mask of the bindings its kernel needs not 64-byte aligned
    (:func:`dispatch_memory.unaligned_bindings`; missing: all aligned, checked at init).
    """
    unaligned = unaligned or {}
    state = plan_state(schedule, train)
    state_size = state_bytes(state)
    by_name = {e.name: e for e in exports}

    def arena_off(al, off):
        return al.offset + off + state_size

    used = schedule.exports
    export_rows, export_index = [], {}
    for name in used:
        if name not in by_name:
            raise Unsupported(f"kernel {name} is scheduled but not exported by the library")
        e = by_name[name]
        export_index[name] = len(export_rows)
        export_rows.append(e)

    cmds, refs, consts, fns, ios = [], [], [], [], []
    for fn in schedule.functions:
        cmd_first = len(cmds)
        for c in fn.commands:
            ref_first = len(refs)
            for k, r in enumerate(c.refs):
                al = r.alloc
                off = (arena_off(al, r.offset) if al.kind == "arena"
                       else al.offset + r.offset if al.kind == "pool" else r.offset)
                if c.op == "dispatch" and off % ALIGN and not (unaligned.get(c.export, 0) >> k) & 1:
                    raise Unsupported(f"{c.export}: binding {k} at byte {off} is not {ALIGN}-byte aligned "
                                      "and its kernel does not declare that it may be")
                refs.append(_ref(al.kind, max(al.arg, 0), off, r.length))
            if c.op == "dispatch":
                e = by_name[c.export]
                if e.binding_count not in (0, len(c.refs)) or e.constant_count not in (0, len(c.constants)):
                    raise Unsupported(f"{c.export}: schedule binds {len(c.refs)} buffers / "
                                      f"{len(c.constants)} constants, library declares "
                                      f"{e.binding_count} / {e.constant_count}")
                cmds.append(f"{{TT_CMD_DISPATCH, {len(c.refs)}u, {len(c.constants)}u, "
                            f"{export_index[c.export]}u, 0u, 0u, "
                            f"{{{c.workgroups[0]}u, {c.workgroups[1]}u, {c.workgroups[2]}u}}, "
                            f"{ref_first}u, {len(consts)}u}}, /* {c.export} */")
                consts.extend(int(v) & 0xFFFFFFFF for v in c.constants)
            elif c.op == "fill":
                cmds.append(f"{{TT_CMD_FILL, 1u, 0u, 0u, {c.pattern_length}u, "
                            f"0x{c.pattern & 0xFFFFFFFF:08x}u, {{0u, 0u, 0u}}, {ref_first}u, 0u}},")
            else:
                # a read-input copy (input_stream.py): from the caller's buffer or its input reader
                op = "TT_CMD_READ_INPUT" if c.stream_read else "TT_CMD_COPY"
                cmds.append(f"{{{op}, 2u, 0u, 0u, 0u, 0u, {{0u, 0u, 0u}}, {ref_first}u, 0u}},")
        io_first = len(ios)
        for i, d in enumerate(fn.inputs):
            if d.buf is not None and d.buf.alloc.kind == "arena":
                # placed inside the transient arena (input_overlay.py): the caller writes it there
                ios.append(_io(_ref("arena", 0, arena_off(d.buf.alloc, d.buf.offset), d.length), d, -1))
            else:
                ios.append(_io(_ref("arg", i, 0, d.length), d, -1))
        for d in fn.outputs:
            b = d.buf
            off = (arena_off(b.alloc, b.offset) if b.alloc.kind == "arena"
                   else b.alloc.offset + b.offset if b.alloc.kind == "pool" else b.offset)
            ios.append(_io(_ref(b.alloc.kind, max(b.alloc.arg, 0), off, b.length), d, d.tied_input))
        fns.append((fn.name, cmd_first, len(cmds) - cmd_first, len(fn.inputs), len(fn.outputs), io_first))

    names = [f.name for f in schedule.functions]
    p = prefix
    out = [f"/* Generated by tinytrain.lowering.cortexm.schedule_c for IREE library '{schedule.library}'."
           " Do not edit. */",
           "#include <stdint.h>", '#include "tt/model.h"', f'#include "{p}_model.h"', "",
           f"extern const tt_iree_library_header_t** {schedule.library}_library_query(",
           "    uint32_t max_version, const tt_iree_environment_t* environment);", "",
           f"TT_ABI_CHECK_(TT_IREE_ABI_VERSION == {6}u, \"schedule generated for ABI v6\");", ""]
    pool = schedule.pool
    out.append(f"static const uint8_t {p}_pool[{max(len(pool), 1)}] TT_ALIGNED({ALIGN}) = {{\n{_bytes_c(pool)}}};")
    init_bytes = b""
    if state_init is not None:
        if len(state_init) != len(state):
            raise ValueError(f"{len(state_init)} initial parameters given, {train} trains {len(state)}")
        for s, arr in zip(state, state_init):
            raw = np.ascontiguousarray(arr).tobytes()
            if len(raw) != s.length:
                raise ValueError(f"initial parameter {s.index} has {len(raw)} bytes, needs {s.length}")
            init_bytes += raw + bytes(_align(len(raw)) - len(raw))
        out.append(f"static const uint8_t {p}_state_init[{max(len(init_bytes), 1)}] "
                   f"TT_ALIGNED({ALIGN}) = {{\n{_bytes_c(init_bytes)}}};")
    out.append(f"static const tt_ref_t {p}_state[{max(len(state), 1)}] = {{"
               + ", ".join(_ref("arena", 0, s.offset, s.length) for s in state) + "};")
    out.append(f"static const tt_export_t {p}_exports[{max(len(export_rows), 1)}] = {{\n"
               + "\n".join(f'  {{"{e.name}", {e.ordinal}u, {e.binding_count}u, {e.constant_count}u, '
                           f'0x{unaligned.get(e.name, 0):x}u}},' for e in export_rows) + "\n};")
    out.append(f"static const tt_cmd_t {p}_cmds[{max(len(cmds), 1)}] = {{\n  " + "\n  ".join(cmds) + "\n};")
    out.append(f"static const tt_ref_t {p}_refs[{max(len(refs), 1)}] = {{\n  " + ",\n  ".join(refs) + "\n};")
    out.append(f"static const uint32_t {p}_constants[{max(len(consts), 1)}] = {{"
               + (", ".join(f"{c}u" for c in consts) or "0u") + "};")
    out.append(f"static const tt_io_t {p}_io[{max(len(ios), 1)}] = {{\n  " + ",\n  ".join(ios) + "\n};")
    out.append(f"static const tt_function_t {p}_functions[{len(fns)}] = {{")
    for name, cf, cc, ni, no, iof in fns:
        out.append(f'  {{"{name}", {cf}u, {cc}u, {ni}u, {no}u, &{p}_io[{iof}], &{p}_io[{iof + ni}]}},')
    out.append("};")
    arena_size = schedule.arena_size + state_size
    out += [f"const tt_model_desc_t {p}_model = {{",
            f'  TT_IREE_ABI_VERSION, "{schedule.library}", {schedule.library}_library_query,',
            f"  {p}_pool, {len(pool)}u, {arena_size}u, {state_size}u,",
            f"  {p + '_state_init' if state_init is not None else 'NULL'}, {len(state)}u, {p}_state,",
            f"  {len(export_rows)}u, {p}_exports, {p}_cmds, {p}_refs, {p}_constants,",
            f"  {len(fns)}u, {p}_functions,",
            f"  {names.index('__init') if '__init' in names else -1}, "
            f"{names.index(train) if train in names else -1}, "
            f"{names.index(predict) if predict in names else -1},", "};", ""]

    sizes = {"arena": arena_size, "pool": len(pool), "state": state_size,
             "input": 0, "label": 0, "output": 0, "params": len(state)}
    if train in names:
        tf = schedule.function(train)
        if len(tf.inputs) != len(state) + 2:
            raise Unsupported(f"@{train} must take (trained params..., input, label); it has "
                              f"{len(tf.inputs)} arguments and {len(state)} trained params")
        sizes["input"], sizes["label"] = tf.inputs[-2].length, tf.inputs[-1].length
    out_dtype = "f32"
    if predict in names:
        sizes["output"] = schedule.function(predict).outputs[0].length
        out_dtype = schedule.function(predict).outputs[0].dtype
        if not sizes["input"]:
            sizes["input"] = schedule.function(predict).inputs[-1].length
    P = p.upper()
    placed = schedule.placements.get("input")
    overlay, generic = [], []
    if placed is not None and placed.in_arena:
        # The input lives inside the arena (input_overlay.py): the caller writes it there. A
        # missing function's macro names the other's place (its call fails before reading it).
        offs = {f: o + state_size for f, o in placed.offsets.items()}
        for kind, fname in (("TRAIN", train), ("PREDICT", predict)):
            off = offs.get(fname, next(iter(offs.values())))
            sizes[f"{kind.lower()}_input_offset"] = off
            overlay.append(f"#define {P}_{kind}_INPUT_OFFSET {off}u  /**< {fname}'s input: "
                           "write it at this arena offset */")
            generic.append(f"#define TT_MODEL_{kind}_INPUT_OFFSET {P}_{kind}_INPUT_OFFSET")
        overlay.insert(0, "/** The input lives inside the transient arena (bytes no command uses "
                          "before its last read). */")
        generic.insert(0, "#define TT_MODEL_INPUT_IN_ARENA 1")
    stream = schedule.placements.get("input_stream")
    if stream is not None and stream.streamed:
        overlay.append("/** The input is streamed (input_stream.py): read-input commands copy the ranges "
                       "each kernel loads from the caller's buffer or its input reader "
                       "(tt_model_set_input_reader). */")
        generic.insert(0, "#define TT_MODEL_INPUT_STREAMED 1")
    hdr = ["/* Generated by tinytrain.lowering.cortexm.schedule_c. Do not edit. */",
           f"#ifndef {P}_MODEL_H_", f"#define {P}_MODEL_H_", '#include "tt/model.h"', "",
           "/** Bytes of 64-byte aligned arena for tt_model_init (state + working set). */",
           f"#define {P}_ARENA_SIZE {arena_size}u",
           f"#define {P}_POOL_SIZE {len(pool)}u   /**< constant pool bytes (flash) */",
           f"#define {P}_STATE_SIZE {state_size}u  /**< trained parameter bytes (arena start) */",
           f"#define {P}_PARAM_COUNT {len(state)}u",
           f"#define {P}_INPUT_SIZE {sizes['input']}u  /**< train/predict input bytes */",
           f"#define {P}_LABEL_SIZE {sizes['label']}u  /**< train label bytes */",
           f"#define {P}_OUTPUT_SIZE {sizes['output']}u  /**< predict output bytes */",
           f"#define {P}_OUTPUT_DTYPE {DTYPE[out_dtype]}  /**< predict output element type */",
           *overlay, "",
           f"extern const tt_model_desc_t {p}_model;", "",
           "/* Generic names for the firmware harness. */",
           "#ifndef TT_MODEL_DESC", f"#define TT_MODEL_DESC {p}_model",
           f"#define TT_MODEL_ARENA_SIZE {P}_ARENA_SIZE", f"#define TT_MODEL_STATE_SIZE {P}_STATE_SIZE",
           f"#define TT_MODEL_INPUT_SIZE {P}_INPUT_SIZE", f"#define TT_MODEL_LABEL_SIZE {P}_LABEL_SIZE",
           f"#define TT_MODEL_OUTPUT_SIZE {P}_OUTPUT_SIZE", f"#define TT_MODEL_OUTPUT_DTYPE {P}_OUTPUT_DTYPE",
           *generic,
           "#endif", "", f"#endif /* {P}_MODEL_H_ */", ""]
    return "\n".join(out), "\n".join(hdr), sizes


def _io(ref: str, d, tied: int) -> str:
    shape = list(d.shape) + [0] * (6 - len(d.shape))
    if len(d.shape) > 6:
        raise Unsupported(f"tensor rank {len(d.shape)} > 6")
    if d.dtype not in DTYPE:
        raise Unsupported(f"element type {d.dtype} not supported on the device")
    return (f"{{{ref}, {DTYPE[d.dtype]}, {len(d.shape)}u, {tied}, "
            f"{{{', '.join(f'{s}u' for s in shape)}}}}}")
