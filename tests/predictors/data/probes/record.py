"""Re-record the probe fixtures the tests read (one file per host class), after a probe or onnxruntime change.

    python tests/predictors/data/probes/record.py host avx512.json      # on an AVX-512 host
    qemu-x86_64 -cpu Haswell .venv/bin/python tests/predictors/data/probes/record.py haswell avx2.json
    python tests/predictors/data/probes/record.py plain plain.json      # the fake phone, NCHWc off

Each file is what ``nasprof devices probe --json`` writes (rules + every probe's executed op types), plus
``layout_cases``: the op types onnxruntime ran for each graph of ``tests/predictors/layout_cases.py``.
``haswell`` runs under qemu-user emulating a Haswell CPU (AVX2, FMA, no AVX-512): onnxruntime's MLAS reads
the emulated CPUID and picks blocks of 8. /proc/cpuinfo still shows the real host there, so the recorded
CPU model and flags are set to the emulated CPU's. ``plain`` probes a fake phone whose runner turns
onnxruntime's NCHWc transformer off, as onnxruntime lays models out on ARM64.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # tests/predictors: layout_cases

from layout_cases import LAYOUT_CASES, layout_model  # noqa: E402

from nasprof.devices import MeasureSpec, get_device  # noqa: E402
from nasprof.predictors.kernel.probe import probe_rules  # noqa: E402

HASWELL_FLAGS = ["avx", "avx2", "f16c", "fma", "sse4_1", "sse4_2"]


def _layout_cases(device: str) -> dict[str, list[str]]:
    backend = get_device(device)
    spec = MeasureSpec(warmup=1, runs=1, sessions=1, per_node=True, per_node_runs=1)
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for case, c, _ in LAYOUT_CASES:
            m = backend.measure(layout_model(Path(tmp) / f"{case}{c}.onnx", case, c), spec)
            out[f"{case}:{c}"] = [n.op_type for n in m.per_node or ()]
    return out


def main(mode: str, out: str) -> None:
    if mode == "plain":
        import os

        from nasprof.testing.fake_adb import FakeAdb, write_fake_runner

        with tempfile.TemporaryDirectory() as tmp, FakeAdb(Path(tmp) / "phones", ["ARM_1"]) as fake:
            fake.set_layout("ARM_1", "plain")
            runner, _ = write_fake_runner(Path(tmp) / "bin")
            runner.chmod(0o755)
            devices = Path(tmp) / "devices.toml"
            devices.write_text(f'schema_version = 1\n[devices.arm-phone]\nbackend = "android"\n'
                               f'serial = "ARM_1"\nrunner = "{runner}"\nadb_server = "{fake.server}"\n')
            os.environ["NASPROF_DEVICES"] = str(devices)
            report = probe_rules("arm-phone")
            doc = report.to_dict()
            doc["layout_cases"] = _layout_cases("arm-phone")
    else:
        report = probe_rules("cpu")
        doc = report.to_dict()
        doc["layout_cases"] = _layout_cases("cpu")
        if mode == "haswell":
            for d in (doc["rules"]["device"], doc["host"]):
                d["cpu_model"] = "Intel Core (Haswell), emulated: qemu-x86_64 -cpu Haswell"
                d["cpu_flags"] = HASWELL_FLAGS
    doc["recorded_with"] = {"host": "the AVX-512 host itself", "haswell": "qemu-x86_64 -cpu Haswell",
                            "plain": "nasprof.testing.fake_adb phone, layout plain"}[mode]
    Path(out).write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {out}: {report.rules.layout}, {len(report.rules.unexplained)} unexplained")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
