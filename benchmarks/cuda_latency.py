"""CUDA measurement figures: MobileNetV2-1.0 (224) and one MBConv block on the GPU, against the CPU.

What it reports (all medians in ms, batch 1, float32):

(a) ``nasprof measure --device cuda`` on MobileNetV2: median, p90, CV, per-session medians, warnings;
(b) fidelity: nasprof's median ÷ a bare IOBinding loop's median on the same model (same method, no nasprof),
    and what onnxruntime's default thread pool (one spinning thread per core) costs next to one thread;
(c) what the method excludes: a plain ``session.run`` with numpy feeds (host→device and device→host copies
    inside every sample) ÷ the IOBinding median;
(d) cuDNN autotuning: median with ``cudnn_conv_algo_search`` HEURISTIC ÷ EXHAUSTIVE;
(e) per-node on CUDA: sum of per-node (launch) times ÷ end-to-end median — why per-node shares on a GPU are
    launch times, not GPU time;
(f) the CPU on the same host (1 thread and 8 threads), and the GPU speed-up;
(g) one MBConv block (a table entry): GPU vs CPU, to show that small blocks are launch-bound on a GPU;
(h) the same with ``cuda_graph`` (one graph launch per run: GPU execution without per-kernel launches);
(i) warm-up ablation: after 5 s idle, per-session medians of MobileNetV2 with a time-based warm-up of
    0 / 1 s per session — how long the GPU (and the host feeding it) needs to reach steady state.

Needs a CUDA GPU, onnxruntime-gpu and torch (+ torchvision for the reference MobileNetV2). A few minutes.

    python benchmarks/cuda_latency.py [--out benchmarks/results/cuda_latency.json]
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


def export_models(tmp: Path) -> dict[str, Path]:
    import torch
    import torchvision
    from torchvision.models.mobilenetv2 import InvertedResidual

    out = {}
    net = torchvision.models.mobilenet_v2(weights=None).eval()
    block = InvertedResidual(24, 24, stride=1, expand_ratio=6).eval()
    for name, module, shape in (("mobilenet_v2", net, (1, 3, 224, 224)), ("mbconv_56x56x24_e6", block,
                                                                         (1, 24, 56, 56))):
        path = tmp / f"{name}.onnx"
        with torch.no_grad():
            torch.onnx.export(module, torch.randn(*shape), str(path), input_names=["input"],
                              output_names=["output"], opset_version=17, dynamo=False)
        out[name] = path
    return out


def bare_loop(path: Path, *, search: str, iobinding: bool, threads: int | None = 1, warmup: int = 200,
              runs: int = 300) -> float:
    """The reference: onnxruntime alone in a plain loop (median ms). ``threads=None`` keeps onnxruntime's
    default intra-op pool (one spinning thread per core) instead of nasprof's single thread."""
    import numpy as np
    import onnxruntime as ort

    so = ort.SessionOptions()
    if threads is not None:
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
    opts = {"device_id": "0", "cudnn_conv_algo_search": search}
    sess = ort.InferenceSession(str(path), so, providers=[("CUDAExecutionProvider", opts)])
    shape = [d if isinstance(d, int) else 1 for d in sess.get_inputs()[0].shape]
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    if iobinding:
        b = sess.io_binding()
        xv = ort.OrtValue.ortvalue_from_numpy(x, "cuda", 0)
        b.bind_ortvalue_input("input", xv)
        b.bind_output("output", "cuda", 0)
        sess.run_with_iobinding(b)
        out = b.get_outputs()[0]  # bind the first run's output buffer for good, as nasprof does
        b.clear_binding_outputs()
        b.bind_ortvalue_output("output", out)

        def call() -> None:
            sess.run_with_iobinding(b)
            b.synchronize_outputs()
    else:
        def call() -> None:
            sess.run(None, {"input": x})  # copies in, computes, copies the result back to numpy
    for _ in range(warmup):
        call()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter_ns()
        call()
        times.append((time.perf_counter_ns() - t0) / 1e6)
    return statistics.median(times)


def summary(m: Any) -> dict[str, Any]:
    return {"median_ms": m.median_ms, "p90_ms": m.p90_ms, "cv": m.cv, "n": m.n,
            "session_medians_ms": list(m.session_medians_ms), "warnings": list(m.warnings)}


