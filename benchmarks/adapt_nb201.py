"""A device known only end to end: ``predictor adapt`` on real NAS-Bench-201 timings (Raspberry Pi 5 and
Pixel 6a; LiteRT and PyTorch Mobile; three tasks), beside the six-number op-count regression.

The data (``nb201_devices.parquet``, not part of the product) times one network per isomorphism class (6,466
of the 15,625), so every figure is over those timed networks: the shots are drawn from them, and each is
predicted from its own cell. For each device/runtime/task: 5, 20 and 50 shots chosen by ``plan`` (a
D-optimal design) and drawn at random (median of 10 draws), evaluated on all other timed networks. The
noise floor is what a second measurement of the same networks would give, simulated from each network's
40-run variance (Pi 5 only; the Pixel's variance is not in the data).

    .venv/bin/python benchmarks/adapt_nb201.py [PATH/TO/nb201_devices.parquet]
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import kendalltau, spearmanr

from nasprof.predictors.adapt import adapt, candidate_decompositions, plan
from nasprof.predictors.adapt.decomposition import nb201_ops
from nasprof.profiler.environment import host_summary

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared/data/nb201-devices/nb201_devices.parquet"
RESULTS = Path(__file__).parent / "results" / "adapt_nb201.json"
TASKS = {"cifar100": (3, 32, 32, 100), "ninapro": (1, 52, 16, 18), "darcy": (1, 88, 88, 1)}
OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
DRAWS = 10


def scores(pred: np.ndarray, y: np.ndarray) -> dict[str, float]:
    rel = pred / y - 1
    return {"within_10pct": float(np.mean(np.abs(rel) <= 0.10)),
            "within_5pct": float(np.mean(np.abs(rel) <= 0.05)),
            "rmspe": float(np.sqrt(np.mean(rel**2))), "spearman": float(spearmanr(pred, y)[0]),
            "kendall": float(kendalltau(pred, y)[0])}


def op_counts(archs: list[str]) -> np.ndarray:
    """The six numbers: count of each operation in the cell, and a constant."""
    return np.array([[ops.count(o) for o in OPS] + [1] for ops in (nb201_ops(a) for a in archs)], float)


def run_one(archs: list[str], y: np.ndarray, var: np.ndarray | None, options: dict, seed: int) -> dict:
    n = len(archs)
    x6 = op_counts(archs)
    out: dict = {"networks": n}
    if var is not None:
        # Standard error of a 40-run median ≈ 1.2533 σ / √40; two independent measurements differ by √2 of it.
        rng = np.random.default_rng(seed)
        se = 1.2533 * np.sqrt(var) / np.sqrt(40)
        again = y + rng.standard_normal(n) * se * np.sqrt(2)
        out["noise_floor"] = scores(again, y)
    decs = candidate_decompositions(None, options)
    t0 = time.perf_counter()
    planned_all = plan(archs, 50, decs)
    out["plan_s"] = round(time.perf_counter() - t0, 2)
    for shots in (5, 20, 50):
        row: dict = {}
        train = planned_all[:shots]  # greedy: the first k of a 50-network plan are the k-network plan
        mask = np.ones(n, bool)
        mask[train] = False
        t0 = time.perf_counter()
        rep = adapt([archs[i] for i in train], y[train], device="target", options=options)
        row["adapt_s"] = round(time.perf_counter() - t0, 3)
        pred = rep.predictor.predict_many([a for a, m in zip(archs, mask, strict=True) if m])
        row["plan"] = {**scores(pred, y[mask]), "chosen": rep.candidates[0][0],
                       "loo_rmspe": round(rep.candidates[0][1], 4)}
        rnd, base, picks = [], [], []
        rng = np.random.default_rng(seed + shots)
        for _ in range(DRAWS):
            train = rng.choice(n, shots, replace=False)
            mask = np.ones(n, bool)
            mask[train] = False
            rep = adapt([archs[i] for i in train], y[train], device="target", options=options)
            pred = rep.predictor.predict_many([a for a, m in zip(archs, mask, strict=True) if m])
            rnd.append(scores(pred, y[mask]))
            picks.append(rep.candidates[0][0])
            w, *_ = np.linalg.lstsq(x6[train], y[train], rcond=None)
            base.append(scores(x6[mask] @ w, y[mask]))
        row["random_median"] = {k: float(np.median([r[k] for r in rnd])) for k in rnd[0]}
        row["random_chosen"] = max(set(picks), key=picks.count)
        row["six_number_median"] = {k: float(np.median([r[k] for r in base])) for k in base[0]}
        out[f"shots_{shots}"] = row
    return out


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_DATA
    df = pd.read_parquet(path)
    runs = []
    for (task, device, framework), d in df.groupby(["task", "device", "framework"], sort=True):
        d = d.drop_duplicates("rep_arch_idx").sort_values("rep_arch_idx")
        archs = list(d.rep_arch_str)
        y = d.latency_ms_median.to_numpy(float)
        var = d.latency_ms2_var.to_numpy(float) if d.latency_ms2_var.notna().all() else None
        c, h, w, outputs = TASKS[task]
        options = {"input": (c, h, w), "outputs": outputs, "C": 16, "N": 5}
        r = run_one(archs, y, var, options, seed=0)
        r.update(task=task, device=device, framework=framework)
        runs.append(r)
        s20 = r["shots_20"]
        print(f"{task:8s} {device:5s} {framework:11s} plan20 {s20['plan']['within_10pct']:.1%} "
              f"ρ {s20['plan']['spearman']:.4f} | random20 {s20['random_median']['within_10pct']:.1%} "
              f"ρ {s20['random_median']['spearman']:.4f} | "
              f"six-number {s20['six_number_median']['within_10pct']:.1%} | "
              f"noise {r.get('noise_floor', {}).get('within_10pct', float('nan')):.1%} | "
              f"{s20['plan']['chosen']}",
              flush=True)
    doc = {"schema_version": 1, "benchmark": "adapt_nb201", "host": host_summary(), "data": path.name,
           "targets": {"within_10pct": 0.98, "spearman": 0.995, "adapt_s": 10.0}, "draws": DRAWS,
           "runs": runs}
    RESULTS.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
