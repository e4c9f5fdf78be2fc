"""In-network layer ratios for lookup tables: key features, profiler cost, per-layer times, learned ratios."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from nasprof.errors import PredictorError
from nasprof.predictors import LutPredictor, Predictor
from nasprof.predictors.calibration.in_network import (
    RATIO_RANGE,
    key_feature_matrix,
    key_fields,
    layer_times,
    profile_networks,
    profiler_node_cost,
)
from nasprof.profiler.measurement import NodeTime
from nasprof.space import get_space
from nasprof.tables import LatencyTable, TableEntry

META = {"device": "cpu", "space": "mnasnet", "resolution": 96}
OVERHEAD = 0.005
DELTA = 0.003  # the profiler's cost per node in the synthetic profiles (ms)


def test_key_fields_and_features() -> None:
    key = "mbconv-input:14x14x64-output:7x7x88-expand:6-kernel:5-stride:2-se:0.25-act:h-swish-skip:pool"
    family, fields = key_fields(key)
    assert family == "mbconv"
    assert fields == {"input": "14x14x64", "output": "7x7x88", "expand": "6", "kernel": "5", "stride": "2",
                      "se": "0.25", "act": "h-swish", "skip": "pool"}  # a value may contain "-"
    assert key_fields("plain") == ("plain", {})
    keys = [key, key.replace("skip:pool", "skip:0"), key.replace("skip:pool", "skip:1").replace("6", "3", 1)]
    x = key_feature_matrix(keys, {k: 0.1 for k in keys}, {})
    assert x.shape[0] == 3 and np.isfinite(x).all()
    # skip 0 / 1 / pool are three categories, not two numbers and a word collapsed into one code.
    assert len({tuple(row) for row in x}) == 3


def test_profiler_node_cost_is_recovered() -> None:
    e2e = np.array([1.0, 2.0, 3.5, 0.8, 5.0])
    nodes = np.array([120, 60, 300, 40, 150])
    totals = 1.03 * e2e + DELTA * nodes
    assert profiler_node_cost(totals, e2e, nodes) == pytest.approx(DELTA, rel=1e-9)
    assert profiler_node_cost(totals[:2], e2e[:2], nodes[:2]) == 0.0  # too few networks to separate it
    assert profiler_node_cost(e2e - 0.01 * nodes, e2e, nodes) == 0.0  # never negative


def test_layer_times_subtract_the_node_cost_and_scale_to_the_network() -> None:
    nodes = [
        NodeTime("a", "Conv", "stem.0", 0.105),
        NodeTime("b", "Conv", "blocks.0", 0.205),
        NodeTime("c", "Relu", "blocks.0", 0.005),
        NodeTime("d", "ReorderOutput", "head.0", 0.085),
    ]
    # Σ (t − 0.005) = 0.1 + 0.2 + 0 + 0.08 = 0.38; the network took 0.765 ms, 0.005 of it per-call overhead.
    times = layer_times(nodes, ["stem.0", "blocks.0", "blocks.1", "head.0"], 0.765, 0.005, 0.005)
    assert times[:2] == pytest.approx([0.2, 0.4]) and times[3] == pytest.approx(0.16)
    assert np.isnan(times[2])  # no profiled node carries that block


def _true_ratio(key: str) -> float:
    """The planted in-network behaviour: wide early layers faster than alone, late layers slower."""
    h = int(key_fields(key)[1]["input"].split("x")[0])
    return 0.8 if h >= 48 else 1.4 if h <= 6 else 1.1


@pytest.fixture
def planted(tmp_path: Path) -> tuple[LutPredictor, list, np.ndarray, list]:
    """A table of 40 mnasnet networks' layers at 96 px (entry = overhead + 0.01 ms + MACs/1e8); each
    network 'measured' as overhead + Σ ratio(key)·(entry − overhead), and 'profiled' with two nodes per
    layer that each carry the profiler's cost and an unrelated 1.07× slowdown of the profiled pass."""
    archs = get_space("mnasnet").sample(40, seed=5, resolution=96)
    layers = {layer.key: layer for a in archs for layer in a.layers()}
    path = tmp_path / "t.db"
    with LatencyTable.open(path, create=True, metadata=META) as t:
        for k, layer in layers.items():
            t.put(TableEntry(key=k, median_ms=OVERHEAD + 0.01 + layer.macs / 1e8, params=layer.params))
    p = LutPredictor.from_table(path, overhead_ms=OVERHEAD)
    measured, profiles = [], []
    for a in archs:
        inside = [_true_ratio(x.key) * (p.entries[x.key] - OVERHEAD) for x in a.layers()]
        measured.append(OVERHEAD + sum(inside))
        profiles.append([
            NodeTime(f"{scope}/{j}", "Conv", scope, 1.07 * t / 2 + DELTA)
            for scope, t in zip(a.network().scopes(), inside, strict=True) for j in range(2)
        ])
    return p, archs, np.array(measured), profiles


