"""Model validation, input shapes and random inputs (real onnx files made here)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from conftest import make_conv_model
from profiler.measure_models import (
    make_embedding_model,
    make_invalid_model,
    make_mixed_inputs_model,
    truncate,
)

from nasprof.errors import InputError, ModelError
from nasprof.profiler.onnx_model import load_model, parse_input_shape, parse_input_shapes, random_inputs


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("input=1x3x224x224", ("input", (1, 3, 224, 224))),
        ("x:0 = 2,3", ("x:0", (2, 3))),
        ("ids=7", ("ids", (7,))),
    ],
)
def test_parse_input_shape(text: str, expected: tuple) -> None:
    assert parse_input_shape(text) == expected


@pytest.mark.parametrize("text", ["input", "input=", "=1x3", "input=1xax3", "input=1x-3", "input=0x3"])
def test_malformed_input_shape(text: str) -> None:
    with pytest.raises(InputError, match="malformed --input-shape"):
        parse_input_shape(text)


def test_input_shape_given_twice() -> None:
    with pytest.raises(InputError, match="twice"):
        parse_input_shapes(["a=1", "a=2"])


def test_load_model_reads_facts(conv_model: Path) -> None:
    info = load_model(conv_model)
    assert info.sha256 == hashlib.sha256(conv_model.read_bytes()).hexdigest()
    assert info.input_shapes == {"input": (1, 3, 16, 16)}
    assert info.output_names == ("output",)
    assert info.opset == 17
    assert info.n_nodes == 5


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="does not exist"):
        load_model(tmp_path / "nope.onnx")


@pytest.mark.parametrize("content", [b"", b"hello, not a model\n", b"\x89PNG\r\n\x1a\n"])
def test_not_onnx(tmp_path: Path, content: bytes) -> None:
    p = tmp_path / "x.onnx"
    p.write_bytes(content)
    with pytest.raises(ModelError, match="is not an ONNX model"):
        load_model(p)


def test_truncated(conv_model: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="truncated or corrupt"):
        load_model(truncate(conv_model, tmp_path / "cut.onnx"))


def test_fails_checker(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="fails onnx's checker"):
        load_model(make_invalid_model(tmp_path / "bad.onnx"))


def test_symbolic_dims_need_input_shape(tmp_path: Path) -> None:
    p = make_conv_model(tmp_path / "sym.onnx", symbolic_batch=True)
    with pytest.raises(InputError, match=r"symbolic dimensions \(Nx3x16x16\).*--input-shape input=1x3x16x16"):
        load_model(p)
    assert load_model(p, {"input": (4, 3, 16, 16)}).input_shapes == {"input": (4, 3, 16, 16)}


def test_input_shape_unknown_name(conv_model: Path) -> None:
    with pytest.raises(InputError, match="names 'image', but the model's inputs are 'input'"):
        load_model(conv_model, {"image": (1, 3, 16, 16)})


def test_input_shape_contradicts_fixed_dims(conv_model: Path) -> None:
    with pytest.raises(InputError, match="dim 2 is fixed to 16"):
        load_model(conv_model, {"input": (1, 3, 32, 32)})
    with pytest.raises(InputError, match="has 3 dims, but input 'input' has 4"):
        load_model(conv_model, {"input": (1, 3, 16)})


def test_integer_inputs_are_valid_indices(tmp_path: Path) -> None:
    info = load_model(make_embedding_model(tmp_path / "emb.onnx"))
    ids = random_inputs(info, seed=3)["ids"]
    assert ids.dtype == np.int64 and ids.shape == (1, 4)
    assert ids.min() >= 0 and ids.max() < 10
    wide = random_inputs(info, seed=3, int_range=(100, 200))["ids"]
    assert wide.min() >= 100 and wide.max() < 200


def test_random_inputs_every_dtype_and_seeded(tmp_path: Path) -> None:
    info = load_model(make_mixed_inputs_model(tmp_path / "mixed.onnx"))
    a, b = random_inputs(info, seed=1), random_inputs(info, seed=1)
    assert {k: v.dtype for k, v in a.items()} == {"x": np.float16, "mask": np.bool_, "n": np.int32}
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert not np.array_equal(a["x"], random_inputs(info, seed=2)["x"])


def test_bad_int_range(tmp_path: Path) -> None:
    info = load_model(make_embedding_model(tmp_path / "emb.onnx"))
    with pytest.raises(InputError, match="empty"):
        random_inputs(info, int_range=(5, 5))
