"""The lookup-table predictor: exact sums over a small hand-made table (real SQLite, real space)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import cli_runner

from nasprof.errors import PredictorError
from nasprof.predictors import LutPredictor, Predictor
from nasprof.space import Arch, get_space
from nasprof.tables import LatencyTable, TableEntry

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

    from nasprof.cli import app

    runner = cli_runner
    out = tmp_path / "lut.json"
    result = runner.invoke(
        app, ["predictor", "fit", "--table", str(table_path[0]), "-o", str(out), "--overhead-ms", "0.125"]
    )
    assert result.exit_code == 0, result.output
    assert "the table lacks" in result.stderr  # a partial table: said at fit time, not at the first search
    arch = archs[0].to_string()
    result = runner.invoke(app, ["predict", arch, "--predictor", str(out), "--json", "-"])
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


# -- the incremental (per-block) encoding gives exactly what the per-layer keys give ----------------------
def _slow_ids(p: LutPredictor, arch: object) -> list[int]:
    """Key ids the straightforward way: every layer of the built Network, looked up one by one."""
    return list(p.ids_of_keys([layer.key for layer in arch.network().layers()]))  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", ["mnasnet", "mobilenetv2"])
def test_fast_encoding_is_bit_identical_to_the_layer_path(name: str) -> None:
    space = get_space(name)
    entries = {layer.key: 0.001 + layer.macs / 7e7 for layer in space.distinct_layers(224)}
    p = LutPredictor(entries, overhead_ms=0.0007, scale=1.1, space=name, resolution=224, device="cpu")
    archs = space.sample(300, seed=21)
    slow_rows = [_slow_ids(p, a) for a in archs]
    width = max(map(len, slow_rows))
    slow = np.full((len(archs), width), p.pad_id, dtype=np.int64)
    for i, row in enumerate(slow_rows):
        slow[i, : len(row)] = row
    strings = [a.to_string() for a in archs]
    fresh = [Arch.from_string(s) for s in strings]  # new objects: nothing cached on them
    assert np.array_equal(p.encode_many(archs), slow)
    assert np.array_equal(p.encode_many(strings), slow)
    assert np.array_equal(p.encode_many(fresh), slow)  # now from the predictor's segment cache
    expected = p._lat[slow].sum(axis=1) + p.overhead_ms
    for batch in (archs, strings, fresh, slow):
        assert np.array_equal(p.predict_many(batch), expected)  # exact, not approx
    for a, s, row in zip(archs[:50], strings, slow_rows, strict=False):
        single = float(p._lat[np.array(row)].sum()) + p.overhead_ms
        assert p.predict(a) == p.predict(s) == p.predict(Arch.from_string(s)) == single
        assert p.encode(a).tolist() == p.encode(s).tolist() == row


def test_unknown_key_still_raises_after_segments_are_cached() -> None:
    space = get_space("mnasnet")
    layers = space.distinct_layers(224)
    archs = space.sample(40, seed=8)
    victim = archs[-1].layers()[5]  # a searchable layer of the last architecture
    entries = {layer.key: 1.0 for layer in layers if layer.key != victim.key}
    p = LutPredictor(entries, space="mnasnet", resolution=224, device="cpu")
    ok = [a for a in archs if victim.key not in {x.key for x in a.layers()}]
    bad = [a for a in archs if a not in ok]
    p.predict_many(ok)  # fills the segment cache with everything but the victim's segments
    for target in (bad[0], bad[0].to_string(), Arch.from_string(bad[0].to_string())):
        for _ in range(2):  # a failure is not cached as a success
            with pytest.raises(PredictorError, match=rf"no entry for {victim.key}"):
                p.predict(target)
    with pytest.raises(PredictorError, match=rf"no entry for {victim.key}"):
        p.predict_many([*ok, bad[0]])


# -- calibration by layer family and weight size ------------------------------------------------------------
FAMILY_TRUTH = {"conv": 0.9, "mbconv": 1.2, "dwsep": 1.05, "head": 1.0}
BETA = 0.03  # ms per MB of weights


@pytest.fixture
def family_setup(tmp_path: Path) -> tuple[LutPredictor, list, np.ndarray]:
    """A table of the distinct layers of 30 mnasnet architectures at 96 px (entry = 0.01 ms + MACs/1e8),
    with ``params`` recorded as the builder does, and 'measurements' made from known family factors and a
    known cost per MB of float32 weights."""
    from nasprof.predictors.lut.keys import key_family

    space = get_space("mnasnet")
    archs = space.sample(30, seed=11, resolution=96)
    path = tmp_path / "fam.db"
    layers = {layer.key: layer for a in archs for layer in a.layers()}
    with LatencyTable.open(path, create=True, metadata={**META, "resolution": 96}) as t:
        for k, layer in layers.items():
            t.put(TableEntry(key=k, median_ms=0.01 + layer.macs / 1e8, params=layer.params))
    p = LutPredictor.from_table(path, overhead_ms=0.005)
    measured = np.array(
        [
            0.005
            + sum(
                FAMILY_TRUTH[key_family(x.key)] * (p.entries[x.key] - 0.005) + BETA * x.params * 4 / 1e6
                for x in a.layers()
            )
            for a in archs
        ]
    )
    return p, archs, measured


def test_family_calibration_recovers_factors_and_weight_cost(family_setup: tuple) -> None:
    p, archs, measured = family_setup
    assert p.weight_mb and all(v > 0 for v in p.weight_mb.values())
    exact = p.calibrate(archs[:24], measured[:24], prior_weight=1e-12)
    assert exact.training_error["model"] == "families"
    # The head is the same in every network: no factor of its own, it keeps the single scale. That scale
    # is not exactly its true factor, so the others absorb a little; everything else is recovered.
    head = archs[0].layers()[-1].key
    assert "head" not in exact.group_factors and exact.factor(head) == exact.scale
    assert set(exact.group_factors) == {"conv", "mbconv", "dwsep"}
    for family, f in exact.group_factors.items():
        assert f == pytest.approx(FAMILY_TRUTH[family], rel=0.03)
    assert exact.ms_per_weight_mb == pytest.approx(BETA, rel=0.05)
    np.testing.assert_allclose(exact.predict_many(archs[24:]), measured[24:], rtol=0.01)
    # The default weak ridge prior (towards the single scale) trades a little exactness for stability.
    q = p.calibrate(archs[:24], measured[:24])
    for family, f in q.group_factors.items():
        assert f == pytest.approx(FAMILY_TRUTH[family], rel=0.1)
    np.testing.assert_allclose(q.predict_many(archs[24:]), measured[24:], rtol=0.01)
    # One scale cannot follow networks with other family mixes as closely.
    s = p.calibrate(archs[:24], measured[:24], model="scale")
    assert s.group_factors == {} and s.ms_per_weight_mb == 0.0
    worst = lambda x: np.max(np.abs(x.predict_many(archs[24:]) / measured[24:] - 1))  # noqa: E731
    assert worst(q) < worst(s)
    assert q.training_error["leave_one_out"]["rmspe"] < q.training_error["before"]["rmspe"]
    # Fast path and per-layer explanation agree with the fitted model.
    assert q.explain(archs[25]).latency_ms == pytest.approx(q.predict(archs[25]), rel=1e-12)


def test_family_calibration_fits_a_per_network_constant(family_setup: tuple) -> None:
    p, archs, measured = family_setup
    # Networks that each pay 0.03 ms less than their layers say (one layout conversion at each end instead
    # of one around every layer): the constant comes out negative, the factors stay.
    q = p.calibrate(archs[:24], measured[:24] - 0.03, prior_weight=1e-12)
    # The head is in every network, so only the sum of the constants is identified: the constant plus the
    # head at the single scale equals the true constant plus the head at its true factor.
    head = archs[0].layers()[-1].key
    head_ms = p.entries[head] - p.overhead_ms
    assert q.offset_ms + q.scale * head_ms == pytest.approx(-0.03 + FAMILY_TRUTH["head"] * head_ms, abs=1e-3)
    assert q.offset_ms < 0
    np.testing.assert_allclose(q.predict_many(archs[24:]), measured[24:] - 0.03, rtol=0.01)
    e = q.explain(archs[24])
    assert [x.name for x in e.parts][-1] == "per-network constant"
    assert e.latency_ms == pytest.approx(q.predict(archs[24]), rel=1e-12)


def test_family_calibration_round_trips_and_falls_back(family_setup: tuple, tmp_path: Path) -> None:
    p, archs, measured = family_setup
    q = p.calibrate(archs[:24], measured[:24])
    back = Predictor.load(q.save(tmp_path / "fam.json"))
    assert back.group_factors == q.group_factors and back.ms_per_weight_mb == q.ms_per_weight_mb
    assert back.offset_ms == q.offset_ms
    np.testing.assert_array_equal(back.predict_many(archs), q.predict_many(archs))
    # Too few networks for 5 parameters: the single scale, and the reason in the training error.
    few = p.calibrate(archs[:6], measured[:6])
    assert few.group_factors == {} and "single scale" in few.training_error["method"]
    with pytest.raises(PredictorError, match="calibration model"):
        p.calibrate(archs[:6], measured[:6], model="magic")


def test_bad_family_calibration_in_file_is_refused(family_setup: tuple, tmp_path: Path) -> None:
    import json

    p, archs, measured = family_setup
    out = p.calibrate(archs[:24], measured[:24]).save(tmp_path / "fam.json")
    good = out.read_text()
    for field, value, match in (
        ("group_factors", {"conv": -1.0}, "factor of conv"),
        ("group_factors", {"head": 9.0}, "factor of head"),
        ("group_factors", ["conv"], "must be objects"),
        ("ms_per_weight_mb", float("nan"), "ms_per_weight_mb"),
        ("offset_ms", float("inf"), "offset_ms"),
        ("weight_mb", {"k": -2.0}, "weight_mb"),
    ):
        doc = json.loads(good)
        doc["body"][field] = value
        out.write_text(json.dumps(doc))
        with pytest.raises(PredictorError, match=match):
            Predictor.load(out)


def test_cli_calibrates_by_family_and_validates_with_a_noise_floor(tmp_path: Path) -> None:
    """The whole LUT path on the real CPU: a real table, calibration on 10 measured networks, validation."""
    import json

    from nasprof.cli import app
    from nasprof.devices import MeasureSpec
    from nasprof.tables import build_table

    db = tmp_path / "t.db"
    build_table("mobilenetv2", 32, "cpu", db, spec=MeasureSpec(warmup=1, runs=5, sessions=1),
                time_per_entry_s=0, export_jobs=0)
    out = tmp_path / "lut.json"
    runner = cli_runner
    r = runner.invoke(app, ["predictor", "fit", "--table", str(db), "--calibrate", "10", "-o", str(out)])
    assert r.exit_code == 0, r.output
    # mobilenetv2's stem/last conv and head are the same in every network: only mbconv gets a factor.
    said = " ".join((r.stderr + r.stdout).split())  # rich wraps at the test console's 80 columns
    assert "factors mbconv" in said and "per-network constant" in said and "leave-one-out" in said
    assert "in-network ratios p10/p50/p90" in said
    p = Predictor.load(out)
    assert set(p.group_factors) == {"mbconv"} and p.training_error["networks"] == 10  # type: ignore[attr-defined]
    # Each calibration network was profiled once: every key of the table got an in-network ratio.
    assert set(p.layer_ratios) == set(p.entries)  # type: ignore[attr-defined]
    assert p.training_error["in_network"]["networks"] == 10
    off = tmp_path / "off.json"
    r = runner.invoke(app, ["predictor", "fit", "--table", str(db), "--calibrate", "10", "--no-in-network",
                            "-o", str(off)])
    assert r.exit_code == 0, r.output
    assert Predictor.load(off).layer_ratios == {}  # type: ignore[attr-defined]
    r = runner.invoke(app, ["predictor", "show", str(out)])
    assert r.exit_code == 0 and "per-network constant" in " ".join(r.stdout.split())
    report = tmp_path / "v.json"
    r = runner.invoke(app, ["validate", "--predictor", str(out), "--space", "mobilenetv2", "--samples", "3",
                            "--sessions", "2", "--runs", "5", "--json", str(report)])
    assert r.exit_code == 0, r.output
    assert "noise floor (even vs odd measurement rounds)" in " ".join(r.stdout.split())
    doc = json.loads(report.read_text())
    assert doc["noise_floor"]["n"] == 3 and doc["metadata"]["measure_spec"]["rounds"] == 2
    # Calibration measured in the same interleaved rounds as the validation, saved for later use.
    plain = tmp_path / "plain.json"
    assert runner.invoke(app, ["predictor", "fit", "--table", str(db), "-o", str(plain)]).exit_code == 0
    calibrated = tmp_path / "cal.json"
    r = runner.invoke(app, ["validate", "--predictor", str(plain), "--space", "mobilenetv2", "--samples", "3",
                            "--sessions", "2", "--runs", "5", "--calibrate", "9", "--save-predictor",
                            str(calibrated), "--json", str(report)])
    assert r.exit_code == 0, r.output
    assert "calibrated on 9 other networks measured in the same rounds" in " ".join(r.stdout.split())
    doc = json.loads(report.read_text())
    assert doc["metadata"]["calibration"]["networks"] == 9 and doc["metadata"]["calibration"]["seed"] == 1000
    q = Predictor.load(calibrated)
    assert set(q.group_factors) == {"mbconv"}  # type: ignore[attr-defined]
    assert q.layer_ratios and doc["metadata"]["calibration"]["in_network"]["networks"] == 9  # type: ignore[attr-defined]
    assert [row["predicted_ms"] for row in doc["rows"]] == pytest.approx(
        [q.predict(row["name"]) for row in doc["rows"]], rel=1e-12
    )
    for args, needle in (
        (["--save-predictor", str(tmp_path / "x.json")], "add --calibrate"),
        (["--calibrate", "9", "--calibrate-seed", "0"], "calibration and validation networks"),
    ):
        r = runner.invoke(app, ["validate", "--predictor", str(plain), "--space", "mobilenetv2", "--samples",
                                "3", "--seed", "0", *args])
        assert r.exit_code == 2 and needle in r.stderr