def test_learned_ratios_follow_the_planted_ones(planted: tuple) -> None:
    p, archs, measured, profiles = planted
    q = p.learn_layer_ratios(archs[:30], measured[:30], profiles[:30])
    info = q.training_error["in_network"]
    assert info["networks"] == 30 and info["profiled_layers"] == sum(len(a.layers()) for a in archs[:30])
    assert info["profiler_node_cost_ms"] == pytest.approx(DELTA, rel=0.05)
    assert set(q.layer_ratios) == set(p.entries)  # every key of the table, profiled or not
    assert all(RATIO_RANGE[0] <= r <= RATIO_RANGE[1] for r in q.layer_ratios.values())
    unseen = {x.key for a in archs[30:] for x in a.layers()} - {x.key for a in archs[:30] for x in a.layers()}
    assert unseen  # keys no calibration network had: their ratios come from the key's features
    for k in unseen:
        assert q.layer_ratios[k] == pytest.approx(_true_ratio(k), rel=0.12)
    np.testing.assert_allclose(q.predict_many(archs[30:]), measured[30:], rtol=0.03)
    # The plain sum misses the planted effect by much more.
    assert np.max(np.abs(p.predict_many(archs[30:]) / measured[30:] - 1)) > 0.05
    # Learning again starts from the raw entries: the ratios do not compound.
    again = q.learn_layer_ratios(archs[:30], measured[:30], profiles[:30])
    assert again.layer_ratios == q.layer_ratios


def test_calibrate_with_profiles_round_trips(planted: tuple, tmp_path: Path) -> None:
    p, archs, measured, profiles = planted
    q = p.calibrate(archs[:30], measured[:30], profiles=profiles[:30])
    assert "in-network layer ratios" in q.training_error["method"]
    assert q.training_error["in_network"]["networks"] == 30 and "leave_one_out_note" in q.training_error
    assert "in-network ratio per key" in q.features
    np.testing.assert_allclose(q.predict_many(archs[30:]), measured[30:], rtol=0.03)
    back = Predictor.load(q.save(tmp_path / "p.json"))
    assert back.layer_ratios == q.layer_ratios  # type: ignore[attr-defined]
    np.testing.assert_array_equal(back.predict_many(archs), q.predict_many(archs))
    assert back.explain(archs[31]).latency_ms == pytest.approx(back.predict(archs[31]), rel=1e-12)
    with pytest.raises(PredictorError, match="one measurement and one profile"):
        p.calibrate(archs[:30], measured[:30], profiles=profiles[:29])


def test_bad_ratios_in_a_file_are_refused(planted: tuple, tmp_path: Path) -> None:
    p, archs, measured, profiles = planted
    out = p.learn_layer_ratios(archs[:30], measured[:30], profiles[:30]).save(tmp_path / "p.json")
    good = out.read_text()
    key = next(iter(p.entries))
    for value, match in (({key: 9.0}, "layer_ratios must lie"), ({key: "x"}, "map layer keys to numbers"),
                         ([1.0], "must be objects")):
        doc = json.loads(good)
        doc["body"]["layer_ratios"] = value
        out.write_text(json.dumps(doc))
        with pytest.raises(PredictorError, match=match):
            Predictor.load(out)
    doc = json.loads(good)
    del doc["body"]["layer_ratios"]  # a file written before in-network ratios: every ratio is 1
    out.write_text(json.dumps(doc))
    assert Predictor.load(out).layer_ratios == {}  # type: ignore[attr-defined]


def test_too_few_profiled_layers_is_an_error(planted: tuple) -> None:
    p, archs, measured, profiles = planted
    empty = [[] for _ in archs[:3]]
    with pytest.raises(PredictorError, match="profiled layers"):
        p.learn_layer_ratios(archs[:3], measured[:3], empty)
    # Calibration then goes on without ratios, and says why.
    q = p.calibrate(archs[:3], measured[:3], profiles=empty)
    assert q.layer_ratios == {} and "profiled layers" in q.training_error["in_network"]


def test_real_cpu_profiles_name_every_layer(tmp_path: Path) -> None:
    """On the real CPU, each layer of an exported network gets a profiled in-network time."""
    from nasprof.devices import MeasureSpec, get_device
    from nasprof.space import export_arch

    arch = get_space("mobilenetv2").sample(1, seed=0, resolution=32)[0]
    path = export_arch(arch, tmp_path / "a.onnx")
    (nodes,) = profile_networks([path], get_device("cpu"), MeasureSpec(warmup=1, runs=2, sessions=1)) or [[]]
    scopes = arch.network().scopes()
    times = layer_times(nodes, scopes, 1.0, 0.0, 0.0)
    assert len(times) == len(scopes) and all(np.isfinite(t) and t > 0 for t in times)
    assert sum(times) == pytest.approx(1.0)
    # A device without per-node times (the MCU estimate) gives no profiles: calibration then runs without.
    mcu = get_device("stm32f746")
    assert profile_networks([path], mcu, MeasureSpec(warmup=1, runs=2, sessions=1)) is None
