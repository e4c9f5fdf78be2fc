"""The lookup-table predictor: exact sums over a small hand-made table (real SQLite, real space)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nasprof.errors import PredictorError
from nasprof.space import get_space
from nasprof.tables import LatencyTable, TableEntry
from nasprof.tables.predictors import LutPredictor, Predictor

META = {
    "device": "cpu",
    "space": "mnasnet",
    "resolution": 224,
    "measure_spec": {"threads": 1, "opt_level": "all"},
}


@pytest.fixture
def archs() -> list:
    return get_space("mnasnet").sample(3, seed=7)


@pytest.fixture
def table_path(tmp_path: Path, archs: list) -> tuple[Path, dict[str, float]]:
    """Entries for the layers of the first two architectures: entry i = 0.25 * (i + 1) ms (exact)."""
    keys: list[str] = []
    for a in archs[:2]:
        for layer in a.layers():
            if layer.key not in keys:
                keys.append(layer.key)
    values = {k: 0.25 * (i + 1) for i, k in enumerate(keys)}
    path = tmp_path / "t.db"
    with LatencyTable.open(path, create=True, metadata=META) as t:
        for k, v in values.items():
            t.put(TableEntry(key=k, median_ms=v))
        t.put(TableEntry.failed("broken-key", "export failed"))
    return path, values


def test_sum_of_entries_is_exact(table_path: tuple[Path, dict[str, float]], archs: list) -> None:
    path, values = table_path
    p = LutPredictor.from_table(path)
    assert p.device == "cpu" and p.space == "mnasnet" and p.resolution == 224
    assert p.metadata["failed_entries"] == 1 and "broken-key" not in p.entries
    for a in archs[:2]:
        expected = sum(values[layer.key] for layer in a.layers())  # stem and head included
        assert p.predict(a) == expected
        assert p.predict(a.to_string()) == expected  # architecture strings work too
        assert p.explain(a).latency_ms == expected


def test_overhead_is_paid_once_per_network(table_path: tuple[Path, dict[str, float]], archs: list) -> None:
    path, values = table_path
    p = LutPredictor.from_table(path, overhead_ms=0.125)
    a = archs[0]
    layers = a.layers()
    assert p.predict(a) == pytest.approx(
        sum(values[x.key] for x in layers) - (len(layers) - 1) * 0.125, abs=1e-12
    )


def test_predict_many_matches_predict_and_accepts_encoded_ids(
    table_path: tuple[Path, dict[str, float]], archs: list
) -> None:
    p = LutPredictor.from_table(table_path[0], overhead_ms=0.0625)
    single = np.array([p.predict(a) for a in archs[:2]])
    np.testing.assert_allclose(p.predict_many(archs[:2]), single, rtol=0, atol=1e-12)
    ids = p.encode_many(archs[:2])
    assert ids.dtype == np.int64 and ids.shape[0] == 2
    np.testing.assert_allclose(p.predict_many(ids), single, rtol=0, atol=1e-12)
    with pytest.raises(PredictorError, match="key ids"):
        p.predict_many(np.array([[p.pad_id + 1]]))


def test_missing_key_is_named(table_path: tuple[Path, dict[str, float]], archs: list) -> None:
    p = LutPredictor.from_table(table_path[0])
    missing = [layer.key for layer in archs[2].layers() if layer.key not in p.entries]
    assert missing, "the third architecture should need keys the table lacks"
    with pytest.raises(PredictorError, match=rf"no entry for {missing[0]}"):
        p.predict(archs[2])
    e = p.explain(archs[2])
    assert not e.complete and e.missing == tuple(missing)


def test_wrong_inputs(table_path: tuple[Path, dict[str, float]], tmp_path: Path) -> None:
    p = LutPredictor.from_table(table_path[0])
    with pytest.raises(PredictorError, match="not ONNX files"):
        p.predict(tmp_path / "model.onnx")
    with pytest.raises(PredictorError, match="cannot parse architecture"):
        p.predict("not-an-arch")
    other = get_space("mnasnet").sample(1, seed=1, resolution=160)[0]
    with pytest.raises(PredictorError, match="resolution 160"):
        p.predict(other)


def test_file_round_trip(table_path: tuple[Path, dict[str, float]], archs: list, tmp_path: Path) -> None:
    p = LutPredictor.from_table(table_path[0], overhead_ms=0.03125)
    out = p.save(tmp_path / "lut.json")
    q = Predictor.load(out, device="cpu")
    assert isinstance(q, LutPredictor)
    assert q.entries == p.entries and q.overhead_ms == p.overhead_ms
    assert q.predict(archs[0]) == p.predict(archs[0])
    assert q.measure_spec == {"threads": 1, "opt_level": "all"}


def test_empty_table_is_refused(tmp_path: Path) -> None:
    with LatencyTable.open(tmp_path / "e.db", create=True, metadata=META):
        pass
    with pytest.raises(PredictorError, match="no measured entries"):
        LutPredictor.from_table(tmp_path / "e.db")


def test_fallback_fills_a_missing_key_and_is_flagged(tmp_path: Path, archs: list) -> None:
    from _predictor_helpers import linear_kernel_predictor

    layers = archs[0].layers()
    dropped = layers[3].key
    values = {layer.key: 0.5 for layer in layers if layer.key != dropped}
    p = LutPredictor(values, device="cpu", space="mnasnet", resolution=224)
    with pytest.raises(PredictorError, match=dropped):
        p.predict(archs[0])
    q = p.with_fallback(linear_kernel_predictor(level="all"))
    e = q.explain(archs[0])
    assert e.complete and e.fallback == (dropped,)
    [part] = [x for x in e.parts if x.source == "fallback"]
    assert part.name == dropped and part.latency_ms > 0
    known = sum(0.5 for layer in layers if layer.key != dropped)
    assert q.predict(archs[0]) == pytest.approx(known + part.latency_ms, rel=1e-12)


def test_cli_fit_and_predict(table_path: tuple[Path, dict[str, float]], archs: list, tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from nasprof.cli import app

    runner = CliRunner()
    out = tmp_path / "lut.json"
    result = runner.invoke(
        app, ["predictor", "fit", "--table", str(table_path[0]), "-o", str(out), "--overhead-ms", "0.125"]
    )
    assert result.exit_code == 0, result.output
    arch = archs[0].to_string()
    result = runner.invoke(app, ["predict", arch, "--predictor", str(out), "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    layers = archs[0].layers()
    expected = sum(table_path[1][x.key] for x in layers) - (len(layers) - 1) * 0.125
    assert doc["latency_ms"] == pytest.approx(expected, abs=1e-12) and doc["complete"]
    result = runner.invoke(app, ["predict", archs[2].to_string(), "--predictor", str(out)])
    assert result.exit_code == 2 and "cannot predict" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    result = runner.invoke(app, ["predictor", "show", str(out)])
    assert result.exit_code == 0 and "lut" in result.stdout


def test_calibrate_recovers_an_exact_scale(table_path: tuple[Path, dict[str, float]], archs: list) -> None:
    p = LutPredictor.from_table(table_path[0], overhead_ms=0.125)
    sums = p.predict_many(archs[:2]) - 0.125
    measured = 1.25 * sums + 0.125  # a chain 25% slower than its isolated layers
    q = p.calibrate(archs[:2], measured)
    assert q.scale == pytest.approx(1.25, rel=1e-12)
    np.testing.assert_allclose(q.predict_many(archs[:2]), measured, rtol=1e-12)
    assert (
        q.training_error["after"]["within_5pct"] == 1.0 and q.training_error["before"]["within_10pct"] == 0.0
    )
    assert p.scale == 1.0  # calibrate returns a copy
    with pytest.raises(PredictorError, match="one measurement per architecture"):
        p.calibrate(archs[:2], [1.0])


def test_absurd_scale_in_file_is_refused(table_path: tuple[Path, dict[str, float]], tmp_path: Path) -> None:
    import json

    out = LutPredictor.from_table(table_path[0]).save(tmp_path / "lut.json")
    doc = json.loads(out.read_text())
    doc["body"]["scale"] = 40.0
    out.write_text(json.dumps(doc))
    with pytest.raises(PredictorError, match="scale must lie"):
        Predictor.load(out)
