"""Evolution's query-budget defaults, chosen on held-out data: NAS-Bench-201 on the Pixel 6a (LiteRT).

``benchmarks/search_regret.py`` reports the Raspberry Pi 5; its defaults must not be tuned on it. This
benchmark runs the same searches (each task's accuracy table, the device's measured latencies as the
truth, a latency predictor adapted from 20 of them, targets at the 25th/50th/75th latency percentiles, the
hard reward at 95% confidence) on another device of the shared data, and varies one setting of evolution
at a time from the defaults before this benchmark ("before": population a tenth of the query budget, 20 to
100; tournament a quarter of it; crossover probability 0.5). Every setting runs one search per budget
(100, 300 and 1,000 accuracy queries) per seed, and is compared with "before" paired by seed (the same
seed draws the same first population): the mean regret difference over every task, target and seed, with
a bootstrap 95% interval. Random search is the baseline (one-sided paired Wilcoxon test per target).

``+free`` rows are a counterfactual, not a setting: the same strategy, but a candidate whose latency bound
already breaks the target costs no accuracy query (its accuracy cannot change the search: it can never be
picked, and evolution ranks it by its overuse alone). They measure how much of the budget the hard reward
spends on networks it rejects.

    .venv/bin/python benchmarks/search_regret_heldout.py [PATH/TO/nb201_devices.parquet] [--device pixel]
        [--framework litert] [--seeds 16] [--jobs 2]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import wilcoxon
from search_regret import BUDGETS, DEFAULT_DATA, PERCENTILES, TASKS, accessible_optima, load_task

from nasprof.profiler.environment import host_summary
from nasprof.search.api import search
from nasprof.search.regret import regret_report

RESULTS = Path(__file__).parent / "results" / "search_regret_heldout.json"
#: label -> (population = budget / divisor, clipped to [low, high]; tournament share of it; crossover).
SETTINGS: dict[str, tuple[float, int, int, float, float]] = {
    "before": (10, 20, 100, 0.25, 0.5),
    "tournament P/2": (10, 20, 100, 0.5, 0.5),
    "tournament 3P/4": (10, 20, 100, 0.75, 0.5),
    "tournament P": (10, 20, 100, 1.0, 0.5),
    "no crossover": (10, 20, 100, 0.25, 0.0),
    "population B/3": (3, 5, 1000, 0.25, 0.5),
    "population B/5": (5, 5, 1000, 0.25, 0.5),
    "population B/20": (20, 5, 1000, 0.25, 0.5),
}
BASELINE = "before"
FREE = ("random", "before", "tournament P/2")
LABELS = ("random", *SETTINGS, *(f"{s}+free" for s in FREE))
_CTX: dict[str, Any] = {}


def options(label: str, budget: int) -> dict[str, Any] | None:
    """Evolution's options for ``label`` at ``budget`` queries (None: the library's defaults)."""
    if label not in SETTINGS:
        return None
    divisor, low, high, share, cross = SETTINGS[label]
    population = int(min(high, max(low, budget // divisor)))  # as the library rounds: down
    return {
        "population_size": population,
        "sample_size": max(2, int(population * share)),
        "crossover_prob": cross,
    }


def _search(c: dict[str, Any], label: str, ti: int, seed: int, queries: int, so: Any) -> Any:
    return search(
        "nb201",
        c["predictor"],
        c["targets"][ti],
        reward="hard",
        strategy="random" if label == "random" else "evolution",
        seed=seed,
        accuracy=c["table"],
        max_queries=queries,
        budget=3 * queries,
        **({"strategy_options": so} if so else {}),
    )


def _regret(c: dict[str, Any], ti: int, arch: str | None, out: dict[str, Any], q: int) -> float | None:
    """The pick's regret; ``out[over_Q]`` says whether its measured latency breaks the target."""
    pick = None if arch is None else c["space"].arch(arch, **dict(c["searched"].options))
    rep = regret_report(pick, c["truth"], c["targets"][ti], c["searched"])
    out[f"over_{q}"] = bool(rep["returned"] and rep["returned"]["over_target"])
    return rep["regret_points"]  # type: ignore[no-any-return]


def run(job: tuple[str, int, str, int]) -> dict[str, Any]:
    task, ti, label, seed = job
    c = _CTX[task]
    out: dict[str, Any] = {"task": task, "target": ti, "label": label, "seed": seed}
    t0 = time.perf_counter()
    if label.endswith("+free"):
        base = label.removesuffix("+free")
        for q in BUDGETS:
            r = _search(c, base, ti, seed, 4 * q, options(base, q))
            new = np.diff(np.concatenate([[0], np.asarray(r.queries)])) > 0
            counted = np.cumsum(new & r.scores.feasible)  # queries of bound-feasible networks only
            upto = int(np.searchsorted(counted, q, side="right"))
            feasible = r.scores.feasible[:upto]
            best = int(np.argmax(np.where(feasible, r.scores.reward[:upto], -np.inf)))
            out[str(q)] = _regret(c, ti, r.archs[best] if feasible.any() else None, out, q)
            out[f"queries_{q}"] = int(r.queries[upto - 1])
    elif label == "random":
        r = _search(c, label, ti, seed, BUDGETS[-1], None)
        for q in BUDGETS:
            best = r.best_within(q)
            out[str(q)] = _regret(c, ti, None if best is None else best.arch, out, q)
            upto = int(np.searchsorted(r.queries, q, side="right"))
            out[f"infeasible_{q}"] = float(1.0 - r.scores.feasible[:upto].mean())
    else:
        for q in BUDGETS:
            r = _search(c, label, ti, seed, q, options(label, q))
            out[str(q)] = _regret(c, ti, None if r.best is None else r.best.arch, out, q)
            out[f"infeasible_{q}"] = float(1.0 - r.scores.feasible.mean())
            out[f"candidates_{q}"] = r.evaluated
    out["seconds"] = time.perf_counter() - t0
    return out


