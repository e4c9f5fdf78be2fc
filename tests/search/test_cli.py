"""`nasprof search` end to end: real spaces, a real SQLite table, a real LutPredictor file, typer's CliRunner.

The tables hold every distinct layer of a space at a small resolution. Their latencies are derived from
each layer's MACs (0.01 ms + 1 ms per 10^7 MACs, to 1 ns) instead of measured: what is tested here is the
search, and measuring a few thousand layers would take minutes. Storage, loading and summation are real.
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
from nasprof.predictors import LutPredictor, Predictor
from nasprof.space import Arch, get_space
from nasprof.tables import LatencyTable, TableEntry

RES = 96


def _latency(macs: int) -> float:
    return round(0.01 + macs / 1e7, 6)  # table entries keep samples to 1 ns


def make_predictor(directory: Path, space: str) -> Path:
    table = directory / f"{space}.db"
    meta = {"device": "cpu", "space": space, "resolution": RES, "measure_spec": {"threads": 1}}
    entries = [
        TableEntry(key=layer.key, samples_ms=(0.98 * v, v, 1.02 * v), macs=layer.macs, params=layer.params)
        for layer in get_space(space).distinct_layers(RES)
        for v in [_latency(layer.macs)]
    ]
    with LatencyTable.open(table, create=True, metadata=meta) as t:
        t.put_many(entries)
    path = directory / f"{space}.lut.json"
    LutPredictor.from_table(table).save(path)
    return path


@pytest.fixture(scope="module")
def predictors(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("predictors")
    return {name: make_predictor(d, name) for name in ("mobilenetv2", "mnasnet")}


def search(predictors: dict[str, Path], space: str = "mobilenetv2", **opts: Any) -> Any:
    """Run `nasprof search`; ``opts`` are options without the leading dashes (target_ms -> --target-ms)."""
    options = {
        "space": space,
        "predictor": str(predictors.get(space, space)),
        "target_ms": "4",
        "budget": "50",
    }
    options.update({k: str(v) for k, v in opts.items()})
    argv = ["search"] + [x for k, v in options.items() for x in ("--" + k.replace("_", "-"), v)]
    return CliRunner().invoke(app, argv)


def test_search_prints_writes_and_is_reproducible(predictors: dict[str, Path], tmp_path: Path) -> None:
    opts = {"target_ms": 4, "budget": 400, "seed": 3}
    r1 = search(predictors, **opts, json=tmp_path / "a.json", plot=tmp_path / "front.png")
    assert r1.exit_code == 0, r1.output
    assert "mobilenetv2: top 10 of 400 by reward (soft" in r1.stdout
    assert "evaluated 400 in" in r1.stdout
    assert (tmp_path / "front.png").read_bytes()[:4] == b"\x89PNG"
    r2 = search(predictors, **opts, json=tmp_path / "b.json")
    assert r2.exit_code == 0, r2.output
    a, b = (json.loads((tmp_path / n).read_text()) for n in ("a.json", "b.json"))
    for doc in (a, b):
        loop = doc.pop("loop_seconds")
        assert doc.pop("seconds") >= loop > 0 and doc.pop("per_second") > 0
    assert a == b  # same seed, same result

    assert a["schema_version"] == 2 and a["evaluated"] == 400 and a["seed"] == 3
    assert a["path"] == "genotypes"  # a lookup table and the macs proxy: scored as integer genotypes
    assert a["reward"] == {"name": "soft", "alpha": -0.07, "beta": -0.07, "target_ms": 4.0}
    assert a["pareto"] and set(a["pareto"][0]) >= {"arch", "latency_ms", "accuracy", "reward", "macs"}
    lat = [p["latency_ms"] for p in a["pareto"]]
    acc = [p["accuracy"] for p in a["pareto"]]
    assert lat == sorted(lat) and acc == sorted(acc)  # a front: slower only if more accurate

    # every number of the best candidate, recomputed from the architecture string
    predictor = Predictor.load(predictors["mobilenetv2"])
    best = a["best"]
    arch = Arch.from_string(best["arch"])
    assert best["macs"] == arch.macs
    assert best["latency_ms"] == pytest.approx(
        sum(_latency(layer.macs) for layer in arch.layers()), rel=1e-12
    )
    assert best["latency_ms"] == pytest.approx(predictor.predict(arch), rel=1e-12)
    assert best["accuracy"] == pytest.approx(math.log10(arch.macs), rel=1e-15)
    assert best["reward"] == pytest.approx(best["accuracy"] * (best["latency_ms"] / 4.0) ** -0.07, rel=1e-12)
    assert best["reward"] == max(p["reward"] for p in a["top"])


def test_seeds_strategies_and_the_hard_reward(predictors: dict[str, Path], tmp_path: Path) -> None:
    docs = []
    for seed, strategy in ((3, "random"), (4, "random"), (3, "evolution")):
        out = tmp_path / f"{seed}-{strategy}.json"
        r = search(
            predictors, target_ms=4.5, reward="hard", strategy=strategy, budget=150, seed=seed, json=out
        )
        assert r.exit_code == 0, r.output
        docs.append(json.loads(out.read_text()))
    assert docs[0]["top"] != docs[1]["top"]
    assert docs[2]["strategy"] == "evolution" and docs[0]["strategy"] == "random"
    for d in docs:
        # hard reward (alpha 0): under the target the reward is the accuracy proxy itself
        best = d["best"]
        assert d["reward"]["alpha"] == 0.0 and best["latency_ms"] <= 4.5
        assert best["reward"] == best["accuracy"] == pytest.approx(math.log10(best["macs"]), rel=1e-15)


def test_custom_exponents(predictors: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "c.json"
    r = search(predictors, target_ms=5, alpha=-0.2, beta=-0.5, json=out)
    assert r.exit_code == 0, r.output
    doc = json.loads(out.read_text())
    assert doc["reward"] == {"name": "custom", "alpha": -0.2, "beta": -0.5, "target_ms": 5.0}
    for c in doc["top"]:
        w = -0.2 if c["latency_ms"] <= 5.0 else -0.5
        assert c["reward"] == pytest.approx(c["accuracy"] * (c["latency_ms"] / 5.0) ** w, rel=1e-12)


def test_microcontroller_memory_is_a_hard_constraint(
    predictors: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A 1000-class ImageNet head alone needs ~1.3 MB of int8 weights: nothing in these spaces fits an
    # STM32F746 (1 MB Flash), and ~1% of mnasnet fits an H743 (2 MB). A named device from the devices TOML
    # (an H743 with 4 MB of Flash, 256 KB of SRAM) leaves room for a front; the MCU estimator sizes every
    # layer for real.
    devices = tmp_path / "devices.toml"
    devices.write_text(
        'schema_version = 1\n[devices.lab-h7]\nbackend = "mcu"\nboard = "stm32h743"\n'
        "sram_kb = 256\nflash_kb = 4096\n"
    )
    monkeypatch.setenv("NASPROF_DEVICES", str(devices))
    out = tmp_path / "mcu.json"
    opts = {"target_ms": 6, "reward": "hard", "board": "lab-h7", "budget": 300, "seed": 1}
    r = search(predictors, "mnasnet", **opts, json=out)
    assert r.exit_code == 0, r.output
    assert "SRAM KiB" in r.stdout
    doc = json.loads(out.read_text())
    assert doc["constraint"] == {"device": "lab-h7", "sram_bytes": 256 * 1024, "flash_bytes": 4096 * 1024}
    assert 0 < doc["feasible"] < doc["evaluated"] == 300
    for c in [doc["best"], *doc["pareto"], *doc["top"]]:
        assert c["feasible"] and c["sram_bytes"] <= 256 * 1024 and c["flash_bytes"] <= 4096 * 1024

    out = tmp_path / "f746.json"
    r = search(predictors, "mnasnet", target_ms=6, board="stm32f746", budget=20, json=out)
    assert r.exit_code == 2
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "none of the 20 candidates fits stm32f746" in errors[0]
    doc = json.loads(out.read_text())  # still written: how far each candidate overflows
    assert doc["best"] is None and doc["feasible"] == 0 and doc["pareto"] == []


def test_export_best(predictors: dict[str, Path], tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    out, doc_path = tmp_path / "best.onnx", tmp_path / "e.json"
    r = search(predictors, budget=30, export_best=out, json=doc_path)
    assert r.exit_code == 0, r.output
    model = onnx.load(out)
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims[1:] == [3, RES, RES]
    best = Arch.from_string(json.loads(doc_path.read_text())["best"]["arch"])
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    assert sum(n.op_type == "Gemm" for n in model.graph.node) == 1  # the classifier
    assert len(convs) >= len(best.layers()) - 1  # every layer but the classifier has at least one conv


@pytest.mark.parametrize(
    ("opts", "message"),
    [
        ({"target_ms": 0}, "--target-ms must be milliseconds > 0"),
        ({"target_ms": -3}, "--target-ms must be milliseconds > 0"),
        ({"budget": 0}, "--budget must be at least 1"),
        (
            {"space": "mnasnet", "predictor": "mobilenetv2"},
            "was built for space 'mobilenetv2', not 'mnasnet'",
        ),
        ({"proxy": "flops"}, "unknown accuracy proxy 'flops'"),
        ({"strategy": "annealing"}, "unknown strategy 'annealing'"),
        ({"reward": "medium"}, "unknown reward 'medium'"),
        ({"board": "stm32f999"}, "unknown device 'stm32f999'"),
        ({"board": "cpu"}, "--board cpu is a cpu device; a memory constraint needs a microcontroller"),
        ({"predictor": "/nonexistent/p.json"}, "does not exist"),
        ({"plot": "front.svg"}, "PNG"),
        ({"space": "resnet"}, "unknown search space 'resnet'"),
        ({"seed": -1}, "--seed must be an integer in 0…4,294,967,295"),
        ({"json": "/nonexistent/dir/run.json"}, "directory /nonexistent/dir does not exist"),
        ({"target_ms": "nan"}, "--target-ms must be a finite number"),
        # Found in QA: these used to run (a reward that favours slow models, an empty table, ONNX in a .txt)
        # or end in a traceback after the search.
        ({"alpha": 0.5}, "--alpha must be <= 0 (a positive exponent rewards slower models)"),
        ({"top": 0}, "--top must be at least 1, got 0"),
        ({"export_best": "best.txt"}, "--export-best writes ONNX; give a path ending in .onnx"),
        ({"json": "."}, "cannot write --json .: it is a directory; give a file name"),
        ({"export_best": "."}, "cannot write --export-best .: it is a directory; give a file name"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    predictors: dict[str, Path], tmp_path: Path, opts: dict[str, Any], message: str
) -> None:
    opts = dict(opts)
    if opts.get("predictor") in predictors:
        opts["predictor"] = predictors[opts["predictor"]]
    opts.setdefault("predictor", predictors["mobilenetv2"])
    if "plot" in opts:
        opts["plot"] = tmp_path / opts["plot"]
    r = search(predictors, **opts)
    assert r.exit_code == 2, r.output
    assert message in r.stderr
    # Exactly one line: no blank line left behind by a progress bar that started before the error.
    assert len(r.stderr.splitlines()) == 1 and "Traceback" not in r.output


def test_naswot_proxy_on_real_architectures() -> None:
    pytest.importorskip("torch")
    from nasprof.search import NaswotProxy, naswot_score

    archs = get_space("mobilenetv2").sample(2, seed=0, resolution=RES)
    proxy = NaswotProxy(batch_size=4, resolution=32, seed=0)
    scores = proxy.score_many(archs, np.zeros(2, np.int64))
    assert np.all(np.isfinite(scores)) and np.all(scores > 0)
    direct = naswot_score(archs[0].network().build(seed=0), batch_size=4, resolution=32, seed=0)
    assert scores[0] == direct
    assert proxy.score_many(archs[:1], np.zeros(1, np.int64))[0] == scores[0]  # cached, same value


def test_learning_strategies_from_the_cli(predictors: dict[str, Path], tmp_path: Path) -> None:
    """rl keeps its controller between runs (--strategy-state); an Optuna sampler runs by name; a state file
    with a strategy that has none is refused before any work."""
    state = tmp_path / "rl.json"
    first = search(predictors, strategy="rl", budget=30, strategy_state=state, json=tmp_path / "r1.json")
    assert first.exit_code == 0, first.output
    updates = json.loads(state.read_text())["updates"]
    assert updates >= 1
    again = search(predictors, strategy="rl", budget=30, strategy_state=state)
    assert again.exit_code == 0, again.output
    assert json.loads(state.read_text())["updates"] == 2 * updates  # resumed, then trained further
    other_seed = search(predictors, strategy="rl", budget=30, strategy_state=state, seed=9)
    assert other_seed.exit_code == 2 and "use the same --seed" in other_seed.output
    tpe = search(predictors, strategy="tpe", budget=15, json=tmp_path / "t.json")
    assert tpe.exit_code == 0, tpe.output
    assert json.loads((tmp_path / "t.json").read_text())["strategy"] == "tpe"
    refused = search(predictors, strategy="evolution", strategy_state=tmp_path / "e.json")
    assert refused.exit_code == 2 and "has none (use rl)" in refused.output
    assert not (tmp_path / "e.json").exists()
    unknown = search(predictors, strategy="bayes")
    assert unknown.exit_code == 2 and "known: cmaes, evolution, nsga2, qmc, random, rl, tpe" in unknown.output


def test_evolution_population_and_tournament_flags(predictors: dict[str, Path], tmp_path: Path) -> None:
    r = search(predictors, space="mnasnet", budget=600, population=40, tournament=5, json=tmp_path / "e.json")
    assert r.exit_code == 0, r.output
    assert "integer genotypes" in r.stdout
    assert json.loads((tmp_path / "e.json").read_text())["path"] == "genotypes"
    # A small population alone keeps Real et al.'s ratio (a quarter) instead of failing on the default 25.
    assert search(predictors, space="mnasnet", budget=100, population=10).exit_code == 0
    for opts, message in (
        ({"strategy": "random", "population": 40}, "--population sets aging evolution"),
        ({"population": 1}, "population size must be at least 2"),
        ({"population": 10, "tournament": 11}, "tournament size must be in"),
        ({"tournament": 101}, "raise --population too"),
        ({"population": 10**8}, "population size must be at most"),
    ):
        r = search(predictors, space="mnasnet", **opts)
        assert r.exit_code == 2 and message in r.output, (opts, r.output)
