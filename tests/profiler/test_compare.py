"""`nasprof compare`: ratio of medians, bootstrap interval, Mann-Whitney U, verdict, refusals."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import cli_runner, make_conv_model

from nasprof.cli import app
from nasprof.errors import InputError
from nasprof.profiler.compare import compare_measurements, load_measurement
from nasprof.profiler.measurement import Measurement, NodeTime


def _m(center: float, n: int = 200, sessions: int = 5, seed: int = 0, **meta: object) -> Measurement:
    rng = np.random.default_rng(seed)
    samples = center * (1 + 0.03 * np.abs(rng.standard_normal(n)))
    return Measurement("cpu", "cpu", tuple(samples), session_index=tuple(np.arange(n) * sessions // n),
                       metadata={"threads": 1, "opt_level": "all", "timed_call": "run", **meta})


def test_verdicts_follow_the_data() -> None:
    base = _m(1.0, seed=1)
    faster, same, slower = _m(0.8, seed=2), _m(1.0, seed=3), _m(1.3, seed=4)
    got = compare_measurements([base, faster, same, slower], ["a", "b", "c", "d"])
    assert [c.verdict for c in got] == ["faster", "not significant", "slower"]
    assert got[0].ratio == pytest.approx(faster.median_ms / base.median_ms)
    lo, hi = got[0].ci95
    assert lo < got[0].ratio < hi < 1.0
    assert got[1].ci95[0] <= 1.0 <= got[1].ci95[1] and got[1].p_value > 0.05
    assert got[2].p_value < 1e-10 and got[2].resampled == "sessions"
    assert compare_measurements([base, faster])[0].to_dict() == got[0].to_dict() | {"other": "#1",
                                                                                      "baseline": "#0"}


def test_few_sessions_resample_samples_and_per_block_deltas_are_listed() -> None:
    nodes_a = (NodeTime("n1", "Conv", "/blocks.0", 0.5), NodeTime("n2", "Relu", "/blocks.1", 0.2))
    nodes_b = (NodeTime("n1", "Conv", "/blocks.0", 0.3), NodeTime("n2", "Relu", "/blocks.1", 0.2))
    a = Measurement("cpu", "cpu", (1.0, 1.01, 0.99, 1.02), per_node=nodes_a)
    b = Measurement("cpu", "cpu", (0.8, 0.81, 0.79, 0.82), per_node=nodes_b)
    (c,) = compare_measurements([a, b])
    assert c.resampled == "samples"
    assert c.per_block[0] == {"block": "/blocks.0", "baseline_ms": 0.5, "other_ms": 0.3,
                              "delta_ms": pytest.approx(-0.2), "ratio": pytest.approx(0.6)}
    assert [r["op_type"] for r in c.per_op_type] == ["Conv", "Relu"]


def test_refusals() -> None:
    base = _m(1.0)
    with pytest.raises(InputError, match=r"not timed like #0 \(threads: 1 vs 4\); pass --force"):
        compare_measurements([base, _m(1.0, threads=4)])
    forced = compare_measurements([base, _m(1.0, threads=4)], force=True)
    assert forced[0].differences == ("threads: 1 vs 4",)
    estimate = Measurement("stm32f746", "mcu", (5.0,), estimated=True)
    with pytest.raises(InputError, match="an estimate and #0 is a measurement"):
        compare_measurements([base, estimate], force=True)
    with pytest.raises(InputError, match="at least two measurements"):
        compare_measurements([base])
    with pytest.raises(InputError, match="--alpha"):
        compare_measurements([base, base], alpha=0.0)


def test_two_estimates_compare_as_a_plain_ratio_without_statistics() -> None:
    a = Measurement("stm32f746", "mcu", (5.0,), estimated=True)
    b = Measurement("stm32f746", "mcu", (4.0,), estimated=True)
    (c,) = compare_measurements([a, b])
    assert c.ratio == pytest.approx(0.8) and c.ci95 == (c.ratio, c.ratio)
    assert c.verdict == "estimated faster" and c.resampled == "none"
    d = c.to_dict()
    assert d["p_value"] is None and d["estimated"] is True
    assert compare_measurements([a, a])[0].verdict == "estimated equal"


def test_compare_of_two_thousand_sample_measurements_is_fast() -> None:
    # The target (<= 0.5 s) is a benchmark figure; this only guards against an accidental O(n^2) path.
    a, b = _m(1.0, n=1000, sessions=10), _m(1.02, n=1000, sessions=10, seed=5)
    t0 = time.perf_counter()
    compare_measurements([a, b])
    assert time.perf_counter() - t0 < 10.0


def test_cli_on_real_measurements(tmp_path: Path) -> None:
    runner = cli_runner
    small = make_conv_model(tmp_path / "small.onnx", channels=8, size=16)
    big = make_conv_model(tmp_path / "big.onnx", channels=32, size=48, blocks=3)
    for model, out in ((small, "a.json"), (big, "b.json")):
        r = runner.invoke(app, ["measure", str(model), "--runs", "40", "--sessions", "5", "--warmup", "5",
                                "--json", str(tmp_path / out)])
        assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["compare", str(tmp_path / "a.json"), str(tmp_path / "b.json"),
                            "--json", str(tmp_path / "c.json"), "--plot", str(tmp_path / "c.png")])
    assert r.exit_code == 0, r.output
    doc = json.loads((tmp_path / "c.json").read_text())
    assert doc["kind"] == "nasprof.comparison" and doc["comparisons"][0]["verdict"] == "slower"
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"
    r = runner.invoke(app, ["compare", str(tmp_path / "a.json"), str(tmp_path / "b.json")])
    assert r.exit_code == 0 and "slower" in r.stdout
    (tmp_path / "other.json").write_text(json.dumps({"schema_version": 1, "kind": "nasprof.comparison"}))
    for argv, message in (
        ([str(tmp_path / "a.json")], "at least two measurements"),
        ([str(tmp_path / "a.json"), str(tmp_path / "other.json")], "not a measurement written by"),
        ([str(tmp_path / "a.json"), str(tmp_path / "missing.json")], "no such file"),
        ([str(tmp_path / "a.json"), str(tmp_path / "b.json"), "--json", str(tmp_path / "a.json")], "--json"),
    ):
        r = runner.invoke(app, ["compare", *argv])
        assert r.exit_code == 2 and message in r.output, (argv, r.output)
    assert load_measurement(tmp_path / "a.json").n == 200
