"""A/B comparison of measurements, as pyperf's ``compare_to`` does for benchmarks.

For each measurement against the first (the baseline): the ratio of medians with a bootstrap 95% confidence
interval, the two-sided Mann-Whitney U test, and a verdict at level ``alpha``: *faster* or *slower* only
when the test rejects equality **and** the interval excludes 1, else *not significant*. With per-node times
in both, the difference per block and per op type says where the time went.

Comparing only makes sense when the runs differ in what is being compared, not in how they were timed: two
measurements from different devices, backends, thread counts, optimisation levels or timing calls are refused
unless ``force`` (the differences are then listed in the result). An estimate (the MCU backend) is never
compared with a measurement; two estimates are deterministic values, so their comparison is the plain ratio
with no interval, no test and a verdict of *estimated faster / slower / equal*.

The samples of one session are not independent (a noisy minute slows a run of them), so the bootstrap
resamples whole sessions when both measurements have at least 5 of them, and single samples otherwise (the
interval is then too narrow when sessions differ: measure with ``--sessions`` >= 5 to get honest intervals).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from nasprof.errors import InputError, SchemaError
from nasprof.profiler.measurement import Measurement

__all__ = [
    "Comparison",
    "compare_measurements",
    "comparison_document",
    "load_measurement",
    "plot_comparison",
    "COMPARE_SCHEMA_VERSION",
    "CHECKED_SETTINGS",
]

#: History: 1 — first version.
COMPARE_SCHEMA_VERSION = 1
#: Settings that must match (metadata keys), besides device and backend: they change how time is taken.
CHECKED_SETTINGS = ("threads", "opt_level", "timed_call")
_RESAMPLES = 2000
_MIN_SESSIONS = 5


@dataclass(frozen=True)
class Comparison:
    """``other`` against ``baseline``: ratio = median(other) / median(baseline) (< 1: other is faster)."""

    baseline: str
    other: str
    baseline_median_ms: float
    other_median_ms: float
    ratio: float
    ci95: tuple[float, float]
    p_value: float
    alpha: float
    #: How the interval was resampled: ``sessions`` or ``samples``.
    resampled: str
    #: Settings that differ (only with ``force``), as "key: a vs b".
    differences: tuple[str, ...] = ()
    per_block: tuple[dict[str, Any], ...] = field(default=())
    per_op_type: tuple[dict[str, Any], ...] = field(default=())
    #: Both sides are estimates (one deterministic value each): no interval, no test (``p_value`` is NaN).
    estimated: bool = False

    @property
    def significant(self) -> bool:
        if self.estimated:
            return self.ratio != 1.0
        lo, hi = self.ci95
        return self.p_value < self.alpha and not (lo <= 1.0 <= hi)

    @property
    def verdict(self) -> str:
        if self.estimated:
            return "estimated equal" if self.ratio == 1.0 else (
                "estimated faster" if self.ratio < 1.0 else "estimated slower")
        if not self.significant:
            return "not significant"
        return "faster" if self.ratio < 1.0 else "slower"

    def to_dict(self) -> dict[str, Any]:
        return {
            "baseline": self.baseline,
            "other": self.other,
            "baseline_median_ms": self.baseline_median_ms,
            "other_median_ms": self.other_median_ms,
            "ratio": self.ratio,
            "ci95": list(self.ci95),
            "p_value": None if math.isnan(self.p_value) else self.p_value,
            "estimated": self.estimated,
            "alpha": self.alpha,
            "verdict": self.verdict,
            "resampled": self.resampled,
            "differences": list(self.differences),
            "per_block": list(self.per_block),
            "per_op_type": list(self.per_op_type),
        }


def load_measurement(path: str | Path) -> Measurement:
    """A measurement JSON (``nasprof measure --json``); ``InputError`` for another kind of file."""
    import json

    p = Path(path)
    try:
        doc = json.loads(p.read_text())
    except FileNotFoundError:
        raise InputError(f"{p}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{p}: not a measurement JSON ({exc.__class__.__name__})") from None
    if not isinstance(doc, dict) or doc.get("kind") != "nasprof.measurement":
        kind = doc.get("kind") if isinstance(doc, dict) else type(doc).__name__
        raise InputError(f"{p}: not a measurement written by `nasprof measure --json` (kind {kind!r})")
    try:
        m = Measurement.from_dict(doc)
    except SchemaError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{p}: malformed measurement ({exc})") from None
    worst = max(m.samples_ms, default=0.0)
    if worst > MAX_SAMPLE_MS:  # finite but absurd: ratios and intervals of such numbers overflow
        raise InputError(f"{p}: a sample of {worst:.3g} ms is not a latency (over {MAX_SAMPLE_MS:.0e} ms, "
                         "about 11 days); the file was edited or corrupted")
    return m


#: The longest sample a measurement file may hold (about 11 days): beyond it, sums overflow to inf.
MAX_SAMPLE_MS = 1e9


def _differences(a: Measurement, b: Measurement) -> list[str]:
    out = []
    for name, x, y in (("device", a.device, b.device), ("backend", a.backend, b.backend)):
        if x != y:
            out.append(f"{name}: {x} vs {y}")
    for key in CHECKED_SETTINGS:
        sa, sb = a.metadata.get(key), b.metadata.get(key)
        if sa != sb:
            out.append(f"{key}: {sa} vs {sb}")
    return out


def _groups(m: Measurement) -> list[NDArray[np.float64]]:
    samples = np.asarray(m.samples_ms)
    sid = np.asarray(m.session_index)
    return [samples[sid == s] for s in np.unique(sid)]


def _resample_medians(m: Measurement, by_session: bool, rng: np.random.Generator) -> NDArray[np.float64]:
    """Medians of ``_RESAMPLES`` bootstrap resamples of ``m``'s samples (whole sessions if ``by_session``)."""
    if not by_session:
        x = np.asarray(m.samples_ms)
        idx = rng.integers(0, x.size, size=(_RESAMPLES, x.size))
        return np.median(x[idx], axis=1)
    groups = _groups(m)
    picks = rng.integers(0, len(groups), size=(_RESAMPLES, len(groups)))
    return np.array([np.median(np.concatenate([groups[g] for g in row])) for row in picks])


