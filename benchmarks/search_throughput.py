"""Candidates evaluated per second by the search loop, end to end (propose + predict + reward + bookkeeping).

Per space, side by side in one run, each repeated ``--repeats`` times (median, min and max quoted):

- ``proxyless_loop``: what a hand-written ProxylessNAS-style loop does — sample an architecture, a string key
  per layer, a dict lookup, a Python sum, the reward in Python.
- ``objects``: ``run_search`` building ``Arch`` objects and scoring them with ``predict_many`` (the path for
  predictors and proxies that need architectures; forced here with a plain callable around the same table).
- ``codes_random`` / ``codes_evolution``: ``run_search`` on integer genotypes (``nasprof.space.genotype``):
  random search (target >= 1,000,000/s) and aging evolution (target >= 200,000/s) at its default
  population 100 / tournament 25 / batch 25, and at population 1,000 / tournament 100 / batch 250.

Also the ``naswot`` zero-cost proxy (a torch forward pass per candidate) and the vectorised pieces alone
(reward and Pareto front over 10^6 candidates).

The lookup table is filled with MAC-derived latencies (0.005 ms + 1 ms per 10^8 MACs per layer) for every
distinct layer of the space: the predictor's speed depends on the number of keys, not on their values, and
measuring every layer would take an hour. Wall-clock figures, single process; run on a quiet machine.

    .venv/bin/python benchmarks/search_throughput.py [--repeats 3] [--naswot 24] [--spaces mnasnet,...]

Writes benchmarks/results/search_throughput.json and prints a summary.
"""

from __future__ import annotations

import argparse
import json
import math
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


def target_ms(space_name: str, predictor: LutPredictor) -> float:
    space = get_space(space_name)
    return float(np.median(predictor.predict_many(space.sample(200, seed=99, resolution=RESOLUTION))))


def run(
    strategy: str,
    space_name: str,
    latency: Any,
    proxy: Any,
    budget: int,
    seed: int,
    target: float,
    **options: Any,
) -> dict:
    space = get_space(space_name)
    evaluator = Evaluator(latency, proxy, Reward.preset("hard", target))
    strat = get_strategy(strategy, space, seed=seed, resolution=RESOLUTION, **options)
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


def proxyless_loop(space_name: str, predictor: LutPredictor, n: int, seed: int, target: float) -> dict:
    """The hand-written baseline: per candidate, sample, a string key per layer, dict lookups, Python sums."""
    space = get_space(space_name)
    table, base = dict(predictor.entries), predictor.overhead_ms
    rng = np.random.default_rng(seed)
    best = -math.inf
    t0 = time.perf_counter()
    for _ in range(n):
        arch = space.sample(1, seed=rng, resolution=RESOLUTION)[0]
        layers = arch.layers()
        lat = base + sum(table[layer.key] - base for layer in layers)
        macs = sum(layer.macs for layer in layers)
        reward = math.log10(macs) * (lat / target) ** (0.0 if lat <= target else -1.0)
        best = max(best, reward)
    seconds = time.perf_counter() - t0
    return {"space": space_name, "path": "proxyless_loop", "strategy": "random", "budget": n,
            "evaluated": n, "seconds": round(seconds, 4), "per_second": round(n / seconds, 1),
            "best_reward": best}


#: (path, strategy, budget, strategy options) measured per space and repeat.
PATHS: tuple[tuple[str, str, int, dict[str, Any]], ...] = (
    ("objects", "random", 20_000, {}),
    ("codes_random", "random", 1_000_000, {}),
    ("codes_evolution", "evolution", 200_000, {}),
    ("codes_evolution_p1000", "evolution", 500_000,
     {"population_size": 1000, "sample_size": 100}),
)


def summarise(rows: list[dict]) -> dict[str, dict[str, float]]:
    """Median, min and max candidates/s per (space, path) over the repeats."""
    out: dict[str, dict[str, float]] = {}
    for key in sorted({(r["space"], r["path"]) for r in rows}):
        rates = [r["per_second"] for r in rows if (r["space"], r["path"]) == key]
        out[f"{key[0]}/{key[1]}"] = {"median_per_second": round(float(np.median(rates)), 1),
                                    "min_per_second": round(min(rates), 1),
                                    "max_per_second": round(max(rates), 1), "repeats": len(rates)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--baseline", type=int, default=20_000, help="candidates of the hand-written loop")
    ap.add_argument("--naswot", type=int, default=24, help="candidates scored with the naswot proxy")
    ap.add_argument("--spaces", default="mnasnet,mobilenetv2")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    rows = []
    for space_name in args.spaces.split(","):
        t0 = time.perf_counter()
        lut = synthetic_lut(space_name, RESOLUTION)
        build_s = time.perf_counter() - t0
        target = target_ms(space_name, lut)
        t0 = time.perf_counter()
        get_space(space_name).chain_layout(RESOLUTION)
        layout_s = time.perf_counter() - t0
        print(f"{space_name}: {len(lut.entries)} table keys ({build_s:.2f} s), chain layout {layout_s:.2f} s")
        for rep in range(args.repeats):
            row = proxyless_loop(space_name, lut, args.baseline, args.seed + rep, target)
            rows.append(row)
            print(f"  {'proxyless_loop':22s} {row['per_second']:>12,.0f} candidates/s")
            for path, strategy, budget, options in PATHS:
                # A plain callable hides the table's per-layer form: the search scores Arch objects.
                latency = lut if path.startswith("codes") else (lambda archs, m=lut: m.predict_many(archs))
                row = run(strategy, space_name, latency, get_proxy("macs"), budget, args.seed + rep, target,
                          **options)
                row.update(path=path, options=options, layout_s=round(layout_s, 3))
                rows.append(row)
                print(f"  {path:22s} {row['per_second']:>12,.0f} candidates/s ({row['evaluated']:,} in "
                      f"{row['seconds']:.2f} s)")
        if args.naswot > 0:
            row = run("random", space_name, lut, NaswotProxy(), args.naswot, args.seed, target)
            row["path"] = "objects_naswot"
            rows.append(row)
            print(f"  {'naswot':22s} {row['per_second']:>12,.1f} candidates/s")
    parts = vectorised_parts()
    print(f"reward (1e6): {parts['reward_per_second']:,}/s; Pareto front: {parts['pareto_per_second']:,}/s")
    summary = summarise(rows)
    for key, v in summary.items():
        print(f"{key:40s} median {v['median_per_second']:>12,.0f}/s  [{v['min_per_second']:,.0f}, "
              f"{v['max_per_second']:,.0f}]")
    doc = {
        "schema_version": 2,
        "benchmark": "search_throughput",
        "resolution": RESOLUTION,
        "reward": "hard, target = median predicted latency of 200 random architectures; proxy macs",
        "note": "LUT filled with MAC-derived latencies; speed depends on key count, not values",
        "targets": {"codes_random_per_second": 1_000_000, "codes_evolution_per_second": 200_000},
        "host": host_summary(),
        "summary": summary,
        "runs": rows,
        "vectorised": parts,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
