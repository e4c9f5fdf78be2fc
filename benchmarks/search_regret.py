"""Search strategies judged on a real landscape: NAS-Bench-201 on a Raspberry Pi 5 (LiteRT), by regret.

For each task of the shared data (cifar100, ninapro, darcy; ``nb201_devices.parquet``, development data, not
part of the product): the accuracy of every network is the table (one value per isomorphism class: its
representative's row, looked up by class), the truth is the Pi 5's measured latency of every network, and
the search's latency predictor is ``predictor adapt`` fitted on 20 measured networks chosen by ``plan`` (a
D-optimal design, as ``benchmarks/adapt_nb201.py``). Targets: the 25th, 50th and 75th percentiles of the
true latency over the 15,625 networks. The hard reward meets each target with 95% confidence by the
predictor's leave-one-out error; the regret of a search at 100, 300 and 1,000 accuracy queries is the true
optimum under the target minus the true accuracy of what it would have returned then (percentage points),
and a pick whose measured latency breaks the target is counted. Darcy's column is 1 − relative L2 error
(the all-``none`` network scores 0.747, the all-conv one 0.978, and it correlates +0.59 with CIFAR-100
accuracy): the search minimises the error 1 − value with ``minimize``, and its points are ×100.

The soft reward (MnasNet's a = b = −0.07 at the median target) is judged by its front: the hypervolume of
the returned Pareto set, re-measured (true latency, true accuracy), over the true front's, in the box from
(0 ms, worst accuracy) to (slowest network, best accuracy).

Every search counts queries (``--max-queries``); a network is scored as the table's member of its
isomorphism class (the network the study measured: the data gives every member its representative's
latency, which is only true of the representative). The regret splits in two: the *price of the guarantee*
(``bound_floor``: the true optimum minus the *accessible optimum*, the best network whose 95% latency bound
meets the target; no strategy can do better with this predictor), itself the predictor's ranking error
(the same with the point estimate) plus the confidence margin, and the search's own regret (accessible
optimum minus the pick). A strategy is compared with random search per budget by one-sided tests:
Mann-Whitney over the seeds, and Wilcoxon's signed-rank and the sign test paired by seed. Besides the five
strategies, ``evolution+surrogate`` (``surrogate="online"``) and three settings from before earlier changes
run on fewer seeds: ``evolution (population 100)`` and ``(population 20)`` (fixed populations; ``evolution``
scales it with the budget, one search per budget), and ``rl (repeats allowed)`` (the controller before it
skipped networks it had proposed). The changes were tried on darcy and judged on cifar100 and ninapro;
the budget-scaled population was chosen after seeing both fixed populations on all three tasks.
``evolution (tournament P/4)`` is evolution's query-budget default before its tournament was chosen (half
the population) on held-out data, ``benchmarks/search_regret_heldout.py``: 20 seeds, one search per budget.
``tpe_unbounded`` times one TPE search as Optuna runs it by default (every trial kept, 256 trials per ask).

    .venv/bin/python benchmarks/search_regret.py [PATH/TO/nb201_devices.parquet] [--seeds 20] [--jobs 2]
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
from scipy.stats import binomtest, mannwhitneyu, wilcoxon

from nasprof.predictors.adapt import adapt, candidate_decompositions, plan
from nasprof.profiler.environment import host_summary
from nasprof.search.accuracy import TableAccuracy
from nasprof.search.api import search
from nasprof.search.options import with_options
from nasprof.search.regret import Truth, hypervolume, regret_report
from nasprof.space import get_space

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared/data/nb201-devices/nb201_devices.parquet"
RESULTS = Path(__file__).parent / "results" / "search_regret.json"
TASKS = {"cifar100": ((3, 32, 32), 100), "ninapro": ((1, 52, 16), 18), "darcy": ((1, 88, 88), 1)}
DEVICE, FRAMEWORK = "pi5", "litert"
PERCENTILES = (25, 50, 75)
BUDGETS = (100, 300, 1000)
MAX_QUERIES = BUDGETS[-1]
#: Candidates per search: 3 per query. A strategy that keeps proposing networks it already asked (a
#: converged controller) stops there, short of its queries; the queries it reached are reported.
CANDIDATES = 3 * MAX_QUERIES
#: label -> (strategy, extra ``search`` arguments, seeds as a share of ``--seeds``; the extra variants fewer).
#: Each variant runs one 1,000-query search and is judged at 100 and 300 queries by what it would have
#: returned then (``SearchResult.best_within``), except those in ``PER_BUDGET``, whose settings depend on
#: the query budget: one search per budget.
VARIANTS: dict[str, tuple[str, dict[str, Any], float]] = {
    "random": ("random", {}, 1.0),
    "evolution": ("evolution", {}, 1.0),
    "rl": ("rl", {}, 1.0),
    "tpe": ("tpe", {}, 1.0),
    "nsga2": ("nsga2", {}, 1.0),
    "evolution+surrogate": ("evolution", {"surrogate": "online"}, 0.5),
    # before the changes tuned on darcy (see the module): the held-out tasks' before/after
    "evolution (population 100)": (
        "evolution",
        {"strategy_options": {"population_size": 100, "sample_size": 25}},
        0.5,
    ),
    "evolution (population 20)": (
        "evolution",
        {"strategy_options": {"population_size": 20, "sample_size": 5}},
        0.5,
    ),
    "rl (repeats allowed)": ("rl", {"avoid_repeats": False}, 0.25),
    # evolution's query-budget defaults before its tournament was chosen on held-out data
    # (``benchmarks/search_regret_heldout.py``): tournaments of a quarter of the population, not half
    "evolution (tournament P/4)": ("evolution", {"strategy_options": "tournament P/4"}, 1.0),
}
#: Evolution's population follows the budget (a tenth of the queries, 20 to 100).
PER_BUDGET = {"evolution", "evolution (tournament P/4)"}


def budget_options(name: str, queries: int) -> dict[str, Any]:
    """A variant's evolution options at ``queries`` (by name, so the variants stay JSON)."""
    assert name == "tournament P/4", name
    population = int(min(100, max(20, queries // 10)))
    return {"population_size": population, "sample_size": max(2, population // 4)}


STRATEGIES = tuple(VARIANTS)
SHOTS = 20

_CTX: dict[str, Any] = {}


def load_task(
    df: pd.DataFrame, task: str, device: str = DEVICE, framework: str = FRAMEWORK
) -> dict[str, Any]:
    """A task's accuracy table, true latencies on ``device``/``framework``, the adapted predictor and the
    percentile targets."""
    d = df[(df.task == task) & (df.device == device) & (df.framework == framework)]
    shape, outputs = TASKS[task]
    options = {"input": shape, "outputs": outputs, "C": 16, "N": 5}
    space = get_space("nb201")
    searched = with_options(space, options)
    minimize = task == "darcy"
    reps = d[d.arch_idx == d.rep_arch_idx].sort_values("rep_arch_idx")
    values = (1.0 - reps.accuracy) if minimize else reps.accuracy
    table = TableAccuracy(
        dict(zip(reps.arch_str, values.astype(float), strict=True)),
        searched,
        minimize=minimize,
        label=f"{task} accuracies",
    )
    table._class_values()  # built once, before the workers fork
    truth = Truth.build(
        dict(zip(d.arch_str, d.latency_ms_median.astype(float), strict=True)),
        table,
        searched,
        label=f"{device} {framework} {task}",
    )
    archs = list(reps.arch_str)
    y = reps.latency_ms_median.to_numpy(float)
    chosen = plan(archs, SHOTS, candidate_decompositions(None, options))
    predictor = adapt(
        [archs[i] for i in chosen], y[chosen], device=f"{device}-{framework}", options=options
    ).predictor
    targets = [float(np.percentile(d.latency_ms_median, p)) for p in PERCENTILES]
    return {
        "task": task,
        "space": space,
        "searched": searched,
        "table": table,
        "truth": truth,
        "predictor": predictor,
        "targets": targets,
        "minimize": minimize,
        "loo": predictor.training_error,
    }


def run_hard(job: tuple[str, int, str, int]) -> dict[str, Any]:
    task, ti, label, seed = job
    c = _CTX[task]
    target = c["targets"][ti]
    strategy, extra, _ = VARIANTS[label]

    def run(queries: int) -> Any:
        given = dict(extra)
        if isinstance(given.get("strategy_options"), str):
            given["strategy_options"] = budget_options(given["strategy_options"], queries)
        return search(
            "nb201",
            c["predictor"],
            target,
            reward="hard",
            strategy=strategy,
            seed=seed,
            accuracy=c["table"],
            max_queries=queries,
            budget=3 * queries,
            **given,
        )

    t0 = time.perf_counter()
    r = run(MAX_QUERIES)
    seconds = time.perf_counter() - t0
    out: dict[str, Any] = {
        "task": task,
        "target": ti,
        "strategy": label,
        "seed": seed,
        "seconds": seconds,
        "queries": (r.accuracy_source or {})["queries"],
        "evaluated": r.evaluated,
    }
    for q in BUDGETS:
        best = run(q).best if label in PER_BUDGET and q != MAX_QUERIES else r.best_within(q)
        pick = None if best is None else c["space"].arch(best.arch, **dict(c["searched"].options))
        rep = regret_report(pick, c["truth"], target, c["searched"])
        ret = rep["returned"] or {}
        out[str(q)] = {
            "regret": rep["regret_points"],
            "over": ret.get("over_target"),
            "arch": ret.get("arch"),
        }
    return out


def run_soft(job: tuple[str, str, int]) -> dict[str, Any]:
    task, strategy, seed = job
    c = _CTX[task]
    target = c["targets"][1]
    r = search(
        "nb201",
        c["predictor"],
        target,
        reward="soft",
        strategy=strategy,
        seed=seed,
        accuracy=c["table"],
        max_queries=MAX_QUERIES,
        budget=CANDIDATES,
    )
    truth: Truth = c["truth"]
    located = [
        truth.locate(c["space"].arch(p.arch, **dict(c["searched"].options)), c["searched"]) for p in r.pareto
    ]
    idx = [i for i in located if i is not None]
    ref_lat, ref_q = float(truth.latency_ms.max()), float(truth.quality.min())
    found = hypervolume(truth.latency_ms[idx], truth.quality[idx], ref_lat, ref_q)
    return {
        "task": task,
        "strategy": strategy,
        "seed": seed,
        "front": len(idx),
        "hv_ratio": found / c["hv_true"],
        "queries": (r.accuracy_source or {})["queries"],
    }


def accessible_optima(c: dict[str, Any], confidence: float = 0.95) -> list[dict[str, Any]]:
    """Per target, the price of the guarantee: the true optimum, and the best network (true accuracy) among
    those a search can accept, the table's networks whose predicted latency x (1 + u) meets the target at
    ``confidence`` (the *accessible optimum*), and the same with the point estimate (u = 0). A pick's
    regret is then (true - accessible optimum: no strategy can do better with this predictor at this
    confidence) + (accessible optimum - pick: the search's own regret); the first part splits into the
    predictor's ranking error (true - point-estimate optimum) and the confidence margin (the rest)."""
    from nasprof.search.confidence import LatencyBound

    truth: Truth = c["truth"]
    keys = list(c["table"].values)
    opts = dict(c["searched"].options)
    pred = np.asarray(c["predictor"].predict_many([c["space"].arch(k, **opts) for k in keys]), float)
    bound = LatencyBound.for_predictor(c["predictor"], confidence)
    idx = np.array([truth._index()[k] for k in keys])
    quality, latency = truth.quality[idx], truth.latency_ms[idx]
    out = []
    for target in c["targets"]:
        opt = truth.optimum(target)
        assert opt is not None
        row: dict[str, Any] = {
            "target_ms": float(target),
            "true_optimum": float(truth.accuracy[opt] * truth.scale),
            "truly_feasible_networks": int((latency <= target).sum()),
        }
        for name, upper in (("", bound.upper(pred)), ("_point_estimate", pred)):
            ok = upper <= target
            j = int(np.argmax(np.where(ok, quality, -np.inf)))
            row[f"accessible_networks{name}"] = int(ok.sum())
            row[f"accessible_optimum{name}"] = float(truth.accuracy[idx[j]] * truth.scale)
            row[f"accessible_optimum{name}_over_target"] = bool(latency[j] > target)
            row[f"price{name}"] = float((truth.quality[opt] - quality[j]) * truth.scale)
        row["price_predictor_error"] = row.pop("price_point_estimate")
        row["price_confidence_margin"] = row["price"] - row["price_predictor_error"]
        row["price_of_guarantee"] = row.pop("price")
        out.append(row)
    return out


def time_unbounded_tpe(task: str) -> dict[str, Any]:
    """One TPE search as Optuna runs it (every trial kept, 256 trials per ask, repeats returned): where the
    time went before the bound."""
    c = _CTX[task]
    t0 = time.perf_counter()
    r = search(
        "nb201",
        c["predictor"],
        c["targets"][1],
        reward="hard",
        strategy="tpe",
        seed=0,
        accuracy=c["table"],
        max_queries=MAX_QUERIES,
        budget=CANDIDATES,
        batch_size=256,
        avoid_repeats=False,
        strategy_options={"history": None, "prior_weight": 1.0},
    )
    return {
        "seconds": time.perf_counter() - t0,
        "candidates": r.evaluated,
        "queries": (r.accuracy_source or {})["queries"],
    }


def _init(ctx: dict[str, Any]) -> None:
    _CTX.update(ctx)


def below_random(reg: np.ndarray, rnd: np.ndarray, seeds: list[int], rnd_seeds: list[int]) -> dict[str, Any]:
    """One-sided tests that a strategy's regret is below random search's: Mann-Whitney over the two sets
    of seeds, and, paired by seed (a strategy and random search with one seed draw the same first
    networks), Wilcoxon's signed-rank test (ties dropped) and the sign test."""
    out: dict[str, Any] = {
        "mannwhitney_p_below_random": float(mannwhitneyu(reg, rnd, alternative="less").pvalue)
        if np.ptp(np.concatenate([reg, rnd])) > 0
        else 1.0
    }
    pos = {sd: i for i, sd in enumerate(rnd_seeds)}
    pairs = [(reg[i], rnd[pos[sd]]) for i, sd in enumerate(seeds) if sd in pos]
    diff = np.array([a - b for a, b in pairs], float)
    diff = diff[np.isfinite(diff)]
    lower, higher = int((diff < 0).sum()), int((diff > 0).sum())
    out["paired_seeds_lower_tied_higher"] = [lower, int(diff.size) - lower - higher, higher]
    out["wilcoxon_p_below_random"] = (
        float(wilcoxon(diff, alternative="less").pvalue) if lower + higher else 1.0
    )
    out["sign_p_below_random"] = (
        float(binomtest(lower, lower + higher, 0.5, alternative="greater").pvalue) if lower + higher else 1.0
    )
    return out


def summarize(runs: list[dict[str, Any]], contexts: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for task, c in contexts.items():
        for ti, target in enumerate(c["targets"]):
            by = {
                s: [r for r in runs if r["task"] == task and r["target"] == ti and r["strategy"] == s]
                for s in STRATEGIES
            }
            for s, rs in by.items():
                if not rs:
                    continue
                row: dict[str, Any] = {
                    "task": task,
                    "percentile": PERCENTILES[ti],
                    "target_ms": target,
                    "strategy": s,
                    "seeds": len(rs),
                    "bound_floor": c["floors"][ti],
                    "median_queries_reached": float(np.median([r["queries"] for r in rs])),
                    "median_seconds": float(np.median([r["seconds"] for r in rs])),
                }
                for q in BUDGETS:
                    reg = np.array(
                        [np.nan if r[str(q)]["regret"] is None else r[str(q)]["regret"] for r in rs]
                    )
                    over = [bool(r[str(q)]["over"]) for r in rs]
                    cell: dict[str, Any] = {
                        "median_regret": float(np.nanmedian(reg)),
                        "median_search_regret": float(np.nanmedian(reg)) - c["floors"][ti],
                        "mean_regret": float(np.nanmean(reg)),
                        "over_target_share": float(np.mean(over)),
                        "regrets": [round(float(v), 4) for v in reg],
                    }
                    if s != "random" and by["random"]:
                        rnd = np.array([r[str(q)]["regret"] for r in by["random"]], float)
                        cell.update(
                            below_random(reg, rnd, [r["seed"] for r in rs], [r["seed"] for r in by["random"]])
                        )
                    row[str(q)] = cell
                rows.append(row)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("data", nargs="?", default=str(DEFAULT_DATA))
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--tasks", default=",".join(TASKS))
    ap.add_argument("--strategies", default=",".join(STRATEGIES))
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()
    # One BLAS thread: the workers are forked, and a BLAS thread pool started in the parent (the predictor
    # over 6,466 networks) deadlocks a forked child's next large product.
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    start = time.perf_counter()
    df = pd.read_parquet(args.data)
    tasks = [t for t in args.tasks.split(",") if t]
    strategies = [s for s in args.strategies.split(",") if s]
    contexts = {}
    for task in tasks:
        c = load_task(df, task)
        truth: Truth = c["truth"]
        c["hv_true"] = hypervolume(
            truth.latency_ms, truth.quality, float(truth.latency_ms.max()), float(truth.quality.min())
        )
        c["accessible"] = accessible_optima(c)
        c["floors"] = [a["price_of_guarantee"] for a in c["accessible"]]
        contexts[task] = c
        print(
            f"{task}: targets {', '.join(f'{t:.3f}' for t in c['targets'])} ms; predictor LOO RMSPE "
            f"{c['loo']['loo_rmspe']:.1%} (q05 {c['loo']['loo_rel_quantiles']['0.05']:+.1%})",
            flush=True,
        )
    seeds = {s: max(1, int(round(VARIANTS[s][2] * args.seeds))) for s in strategies}
    hard_jobs = [
        (t, ti, s, seed)
        for t in tasks
        for ti in range(len(PERCENTILES))
        for s in strategies
        for seed in range(seeds[s])
    ]
    soft_jobs = [
        (t, s, seed)
        for t in tasks
        for s in ("evolution", "nsga2")
        if s in strategies
        for seed in range(min(args.seeds, 10))
    ]
    # the slowest first, so the pool's two workers finish together
    order = {"tpe": 0, "evolution+surrogate": 1, "rl (repeats allowed)": 2, "nsga2": 3, "rl": 4}
    hard_jobs.sort(key=lambda j: order.get(j[2], 5))
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(args.jobs, initializer=_init, initargs=(contexts,)) as pool:
        tpe_before = pool.apply_async(time_unbounded_tpe, (tasks[0],)) if "tpe" in strategies else None
        hard = pool.map(run_hard, hard_jobs, chunksize=1)
        soft = pool.map(run_soft, soft_jobs, chunksize=1)
        unbounded = tpe_before.get() if tpe_before is not None else None
    rows = summarize(hard, contexts)
    soft_rows = []
    for t in tasks:
        for s in ("evolution", "nsga2"):
            rs = [r for r in soft if r["task"] == t and r["strategy"] == s]
            if rs:
                hv = np.array([r["hv_ratio"] for r in rs])
                soft_rows.append(
                    {
                        "task": t,
                        "strategy": s,
                        "seeds": len(rs),
                        "median_hv_ratio": float(np.median(hv)),
                        "min_hv_ratio": float(hv.min()),
                        "share_within_1pct": float(np.mean(hv >= 0.99)),
                        "median_front": float(np.median([r["front"] for r in rs])),
                    }
                )
    for row in rows:
        cells = " | ".join(
            f"{q}: {row[str(q)]['median_regret']:.3f} ({row[str(q)]['over_target_share']:.0%} over)"
            for q in BUDGETS
        )
        print(
            f"{row['task']:8s} p{row['percentile']} {row['strategy']:26s} {cells} | floor "
            f"{row['bound_floor']:.3f} | queries "
            f"{row['median_queries_reached']:.0f} | {row['median_seconds']:.2f} s",
            flush=True,
        )
    for row in soft_rows:
        print(
            f"soft {row['task']:8s} {row['strategy']:9s} HV ratio median {row['median_hv_ratio']:.4f} "
            f"min {row['min_hv_ratio']:.4f}"
        )
    total = time.perf_counter() - start
    doc = {
        "schema_version": 1,
        "benchmark": "search_regret",
        "host": host_summary(),
        "data": Path(args.data).name,
        "device": DEVICE,
        "framework": FRAMEWORK,
        "budgets": list(BUDGETS),
        "candidates_per_search": CANDIDATES,
        "seeds": seeds,
        "percentiles": list(PERCENTILES),
        "confidence": 0.95,
        "predictor_shots": SHOTS,
        "targets": {
            "evolution_median_regret_at_300": 0.3,
            "evolution_below_random": "every budget, one-sided",
            "over_target_picks": 0,
            "soft_hv_ratio": 0.99,
        },
        "tasks": {
            t: {
                "targets_ms": c["targets"],
                "minimize": c["minimize"],
                "predictor_loo": {k: c["loo"][k] for k in ("loo_rmspe", "loo_rel_quantiles")},
                "true_front_hv": c["hv_true"],
                "bound_floor": c["floors"],
                "accessible": c["accessible"],
            }
            for t, c in contexts.items()
        },
        "variants": {
            k: {"strategy": v[0], "search": {a: b for a, b in v[1].items()}}
            for k, v in VARIANTS.items()
            if k in strategies
        },
        "per_budget": sorted(PER_BUDGET & set(strategies)),
        "tpe_unbounded": unbounded,
        "hard": rows,
        "soft": soft_rows,
        "total_seconds": total,
    }
    Path(args.out).write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {args.out} in {total:.0f} s")


if __name__ == "__main__":
    main()
