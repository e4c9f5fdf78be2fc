"""Predictor accuracy on the local CPU: lookup table vs end-to-end, kernel predictor on the presets,
prediction throughput, and the noise floor of the measurements themselves.

    .venv/bin/python benchmarks/predictor_accuracy.py            # 100 mnasnet archs, 600 kernel samples
    .venv/bin/python benchmarks/predictor_accuracy.py --quick    # 20 archs, 200 kernel samples
    .venv/bin/python benchmarks/predictor_accuracy.py --skip-lut --out X.json  # kernel predictor only

Writes benchmarks/results/predictor_accuracy.json (``_quick.json`` with --quick) and prints a summary.
The lookup table holds the distinct layers of the sampled architectures plus the calibration
architectures (another seed; --calib, 20 by default), built with the real table builder (resumable: --table
keeps it; pass the full table from table_build.py --keep-db to use the product's own table). The LUT is
reported plain, with the per-call overhead removed, and with the scale fitted on the calibration
architectures; the noise floor is the same networks measured twice. Targets (issue 5): LUT ≥ 99% within
±10% and ≥ 90% within ±5%; kernel predictor ≥ 90% within ±10% on presets it never saw whole.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

warnings.filterwarnings("ignore")  # torch's exporter is chatty; nothing here depends on its warnings

from nasprof.devices import MeasureSpec, get_device  # noqa: E402
from nasprof.errors import NasprofError  # noqa: E402
from nasprof.space import export_arch, get_space, list_presets  # noqa: E402
from nasprof.tables import LatencyTable, build_table  # noqa: E402
from nasprof.tables.predictors import KernelPredictor, LutPredictor, error_summary  # noqa: E402
from nasprof.tables.predictors.kernel_sampling import measure_overhead  # noqa: E402

RESULTS = Path(__file__).parent / "results"
# Fresh sessions of one network differ by 2-4% on this host (allocation and cache placement change per
# session), so the end-to-end reference pools 6 sessions: 2 sessions gave a 5% RMSPE noise floor.
E2E_SPEC = MeasureSpec(threads=1, warmup=10, runs=30, sessions=6)
TABLE_SPEC = MeasureSpec(threads=1, warmup=10, runs=30, sessions=2)


class SampledLayers:
    """A view of a space that yields only the distinct layers of some architectures (for build_table)."""

    def __init__(self, space: Any, archs: list[Any]) -> None:
        self._space, self._archs, self.name = space, archs, space.name

    def sample(self, *a: Any, **kw: Any) -> Any:
        return self._space.sample(*a, **kw)

    def validate(self, arch: Any) -> None:
        self._space.validate(arch)

    def distinct_layers(self, resolution: int) -> list[Any]:
        seen: dict[str, Any] = {}
        for a in self._archs:
            for layer in a.layers():
                seen.setdefault(layer.key, layer)
        return list(seen.values())


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def measure_e2e(paths: list[Path]) -> list[float]:
    backend = get_device("cpu")
    return [backend.measure(p, E2E_SPEC).median_ms for p in paths]


def lut_benchmark(n: int, seed: int, table: Path, tmp: Path, noise_n: int, n_calib: int) -> dict[str, Any]:
    space = get_space("mnasnet")
    archs = space.sample(n, seed=seed, resolution=224)
    # Calibration architectures: a different seed, never validated on.
    calib = space.sample(n_calib, seed=seed + 1000, resolution=224)
    t0 = time.perf_counter()
    build_table(SampledLayers(space, archs + calib), 224, "cpu", table, spec=TABLE_SPEC)
    build_s = time.perf_counter() - t0
    overhead = measure_overhead("cpu", TABLE_SPEC)
    log(
        f"table: {len(LatencyTable.load(table))} entries in {build_s:.0f} s; "
        f"per-call overhead {overhead:.4f} ms"
    )
    plain = LutPredictor.from_table(table, overhead_ms=0.0)
    calibrated = LutPredictor.from_table(table, overhead_ms=overhead)
    calib_paths = [export_arch(a, tmp / f"c{i}.onnx") for i, a in enumerate(calib)]
    paths = [export_arch(a, tmp / f"a{i}.onnx") for i, a in enumerate(archs)]
    # One shuffled pass over calibration networks, validation networks and the noise floor's repeats: a
    # shared VM's speed drifts over minutes, and measuring the calibration set first once fitted a scale
    # 5% off the validation set's (1.08 vs 1.14). Interleaving gives every group the same conditions.
    jobs = [("c", i) for i in range(len(calib))] + [("a", i) for i in range(n)]
    jobs += [("r", i) for i in range(noise_n)]
    order = np.random.default_rng(seed).permutation(len(jobs))
    got: dict[tuple[str, int], float] = {}
    for j in order:
        kind, i = jobs[j]
        path = calib_paths[i] if kind == "c" else paths[i]
        got[(kind, i)] = measure_e2e([path])[0]
    calib_ms = [got[("c", i)] for i in range(len(calib))]
    measured = [got[("a", i)] for i in range(n)]
    # Noise floor: the same networks measured again (fresh sessions, at another time) against the first.
    again = [got[("r", i)] for i in range(noise_n)]
    scaled = calibrated.calibrate(calib, calib_ms)
    out = {
        "n": n,
        "seed": seed,
        "resolution": 224,
        "table_entries": len(plain.entries),
        "table_build_s": build_s,
        "overhead_ms": overhead,
        "uncalibrated": error_summary(plain.predict_many(archs), measured),
        "overhead_only": error_summary(calibrated.predict_many(archs), measured),
        "calibrated": error_summary(scaled.predict_many(archs), measured),
        "scale": scaled.scale,
        "calibration_archs": n_calib,
        "noise_floor": error_summary(again, measured[:noise_n]),
        "rows": [
            {"name": a.to_string(), "predicted_ms": float(p), "measured_ms": m}
            for a, p, m in zip(archs, scaled.predict_many(archs), measured, strict=True)
        ],
    }
    out["throughput"] = throughput(scaled, archs)
    return out


def throughput(p: LutPredictor, archs: list[Any]) -> dict[str, float]:
    ids = p.encode_many(archs)
    batch = np.tile(ids, (max(1, 200_000 // len(archs)), 1))
    p.predict_many(batch)
    t0 = time.perf_counter()
    reps = 5
    for _ in range(reps):
        p.predict_many(batch)
    per_s = reps * len(batch) / (time.perf_counter() - t0)
    a = archs[0]
    p.predict(a)
    t0 = time.perf_counter()
    for _ in range(10_000):
        p.predict(a)
    single_cached_us = (time.perf_counter() - t0) / 10_000 * 1e6
    # Cold: architectures this predictor instance never saw, their layers not computed yet either.
    from nasprof.space import Arch

    cold = LutPredictor(
        p.entries,
        overhead_ms=p.overhead_ms,
        scale=p.scale,
        device=p.device,
        space=p.space,
        resolution=p.resolution,
    )
    fresh = [Arch.from_string(x.to_string()) for x in archs]
    t0 = time.perf_counter()
    for x in fresh:
        cold.predict(x)
    single_cold_us = (time.perf_counter() - t0) / len(fresh) * 1e6
    return {
        "batch_archs_per_s": per_s,
        "batch_size": len(batch),
        "single_cached_us": single_cached_us,
        "single_cold_us": single_cold_us,
        "cold_samples": len(fresh),
    }


def kernel_benchmark(budget: int, seed: int, tmp: Path, noise: bool, n_calib: int) -> dict[str, Any]:
    from nasprof.tables.predictors.calibration import calibration_archs, measure_calibration_set

    t0 = time.perf_counter()
    plain = KernelPredictor.fit(
        "cpu", budget=budget, seed=seed, spec=MeasureSpec(threads=1, warmup=5, runs=25, sessions=1)
    )
    fit_s = time.perf_counter() - t0
    # In-network calibration on sampled mnasnet/mobilenetv2 architectures (never the presets).
    t0 = time.perf_counter()
    archs = calibration_archs(n_calib, seed + 1000)
    sets, calib_ms = measure_calibration_set(archs, plain.kernels, "cpu", E2E_SPEC)
    p = plain.calibrate(sets, calib_ms, names=[a.to_string() for a in archs])
    calib_s = time.perf_counter() - t0
    p.save(tmp / "kernel.json")
    names, paths, skipped = [], [], {}
    for name in list_presets():
        try:
            paths.append(export_arch(name, tmp / f"{name}.onnx"))
            names.append(name)
        except NasprofError as exc:  # a preset that cannot be exported is reported, not fatal
            skipped[name] = str(exc)
    measured = measure_e2e(paths)
    rows, preds, plain_preds = [], [], []
    for name, path, m in zip(names, paths, measured, strict=True):
        e = p.explain(path)
        preds.append(e.latency_ms)
        plain_preds.append(plain.explain(path).latency_ms)
        rows.append(
            {
                "name": name,
                "predicted_ms": e.latency_ms,
                "uncalibrated_ms": plain_preds[-1],
                "measured_ms": m,
                "missing": list(e.missing),
            }
        )
    complete = [i for i, r in enumerate(rows) if not r["missing"]]
    out = {
        "budget": budget,
        "fit_s": fit_s,
        "overhead_ms": p.overhead_ms,
        "training_error": p.training_error,
        "calibration": p.calibration.to_dict() if p.calibration else None,
        "calibration_s": calib_s,
        "presets_uncalibrated": error_summary(plain_preds, measured),
        "presets": error_summary(preds, measured),
        "presets_fully_predicted": error_summary(
            [preds[i] for i in complete], [measured[i] for i in complete]
        ),
        "rows": rows,
        "skipped_presets": skipped,
    }
    if noise:
        out["noise_floor"] = error_summary(measure_e2e(paths), measured)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="20 architectures, 200 kernel measurements")
    ap.add_argument("--archs", type=int, default=None)
    ap.add_argument("--budget", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--table", type=Path, default=None, help="keep the LUT here (resumable)")
    ap.add_argument("--skip-lut", action="store_true")
    ap.add_argument("--calib", type=int, default=20, help="architectures (another seed) to fit the LUT scale")
    ap.add_argument("--skip-kernel", action="store_true")
    ap.add_argument(
        "--kernel-calib", type=int, default=24, help="sampled architectures to calibrate the kernel predictor"
    )
    ap.add_argument(
        "--out", type=Path, default=None, help="result file (default: results/predictor_accuracy*.json)"
    )
    args = ap.parse_args()
    n = args.archs or (20 if args.quick else 100)
    budget = args.budget or (200 if args.quick else 600)
    RESULTS.mkdir(parents=True, exist_ok=True)
    doc: dict[str, Any] = {
        "benchmark": "predictor_accuracy",
        "quick": args.quick,
        "cpu_count": os.cpu_count(),
        "load_avg_start": os.getloadavg(),
    }
    out = args.out or RESULTS / ("predictor_accuracy_quick.json" if args.quick else "predictor_accuracy.json")
    with tempfile.TemporaryDirectory(prefix="nasprof-bench-") as tmp_s:
        tmp = Path(tmp_s)
        if not args.skip_lut:
            table = args.table or tmp / "lut.db"
            doc["lut"] = lut_benchmark(n, args.seed, table, tmp, noise_n=min(n, 20), n_calib=args.calib)
            out.write_text(json.dumps(doc, indent=2) + "\n")  # keep the LUT figures if a later phase fails
        if not args.skip_kernel:
            doc["kernel"] = kernel_benchmark(budget, args.seed, tmp, noise=True, n_calib=args.kernel_calib)
    doc["load_avg_end"] = os.getloadavg()
    out.write_text(json.dumps(doc, indent=2) + "\n")
    if "lut" in doc:
        lut = doc["lut"]
        print(f"LUT scale {lut['scale']:.4f} (fitted on {lut['calibration_archs']} other archs)")
        for label in ("uncalibrated", "overhead_only", "calibrated", "noise_floor"):
            s = lut[label]
            print(
                f"LUT {label:13s} n={s['n']:3d} within ±5% {s['within_5pct']:.0%}  "
                f"±10% {s['within_10pct']:.0%}"
                f"  RMSPE {s['rmspe']:.1%}"
            )
        t = lut["throughput"]
        print(
            f"LUT throughput: {t['batch_archs_per_s']:,.0f} archs/s (batch), single call "
            f"{t['single_cached_us']:.1f} µs cached / {t['single_cold_us']:.0f} µs cold"
        )
    if "kernel" in doc:
        k = doc["kernel"]
        for label in ("presets_uncalibrated", "presets", "presets_fully_predicted", "noise_floor"):
            s = k[label]
            print(
                f"kernel {label:24s} n={s['n']:2d} within ±10% {s['within_10pct']:.0%}  "
                f"RMSPE {s['rmspe']:.1%}"
            )
        for r in k["rows"]:
            print(
                f"  {r['name']:20s} predicted {r['predicted_ms']:8.3f} ms  "
                f"measured {r['measured_ms']:8.3f} ms"
                f"  {(r['predicted_ms'] - r['measured_ms']) / r['measured_ms']:+.1%}"
                f"  (uncalibrated {(r['uncalibrated_ms'] - r['measured_ms']) / r['measured_ms']:+.1%})"
                + (f"  (missing {len(r['missing'])})" if r["missing"] else "")
            )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
