"""Checkpoints of the trained state in the C runtime's format (``runtime/include/tt/checkpoint.h``).

A checkpoint *record* is a 64-byte header, padding up to ``page_size`` bytes, then the payload:
the trained state exactly as it sits at the start of the device's arena (each trained
parameter 64-byte aligned, in ``train_step`` argument order, program layout: NHWC / HWIO; with
SGD momentum the f32 momentum buffers follow the parameters, so they are saved and restored
with them).
Header (little-endian)::

    0  magic "TTCK"      4  version u16 = 1     6  header bytes u16 = 64
    8  sequence u32     12  payload bytes u32   16  steps u64
    24 rejected steps u32                       28  model identity u32
    32 page size u32    36..59 zero             60  CRC-32 of bytes 0..59, then the payload

A device's NVM holds two records (slot A = first half, slot B = second half); the newest intact
one wins. :func:`read_checkpoint` reads both a device NVM image (e.g. the QEMU board's
``tt_nvm.bin``) and a single record written by :func:`save` (``CompiledModel.save_checkpoint``),
which writes a temporary file, flushes and fsyncs it, then renames it over the target, so a
crash leaves either the old or the new file.

The model identity is the CRC-32 of the state layout (state size; per parameter: offset, bytes,
dtype code, rank, shape): a checkpoint of another model is refused (``TT_ERR_CKPT_MODEL``).
"""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["CheckpointError", "Checkpoint", "StateLayout", "encode_record", "read_checkpoint",
           "save", "load", "state_dict_from_checkpoint"]

MAGIC = 0x4B435454
VERSION = 1
HEADER_BYTES = 64
ALIGN = 64
#: tt_dtype_t codes of runtime/include/tt/model.h
DTYPE_CODES = {"float32": 0, "int32": 1, "int8": 2, "uint8": 3, "float16": 4, "int16": 5,
               "int64": 6, "float64": 7, "bool": 8}
_HEADER = struct.Struct("<IHHIIQIII24x")  # without the trailing CRC


