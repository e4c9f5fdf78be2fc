"""Robust statistics and stability rules for latency samples.

The rules follow pyperf (spread, min/max far from the mean, tiny values) and hyperfine (outliers by modified
z-score, an outlying first run); nasprof adds one of its own: fresh sessions whose medians disagree, which is
how a noisy host usually shows itself in onnxruntime timings.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = [
    "SampleStats",
    "summarize",
    "modified_z_scores",
    "stability_warnings",
    "CV_WARN",
    "OUTLIER_Z",
    "SESSION_SPREAD_WARN",
    "median_ci",
]

#: pyperf warns when the standard deviation reaches 10% of the mean.
CV_WARN = 0.10
#: pyperf warns when the minimum or maximum lies 50% or more from the mean.
MINMAX_WARN = 0.50
#: Modified z-score above which a sample counts as an outlier (hyperfine's scale: |x-med| / (1.4826 MAD)).
OUTLIER_Z = 10.0
#: Share of outliers above which the measurement is flagged.
OUTLIER_SHARE_WARN = 0.01
#: Relative spread (max/min - 1) of per-session medians above which sessions are said to disagree.
SESSION_SPREAD_WARN = 0.05
#: Below this median the fixed per-call overhead of the timing loop is a visible share of the latency.
TINY_MEDIAN_MS = 0.05
#: Fewer samples than this cannot support p99 or outlier claims.
MIN_SAMPLES = 10


class SampleStats:
    """Summary statistics of a sample, computed once. Units are those of the input (ms in nasprof)."""

    __slots__ = ("n", "median", "mean", "min", "max", "p90", "p99", "std", "mad", "cv")

    def __init__(self, values: Sequence[float] | np.ndarray) -> None:
        x = np.asarray(values, dtype=np.float64)
        if x.size == 0:
            raise ValueError("no samples")
        self.n = int(x.size)
        self.median = float(np.median(x))
        self.mean = float(x.mean())
        self.min = float(x.min())
        self.max = float(x.max())
        self.p90 = float(np.percentile(x, 90))
        self.p99 = float(np.percentile(x, 99))
        self.std = float(x.std(ddof=1)) if x.size > 1 else 0.0
        # MAD is the raw median absolute deviation (not scaled by 1.4826); same unit as the samples.
        self.mad = float(np.median(np.abs(x - self.median)))
        self.cv = self.std / self.mean if self.mean > 0 else 0.0

    def as_dict(self) -> dict[str, float]:
        keys = ("median", "p90", "p99", "mean", "min", "max", "std", "mad", "cv")
        return {k: getattr(self, k) for k in keys}


def summarize(values: Sequence[float]) -> SampleStats:
    return SampleStats(values)


def median_ci(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """Distribution-free confidence interval of the median from order statistics.

    The number of samples below the true median is Binomial(n, 1/2), so the sorted samples ``x[l]`` and
    ``x[u]`` bracket the median with probability ``P(l < B <= u)`` (``B`` binomial). We take the narrowest
    symmetric pair with at least ``confidence`` coverage; no normality assumption, which matters because
    latency samples are skewed by rare spikes. With too few samples for the requested confidence the
    interval is the whole sample range.
    """
    x = np.sort(np.asarray(values, dtype=np.float64))
    n = int(x.size)
    if n == 0:
        raise ValueError("no samples")
    # Binomial(n, 1/2) cdf via cumulative pmf in log space (exact, no scipy needed).
    k = np.arange(n + 1)
    log_pmf = (np.array([math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) for i in k])
               - n * math.log(2.0))
    cdf = np.cumsum(np.exp(log_pmf))
    # Coverage of [x[j], x[n-1-j]] (0-based) is P(j < B < n - j) = cdf[n-j-1] - cdf[j].
    best = -1
    for j in range(n // 2):
        if cdf[n - j - 1] - cdf[j] < confidence:
            break
        best = j
    if best < 0:
        return float(x[0]), float(x[-1])
    return float(x[best]), float(x[n - 1 - best])


def modified_z_scores(values: Sequence[float] | np.ndarray) -> np.ndarray:
    """|x - median| / (1.4826 * MAD); zeros where MAD is 0 and x equals the median."""
    x = np.asarray(values, dtype=np.float64)
    med = np.median(x)
    mad = np.median(np.abs(x - med))
    dev = np.abs(x - med)
    if mad == 0:
        # Degenerate (quantised timer or identical values): anything off the median is infinitely far.
        return np.where(dev > 0, np.inf, 0.0)
    return dev / (1.4826 * mad)


def stability_warnings(
    samples: Sequence[float],
    session_index: Sequence[int] | None = None,
) -> list[str]:
    """Human-readable warnings about a latency sample; empty when the measurement looks trustworthy.

    ``session_index[i]`` names the fresh session that produced ``samples[i]`` (samples of one session are
    contiguous and in run order), which enables the first-run and session-agreement rules.
    """
    x = np.asarray(samples, dtype=np.float64)
    out: list[str] = []
    if x.size == 0:
        return ["no samples"]
    st = SampleStats(x)
    if x.size < MIN_SAMPLES:
        out.append(
            f"only {x.size} samples: p99 and outlier detection are not meaningful; "
            f"use --runs >= {MIN_SAMPLES}"
        )
    if st.cv >= CV_WARN:
        out.append(
            f"unstable: standard deviation is {st.cv:.0%} of the mean (>= {CV_WARN:.0%}); "
            "close other programs, pin threads, or add --runs"
        )
    if st.mean > 0:
        if (st.mean - st.min) / st.mean >= MINMAX_WARN:
            out.append(f"minimum {st.min:.4g} ms is {(st.mean - st.min) / st.mean:.0%} below the mean")
        if (st.max - st.mean) / st.mean >= MINMAX_WARN:
            out.append(f"maximum {st.max:.4g} ms is {(st.max - st.mean) / st.mean:.0%} above the mean")
    z = modified_z_scores(x)
    n_out = int((z > OUTLIER_Z).sum())
    if x.size >= MIN_SAMPLES and n_out / x.size > OUTLIER_SHARE_WARN:
        out.append(
            f"{n_out} of {x.size} samples are outliers (modified z-score > {OUTLIER_Z:g}); "
            "the device was busy during the measurement"
        )
    if st.median < TINY_MEDIAN_MS:
        out.append(
            f"median {st.median * 1000:.1f} us is close to the timing loop's own overhead; "
            "treat differences below ~5 us as noise"
        )
    if session_index is not None and len(session_index) == x.size and x.size >= MIN_SAMPLES:
        sid = np.asarray(session_index)
        firsts = [int(np.flatnonzero(sid == s)[0]) for s in np.unique(sid)]
        if any(z[i] > OUTLIER_Z for i in firsts):
            out.append(
                "the first timed run of a session is an outlier: the warm-up is too short; raise --warmup"
            )
        meds = [float(np.median(x[sid == s])) for s in np.unique(sid) if (sid == s).sum() > 0]
        if len(meds) > 1 and min(meds) > 0:
            spread = max(meds) / min(meds) - 1.0
            if spread > SESSION_SPREAD_WARN:
                out.append(
                    f"medians of fresh sessions disagree by {spread:.0%} (> {SESSION_SPREAD_WARN:.0%}): "
                    f"{', '.join(f'{m:.4g}' for m in meds)} ms; the host is noisy or threads migrate"
                )
    return out
