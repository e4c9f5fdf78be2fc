"""Reading an ONNX graph for the kernel split: structure and shapes, never the weights' values; and
``GraphView``, the graph as the split walks it (nodes read once, initializers, shapes, consumers).

The split reads node attributes, tensor names and shapes; it never reads a weight. ``onnx.load`` parses the
whole file, weights included (ResNet-50: 100 MB, 60 of its 70 ms prediction), so ``read_structure`` scans the
protobuf wire format of a memory-mapped file and copies everything except the payload of large initializers:
the pages holding the weights are never touched. Small initializers (shape tensors, Reshape targets) keep
their values because shape inference propagates them.
"""

from __future__ import annotations

import math
import mmap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nasprof.errors import ModelError

__all__ = [
    "KEEP_BYTES", "GraphView", "chw", "fold3", "load_graph", "load_with_shapes", "node_attr",
    "read_structure", "tensor_shapes",
]

#: Initializers stored in fewer bytes than this keep their values (shape tensors, Reshape targets, small
#: biases); larger ones are weights, whose values no kernel decision reads. Deciding by the stored size, not
#: by the element count, spares decoding every small tensor's header.
KEEP_BYTES = 1024

# Field numbers of onnx.proto (stable since IR version 3).
_MODEL_GRAPH = 7
_GRAPH_INITIALIZER = 5
#: TensorProto's value fields: float_data, int32_data, string_data, int64_data, raw_data, double_data,
#: uint64_data.
_TENSOR_VALUES = frozenset({4, 5, 6, 7, 9, 10, 11})


class _WireError(ValueError):
    pass


