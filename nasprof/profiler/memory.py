"""Peak memory of a measurement on the host: what onnxruntime_perf_test calls the peak working set.

Linux keeps the process's peak resident set (``VmHWM`` in /proc/self/status) and lets a process reset it to
the current size by writing ``5`` to /proc/self/clear_refs. ``PeakMemory`` resets it before the sessions are
created and reads it after the last run, so the peak is this measurement's, not the process's lifetime (a
table build measures thousands of models in one process). ``added_bytes`` is the peak above what the process
held before: the model's weights, onnxruntime's arena and the run's buffers. Where the reset is not allowed
(non-Linux), the lifetime peak (``ru_maxrss``) is reported and labelled so.
"""

from __future__ import annotations

import resource
import sys
from pathlib import Path
from types import TracebackType
from typing import Any

__all__ = ["PeakMemory", "status_bytes"]


def status_bytes(field: str) -> int | None:
    """A ``kB`` field of /proc/self/status (``VmRSS``, ``VmHWM``) in bytes; None where it does not exist."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


class PeakMemory:
    """``with PeakMemory() as pm: ...``, then ``pm.report()``: the peak RSS of the block, and its rise."""

    def __init__(self) -> None:
        self.baseline: int | None = None
        self.peak: int | None = None
        self.method = ""

    def __enter__(self) -> PeakMemory:
        reset = _reset_peak()
        self.baseline = status_bytes("VmRSS")
        self.method = "VmHWM reset at the start" if reset and self.baseline is not None else "ru_maxrss"
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self.method.startswith("VmHWM"):
            self.peak = status_bytes("VmHWM")
        else:
            # ru_maxrss: kilobytes on Linux, bytes on macOS; the process's lifetime peak.
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            self.peak = rss if sys.platform == "darwin" else rss * 1024

    def report(self) -> dict[str, Any]:
        added = None
        if self.peak is not None and self.baseline is not None and self.method.startswith("VmHWM"):
            added = max(0, self.peak - self.baseline)
        return {"peak_rss_bytes": self.peak, "added_bytes": added, "baseline_rss_bytes": self.baseline,
                "method": self.method}
