"""Reading a graph's structure without its weights: the same graph onnx.load gives, minus large values."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from _predictor_helpers import make_mixed_model
from onnx import TensorProto, helper, numpy_helper

from nasprof.errors import ModelError
from nasprof.predictors.kernel.graph_io import KEEP_BYTES, load_with_shapes, read_structure
from nasprof.predictors.kernel.split import split_kernels
from nasprof.testing.classic_cnns import build_classic


def _same_structure(path: Path) -> onnx.ModelProto:
    full = onnx.load(str(path), load_external_data=False)
    got = read_structure(path)
    assert got.graph.node == full.graph.node
    assert got.graph.input == full.graph.input and got.graph.output == full.graph.output
    assert got.graph.value_info == full.graph.value_info
    assert got.opset_import == full.opset_import and got.ir_version == full.ir_version
    assert len(got.graph.initializer) == len(full.graph.initializer)
    for a, b in zip(got.graph.initializer, full.graph.initializer, strict=True):
        assert (a.name, list(a.dims), a.data_type) == (b.name, list(b.dims), b.data_type)
        if b.ByteSize() < KEEP_BYTES:
            assert a == b  # shape tensors keep their values: shape inference reads them
        else:
            assert not a.raw_data and not a.float_data and not a.int64_data
    return got


def test_structure_of_a_model_with_raw_and_typed_weights(tmp_path: Path) -> None:
    _same_structure(make_mixed_model(tmp_path / "mixed.onnx"))
    # float_data instead of raw_data, packed int64 dims, and a Reshape target kept as values.
    w = helper.make_tensor("w", TensorProto.FLOAT, [8, 3, 3, 3], np.ones(216, np.float32).tolist())
    shape = numpy_helper.from_array(np.array([1, -1], np.int64), "shape")
    nodes = [helper.make_node("Conv", ["x", "w"], ["y"], pads=[1] * 4),
             helper.make_node("Reshape", ["y", "shape"], ["z"])]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                          [helper.make_tensor_value_info("z", TensorProto.FLOAT, None)], [w, shape])
    path = tmp_path / "typed.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    _same_structure(path)
    shaped = load_with_shapes(path)
    z = next(v for v in shaped.graph.output if v.name == "z")
    assert [d.dim_value for d in z.type.tensor_type.shape.dim] == [1, 512]


def test_weights_in_an_external_file_are_never_read(tmp_path: Path) -> None:
    model = onnx.load(str(build_classic("squeezenet10", tmp_path / "r.onnx")))
    path = tmp_path / "ext.onnx"
    onnx.save(model, str(path), save_as_external_data=True, location="weights.bin", size_threshold=1024)
    kernels = split_kernels(path, "all")
    (tmp_path / "weights.bin").unlink()
    assert split_kernels(path, "all") == kernels


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"\xff\xff\xff", "not a protobuf"),
        (b"hello, this is not a model\n" * 10, "cannot read ONNX model"),
    ],
)
def test_hostile_files(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.onnx"
    path.write_bytes(content)
    with pytest.raises(ModelError, match=message):
        read_structure(path)


def test_truncated_and_missing_files(tmp_path: Path) -> None:
    data = make_mixed_model(tmp_path / "m.onnx").read_bytes()
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match="cannot read ONNX model"):
        read_structure(cut)
    with pytest.raises(ModelError, match="does not exist"):
        read_structure(tmp_path / "nope.onnx")
    with pytest.raises(ModelError, match="directory"):
        read_structure(tmp_path)
