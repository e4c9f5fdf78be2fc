"""Design-space quality: seconds per grid cell of 1,000 sampled models, and the recommendation it gives.

TinyNAS's grid (width x resolution) for ``mobilenetv2`` and ``mnasnet`` under an STM32H743's memory
(512 KiB SRAM, 2 MiB Flash), 1,000 models per cell: MACs from integer genotypes, SRAM/Flash from the analytic
MCU graph of each layer (no export). The first pass pays for building each cell's chain layout and sizing
its distinct layers; a second pass with another seed shows the steady cost (target: <= 2 s per cell). Also
RegNet's EDF of MACs for the three spaces with their pairwise KS distances.

    .venv/bin/python benchmarks/space_quality.py      # writes benchmarks/results/space_quality.json
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from nasprof.profiler.environment import host_summary
from nasprof.search.quality import space_edf, space_quality

RESULTS = Path(__file__).parent / "results" / "space_quality.json"
WIDTHS, RESOLUTIONS, N, BOARD = (0.35, 0.5, 0.75), (96, 128, 160, 192), 1000, "stm32h743"


def main() -> None:
    runs = []
    for name in ("mobilenetv2", "mnasnet"):
        for label, seed in (("first", 0), ("steady", 1)):
            t0 = time.perf_counter()
            res = space_quality(name, WIDTHS, RESOLUTIONS, n=N, seed=seed, device=BOARD)
            seconds = time.perf_counter() - t0
            cells = len(res.cells)
            best = res.best
            runs.append({
                "space": name, "pass": label, "seed": seed, "cells": cells, "n": N,
                "seconds": round(seconds, 3), "seconds_per_cell": round(seconds / cells, 3),
                "recommended": None if best is None else {"width": best.width, "resolution": best.resolution,
                                                          "share": best.share, "mean_macs": best.mean_macs},
                "cells_summary": [
                    {k: v for k, v in c.summary().items() if k != "macs_cdf"} for c in res.cells
                ],
            })
            print(f"{name:12s} {label:6s} {seconds / cells:.2f} s per cell of {N}; recommended "
                  f"{best.width if best else '-'} x {best.resolution if best else '-'}")
    t0 = time.perf_counter()
    edf = space_edf(["mnasnet", "mobilenetv2", "regnet"], "macs", n=N)
    edf_s = time.perf_counter() - t0
    ks = {f"{a}/{b}": round(d, 4) for (a, b), d in edf.ks().items()}
    print(f"EDF of MACs, {N} per space in {edf_s:.2f} s; KS {ks}")
    doc = {
        "schema_version": 1,
        "benchmark": "space_quality",
        "board": BOARD,
        "target_seconds_per_cell": 2.0,
        "host": host_summary(),
        "runs": runs,
        "edf": {"metric": "macs", "n": N, "seconds": round(edf_s, 3), "ks": ks,
                "medians": {k: float(sorted(v)[len(v) // 2]) for k, v in edf.values.items()}},
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