def _varint(buf: Any, pos: int, end: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= end:
            raise _WireError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise _WireError("varint too long")


def _fields(buf: Any, pos: int, end: int) -> list[tuple[int, int, int, int]]:
    """(field number, start of the field's key, start of its payload, end) for each field in [pos, end)."""
    out = []
    while pos < end:
        start = pos
        key = buf[pos]  # keys of onnx.proto's fields (numbers < 16) are one byte: decode those inline
        if key & 0x80:
            key, pos = _varint(buf, pos, end)
        else:
            pos += 1
        wire = key & 7
        if wire == 2:
            length = buf[pos] if pos < end else 0x80
            if length & 0x80:
                length, pos = _varint(buf, pos, end)
            else:
                pos += 1
            nxt = pos + length
        elif wire == 0:
            _, nxt = _varint(buf, pos, end)
        elif wire == 1:
            nxt = pos + 8
        elif wire == 5:
            nxt = pos + 4
        else:  # groups (3, 4) are not used by onnx.proto
            raise _WireError(f"unsupported wire type {wire}")
        if nxt > end or key < 8:
            raise _WireError("field runs past its message")
        out.append((key >> 3, start, pos, nxt))
        pos = nxt
    return out


def _key_and_length(number: int, length: int) -> bytes:
    out = bytearray()
    for v in ((number << 3) | 2, length):
        while True:
            b = v & 0x7F
            v >>= 7
            out.append(b | (0x80 if v else 0))
            if not v:
                break
    return bytes(out)


def _without_values(buf: Any, pos: int, end: int) -> bytes:
    """The TensorProto in [pos, end) without its value fields."""
    return b"".join([buf[s:e] for number, s, _, e in _fields(buf, pos, end) if number not in _TENSOR_VALUES])


def _graph(buf: Any, pos: int, end: int) -> bytes:
    """The GraphProto in [pos, end) with weight values cut out; runs of kept fields are copied at once."""
    parts = []
    run = pos  # start of the run of fields copied verbatim
    for number, s, p, e in _fields(buf, pos, end):
        if number != _GRAPH_INITIALIZER or e - p < KEEP_BYTES:
            continue
        t = _without_values(buf, p, e)
        parts.append(buf[run:s])
        parts.append(_key_and_length(number, len(t)) + t)
        run = e
    parts.append(buf[run:end])
    return b"".join(parts)


def _structure_bytes(buf: Any) -> bytes:
    parts = []
    for number, s, p, e in _fields(buf, 0, len(buf)):
        if number == _MODEL_GRAPH:
            g = _graph(buf, p, e)
            parts.append(_key_and_length(number, len(g)) + g)
        else:
            parts.append(buf[s:e])
    return b"".join(parts)


def read_structure(model_path: str | Path) -> Any:
    """The ``onnx.ModelProto`` of ``model_path`` with the values of initializers of ``KEEP_BYTES`` or more
    left out (names, types and dims kept); external data is not read."""
    import onnx

    path = Path(model_path)
    try:
        with path.open("rb") as f:
            size = path.stat().st_size
            if size == 0:
                raise ModelError(f"cannot read ONNX model {model_path}: the file is empty")
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
                data = _structure_bytes(buf)
    except FileNotFoundError:
        raise ModelError(f"model {model_path} does not exist") from None
    except IsADirectoryError:
        raise ModelError(f"model {model_path} is a directory, not an ONNX file") from None
    except (_WireError, IndexError):
        raise ModelError(f"cannot read ONNX model {model_path}: not a protobuf ModelProto") from None
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except Exception as exc:  # DecodeError and friends
        raise ModelError(f"cannot read ONNX model {model_path}: {exc}") from None
    if not model.HasField("graph"):
        raise ModelError(f"cannot read ONNX model {model_path}: it has no graph")
    return model


def load_with_shapes(model_path: str | Path) -> Any:
    """Read an ONNX file's structure, pin symbolic batch dimensions to 1 and infer every tensor's shape."""
    return load_graph(model_path)[0]


def load_graph(model_path: str | Path) -> tuple[Any, dict[str, tuple[int, ...]]]:
    """``load_with_shapes`` and the fixed shape of every tensor (``tensor_shapes``). Shape inference runs
    only when the file does not already state every node output's shape (nasprof's exports do)."""
    import onnx

    model = read_structure(model_path)
    inits = {t.name for t in model.graph.initializer}
    for inp in model.graph.input:
        if inp.name in inits:
            continue
        for i, d in enumerate(inp.type.tensor_type.shape.dim):
            if d.HasField("dim_value"):
                continue
            if i > 0:  # a free height or width would be predicted at 1 pixel: a fraction of the real time
                free = d.dim_param or "?"
                raise ModelError(
                    f"input {inp.name!r} of {model_path} has the free dimension {free!r} at position {i}; "
                    "the kernel predictor needs fixed shapes beyond the batch: export the model with a fixed "
                    "input size"
                )
            d.dim_value = 1  # a free batch dimension: predict batch 1
    shapes = tensor_shapes(model.graph)
    if all(o in shapes for n in model.graph.node for o in n.output if o):
        return model, shapes
    try:
        model = onnx.shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
    except Exception as exc:
        raise ModelError(f"cannot infer tensor shapes of {model_path}: {exc}") from None
    return model, tensor_shapes(model.graph)


def tensor_shapes(graph: Any) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every tensor whose shape the graph states with fixed sizes (initializers included)."""
    shapes: dict[str, tuple[int, ...]] = {}
    for vi in (*graph.input, *graph.value_info, *graph.output):
        tt = vi.type.tensor_type
        if not tt.HasField("shape"):
            continue
        dims = tt.shape.dim
        sizes = [d.dim_value for d in dims]
        # dim_value reads 0 for a symbolic dimension: only then is the slower check needed.
        if 0 not in sizes or all(d.HasField("dim_value") for d in dims):
            shapes[vi.name] = tuple(sizes)
    for t in graph.initializer:
        shapes[t.name] = tuple(t.dims)
    return shapes


class _Node:
    """A node's fields read once from its protobuf (each protobuf field access builds a new object)."""

    __slots__ = ("op_type", "name", "input", "output", "attribute")

    def __init__(self, proto: Any) -> None:
        self.op_type: str = proto.op_type
        self.name: str = proto.name
        self.input: list[str] = list(proto.input)
        self.output: list[str] = list(proto.output)
        self.attribute = proto.attribute


class GraphView:
    """An ``onnx.ModelProto``'s graph as the split walks it: nodes, initializer names, tensor shapes (inferred
    unless given), each tensor's consumers, the graph outputs and every produced tensor."""

    def __init__(self, model: Any, shapes: dict[str, tuple[int, ...]] | None = None) -> None:
        import onnx

        assert isinstance(model, onnx.ModelProto)
        g = model.graph
        self.nodes = [_Node(n) for n in g.node]
        self.inits = {t.name for t in g.initializer}
        self.shapes: dict[str, tuple[int, ...]] = tensor_shapes(g) if shapes is None else shapes
        self.consumers: dict[str, list[int]] = {}
        for i, n in enumerate(self.nodes):
            for x in n.input:
                if x:
                    self.consumers.setdefault(x, []).append(i)
        self.graph_outputs = {o.name for o in g.output}
        self.producers = {o for n in self.nodes for o in n.output}

    def sole_consumer(self, tensor: str) -> int | None:
        users = self.consumers.get(tensor, [])
        if len(users) == 1 and tensor not in self.graph_outputs:
            return users[0]
        return None


def node_attr(node: Any, name: str, default: object) -> Any:
    """The value of attribute ``name`` of ``node``, or ``default``."""
    import onnx

    for a in node.attribute:  # type: ignore[attr-defined]
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def chw(shape: Sequence[int] | None) -> tuple[int, ...]:
    """A tensor shape with its batch of 1 dropped (``()`` when unknown)."""
    if not shape:
        return ()
    s = tuple(shape)
    return s[1:] if len(s) >= 2 and s[0] == 1 else s


def fold3(shape: tuple[int, ...]) -> tuple[int, ...]:
    """A CHW-like shape of rank > 3 with its leading dimensions multiplied into C."""
    if len(shape) <= 3:
        return shape
    return (int(math.prod(shape[:-2])), *shape[-2:])