def _init(ctx: dict[str, Any]) -> None:
    _CTX.update(ctx)


def _values(runs: list[dict[str, Any]], label: str, task: str, ti: int, q: int) -> dict[int, float]:
    return {
        r["seed"]: np.nan if r[str(q)] is None else float(r[str(q)])
        for r in runs
        if r["label"] == label and r["task"] == task and r["target"] == ti
    }


def summarize(
    runs: list[dict[str, Any]], tasks: list[str], labels: list[str], rng: np.random.Generator
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for label in labels:
        row: dict[str, Any] = {}
        for q in BUDGETS:
            cell: dict[str, Any] = {"median_regret": {}, "wilcoxon_p_below_random": {}}
            diffs, medians = [], []
            below = 0
            for task in tasks:
                for ti, pct in enumerate(PERCENTILES):
                    mine = _values(runs, label, task, ti, q)
                    base = _values(runs, BASELINE, task, ti, q)
                    rnd = _values(runs, "random", task, ti, q)
                    key = f"{task} p{pct}"
                    cell["median_regret"][key] = float(np.nanmedian(list(mine.values())))
                    medians.append(cell["median_regret"][key])
                    diffs += [mine[s] - base[s] for s in mine if s in base]
                    if label != "random":
                        d = np.array([mine[s] - rnd[s] for s in mine if s in rnd])
                        p = float(wilcoxon(d, alternative="less").pvalue) if np.any(d != 0) else 1.0
                        cell["wilcoxon_p_below_random"][key] = p
                        below += p < 0.05
            d = np.array(diffs)
            boot = rng.choice(d, (2000, d.size)).mean(axis=1)
            cell["mean_of_medians"] = float(np.mean(medians))
            cell["vs_before_mean_diff"] = float(d.mean())
            cell["vs_before_ci95"] = [float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))]
            cell["targets_below_random"] = below
            cell["over_target_share"] = float(
                np.mean([r[f"over_{q}"] for r in runs if r["label"] == label and f"over_{q}" in r])
            )
            shares = [r[f"infeasible_{q}"] for r in runs if r["label"] == label and f"infeasible_{q}" in r]
            if shares:
                cell["query_share_bound_infeasible"] = float(np.mean(shares))
            row[str(q)] = cell
        row["median_seconds"] = float(np.median([r["seconds"] for r in runs if r["label"] == label]))
        out[label] = row
    return out


def per_seed(runs: list[dict[str, Any]], tasks: list[str], labels: list[str]) -> dict[str, Any]:
    """Every run's regret: label -> "task pNN" -> budget -> one value per seed (seed order)."""
    return {
        label: {
            f"{task} p{pct}": {
                str(q): [
                    None if v != v else round(v, 4)
                    for _, v in sorted(_values(runs, label, task, ti, q).items())
                ]
                for q in BUDGETS
            }
            for task in tasks
            for ti, pct in enumerate(PERCENTILES)
        }
        for label in labels
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("data", nargs="?", default=str(DEFAULT_DATA))
    ap.add_argument("--device", default="pixel")
    ap.add_argument("--framework", default="litert")
    ap.add_argument("--seeds", type=int, default=16)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--labels", default=",".join(LABELS))
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()
    if args.device == "pi5" and args.framework == "litert":
        raise SystemExit("pi5/litert is the reported benchmark (search_regret.py): choose held-out data")
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)  # forked workers: see search_regret.py
    start = time.perf_counter()
    df = pd.read_parquet(args.data)
    tasks = list(TASKS)
    contexts = {t: load_task(df, t, args.device, args.framework) for t in tasks}
    labels = [x for x in args.labels.split(",") if x]
    jobs = [
        (t, ti, lb, s)
        for t in tasks
        for ti in range(len(PERCENTILES))
        for lb in labels
        for s in range(args.seeds)
    ]
    jobs.sort(key=lambda j: not j[2].endswith("+free"))  # the slowest first
    with multiprocessing.get_context("fork").Pool(args.jobs, initializer=_init, initargs=(contexts,)) as pool:
        runs = pool.map(run, jobs, chunksize=1)
    summary = summarize(runs, tasks, labels, np.random.default_rng(0))
    for label, row in summary.items():
        cells = " | ".join(
            f"{q}: {row[str(q)]['mean_of_medians']:.3f} {row[str(q)]['vs_before_mean_diff']:+.3f} "
            f"[{row[str(q)]['vs_before_ci95'][0]:+.3f}, {row[str(q)]['vs_before_ci95'][1]:+.3f}] "
            f"<rnd {row[str(q)]['targets_below_random']}"
            for q in BUDGETS
        )
        print(f"{label:22s} {cells}")
    total = time.perf_counter() - start
    doc = {
        "schema_version": 1,
        "benchmark": "search_regret_heldout",
        "host": host_summary(),
        "data": Path(args.data).name,
        "device": args.device,
        "framework": args.framework,
        "budgets": list(BUDGETS),
        "percentiles": list(PERCENTILES),
        "seeds": args.seeds,
        "baseline": BASELINE,
        "settings": {
            k: {
                "population": f"budget/{v[0]:g} in [{v[1]}, {v[2]}]",
                "tournament_share": v[3],
                "crossover_prob": v[4],
            }
            for k, v in SETTINGS.items()
        },
        "tasks": {
            t: {"targets_ms": c["targets"], "accessible": accessible_optima(c)} for t, c in contexts.items()
        },
        "summary": summary,
        "regrets": per_seed(runs, tasks, labels),
        "total_seconds": total,
    }
    Path(args.out).write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {args.out} in {total:.0f} s")


if __name__ == "__main__":
    main()
