"""A hand-checked model for the MCU estimator tests (MobileNetV2 comes from the space presets)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def make_residual_block(path: Path, *, extra_op: str | None = None) -> Path:
    """input 4x8x8 -> 1x1 conv 4->8 + Relu -> 3x3 dw (pad 1) -> 1x1 conv 8->4 -> Add(input) -> output.

    ``extra_op`` appends an operator the estimator cannot size (e.g. ``"Einsum"``-like) after the Add.
    """
    rng = np.random.default_rng(0)

    def init(name: str, shape: tuple[int, ...]) -> onnx.TensorProto:
        return numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)

    inits = [init("w0", (8, 4, 1, 1)), init("b0", (8,)), init("w1", (8, 1, 3, 3)), init("b1", (8,)),
             init("w2", (4, 8, 1, 1)), init("b2", (4,))]
    nodes = [
        helper.make_node("Conv", ["input", "w0", "b0"], ["c0"], name="/b/expand/Conv"),
        helper.make_node("Relu", ["c0"], ["r0"], name="/b/expand/Relu"),
        helper.make_node("Conv", ["r0", "w1", "b1"], ["c1"], name="/b/dw/Conv", group=8, pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["c1", "w2", "b2"], ["c2"], name="/b/project/Conv"),
        helper.make_node("Add", ["input", "c2"], ["sum" if extra_op else "output"], name="/b/Add"),
    ]
    if extra_op:
        nodes.append(helper.make_node(extra_op, ["sum"], ["output"], name=f"/b/{extra_op}"))
    graph = helper.make_graph(
        nodes, "residual", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 4, 8, 8])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 4, 8, 8])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path
