"""``predictor adapt`` beyond NAS-Bench-201, on this host: a device timed only end to end, learned from the
local CPU's predictors.

(a) The local CPU's lookup table of a space (1 thread) adapted to "another device": this host at 2 threads,
    timed only end to end (60 sampled networks; 20 planned or random shots, the other 40 predicted).
(b) The kernel predictor fitted on this host (1 thread) on NAS-Bench-201 graphs it never saw (40 networks,
    CIFAR-100 shape): as it is, and adapted per kernel type with 20 of them (the other 20 predicted).

Every figure stands beside its noise floor: the same networks measured twice (even vs odd interleaved
rounds). The host is shared and noisy; figures are medians of one run.

    .venv/bin/python benchmarks/adapt_local.py [--space mnasnet --resolution 96] [--skip-kernel]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from nasprof.devices import MeasureSpec, get_device
from nasprof.predictors import LutPredictor
from nasprof.predictors.adapt import adapt, candidate_decompositions, plan
from nasprof.predictors.measured import agreement
from nasprof.profiler.environment import host_summary
from nasprof.profiler.interleave import half_medians, measure_interleaved
from nasprof.space import export_many, get_space

RESULTS = Path(__file__).parent / "results" / "adapt_local.json"
DRAWS = 10


def measure(paths: list[Path], threads: int, seed: int) -> tuple[np.ndarray, dict[str, Any]]:
    spec = MeasureSpec(threads=threads, warmup=10, runs=20, sessions=4)
    ms = measure_interleaved(get_device("cpu"), paths, spec, seed=seed)
    y = np.array([m.median_ms for m in ms])
    halves = [half_medians(m) for m in ms]
    a = np.array([h[0] for h in halves if h])
    b = np.array([h[1] for h in halves if h])
    return y, agreement(a, b)


def shots_vs_rest(targets: list[Any], y: np.ndarray, source: Any, k: int, seed: int) -> dict[str, Any]:
    """``k`` planned and ``k`` random shots (median of DRAWS), the rest predicted; beside the source as it is
    and the source times one fitted scale (what a single calibration number gives)."""
    n = len(targets)
    out: dict[str, Any] = {}
    chosen = plan(targets, k, candidate_decompositions(source))
    rest = np.setdiff1d(np.arange(n), chosen)
    t0 = time.perf_counter()
    rep = adapt([targets[i] for i in chosen], y[chosen], device="target", source=source)
    out["adapt_s"] = round(time.perf_counter() - t0, 3)
    out["plan"] = agreement(rep.predictor.predict_many([targets[i] for i in rest]), y[rest])
    src = np.asarray(source.predict_many(targets), float)
    out["source_as_is"] = agreement(src[rest], y[rest])
    rng = np.random.default_rng(seed)
    rnd, scaled = [], []
    for _ in range(DRAWS):
        tr = rng.choice(n, k, replace=False)
        te = np.setdiff1d(np.arange(n), tr)
        r = adapt([targets[i] for i in tr], y[tr], device="target", source=source)
        rnd.append(agreement(r.predictor.predict_many([targets[i] for i in te]), y[te]))
        s = float(np.sum(src[tr] * y[tr] / y[tr] ** 2) / np.sum(src[tr] ** 2 / y[tr] ** 2))
        scaled.append(agreement(src[te] * s, y[te]))
    out["random_median"] = {key: float(np.median([r[key] for r in rnd])) for key in rnd[0]}
    out["one_scale_median"] = {key: float(np.median([r[key] for r in scaled])) for key in scaled[0]}
    return out


def lut_part(space_name: str, resolution: int, tmp: Path, db: Path) -> dict[str, Any]:
    from nasprof.tables.builder import build_table

    space = get_space(space_name)
    t0 = time.perf_counter()
    build_table(space, resolution, "cpu", db, spec=MeasureSpec(threads=1, warmup=10, runs=10, sessions=2))
    build_s = time.perf_counter() - t0
    lut = LutPredictor.from_table(db)
    archs = space.sample(60, seed=7, resolution=resolution)
    (tmp / "lut-nets").mkdir()
    paths = export_many(archs, tmp / "lut-nets")
    y, noise = measure(paths, threads=2, seed=1)
    print(f"(a) {space_name}@{resolution}: table {build_s:.0f} s; 60 networks at 2 threads "
          f"{np.median(y):.3f} ms median; noise floor within ±10% {noise['within_10pct']:.0%}", flush=True)
    res = shots_vs_rest(archs, y, lut, 20, seed=0)
    res.update(space=space_name, resolution=resolution, table_build_s=round(build_s, 1), networks=60,
               target="cpu, 2 threads (source: table at 1 thread)", noise_floor=noise,
               median_ms=float(np.median(y)))
    print(f"    plan-20 {res['plan']['within_10pct']:.0%} ρ {res['plan']['spearman']:.3f} | "
          f"random-20 {res['random_median']['within_10pct']:.0%} | "
          f"one scale {res['one_scale_median']['within_10pct']:.0%} | "
          f"table as is {res['source_as_is']['within_10pct']:.0%}", flush=True)
    return res


def kernel_part(tmp: Path, budget: int) -> dict[str, Any]:
    from nasprof.predictors.adapt.adapt import nb201_strings
    from nasprof.predictors.kernel.trainer import fit_kernel_predictor
    from nasprof.space.parse import parse_arch

    t0 = time.perf_counter()
    kp = fit_kernel_predictor("cpu", budget=budget,
                              spec=MeasureSpec(threads=1, warmup=5, runs=10, sessions=1))
    fit_s = time.perf_counter() - t0
    rng = np.random.default_rng(3)
    strings = [nb201_strings()[i] for i in rng.choice(15625, 40, replace=False)]
    archs = [parse_arch(s, "nb201") for s in strings]
    (tmp / "nb201").mkdir()
    paths = export_many(archs, tmp / "nb201")
    y, noise = measure(paths, threads=1, seed=2)
    pred = np.asarray(kp.predict_many([str(p) for p in paths]), float)
    as_is = agreement(pred, y)
    print(f"(b) kernel predictor ({fit_s:.0f} s to fit) on 40 NB201 graphs: as is "
          f"{as_is['within_10pct']:.0%} (median error {np.median(pred / y - 1):+.1%}); "
          f"noise floor {noise['within_10pct']:.0%}", flush=True)
    res = shots_vs_rest([str(p) for p in paths], y, kp, 20, seed=1)
    res.update(networks=40, kernel_fit_s=round(fit_s, 1), budget=budget, as_is_all=as_is,
               median_error_as_is=float(np.median(pred / y - 1)), noise_floor=noise,
               median_ms=float(np.median(y)))
    print(f"    adapted, plan-20 {res['plan']['within_10pct']:.0%} ρ {res['plan']['spearman']:.3f} | "
          f"random-20 {res['random_median']['within_10pct']:.0%} | "
          f"one scale {res['one_scale_median']['within_10pct']:.0%}", flush=True)
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--space", default="mnasnet")
    ap.add_argument("--resolution", type=int, default=96)
    ap.add_argument("--kernel-budget", type=int, default=800)
    ap.add_argument("--skip-kernel", action="store_true")
    ap.add_argument("--skip-lut", action="store_true")
    ap.add_argument("--db", type=Path, default=Path(tempfile.gettempdir()) / "nasprof-adapt-local-cpu.db",
                    help="the local CPU's table (kept between runs: a build resumes)")
    args = ap.parse_args()
    doc: dict[str, Any] = {"schema_version": 1, "benchmark": "adapt_local", "draws": DRAWS}
    if RESULTS.exists() and (args.skip_kernel or args.skip_lut):  # keep the part not rerun, with its host
        old = json.loads(RESULTS.read_text())
        for key in ("lut_to_2_threads", "kernel_on_nb201"):
            if key in old:
                doc[key] = old[key]
    host = host_summary()
    with tempfile.TemporaryDirectory(prefix="nasprof-adapt-local-") as tmp:
        if not args.skip_lut:
            doc["lut_to_2_threads"] = {**lut_part(args.space, args.resolution, Path(tmp), args.db),
                                       "host": host}
        if not args.skip_kernel:
            doc["kernel_on_nb201"] = {**kernel_part(Path(tmp), args.kernel_budget), "host": host}
    RESULTS.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
