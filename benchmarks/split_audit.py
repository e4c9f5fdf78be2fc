"""Does the kernel split place onnxruntime's NCHWc layout reorders where onnxruntime does?

The kernel predictor splits a graph into the kernels onnxruntime runs at level ``all``, NCHWc reorders
included (``nasprof.predictors.kernel.split``), following the rules probed on this host
(``nasprof devices probe cpu``). The probes are small graphs; this audit checks the rules on whole networks.
It builds each network's session with ``optimized_model_filepath``, reads the optimised graph back, and
compares:

- the number of ``ReorderInput`` / ``ReorderOutput`` nodes with the split's ``reorder`` kernels;
- the number of compute nodes (all but view-only ops) with the split's kernels (``free`` ones excluded).

Networks: ``calibration_archs(N, seed)`` (half sampled from the mnasnet/mobilenetv2 spaces, half random
block-zoo networks, as the kernel predictor calibrates on) and the presets. Nothing is timed.

    .venv/bin/python benchmarks/split_audit.py [--n 100] [--seed 31] [--out PATH] [--note TEXT]

Writes benchmarks/results/split_audit.json (mismatches listed by network, the detected rules and the host's
CPU flags) and prints a summary. Nothing is timed, so it also runs under CPU emulation, e.g. AVX2 without
AVX-512 (blocks of 8) on an AVX-512 host: ``qemu-x86_64 -cpu Haswell .venv/bin/python
benchmarks/split_audit.py --out benchmarks/results/split_audit_avx2.json --note "qemu-x86_64 -cpu Haswell"``
(/proc/cpuinfo there still shows the real host; ``rules.nchwc_block`` is what the emulated CPU gave).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import Counter
from pathlib import Path

from nasprof.predictors.calibration.rounds import calibration_archs, network_name
from nasprof.predictors.kernel.probe import probe_rules
from nasprof.predictors.kernel.split import split_kernels
from nasprof.space import export_arch, export_many, list_presets

RESULTS = Path(__file__).parent / "results" / "split_audit.json"
#: Ops onnxruntime keeps as nodes that only reshape a view (the split calls them ``free``).
_VIEW_OPS = frozenset({"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Shape", "Constant"})


def optimized_graph(model: Path, out: Path) -> list[str]:
    """Op types of onnxruntime's optimised graph of ``model`` (CPU, level all)."""
    import onnx
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.optimized_model_filepath = str(out)
    so.log_severity_level = 3  # the "hardware specific optimizations" warning on every save
    ort.InferenceSession(str(model), so, providers=["CPUExecutionProvider"])
    return [n.op_type for n in onnx.load(str(out), load_external_data=False).graph.node]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100, help="sampled calibration-style networks")
    ap.add_argument("--seed", type=int, default=31)
    ap.add_argument("--resolution-presets", type=int, default=224)
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--note", default="", help="recorded as is, e.g. how the CPU was emulated")
    args = ap.parse_args()

    import onnxruntime as ort

    from nasprof.profiler.environment import host_summary

    report = probe_rules("cpu")  # the host's rules, detected the way a fit detects them
    rules = report.rules
    block = rules.nchwc_block
    rows = []
    with tempfile.TemporaryDirectory(prefix="nasprof-audit-") as tmp:
        archs = calibration_archs(args.n, args.seed)
        paths = export_many(archs, tmp, "net")
        names = [network_name(a) for a in archs]
        for preset in list_presets():
            res = args.resolution_presets
            paths.append(export_arch(preset, Path(tmp) / f"{preset}.onnx", resolution=res))
            names.append(preset)
        for name, path in zip(names, paths, strict=True):
            ops = optimized_graph(path, Path(tmp) / "optimized.onnx")
            kernels = split_kernels(path, rules)
            theirs = Counter(op for op in ops if op.startswith("Reorder"))
            ours = Counter(k.variant for k in kernels if k.type == "reorder")
            rows.append({
                "name": name,
                "reorders_ours": dict(ours),
                "reorders_onnxruntime": dict(theirs),
                "reorders_match": ours == theirs,
                "kernels_ours": sum(k.type != "free" for k in kernels),
                "kernels_onnxruntime": sum(op not in _VIEW_OPS for op in ops),
            })
    reorders_ok = sum(r["reorders_match"] for r in rows)
    kernels_ok = sum(r["kernels_ours"] == r["kernels_onnxruntime"] for r in rows)
    doc = {
        "n_networks": len(rows),
        "reorders_match": reorders_ok,
        "kernel_count_match": kernels_ok,
        "nchwc_block": block,
        "rules": rules.to_dict(),
        "seed": args.seed,
        "onnxruntime": ort.__version__,
        "host": host_summary(),
        "note": args.note,
        "mismatches": [
            r for r in rows if not r["reorders_match"] or r["kernels_ours"] != r["kernels_onnxruntime"]
        ],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"reorder counts match on {reorders_ok} of {len(rows)} networks, kernel counts on {kernels_ok} "
          f"(onnxruntime {ort.__version__}, NCHWc block {block})")
    for r in doc["mismatches"]:
        print(f"  {r['name'][:60]:60s} reorders {r['reorders_ours']} vs {r['reorders_onnxruntime']}; "
              f"kernels {r['kernels_ours']} vs {r['kernels_onnxruntime']}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
