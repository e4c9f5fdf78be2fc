"""Latency-table build figures: entries per minute, efficiency, and the full ``mnasnet`` table at 224.

What it reports (``nasprof table build`` defaults: 1 thread, 2 sessions, ±1% CI target, 0.25 s of timed
inference planned per entry, export in a child process):

(a) entries built, wall time, entries per minute;
(b) efficiency = time inside timed inference ÷ wall time (target ≥ 70%);
(c) where the time goes: timed inference; the rest of ``Backend.measure`` (session creation, warm-ups,
    input preparation); export (in the child process, overlapped: it costs wall time only when the
    measurement waits for it); the remainder (claims, commits, planning, progress);
(d) quality: entries flagged unstable / re-measured / CI not reached, and the distribution of samples;
(e) with ``--compare``: the same subset with export inline (no child process) and with a fixed run count
    (no time budget), to show what each design choice buys.

    python benchmarks/table_build.py            # the full mnasnet table at 224 (2,149 entries; ~15-20 min)
    python benchmarks/table_build.py --quick    # every 15th layer (144 entries) and an extrapolation
    python benchmarks/table_build.py --quick --compare

Writes ``benchmarks/results/table_build.json`` (or ``--out``) and prints a short summary.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing


def one_build(db: Path, args: argparse.Namespace, *, shard: str | None, export_jobs: int = 1,
              time_per_entry_s: float | None = 0.25, runs: int | None = None) -> dict[str, Any]:
    from dataclasses import replace

    from nasprof.tables import LatencyTable
    from nasprof.tables.builder import TABLE_SPEC, build_table

    spec = TABLE_SPEC if runs is None else replace(TABLE_SPEC, runs=runs)
    last = [0.0]

    def progress(p: Any) -> None:  # a line every 30 s: long runs should show they are alive
        if p.elapsed_s - last[0] >= 30 or p.done == p.total:
            last[0] = p.elapsed_s
            eta = "?" if p.eta_s is None else f"{p.eta_s / 60:.1f} min"
            print(f"  {p.done}/{p.total} entries, {p.rate_per_min:.0f}/min, ETA {eta}", file=sys.stderr)

    r = build_table(args.space, args.resolution, args.device, db, shard=shard, spec=spec,
                    export_jobs=export_jobs, time_per_entry_s=time_per_entry_s, progress=progress)
    with LatencyTable.load(db) as t:
        entries = list(t.entries())
    ok = [e for e in entries if e.ok]
    n = max(r.written, 1)
    other_measure_s = r.measure_s - r.inference_s
    rest_s = r.wall_s - r.setup_s - r.measure_s - r.export_wait_s - r.db_s
    once_s = r.setup_s + r.first_export_wait_s
    return {
        "settings": {"shard": shard, "export_jobs": export_jobs, "time_per_entry_s": time_per_entry_s,
                     "runs": spec.runs, "sessions": spec.sessions, "warmup": spec.warmup,
                     "target_rel_ci": spec.target_rel_ci, "max_runs": spec.max_runs},
        "entries": r.written,
        "failed": r.failed,
        "distinct_layers": r.distinct,
        "wall_s": r.wall_s,
        "entries_per_min": r.entries_per_min,
        "efficiency": r.efficiency,
        "time_s": {
            "setup": r.setup_s,
            "timed_inference": r.inference_s,
            "measure_other": other_measure_s,
            "export_total": r.export_s,
            "export_wait": r.export_wait_s,
            "first_export_wait": r.first_export_wait_s,
            "database": r.db_s,
            "rest": rest_s,
        },
        "per_entry_ms": {
            "wall": 1000 * r.wall_s / n,
            "timed_inference": 1000 * r.inference_s / n,
            "measure_other": 1000 * other_measure_s / n,
            "export_wait": 1000 * r.export_wait_s / n,
            "database": 1000 * r.db_s / n,
            "rest": 1000 * rest_s / n,
            "export_in_child_or_inline": 1000 * r.export_s / n,
        },
        "quality": {
            "unstable": sum("unstable" in e.flags for e in ok),
            "remeasured": sum("remeasured" in e.flags for e in ok),
            "ci_wide": sum("ci_wide" in e.flags for e in ok),
            "tiny": sum("tiny" in e.flags for e in ok),
            "samples_median": statistics.median(e.n for e in ok) if ok else 0,
            "samples_max": max((e.n for e in ok), default=0),
            "median_ms_range": [min(e.median_ms for e in ok), max(e.median_ms for e in ok)] if ok else None,
            "sum_of_medians_ms": sum(e.median_ms for e in ok),
        },
        # One-time costs (setup, the export child importing torch) counted once, the rest per entry.
        "steady_state_efficiency": r.inference_s / max(r.wall_s - r.setup_s - r.first_export_wait_s, 1e-9),
        "full_table_estimate_min": (once_s + (r.wall_s - once_s) / n * r.distinct) / 60.0,
    }


def summary_line(name: str, res: dict[str, Any]) -> str:
    t = res["per_entry_ms"]
    rest = t["wall"] - t["timed_inference"] - t["measure_other"] - t["export_wait"] - t["database"]
    return (f"{name:<16} {res['entries']:5d} entries in {res['wall_s'] / 60:5.1f} min "
            f"({res['entries_per_min']:6.1f}/min), efficiency {res['efficiency']:.0%} "
            f"(steady state {res['steady_state_efficiency']:.0%}); per entry "
            f"{t['wall']:.0f} ms = inference {t['timed_inference']:.0f} + sessions/warm-up "
            f"{t['measure_other']:.0f} + export wait {t['export_wait']:.0f} + db {t['database']:.0f} + "
            f"setup/rest {rest:.0f}"
            f"; full table ≈ {res['full_table_estimate_min']:.1f} min")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--space", default="mnasnet")
    ap.add_argument("--resolution", type=int, default=224)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--quick", action="store_true", help="every 15th layer (shard 1/15) instead of all")
    ap.add_argument("--compare", action="store_true", help="also inline export and fixed runs (subset)")
    ap.add_argument("--shard", default=None, help="build only share I/N of the table (e.g. 1/2)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "table_build.json")
    ap.add_argument("--keep-db", type=Path, default=None,
                    help="build the main table here and keep it (e.g. for predictor_accuracy.py --table)")
    args = ap.parse_args()

    from nasprof.profiler.environment import host_metadata

    doc: dict[str, Any] = {"schema_version": 1, "benchmark": "table_build", "space": args.space,
                           "resolution": args.resolution, "device": args.device, "host": host_metadata(),
                           "results": {}}
    shard = "1/15" if args.quick else args.shard
    started = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        name = "subset_1_of_15" if args.quick else ("shard_" + args.shard.replace("/", "_of_")
                                                    if args.shard else "full_table")
        print(f"{name}: building {args.space}@{args.resolution} on {args.device} ...", file=sys.stderr)
        main_db = args.keep_db if args.keep_db is not None else Path(tmp) / "main.db"
        doc["results"][name] = one_build(main_db, args, shard=shard)
        if args.compare:
            print("inline export ...", file=sys.stderr)
            doc["results"]["inline_export"] = one_build(Path(tmp) / "inline.db", args, shard="2/15",
                                                        export_jobs=0)
            print("fixed runs (30/session, no time budget) ...", file=sys.stderr)
            doc["results"]["fixed_runs_30"] = one_build(Path(tmp) / "fixed.db", args, shard="3/15",
                                                        time_per_entry_s=None, runs=30)
    doc["total_wall_s"] = time.time() - started
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    for name, res in doc["results"].items():
        print(summary_line(name, res))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
