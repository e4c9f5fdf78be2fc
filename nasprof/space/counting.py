"""MACs and parameters, two independent ways that must agree exactly.

* analytic (``count_network``): each family's formulas (see ``nasprof.space.blocks.base`` for the convention).
* graph (``count_onnx``): read an ONNX file, infer shapes with ``onnx.shape_inference``, count
  Conv (``N*C_out*H_out*W_out * C_in/groups * kH * kW``), Gemm (``M*K*N``) and MatMul (output size * K);
  parameters are the sizes of the initializers those nodes consume (scalars feeding Clip and shape constants
  are not parameters). Counts are attributed to a layer by the node's scope (``/blocks.3/...`` -> blocks.3).
  A symbolic batch dimension counts as 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nasprof.errors import ModelError
from nasprof.space.network import Network

__all__ = ["LayerCount", "ModelCount", "count_network", "count_onnx", "WEIGHT_OPS"]

WEIGHT_OPS = ("Conv", "Gemm", "MatMul")


@dataclass(frozen=True)
class LayerCount:
    scope: str
    macs: int
    params: int
    #: The table key for analytic counts; the op types seen for graph counts.
    detail: str = ""


@dataclass(frozen=True)
class ModelCount:
    name: str
    source: str  # "analytic" | "onnx"
    layers: tuple[LayerCount, ...]

    @property
    def macs(self) -> int:
        return sum(layer.macs for layer in self.layers)

    @property
    def params(self) -> int:
        return sum(layer.params for layer in self.layers)

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "source": self.source,
            "macs": self.macs,
            "params": self.params,
            "layers": [
                {"scope": x.scope, "macs": x.macs, "params": x.params, "detail": x.detail}
                for x in self.layers
            ],
        }


def count_network(net: Network) -> ModelCount:
    layers = tuple(
        LayerCount(scope, layer.macs, layer.params, layer.key)
        for scope, layer in zip(net.scopes(), net.layers(), strict=True)
    )
    return ModelCount(net.name, "analytic", layers)


def scope_of(node_name: str) -> str:
    """``/blocks.3/dw/conv/Conv`` -> ``blocks.3``; unscoped names go to ``(graph)``."""
    if node_name.startswith("/") and node_name.count("/") >= 2:
        return node_name.split("/")[1]
    return "(graph)"


def count_onnx(path: str | Path) -> ModelCount:
    import onnx
    from onnx import shape_inference

    path = Path(path)
    if not path.is_file():
        raise ModelError(f"ONNX file {path} does not exist")
    try:
        model = shape_inference.infer_shapes(onnx.load(str(path)))
    except Exception as exc:  # onnx raises DecodeError/ValidationError/ InferenceError variants
        raise ModelError(f"cannot read {path} as ONNX: {exc}") from None
    graph = model.graph
    if not graph.node:  # protobuf parses an empty (or all-default) file as an empty model without complaint
        raise ModelError(f"{path} holds no ONNX graph (empty or not an ONNX file); export a model first")
    inits = {t.name: tuple(int(d) for d in t.dims) for t in graph.initializer}
    for node in graph.node:
        # A QDQ (int8) graph's weights reach their Conv through DequantizeLinear: still weights.
        if node.op_type == "DequantizeLinear" and node.input and node.input[0] in inits:
            inits[node.output[0]] = inits[node.input[0]]
    shapes: dict[str, tuple[int, ...]] = dict(inits)
    for vi in [*graph.input, *graph.value_info, *graph.output]:
        dims = vi.type.tensor_type.shape.dim
        # A symbolic leading dimension is the batch: count one sample (nasprof's own exports fix it to 1).
        sizes = [d.dim_value if d.HasField("dim_value") else (1 if i == 0 else 0) for i, d in enumerate(dims)]
        if dims and all(sizes):
            shapes[vi.name] = tuple(int(s) for s in sizes)

    def shape(name: str, node_name: str) -> tuple[int, ...]:
        if name not in shapes:
            raise ModelError(
                f"{path}: no static shape for {name!r} (node {node_name}); export with fixed shapes"
            )
        return shapes[name]

    macs: dict[str, int] = {}
    params: dict[str, int] = {}
    ops: dict[str, list[str]] = {}
    counted: set[str] = set()
    for node in graph.node:
        scope = scope_of(node.name)
        ops.setdefault(scope, [])
        if node.op_type not in WEIGHT_OPS:
            continue
        ops[scope].append(node.op_type)
        if node.op_type == "Conv":
            w = shape(node.input[1], node.name)
            out = shape(node.output[0], node.name)
            n = int(np.prod(out)) * int(np.prod(w[1:]))
        elif node.op_type == "Gemm":
            a = shape(node.input[0], node.name)
            trans_a = next((at.i for at in node.attribute if at.name == "transA"), 0)
            k = a[0] if trans_a else a[1]
            n = int(np.prod(shape(node.output[0], node.name))) * k
        else:  # MatMul
            n = int(np.prod(shape(node.output[0], node.name))) * shape(node.input[0], node.name)[-1]
        macs[scope] = macs.get(scope, 0) + n
        for name in node.input[1:]:
            if name in inits and name not in counted:
                counted.add(name)
                params[scope] = params.get(scope, 0) + int(np.prod(inits[name], dtype=np.int64))
    layers = tuple(
        LayerCount(s, macs.get(s, 0), params.get(s, 0), ",".join(sorted(set(o)))) for s, o in ops.items()
    )
    return ModelCount(path.stem, "onnx", layers)
