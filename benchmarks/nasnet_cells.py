"""Are irregular cells hardware-unfriendly? NASNet cells against MBConv chains of the same MACs, measured.

    python benchmarks/nasnet_cells.py              # ~3 min on 2 cores
    python benchmarks/nasnet_cells.py --pairs 4 --resolution 128

Pairs: ``--pairs`` random ``nasnet`` networks plus NASNet-A's cells, each matched with the ``mnasnet`` network
(MBConv chains) whose MACs are closest among 2,000 random ones. Per network: onnxruntime latency on this CPU
(CPU execution provider, one intra-op thread, default optimisations; median of per-round medians, the two
networks of a pair alternating), latency per MAC, and peak SRAM per MAC of an int8 deployment on an
MCU-class board under the ``tflm`` and ``tinyengine`` memory models (the live tensors of parallel branches
count). The noise floor is the same networks measured twice (two halves of the rounds). For NASNet-A and its
match, the sum of their table rows measured alone (what a lookup table predicts) against the network: a
cell's split, adds and concats are in no row.
Writes ``benchmarks/results/nasnet_cells.json``.
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
import onnxruntime as ort

from nasprof.devices.mcu.graph import load_graph
from nasprof.devices.mcu.planners import plan_memory
from nasprof.profiler.environment import host_summary
from nasprof.space import export_arch, export_layer, get_space
from nasprof.space.layer import priced_layers
from nasprof.space.spaces.nasnet import nasnet_a_arch


def session(path: Path) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def median_ms(sess: ort.InferenceSession, warmup: int, runs: int) -> float:
    inp = sess.get_inputs()[0]
    x = np.random.default_rng(0).standard_normal([int(d) for d in inp.shape]).astype(np.float32)
    for _ in range(warmup):
        sess.run(None, {inp.name: x})
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        sess.run(None, {inp.name: x})
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def sram_bytes(path: Path) -> dict[str, int]:
    graph = load_graph(path)
    return {m: plan_memory(graph, m).peak_bytes for m in ("tflm", "tinyengine")}


def table_sum_ms(arch: Any, tmp: Path, warmup: int, runs: int) -> float:
    """Sum over the network's table rows (cells priced by operation), each measured alone."""
    total, cache = 0.0, {}
    for layer in priced_layers(arch.layers()):
        if layer.key not in cache:
            path = export_layer(layer, tmp / f"l{len(cache)}.onnx")
            cache[layer.key] = median_ms(session(path), warmup, runs)
        total += cache[layer.key]
    return total


def _q(values: list[float]) -> dict[str, float]:
    a = np.asarray(values, dtype=np.float64)
    return {"median": float(np.median(a)), "p25": float(np.quantile(a, 0.25)),
            "p75": float(np.quantile(a, 0.75))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=6, help="random NASNet networks (NASNet-A is added)")
    ap.add_argument("--resolution", type=int, default=160)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--runs", type=int, default=40, help="timed runs per network per round")
    ap.add_argument("--rounds", type=int, default=6, help="rounds (even: two halves give the noise floor)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "nasnet_cells.json")
    args = ap.parse_args()
    res = args.resolution
    nas = [nasnet_a_arch(res), *get_space("nasnet").sample(args.pairs, seed=args.seed, resolution=res)]
    pool = get_space("mnasnet").sample(2000, seed=args.seed + 1, resolution=res)
    pool_macs = np.array([a.network().macs for a in pool], dtype=np.float64)

    rows = []
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        for k, cell_arch in enumerate(nas):
            macs = cell_arch.network().macs
            chain_arch = pool[int(np.argmin(np.abs(pool_macs - macs)))]
            paths = {"nasnet": export_arch(cell_arch, tmp / f"n{k}.onnx"),
                     "mbconv": export_arch(chain_arch, tmp / f"m{k}.onnx")}
            sessions = {name: session(p) for name, p in paths.items()}
            rounds: dict[str, list[float]] = {"nasnet": [], "mbconv": []}
            for r in range(args.rounds):
                order = ("nasnet", "mbconv") if r % 2 == 0 else ("mbconv", "nasnet")
                for name in order:
                    rounds[name].append(median_ms(sessions[name], args.warmup, args.runs))
            row: dict[str, Any] = {"nasnet_arch": cell_arch.to_string(),
                                   "mbconv_arch": chain_arch.to_string(), "nasnet_a": k == 0}
            for name, arch in (("nasnet", cell_arch), ("mbconv", chain_arch)):
                net = arch.network()
                half = args.rounds // 2
                a, b = statistics.median(rounds[name][:half]), statistics.median(rounds[name][half:])
                ms = statistics.median(rounds[name])
                sram = sram_bytes(paths[name])
                row[name] = {
                    "macs": net.macs, "params": net.params, "round_medians_ms": rounds[name],
                    "median_ms": ms, "ns_per_mac": ms * 1e6 / net.macs, "repeat_ratio": b / a,
                    "peak_sram_bytes": sram,
                    "sram_bytes_per_kmac": {m: v * 1e3 / net.macs for m, v in sram.items()},
                }
            if k == 0:
                for name, arch in (("nasnet", cell_arch), ("mbconv", chain_arch)):
                    s = table_sum_ms(arch, tmp, args.warmup, args.runs)
                    row[name]["table_sum_ms"] = s
                    row[name]["table_sum_over_measured"] = s / row[name]["median_ms"]
            rows.append(row)
            n, m = row["nasnet"], row["mbconv"]
            print(f"pair {k}: nasnet {n['macs'] / 1e6:.0f}M MACs {n['median_ms']:.2f} ms "
                  f"({n['ns_per_mac']:.3f} ns/MAC) | mbconv {m['macs'] / 1e6:.0f}M {m['median_ms']:.2f} ms "
                  f"({m['ns_per_mac']:.3f} ns/MAC) | SRAM tflm {n['peak_sram_bytes']['tflm'] / 1024:.0f} vs "
                  f"{m['peak_sram_bytes']['tflm'] / 1024:.0f} KiB", flush=True)

    lat_ratio = [r["nasnet"]["ns_per_mac"] / r["mbconv"]["ns_per_mac"] for r in rows]
    sram_ratio = {mm: [r["nasnet"]["sram_bytes_per_kmac"][mm] / r["mbconv"]["sram_bytes_per_kmac"][mm]
                       for r in rows] for mm in ("tflm", "tinyengine")}
    noise = [abs(r[f]["repeat_ratio"] - 1.0) for r in rows for f in ("nasnet", "mbconv")]
    summary = {
        "latency_per_mac_ratio_nasnet_over_mbconv": _q(lat_ratio),
        "sram_per_mac_ratio_nasnet_over_mbconv": {mm: _q(v) for mm, v in sram_ratio.items()},
        "noise_floor_abs_repeat_change": _q(noise),
        "table_sum_over_measured": {f: rows[0][f]["table_sum_over_measured"] for f in ("nasnet", "mbconv")},
    }
    doc = {
        "schema_version": 1,
        "benchmark": "nasnet_cells",
        "settings": {"provider": "CPUExecutionProvider", "intra_op_threads": 1, "resolution": res,
                     "warmup": args.warmup, "runs": args.runs, "rounds": args.rounds, "seed": args.seed,
                     "board_memory_models": ["tflm", "tinyengine"],
                     "match": "mnasnet network of closest MACs among 2000 random ones"},
        "host": host_summary(),
        "summary": summary,
        "pairs": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    print(json.dumps(summary, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
