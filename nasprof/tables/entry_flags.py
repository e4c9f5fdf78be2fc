"""Quality flags for table entries: is this measurement good enough to be a lookup-table value?

A table is built from thousands of short measurements on a host that may be busy. Each entry is judged on
its own samples: the 95% confidence interval of the median (order statistics, no normality assumption),
the spread of samples, and agreement between fresh sessions. The builder re-measures entries flagged
``unstable`` and stores the flags with the entry, so a predictor can down-weight or skip them later.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from nasprof.profiler.measurement import Measurement
from nasprof.profiler.stats import CV_WARN, SESSION_SPREAD_WARN, TINY_MEDIAN_MS, median_ci

__all__ = ["Quality", "assess", "FLAG_UNSTABLE", "FLAG_CI_WIDE", "FLAG_TINY", "FLAG_ESTIMATED",
           "FLAG_REMEASURED"]

FLAG_UNSTABLE = "unstable"
FLAG_CI_WIDE = "ci_wide"
FLAG_TINY = "tiny"
FLAG_ESTIMATED = "estimated"
FLAG_REMEASURED = "remeasured"


@dataclass(frozen=True)
class Quality:
    """How trustworthy one measurement is. ``median_rel_ci`` is the larger side of the median's 95%
    confidence interval divided by the median (0.01 = known to ±1%)."""

    median_rel_ci: float
    robust_cv: float
    session_spread: float
    flags: tuple[str, ...]

    @property
    def unstable(self) -> bool:
        return FLAG_UNSTABLE in self.flags


def median_rel_ci(samples_ms: Sequence[float]) -> float:
    """Larger side of the median's 95% CI relative to the median (the CPU backend's stopping rule)."""
    lo, hi = median_ci(samples_ms)
    med = float(np.median(samples_ms))
    return max(med - lo, hi - med) / med if med > 0 else float("inf")


def assess(m: Measurement, target_rel_ci: float | None = 0.01) -> Quality:
    """Flag ``m``: ``unstable`` when its robust spread (1.4826·MAD ≥ 10% of the median) or disagreement
    between fresh sessions (> 5%) says the host was disturbed; ``ci_wide`` when the median is not known to
    ±``target_rel_ci``; ``tiny`` when the median is near the timing loop's own overhead; ``estimated`` for
    model-based (MCU) values.

    Why not the plain CV (pyperf's rule): at table scale CV is dominated by a few scheduler spikes that do
    not move the median, which is the value the table keeps; flagging them would re-measure most entries on
    a shared host for no gain in the stored value."""
    if m.estimated:
        return Quality(0.0, 0.0, 0.0, (FLAG_ESTIMATED,))
    rel = median_rel_ci(m.samples_ms)
    meds = m.session_medians_ms
    spread = max(meds) / min(meds) - 1.0 if len(meds) > 1 and min(meds) > 0 else 0.0
    robust_cv = 1.4826 * m.mad_ms / m.median_ms if m.median_ms > 0 else 0.0
    flags = []
    if robust_cv >= CV_WARN or spread > SESSION_SPREAD_WARN:
        flags.append(FLAG_UNSTABLE)
    if target_rel_ci is not None and rel > target_rel_ci:
        flags.append(FLAG_CI_WIDE)
    if m.median_ms < TINY_MEDIAN_MS:
        flags.append(FLAG_TINY)
    return Quality(median_rel_ci=rel, robust_cv=robust_cv, session_spread=spread, flags=tuple(flags))


def better(a: tuple[Measurement, Quality], b: tuple[Measurement, Quality]) -> tuple[Measurement, Quality]:
    """The more trustworthy of two measurements of one model: stable beats unstable, then the narrower
    confidence interval wins (a disturbance widens it)."""
    ka = (a[1].unstable, a[1].median_rel_ci)
    kb = (b[1].unstable, b[1].median_rel_ci)
    return a if ka <= kb else b
