"""How fast the lookup-table predictor answers, by kind of input (issue 5: one call <= 20 us, 10^6/s batched).

The answer depends on what is passed and on what was seen before, so each case is reported apart:

- ``ids``: ``predict_many`` on an id matrix from ``encode_many`` (one numpy gather + row sum);
- ``strings_seen``: architecture strings predicted before (a dictionary hit each);
- ``archs_warm``: ``Arch`` objects never passed before, whose blocks the process has met (the steady state
  of a search: a dictionary hit per block);
- ``strings_new``: strings never seen (parsing included), blocks met before;
- ``cold``: a fresh process that loads the predictor file and predicts architectures one by one, nothing
  built yet: each new block's layers and keys are made once (the first few thousand architectures).

The table holds MAC-derived latencies for every distinct layer (speed depends on the keys, not the values).

With ``--kernel-file K.json`` (a fitted kernel predictor, e.g. kept by ``predictor_accuracy.py
--kernel-file``), also the kernel predictor on exported ONNX graphs: one ``predict`` per graph (read the
structure, shapes, split, every regressor), median of 10 with the predictor file already loaded, per step,
each step beside the general way of doing it measured in the same run (``onnx.load`` + shape inference; each
kernel type's forest walked on its own); and ``explain_many`` over sampled graphs against one by one.

    .venv/bin/python benchmarks/predict_speed.py [--spaces mnasnet,mobilenetv2] [--n 5000] [--kernel-file K]

Writes benchmarks/results/predict_speed.json and prints a summary. Wall-clock, single process.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from nasprof.predictors.lut.predictor import LutPredictor
from nasprof.profiler.environment import host_summary  # noqa: E402
from nasprof.space import Arch, get_space

RESULTS = Path(__file__).parent / "results" / "predict_speed.json"
RESOLUTION = 224

COLD = """
import sys, time
from nasprof.space import get_space
from nasprof.predictors import Predictor
p = Predictor.load(sys.argv[1])
archs = get_space(sys.argv[2]).sample(int(sys.argv[3]), seed=7, resolution=int(sys.argv[4]))
t0 = time.perf_counter()
for a in archs:
    p.predict(a)
print((time.perf_counter() - t0) / len(archs) * 1e6)
"""


def per_s(fn, n: int, repeat: int = 5) -> float:
    """Items per second, median of ``repeat`` timings of ``fn()`` that handles ``n`` items."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return n / statistics.median(times)


