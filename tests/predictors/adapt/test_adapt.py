"""``predictor adapt``: a device known only by end-to-end latencies, learned from a few networks.

The "device" here is synthetic but built the way runtimes behave: its latency is the cost of what a runtime
executes of each NB201 cell after its graph rewrites (one hypothesis held back as the truth), plus a fixed
part, plus measurement noise. Real devices are in the benchmark (benchmarks/adapt_nb201.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import cli_runner

from nasprof.cli import app
from nasprof.errors import PredictorError
from nasprof.predictors import Predictor
from nasprof.predictors.adapt import REWRITES, Rewrites, adapt, candidate_decompositions, cell_counts, plan
from nasprof.predictors.adapt.adapt import nb201_strings
from nasprof.predictors.measured import validate_measurements
from nasprof.tables.measurements import load_measurement_set

OPTS = {"input": (3, 32, 32), "outputs": 100, "C": 16, "N": 5}
TRUTH = Rewrites(fold_zero=False, cse=True, dead_code="none")  # as PyTorch Mobile behaves
COST_MS = np.array([0.05, 0.3, 0.4, 0.02, 0.03])  # conv1x1, conv3x3, avg_pool, *0, add per cell


def device_ms(archs: list[str], seed: int = 0, noise: float = 0.005) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ops = [a.strip("|").replace("|+|", "|").split("|") for a in archs]
    counts = np.array([cell_counts([t.split("~")[0] for t in o], TRUTH)[0] for o in ops], float)
    return (1.0 + counts @ COST_MS) * (1 + noise * rng.standard_normal(len(archs)))


ALL = nb201_strings()


def test_cell_counts_follow_the_rewrites() -> None:
    three_pools = ["avg_pool_3x3", "avg_pool_3x3", "skip_connect", "avg_pool_3x3", "skip_connect",
                   "skip_connect"]
    # Three avg_pool(x) of one tensor: three without CSE, one with it.
    assert cell_counts(three_pools, Rewrites(False, False, "none"))[0][2] == 3
    assert cell_counts(three_pools, Rewrites(False, True, "none"))[0][2] == 1
    # A 1x1 convolution whose only consumer multiplies it by zero: computed as written, gone with folding.
    dead = ["nor_conv_1x1", "none", "none", "nor_conv_3x3", "none", "none"]
    assert cell_counts(dead, Rewrites(False, False, "none"))[0][:2] == (1, 1)
    assert cell_counts(dead, Rewrites(True, False, "output"))[0][:2] == (0, 1)
    # A cell whose output is all zeros is a constant once zeros fold.
    assert cell_counts(["none"] * 6, Rewrites(True, False, "output"))[1]
    assert not cell_counts(["none"] * 6, Rewrites(False, False, "none"))[1]
    assert len(set(REWRITES)) == len(REWRITES) == 10


def test_adapt_finds_the_runtime_rewrites_and_predicts_the_rest() -> None:
    rng = np.random.default_rng(1)
    shots = [ALL[i] for i in rng.choice(len(ALL), 20, replace=False)]
    report = adapt(shots, device_ms(shots), device="board", options=OPTS)
    p = report.predictor
    assert p.decomposition.rewrites == TRUTH  # type: ignore[attr-defined]
    test = [ALL[i] for i in rng.choice(len(ALL), 500, replace=False)]
    rel = p.predict_many(test) / device_ms(test, seed=2) - 1
    assert np.mean(np.abs(rel) <= 0.10) >= 0.98
    # The leave-one-out error is an honest estimate: near the 0.5% noise, not zero.
    assert 0.001 < p.training_error["loo_rmspe"] < 0.05


def test_plan_spreads_over_the_hypotheses_and_is_reproducible() -> None:
    cands = ALL[::7]
    decs = candidate_decompositions(None, OPTS)
    a = plan(cands, 12, decs)
    assert a == plan(cands, 12, decs)
    assert len(set(a)) == 12
    # Planned shots do at least as well as the median of random draws of the same size.
    planned = adapt([cands[i] for i in a], device_ms([cands[i] for i in a]), device="b", options=OPTS)
    err_plan = np.abs(planned.predictor.predict_many(ALL[1::50]) / device_ms(ALL[1::50], 3) - 1)
    assert np.mean(err_plan <= 0.10) >= 0.95
    with pytest.raises(PredictorError, match="positive"):
        plan(cands, 0, decs)


def test_adapted_file_round_trip_and_foreign_input(tmp_path: Path) -> None:
    shots = ALL[:: len(ALL) // 15][:15]
    p = adapt(shots, device_ms(shots), device="pi5", options=OPTS, learned_from={"source": "pi@v1"}).predictor
    path = p.save(tmp_path / "pi5.json")
    q = Predictor.load(path)
    assert q.kind == "adapted" and q.device == "pi5"
    assert np.allclose(q.predict_many(ALL[:50]), p.predict_many(ALL[:50]))
    assert "pi@v1" in q.details()["learned from"]
    with pytest.raises(PredictorError, match="not a NAS-Bench-201"):
        q.predict("|nor_conv_5x5~0|+|none~0|none~1|+|none~0|none~1|none~2|")
    with pytest.raises(PredictorError, match="at least 2"):
        adapt(shots[:1], [1.0], device="x", options=OPTS)
    with pytest.raises(PredictorError, match="finite and positive"):
        adapt(shots[:3], [1.0, float("nan"), 2.0], device="x", options=OPTS)


def _write(path: Path, archs: list[str], lat: np.ndarray, spread: bool = True) -> Path:
    lines = ["arch,latency_ms" + (",spread_ms" if spread else "")]
    lines += [f"{a},{v:.6f}" + (f",{0.01 * v:.6f}" if spread else "")
              for a, v in zip(archs, lat, strict=True)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_cli_adapt_validate_predict(tmp_path: Path) -> None:
    runner = cli_runner
    plan_path = tmp_path / "plan.txt"
    r = runner.invoke(app, ["predictor", "adapt", "--plan", "8", "-o", str(plan_path)])
    assert r.exit_code == 0, r.output
    planned = plan_path.read_text().split()
    assert len(planned) == 8 and all(a.startswith("|") for a in planned)
    shots = planned + ALL[3::997]
    meas = _write(tmp_path / "board.csv", shots, device_ms(shots))
    out = tmp_path / "board.json"
    r = runner.invoke(app, ["predictor", "adapt", "--measurements", str(meas), "-o", str(out),
                            "--device-name", "board", "--json", "-"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout[r.stdout.index("{"):r.stdout.rindex("}") + 1])["chosen"].endswith("cse+no-dce")
    others = ALL[5::211]
    check = _write(tmp_path / "others.csv", others, device_ms(others, seed=9))
    vjson = tmp_path / "v.json"
    r = runner.invoke(app, ["validate", "--predictor", str(out), "--measurements", str(check), "--json",
                            str(vjson)])
    assert r.exit_code == 0, r.output
    doc = json.loads(vjson.read_text())
    for key in ("within_10pct", "within_5pct", "rmspe", "spearman", "kendall"):
        assert key in doc
    assert doc["within_10pct"] >= 0.95 and doc["spearman"] > 0.95
    assert doc["noise_floor"]["n"] == len(others)
    assert set(doc["rows"][0]) >= {"arch", "predicted_ms", "measured_ms"}
    lst = tmp_path / "archs.txt"
    lst.write_text("# two networks\n" + others[0] + "\n\n" + others[1] + "\n")
    r = runner.invoke(app, ["predict", "--predictor", str(out), "--archs", str(lst), "--csv",
                            str(tmp_path / "p.csv")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "p.csv").read_text().splitlines()[0] == "arch,predicted_ms"
    mset = load_measurement_set(str(check))
    assert validate_measurements(Predictor.load(out), mset).summary["n"] == len(others)


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ("|nor_conv_9x9~0|+|none~0|none~1|+|none~0|none~1|none~2|,1.0\n", "line"),
        ("|none~0|+|none~0|none~1|+|none~0|none~1|skip_connect~2|,-1\n", "line"),
        ("|none~0|+|none~0|none~1|+|none~0|none~1|skip_connect~2|,1.0\n", "at least 3"),
    ],
    ids=["not-nb201", "negative", "too-few"],
)
def test_cli_adapt_bad_input(tmp_path: Path, rows: str, message: str) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("arch,latency_ms\n" + rows)
    out = tmp_path / "p.json"
    r = cli_runner.invoke(app, ["predictor", "adapt", "--measurements", str(bad), "-o", str(out)])
    assert r.exit_code == 2, r.output
    assert message in r.output and "Traceback" not in r.output
    assert not out.exists()


def test_cli_adapt_options_contradicting_the_set(tmp_path: Path) -> None:
    shots = ALL[7::1500][:6]
    meas = _write(tmp_path / "m.csv", shots, device_ms(shots), spread=False)
    store = tmp_path / "store.db"
    r = cli_runner.invoke(app, ["measurements", "import", str(meas), "--name", "ninapro", "--device", "pi5",
                                 "--space", "nb201", "--input", "1x52x16", "--outputs", "18",
                                 "--store", str(store)])
    assert r.exit_code == 0, r.output
    out = tmp_path / "p.json"
    r = cli_runner.invoke(app, ["predictor", "adapt", "--measurements", "ninapro", "--store", str(store),
                                 "--input", "3x32x32", "-o", str(out)])
    assert r.exit_code == 2 and "input 1x52x16" in r.output, r.output
    r = cli_runner.invoke(app, ["predictor", "adapt", "--measurements", "ninapro", "--store", str(store),
                                 "-o", str(out)])
    assert r.exit_code == 0, r.output
    p = Predictor.load(out)
    assert p.device == "pi5"
    assert p.decomposition.options["input"] == (1, 52, 16)  # type: ignore[attr-defined]


def test_adapt_a_lookup_table_of_another_device(tmp_path: Path) -> None:
    """Beyond NB201: the local CPU's table of a space re-weighted per layer family for a device timed end to
    end (here one whose convolutions are relatively slower and whose blocks are faster)."""
    from nasprof.predictors import LutPredictor
    from nasprof.predictors.lut.keys import key_family
    from nasprof.space.spaces import get_space

    space = get_space("mobilenetv2")
    archs = space.sample(80, seed=4, resolution=96)
    entries = {layer.key: 1e-3 + layer.macs / 2e8 for a in archs for layer in a.layers()}
    cpu = LutPredictor(entries, device="cpu", space="mobilenetv2", resolution=96)
    factor = {"mbconv": 0.7}

    def board(batch: list) -> np.ndarray:
        return np.array([0.3 + sum(entries[ly.key] * factor.get(key_family(ly.key), 1.6) for ly in a.layers())
                         for a in batch])

    report = adapt(archs[:15], board(archs[:15]), device="board", source=cpu)
    rel = report.predictor.predict_many(archs[15:]) / board(archs[15:]) - 1
    assert np.max(np.abs(rel)) < 0.02
    path = report.predictor.save(tmp_path / "board.json")
    again = Predictor.load(path)  # the source travels inside the file
    assert np.allclose(again.predict_many(archs[15:20]), report.predictor.predict_many(archs[15:20]))
    # The plan spreads over the source's parts the same way.
    chosen = plan(archs, 6, candidate_decompositions(cpu))
    assert len(set(chosen)) == 6
