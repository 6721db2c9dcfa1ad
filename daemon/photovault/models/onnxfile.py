"""Where an ONNX file keeps its lookup tables, read without loading the file.

A CLIP text tower's token embedding (49,408 x 512 floats, 101 MB) is read one
row per token: a query touches a few KB of it. Loaded as usual it is copied
into vaultd's heap whole and stays there while the tower is kept warm for
searches; mapped from the file instead (``session.py`` hands it to
onnxruntime as an initializer that overrides the file's copy) only the rows
used are resident, and as clean file pages the kernel can drop. This module
finds such tensors: initializers of at least ``min_bytes`` stored as
``raw_data`` whose only use is as the table (input 0) of ``Gather`` nodes.

It walks the protobuf wire format of ``ModelProto`` (graph = 7; in the graph
node = 1 and initializer = 5; in a node input = 1 and op_type = 4; in a tensor
dims = 1, data_type = 2, name = 8, raw_data = 9) over an ``mmap`` of the
file, so only the headers are read, never the weights.
"""

from __future__ import annotations

import mmap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

#: ONNX TensorProto data types a table may have -> numpy dtype (little endian).
DTYPES = {1: "<f4", 10: "<f2", 11: "<f8", 2: "u1", 3: "i1", 6: "<i4", 7: "<i8"}

_GRAPH, _NODE, _INITIALIZER = 7, 1, 5
_NODE_INPUT, _NODE_OP = 1, 4
_DIMS, _DTYPE, _NAME, _RAW = 1, 2, 8, 9


@dataclass(frozen=True)
class RawTensor:
    """An initializer's bytes inside the model file."""

    name: str
    offset: int
    nbytes: int
    shape: tuple[int, ...]
    dtype: str  # numpy's spelling


def _varint(buf: mmap.mmap, pos: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def _fields(buf: mmap.mmap, start: int, end: int) -> Iterator[tuple[int, int, int, int]]:
    """(field number, wire type, a, b) per field in buf[start:end]: for a varint
    a is the value, for a length-delimited field a:b is its payload."""
    pos = start
    while pos < end:
        key, pos = _varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
            yield field, wire, value, pos
        elif wire == 2:
            size, pos = _varint(buf, pos)
            yield field, wire, pos, pos + size
            pos += size
        elif wire == 1:
            yield field, wire, pos, pos + 8
            pos += 8
        elif wire == 5:
            yield field, wire, pos, pos + 4
            pos += 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire} at byte {pos}")


def _text(buf: mmap.mmap, a: int, b: int) -> str:
    return bytes(buf[a:b]).decode("utf-8", "replace")


def _tensor(buf: mmap.mmap, a: int, b: int) -> RawTensor | None:
    name, dims, dtype, raw = "", [], 0, None
    for field, wire, x, y in _fields(buf, a, b):
        if field == _DIMS and wire == 0:
            dims.append(x)
        elif field == _DIMS and wire == 2:  # packed
            pos = x
            while pos < y:
                dim, pos = _varint(buf, pos)
                dims.append(dim)
        elif field == _DTYPE and wire == 0:
            dtype = x
        elif field == _NAME and wire == 2:
            name = _text(buf, x, y)
        elif field == _RAW and wire == 2:
            raw = (x, y - x)
    if not name or raw is None or dtype not in DTYPES:
        return None
    return RawTensor(name, raw[0], raw[1], tuple(dims), DTYPES[dtype])


def lookup_tables(path: Path | str, min_bytes: int = 16 << 20) -> list[RawTensor]:
    """Initializers of at least `min_bytes` used only as a Gather's table.

    [] for a file that is not a model this walk understands (external data,
    tensors without raw_data, another layout): the caller loads it as usual.
    """
    big: dict[str, RawTensor] = {}
    uses: dict[str, set[tuple[str, int]]] = {}
    try:
        with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            for field, wire, a, b in _fields(buf, 0, len(buf)):
                if field != _GRAPH or wire != 2:
                    continue
                for gfield, gwire, x, y in _fields(buf, a, b):
                    if gwire != 2:
                        continue
                    if gfield == _INITIALIZER and y - x >= min_bytes:
                        tensor = _tensor(buf, x, y)
                        if tensor is not None and tensor.nbytes >= min_bytes:
                            big[tensor.name] = tensor
                    elif gfield == _NODE:
                        op, inputs = "", []
                        for nfield, nwire, p, q in _fields(buf, x, y):
                            if nfield == _NODE_INPUT and nwire == 2:
                                inputs.append(_text(buf, p, q))
                            elif nfield == _NODE_OP and nwire == 2:
                                op = _text(buf, p, q)
                        for index, name in enumerate(inputs):
                            uses.setdefault(name, set()).add((op, index))
    except (OSError, ValueError, IndexError):
        return []
    return [
        t
        for name, t in big.items()
        if uses.get(name) == {("Gather", 0)}
        and int(_count(t.shape)) * _itemsize(t.dtype) == t.nbytes
    ]


def _count(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def _itemsize(dtype: str) -> int:
    return int(dtype[-1])
