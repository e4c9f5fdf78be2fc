"""int8 end to end: static QDQ quantisation of exports, int8 tables, and what refuses int8 graphs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from conftest import cli_runner, make_conv_model
from onnx import TensorProto, helper

from nasprof.cli import app
from nasprof.errors import ModelError, PredictorError
from nasprof.space import export_arch, export_layer, get_space
from nasprof.space.quantize import quantize_int8


def test_quantised_export_runs_and_stays_close_to_float(tmp_path: Path) -> None:
    fp32 = export_arch("mobilenet_v2", tmp_path / "m.onnx", resolution=64, width=0.35)
    q = quantize_int8(fp32, tmp_path / "m.int8.onnx")
    assert q.qdq_nodes > 0 and q.quantized_ops["Conv"] >= 50 and q.float_ops == {}
    x = np.random.default_rng(1).standard_normal((1, 3, 64, 64)).astype(np.float32)
    ref = ort.InferenceSession(str(fp32), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    got = ort.InferenceSession(str(q.path), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    # Random weights and calibration data: int8 keeps the output's direction, not its last digits.
    cos = float((ref * got).sum() / np.linalg.norm(ref) / np.linalg.norm(got))
    assert cos > 0.9
    assert quantize_int8(fp32, tmp_path / "again.onnx").path.read_bytes() == q.path.read_bytes()  # seeded
    from nasprof.space import count_onnx

    # Weights behind DequantizeLinear are still the model's parameters (they used to count as 0).
    qc, fc = count_onnx(q.path), count_onnx(fp32)
    assert (qc.macs, qc.params) == (fc.macs, fc.params)


def test_models_that_cannot_be_quantised_say_why(tmp_path: Path) -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    relu = helper.make_model(helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y]),
                             opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(relu, tmp_path / "relu.onnx")
    with pytest.raises(ModelError, match=r"nothing to quantise \(ops: Relu\)"):
        quantize_int8(tmp_path / "relu.onnx", tmp_path / "out.onnx")
    dyn = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", "W"])
    onnx.save(helper.make_model(helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [dyn], [y]),
                                opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "dyn.onnx")
    with pytest.raises(ModelError, match="free dimensions W beyond the batch"):
        quantize_int8(tmp_path / "dyn.onnx", tmp_path / "out.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not onnx")
    with pytest.raises(ModelError, match="not a readable ONNX model"):
        quantize_int8(tmp_path / "junk.onnx", tmp_path / "out.onnx")
    assert not (tmp_path / "out.onnx").exists()


def test_cli_export_int8_and_mcu_estimate_read_it(tmp_path: Path) -> None:
    runner = cli_runner
    out = tmp_path / "q.onnx"
    r = runner.invoke(app, ["export", "mobilenet_v2", "--width", "0.35", "--resolution", "64", "--int8",
                            "-o", str(out)])
    assert r.exit_code == 0 and "(int8, QDQ)" in r.stdout, r.output
    assert any(n.op_type == "QuantizeLinear" for n in onnx.load(str(out)).graph.node)
    r = runner.invoke(app, ["measure", str(out), "--device", "stm32f746", "--json", "-"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["estimated"] is True
    # The estimator sizes every graph as int8: the QDQ file and its float source give the same bytes.
    from nasprof.devices.mcu import estimate_mcu

    fp32 = export_arch("mobilenet_v2", tmp_path / "f.onnx", resolution=64, width=0.35)
    a, b = estimate_mcu(fp32, "stm32f746", "per-layer"), estimate_mcu(out, "stm32f746", "per-layer")
    assert (a.peak_sram_bytes, a.flash_bytes, a.macs) == (b.peak_sram_bytes, b.flash_bytes, b.macs)


def test_cli_quantises_and_converts_a_users_onnx(tmp_path: Path) -> None:
    """A model nasprof did not export (a free batch dimension, its own names): `export FILE.onnx --int8`
    quantises it and keeps the batch free; `-o FILE.ort` converts it; what does not apply is refused."""
    user = make_conv_model(tmp_path / "user.onnx", symbolic_batch=True, channels=16)
    runner = cli_runner
    out = tmp_path / "user.int8.onnx"
    r = runner.invoke(app, ["export", str(user), "--int8", "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert "user.onnx (int8, QDQ: 3 ops quantised, 0 left in float)" in r.stdout
    q = onnx.load(str(out))
    assert any(n.op_type == "QuantizeLinear" for n in q.graph.node)
    assert q.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "N"  # the batch stays free
    x = np.random.default_rng(0).standard_normal((2, 3, 16, 16)).astype(np.float32)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert session.run(None, {"input": x})[0].shape[0] == 2
    r = runner.invoke(app, ["export", str(user), "-o", str(tmp_path / "user.ort")])
    assert r.exit_code == 0 and (tmp_path / "user.ort").stat().st_size > 0, r.output
    r = runner.invoke(app, ["export", str(user), "--int8", "-o", str(tmp_path / "user.int8.ort")])
    assert r.exit_code == 0, r.output
    assert "(int8, QDQ: 3 ops quantised" in r.stdout and "ORT format" in r.stdout
    for extra, needle in ((["-o", str(tmp_path / "same.onnx")], "already ONNX"),
                          (["--int8", "--resolution", "64", "-o", str(out)], "--resolution")):
        r = runner.invoke(app, ["export", str(user), *extra])
        assert r.exit_code == 2 and needle in r.stderr and "\n" not in r.stderr.strip(), r.output
    r = runner.invoke(app, ["export", str(tmp_path / "typo.onnx"), "--int8", "-o", str(out)])
    assert r.exit_code == 2 and "typo.onnx does not exist" in r.stderr, r.output


def test_int8_table_build_records_precision_and_refuses_mixing(tmp_path: Path) -> None:
    from nasprof.predictors import LutPredictor
    from nasprof.tables.builder import build_table
    from nasprof.tables.store import LatencyTable

    spec_args = ["--runs", "3", "--sessions", "1", "--warmup", "1"]
    db = tmp_path / "q.db"
    r = cli_runner.invoke(app, ["table", "build", "--space", "mobilenetv2", "--resolution", "32", "--device",
                                 "cpu", "--db", str(db), "--limit", "2", "--int8", *spec_args])
    assert r.exit_code == 0, r.output
    with LatencyTable.load(db) as t:
        assert t.metadata["precision"] == "int8"
        assert sum(1 for e in t.entries() if e.ok) == 2
    assert LutPredictor.from_table(db).metadata["precision"] == "int8"
    with pytest.raises(Exception, match="holds int8 entries, not fp32"):
        build_table("mobilenetv2", 32, "cpu", db, limit=1)


def test_kernel_predictor_refuses_int8_graphs(tmp_path: Path) -> None:
    from _predictor_helpers import linear_kernel_predictor

    layer = get_space("mobilenetv2").distinct_layers(32)[3]
    fp32 = export_layer(layer, tmp_path / "l.onnx")
    q = quantize_int8(fp32, tmp_path / "l.int8.onnx")
    with pytest.raises(PredictorError, match=r"int8 \(QDQ\) graph .* models float kernels only"):
        linear_kernel_predictor().predict(q.path)
