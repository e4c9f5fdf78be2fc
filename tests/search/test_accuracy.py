"""`nasprof search --accuracy`: tables, callables and accuracy predictors, counted as queries; the confidence
constraint; `--truth` and the regret; every bad input one line and exit code 2.

The landscape is synthetic: NB201's 15,625 cells with an additive accuracy and latency (per operation and
edge), and an adapted latency predictor fitted on 20 of them. Nothing here reads the shared NB201 data.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from nasprof.cli import app
from nasprof.errors import InputError, PredictorError
from nasprof.predictors.accuracy import AccuracyPredictor, OneHotEncoding
from nasprof.predictors.adapt import adapt
from nasprof.search.accuracy import CallableAccuracy, QueriedAccuracy, TableAccuracy
from nasprof.search.api import search
from nasprof.search.confidence import LatencyBound
from nasprof.space import get_space
from nasprof.space.spaces.nb201 import NB201_OPS

ACC = {"none": 0.0, "skip_connect": 2.0, "nor_conv_1x1": 4.0, "nor_conv_3x3": 6.0, "avg_pool_3x3": 1.0}
COST = {"none": 0.0, "skip_connect": 0.01, "nor_conv_1x1": 0.2, "nor_conv_3x3": 0.5, "avg_pool_3x3": 0.1}
EDGE = np.array([1.0, 0.8, 1.2, 0.6, 1.0, 1.4])
OPTIONS = {"input": (1, 52, 16), "outputs": 18}


def accuracy_of(ops: tuple[str, ...]) -> float:
    return 40.0 + float(sum(ACC[o] * e for o, e in zip(ops, EDGE, strict=True)))


def latency_of(ops: tuple[str, ...]) -> float:
    return 0.3 + float(sum(COST[o] * e for o, e in zip(ops, EDGE, strict=True)))


@pytest.fixture(scope="module")
def land(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    d = tmp_path_factory.mktemp("land")
    space = get_space("nb201")
    archs = space.all_archs(**OPTIONS)
    strings = [a.to_string() for a in archs]
    acc = np.array([accuracy_of(a.blocks) for a in archs])
    lat = np.array([latency_of(a.blocks) for a in archs])
    table = d / "acc.csv"
    table.write_text("arch,accuracy\n" + "".join(f"{s},{v}\n" for s, v in zip(strings, acc, strict=True)))
    truth = d / "truth.csv"
    truth.write_text("arch,latency_ms\n" + "".join(f"{s},{v}\n" for s, v in zip(strings, lat, strict=True)))
    rng = np.random.default_rng(0)
    shots = [int(i) for i in rng.choice(len(archs), 20, replace=False)]
    noisy = lat[shots] * (1 + 0.03 * rng.standard_normal(20))
    predictor = adapt([archs[i] for i in shots], noisy, device="toy", options=OPTIONS).predictor
    pred_path = d / "toy.json"
    predictor.save(pred_path)
    return {"dir": d, "space": space, "strings": strings, "acc": acc, "lat": lat, "table": table,
            "truth": truth, "predictor": predictor, "predictor_path": pred_path}


def run(land: dict[str, Any], *args: str, json_out: Path | None = None) -> Any:
    argv = ["search", "--space", "nb201", "--predictor", str(land["predictor_path"]), "--target-ms", "1.5",
            *args]
    if json_out is not None:
        argv += ["--json", str(json_out)]
    return CliRunner().invoke(app, argv)


def test_table_search_counts_queries_and_records_the_curve(land: dict[str, Any]) -> None:
    table = TableAccuracy.from_file(land["table"], get_space("nb201"))
    r = search("nb201", land["predictor"], 1.5, accuracy=table, max_queries=60, strategy="evolution",
               strategy_options={"population_size": 20, "sample_size": 5}, seed=1)
    assert r.accuracy_source is not None and r.accuracy_source["queries"] == 60
    assert r.options == {"C": 16, "N": 5, "input": (1, 52, 16), "outputs": 18}  # the predictor's options
    # every accuracy is the table's, and the queries never exceed the distinct classes asked
    space = get_space("nb201")
    lookup = dict(zip(land["strings"], land["acc"], strict=True))
    classes = {space.canonical(space.arch(s)).to_string() for s in r.archs}
    assert r.accuracy_source["queries"] <= len(classes)
    first: dict[str, str] = {}  # an isomorphism class is asked once: its first member's value is kept
    for s, a in zip(r.archs, r.scores.accuracy, strict=True):
        first.setdefault(space.canonical(space.arch(s)).to_string(), s)
        assert a == lookup[first[space.canonical(space.arch(s)).to_string()]]
    curve = r.to_dict()["curve"]
    assert [p["queries"] for p in curve] == sorted({p["queries"] for p in curve})
    assert curve[-1]["queries"] == 60
    rewards = [p["reward"] for p in curve]
    assert rewards == sorted(rewards) and rewards[-1] == r.best.reward
    assert r.best_within(60).reward == r.best.reward
    assert r.best_within(1) is None or r.best_within(1).reward <= r.best.reward


def test_cli_truth_reports_regret_and_never_returns_a_network_over_its_constraint(
    land: dict[str, Any], tmp_path: Path
) -> None:
    out = tmp_path / "r.json"
    res = run(land, "--reward", "hard", "--accuracy", str(land["table"]), "--max-queries", "80",
              "--truth", str(land["truth"]), json_out=out)
    assert res.exit_code == 0, res.output
    assert "regret" in res.stdout and "95% confidence" in res.stdout
    doc = json.loads(out.read_text())
    bound = doc["latency_bound"]
    assert bound["confidence"] == 0.95 and "leave-one-out" in bound["method"]
    best = doc["best"]
    assert best["latency_interval_ms"][1] == pytest.approx(best["latency_ms"] * (1 + bound["upper_rel"]))
    assert best["latency_interval_ms"][1] <= 1.5  # predicted x (1 + q) <= T
    assert all(c["latency_interval_ms"][1] <= 1.5 for c in doc["top"])
    reg = doc["regret"]
    feasible = land["lat"] <= 1.5
    assert reg["optimum"]["accuracy"] == pytest.approx(land["acc"][feasible].max())
    assert reg["feasible_networks"] == int(feasible.sum()) and reg["networks"] == 15625
    ret = reg["returned"]
    assert ret["arch"] == best["arch"] and ret["over_target"] is False
    assert reg["regret_points"] == pytest.approx(reg["optimum"]["accuracy"] - ret["accuracy"])
    assert reg["regret_points"] >= 0 and reg["points_scale"] == 1.0
    assert doc["accuracy"]["queries"] == 80 and doc["accuracy"]["kind"] == "table"


def test_minimized_metric_picks_the_lowest_error(land: dict[str, Any], tmp_path: Path) -> None:
    err = tmp_path / "err.csv"
    err.write_text("arch,error\n" + "".join(f"{s},{100 - v}\n" for s, v in zip(land["strings"], land["acc"],
                                                                              strict=True)))
    table = TableAccuracy.from_file(err, get_space("nb201"), minimize=True)
    r = search("nb201", land["predictor"], 1.5, reward="hard", accuracy=table, max_queries=150, seed=0,
               strategy="random")
    assert r.minimize and r.reward.to_dict()["minimize"] is True
    feas = r.scores.feasible
    assert r.best.accuracy == pytest.approx(r.scores.accuracy[feas].min())  # the lowest error that fits
    assert r.best.reward == pytest.approx(-r.best.accuracy)
    front = r.pareto
    assert [c.accuracy for c in front] == sorted((c.accuracy for c in front), reverse=True)


def test_callables_and_accuracy_predictors_are_sources(land: dict[str, Any], tmp_path: Path) -> None:
    module = tmp_path / "myacc.py"
    module.write_text("calls = []\n"
                      "def acc(archs):\n"
                      "    calls.append(len(archs))\n"
                      "    return [50.0 + a.count('conv') for a in archs]\n")
    src = CallableAccuracy(f"{module}:acc")
    r = search("nb201", land["predictor"], 1.5, accuracy=src, max_queries=30, strategy="random", seed=2)
    assert r.accuracy_source["kind"] == "callable" and r.accuracy_source["queries"] == 30
    assert sum(src.fn.__globals__["calls"]) == 30  # each query asked once
    space = get_space("nb201")
    encoding = OneHotEncoding.for_space(space)
    coef = [ACC[v] * EDGE[i] for i, (_, values) in enumerate(encoding.decisions)
            for v in values]
    pred = AccuracyPredictor(space="nb201", encoding=encoding,
                             model={"type": "ridge", "coef": coef, "intercept": 40.0})
    path = tmp_path / "acc.json"
    pred.save(path)
    res = run(land, "--accuracy", str(path), "--max-queries", "40", "--strategy", "random",
              json_out=tmp_path / "p.json")
    assert res.exit_code == 0, res.output
    doc = json.loads((tmp_path / "p.json").read_text())
    best = doc["best"]
    assert best["accuracy"] == pytest.approx(accuracy_of(space.arch(best["arch"]).blocks))
    assert doc["accuracy"]["kind"] == "predictor"


def test_latency_bound_reads_the_predictors_own_error() -> None:
    class P:
        training_error: dict[str, Any] = {}

    adapted = P()
    adapted.training_error = {"n": 20, "loo_rmspe": 0.05,
                              "loo_rel_quantiles": {"0.05": -0.1, "0.5": 0.0, "0.95": 0.08}}
    b = LatencyBound.for_predictor(adapted, 0.95)
    # pred/true - 1 >= -0.1 with 95%: true <= pred / 0.9
    assert b.upper_rel == pytest.approx(1 / 0.9 - 1) and b.lower_rel == pytest.approx(1 / 1.08 - 1)
    assert "quantiles" in b.method and b.networks == 20
    normal = LatencyBound.for_predictor(adapted, 0.9)  # no stored quantile: the RMSPE as a normal spread
    assert normal.upper_rel == pytest.approx(1.2815515655 * 0.05, rel=1e-6) and "RMSPE" in normal.method
    lut = P()
    lut.training_error = {"networks": 12, "leave_one_out": {"rmspe": 0.04}}
    assert LatencyBound.for_predictor(lut).upper_rel == pytest.approx(1.6448536 * 0.04, rel=1e-6)
    bare = LatencyBound.for_predictor(P())
    assert bare.upper_rel == 0 and "point estimate" in bare.method
    with pytest.raises(InputError, match="strictly between 0 and 1"):
        LatencyBound.for_predictor(adapted, 1.0)


def test_queries_cache_repeats_and_isomorphic_networks() -> None:
    space = get_space("nb201")
    asked: list[list[str]] = []

    def fn(archs: list[str]) -> list[float]:
        asked.append(archs)
        return [60.0] * len(archs)

    q = QueriedAccuracy(CallableAccuracy(fn), space, max_queries=2)
    a = space.arch("|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|")
    iso = space.arch("|nor_conv_3x3~0|+|none~0|nor_conv_1x1~1|+|skip_connect~0|none~1|none~2|")  # dead edges
    assert space.canonical(a) == space.canonical(iso)
    q.score_many([a, a, iso], np.zeros(3, np.int64))
    assert q.queries == 1 and q.trace == [1, 1, 1] and len(asked) == 1
    b = space.arch("|nor_conv_3x3~0|+|none~0|none~1|+|nor_conv_3x3~0|none~1|none~2|")
    c = space.arch("|nor_conv_3x3~0|+|none~0|none~1|+|avg_pool_3x3~0|none~1|none~2|")
    q.score_many([b], np.zeros(1, np.int64))
    with pytest.raises(InputError, match="exceed --max-queries 2"):
        q.score_many([c], np.zeros(1, np.int64))


# -- bad input: one line, exit code 2, no traceback, the controller state untouched ------------------------
@pytest.fixture(scope="module")
def saved_state(tmp_path_factory: pytest.TempPathFactory) -> str:
    from nasprof.search.strategies.rl import RLController

    path = tmp_path_factory.mktemp("rl") / "state.json"
    RLController(get_space("nb201"), seed=0).save(path)
    return path.read_text()


#: Each state file the ``state`` fixture wrote: (its bytes, its modification time in ns).
_WRITTEN: dict[Path, tuple[bytes, int]] = {}


@pytest.fixture
def state(tmp_path: Path, saved_state: str) -> Path:
    path = tmp_path / "state.json"
    path.write_text(saved_state)
    _WRITTEN[path] = (path.read_bytes(), path.stat().st_mtime_ns)
    return path


def _bad(res: Any, state: Path, *needles: str) -> None:
    """Exit code 2 with one error line (after, at most, the line saying the state was resumed), and the
    state file byte for byte as the fixture wrote it, never rewritten."""
    assert res.exit_code == 2, res.output
    lines = res.output.strip().splitlines()
    if lines and lines[0].startswith("resumed rl state from "):
        assert lines[0] == f"resumed rl state from {state} (0 updates, seed 0)", res.output
        lines = lines[1:]
    assert "Traceback" not in res.output and len(lines) == 1 and lines[0].startswith("error: "), res.output
    for n in needles:
        assert n in res.output, res.output
    assert (state.read_bytes(), state.stat().st_mtime_ns) == _WRITTEN[state]


def test_a_table_missing_architectures(land: dict[str, Any], tmp_path: Path, state: Path) -> None:
    part = tmp_path / "part.csv"
    part.write_text("arch,accuracy\n" + "".join(f"{s},{v}\n" for s, v in zip(land["strings"][:40],
                                                                            land["acc"][:40], strict=True)))
    res = run(land, "--accuracy", str(part), "--max-queries", "20", "--strategy", "rl",
              "--strategy-state", str(state))
    _bad(res, state, "has no accuracy for", "of the", "--allow-missing")
    ok = run(land, "--accuracy", str(part), "--allow-missing", "--budget", "4000", "--strategy", "random",
             json_out=tmp_path / "m.json")
    assert ok.exit_code == 0, ok.output
    doc = json.loads((tmp_path / "m.json").read_text())
    space = get_space("nb201")
    classes = {space.canonical(space.arch(s)) for s in land["strings"][:40]}
    assert doc["accuracy"]["queries"] <= 40 and space.canonical(space.arch(doc["best"]["arch"])) in classes


@pytest.mark.parametrize(("row", "needle"), [("nan", "not numbers"), ("150", "out of range"),
                                              ("-3", "out of range")])
def test_nan_and_out_of_range_accuracies(land: dict[str, Any], tmp_path: Path, state: Path, row: str,
                                         needle: str) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(f"arch,accuracy\n{land['strings'][0]},50\n{land['strings'][1]},{row}\n")
    _bad(run(land, "--accuracy", str(bad), "--max-queries", "5", "--strategy", "rl", "--strategy-state",
             str(state)), state, needle)


@pytest.mark.parametrize(("body", "needle"), [
    ("raise RuntimeError('gpu on fire')", "raised RuntimeError: gpu on fire"),
    ("return [1.0] * (len(archs) + 1)", "one number each"),
    ("return [[1.0, 2.0]] * len(archs)", "one number each"),
    ("return [float('nan')] * len(archs)", "not finite"),
    ("return 'abc'", "not numbers"),
    ("raise SystemExit(3)", "raised SystemExit: 3"),  # sys.exit in the user's code: not our exit code
    ("return [float('inf')] * len(archs)", "(the first, #1, is inf)"),
])
def test_a_callable_that_misbehaves(land: dict[str, Any], tmp_path: Path, state: Path, body: str,
                                    needle: str) -> None:
    module = tmp_path / "userfn.py"
    module.write_text(f"def acc(archs):\n    {body}\n")
    _bad(run(land, "--accuracy", f"{module}:acc", "--max-queries", "5", "--strategy", "rl",
             "--strategy-state", str(state)), state, needle)


def test_a_table_without_any_proposed_architecture(land: dict[str, Any], tmp_path: Path, state: Path) -> None:
    """--allow-missing skips every candidate: the search fails, and the state it resumed is not saved."""
    one = tmp_path / "one.csv"  # a network alone in its isomorphism class, which 8 samples will not meet
    conv = next(s for s in land["strings"] if s.count("nor_conv_3x3") == 6)
    one.write_text(f"arch,accuracy\n{conv},50\n")
    res = run(land, "--accuracy", str(one), "--allow-missing", "--budget", "8", "--strategy", "rl",
              "--strategy-state", str(state))
    assert res.exit_code == 2, res.output
    assert res.output.strip().splitlines() == [
        f"resumed rl state from {state} (0 updates, seed 0)",
        f"not saving the rl state to {state}: no candidate was feasible",
        "error: none of the 8 candidates has an accuracy (--allow-missing skipped them all)",
    ]
    assert (state.read_bytes(), state.stat().st_mtime_ns) == _WRITTEN[state]


def test_an_accuracy_predictor_for_another_space(land: dict[str, Any], tmp_path: Path, state: Path) -> None:
    enc = OneHotEncoding.for_space(get_space("mobilenetv2"))
    other = AccuracyPredictor(space="mobilenetv2", encoding=enc,
                              model={"type": "ridge", "coef": [0.0] * enc.size, "intercept": 70.0})
    path = tmp_path / "mbv2-acc.json"
    other.save(path)
    _bad(run(land, "--accuracy", str(path), "--max-queries", "5", "--strategy", "rl", "--strategy-state",
             str(state)), state, "fitted on space 'mobilenetv2', not 'nb201'")
    with pytest.raises(PredictorError):
        search("nb201", land["predictor"], 1.5, accuracy=str(path), max_queries=5)


@pytest.mark.parametrize("value", ["0", "-4"])
def test_max_queries_must_be_positive(land: dict[str, Any], state: Path, value: str) -> None:
    _bad(run(land, "--accuracy", str(land["table"]), "--max-queries", value, "--strategy", "rl",
             "--strategy-state", str(state)), state, "--max-queries must be")


def test_other_network_options_than_the_predictors_are_refused(land: dict[str, Any], state: Path) -> None:
    _bad(run(land, "--input", "3x32x32", "--budget", "10", "--strategy", "rl", "--strategy-state",
             str(state)), state, "built for", "input=1x52x16")


def test_proxies_stay_available_and_exclude_accuracy(land: dict[str, Any], tmp_path: Path) -> None:
    r = search("nb201", land["predictor"], 1.5, budget=64, proxy="macs", strategy="random")
    assert r.proxy == "macs" and r.accuracy_source is None and r.queries is None
    assert all(math.isfinite(v) for v in r.scores.accuracy)
    assert all(len(s.split("|")) > 3 for s in r.archs) and r.options is not None
    with pytest.raises(InputError, match="not both"):
        search("nb201", land["predictor"], 1.5, budget=4, proxy="macs", accuracy=str(land["table"]))
    assert set(NB201_OPS) >= {op for s in r.archs[:3] for op in get_space("nb201").arch(s).blocks}


def test_a_tables_own_network_stands_for_its_class() -> None:
    space = get_space("nb201")
    member = "|nor_conv_3x3~0|+|nor_conv_1x1~0|none~1|+|skip_connect~0|none~1|none~2|"  # dead edge 0->2
    iso = space.arch("|nor_conv_3x3~0|+|avg_pool_3x3~0|none~1|+|skip_connect~0|none~1|none~2|")
    q = QueriedAccuracy(TableAccuracy({member: 61.0}, space), space)
    (rep,) = q.represent([iso])
    assert rep.to_string() == member  # scored, and returned, as the network the table measured
    assert q.score_many([rep], np.zeros(1, np.int64)).tolist() == [61.0] and q.queries == 1


@pytest.mark.parametrize("strategy", ["evolution", "rl", "tpe", "nsga2"])
def test_strategies_spend_their_queries_on_new_networks(land: dict[str, Any], strategy: str) -> None:
    table = TableAccuracy.from_file(land["table"], get_space("nb201")) if strategy == "evolution" else \
        CallableAccuracy(lambda archs: [40.0 + a.count("conv_3x3") for a in archs])
    r = search("nb201", land["predictor"], 1.5, reward="hard", accuracy=table, max_queries=40, budget=120,
               strategy=strategy, seed=3)
    assert r.accuracy_source["queries"] == 40  # repeats are not proposed, so 120 candidates suffice
    assert r.best is not None and r.best.latency_interval_ms[1] <= 1.5


def test_evolution_screens_children_with_a_surrogate(land: dict[str, Any]) -> None:
    table = TableAccuracy.from_file(land["table"], get_space("nb201"))
    r = search("nb201", land["predictor"], 1.5, reward="hard", accuracy=table, max_queries=60,
               strategy="evolution", surrogate="online", seed=0)
    assert r.accuracy_source["queries"] == 60 and r.best is not None
    with pytest.raises(InputError, match="does not screen"):
        search("nb201", land["predictor"], 1.5, accuracy=table, max_queries=5, strategy="random",
               surrogate="online")


def test_the_cli_screens_with_a_surrogate(land: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "s.json"
    r = run(land, "--accuracy", str(land["table"]), "--max-queries", "40", "--reward", "hard",
            "--surrogate", "online", json_out=out)
    assert r.exit_code == 0, r.output
    doc = json.loads(out.read_text())
    assert doc["accuracy"]["queries"] == 40 and doc["surrogate"] == "online"
    bad = run(land, "--accuracy", str(land["table"]), "--max-queries", "5", "--strategy", "random",
              "--surrogate", "online")
    assert bad.exit_code == 2 and "does not screen with a surrogate" in bad.output, bad.output
