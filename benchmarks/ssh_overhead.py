"""What measuring over SSH costs: loopback SSH against the local cpu backend, on the same host.

A real OpenSSH server on 127.0.0.1 plays the board (``tests/devices/ssh_server.py``: this interpreter is the
board's Python, sessions get a HOME of their own so no shell start-up file runs), so the two backends time
the same CPU with the same onnxruntime: any difference is what the SSH path adds.

(a) **Latency**: one model, measured alternately by ``ssh`` and ``cpu`` (``--rounds`` rounds, the nasprof
    measure defaults: 20 warm-ups, 100 runs x 3 fresh sessions, 1 thread). Reported: the ratio of the two
    backends' medians per round, and its median and spread over the rounds. Target 1.00 ± 0.02.
(b) **Table build**: the same ``--entries`` layers of ``mobilenetv2`` built on each backend (``nasprof table
    build``'s defaults: 0.25 s of timed inference planned per entry, 2 sessions, ±1% CI target), in rotating
    order, ``--repeats`` times: ``ssh`` (measurements over the backend's session on the board), ``cpu``, and
    ``ssh_per_call`` (the fallback: one ``ssh`` call per measurement, handed to the board's measuring server).
    Reported: wall time per entry, its median and spread, and the ratios to ``cpu``. Target ≤ 1.2x.
(c) **Where the SSH time goes**: a bare command over the shared connection (``true``), the runner's start
    (Python, the standard library: paid per measurement by the per-call path only), the fixed cost of one
    measurement over the session and per call, split, and the first measurement of a connection (handshake,
    runner shipped, the session's Python importing onnxruntime), each as medians.

    python benchmarks/ssh_overhead.py            # ~3 min on a 2-core VM
    python benchmarks/ssh_overhead.py --quick    # ~1 min

Writes ``benchmarks/results/ssh_overhead.json`` (or ``--out``) and prints a summary.
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing
sys.path.insert(0, str(ROOT / "tests" / "devices"))  # the loopback SSH server of the tests


def spread(values: list[float]) -> dict[str, float]:
    """Median, min, max and interquartile range of ``values``."""
    q = statistics.quantiles(values, n=4) if len(values) > 1 else [values[0]] * 3
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "q1": q[0], "q3": q[2], "n": len(values)}


def latency_rounds(model: Path, ssh: Any, cpu: Any, rounds: int) -> dict[str, Any]:
    from nasprof.devices.base import MeasureSpec

    spec = MeasureSpec()  # nasprof measure's defaults: 20 warm-ups, 100 runs x 3 sessions, 1 thread
    rows = []
    for i in range(rounds):
        # Alternate which goes first, so a drift of the host does not favour one backend.
        order = [("ssh", ssh), ("cpu", cpu)] if i % 2 == 0 else [("cpu", cpu), ("ssh", ssh)]
        meds = {name: b.measure(model, spec).median_ms for name, b in order}
        rows.append({"ssh_ms": meds["ssh"], "cpu_ms": meds["cpu"], "ratio": meds["ssh"] / meds["cpu"],
                     "load_average": [round(v, 2) for v in os.getloadavg()]})
        print(f"  round {i + 1}/{rounds}: ssh {meds['ssh']:.4f} ms, cpu {meds['cpu']:.4f} ms, "
              f"ratio {rows[-1]['ratio']:.3f}", file=sys.stderr)
    ratios = [r["ratio"] for r in rows]
    return {"spec": {"warmup": spec.warmup, "runs": spec.runs, "sessions": spec.sessions,
                     "threads": spec.threads},
            "rounds": rows, "ratio": spread(ratios),
            "ssh_median_ms": spread([r["ssh_ms"] for r in rows]),
            "cpu_median_ms": spread([r["cpu_ms"] for r in rows]),
            "target": "1.00 ± 0.02", "met": abs(statistics.median(ratios) - 1.0) <= 0.02}


def build_rounds(devices: dict[str, Any], entries: int, repeats: int, tmp: Path) -> dict[str, Any]:
    from nasprof.tables import build_table

    per_entry: dict[str, list[float]] = {name: [] for name in devices}
    detail: list[dict[str, Any]] = []
    for i in range(repeats):
        # Rotate the order, so that a drift of the host does not favour one backend.
        names = list(devices)[i % len(devices):] + list(devices)[:i % len(devices)]
        for name in names:
            db = tmp / f"{name}-{i}.db"
            r = build_table("mobilenetv2", 160, devices[name], db, limit=entries)
            per_entry[name].append(r.wall_s / max(r.written, 1))
            detail.append({"backend": name, "repeat": i, "written": r.written, "failed": r.failed,
                           "wall_s": r.wall_s, "setup_s": r.setup_s, "measure_s": r.measure_s,
                           "inference_s": r.inference_s, "export_wait_s": r.export_wait_s,
                           "first_export_wait_s": r.first_export_wait_s, "db_s": r.db_s,
                           "remeasured": r.remeasured, "unstable": r.unstable,
                           "load_average": [round(v, 2) for v in os.getloadavg()]})
            print(f"  build {i + 1}/{repeats} on {name}: {r.written} entries, "
                  f"{1000 * per_entry[name][-1]:.0f} ms per entry", file=sys.stderr)
    ratios = [s / c for s, c in zip(per_entry["ssh"], per_entry["cpu"], strict=True)]
    per_call = [s / c for s, c in zip(per_entry["ssh_per_call"], per_entry["cpu"], strict=True)]
    cpu = statistics.median(per_entry["cpu"])
    med = statistics.median(per_entry["ssh"]) / cpu
    return {"space": "mobilenetv2", "resolution": 160, "entries": entries, "repeats": repeats,
            "per_entry_ms": {name: spread([1000 * v for v in vals]) for name, vals in per_entry.items()},
            "ratio_of_medians": med, "ratio_per_repeat": spread(ratios),
            "per_call_ratio_of_medians": statistics.median(per_entry["ssh_per_call"]) / cpu,
            "per_call_ratio_per_repeat": spread(per_call), "builds": detail,
            "target": "≤ 1.2x", "met": med <= 1.2}


def call_split(b: Any, model: Path, calls: int) -> dict[str, dict[str, float]]:
    """The fixed cost of ``calls`` tiny measurements by ``b`` (host wall time minus the board's timed loop),
    split by the timestamps each measurement carries."""
    from nasprof.devices.base import MeasureSpec

    tiny = MeasureSpec(warmup=1, runs=1, sessions=1)
    split: dict[str, list[float]] = {"total": [], "ssh_round_trip": [], "runner_besides_answer": [],
                                     "answer_besides_timing": []}
    for _ in range(calls):
        md = b.measure(model, tiny).metadata
        keys = ("host_wall_s", "board_runner_s", "board_answer_s", "board_timed_s")
        wall, runner_s, answer, timed = (md[k] for k in keys)
        split["total"].append(1000 * (wall - timed))
        split["ssh_round_trip"].append(1000 * (wall - runner_s))
        split["runner_besides_answer"].append(1000 * (runner_s - answer))
        split["answer_besides_timing"].append(1000 * (answer - timed))
    return {k: spread(v) for k, v in split.items()}


def overheads(server: Any, model: Path, calls: int) -> dict[str, Any]:
    from nasprof.devices.base import MeasureSpec
    from nasprof.devices.ssh import SshBackend

    b = SshBackend("bench-overhead", **server.device_options())
    per_call = SshBackend("bench-overhead-per-call", **server.device_options())
    per_call.use_session = False
    try:
        b.available()  # connects, ships the runner
        t = b.transport
        bare = []
        for _ in range(calls):
            t0 = time.perf_counter()
            t.run("true")
            bare.append(1000 * (time.perf_counter() - t0))
        runner = sorted(server.cache.glob("board_runner_*.py"))[0]
        boot = f"import sys; sys.path[0] = sys.argv.pop(1); from {runner.stem} import main; sys.exit(main())"
        start = []
        for _ in range(calls // 2):  # as a per-call measurement starts it: no site, cached bytecode
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-S", "-c", boot, str(runner.parent), "--help"],
                           capture_output=True, check=True, env={"HOME": str(server.home)})
            start.append(1000 * (time.perf_counter() - t0))
        b.measure(model, MeasureSpec(warmup=1, runs=1, sessions=1))  # the session opened
        per_call.measure(model, MeasureSpec(warmup=1, runs=1, sessions=1))  # the measuring server started
        split = {"session": call_split(b, model, calls // 2),
                 "per_call": call_split(per_call, model, calls // 2)}
    finally:
        b.close()
        per_call.close()
    first = []
    for i in range(3):  # a new connection each time: handshake, cache check, session started
        fresh = SshBackend(f"bench-first-{i}", **server.device_options())
        try:
            t0 = time.perf_counter()
            fresh.measure(model, MeasureSpec(warmup=1, runs=1, sessions=1))
            first.append(1000 * (time.perf_counter() - t0))
        finally:
            fresh.close()
    return {"bare_command_ms": spread(bare), "runner_python_start_ms": spread(start),
            "measure_call_overhead_ms": split,
            "first_measure_of_a_connection_ms": spread(first),
            "note": "measure_call_overhead.total = host wall time of one measure() minus the board's timed "
                    "loop; ssh_round_trip = host wall minus the runner's handling of the request (over the "
                    "session: the request and answer through ssh; per call: also the ssh process and the "
                    "runner's Python start); runner_besides_answer = the runner's handling minus the answer "
                    "(storing the model; per call: also the hand-over to the measuring server); "
                    "answer_besides_timing = the answer minus the timed loop (sha256 check, inputs, JSON)"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=16, help="interleaved latency rounds")
    ap.add_argument("--entries", type=int, default=40, help="layers per table build")
    ap.add_argument("--repeats", type=int, default=4, help="table builds per backend (rotating)")
    ap.add_argument("--quick", action="store_true", help="4 rounds, 20 entries, 2 repeats")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "ssh_overhead.json")
    args = ap.parse_args()
    if args.quick:
        args.rounds, args.entries, args.repeats = 4, 20, 2

    from ssh_server import SshServer, unavailable_reason

    from nasprof.devices import get_device
    from nasprof.devices.ssh import SshBackend
    from nasprof.profiler.environment import host_summary
    from nasprof.space import export_arch

    reason = unavailable_reason()
    if reason is not None:
        sys.exit(f"cannot run: {reason}")
    started = time.time()
    # schema 2: table_build has ssh_per_call beside ssh and cpu; measure_call_overhead_ms is split into
    # session and per_call, with keys named for both paths.
    doc: dict[str, Any] = {"schema_version": 2, "benchmark": "ssh_overhead", "host": host_summary(),
                           "board": "this host over loopback SSH (OpenSSH sshd on 127.0.0.1)", "results": {}}
    with tempfile.TemporaryDirectory(prefix="nasprof-bench-ssh-") as tmp_s:
        tmp = Path(tmp_s)
        model = export_arch("mobilenet_v2", tmp / "mbv2.onnx", resolution=96)
        with SshServer(tmp / "server") as server:
            import onnxruntime

            import nasprof

            # The device setting's default idle time (the tests' server uses 20 s): a backend's session
            # outlives the other backends' builds between its own, as it would outlive export waits.
            options = server.device_options(server_idle_s=60)
            ssh = SshBackend("loopback", **options)
            ssh_per_call = SshBackend("loopback-per-call", **options)
            ssh_per_call.use_session = False
            cpu = get_device("cpu")
            doc["versions"] = {"nasprof": nasprof.__version__, "onnxruntime": onnxruntime.__version__,
                               "openssh": subprocess.run(["ssh", "-V"], capture_output=True, text=True
                                                         ).stderr.strip()}
            try:
                print(f"(a) latency of mobilenet_v2@96, {args.rounds} interleaved rounds ...",
                      file=sys.stderr)
                doc["results"]["latency"] = latency_rounds(model, ssh, cpu, args.rounds)
                print(f"(b) table build, {args.entries} entries x {args.repeats} per backend ...",
                      file=sys.stderr)
                doc["results"]["table_build"] = build_rounds(
                    {"ssh": ssh, "cpu": cpu, "ssh_per_call": ssh_per_call}, args.entries, args.repeats, tmp)
            finally:
                ssh.close()
                ssh_per_call.close()
            print("(c) where the SSH time goes ...", file=sys.stderr)
            doc["results"]["overheads"] = overheads(server, model, 40)
            server.stop_measuring_servers()
    doc["total_wall_s"] = time.time() - started
    doc["load_average_end"] = [round(v, 2) for v in os.getloadavg()]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    lat, tb, ov = (doc["results"][k] for k in ("latency", "table_build", "overheads"))
    print(f"latency ratio ssh/cpu: median {lat['ratio']['median']:.3f} (IQR {lat['ratio']['q1']:.3f}-"
          f"{lat['ratio']['q3']:.3f}, range {lat['ratio']['min']:.3f}-{lat['ratio']['max']:.3f}) over "
          f"{args.rounds} rounds; target 1.00 ± 0.02: {'met' if lat['met'] else 'MISSED'}")
    pe = tb["per_entry_ms"]
    print(f"table build per entry: ssh {pe['ssh']['median']:.0f} ms, cpu {pe['cpu']['median']:.0f} ms, ratio "
          f"{tb['ratio_of_medians']:.3f} (per repeat {tb['ratio_per_repeat']['min']:.3f}-"
          f"{tb['ratio_per_repeat']['max']:.3f}); target ≤ 1.2x: {'met' if tb['met'] else 'MISSED'}; an ssh "
          f"call per measurement: {pe['ssh_per_call']['median']:.0f} ms, ratio "
          f"{tb['per_call_ratio_of_medians']:.3f}")
    split = ov["measure_call_overhead_ms"]
    for path in ("session", "per_call"):
        sp = split[path]
        print(f"measure() overhead, {path}: {sp['total']['median']:.1f} ms (ssh round trip "
              f"{sp['ssh_round_trip']['median']:.1f}, runner besides the answer "
              f"{sp['runner_besides_answer']['median']:.1f}, answer besides timing "
              f"{sp['answer_besides_timing']['median']:.1f})")
    print(f"bare ssh command {ov['bare_command_ms']['median']:.1f} ms, runner start "
          f"{ov['runner_python_start_ms']['median']:.1f} ms, first measure of a connection "
          f"{ov['first_measure_of_a_connection_ms']['median']:.0f} ms")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