class CheckpointError(ValueError):
    """A checkpoint was refused; ``status`` is the runtime's status name for the same cause
    (``TT_ERR_NO_CHECKPOINT``, ``TT_ERR_CKPT_CORRUPT``, ``TT_ERR_CKPT_MODEL``, ``TT_ERR_NONFINITE``)."""

    def __init__(self, message: str, status: str):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class StateLayout:
    """Where each trained parameter sits in the state: ``(offset, bytes, dtype, shape)``."""

    entries: tuple
    state_size: int

    @classmethod
    def from_arrays(cls, params) -> "StateLayout":
        """The layout the compiler plans for these program-layout parameters (each 64-B aligned)."""
        entries, off = [], 0
        for p in params:
            a = np.asarray(p)
            entries.append((off, a.nbytes, a.dtype.name, tuple(int(d) for d in a.shape)))
            off += -(-a.nbytes // ALIGN) * ALIGN
        return cls(tuple(entries), off)

    @classmethod
    def from_firmware(cls, fw) -> "StateLayout":
        """The layout of a built firmware (``Firmware.state``)."""
        return cls(tuple((s["offset"], s["length"], np.dtype(s["dtype"]).name, tuple(s["shape"]))
                         for s in fw.state), fw.state_bytes)

    def model_id(self) -> int:
        """CRC-32 of the layout, computed as ``tt_checkpoint_model_id`` does."""
        words = [self.state_size, len(self.entries)]
        for off, length, dtype, shape in self.entries:
            words += [off, length, DTYPE_CODES[dtype], len(shape), *shape]
        return zlib.crc32(struct.pack(f"<{len(words)}I", *words))

    def pack(self, params) -> bytes:
        if len(params) != len(self.entries):
            raise ValueError(f"{len(params)} parameters given, the layout has {len(self.entries)}")
        buf = bytearray(self.state_size)
        for i, ((off, length, dtype, shape), p) in enumerate(zip(self.entries, params)):
            a = np.ascontiguousarray(p, dtype=dtype)
            if tuple(a.shape) != shape:
                raise ValueError(f"parameter {i}: shape {tuple(a.shape)}, the layout has {shape}")
            buf[off:off + length] = a.tobytes()
        return bytes(buf)

    def unpack(self, payload: bytes) -> list:
        return [np.frombuffer(payload[off:off + length], dtype=dtype).reshape(shape).copy()
                for off, length, dtype, shape in self.entries]


@dataclass
class Checkpoint:
    sequence: int
    steps: int
    rejected_steps: int
    model_id: int
    page_size: int
    payload: bytes
    slot: str | None = None   # "A" / "B" for a device NVM image, None for a single record
    slot_status: tuple = ()   # per slot of an image: the runtime status name


def encode_record(payload: bytes, model_id: int, *, sequence: int = 1, steps: int = 0,
                  rejected_steps: int = 0, page_size: int = HEADER_BYTES) -> bytes:
    """One checkpoint record (header, padding to ``page_size``, payload)."""
    if page_size < HEADER_BYTES:
        raise ValueError(f"page_size {page_size} < {HEADER_BYTES}")
    head = _HEADER.pack(MAGIC, VERSION, HEADER_BYTES, sequence & 0xFFFFFFFF, len(payload), steps,
                        rejected_steps, model_id, page_size)
    crc = zlib.crc32(payload, zlib.crc32(head))
    return head + struct.pack("<I", crc) + b"\xff" * (page_size - HEADER_BYTES) + payload


def _decode(buf: bytes, base: int, limit: int) -> tuple[str, Checkpoint | None]:
    """Status name and record of the slot at ``buf[base:limit]``."""
    head = buf[base:base + HEADER_BYTES]
    if len(head) < HEADER_BYTES:
        return "TT_ERR_CKPT_CORRUPT", None
    if head == b"\xff" * HEADER_BYTES:
        return "TT_ERR_NO_CHECKPOINT", None
    magic, version, hbytes, seq, n, steps, rejected, mid, page = _HEADER.unpack(head[:60])
    if magic != MAGIC or version != VERSION or hbytes != HEADER_BYTES or page < HEADER_BYTES:
        return "TT_ERR_CKPT_CORRUPT", None
    start = base + page
    if start + n > limit:
        return "TT_ERR_CKPT_CORRUPT", None
    payload = bytes(buf[start:start + n])
    if zlib.crc32(payload, zlib.crc32(head[:60])) != struct.unpack("<I", head[60:])[0]:
        return "TT_ERR_CKPT_CORRUPT", None
    return "TT_OK", Checkpoint(seq, steps, rejected, mid, page, payload)


def _newer(a: int, b: int) -> bool:
    """Sequence ``a`` is newer than ``b`` (serial-number order, as the runtime)."""
    return 0 < (a - b) & 0xFFFFFFFF < 0x80000000


def read_checkpoint(source, model_id: int | None = None) -> Checkpoint:
    """The newest intact checkpoint in ``source`` (a path or bytes): a single record, or a
    device NVM image with slots A and B. With ``model_id``, slots of another model do not count.
    Raises :class:`CheckpointError` as the runtime's restore would refuse it."""
    data = Path(source).read_bytes() if isinstance(source, (str, os.PathLike)) else bytes(source)
    status, rec = _decode(data, 0, len(data))
    if status == "TT_OK" and rec.page_size + len(rec.payload) == len(data):
        statuses, found = (status,), [rec]
    else:
        half = len(data) // 2
        found, statuses = [], []
        for s, base in enumerate((0, half)):
            st, r = _decode(data, base, base + half)
            if r is not None:
                r.slot = "AB"[s]
            found.append(r)
            statuses.append(st)
    best, wrong_model = None, False
    for r in found:
        if r is None:
            continue
        if model_id is not None and r.model_id != model_id:
            wrong_model = True
            continue
        if best is None or _newer(r.sequence, best.sequence):
            best = r
    if best is None:
        if wrong_model:
            raise CheckpointError("the checkpoint belongs to a model with another parameter "
                                  "layout (model identity differs)", "TT_ERR_CKPT_MODEL")
        if all(s == "TT_ERR_NO_CHECKPOINT" for s in statuses):
            raise CheckpointError("no checkpoint saved yet (erased)", "TT_ERR_NO_CHECKPOINT")
        raise CheckpointError(f"no intact checkpoint (slot status: {', '.join(statuses)})",
                              "TT_ERR_CKPT_CORRUPT")
    best.slot_status = tuple(statuses)
    return best


def _layout(prog) -> StateLayout:
    fw = getattr(prog, "firmware", None)
    return StateLayout.from_firmware(fw) if fw is not None else \
        StateLayout.from_arrays(prog.program_params())


def save(prog, path, *, steps: int = 0) -> Path:
    """Write ``prog``'s trained parameters as one checkpoint record, atomically: a temporary
    file in the same folder, flushed and fsynced, then renamed over ``path`` (and the folder
    fsynced). The sequence continues the one already at ``path``, if any."""
    path = Path(path)
    params = prog.program_params()
    if not all(np.isfinite(p).all() for p in params):
        raise CheckpointError("the trained parameters hold NaN or Inf: not saved",
                              "TT_ERR_NONFINITE")
    layout = _layout(prog)
    seq = 1
    if path.exists():
        try:
            seq = read_checkpoint(path).sequence + 1
        except CheckpointError:
            pass
    data = encode_record(layout.pack(params), layout.model_id(), sequence=seq, steps=steps)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    try:
        fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return path
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return path


def state_dict_from_checkpoint(prog, source) -> dict:
    """The checkpoint's parameters (and momentum buffers) as a PyTorch ``state_dict`` (names and
    layout of ``prog.state_dict()``, i.e. of the original model after BN folding)."""
    return _state_dict(prog, _layout(prog).unpack(_read_for(prog, source).payload))


def _read_for(prog, source) -> Checkpoint:
    return read_checkpoint(source, model_id=_layout(prog).model_id())


def _state_dict(prog, arrays) -> dict:
    import torch

    from tinytrain.lowering.conversions.torch_to_tinytrain import to_torch_layout

    return {k: torch.from_numpy(to_torch_layout(a, prog.layouts[k]).copy())
            for k, a in zip(prog.state_names, arrays)}


def load(prog, source) -> Checkpoint:
    """Load the newest intact checkpoint of ``source`` (a host record or a device NVM image)
    into ``prog``; returns it (``steps``, ``sequence``, ``slot``). Refused checkpoints raise
    :class:`CheckpointError` and leave ``prog`` unchanged."""
    ckpt = _read_for(prog, source)
    arrays = _layout(prog).unpack(ckpt.payload)
    if not all(np.isfinite(a).all() for a in arrays if a.dtype.kind == "f"):
        raise CheckpointError("the checkpoint holds NaN or Inf", "TT_ERR_NONFINITE")
    prog.load_state_dict(_state_dict(prog, arrays))
    return ckpt
