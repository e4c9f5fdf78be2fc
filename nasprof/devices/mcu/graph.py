"""An ONNX graph seen as an int8 microcontroller deployment would run it: tensors and ops in execution order.

What changes from the float ONNX graph, and why:
- Every activation is int8 (1 byte per element), whatever the ONNX dtype; the batch dimension is 1.
- Activation functions (Relu, Clip = ReLU6, HardSwish, ...) and BatchNormalization fold into the op that
  produces their input when it is their only consumer: int8 kernels clamp/requantise on the way out, so no
  tensor exists between them (TFLite's converter and TinyEngine both fuse them).
- Reshape / Flatten / Squeeze / Unsqueeze / Identity / Dropout / Quantize/DequantizeLinear are views: the
  output is the input buffer under another name (no copy, no memory).
- Weights (initializers, Constant nodes) live in Flash and never take SRAM.

The result, ``McuGraph``, is the single input of every memory model, the Flash count and the latency estimate,
so an analytic path (``nasprof.devices.mcu.analytic``) only has to build the same ``McuGraph``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nasprof.errors import ModelError

__all__ = ["McuTensor", "McuOp", "McuGraph", "UnsupportedOpsError", "load_graph", "graph_from_onnx",
           "graph_from_ops"]

#: Unary ops folded into their producer (an int8 kernel applies them while writing its output).
_FUSABLE = {"Relu", "Clip", "LeakyRelu", "HardSwish", "HardSigmoid", "Sigmoid", "Tanh", "PRelu",
            "BatchNormalization"}
#: Ops whose output is a view of the input (no data moves in an int8 runtime).
_VIEWS = {"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Dropout", "QuantizeLinear",
          "DequantizeLinear"}
#: Sized ops other than conv / dense: (kind, MACs per output element is 1).
_ELEMENTWISE = {"Add": "add", "Sub": "add", "Mul": "mul", "Div": "mul", "Relu": "activation",
                "Clip": "activation", "LeakyRelu": "activation", "HardSwish": "activation",
                "HardSigmoid": "activation", "Sigmoid": "activation", "Tanh": "activation",
                "BatchNormalization": "activation", "Softmax": "softmax", "Pad": "pad",
                "Transpose": "transpose", "Concat": "concat", "Slice": "concat", "Split": "concat"}
_POOLS = {"GlobalAveragePool", "GlobalMaxPool", "AveragePool", "MaxPool", "ReduceMean"}


class UnsupportedOpsError(ModelError):
    """The graph has ops the estimator cannot size; ``ops`` lists them as ``name (OpType)``."""

    def __init__(self, ops: Sequence[str]) -> None:
        self.ops = tuple(ops)
        super().__init__(
            f"cannot size {len(self.ops)} operator(s) for a microcontroller: {', '.join(self.ops)}; "
            "pass --allow-partial to estimate without them (the result is then flagged as partial)"
        )


@dataclass(frozen=True)
class McuTensor:
    """An int8 activation tensor; ``shape`` without the batch dimension, ``size_bytes`` = elements × 1 B."""

    name: str
    shape: tuple[int, ...]

    @property
    def size_bytes(self) -> int:
        return math.prod(self.shape) if self.shape else 1


@dataclass(frozen=True)
class McuOp:
    """One kernel call. ``inputs``/``outputs`` name activation tensors only (weights are in ``weight_elems``).

    ``kind`` is one of conv, depthwise, group_conv, dense, add, mul, pool, concat, activation, softmax, pad,
    transpose, unknown. ``fused`` names the ONNX nodes folded into this op.
    """

    name: str
    op_type: str
    kind: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    macs: int = 0
    weight_elems: int = 0
    bias_elems: int = 0
    #: Output channels that carry per-channel quantisation parameters (conv/dense), else 0.
    quant_channels: int = 0
    kernel: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)
    groups: int = 1
    fused: tuple[str, ...] = ()
    #: True when the op could not be sized and was estimated (``allow_partial``).
    partial: bool = False


@dataclass(frozen=True)
class McuGraph:
    """Ops in execution order plus every activation tensor they read or write."""

    ops: tuple[McuOp, ...]
    tensors: Mapping[str, McuTensor]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    #: Ops estimated without a sizing rule (``name (OpType)``); empty for a fully sized graph.
    unsized: tuple[str, ...] = ()
    name: str = ""
    _consumers: dict[str, list[int]] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for i, op in enumerate(self.ops):
            for t in op.inputs + op.outputs:
                if t not in self.tensors:
                    raise ModelError(f"op {op.name!r} uses tensor {t!r} of unknown shape")
            for t in dict.fromkeys(op.inputs):
                self._consumers.setdefault(t, []).append(i)

    def size(self, tensor: str) -> int:
        return self.tensors[tensor].size_bytes

    def producer(self, tensor: str) -> int:
        """Index of the op that writes ``tensor``; -1 for a graph input."""
        for i, op in enumerate(self.ops):
            if tensor in op.outputs:
                return i
        return -1

    def consumers(self, tensor: str) -> list[int]:
        return list(self._consumers.get(tensor, []))

    def last_use(self, tensor: str) -> int:
        """Index of the last op that reads ``tensor`` (the last op for a graph output)."""
        if tensor in self.outputs:
            return len(self.ops) - 1
        uses = self._consumers.get(tensor)
        return max(uses) if uses else self.producer(tensor)

    @property
    def macs(self) -> int:
        return sum(op.macs for op in self.ops)

    @property
    def partial(self) -> bool:
        return bool(self.unsized)


# ---------------------------------------------------------------------------------------------------------
# ONNX -> McuGraph
# ---------------------------------------------------------------------------------------------------------


def load_graph(path: str | Path, *, allow_partial: bool = False,
               input_shapes: Mapping[str, Sequence[int]] | None = None) -> McuGraph:
    """Read an ONNX file and return its int8 deployment view (see the module docstring).

    ``input_shapes`` fixes symbolic input dimensions (``{"input": (1, 3, 96, 96)}``); a symbolic batch
    dimension is taken as 1 anyway.
    """
    import onnx

    p = Path(path)
    if not p.is_file():
        raise ModelError(f"model file {str(p)!r} does not exist; export one first (nasprof export ...)")
    try:
        model = onnx.load(str(p))
    except Exception as exc:  # onnx raises DecodeError and friends
        raise ModelError(f"cannot read {str(p)!r} as ONNX: {exc}") from None
    if input_shapes:
        _fix_inputs(model, input_shapes)
    return graph_from_onnx(model, allow_partial=allow_partial, name=p.stem)


def _fix_inputs(model: Any, input_shapes: Mapping[str, Sequence[int]]) -> None:
    inputs = {vi.name: vi for vi in model.graph.input}
    for name, shape in input_shapes.items():
        if name not in inputs:
            raise ModelError(f"--input-shape names {name!r}, but the model's inputs are {', '.join(inputs)}")
        dims = inputs[name].type.tensor_type.shape.dim
        if len(dims) != len(shape):
            raise ModelError(f"input {name!r} has rank {len(dims)}, --input-shape gives {len(shape)} dims")
        for d, v in zip(dims, shape, strict=True):
            d.ClearField("dim_param")
            d.dim_value = int(v)


def _attrs(node: Any) -> dict[str, Any]:
    import onnx

    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _shapes(model: Any) -> dict[str, tuple[int, ...]]:
    """Static shapes after shape inference; a symbolic batch (first) dimension is 1. A value with any other
    unknown dimension is left out, so using it raises a clear "export with static shapes" error."""
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    except Exception as exc:
        raise ModelError(f"ONNX shape inference failed: {exc}") from None
    g = inferred.graph
    out: dict[str, tuple[int, ...]] = {}
    for vi in list(g.input) + list(g.value_info) + list(g.output):
        tt = vi.type.tensor_type
        if not tt.HasField("shape"):
            continue
        known = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in tt.shape.dim]
        if known and known[0] is None:
            known[0] = 1  # batch
        if all(v is not None for v in known):
            out[vi.name] = tuple(int(v) for v in known if v is not None)
    return out


def _drop_batch(shape: tuple[int, ...]) -> tuple[int, ...]:
    # Rank-1 tensors have no batch dimension; everything else is (N, ...) with N = 1.
    return shape[1:] if len(shape) > 1 else shape


def graph_from_onnx(model: Any, *, allow_partial: bool = False, name: str = "") -> McuGraph:
    """Build the ``McuGraph`` of an in-memory ``onnx.ModelProto``."""
    g = model.graph
    shapes = _shapes(model)
    inits = {t.name: tuple(int(d) for d in t.dims) for t in g.initializer}
    consts: set[str] = set(inits)
    for node in g.node:
        if node.op_type == "Constant":
            consts.update(node.output)
            value = next((a.t for a in node.attribute if a.name == "value"), None)
            if value is not None:  # weights may come as Constant nodes instead of initializers
                inits[node.output[0]] = tuple(int(d) for d in value.dims)

    # Count the consumers of each value to decide whether an activation may fuse into its producer.
    n_consumers: dict[str, int] = {}
    for node in g.node:
        for t in node.input:
            n_consumers[t] = n_consumers.get(t, 0) + 1
    graph_outputs = [o.name for o in g.output]
    for o in graph_outputs:
        n_consumers[o] = n_consumers.get(o, 0) + 1

    alias: dict[str, str] = {}  # ONNX value -> the tensor that holds its data

    def res(t: str) -> str:
        while t in alias:
            t = alias[t]
        return t

    ops: list[McuOp] = []
    produced_by: dict[str, int] = {}
    tensors: dict[str, McuTensor] = {}
    unsized: list[str] = []

    def tensor(t: str, node_name: str) -> str:
        t = res(t)
        if t not in tensors:
            if t not in shapes:
                raise ModelError(
                    f"the shape of tensor {t!r} (used by {node_name!r}) is unknown; export the model with "
                    "static input shapes"
                )
            tensors[t] = McuTensor(t, _drop_batch(shapes[t]))
        return t

    graph_inputs = [i.name for i in g.input if i.name not in inits]
    for t in graph_inputs:
        tensor(t, "graph input")

    for idx, node in enumerate(g.node):
        nname = node.name or f"{node.op_type}_{idx}"
        op_type = node.op_type
        if op_type == "Constant":
            continue
        act_in = [t for t in node.input if t and t not in consts]
        if op_type in _VIEWS or op_type == "Cast":
            if act_in:
                alias[node.output[0]] = res(act_in[0])
            else:
                consts.update(node.output)
                # A QDQ graph's weights reach their Conv through DequantizeLinear: keep their shape.
                if node.input and node.input[0] in inits:
                    inits[node.output[0]] = inits[node.input[0]]
            continue
        if not act_in:  # computed from weights only (e.g. a Shape->Gather chain folded late): Flash data
            consts.update(node.output)
            continue
        if op_type in {"Shape", "Size"}:
            consts.update(node.output)
            continue
        src = res(act_in[0])
        if (
            op_type in _FUSABLE
            and len(act_in) == 1
            and src in produced_by
            and n_consumers.get(act_in[0], 0) == 1
            and n_consumers.get(src, 0) == 1  # nobody else reads the un-activated values
            and ops[produced_by[src]].kind not in {"concat"}
        ):
            # Fold into the producer: its output tensor takes this node's value name.
            prev = ops[produced_by[src]]
            ops[produced_by[src]] = _replace(prev, fused=prev.fused + (nname,))
            alias[node.output[0]] = src
            continue

        ins = tuple(dict.fromkeys(tensor(t, nname) for t in act_in))
        outs = tuple(tensor(t, nname) for t in node.output if t)
        out_shape = tensors[outs[0]].shape
        out_elems = math.prod(out_shape)
        a = _attrs(node)
        op: McuOp
        if op_type == "Conv":
            w = inits.get(node.input[1]) if len(node.input) > 1 else None
            if w is None or len(w) != 4:
                raise ModelError(f"Conv {nname!r}: weights must be a constant 4-D initializer")
            cout, cin_g, kh, kw = w
            groups = int(a.get("group", 1))
            cin = tensors[ins[0]].shape[0]
            if groups == 1:
                kind = "conv"
            elif groups == cin and cin_g == 1:
                kind = "depthwise"
            else:
                kind = "group_conv"
            bias = math.prod(inits[node.input[2]]) if len(node.input) > 2 and node.input[2] in inits else 0
            pads = tuple(int(p) for p in a.get("pads", (0, 0, 0, 0)))
            stride = tuple(int(s) for s in a.get("strides", (1, 1)))
            op = McuOp(nname, op_type, kind, ins, outs,
                       macs=out_elems * cin_g * kh * kw,
                       weight_elems=cout * cin_g * kh * kw, bias_elems=bias or cout, quant_channels=cout,
                       kernel=(kh, kw), stride=(stride[0], stride[1]),
                       pads=(pads[0], pads[1], pads[2], pads[3]) if len(pads) == 4 else (0, 0, 0, 0),
                       groups=groups)
        elif op_type in {"Gemm", "MatMul"}:
            wname = next((t for t in node.input[1:2] if t in inits), None)
            if wname is None:
                op = McuOp(nname, op_type, "mul", ins, outs, macs=out_elems)  # activation x activation
            else:
                wshape = inits[wname]
                trans_b = int(a.get("transB", 0)) if op_type == "Gemm" else 0
                k_in = wshape[1] if trans_b else wshape[0]
                n_out = wshape[0] if trans_b else wshape[-1]
                has_b = len(node.input) > 2 and node.input[2] in inits
                bias = math.prod(inits[node.input[2]]) if has_b else 0
                rows = max(1, out_elems // max(1, n_out))
                op = McuOp(nname, op_type, "dense", ins, outs, macs=rows * k_in * n_out,
                           weight_elems=math.prod(wshape), bias_elems=bias or n_out, quant_channels=n_out)
        elif op_type in _POOLS:
            in_elems = math.prod(tensors[ins[0]].shape)
            k = tuple(int(v) for v in a.get("kernel_shape", (1, 1)))
            stride = tuple(int(s) for s in a.get("strides", (1, 1)))
            is_global = op_type.startswith(("Global", "Reduce"))
            op = McuOp(nname, op_type, "pool", ins, outs,
                       macs=in_elems if is_global else out_elems * math.prod(k),
                       kernel=(k[0], k[-1]), stride=(stride[0], stride[-1]))
        elif op_type in _ELEMENTWISE:
            kind = _ELEMENTWISE[op_type]
            wl = sum(math.prod(inits[t]) for t in node.input if t in inits)
            # One "MAC" per output element: the cost of writing it (a copy for concat/pad/transpose/slice;
            # a split writes all its outputs).
            written = sum(math.prod(tensors[o].shape) for o in outs) if op_type == "Split" else out_elems
            op = McuOp(nname, op_type, kind, ins, outs, macs=written, weight_elems=wl)
        elif allow_partial:
            unsized.append(f"{nname} ({op_type})")
            op = McuOp(nname, op_type, "unknown", ins, outs, macs=out_elems, partial=True)
        else:
            unsized.append(f"{nname} ({op_type})")
            continue
        ops.append(op)
        for o in outs:
            produced_by[o] = len(ops) - 1

    if unsized and not allow_partial:
        raise UnsupportedOpsError(unsized)
    outputs = tuple(dict.fromkeys(res(o) for o in graph_outputs))
    for o in outputs:
        if o not in tensors:
            raise ModelError(f"graph output {o!r} is not produced by any sized op")
    if not ops:
        raise ModelError("the model has no operators to estimate")
    return McuGraph(tuple(ops), tensors, tuple(graph_inputs), outputs, tuple(unsized), name)


def _replace(op: McuOp, **changes: Any) -> McuOp:
    from dataclasses import replace

    return replace(op, **changes)


def graph_from_ops(ops: Sequence[McuOp], shapes: Mapping[str, tuple[int, ...]], inputs: Sequence[str],
                   outputs: Sequence[str], name: str = "") -> McuGraph:
    """Build an ``McuGraph`` directly (tests, the analytic path): ``shapes`` without batch."""
    tensors = {t: McuTensor(t, tuple(s)) for t, s in shapes.items()}
    return McuGraph(tuple(ops), tensors, tuple(inputs), tuple(outputs), (), name)
