"""Write a model straight from its weight buffers: the one way a .onnx file is written (modelc compile,
modelc.save), atomically.

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

from .files import atomic_write
from .ir import WeightSlot
from .source import user_error
from .types import DTYPES

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


Tensor = tuple[onnx.TensorProto, Any]  # an initializer without raw_data, and its bytes (None: none to place)
EXTERNAL_DATA_BYTES = 2**31 - 2**24  # a protobuf holds at most 2 GB: weights beyond this go to FILE.data
INLINE_BYTES = 1024  # with external data, smaller tensors stay inline (onnx.save's size_threshold)


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


def write_tensors(path: str | os.PathLike, model: onnx.ModelProto, graph: onnx.GraphProto,
                  tensors: list[Tensor]) -> None:
    """The one writer: `model` (without its graph) holding `graph` (without initializers) holding `tensors`,
    atomically. Over EXTERNAL_DATA_BYTES in all, every tensor of INLINE_BYTES or more goes to PATH.data."""
    real = Path(os.path.realpath(path))  # a link is written through: the data goes beside (and after) its target
    data_name = real.name + ".data"
    external = sum(len(raw) for _, raw in tensors if raw is not None) > EXTERNAL_DATA_BYTES
    layout: list[Tensor] = []
    data: list[tuple[int, Any]] = []
    end = 0
    for head, raw in tensors:
        if external and raw is not None and len(raw) >= INLINE_BYTES:
            _mark_external(head, data_name, end, len(raw))
            layout.append((head, None))
            data.append((end, raw))
            end = -(-(end + len(raw)) // ALIGN) * ALIGN
        else:
            layout.append((head, raw))
    with atomic_write(real.with_name(data_name), path) as (tmp_data, tmp):
        with open(tmp, "wb") as f:
            _write_protobuf(f, model, graph, layout)
        if data:
            with open(tmp_data, "wb") as f:
                for offset, raw in data:
                    f.seek(offset)
                    f.write(raw)
                f.truncate(end)


def _mark_external(head: onnx.TensorProto, location: str, offset: int, length: int) -> None:
    head.data_location = onnx.TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", str(offset)), ("length", str(length))):
        head.external_data.add(key=key, value=value)


def _weights_apart(proto: onnx.ModelProto, slots: list[WeightSlot],
                   arrays: dict[str, np.ndarray]) -> tuple[onnx.GraphProto, list[onnx.TensorProto]]:
    """The graph of `proto` without its weights' typed inputs, and an initializer head (no data) per weight."""
    names = {s.name for s in slots}
    graph = copy_except(proto.graph, "input")
    graph.input.extend(i for i in proto.graph.input if i.name not in names)
    heads = [onnx.TensorProto(name=s.name, data_type=DTYPES[s.type.dtype].onnx, dims=arrays[s.name].shape)
             for s in slots]
    return graph, heads


def write_model(path: str | os.PathLike, proto: onnx.ModelProto, slots: list[WeightSlot],
                arrays: dict[str, np.ndarray]) -> None:
    """Write `proto` (whose weights are still typed graph inputs) with the arrays as initializers."""
    graph, heads = _weights_apart(proto, slots, arrays)
    tensors = [(head, _little_endian_bytes(arrays[s.name])) for s, head in zip(slots, heads)]
    write_tensors(path, copy_except(proto, "graph"), graph, tensors)


IN_MEMORY = "modelc-in-memory"  # the location of weights declared external that no file holds


def declare_external(proto: onnx.ModelProto, slots: list[WeightSlot], arrays: dict[str, np.ndarray]) -> onnx.ModelProto:
    """`proto` (whose weights are still typed graph inputs) with its weights declared as external initializers
    that no file holds: the runtime hands onnxruntime the arrays themselves (runtime/session.py
    ExternalWeights), so a model over 2 GB compiled in memory never goes through a protobuf with its weights."""
    graph, heads = _weights_apart(proto, slots, arrays)
    for s, head in zip(slots, heads):
        _mark_external(head, IN_MEMORY, 0, arrays[s.name].nbytes)
    graph.initializer.extend(heads)
    model = copy_except(proto, "graph")
    model.graph.CopyFrom(graph)
    return model


def write_attached(path: str | os.PathLike, proto: onnx.ModelProto) -> None:
    """Write a ModelProto whose weights are attached, taking each tensor's raw bytes as they are instead of
    serializing the whole model in memory first: byte for byte what onnx.save writes, up to 2 GB."""
    tensors = [_initializer(t) for t in proto.graph.initializer]
    write_tensors(path, copy_except(proto, "graph"), copy_except(proto.graph, "initializer"), tensors)


def _initializer(t: onnx.TensorProto) -> Tensor:
    if t.data_location == onnx.TensorProto.EXTERNAL:
        raise user_error(f"cannot save the model: initializer '{t.name}' refers to external data that is not "
                         "loaded; load the model with its external data first")
    if t.HasField("raw_data"):
        return copy_except(t, "raw_data"), t.raw_data
    # typed fields (float_data, string_data, packed int4 in int32_data, ...) are written as they are
    return t, None


def _little_endian_bytes(array: np.ndarray) -> memoryview:
    """The array's bytes as ONNX raw data (little-endian, C order), without a copy where possible."""
    array = np.ascontiguousarray(array)
    if array.dtype.byteorder == ">":
        array = array.astype(array.dtype.newbyteorder("<"))
    return memoryview(array.reshape(-1).view(np.uint8))
