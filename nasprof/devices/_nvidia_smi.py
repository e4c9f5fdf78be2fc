"""Is a GPU ready to be measured? What ``nvidia-smi`` says of its state, as ``nasprof doctor`` checks.

The things that move a GPU's latencies between runs, as GPU benchmarking guides list them: other processes
sharing the GPU (their kernels interleave with the measured ones), a GPU already busy, clocks held down
(power cap, thermal or hardware slowdown: ``clocks_event_reasons.active``, the NVML bit mask), temperature,
and persistence mode (off, the driver tears the GPU down between processes and every fresh session
starts cold). Read with ``nvidia-smi --query-gpu ... --format=csv,noheader,nounits``; a value the GPU does
not report (``[N/A]``, ``[Not Supported]``) reads *unknown*.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import Any

__all__ = ["gpu_checks", "smi_index", "SLOWDOWN_REASONS"]

#: The GPU's name comes last: it may hold commas, and the line is split on the others.
_FIELDS = ("temperature.gpu", "utilization.gpu", "clocks.sm", "clocks.max.sm", "persistence_mode")
#: The clock-event mask's field; drivers before R535 call it ``clocks_throttle_reasons.active``.
_REASONS = ("clocks_event_reasons.active", "clocks_throttle_reasons.active")
#: NVML clock-event bits that mean the GPU runs below the clocks it was asked for.
SLOWDOWN_REASONS = {
    0x4: "software power cap",
    0x8: "hardware slowdown",
    0x20: "software thermal slowdown",
    0x40: "hardware thermal slowdown",
    0x80: "power brake",
}
_HOT_C = 80.0
_BUSY_PCT = 10.0


def smi_index(device_id: int) -> str:
    """nvidia-smi's name for CUDA device ``device_id`` when the driver gives no UUID (the CUDA backend asks
    by UUID otherwise): nvidia-smi ignores ``CUDA_VISIBLE_DEVICES``, so ``cuda:0`` under
    ``CUDA_VISIBLE_DEVICES=2,3`` is its GPU 2 (a listed UUID is passed as it is)."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    visible = [v.strip() for v in (listed or "").split(",") if v.strip()]
    if listed is not None and not visible:
        return ""  # set but empty: CUDA sees no GPU at all
    return visible[device_id] if device_id < len(visible) else str(device_id)


def _smi(*args: str) -> tuple[int, str]:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return 127, "nvidia-smi not found"
    try:
        proc = subprocess.run([exe, *args], capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return 1, f"nvidia-smi did not answer ({type(exc).__name__})"
    return proc.returncode, (proc.stdout if proc.returncode == 0 else (proc.stderr or proc.stdout).strip())


def _number(v: str) -> float | None:
    try:
        return float(v)
    except ValueError:  # [N/A], [Not Supported]
        return None


def _query(index: str) -> tuple[dict[str, str] | None, str]:
    """The GPU's fields by name, or None and why. Tries the clock-event field under both of its names."""
    last = ""
    for reasons in _REASONS:
        query = ",".join((*_FIELDS, reasons, "name"))
        rc, out = _smi(f"--query-gpu={query}", "--format=csv,noheader,nounits", "-i", str(index))
        if rc == 0:
            line = out.strip().splitlines()[0] if out.strip() else ""
            values = [v.strip() for v in line.split(",", len(_FIELDS) + 1)]
            if len(values) == len(_FIELDS) + 2:
                return dict(zip((*_FIELDS, "reasons", "name"), values, strict=True)), ""
            return None, f"nvidia-smi printed {out.strip()[:80]!r}"
        last = " ".join(out.split())
        if rc == 127 or "not a valid field" not in last.lower():
            break
    return None, last


def _limit(check: Any, name: str, value: float | None, limit: float, fmt: str, advice: str) -> Any:
    """ok below ``limit``, warn (with ``advice``) at or above it, unknown when the GPU does not say."""
    if value is None:
        return check(name, "unknown", "not reported")
    over = value >= limit
    return check(name, "warn" if over else "ok", fmt.format(value), advice if over else "")


def gpu_checks(index: str, label: str | None = None) -> list[Any]:
    """Readiness of the GPU nvidia-smi calls ``index`` (its number or UUID), named ``GPU label`` in the
    checks (``nasprof.profiler.doctor.Check`` items)."""
    from nasprof.profiler.doctor import Check

    index = str(index)
    label = index if label is None else label
    if not index:
        return [Check(f"GPU {label}", "unknown", "CUDA_VISIBLE_DEVICES is empty: CUDA sees no GPU",
                      "unset it, or list the GPU to measure")]
    fields, why = _query(index)
    if fields is None:
        advice = ("install the NVIDIA driver's utilities (nvidia-smi) to check the GPU's state"
                  if why == "nvidia-smi not found" else "check the driver with `nvidia-smi`")
        return [Check(f"GPU {label} state", "unknown", why, advice)]
    checks = [Check(f"GPU {label}", "info", fields["name"])]
    rc, apps = _smi("--query-compute-apps=pid,process_name,used_memory", "--format=csv,noheader,nounits",
                    "-i", str(index))
    # pid, name, memory per line; anything else ("No running processes found") is not a process.
    rows = [[f.strip() for f in line.split(",", 2)] for line in apps.strip().splitlines()] if rc == 0 else []
    others = [a for a in rows if len(a) >= 2 and a[0].isdigit() and a[0] != str(os.getpid())]
    if rc != 0:
        checks.append(Check("GPU shared", "unknown", " ".join(apps.split())[:80]))
    else:
        names = ", ".join(f"{a[1]} (pid {a[0]})" for a in others[:3])
        checks.append(Check("GPU shared", "warn" if others else "ok",
                            f"{len(others)} other process(es){': ' + names if names else ''}",
                            "stop them: their kernels interleave with the measured ones" if others else ""))
    checks.append(_limit(Check, "GPU utilisation", _number(fields["utilization.gpu"]), _BUSY_PCT, "{:.0f}%",
                         "the GPU is busy: measure when it is idle"))
    try:
        mask = int(fields["reasons"], 16)
    except ValueError:
        checks.append(Check("GPU clocks", "unknown", f"clock events {fields['reasons']}"))
    else:
        slow = [name for bit, name in SLOWDOWN_REASONS.items() if mask & bit]
        sm, top = _number(fields["clocks.sm"]), _number(fields["clocks.max.sm"])
        clocks = f"SM {sm:.0f} of {top:.0f} MHz" if sm is not None and top is not None else "SM clock unknown"
        checks.append(Check("GPU clocks", "warn" if slow else "ok",
                            f"{clocks}; held down by {', '.join(slow)}" if slow else clocks,
                            "cool the GPU or raise its power limit; latencies measured now run slow" if slow
                            else ""))
    checks.append(_limit(Check, "GPU temperature", _number(fields["temperature.gpu"]), _HOT_C, "{:.0f} °C",
                         "let the GPU cool down: it throttles its clocks"))
    persistent = fields["persistence_mode"].lower()
    checks.append(Check("GPU persistence mode", "ok" if persistent == "enabled" else "info",
                        fields["persistence_mode"],
                        "" if persistent == "enabled" else "without it the driver tears the GPU down between "
                        "processes and each first session starts cold: `sudo nvidia-smi -pm 1`"))
    return checks
