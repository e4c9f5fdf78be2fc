"""Android path figures on a fake phone (fake adb server + the real adb client + the local onnxruntime).

There is no phone here, so this measures what nasprof itself adds on the Android path, and checks the
chain of units end to end:

(a) adb round trip: ``adb -s SERIAL shell true`` through the real client and the fake server (median ms);
(b) push of a 1 MiB model (median ms);
(c) one ``measure()`` of a small conv model (2 blocks, 32 channels, 64x64) with 2 sessions x 20 runs,
    10 runs per perf_test process: wall time, and the share of it spent in timed inference;
(d) unit check: the android backend's median vs the cpu backend's median on the same model, same host and
    the same onnxruntime (the fake perf_test runs it): they must agree to within host noise, not by 1000x.
    (The fake runner times ``session.run`` with numpy feeds, the cpu backend IOBinding, so a few percent of
    difference is expected.)

Runs in about a minute. Writes benchmarks/results/android_fake_phone.json and prints a summary.

    python benchmarks/android_fake_phone.py [--out benchmarks/results/android_fake_phone.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from conftest import make_conv_model  # noqa: E402

from nasprof.devices.android import AndroidBackend  # noqa: E402
from nasprof.devices.android.adb import find_adb  # noqa: E402
from nasprof.devices.base import MeasureSpec  # noqa: E402
from nasprof.devices.cpu import CpuBackend  # noqa: E402
from nasprof.profiler.environment import host_metadata  # noqa: E402
from nasprof.testing.fake_adb import FakeAdb, write_fake_runner  # noqa: E402


def _median_ms(fn: Any, n: int) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/android_fake_phone.json"))
    args = parser.parse_args()
    adb = str(find_adb())
    with tempfile.TemporaryDirectory(prefix="nasprof-bench-") as tmp_s:
        tmp = Path(tmp_s)
        model = make_conv_model(tmp / "model.onnx", channels=32, size=64)
        runner, _ = write_fake_runner(tmp / "bin")
        runner.chmod(0o755)
        blob = tmp / "blob.bin"
        blob.write_bytes(os.urandom(1 << 20))
        with FakeAdb(tmp / "phones", ["BENCH"]) as fake:
            base = [adb, "-L", fake.server, "-s", "BENCH"]

            def call(*a: str) -> None:
                subprocess.run([*base, *a], check=True, capture_output=True, timeout=60)

            shell_ms = _median_ms(lambda: call("shell", "true"), 20)
            push_ms = _median_ms(lambda: call("push", str(blob), "/data/local/tmp/blob.bin"), 5)
            phone = AndroidBackend("fake-phone", serial="BENCH", runner=str(runner), adb_server=fake.server,
                                   runs_per_sample=10)
            spec = MeasureSpec(threads=1, warmup=10, runs=20, sessions=2)
            phone.measure(model, MeasureSpec(runs=2, sessions=1))  # push the runner once, outside the timing
            t0 = time.perf_counter()
            m_android = phone.measure(model, spec)
            wall_s = time.perf_counter() - t0
        m_cpu = CpuBackend("cpu").measure(model, spec)
    inference_s = sum(r["total_ms"] for r in m_android.metadata["perf_test_runs"]) / 1000
    result = {
        "schema_version": 1,
        "kind": "nasprof.benchmark.android_fake_phone",
        "host": host_metadata(),
        "adb_path": adb,
        "adb_version": subprocess.run([adb, "version"], capture_output=True, text=True).stdout.split("\n")[1],
        "model": {"blocks": 2, "channels": 32, "size": 64},
        "adb_shell_roundtrip_ms": shell_ms,
        "adb_push_1mib_ms": push_ms,
        "measure": {"sessions": 2, "runs": 20, "runs_per_sample": 10, "processes": m_android.n,
                    "wall_s": wall_s, "timed_inference_s": inference_s,
                    "timed_share": inference_s / wall_s},
        "median_ms": {"android_fake_phone": m_android.median_ms, "cpu_backend": m_cpu.median_ms,
                      "ratio": m_android.median_ms / m_cpu.median_ms},
        "android_samples_ms": list(m_android.samples_ms),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"adb shell round trip (fake server): {shell_ms:.1f} ms; push 1 MiB: {push_ms:.1f} ms")
    print(f"measure(): {m_android.n} perf_test processes in {wall_s:.2f} s, "
          f"{inference_s / wall_s:.1%} of it timed inference")
    print(f"median: android/fake phone {m_android.median_ms:.4f} ms vs cpu backend {m_cpu.median_ms:.4f} ms "
          f"(ratio {m_android.median_ms / m_cpu.median_ms:.2f})")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
