"""How many runs to give each table entry: a time budget per entry instead of a fixed run count.

Layer latencies in one table span three orders of magnitude (a 112x112 expansion conv takes milliseconds,
a 7x7 projection microseconds). A fixed run count wastes device time on the slow layers and, on the fast
ones, leaves the fixed costs (session creation, warm-ups, export, a database commit) dominating the wall
time. So the builder plans each entry to spend about ``budget_s`` inside timed inference: it predicts the
layer's latency from the entries measured so far (least squares on MACs and activation size, per op when
there is enough history) and sets runs and warm-ups from it. A wrong guess only changes how many samples an
entry gets; adaptive repetition (``target_rel_ci``) still decides when its median is known well enough.
"""

from __future__ import annotations

import math
import threading
from dataclasses import replace
from typing import Any

import numpy as np

from nasprof.devices.base import MeasureSpec

__all__ = ["RunPlanner"]

#: Warm-up time per session; at least ``MIN_WARMUP`` runs (the first runs allocate and fill caches).
WARMUP_S = 0.02
MIN_WARMUP = 2
#: History needed before trusting a fit (per op, then over all ops).
MIN_HISTORY = 6
HISTORY = 400
#: Cap on planned runs per session: tiny layers would otherwise get tens of thousands of samples, and every
#: sample is stored.
MAX_RUNS_PER_SESSION = 500


class RunPlanner:
    """Plans ``MeasureSpec``s for entries so each spends about ``budget_s`` in timed inference.

    ``spec.runs`` is the floor of runs per session and the plan when nothing is known yet; ``spec.warmup``
    the ceiling of warm-ups; ``spec.max_runs`` (if set) is raised to twice the planned samples so adaptive
    repetition may at most double an entry's time. Thread-safe (workers of a multi-device build share it).
    """

    def __init__(self, spec: MeasureSpec, budget_s: float | None) -> None:
        self.spec = spec
        self.budget_s = budget_s if budget_s and budget_s > 0 else None
        self._hist: list[tuple[str, float, float, float]] = []  # (op, macs, act elements, median ms)
        self._lock = threading.Lock()

    def observe(self, layer: Any, median_ms: float) -> None:
        with self._lock:
            self._hist.append((str(layer.spec.op), float(layer.macs), _act(layer), float(median_ms)))
            del self._hist[:-HISTORY]

    def predict_ms(self, layer: Any) -> float | None:
        """Latency guess for ``layer`` in ms, or None without enough history."""
        with self._lock:
            hist = list(self._hist)
        same = [h for h in hist if h[0] == str(layer.spec.op)]
        for rows in (same, hist):
            if len(rows) >= MIN_HISTORY:
                x = np.array([[1.0, h[1], h[2]] for h in rows])
                y = np.array([h[3] for h in rows])
                scale = np.abs(x).max(axis=0)
                scale[scale == 0] = 1.0
                coef, *_ = np.linalg.lstsq(x / scale, y, rcond=None)
                guess = float(np.array([1.0, float(layer.macs), _act(layer)]) / scale @ coef)
                # A linear fit can undershoot for layers unlike the history: never below the smallest seen.
                return max(guess, float(y.min()))
        return None

    def plan(self, layer: Any) -> MeasureSpec:
        if self.budget_s is None:
            return self.spec
        est = self.predict_ms(layer)
        if est is None:
            return self.spec
        spec = self.spec
        est_s = max(est, 1e-3) / 1000.0
        runs = max(spec.runs, min(MAX_RUNS_PER_SESSION, math.ceil(self.budget_s / spec.sessions / est_s)))
        warmup = min(spec.warmup, max(MIN_WARMUP, math.ceil(WARMUP_S / est_s)))
        max_runs = None if spec.max_runs is None else max(spec.max_runs, 2 * runs * spec.sessions)
        return replace(spec, runs=runs, warmup=warmup, max_runs=max_runs)


def _act(layer: Any) -> float:
    """Input + output activation elements: memory traffic that MACs alone do not capture."""
    return float(math.prod(layer.input_shape) + math.prod(layer.output_shape))
