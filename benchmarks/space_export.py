"""Space / export figures: ms per ``export_layer`` (what the table builder pays per entry), whole-preset
export time, and the pure-Python throughput of sample / mutate / crossover / layers() that search relies on.

    python benchmarks/space_export.py            # ~1-2 min on 2 cores
    python benchmarks/space_export.py --layers 50

Writes ``benchmarks/results/space_export.json`` and prints a short summary.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from nasprof.space import export_arch, export_layer, get_preset, get_space


def per_call_us(fn: Any, n: int) -> float:
    t = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t) / n * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--layers", type=int, default=120, help="distinct mnasnet layers to export (evenly spread)"
    )
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "space_export.json")
    args = ap.parse_args()

    space = get_space("mnasnet")
    distinct = space.distinct_layers(224)
    picked = distinct[:: max(1, len(distinct) // args.layers)][: args.layers]
    doc: dict[str, Any] = {"schema_version": 1, "benchmark": "space_export"}
    with tempfile.TemporaryDirectory() as tmp:
        export_layer(picked[0], Path(tmp) / "warm.onnx")  # first call pays torch's lazy imports
        times_ms = []
        for i, layer in enumerate(picked):
            t = time.perf_counter()
            export_layer(layer, Path(tmp) / f"l{i}.onnx")
            times_ms.append((time.perf_counter() - t) * 1e3)
        doc["export_layer_ms"] = {
            "n": len(times_ms),
            "median": statistics.median(times_ms),
            "mean": statistics.fmean(times_ms),
            "p90": float(np.percentile(times_ms, 90)),
            "max": max(times_ms),
            "full_mnasnet_table_estimate_s": statistics.fmean(times_ms) * len(distinct) / 1e3,
        }
        presets = {}
        for name in ("mobilenet_v2", "mnasnet_a1", "resnet50"):
            t = time.perf_counter()
            export_arch(get_preset(name), Path(tmp) / f"{name}.onnx")
            presets[name] = time.perf_counter() - t
        doc["export_preset_s"] = presets

    rng = np.random.default_rng(0)
    archs = space.sample(1000, seed=1)
    arch = archs[0]
    doc["mnasnet_us_per_call"] = {
        "sample": per_call_us(lambda: space.sample(1, seed=rng), 5000),
        "mutate": per_call_us(lambda: space.mutate(arch, rng), 5000),
        "crossover": per_call_us(lambda: space.crossover(archs[1], archs[2], rng), 5000),
        # fresh architectures each call: nothing cached on the Arch itself
        "layers_fresh_arch": per_call_us(lambda: space.sample(1, seed=rng)[0].layers(), 3000),
        "encode": per_call_us(lambda: space.encode(arch), 5000),
    }
    doc["distinct_layers_224"] = {
        name: len(get_space(name).distinct_layers(224)) for name in ("mnasnet", "mobilenetv2")
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    e = doc["export_layer_ms"]
    print(
        f"export_layer: median {e['median']:.1f} ms, p90 {e['p90']:.1f} ms over {e['n']} mnasnet layers "
        f"(all {len(distinct)}: ~{e['full_mnasnet_table_estimate_s']:.0f} s of export)"
    )
    print("preset export: " + ", ".join(f"{k} {v:.2f} s" for k, v in presets.items()))
    print("mnasnet µs/call: " + ", ".join(f"{k} {v:.1f}" for k, v in doc["mnasnet_us_per_call"].items()))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
