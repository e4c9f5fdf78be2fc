"""Predictor files: versioned JSON; corrupt, newer or foreign files fail with a message (library and CLI)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _predictor_helpers import linear_kernel_predictor, make_mixed_model
from conftest import cli_runner as runner

from nasprof.cli import app
from nasprof.errors import PredictorError, SchemaError
from nasprof.predictors import PREDICTOR_SCHEMA_VERSION, KernelPredictor, Predictor


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    return linear_kernel_predictor().save(tmp_path / "k.json")


def test_header_carries_what_a_reader_needs(saved: Path) -> None:
    doc = json.loads(saved.read_text())
    assert doc["schema_version"] == PREDICTOR_SCHEMA_VERSION and doc["kind"] == "kernel"
    assert doc["device"] == "cpu" and doc["features"][:3] == ["in_h", "in_w", "cin"]
    assert {"numpy", "onnxruntime", "scikit-learn", "python"} <= set(doc["environment"])
    assert doc["measure_spec"]["opt_level"] == "extended"


def test_round_trip(saved: Path, tmp_path: Path) -> None:
    model = make_mixed_model(tmp_path / "m.onnx")
    q = Predictor.load(saved)
    assert isinstance(q, KernelPredictor)
    assert q.predict(model) == linear_kernel_predictor().predict(model)


def _rewrite(path: Path, **changes: object) -> Path:
    doc = json.loads(path.read_text())
    doc.update(changes)
    path.write_text(json.dumps(doc))
    return path


def test_corrupt_file(saved: Path) -> None:
    saved.write_text(saved.read_text()[:200])
    with pytest.raises(PredictorError, match="corrupt"):
        Predictor.load(saved)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(PredictorError, match="does not exist"):
        Predictor.load(tmp_path / "nope.json")


def test_newer_schema(saved: Path) -> None:
    _rewrite(saved, schema_version=PREDICTOR_SCHEMA_VERSION + 1)
    with pytest.raises(SchemaError, match="upgrade nasprof"):
        Predictor.load(saved)


def test_other_device(saved: Path) -> None:
    with pytest.raises(PredictorError, match="fitted for device 'cpu', not 'pixel'"):
        Predictor.load(saved, device="pixel")


def test_broken_body_and_unknown_kind(saved: Path) -> None:
    doc = json.loads(saved.read_text())
    doc["body"]["regressors"]["conv"] = {"intercept_ms": "x"}
    saved.write_text(json.dumps(doc))
    with pytest.raises(PredictorError, match="corrupt"):
        Predictor.load(saved)
    _rewrite(saved, kind="magic")
    with pytest.raises(PredictorError, match="unknown kind 'magic'"):
        Predictor.load(saved)


def _set_split_rules(path: Path, value: object) -> Path:
    doc = json.loads(path.read_text())
    if value is None:
        del doc["body"]["split_rules"]
    else:
        doc["body"]["split_rules"] = value
    path.write_text(json.dumps(doc))
    return path


def test_split_rules_version(saved: Path, tmp_path: Path) -> None:
    """A kernel predictor records the split rules it was fitted with; an older file still predicts (the split
    is redone at predict time) but says it should be refitted, a newer or broken one is refused."""
    from nasprof.predictors.kernel.split import SPLIT_RULES

    assert json.loads(saved.read_text())["body"]["split_rules"] == SPLIT_RULES
    fresh = Predictor.load(saved)
    assert isinstance(fresh, KernelPredictor) and fresh.refit_reason is None
    old = Predictor.load(_set_split_rules(saved, None))  # written before the rules were versioned
    assert isinstance(old, KernelPredictor) and old.split_rules == 1
    assert old.refit_reason is not None and "refit" in old.refit_reason
    assert old.with_calibration(None).split_rules == 1  # copies keep it
    model = make_mixed_model(tmp_path / "m.onnx")
    assert old.predict(model) == fresh.predict(model)
    for bad, match in ((SPLIT_RULES + 1, "upgrade nasprof"), ("2", "split_rules '2'"), (0, "split_rules 0")):
        with pytest.raises(PredictorError, match=match):
            Predictor.load(_set_split_rules(saved, bad))


def test_cli_warns_about_a_stale_kernel_predictor(saved: Path, tmp_path: Path) -> None:
    _set_split_rules(saved, None)
    model = make_mixed_model(tmp_path / "m.onnx")
    for argv in (["predictor", "show", str(saved)], ["predict", str(model), "--predictor", str(saved)]):
        result = runner.invoke(app, argv)
        assert result.exit_code == 0, result.output
        assert "kernel-split rules v1" in result.stderr and "refit" in result.stderr


def test_reorder_times_with_the_profilers_cost_in_them_call_for_a_refit(saved: Path, tmp_path: Path) -> None:
    """Files fitted before the profiler's per-node cost was taken off the reorder samples predict as before
    but say to refit; a file for a device without reorders has nothing to refit for."""
    doc = json.loads(saved.read_text())
    doc["body"]["rules"]["nchwc_block"] = 16
    doc["metadata"].pop("profiler_node_cost_ms", None)
    saved.write_text(json.dumps(doc))
    old = Predictor.load(saved)
    assert isinstance(old, KernelPredictor) and old.refit_reason is not None
    assert "per node" in old.refit_reason and "refit" in old.refit_reason
    doc["metadata"]["profiler_node_cost_ms"] = 0.002
    saved.write_text(json.dumps(doc))
    assert Predictor.load(saved).refit_reason is None  # type: ignore[attr-defined]
    doc["body"]["rules"]["nchwc_block"] = 0
    del doc["metadata"]["profiler_node_cost_ms"]
    saved.write_text(json.dumps(doc))
    assert Predictor.load(saved).refit_reason is None  # type: ignore[attr-defined]
    result = runner.invoke(app, ["predictor", "show", str(_set_split_rules(saved, None))])
    assert result.exit_code == 0 and "kernel-split rules v1" in result.stderr


def test_not_a_predictor(tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text('{"hello": 1}')
    with pytest.raises(PredictorError, match="not a nasprof predictor"):
        Predictor.load(tmp_path / "x.json")


@pytest.mark.parametrize("args", [["predictor", "show"], ["predict", "m.onnx", "--predictor"]])
def test_cli_bad_files_exit_2_with_one_line(saved: Path, tmp_path: Path, args: list[str]) -> None:
    _rewrite(saved, schema_version=99)
    make_mixed_model(tmp_path / "m.onnx")
    argv = [a if a != "m.onnx" else str(tmp_path / "m.onnx") for a in args] + [str(saved)]
    result = runner.invoke(app, argv)
    assert result.exit_code == 2
    assert "schema_version 99" in result.stderr and "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1


def test_cli_show(saved: Path) -> None:
    result = runner.invoke(app, ["predictor", "show", str(saved), "--json", "-"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["kind"] == "kernel" and doc["device"] == "cpu" and "body" not in doc


def test_cli_predict_json_and_partial(saved: Path, tmp_path: Path) -> None:
    model = make_mixed_model(tmp_path / "m.onnx")
    result = runner.invoke(app, ["predict", str(model), "--predictor", str(saved), "--json", "-"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["latency_ms"] == pytest.approx(linear_kernel_predictor().predict(model), rel=1e-12)
    assert doc["complete"] is True
    unknown = make_mixed_model(tmp_path / "u.onnx", unknown_op="Softmax")
    result = runner.invoke(app, ["predict", str(unknown), "--predictor", str(saved)])
    assert result.exit_code == 2 and "Softmax" in result.stderr
    result = runner.invoke(app, ["predict", str(unknown), "--predictor", str(saved), "--allow-partial"])
    assert result.exit_code == 0 and "(partial)" in result.stdout


def test_cli_predict_refuses_other_device(saved: Path, tmp_path: Path) -> None:
    model = make_mixed_model(tmp_path / "m.onnx")
    result = runner.invoke(app, ["predict", str(model), "--predictor", str(saved), "--expect-device",
                                 "pixel"])
    assert result.exit_code == 2 and "not 'pixel'" in result.stderr


def test_cli_fit_needs_exactly_one_source(tmp_path: Path) -> None:
    result = runner.invoke(app, ["predictor", "fit", "-o", str(tmp_path / "p.json")])
    assert result.exit_code == 2 and "exactly one of" in result.stderr
