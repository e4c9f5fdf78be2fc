"""A latency target that holds on the device with a stated confidence, from the predictor's own error.

A predictor's point estimate misses by its error; a network predicted at 0.99·T is over T about half the
time. ``LatencyBound`` turns the predictor's recorded error into a one-sided bound: a candidate is feasible
when ``predicted × (1 + u) <= T``, where ``u`` is the ``confidence`` quantile of ``true / predicted − 1``.

Where ``u`` comes from, best first:

- an adapted predictor's leave-one-out relative errors ``e = predicted / true − 1`` (``training_error
  ["loo_rel_quantiles"]``): ``true / predicted − 1 = 1 / (1 + e) − 1``, so the upper bound uses the error
  quantile at ``1 − confidence`` (the 0.05 quantile for 95%), the interval's lower end the one at
  ``confidence``;
- otherwise a recorded RMSPE (an adapted predictor's ``loo_rmspe``, a calibrated lookup table's or kernel
  predictor's leave-one-out RMSPE), read as a normal spread: ``u = z(confidence) · RMSPE``;
- otherwise nothing: ``u = 0`` (the point estimate), and the bound says so.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from nasprof.errors import InputError

__all__ = ["LatencyBound", "DEFAULT_CONFIDENCE", "check_confidence"]

#: The confidence a hard latency target is met with, unless told otherwise.
DEFAULT_CONFIDENCE = 0.95


def check_confidence(confidence: Any) -> float:
    try:
        c = float(confidence)
    except (TypeError, ValueError):
        raise InputError(f"--confidence must be a number in (0, 1), got {confidence!r}") from None
    if not (math.isfinite(c) and 0.0 < c < 1.0):
        raise InputError(f"--confidence must lie strictly between 0 and 1 (e.g. 0.95), got {confidence!r}")
    return c


def _rmspe(predictor: Any) -> tuple[float, int | None, str] | None:
    """A recorded relative error of ``predictor``: (RMSPE, networks, where it was read)."""
    err: Mapping[str, Any] = getattr(predictor, "training_error", None) or {}
    if isinstance(err.get("loo_rmspe"), (int, float)):
        return float(err["loo_rmspe"]), err.get("n"), "leave-one-out RMSPE"
    loo = err.get("leave_one_out")
    if isinstance(loo, Mapping) and isinstance(loo.get("rmspe"), (int, float)):
        return float(loo["rmspe"]), err.get("networks"), "calibration leave-one-out RMSPE"
    cal = getattr(predictor, "calibration", None)
    info = getattr(cal, "info", None)
    if isinstance(info, Mapping):
        loo = info.get("leave_one_out")
        if isinstance(loo, Mapping) and isinstance(loo.get("rmspe"), (int, float)):
            return float(loo["rmspe"]), info.get("networks"), "calibration leave-one-out RMSPE"
    if isinstance(err.get("rmspe"), (int, float)):
        return float(err["rmspe"]), err.get("n"), "training RMSPE"
    return None


@dataclass(frozen=True)
class LatencyBound:
    """``true <= predicted × (1 + upper_rel)`` with probability ``confidence`` (by the predictor's record);
    ``true >= predicted × (1 + lower_rel)`` likewise: the interval a result shows."""

    confidence: float
    upper_rel: float
    lower_rel: float
    method: str
    networks: int | None = None

    @classmethod
    def for_predictor(cls, predictor: Any, confidence: float = DEFAULT_CONFIDENCE) -> LatencyBound:
        c = check_confidence(confidence)
        err: Mapping[str, Any] = getattr(predictor, "training_error", None) or {}
        quantiles = err.get("loo_rel_quantiles")
        if isinstance(quantiles, Mapping):
            q = {round(float(k), 6): float(v) for k, v in quantiles.items()
                 if isinstance(v, (int, float)) and math.isfinite(float(v))}
            lo, hi = q.get(round(1.0 - c, 6)), q.get(round(c, 6))
            if lo is not None and hi is not None and lo > -1.0 and hi > -1.0:
                n = err.get("n")
                return cls(c, 1.0 / (1.0 + lo) - 1.0, 1.0 / (1.0 + hi) - 1.0,
                           f"leave-one-out error quantiles {1 - c:g}/{c:g} of {n} measured networks",
                           int(n) if isinstance(n, int) else None)
        found = _rmspe(predictor)
        if found is not None:
            rmspe, n, where = found
            z = statistics.NormalDist().inv_cdf(c)
            return cls(c, z * rmspe, max(-z * rmspe, -0.99),
                       f"{where} {rmspe:.1%} as a normal spread (z={z:.2f})",
                       int(n) if isinstance(n, int) else None)
        return cls(c, 0.0, 0.0, "point estimate: the predictor records no error to bound it with")

    def upper(self, latency_ms: ArrayLike) -> NDArray[np.float64]:
        return np.asarray(latency_ms, dtype=np.float64) * (1.0 + self.upper_rel)

    def lower(self, latency_ms: ArrayLike) -> NDArray[np.float64]:
        return np.asarray(latency_ms, dtype=np.float64) * (1.0 + self.lower_rel)

    def overuse(self, latency_ms: ArrayLike, target_ms: float) -> NDArray[np.float64]:
        """Relative excess of the upper bound over the target (<= 0 when the target holds)."""
        return self.upper(latency_ms) / float(target_ms) - 1.0

    def to_dict(self) -> dict[str, Any]:
        return {"confidence": self.confidence, "upper_rel": self.upper_rel, "lower_rel": self.lower_rel,
                "method": self.method, "networks": self.networks}
