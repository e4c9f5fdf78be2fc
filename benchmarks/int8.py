"""int8 (static QDQ, onnxruntime's quantiser) against fp32 on this host's CPU, per preset, and the cost of
building an int8 table.

Per preset at ``--resolution``: export fp32, quantise to int8, measure both with the cpu backend (1 thread,
3 fresh sessions), fp32 and int8 measured alternately so the host's drift hits both alike; the ratio
int8 / fp32 of medians. Then the first ``--entries`` layers of the ``mobilenetv2`` space built into an fp32
table and into an int8 table (entries per minute; target: int8 within 20% of fp32).

    .venv/bin/python benchmarks/int8.py [--resolution 160] [--entries 24]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import nasprof
from nasprof.profiler.environment import host_summary
from nasprof.space import export_arch, list_presets
from nasprof.space.quantize import quantize_int8
from nasprof.tables.builder import build_table

RESULTS = Path(__file__).parent / "results" / "int8.json"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--resolution", type=int, default=160)
    ap.add_argument("--entries", type=int, default=24)
    ap.add_argument("--presets", default=",".join(list_presets()))
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.presets.split(","):
            fp32 = export_arch(name, Path(tmp) / f"{name}.onnx", resolution=args.resolution)
            q = quantize_int8(fp32, Path(tmp) / f"{name}.int8.onnx")
            med = {"fp32": [], "int8": []}
            for _ in range(2):  # alternate: fp32, int8, fp32, int8
                for label, path in (("fp32", fp32), ("int8", q.path)):
                    m = nasprof.measure(path, device="cpu", threads=1, warmup=5, runs=15, sessions=3)
                    med[label].append(m.median_ms)
            f, i = min(med["fp32"]), min(med["int8"])
            rows.append({"preset": name, "fp32_ms": round(f, 4), "int8_ms": round(i, 4),
                         "int8_over_fp32": round(i / f, 3), "int8_ops": q.quantized_ops,
                         "float_ops": q.float_ops})
            print(f"{name:20s} fp32 {f:8.3f} ms  int8 {i:8.3f} ms  ratio {i / f:.2f}")
        spec = nasprof.MeasureSpec(threads=1, warmup=3, runs=10, sessions=2)
        builds = {}
        for label, int8 in (("fp32", False), ("int8", True)):
            t0 = time.perf_counter()
            rep = build_table("mobilenetv2", 96, "cpu", Path(tmp) / f"{label}.db", limit=args.entries,
                              spec=spec, int8=int8)
            seconds = time.perf_counter() - t0
            builds[label] = {"entries": rep.written,
                             "seconds": round(seconds, 2),
                             "entries_per_minute": round(rep.written / seconds * 60, 1)}
            print(f"table build {label}: {args.entries} entries in {seconds:.1f} s")
    ratio = builds["int8"]["entries_per_minute"] / builds["fp32"]["entries_per_minute"]
    doc = {"schema_version": 1, "benchmark": "int8", "resolution": args.resolution, "threads": 1,
           "quantisation": "static QDQ, S8S8, per-channel weights, MinMax on 8 seeded random inputs",
           "host": host_summary(), "presets": rows, "table_build": builds,
           "int8_build_rate_over_fp32": round(ratio, 3), "target_build_rate_ratio": 0.8}
    RESULTS.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"int8/fp32 table build rate {ratio:.2f}; wrote {RESULTS}")


if __name__ == "__main__":
    main()
