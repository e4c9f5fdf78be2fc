"""Validation: real end-to-end measurements on the local CPU against a predictor; report, CSV, plot, CLI."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from _predictor_helpers import linear_kernel_predictor, make_mixed_model
from conftest import cli_runner
from conftest import cli_runner as runner

from nasprof.cli import app
from nasprof.devices import MeasureSpec
from nasprof.errors import InputError, PredictorError
from nasprof.predictors import error_summary
from nasprof.predictors.validation import ValidationReport, ValidationRow, validate

FAST = MeasureSpec(warmup=1, runs=5, sessions=1)


def test_error_summary_exact() -> None:
    s = error_summary([1.1, 2.0, 2.7, 4.0], [1.0, 2.0, 3.0, 5.0])
    # relative errors: +10%, 0, -10%, -20%
    assert s["n"] == 4
    assert s["within_5pct"] == 0.25
    assert s["within_10pct"] == 0.75
    assert s["rmspe"] == pytest.approx(((0.01 + 0 + 0.01 + 0.04) / 4) ** 0.5)
    assert s["rmse_ms"] == pytest.approx(((0.01 + 0 + 0.09 + 1.0) / 4) ** 0.5)


def test_report_outputs(tmp_path: Path) -> None:
    rows = (ValidationRow("a", 1.1, 1.0), ValidationRow("b", 2.0, 2.0), ValidationRow("c", 4.0, 5.0))
    r = ValidationReport(rows, device="cpu", predictor_kind="kernel")
    assert [w.name for w in r.worst(2)] == ["c", "a"]
    d = r.to_dict()
    assert d["n"] == 3 and d["within_10pct"] == pytest.approx(2 / 3)
    assert [x["name"] for x in d["rows"]] == ["a", "b", "c"] and d["schema_version"] == 1
    with open(r.write_csv(tmp_path / "v.csv")) as f:
        table = list(csv.DictReader(f))
    assert [float(x["measured_ms"]) for x in table] == [1.0, 2.0, 5.0]
    assert r.plot(tmp_path / "v.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(InputError):
        ValidationReport((), device="cpu", predictor_kind="kernel")


def test_validate_models_on_real_cpu(tmp_path: Path) -> None:
    models = [make_mixed_model(tmp_path / "a.onnx"), make_mixed_model(tmp_path / "b.onnx")]
    p = linear_kernel_predictor()
    r = validate(p, "cpu", models=models, spec=FAST)
    assert [x.name for x in r.rows] == ["a", "b"]
    assert all(x.measured_ms > 0 for x in r.rows)
    assert r.rows[0].predicted_ms == p.predict(models[0])


def test_validate_refuses_other_device_and_missing_input(tmp_path: Path) -> None:
    with pytest.raises(PredictorError, match="validate it on its own device"):
        validate(linear_kernel_predictor(device="pixel"), "cpu", models=[tmp_path / "a.onnx"])
    with pytest.raises(InputError, match="--space"):
        validate(linear_kernel_predictor(), "cpu")


def test_validate_unseen_operator_needs_allow_partial(tmp_path: Path) -> None:
    model = make_mixed_model(tmp_path / "u.onnx", unknown_op="Softmax")
    with pytest.raises(PredictorError, match="--allow-partial"):
        validate(linear_kernel_predictor(), "cpu", models=[model], spec=FAST)
    r = validate(linear_kernel_predictor(), "cpu", models=[model], spec=FAST, allow_partial=True)
    assert r.n == 1


def test_cli_validate_models(tmp_path: Path) -> None:
    pred = linear_kernel_predictor().save(tmp_path / "k.json")
    a, b = make_mixed_model(tmp_path / "a.onnx"), make_mixed_model(tmp_path / "b.onnx")
    out = tmp_path / "v.json"
    result = runner.invoke(
        app,
        [
            "validate",
            "--predictor",
            str(pred),
            "--device",
            "cpu",
            "--runs",
            "3",
            "--sessions",
            "1",
            "--models",
            str(a),
            str(b),  # the form: --models A.onnx B.onnx
            "--json",
            str(out),
            "--csv",
            str(tmp_path / "v.csv"),
            "--plot",
            str(tmp_path / "v.png"),
            "--record",
            "mine",
            "--store",
            str(tmp_path / "m.db"),
        ],
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    assert doc["n"] == 2 and {"rmse_ms", "rmspe", "within_5pct", "within_10pct"} <= set(doc)
    assert {r["name"] for r in doc["rows"]} == {"a", "b"}
    assert (tmp_path / "v.png").exists() and (tmp_path / "v.csv").exists()
    # What it measured is now data: one version of two networks, validated against again with no device.
    from nasprof.tables.measurements import load_measurement_set

    mset = load_measurement_set("mine", store=tmp_path / "m.db")
    assert mset.version == 1 and len(mset) == 2 and mset.provenance["device"] == "cpu"
    again = runner.invoke(app, ["validate", "--predictor", str(pred), "--measurements", "mine", "--store",
                                str(tmp_path / "m.db"), "--json", "-"])
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["n"] == 2


def test_validate_space_samples_with_a_lut(tmp_path: Path) -> None:
    from nasprof.predictors import LutPredictor
    from nasprof.space import get_space

    [arch] = get_space("mnasnet").sample(1, seed=3, resolution=64)
    p = LutPredictor(
        {layer.key: 0.5 for layer in arch.layers()}, device="cpu", space="mnasnet", resolution=64
    )
    r = validate(p, "cpu", space="mnasnet", samples=1, seed=3, spec=FAST)
    assert [x.name for x in r.rows] == [arch.to_string()]
    assert r.rows[0].predicted_ms == 0.5 * len(arch.layers()) and r.rows[0].measured_ms > 0
    assert r.metadata["space"] == "mnasnet" and r.metadata["seed"] == 3


def test_interleaved_rounds_give_a_noise_floor(tmp_path: Path) -> None:
    models = [make_mixed_model(tmp_path / "a.onnx"), make_mixed_model(tmp_path / "b.onnx")]
    spec = MeasureSpec(warmup=1, runs=5, sessions=2)
    r = validate(linear_kernel_predictor(), "cpu", models=models, spec=spec)
    floor = r.noise_floor
    assert floor is not None and floor["n"] == 2
    for row in r.rows:  # each half is one round of 5 runs; together they are the measurement
        assert row.measured_halves_ms is not None and min(row.measured_halves_ms) > 0
    doc = r.to_dict()
    assert doc["noise_floor"] == floor and doc["metadata"]["measure_spec"]["rounds"] == 2
    one_round = validate(linear_kernel_predictor(), "cpu", models=models[:1], spec=FAST)
    assert one_round.noise_floor is None and one_round.to_dict()["noise_floor"] is None


def test_report_noise_floor_is_exact() -> None:
    rows = (ValidationRow("a", 1.0, 1.0, 0.0, (1.0, 1.1)), ValidationRow("b", 2.0, 2.0, 0.0, (2.0, 2.0)))
    floor = ValidationReport(rows, device="cpu", predictor_kind="lut").noise_floor
    assert floor is not None
    # 1.0 against 1.1 is -9.09%; 2.0 against 2.0 is 0.
    assert floor["within_5pct"] == 0.5 and floor["within_10pct"] == 1.0


def test_calibrate_in_validate_needs_a_space_or_a_kernel_predictor(tmp_path: Path) -> None:
    from nasprof.predictors import LutPredictor

    models = [make_mixed_model(tmp_path / "a.onnx")]
    spaceless = LutPredictor({"conv-input:8x8x3": 0.1}, device="cpu")
    with pytest.raises(PredictorError, match="knows its space"):
        validate(spaceless, "cpu", models=models, spec=FAST, calibrate=3)
    with pytest.raises(InputError, match="at least 2"):  # a kernel calibration fits factors: 2 or more
        validate(linear_kernel_predictor(), "cpu", models=models, spec=FAST, calibrate=1)
    with pytest.raises(InputError, match="--calibrate"):
        validate(linear_kernel_predictor(), "cpu", models=models, spec=FAST, calibrate=-1)


def _low_disk(monkeypatch: pytest.MonkeyPatch, free_bytes: int) -> None:
    """The free space ``export_many`` reads: a disk cannot be filled in a test, its reading can be set."""
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr("nasprof.space.export.shutil.disk_usage", lambda _: usage(10**12, 0, free_bytes))


def test_export_many_names_files_in_order_and_checks_the_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nasprof.space import export_many, get_space

    archs = get_space("mobilenetv2").sample(3, seed=0, resolution=32)
    paths = export_many(archs, tmp_path, "x")
    assert [p.name for p in paths] == ["x0.onnx", "x1.onnx", "x2.onnx"] and all(p.is_file() for p in paths)
    # Room for one more file but not two: it stops after the first, before the rest are written.
    _low_disk(monkeypatch, int(paths[0].stat().st_size * 1.5))
    (tmp_path / "low").mkdir()
    with pytest.raises(InputError, match="set TMPDIR to a larger disk"):
        export_many(archs, tmp_path / "low", "y")
    assert sorted(p.name for p in (tmp_path / "low").iterdir()) == ["y0.onnx"]


def test_cli_validate_too_many_samples_for_the_disk_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nasprof.predictors import LutPredictor
    from nasprof.space import get_space

    archs = get_space("mnasnet").sample(4, seed=3, resolution=64)
    keys = {layer.key for a in archs for layer in a.layers()}
    pred = LutPredictor({k: 0.5 for k in keys}, device="cpu", space="mnasnet", resolution=64)
    path = pred.save(tmp_path / "lut.json")
    _low_disk(monkeypatch, 1000)
    r = runner.invoke(app, ["validate", "--predictor", str(path), "--space", "mnasnet", "--samples", "4",
                            "--seed", "3"])
    assert r.exit_code == 2, r.output
    assert "needs about" in r.output and "Traceback" not in r.output


def test_validate_spreads_networks_over_identical_devices(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """`--device cpu-a,cpu-b`: each network measured in full (every round) by one of the two, which the
    rows and the CSV name. One of the devices must be the predictor's (its twin alone is refused: the
    environment check needs the two side by side), and a device in other settings is refused before anything
    is measured."""
    monkeypatch.setenv("NASPROF_DEVICES", str(tmp_path / "devices.toml"))
    runner = cli_runner
    for name, extra in (("cpu-a", []), ("cpu-b", []), ("cpu-c", ["--set", "allow_spinning=false"])):
        r = runner.invoke(app, ["devices", "add", name, "--backend", "cpu", *extra])
        assert r.exit_code == 0, r.output
    models = [make_mixed_model(tmp_path / f"m{i}.onnx") for i in range(5)]
    spec = MeasureSpec(warmup=1, runs=3, sessions=2)
    r = validate(linear_kernel_predictor(device="cpu-a"), "cpu-a,cpu-b", models=models, spec=spec)
    assert [x.name for x in r.rows] == [f"m{i}" for i in range(5)]
    assert {x.measured_on for x in r.rows} <= {"cpu-a", "cpu-b"} and all(x.measured_ms > 0 for x in r.rows)
    assert all(x.measured_halves_ms is not None for x in r.rows)  # both rounds on one device
    assert r.metadata["devices"] == ["cpu-a", "cpu-b"] and r.device == "cpu-a"
    with open(r.write_csv(tmp_path / "v.csv")) as f:
        assert [row["measured_on"] for row in csv.DictReader(f)] == [x.measured_on for x in r.rows]
    with pytest.raises(PredictorError, match="fitted for device 'cpu-a', not 'cpu-b'"):
        validate(linear_kernel_predictor(device="cpu-a"), "cpu-b", models=models, spec=spec)
    with pytest.raises(InputError, match="'cpu-a' and 'cpu-c' differ .*allow_spinning"):
        validate(linear_kernel_predictor(device="cpu-a"), "cpu-a,cpu-c", models=models, spec=spec)
