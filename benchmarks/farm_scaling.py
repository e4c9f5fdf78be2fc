"""Phone-farm scaling over Ray: one table build on 1, 2, 4 and 8 fake phones through `table build --ray`.

Each fake phone's runner sleeps a fixed simulated time per timed run and runs nothing else
(``FakeAdb.set_run_time(..., simulate=True)``), so a phone's speed, not this 2-core host, sets how long an
entry takes; everything else is real: a Ray head on 127.0.0.1 serving the phones as
``nasprof-device:NAME`` resources, one actor per phone, the real adb client (pushes, shell commands), the
exporter and the SQLite store written by the driver alone. ``--run-model`` also runs each model with this
host's onnxruntime in every runner process (as the fake phone does in the tests): then 8 phones' processes
compete for this host's cores, and the figure measures the host as much as the scheduler.

Figures: wall time per device count for the same entries, speed-up and efficiency (T1 / (n * Tn); target
>= 85% at 8 devices); the same with each build's one-off startup (table opened, export process started)
taken out of both times (``steady_efficiency``); and the scheduler's overhead per entry: the Ray path with
one phone against the same phone driven in-process, side by side in one run.

    python benchmarks/farm_scaling.py [--entries 16] [--run-ms 2500] [--run-model] [--out PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from nasprof.devices import MeasureSpec, get_device
from nasprof.devices.farm import ray_devices
from nasprof.profiler.environment import host_summary
from nasprof.tables import LatencyTable, build_table
from nasprof.testing.fake_adb import FakeAdb, write_devices_file, write_fake_runner

COUNTS = (1, 2, 4, 8)
RUNS = 3  # timed runs per entry: RUNS x run_ms of simulated phone time


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _host_cpu_s() -> float:
    """CPU seconds this host has spent busy so far, all processes (/proc/stat): what the fake phones, the
    Ray actors and the driver cost it together."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq = (int(x) for x in fields[:7])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def _ray(*args: str, env: dict[str, str]) -> None:
    subprocess.run([sys.executable, "-m", "ray.scripts.scripts", *args], env=env, check=True,
                   capture_output=True, timeout=180)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--entries", type=int, default=16, help="entries per run (same for every count)")
    ap.add_argument("--run-ms", type=float, default=2500.0, help="simulated phone time per timed run")
    ap.add_argument("--run-model", action="store_true",
                    help="runners also run the model on this host (its cores then shared by every phone)")
    ap.add_argument("--out", type=Path, default=None,
                    help="default results/farm_scaling.json (farm_scaling_run_model.json with --run-model)")
    args = ap.parse_args()
    results = Path(__file__).parent / "results"
    args.out = args.out or results / (
        "farm_scaling_run_model.json" if args.run_model else "farm_scaling.json")
    names = [f"phone-{i}" for i in range(max(COUNTS))]
    spec = MeasureSpec(warmup=1, runs=RUNS, sessions=1)
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="nasprof-farm-") as tmp_s:
        tmp = Path(tmp_s)
        with FakeAdb(tmp / "phones", tuple(f"SCALE{i}" for i in range(len(names)))) as fake:
            runner, _ = write_fake_runner(tmp / "bin")
            runner.chmod(0o755)
            devices = write_devices_file(tmp / "devices.toml", {n: f"SCALE{i}" for i, n in enumerate(names)},
                                         runner, fake.server, runs_per_sample=RUNS)
            for i in range(len(names)):
                fake.set_run_time(f"SCALE{i}", args.run_ms, simulate=not args.run_model)
            os.environ["NASPROF_DEVICES"] = str(devices)
            env = dict(os.environ)
            port = _free_port()
            resources = json.dumps({f"nasprof-device:{n}": 1 for n in names})
            _ray("start", "--head", "--port", str(port), "--node-ip-address", "127.0.0.1", "--resources",
                 resources, "--include-dashboard", "false", "--disable-usage-stats", env=env)
            try:
                # The same phone in-process, then over Ray: what the scheduler adds per entry.
                t0 = time.perf_counter()
                build_table("mobilenetv2", 32, get_device(names[0]), tmp / "local.db", limit=args.entries,
                            spec=spec, remeasure=0, time_per_entry_s=None)
                local_s = time.perf_counter() - t0
                for n in COUNTS:
                    farm = ray_devices(f"127.0.0.1:{port}", ",".join(names[:n]))
                    t0, cpu0 = time.perf_counter(), _host_cpu_s()
                    report = build_table("mobilenetv2", 32, farm, tmp / f"farm{n}.db", limit=args.entries,
                                         spec=spec, remeasure=0, time_per_entry_s=None)
                    wall, cpu = time.perf_counter() - t0, _host_cpu_s() - cpu0
                    assert report.written == args.entries and report.failed == 0
                    with LatencyTable.load(tmp / f"farm{n}.db") as table:  # the phone's side of each entry
                        measure_s = statistics.median(e.measure_s or 0.0 for e in table.entries())
                    for d in farm:
                        d.kill()
                    runs.append({"devices": n, "wall_s": round(wall, 2), "entries": report.written,
                                 # paid once per build, whatever the device count: opening the table,
                                 # the export process starting (importing torch) before the first entry
                                 "startup_s": round(report.setup_s + report.first_export_wait_s, 2),
                                 # host CPU per entry, and the share of the host's cores busy on average
                                 # seconds in the device's measure call per entry (median): the
                                 # actor, adb and the phone; the rest of the wall is the driver's
                                 "measure_s_per_entry": round(measure_s, 3),
                                 "host_cpu_s_per_entry": round(cpu / report.written, 3),
                                 "host_busy": round(cpu / (wall * (os.cpu_count() or 1)), 3),
                                 # driver-side costs that do not shrink with more phones
                                 "export_s_per_entry": round(report.export_s / report.written, 4),
                                 # time a device waited for its layer's export, per entry
                                 "export_wait_s_per_entry": round(report.export_wait_s / report.written, 4),
                                 "db_s_per_entry": round(report.db_s / report.written, 4)})
                    print(f"{n} device(s): {wall:.1f} s", flush=True)
            finally:
                import ray

                ray.shutdown()
                subprocess.run([sys.executable, "-m", "ray.scripts.scripts", "stop", "--force"], env=env,
                               capture_output=True, timeout=180, check=False)
    t1, s1 = runs[0]["wall_s"], runs[0]["startup_s"]
    for r in runs:
        r["speedup"] = round(t1 / r["wall_s"], 3)
        r["efficiency"] = round(t1 / (r["devices"] * r["wall_s"]), 3)
        # The same with each run's one-off startup taken out: how the measuring itself scales (a real
        # table has thousands of entries, over which the startup vanishes; here it is 16).
        r["steady_efficiency"] = round((t1 - s1) / (r["devices"] * (r["wall_s"] - r["startup_s"])), 3)
    phone_s = RUNS * args.run_ms / 1000.0
    overhead = (t1 - local_s) / args.entries
    summary = {
        "entries": args.entries,
        "simulated_phone_s_per_entry": phone_s,
        "local_one_phone_wall_s": round(local_s, 2),
        "ray_overhead_s_per_entry": round(overhead, 3),
        "efficiency_at_8": next(r["efficiency"] for r in runs if r["devices"] == 8),
        "steady_efficiency_at_8": next(r["steady_efficiency"] for r in runs if r["devices"] == 8),
        "target_efficiency_at_8": 0.85,
        "runs": runs,
    }
    runner = ("runs the model with this host's onnxruntime, then sleeps run_ms" if args.run_model
              else "sleeps run_ms per timed run and runs nothing else (simulated phone)")
    doc = {"benchmark": "farm_scaling", "host": host_summary(), "summary": summary,
           "method": f"fake phones whose runner {runner}; Ray head on 127.0.0.1; same entries for every "
                     "device count; local = the same phone driven in-process, same run",
           "runner": "model" if args.run_model else "simulated"}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
