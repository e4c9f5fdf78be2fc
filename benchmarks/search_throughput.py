"""Candidates evaluated per second by the search loop.

Measures, per space: aging evolution and random search with a lookup-table predictor and the ``macs`` proxy
(target: >= 10,000 candidates/s), the same with the ``naswot`` zero-cost proxy (a torch forward pass per
candidate), and the vectorised pieces alone (reward and Pareto front over 10^6 candidates).

The lookup table is filled with MAC-derived latencies (0.005 ms + 1 ms per 10^8 MACs per layer) for every
distinct layer of the space: the predictor's speed depends on the number of keys, not on their values, and
measuring every layer would take an hour. Wall-clock figures, single process; run on a quiet machine.

    .venv/bin/python benchmarks/search_throughput.py [--budget 20000] [--naswot 24] [--spaces mnasnet,...]

Writes benchmarks/results/search_throughput.json and prints a summary.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from nasprof.predictors.lut.predictor import LutPredictor
from nasprof.profiler.environment import host_summary  # noqa: E402
from nasprof.search import Evaluator, NaswotProxy, Reward, get_proxy, get_strategy, pareto_front, run_search
from nasprof.space import get_space

RESULTS = Path(__file__).parent / "results" / "search_throughput.json"
RESOLUTION = 224


def synthetic_lut(space_name: str, resolution: int) -> LutPredictor:
    space = get_space(space_name)
    layers = space.distinct_layers(resolution)
    entries = {layer.key: 0.005 + layer.macs / 1e8 for layer in layers}
    return LutPredictor(entries, space=space_name, resolution=resolution, device="synthetic")


def run(strategy: str, space_name: str, predictor: LutPredictor, proxy: Any, budget: int, seed: int) -> dict:
    space = get_space(space_name)
    target = float(np.median(predictor.predict_many(space.sample(200, seed=99, resolution=RESOLUTION))))
    evaluator = Evaluator(predictor, proxy, Reward.preset("soft", target))
    strat = get_strategy(strategy, space, seed=seed, resolution=RESOLUTION)
    res = run_search(strat, evaluator, budget, space_name=space_name)
    best = res.best
    return {
        "space": space_name,
        "strategy": strategy,
        "proxy": res.proxy,
        "budget": budget,
        "evaluated": res.evaluated,
        "seconds": round(res.seconds, 4),
        "per_second": round(res.per_second, 1),
        "distinct_archs": len(set(res.archs)),
        "target_ms": round(target, 4),
        "best_reward": None if best is None else best.reward,
        "pareto_size": len(res.pareto),
    }


def vectorised_parts(n: int = 1_000_000) -> dict:
    rng = np.random.default_rng(0)
    lat = rng.uniform(1, 100, n)
    acc = rng.uniform(0.5, 0.8, n)
    reward = Reward.preset("soft", 50.0)
    t0 = time.perf_counter()
    reward(acc, lat)
    t1 = time.perf_counter()
    front = pareto_front(lat, acc)
    t2 = time.perf_counter()
    return {
        "n": n,
        "reward_per_second": round(n / (t1 - t0)),
        "pareto_per_second": round(n / (t2 - t1)),
        "pareto_size": int(front.size),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--budget", type=int, default=20_000)
    ap.add_argument("--naswot", type=int, default=24, help="candidates scored with the naswot proxy")
    ap.add_argument("--spaces", default="mnasnet,mobilenetv2")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    rows = []
    for space_name in args.spaces.split(","):
        t0 = time.perf_counter()
        lut = synthetic_lut(space_name, RESOLUTION)
        build_s = time.perf_counter() - t0
        for strategy in ("evolution", "random"):
            row = run(strategy, space_name, lut, get_proxy("macs"), args.budget, args.seed)
            row["table_keys"] = len(lut.entries)
            row["lut_build_s"] = round(build_s, 3)
            rows.append(row)
            print(
                f"{space_name:12s} {strategy:9s} macs   {row['per_second']:>10,.0f} candidates/s "
                f"({row['evaluated']} in {row['seconds']:.2f} s, {row['distinct_archs']} distinct)"
            )
        if args.naswot > 0:
            row = run("random", space_name, lut, NaswotProxy(), args.naswot, args.seed)
            rows.append(row)
            print(
                f"{space_name:12s} random    naswot {row['per_second']:>10,.1f} candidates/s "
                f"({row['evaluated']} in {row['seconds']:.2f} s)"
            )
    parts = vectorised_parts()
    print(f"reward (1e6): {parts['reward_per_second']:,}/s; Pareto front: {parts['pareto_per_second']:,}/s")
    doc = {
        "schema_version": 1,
        "benchmark": "search_throughput",
        "resolution": RESOLUTION,
        "note": "LUT filled with MAC-derived latencies; speed depends on key count, not values",
        "host": host_summary(),
        "runs": rows,
        "vectorised": parts,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
