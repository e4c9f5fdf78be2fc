"""Seconds for `compare_measurements` on two 1,000-sample measurements (target <= 0.5 s), resampling whole
sessions (10 sessions) and single samples (1 session); median of 5 calls each.

    .venv/bin/python benchmarks/compare_speed.py     # writes benchmarks/results/compare_speed.json
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from nasprof.profiler.compare import compare_measurements
from nasprof.profiler.environment import host_summary
from nasprof.profiler.measurement import Measurement

RESULTS = Path(__file__).parent / "results" / "compare_speed.json"


def _m(center: float, sessions: int, seed: int) -> Measurement:
    rng = np.random.default_rng(seed)
    samples = center * (1 + 0.03 * np.abs(rng.standard_normal(1000)))
    return Measurement("cpu", "cpu", tuple(samples), session_index=tuple(np.arange(1000) * sessions // 1000))


def main() -> None:
    rows = []
    for sessions in (10, 1):
        a, b = _m(1.0, sessions, 0), _m(1.02, sessions, 1)
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            (c,) = compare_measurements([a, b])
            times.append(time.perf_counter() - t0)
        rows.append({"sessions": sessions, "samples": 1000, "median_s": round(float(np.median(times)), 4),
                     "max_s": round(max(times), 4), "resampled": c.resampled, "verdict": c.verdict})
        print(f"{sessions:2d} sessions: median {np.median(times):.3f} s ({c.resampled}; {c.verdict})")
    doc = {"schema_version": 1, "benchmark": "compare_speed", "target_s": 0.5, "host": host_summary(),
           "runs": rows}
    RESULTS.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
