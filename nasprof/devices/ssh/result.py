"""The runner's measurement document as a ``Measurement``.

The same metadata keys as the local ``cpu`` backend (``run_metadata``), plus what the board is, how the
request travelled and where its time went, and the host's warnings; per-node profiles parsed by nasprof's
own profile parser, as every backend's are.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

from nasprof.devices.base import MeasureSpec
from nasprof.devices.ssh.board_info import BoardInfo
from nasprof.errors import DeviceError
from nasprof.profiler.measurement import Measurement

__all__ = ["board_measurement", "board_profile"]

_PROVIDER = "CPUExecutionProvider"


def board_measurement(doc: dict[str, Any], info: Any, spec: MeasureSpec, board: BoardInfo,
                      pin: tuple[int, ...] | None, int_range: tuple[int, int], *, device: str, backend: str,
                      described: dict[str, Any], call: dict[str, Any], notes: list[str]) -> Measurement:
    """``doc`` (the runner's answer) as the ``Measurement`` of ``device``. ``described``: the backend's
    ``describe()``; ``call``: metadata of how this measurement went (``ssh_calls``, ``model_uploaded``,
    ``host_wall_s``, ...); ``notes``: warnings of the backend's own."""
    from datetime import datetime, timezone

    from nasprof.devices.cpu import host_warnings
    from nasprof.profiler.doctor import STEAL_WARN, cpu_times, steal_share
    from nasprof.profiler.ort_result import run_metadata, to_measurement
    from nasprof.profiler.ort_runner import TimedRuns, allow_spinning

    timed = TimedRuns(
        samples_ms=tuple(float(v) for v in doc["samples_ms"]),
        warmup_ms=tuple(float(v) for v in doc["warmup_ms"]),
        session_index=tuple(int(v) for v in doc["session_index"]),
        sessions=int(doc["sessions"]),
        rel_ci=float(doc["rel_ci"]),
        stopped_by=str(doc["stopped_by"]),
        timed_call=str(doc["timed_call"]),
    )
    profiled = board_profile(doc.get("profile"), info, device) if spec.per_node else None
    usable = len(pin) if pin else len(board.affinity)
    started = datetime.fromtimestamp(float(doc.get("started_unix") or time.time()), timezone.utc)
    steal = steal_share(cpu_times(str(doc.get("stat_before") or "")),
                        cpu_times(str(doc.get("stat_after") or "")))
    metadata: dict[str, Any] = {
        **described,
        "runtime_version": doc.get("onnxruntime_version"),
        "onnxruntime_version": doc.get("onnxruntime_version"),
        "numpy_version": doc.get("numpy_version"),
        "board_python": board.raw.get("python"),
        "hostname": board.raw.get("hostname"),
        "cpu_count": board.raw.get("cpu_count"),
        "usable_cores": usable,
        "load_average": doc.get("load_average"),
        "timestamp_utc": started.isoformat(timespec="seconds"),
        "execution_provider": _PROVIDER,
        "inter_op_threads": 1,
        "execution_mode": "sequential",
        "allow_spinning": allow_spinning(spec),
        **run_metadata(info, spec, timed, int_range),
        "affinity": doc.get("affinity"),
        "steal_share": steal,
        "peak_rss_kib": doc.get("peak_rss_kib"),
        **call,
        "board_pid": doc.get("pid"),  # the runner's process on the board (one per session)
        # Where the time of this call went: the board's timed loop (sessions, warm-ups, runs) within the
        # answer, within the runner's handling of the request (its life, for an ssh call of its own), within
        # the host's wall time.
        "board_timed_s": doc.get("timed_s"),
        "board_answer_s": doc.get("answer_s"),
        "board_runner_s": doc.get("client_s"),
    }
    warnings = host_warnings({"usable_cores": usable, "load_average": doc.get("load_average")}, spec.threads)
    if pin and sorted(doc.get("affinity") or []) != sorted(pin):
        warnings.append(f"the runner ran on CPUs {doc.get('affinity')} instead of the pinned "
                        f"{list(pin)}: check taskset and cgroups on the board")
    warnings += notes
    if steal is not None and steal > STEAL_WARN:
        warnings.append(f"{steal:.1%} of the board's CPU time was stolen by a hypervisor during the "
                        "timed runs: expect noise")
    metadata["host_warnings"] = warnings
    return to_measurement(device, backend, timed, metadata, profiled)


def board_profile(profile: Any, info: Any, device: str) -> Any:
    """The board's profile events, parsed as every backend's are (blocks from the exported graph)."""
    from nasprof.profiler.ort_profile import ProfiledPass, parse_profile

    if not isinstance(profile, dict) or not profile.get("events"):
        raise DeviceError(f"the runner on {device} returned no profile for the per-node pass")
    original = None
    with contextlib.suppress(Exception):  # names alone still give most blocks
        import onnx

        original = onnx.load(str(info.path), load_external_data=False)
    runs = int(profile.get("runs") or 1)
    nodes, run_ms = parse_profile(profile["events"], runs=runs, original=original)
    return ProfiledPass(nodes=tuple(nodes), run_ms=tuple(run_ms), opt_level=str(profile.get("opt_level")),
                        runs=runs)