def bench_space(name: str, n: int, tmp: Path) -> dict:
    space = get_space(name)
    entries = {layer.key: 0.005 + layer.macs / 1e8 for layer in space.distinct_layers(RESOLUTION)}
    p = LutPredictor(entries, space=name, resolution=RESOLUTION, device="synthetic")
    p.predict_many(space.sample(20_000, seed=1, resolution=RESOLUTION))  # meet (nearly) every block
    strings = [a.to_string() for a in space.sample(n, seed=2, resolution=RESOLUTION)]
    row: dict = {"space": name, "table_keys": len(entries), "n": n}

    row["strings_new_per_s"] = per_s(lambda: p.predict_many(strings), n, repeat=1)
    row["strings_seen_per_s"] = per_s(lambda: p.predict_many(strings), n)
    ids = np.tile(p.encode_many(strings), (max(1, 200_000 // n), 1))
    row["ids_per_s"] = per_s(lambda: p.predict_many(ids), len(ids))
    # New Arch objects each time (parsed outside the timing): nothing is cached on them.
    batches = [[Arch.from_string(s) for s in strings] for _ in range(5)]
    it = iter(batches)
    row["archs_warm_per_s"] = per_s(lambda: p.predict_many(next(it)), n)
    fresh = [Arch.from_string(s) for s in strings[:2000]]
    t0 = time.perf_counter()
    for a in fresh:
        p.predict(a)
    row["single_warm_us"] = (time.perf_counter() - t0) / len(fresh) * 1e6
    a = fresh[0]
    t0 = time.perf_counter()
    for _ in range(20_000):
        p.predict(a)
    row["single_repeat_us"] = (time.perf_counter() - t0) / 20_000 * 1e6

    path = p.save(tmp / f"{name}.json")
    out = subprocess.run(
        [sys.executable, "-c", COLD, str(path), name, "2000", str(RESOLUTION)],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    row["single_cold_us"] = float(out.stdout.strip())
    return row


def _onnx_load_and_infer(model: Path) -> Any:
    """The general path, measured beside the fast one: parse every byte with onnx.load, infer shapes."""
    import onnx

    proto = onnx.load(str(model))
    return onnx.shape_inference.infer_shapes(proto, strict_mode=False, data_prop=True)


def _per_type(p: Any, kernels: list[Any]) -> None:
    """The regressors asked one kernel type at a time (each forest walked on its own)."""
    from nasprof.predictors.kernel.features import feature_matrix

    by_type: dict[str, list[Any]] = {}
    for k in kernels:
        if k.type in p.regressors:
            by_type.setdefault(k.type, []).append(k)
    for t, group in by_type.items():
        p.regressors[t].predict(feature_matrix(group))


def bench_kernel(path: Path, tmp: Path, n_many: int) -> list[dict[str, Any]]:
    from nasprof.predictors import Predictor
    from nasprof.predictors.kernel.graph_io import load_graph, read_structure
    from nasprof.predictors.kernel.split import split_kernels
    from nasprof.space import export_arch, export_many, get_space

    p: Any = Predictor.load(path)

    def median_ms(f: Any, n: int = 10) -> float:
        f()
        ts = []
        for _ in range(n):
            t0 = time.perf_counter()
            f()
            ts.append(time.perf_counter() - t0)
        return 1000 * statistics.median(ts)

    rows = []
    for preset in ("mnasnet_a1", "mobilenet_v2", "resnet50"):
        model = export_arch(preset, tmp / f"{preset}.onnx")
        graph, shapes = load_graph(model)
        kernels = split_kernels(graph, p.rules)
        rows.append({
            "graph": preset,
            "kernels": len(kernels),
            "file_mb": model.stat().st_size / 1e6,
            "predict_ms": median_ms(lambda m=model: p.predict(m)),
            "read_structure_ms": median_ms(lambda m=model: read_structure(m)),
            "load_graph_ms": median_ms(lambda m=model: load_graph(m)),
            "split_ms": median_ms(lambda g=graph: split_kernels(g, p.rules)),
            "regressors_ms": median_ms(lambda k=kernels: p.explain_kernels(k)),
            # The same steps the general way, side by side in this run.
            "onnx_load_and_infer_ms": median_ms(lambda m=model: _onnx_load_and_infer(m)),
            "regressors_per_type_ms": median_ms(lambda k=kernels: _per_type(p, k)),
        })
    archs = get_space("mnasnet").sample(n_many, seed=3)
    (tmp / "many").mkdir()
    paths = export_many(archs, tmp / "many")
    one = median_ms(lambda: [p.explain(m) for m in paths], n=3) / len(paths)
    many = median_ms(lambda: p.explain_many(paths), n=3) / len(paths)
    rows.append({"graph": f"{n_many} sampled mnasnet", "one_by_one_ms_per_graph": one,
                 "explain_many_ms_per_graph": many})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--spaces", default="mnasnet,mobilenetv2")
    ap.add_argument("--n", type=int, default=5000, help="architectures per batch")
    ap.add_argument("--kernel-file", type=Path, default=None, help="a fitted kernel predictor to time too")
    ap.add_argument("--many", type=int, default=20, help="sampled graphs for the batched kernel figure")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.spaces.split(","):
            row = bench_space(name, args.n, Path(tmp))
            rows.append(row)
            print(
                f"{name:12s} ids {row['ids_per_s']:>12,.0f}/s  strings seen "
                f"{row['strings_seen_per_s']:>10,.0f}/s  new {row['strings_new_per_s']:>8,.0f}/s  "
                f"Arch objects {row['archs_warm_per_s']:>8,.0f}/s"
            )
            print(
                f"{'':12s} single: repeat {row['single_repeat_us']:.1f} us, new arch (blocks met) "
                f"{row['single_warm_us']:.1f} us, cold process {row['single_cold_us']:.1f} us"
            )
        kernel_rows = bench_kernel(args.kernel_file, Path(tmp), args.many) if args.kernel_file else []
    for r in kernel_rows:
        if "predict_ms" not in r:
            print(f"kernel predictor {r['graph']}: {r['one_by_one_ms_per_graph']:.1f} ms per graph "
                  f"one by one, {r['explain_many_ms_per_graph']:.1f} ms batched (explain_many)")
            continue
        print(f"kernel predictor {r['graph']:12s} {r['predict_ms']:.1f} ms per graph "
              f"({r['kernels']} kernels: "
              f"read {r['read_structure_ms']:.1f} (onnx.load + infer {r['onnx_load_and_infer_ms']:.1f}), "
              f"load_graph {r['load_graph_ms']:.1f}, split {r['split_ms']:.1f}, regressors "
              f"{r['regressors_ms']:.1f} (per type {r['regressors_per_type_ms']:.1f}) ms)")
    doc = {
        "schema_version": 1,
        "benchmark": "predict_speed",
        "kernel_predictor": kernel_rows,
        "resolution": RESOLUTION,
        "host": host_summary(),
        "runs": rows,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
