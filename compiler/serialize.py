"""Write a model straight from its numpy weight buffers.

The protobuf fields around the weights are laid out by hand, so a 1 GB model costs one pass over
its bytes (as np.save does) instead of copies into a ModelProto and a SerializeToString of it.
Over 2 GB (the protobuf limit) the weights go to FILE.data as ONNX external data instead.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import onnx

from .emit import ONNX_DTYPES
from .ir import WeightSlot

GRAPH = onnx.ModelProto.DESCRIPTOR.fields_by_name["graph"].number               # 7
INITIALIZER = onnx.GraphProto.DESCRIPTOR.fields_by_name["initializer"].number    # 5
RAW_DATA = onnx.TensorProto.DESCRIPTOR.fields_by_name["raw_data"].number         # 9
ALIGN = 64  # external data offsets, so a reader may memory-map tensors aligned


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def length_delimited(field: int, length: int) -> bytes:
    """The tag and length of a length-delimited field (wire type 2)."""
    return varint(field << 3 | 2) + varint(length)


def split_around(message: "onnx.ModelProto | onnx.GraphProto", number: int) -> tuple[bytes, bytes]:
    """The message's fields numbered below and above `number`, serialized: protobuf writes fields in
    number order, so low + (field `number`) + high is byte for byte what SerializeToString would give."""
    low, high = type(message)(), type(message)()
    low.CopyFrom(message)
    high.CopyFrom(message)
    for field in message.DESCRIPTOR.fields:
        (high if field.number < number else low).ClearField(field.name)
        if field.number == number:
            high.ClearField(field.name)
    return low.SerializeToString(), high.SerializeToString()


def _tensor_head(slot: WeightSlot, array: np.ndarray, external: tuple[str, int] | None) -> onnx.TensorProto:
    tensor = onnx.TensorProto(name=slot.name, data_type=ONNX_DTYPES[slot.type.dtype], dims=array.shape)
    if external is not None:
        location, offset = external
        tensor.data_location = onnx.TensorProto.EXTERNAL
        for key, value in (("location", location), ("offset", str(offset)), ("length", str(array.nbytes))):
            tensor.external_data.add(key=key, value=value)
    return tensor


def copy_except(message: Any, skip: str) -> Any:
    """A copy of a message without one (large) field, without copying that field first."""
    out = type(message)()
    for field in message.DESCRIPTOR.fields:
        if field.name == skip:
            continue
        value = getattr(message, field.name)
        if field.is_repeated:
            getattr(out, field.name).extend(value)
        elif message.HasField(field.name):
            if field.type == field.TYPE_MESSAGE:
                getattr(out, field.name).CopyFrom(value)
            else:
                setattr(out, field.name, value)
    return out


Tensor = tuple[onnx.TensorProto, Any]  # an initializer without raw_data, and its bytes (None: external data)


def _write_protobuf(f: BinaryIO, model: onnx.ModelProto, graph: onnx.GraphProto, tensors: list[Tensor]) -> None:
    """`model` (without its graph) holding `graph` (without initializers) holding `tensors`, in field order."""
    model_low, model_high = split_around(model, GRAPH)
    graph_low, graph_high = split_around(graph, INITIALIZER)
    parts = []
    for head, raw in tensors:
        low, high = split_around(head, RAW_DATA)
        middle = b"" if raw is None else length_delimited(RAW_DATA, len(raw))
        parts.append((low, middle, raw, high, len(low) + len(middle) + (0 if raw is None else len(raw)) + len(high)))
    graph_size = len(graph_low) + len(graph_high) + sum(len(length_delimited(INITIALIZER, n)) + n
                                                        for *_, n in parts)
    f.write(model_low)
    f.write(length_delimited(GRAPH, graph_size))
    f.write(graph_low)
    for low, middle, raw, high, size in parts:
        f.write(length_delimited(INITIALIZER, size))
        f.write(low)
        if raw is not None:
            f.write(middle)
            f.write(raw)
        f.write(high)
    f.write(graph_high)
    f.write(model_high)


def write_model(path: str | os.PathLike, proto: onnx.ModelProto, slots: list[WeightSlot],
                arrays: dict[str, np.ndarray], external: bool) -> None:
    """Write `proto` (whose weights are still typed graph inputs) with the arrays as initializers, atomically."""
    path = Path(path)
    names = {s.name for s in slots}
    model = copy_except(proto, "graph")
    graph = copy_except(proto.graph, "input")
    graph.input.extend(i for i in proto.graph.input if i.name not in names)
    buffers = [_little_endian_bytes(arrays[s.name]) for s in slots]
    data_name = path.name + ".data"
    offsets, end = [], 0
    for b in buffers:
        offsets.append(end)
        end = -(-(end + len(b)) // ALIGN) * ALIGN
    tensors = [(_tensor_head(s, arrays[s.name], (data_name, o) if external else None), None if external else b)
               for s, b, o in zip(slots, buffers, offsets)]
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp_data = path.with_name(f".{data_name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            _write_protobuf(f, model, graph, tensors)
        if external:
            with open(tmp_data, "wb") as f:
                for b, offset in zip(buffers, offsets):
                    f.seek(offset)
                    f.write(b)
                f.truncate(end)
            os.replace(tmp_data, path.with_name(data_name))
        os.replace(tmp, path)
    finally:
        for t in (tmp, tmp_data):
            if t.exists():
                t.unlink()


def write_attached(path: str | os.PathLike, proto: onnx.ModelProto) -> bool:
    """Write a ModelProto whose weights are attached, taking each tensor's raw bytes as they are
    instead of serializing the whole model in memory first. Byte for byte what onnx.save writes.
    Returns False, writing nothing, when some initializer is not plain raw data."""
    initializers = list(proto.graph.initializer)
    if any(t.data_location != onnx.TensorProto.DEFAULT or not t.HasField("raw_data") for t in initializers):
        return False
    path = Path(path)
    tensors = [(copy_except(t, "raw_data"), t.raw_data) for t in initializers]
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            _write_protobuf(f, copy_except(proto, "graph"), copy_except(proto.graph, "initializer"), tensors)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return True


def _little_endian_bytes(array: np.ndarray) -> memoryview:
    """The array's bytes as ONNX raw data (little-endian, C order), without a copy where possible."""
    array = np.ascontiguousarray(array)
    if array.dtype.byteorder == ">":
        array = array.astype(array.dtype.newbyteorder("<"))
    return memoryview(array.reshape(-1).view(np.uint8))
