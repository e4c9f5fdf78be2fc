"""Small ONNX models for the measurement tests (beyond conftest's conv chain)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def make_embedding_model(path: Path, rows: int = 10, length: int = 4) -> Path:
    """int64 token ids -> Gather from a (rows, 8) table: ids outside [0, rows) make onnxruntime fail."""
    table = numpy_helper.from_array(np.arange(rows * 8, dtype=np.float32).reshape(rows, 8), "table")
    graph = helper.make_graph(
        [helper.make_node("Gather", ["table", "ids"], ["emb"], name="/embed/Gather")],
        "embed",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, [1, length])],
        [helper.make_tensor_value_info("emb", TensorProto.FLOAT, [1, length, 8])],
        [table],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def make_mixed_inputs_model(path: Path) -> Path:
    """A float16, a bool and an int32 input: Where(mask, Cast(x), Cast(n))."""
    nodes = [
        helper.make_node("Cast", ["x"], ["xf"], to=TensorProto.FLOAT, name="/cast_x/Cast"),
        helper.make_node("Cast", ["n"], ["nf"], to=TensorProto.FLOAT, name="/cast_n/Cast"),
        helper.make_node("Where", ["mask", "xf", "nf"], ["y"], name="/where/Where"),
    ]
    graph = helper.make_graph(
        nodes,
        "mixed",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT16, [2, 3]),
            helper.make_tensor_value_info("mask", TensorProto.BOOL, [2, 3]),
            helper.make_tensor_value_info("n", TensorProto.INT32, [2, 3]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def make_invalid_model(path: Path) -> Path:
    """Parses as ONNX but fails the checker: a node reads a tensor nothing produces."""
    graph = helper.make_graph(
        [helper.make_node("Relu", ["ghost"], ["y"], name="/r/Relu")],
        "broken",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def truncate(src: Path, dst: Path, keep: float = 0.6) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * keep)])
    return dst


def make_residual_model(path: Path, channels: int = 16, size: int = 8) -> Path:
    """A stem conv-relu, then ``/blocks.0``: conv-relu-conv plus a residual Add of the stem's output — the
    pattern onnxruntime's NCHWc conv fuses into one kernel (the Add becomes the conv's ``Sum`` input)."""
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.standard_normal((channels, c, 1, 1)).astype(np.float32), f"w{i}")
        for i, c in enumerate((3, channels, channels))
    ]
    nodes = [
        helper.make_node("Conv", ["input", "w0"], ["/stem/conv/Conv_output_0"], name="/stem/conv/Conv"),
        helper.make_node("Relu", ["/stem/conv/Conv_output_0"], ["/stem/act/Relu_output_0"],
                         name="/stem/act/Relu"),
        helper.make_node("Conv", ["/stem/act/Relu_output_0", "w1"], ["/blocks.0/conv.0/Conv_output_0"],
                         name="/blocks.0/conv.0/Conv"),
        helper.make_node("Relu", ["/blocks.0/conv.0/Conv_output_0"], ["/blocks.0/act/Relu_output_0"],
                         name="/blocks.0/act/Relu"),
        helper.make_node("Conv", ["/blocks.0/act/Relu_output_0", "w2"], ["/blocks.0/conv.1/Conv_output_0"],
                         name="/blocks.0/conv.1/Conv"),
        helper.make_node("Add", ["/stem/act/Relu_output_0", "/blocks.0/conv.1/Conv_output_0"], ["output"],
                         name="/blocks.0/Add"),
    ]
    graph = helper.make_graph(
        nodes, "residual", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, channels, size, size])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path
