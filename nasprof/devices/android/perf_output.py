"""Parse what onnxruntime_perf_test prints (onnxruntime/test/perftest/performance_runner.cc).

Three dialects exist across onnxruntime releases, and all are understood:

- ``modern``: ``Average inference time cost: 98.96 ms`` and, with ``-s``, ``P50 Latency: 0.0987 s``;
- ``total``: some builds print ``Average inference time cost total: 98.96 ms``;
- ``old``: ``P50 Latency is 0.0587108sec``.

perf_test reports aggregates, never the individual runs: the mean (from its total time / requests), and with
``-s`` the min, max and percentiles. Units are converted to milliseconds here, once.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from nasprof.errors import DeviceError

__all__ = ["PerfTestOutput", "parse_perf_test_output"]

_NUM = r"([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)"
_PATTERNS = {
    "session_creation_s": re.compile(rf"Session creation time cost:\s*{_NUM}\s*s"),
    "first_inference_ms": re.compile(rf"First inference time cost:\s*{_NUM}\s*ms"),
    "total_s": re.compile(rf"Total inference time cost:\s*{_NUM}\s*s"),
    "requests": re.compile(rf"Total inference requests:\s*{_NUM}"),
    "average_ms": re.compile(rf"Average inference time cost(?P<total> total)?:\s*{_NUM}\s*ms"),
}
_LATENCY_MODERN = re.compile(rf"^\s*(Min|Max|P\d+) Latency:\s*{_NUM}\s*s\b", re.MULTILINE)
_LATENCY_OLD = re.compile(rf"^\s*(Min|Max|P\d+) Latency is\s*{_NUM}\s*sec", re.MULTILINE)


@dataclass(frozen=True)
class PerfTestOutput:
    """One perf_test process's report, in milliseconds."""

    #: Mean latency of the timed runs (perf_test's "Average inference time cost").
    average_ms: float
    #: Where ``average_ms`` came from: ``average`` (printed), ``total/requests`` or ``p50`` (last resort).
    average_source: str
    #: Which dialect was recognised: ``modern``, ``total`` or ``old``.
    dialect: str
    requests: int | None = None
    total_ms: float | None = None
    first_inference_ms: float | None = None
    session_creation_ms: float | None = None
    #: ``{"min": .., "max": .., "p50": .., "p90": .., ...}`` when perf_test printed them (``-s``).
    latency_ms: Mapping[str, float] = field(default_factory=dict)

    @property
    def median_ms(self) -> float | None:
        """perf_test's P50 over this process's timed runs (printed with ``-s``), else None."""
        return self.latency_ms.get("p50")

    def to_dict(self) -> dict[str, object]:
        return {
            "average_ms": self.average_ms,
            "average_source": self.average_source,
            "dialect": self.dialect,
            "requests": self.requests,
            "total_ms": self.total_ms,
            "first_inference_ms": self.first_inference_ms,
            "session_creation_ms": self.session_creation_ms,
            **{f"{k}_ms": v for k, v in self.latency_ms.items()},
        }


def _find(name: str, text: str) -> float | None:
    m = _PATTERNS[name].search(text)
    return float(m.group(m.lastindex or 1)) if m else None


def parse_perf_test_output(text: str) -> PerfTestOutput:
    """Parse perf_test's stdout; raise ``DeviceError`` quoting the output when no latency can be found."""
    avg_match = _PATTERNS["average_ms"].search(text)
    old = list(_LATENCY_OLD.finditer(text))
    dialect = "total" if avg_match and avg_match.group("total") else "old" if old else "modern"
    latency = {
        m.group(1).lower(): float(m.group(2)) * 1000.0 for m in (old or _LATENCY_MODERN.finditer(text))
    }
    total_s, requests = _find("total_s", text), _find("requests", text)
    if avg_match:
        average, source = float(avg_match.group(2)), "average"
    elif total_s is not None and requests:
        average, source = total_s * 1000.0 / requests, "total/requests"
    elif "p50" in latency:
        average, source = latency["p50"], "p50"
    else:
        tail = " | ".join(text.strip().splitlines()[-5:]) or "(no output)"
        raise DeviceError(
            f"could not find a latency in onnxruntime_perf_test's output ({tail}); is the runner "
            "really onnxruntime_perf_test?"
        )
    if not math.isfinite(average) or average <= 0:
        raise DeviceError(
            f"onnxruntime_perf_test reported a non-positive latency ({average} ms); the model "
            "probably did not run: check the runner's output with -v"
        )
    creation_s = _find("session_creation_s", text)
    return PerfTestOutput(
        average_ms=average,
        average_source=source,
        dialect=dialect,
        requests=int(requests) if requests is not None else None,
        total_ms=total_s * 1000.0 if total_s is not None else None,
        first_inference_ms=_find("first_inference_ms", text),
        session_creation_ms=creation_s * 1000.0 if creation_s is not None else None,
        latency_ms=latency,
    )
