"""What the host looks like while it measures: the metadata every result carries."""

from __future__ import annotations

import os
import platform
import socket
import sys
from datetime import datetime, timezone
from functools import lru_cache
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

__all__ = [
    "cpu_model", "cpu_flags", "host_metadata", "host_summary", "package_versions", "utc_timestamp",
    "SIMD_FLAGS",
]


@lru_cache(maxsize=1)
def cpu_model() -> str:
    """The CPU's marketing name from /proc/cpuinfo (Linux), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            # x86 says "model name"; many ARM kernels say "Hardware" or "Processor".
            if key.strip() in ("model name", "Hardware", "Processor") and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


#: The CPU flags that decide which kernels a runtime picks (x86 SIMD widths and dot-product extensions; ARM's
#: NEON/SVE/dot-product). onnxruntime's MLAS chooses its NCHWc block from them: 16 with AVX-512F, else 8.
SIMD_FLAGS = (
    "sse4_1", "sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512dq",
    "avx512_vnni", "avx512_bf16", "avx512_fp16", "avx_vnni", "amx_tile", "amx_int8", "amx_bf16",
    "asimd", "asimddp", "asimdhp", "sve", "sve2", "i8mm", "bf16",
)


@lru_cache(maxsize=1)
def cpu_flags() -> list[str]:
    """This CPU's SIMD flags (``SIMD_FLAGS`` that /proc/cpuinfo lists: x86 ``flags``, ARM ``Features``),
    sorted; empty where /proc/cpuinfo is unreadable."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            have = set(value.split())
            return sorted(f for f in SIMD_FLAGS if f in have)
    return []


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1


def _governor() -> str | None:
    try:
        return Path("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor").read_text().strip()
    except OSError:
        return None


def package_versions(*names: str) -> dict[str, str]:
    out = {}
    for n in names:
        try:
            out[n] = importlib_metadata.version(n)
        except importlib_metadata.PackageNotFoundError:
            out[n] = "not installed"
    return out


def utc_timestamp() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def host_metadata() -> dict[str, Any]:
    """Host facts that decide whether two measurements are comparable. Cheap: no subprocesses."""
    from nasprof._version import __version__

    try:
        load = [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        load = None
    return {
        "nasprof_version": __version__,
        **{f"{k}_version": v for k, v in package_versions("onnxruntime", "numpy", "onnx").items()},
        "python_version": platform.python_version(),
        "platform": platform.platform(),
        "hostname": socket.gethostname(),
        "cpu_model": cpu_model(),
        "cpu_flags": cpu_flags(),
        "cpu_count": os.cpu_count(),
        "usable_cores": _usable_cores(),
        "cpu_governor": _governor(),
        # Evidence for noisy-host warnings: the 1/5/15-minute load averages when the measurement started.
        "load_average": load,
        "executable": sys.executable,
        "timestamp_utc": utc_timestamp(),
    }


def host_summary() -> dict[str, Any]:
    """What every benchmark result records of its host: CPU model and SIMD flags (they decide which kernels
    the runtime picks), cores, platform, library versions, load and time."""
    meta = host_metadata()
    keys = ("cpu_model", "cpu_flags", "usable_cores", "platform", "python_version", "nasprof_version",
            "onnxruntime_version", "numpy_version", "load_average", "timestamp_utc")
    return {k: meta[k] for k in keys}
