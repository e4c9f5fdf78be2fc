"""Which search strategy wins? Best reward found against evaluations, over several seeds.

Every strategy searches ``mnasnet`` at 224 with a lookup-table predictor, the ``macs`` proxy and MnasNet's
hard reward (target: the median predicted latency of 200 random architectures, so about half the space is
feasible). For each strategy and seed the curve is the best reward among the first ``k`` evaluations; the
figures are the median and the spread (min, max) over seeds at a few budgets, the hypervolume of each run's
latency/accuracy front (reference point: the slowest latency and lowest accuracy seen in any run), and the
proposals per second (``ask`` alone) and candidates per second (ask, predict, reward, tell).

The lookup table holds MAC-derived latencies (0.005 ms + 1 ms per 10^8 MACs per layer) for every distinct
layer: what is compared is how strategies search one fixed landscape, not a device. TPE's cost per trial grows
with the trials it has seen (Optuna's TPE refits its densities on every ask), so it runs a smaller budget,
reported as such.

    .venv/bin/python benchmarks/search_strategies.py [--budget 5000] [--tpe-budget 1000] [--seeds 5]

Writes benchmarks/results/search_strategies.json and search_strategies.png.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from nasprof.predictors.lut.predictor import LutPredictor
from nasprof.profiler.environment import host_summary
from nasprof.search import Evaluator, MacsProxy, Reward, get_strategy, pareto_front
from nasprof.space import get_space

RESULTS = Path(__file__).parent / "results" / "search_strategies.json"
PLOT = RESULTS.with_suffix(".png")
RESOLUTION = 224
BATCH = 100
STRATEGIES = ("random", "evolution", "rl", "tpe", "nsga2")


def synthetic_lut() -> LutPredictor:
    layers = get_space("mnasnet").distinct_layers(RESOLUTION)
    entries = {layer.key: 0.005 + layer.macs / 1e8 for layer in layers}
    return LutPredictor(entries, space="mnasnet", resolution=RESOLUTION, device="synthetic")


def one_run(name: str, evaluator: Evaluator, budget: int, seed: int) -> dict[str, Any]:
    strat = get_strategy(name, get_space("mnasnet"), seed=seed, resolution=RESOLUTION)
    rewards, lats, accs, feas = [], [], [], []
    ask_s = total_s = 0.0
    done = 0
    while done < budget:
        t0 = time.perf_counter()
        batch = strat.ask(min(BATCH, budget - done))
        t1 = time.perf_counter()
        scores = evaluator(batch)
        strat.tell(batch, scores)
        t2 = time.perf_counter()
        ask_s, total_s = ask_s + (t1 - t0), total_s + (t2 - t0)
        done += len(batch)
        rewards.append(scores.reward)
        lats.append(scores.latency_ms)
        accs.append(scores.accuracy)
        feas.append(scores.feasible)
    reward = np.concatenate(rewards)
    return {
        "best_so_far": np.maximum.accumulate(np.where(np.isfinite(reward), reward, -np.inf)),
        "latency": np.concatenate(lats),
        "accuracy": np.concatenate(accs),
        "feasible": np.concatenate(feas),
        "proposals_per_s": done / ask_s,
        "candidates_per_s": done / total_s,
    }


def hypervolume(lat: np.ndarray, acc: np.ndarray, ref_lat: float, ref_acc: float) -> float:
    """Area dominated by the front (min latency, max accuracy) up to the reference point."""
    idx = pareto_front(lat, acc)
    area, prev_acc = 0.0, ref_acc
    for i in idx:  # increasing latency, increasing accuracy
        if lat[i] >= ref_lat or acc[i] <= prev_acc:
            continue
        area += (ref_lat - lat[i]) * (acc[i] - prev_acc)
        prev_acc = acc[i]
    return area


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--budget", type=int, default=5000)
    ap.add_argument("--tpe-budget", type=int, default=1000)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--strategies", default=",".join(STRATEGIES))
    args = ap.parse_args()
    lut = synthetic_lut()
    space = get_space("mnasnet")
    target = float(np.median(lut.predict_many(space.sample(200, seed=99, resolution=RESOLUTION))))
    evaluator = Evaluator(lut, MacsProxy(), Reward.preset("hard", target))
    runs: dict[str, list[dict[str, Any]]] = {}
    for name in args.strategies.split(","):
        budget = args.tpe_budget if name == "tpe" else args.budget
        runs[name] = []
        for seed in range(args.seeds):
            runs[name].append(one_run(name, evaluator, budget, seed))
            r = runs[name][-1]
            print(f"{name:10s} seed {seed}: best {r['best_so_far'][-1]:.4f} after {budget}, "
                  f"{r['proposals_per_s']:,.0f} proposals/s, {r['candidates_per_s']:,.0f} candidates/s",
                  flush=True)
    all_lat = np.concatenate([r["latency"][r["feasible"]] for rs in runs.values() for r in rs])
    all_acc = np.concatenate([r["accuracy"][r["feasible"]] for rs in runs.values() for r in rs])
    ref_lat, ref_acc = float(all_lat.max()), float(all_acc.min())
    checkpoints = [k for k in (100, 500, 1000, 2000, 5000, 10000) if k <= args.budget]
    rows = []
    for name, rs in runs.items():
        n = len(rs[0]["best_so_far"])
        row: dict[str, Any] = {"strategy": name, "budget": n, "seeds": len(rs)}
        for k in checkpoints:
            if k <= n:
                vals = [float(r["best_so_far"][k - 1]) for r in rs]
                row[f"best_at_{k}"] = {"median": float(np.median(vals)), "min": min(vals), "max": max(vals)}
        hv = [hypervolume(r["latency"][r["feasible"]], r["accuracy"][r["feasible"]], ref_lat, ref_acc)
              for r in rs]
        row["hypervolume"] = {"median": float(np.median(hv)), "min": min(hv), "max": max(hv)}
        row["proposals_per_s"] = float(np.median([r["proposals_per_s"] for r in rs]))
        row["candidates_per_s"] = float(np.median([r["candidates_per_s"] for r in rs]))
        rows.append(row)
    doc = {
        "schema_version": 1,
        "benchmark": "search_strategies",
        "space": "mnasnet",
        "resolution": RESOLUTION,
        "reward": {"name": "hard", "target_ms": target},
        "proxy": "macs",
        "batch": BATCH,
        "hypervolume_reference": {"latency_ms": ref_lat, "accuracy": ref_acc},
        "strategies": rows,
        "host": host_summary(),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(doc, indent=2) + "\n")
    _plot(runs, target)
    for row in rows:
        marks = ", ".join(f"{k}: {row[f'best_at_{k}']['median']:.4f}" for k in checkpoints
                          if f"best_at_{k}" in row)
        print(f"{row['strategy']:10s} median best reward {marks}; hypervolume "
              f"{row['hypervolume']['median']:.4g}; {row['proposals_per_s']:,.0f} proposals/s")
    print(f"wrote {RESULTS} and {PLOT}")


def _plot(runs: dict[str, list[dict[str, Any]]], target: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, rs in runs.items():
        curves = np.stack([r["best_so_far"] for r in rs])
        x = np.arange(1, curves.shape[1] + 1)
        med = np.median(curves, axis=0)
        ax.plot(x, med, label=name)
        ax.fill_between(x, curves.min(axis=0), curves.max(axis=0), alpha=0.15)
    ax.set_xscale("log")
    ax.set_xlabel("evaluations")
    ax.set_ylabel("best reward so far (hard, log10 MACs)")
    ax.set_title(f"mnasnet @224, target {target:.2f} ms: median and range over seeds")
    ax.legend()
    # Start the axis at the worst median after 100 evaluations: the first few random draws would flatten
    # the part of the curves where strategies differ.
    early = [np.median(np.stack([r["best_so_far"] for r in rs]), axis=0)[99] for rs in runs.values()]
    ax.set_ylim(bottom=float(min(early)))
    fig.tight_layout()
    fig.savefig(PLOT, dpi=120)


if __name__ == "__main__":
    main()