def graph_only(res: dict[str, Any], models: dict[str, Path], out: Path) -> int:
    import nasprof

    for name, path in models.items():
        for graph in (False, True):
            m = nasprof.measure(path, device="cuda", warmup=50, runs=300, sessions=3,
                                options={"cuda_graph": graph})
            res[f"{name}_cuda{'_graph' if graph else ''}"] = summary(m)
            print(f"{name} cuda_graph={graph}: median {m.median_ms:.4f} ms, CV {m.cv:.1%}, sessions "
                  f"{', '.join(f'{x:.4f}' for x in m.session_medians_ms)}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2) + "\n")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "cuda_latency.json")
    ap.add_argument("--graph-only", action="store_true", help="only (a) and (h): with and without cuda_graph")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    import onnxruntime as ort

    import nasprof
    from nasprof.devices import get_device

    cuda = get_device("cuda")
    ok, reason = cuda.available()
    if not ok:
        print(f"cuda is not available: {reason}", file=sys.stderr)
        return 2
    t_start = time.time()
    res: dict[str, Any] = {"schema_version": 1, "kind": "nasprof.benchmark.cuda_latency",
                           "device": cuda.describe(), "onnxruntime_version": ort.__version__}
    with tempfile.TemporaryDirectory() as tmp:
        models = export_models(Path(tmp))
        mnv2 = models["mobilenet_v2"]
        if args.graph_only:
            return graph_only(res, models, args.out)
        m = nasprof.measure(mnv2, device="cuda", warmup=50, runs=300, sessions=3)
        res["mobilenet_v2_cuda"] = {**summary(m),
                                    "warmup_runs_per_session": m.metadata["warmup_runs_per_session"],
                                    "first_run_ms": m.warmup_ms[0]}
        bare_io = bare_loop(mnv2, search="EXHAUSTIVE", iobinding=True)
        bare_default_threads = bare_loop(mnv2, search="EXHAUSTIVE", iobinding=True, threads=None)
        bare_run = bare_loop(mnv2, search="EXHAUSTIVE", iobinding=False)
        heuristic = bare_loop(mnv2, search="HEURISTIC", iobinding=True)
        res["fidelity_nasprof_over_bare_iobinding"] = m.median_ms / bare_io
        res["bare_iobinding_median_ms"] = bare_io
        res["bare_default_threads_over_one_thread"] = bare_default_threads / bare_io
        res["session_run_with_host_copies_median_ms"] = bare_run
        res["host_copies_ratio"] = bare_run / bare_io
        res["heuristic_over_exhaustive"] = heuristic / bare_io
        pn = nasprof.measure(mnv2, device="cuda", warmup=50, runs=100, sessions=1, per_node=True,
                             per_node_runs=50)
        res["per_node_cuda"] = {"node_sum_over_median": pn.node_coverage, "nodes": len(pn.per_node or ()),
                                "profiled_median_ms": pn.metadata.get("profiled_median_ms"),
                                "note": pn.metadata.get("per_node_timing")}
        for threads in (1, 8):
            c = nasprof.measure(mnv2, device="cpu", threads=threads, warmup=10, runs=50, sessions=3)
            res[f"mobilenet_v2_cpu_{threads}t"] = summary(c)
            res[f"gpu_speedup_vs_cpu_{threads}t"] = c.median_ms / m.median_ms
        blk = models["mbconv_56x56x24_e6"]
        bg = nasprof.measure(blk, device="cuda", warmup=50, runs=300, sessions=3)
        bc = nasprof.measure(blk, device="cpu", threads=1, warmup=10, runs=100, sessions=3)
        res["mbconv_cuda"] = summary(bg)
        graph = {"cuda_graph": True}
        res["mobilenet_v2_cuda_graph"] = summary(nasprof.measure(mnv2, device="cuda", warmup=50, runs=300,
                                                                 sessions=3, options=graph))
        res["mbconv_cuda_graph"] = summary(nasprof.measure(blk, device="cuda", warmup=50, runs=300,
                                                           sessions=3, options=graph))
        res["mbconv_cpu_1t"] = summary(bc)
        res["warmup_ablation"] = {}
        for seconds in (0.0, 1.0):
            time.sleep(5.0)  # let clocks fall back towards idle, as between two table entries on a busy box
            w = nasprof.measure(mnv2, device="cuda", warmup=10, runs=200, sessions=4,
                                options={"min_warmup_s": seconds})
            res["warmup_ablation"][f"{seconds:g}s"] = {"session_medians_ms": list(w.session_medians_ms),
                                                        "median_ms": w.median_ms, "cv": w.cv}
    res["wall_s"] = time.time() - t_start
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2) + "\n")
    g = res["device"].get("gpu_name", "?")
    mc = res["mobilenet_v2_cuda"]
    print(f"{g}, onnxruntime-gpu {ort.__version__}")
    print(f"MobileNetV2 cuda: median {mc['median_ms']:.3f} ms, p90 {mc['p90_ms']:.3f}, CV {mc['cv']:.1%}, "
          f"sessions {', '.join(f'{v:.3f}' for v in mc['session_medians_ms'])}")
    print(f"  nasprof / bare IOBinding loop = {res['fidelity_nasprof_over_bare_iobinding']:.3f}; "
          f"session.run with host copies = {res['host_copies_ratio']:.2f}x; "
          f"HEURISTIC / EXHAUSTIVE = {res['heuristic_over_exhaustive']:.2f}")
    print(f"  first run (allocation + cuDNN autotune) {mc['first_run_ms']:.1f} ms; onnxruntime's default "
          f"thread pool / 1 thread = {res['bare_default_threads_over_one_thread']:.2f}")
    print(f"  per-node sum / median = {res['per_node_cuda']['node_sum_over_median']:.2f} (launch times)")
    for t in (1, 8):
        print(f"MobileNetV2 cpu {t}t: median {res[f'mobilenet_v2_cpu_{t}t']['median_ms']:.3f} ms "
              f"(GPU {res[f'gpu_speedup_vs_cpu_{t}t']:.1f}x faster)")
    print(f"MBConv 56x56x24 e6: cuda {res['mbconv_cuda']['median_ms']:.3f} ms, "
          f"cpu 1t {res['mbconv_cpu_1t']['median_ms']:.3f} ms")
    for k in ("mobilenet_v2_cuda_graph", "mbconv_cuda_graph"):
        v = res[k]
        print(f"{k}: median {v['median_ms']:.3f} ms, CV {v['cv']:.1%}, sessions "
              f"{', '.join(f'{x:.3f}' for x in v['session_medians_ms'])}")
    for k, v in res["warmup_ablation"].items():
        print(f"warm-up {k}: session medians {', '.join(f'{x:.3f}' for x in v['session_medians_ms'])} ms")
    print(f"wrote {args.out} in {res['wall_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
