"""ACNet fusion: onnxruntime latency of an ``acnet`` block exported fused (one k x k conv, what nasprof
exports and counts) vs unfused (the training form's three branches: torch's exporter folds each BN into its
own conv, but the kxk, 1xk and kx1 convs and their two Adds remain).

    python benchmarks/acnet_fusion.py              # ~1 min on 2 cores
    python benchmarks/acnet_fusion.py --runs 500

CPU execution provider, one intra-op thread, sequential, default graph optimisations; per form: warm-up, then
``--runs`` timed ``session.run`` calls, median; the two forms alternate for ``--rounds`` rounds so that drift
(frequency, other load) hits both alike. Writes ``benchmarks/results/acnet_fusion.json``.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch

from nasprof.profiler.environment import host_summary
from nasprof.space import BlockSpec, Layer, export_layer
from nasprof.space.export import OPSET
from nasprof.space.nn.common import NetworkModule, randomize

#: (spec, input shape): ACNet's 3x3 at ResNet-ish stage shapes, a 5x5, and a strided widening block.
CONFIGS = [
    (BlockSpec("acnet", 64, 64, kernel=3), (64, 56, 56)),
    (BlockSpec("acnet", 128, 128, kernel=3), (128, 28, 28)),
    (BlockSpec("acnet", 64, 64, kernel=5), (64, 28, 28)),
    (BlockSpec("acnet", 64, 128, kernel=3, stride=2), (64, 56, 56)),
]
SEED = 0


def export_unfused(spec: BlockSpec, shape: tuple[int, int, int]) -> bytes:
    """The training form, not re-parameterised, with the same exporter settings as ``export_module``."""
    model = randomize(NetworkModule([], [spec.build()], []), SEED).eval()
    buf = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation warning
        torch.onnx.export(
            model,
            (torch.zeros((1, *shape)),),
            buf,  # type: ignore[arg-type]  # torch's stub says path-only; file objects are accepted
            input_names=["input"],
            output_names=["output"],
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
    return buf.getvalue()


def session(model: bytes) -> Any:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.log_severity_level = 3
    return ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])


def median_ms(sess: Any, x: np.ndarray, warmup: int, runs: int) -> float:
    feed = {"input": x}
    for _ in range(warmup):
        sess.run(None, feed)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter_ns()
        sess.run(None, feed)
        times.append((time.perf_counter_ns() - t0) / 1e6)
    return float(np.median(times))


def conv_nodes(model: bytes) -> int:
    return sum(n.op_type == "Conv" for n in onnx.load_from_string(model).graph.node)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--warmup", type=int, default=30)
    ap.add_argument("--runs", type=int, default=200, help="timed runs per form per round")
    ap.add_argument("--rounds", type=int, default=5, help="alternating fused/unfused rounds")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "acnet_fusion.json")
    args = ap.parse_args()

    results = []
    for spec, shape in CONFIGS:
        layer = Layer(spec, shape)
        with tempfile.TemporaryDirectory() as tmp:
            fused = export_layer(layer, Path(tmp) / "fused.onnx", seed=SEED).read_bytes()
        unfused = export_unfused(spec, shape)
        sessions = {"fused": session(fused), "unfused": session(unfused)}
        x = np.random.default_rng(0).standard_normal((1, *shape)).astype(np.float32)
        out_f, out_u = (s.run(None, {"input": x})[0] for s in sessions.values())
        max_abs_diff = float(np.abs(out_f - out_u).max())
        rounds: dict[str, list[float]] = {"fused": [], "unfused": []}
        for r in range(args.rounds):
            # Alternate which form goes first, so neither always runs on a warmer (or hotter) core.
            order = ("fused", "unfused") if r % 2 == 0 else ("unfused", "fused")
            for form in order:
                rounds[form].append(median_ms(sessions[form], x, args.warmup, args.runs))
        fused_ms, unfused_ms = statistics.median(rounds["fused"]), statistics.median(rounds["unfused"])
        results.append(
            {
                "key": layer.key,
                "macs_fused": layer.macs,
                "conv_nodes": {"fused": conv_nodes(fused), "unfused": conv_nodes(unfused)},
                "round_medians_ms": rounds,
                "median_ms": {"fused": fused_ms, "unfused": unfused_ms},
                "speedup": unfused_ms / fused_ms,
                "max_abs_output_diff": max_abs_diff,
            }
        )
        print(
            f"{layer.key}: fused {fused_ms:.3f} ms, unfused {unfused_ms:.3f} ms "
            f"(x{unfused_ms / fused_ms:.2f}; max |diff| {max_abs_diff:.1e})"
        )

    doc = {
        "schema_version": 1,
        "benchmark": "acnet_fusion",
        "settings": {
            "provider": "CPUExecutionProvider",
            "intra_op_threads": 1,
            "graph_optimization": "default (all)",
            "warmup": args.warmup,
            "runs": args.runs,
            "rounds": args.rounds,
            "statistic": "median over rounds of per-round medians",
        },
        "host": host_summary(),
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