def _deltas(a: list[dict[str, Any]], b: list[dict[str, Any]], key: str) -> tuple[dict[str, Any], ...]:
    base = {r[key]: r["duration_ms"] for r in a}
    other = {r[key]: r["duration_ms"] for r in b}
    rows = []
    for k in dict.fromkeys([*base, *other]):
        x, y = base.get(k, 0.0), other.get(k, 0.0)
        rows.append({key: k, "baseline_ms": x, "other_ms": y, "delta_ms": y - x,
                     "ratio": y / x if x > 0 else None})
    return tuple(sorted(rows, key=lambda r: -abs(r["delta_ms"])))


def compare_measurements(
    measurements: Sequence[Measurement],
    labels: Sequence[str] | None = None,
    *,
    alpha: float = 0.05,
    force: bool = False,
    seed: int = 0,
) -> list[Comparison]:
    """Each of ``measurements[1:]`` against ``measurements[0]`` (see the module docstring)."""
    from scipy.stats import mannwhitneyu

    if len(measurements) < 2:
        raise InputError("compare needs at least two measurements: a baseline and one or more others")
    if not 0.0 < alpha < 0.5 or not math.isfinite(alpha):
        raise InputError(f"--alpha must be in (0, 0.5), got {alpha!r}")
    names = list(labels) if labels is not None else [f"#{i}" for i in range(len(measurements))]
    base = measurements[0]
    out = []
    for i, m in enumerate(measurements[1:], 1):
        if m.estimated != base.estimated:
            raise InputError(
                f"{names[i]} is {'an estimate' if m.estimated else 'a measurement'} and {names[0]} is "
                f"{'an estimate' if base.estimated else 'a measurement'}: a model of a device and a timing "
                "cannot be compared"
            )
        diffs = _differences(base, m)
        if diffs and not force:
            raise InputError(f"{names[i]} was not timed like {names[0]} ({'; '.join(diffs)}); "
                             "pass --force to compare anyway")
        by_session = min(base.sessions, m.sessions) >= _MIN_SESSIONS
        ratio = m.median_ms / base.median_ms
        if base.estimated:
            # One deterministic value each: resampling and a test would dress up a plain ratio as statistics.
            lo = hi = ratio
            p = math.nan
        else:
            rng = np.random.default_rng(seed)
            ratios = _resample_medians(m, by_session, rng) / _resample_medians(base, by_session, rng)
            lo, hi = (float(v) for v in np.quantile(ratios, [0.025, 0.975]))
            p = 1.0 if len(set(base.samples_ms + m.samples_ms)) == 1 else float(
                mannwhitneyu(base.samples_ms, m.samples_ms, alternative="two-sided").pvalue)
        both_nodes = base.per_node is not None and m.per_node is not None
        out.append(Comparison(
            baseline=names[0],
            other=names[i],
            baseline_median_ms=base.median_ms,
            other_median_ms=m.median_ms,
            ratio=ratio,
            ci95=(lo, hi),
            p_value=p,
            alpha=alpha,
            resampled="none" if base.estimated else "sessions" if by_session else "samples",
            differences=tuple(diffs),
            per_block=_deltas(base.per_block, m.per_block, "block") if both_nodes else (),
            per_op_type=_deltas(base.per_op_type, m.per_op_type, "op_type") if both_nodes else (),
            estimated=base.estimated,
        ))
    return out


def comparison_document(comparisons: Sequence[Comparison], measurements: Sequence[Measurement],
                        labels: Sequence[str]) -> dict[str, Any]:
    """The ``--json`` document of a comparison (versioned)."""
    return {
        "schema_version": COMPARE_SCHEMA_VERSION,
        "kind": "nasprof.comparison",
        "measurements": [
            {"label": lab, "device": m.device, "median_ms": m.median_ms, "n": m.n, "sessions": m.sessions}
            for lab, m in zip(labels, measurements, strict=True)
        ],
        "comparisons": [c.to_dict() for c in comparisons],
    }


def plot_comparison(measurements: Sequence[Measurement], labels: Sequence[str], path: str | Path) -> Path:
    """PNG: the distribution of each measurement's samples (violins) with its median marked."""
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from nasprof._io import atomic_write_bytes

    path = Path(path)
    if path.suffix.lower() != ".png":
        raise InputError(f"--plot writes a PNG; give a path ending in .png, got {path}")
    fig = Figure(figsize=(1.8 + 1.4 * len(measurements), 4.2), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    data = [np.asarray(m.samples_ms) for m in measurements]
    ax.violinplot(data, showmedians=True, showextrema=True)
    ax.set_xticks(range(1, len(data) + 1), [Path(lab).stem[:18] for lab in labels], fontsize=8)
    ax.set_ylabel("latency (ms)")
    ax.set_title("samples per measurement (line: median)", fontsize=10)
    ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return atomic_write_bytes(path, buf.getvalue())
