"""Validation against measurements from elsewhere (``nasprof validate --measurements``): no device needed.

The measured networks are predicted and compared as nn-Meter reports it (within ±5/±10%, RMSPE), with the
rank agreement a search cares about (Spearman ρ, Kendall τ). The noise floor is what a second measurement of
the same networks would give: from raw samples (medians of even vs odd samples), or, with only a spread,
from a second draw of each latency with that standard deviation (spreads are read as the standard deviation
of single runs, so that floor is pessimistic when the reported latency is a median of many runs).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nasprof.errors import PredictorError

__all__ = ["MeasuredValidation", "validate_measurements", "validate_measurement_set", "agreement"]


def agreement(
    predicted: Sequence[float] | np.ndarray, measured: Sequence[float] | np.ndarray
) -> dict[str, float]:
    """within ±5/±10%, RMSPE, Spearman ρ and Kendall τ of ``predicted`` against ``measured``."""
    from scipy.stats import kendalltau, spearmanr

    from nasprof.predictors.base import error_summary

    p = np.asarray(predicted, np.float64)
    m = np.asarray(measured, np.float64)
    out: dict[str, float] = dict(error_summary(p, m))
    constant = p.size < 2 or np.ptp(p) == 0 or np.ptp(m) == 0
    out["spearman"] = float("nan") if constant else float(spearmanr(p, m)[0])
    out["kendall"] = float("nan") if constant else float(kendalltau(p, m)[0])
    return out


@dataclass(frozen=True)
class MeasuredValidation:
    predictor_kind: str
    device: str
    measurements: str
    rows: tuple[dict[str, Any], ...]
    summary: Mapping[str, float]
    noise_floor: Mapping[str, Any] | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"predictor": self.predictor_kind, "device": self.device, "measurements": self.measurements,
                **{k: _finite(v) for k, v in self.summary.items()},
                "noise_floor": self.noise_floor, "metadata": dict(self.metadata), "rows": list(self.rows)}

    def write_csv(self, path: str | Path) -> Path:
        """Predicted vs measured, one network a row (arch, model, predicted_ms, measured_ms, error)."""
        import csv
        import io

        from nasprof._io import atomic_write_text

        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=list(self.rows[0]))
        w.writeheader()
        w.writerows(self.rows)
        atomic_write_text(Path(path), buf.getvalue())
        return Path(path)


def _finite(v: Any) -> Any:
    return None if isinstance(v, float) and not np.isfinite(v) else v


def _noise_floor(rows: Sequence[Any], seed: int = 0) -> dict[str, Any] | None:
    first, second = [], []
    with_samples = [r for r in rows if len(r.samples_ms) >= 4]
    if with_samples:
        for r in with_samples:
            s = np.asarray(r.samples_ms, np.float64)
            first.append(float(np.median(s[0::2])))
            second.append(float(np.median(s[1::2])))
        how = "medians of even vs odd raw samples"
    else:
        spread = [r for r in rows if r.spread_ms is not None and r.spread_ms > 0]
        if not spread:
            return None
        rng = np.random.default_rng(seed)
        for r in spread:
            first.append(r.latency_ms)
            second.append(max(r.latency_ms + float(rng.normal(0.0, float(r.spread_ms))), 1e-9))
        how = "a second draw of each latency with its spread as standard deviation"
    return {"method": how, "n": len(first), **agreement(second, first)}


def validate_measurements(
    predictor: Any, mset: Any, targets: Sequence[Any] | None = None
) -> MeasuredValidation:
    """Predict every network of ``mset`` (a ``MeasurementSet``) and compare. ``targets`` overrides what is
    handed to the predictor per row (parsed architectures), else the row's architecture text or model."""
    rows = list(mset.rows)
    if not rows:
        raise PredictorError(f"measurement set {mset.label} has no rows")
    items = list(targets) if targets is not None else [r.key for r in rows]
    predicted = np.asarray(predictor.predict_many(items), np.float64)
    measured = np.asarray([r.latency_ms for r in rows], np.float64)
    out_rows = tuple(
        {"arch": r.arch, "model": r.model, "predicted_ms": float(p), "measured_ms": float(m),
         "error": float(p / m - 1.0)}
        for r, p, m in zip(rows, predicted, measured, strict=True)
    )
    learned = set(getattr(predictor, "learned_from", {}).get("networks", []) or [])
    overlap = sum(1 for r in rows if r.arch in learned)
    meta = {"learned_from_overlap": overlap} if overlap else {}
    return MeasuredValidation(predictor.kind, predictor.device, mset.label, out_rows,
                              agreement(predicted, measured), _noise_floor(rows), meta)


def _targets(mset: Any) -> list[Any] | None:
    """Architectures of a set that names its space (nb201 strings read with the set's options), so the
    predictor can check them; None to hand it the texts as they are."""
    if mset.space is None and not mset.arch_options:
        return None
    from nasprof.errors import InputError, NasprofError
    from nasprof.space.parse import parse_arch

    out: list[Any] = []
    for r in mset.rows:
        if r.arch is None:
            out.append(r.model)
            continue
        try:
            out.append(parse_arch(r.arch, mset.space, **dict(mset.arch_options)))
        except NasprofError as exc:
            raise InputError(f"{mset.label} line {r.line}: {exc}") from None
    return out


def validate_measurement_set(
    predictor: Any, measurements: str | Path, store: str | Path | None = None
) -> MeasuredValidation:
    """``validate_measurements`` on a set read by ``load_measurement_set`` (``NAME[@vN]`` from ``store``, or a
    CSV/Parquet file): a set that names its space has its architectures parsed first, so a line the space
    refuses is an error naming that line."""
    from nasprof.tables.measurements import load_measurement_set

    mset = load_measurement_set(measurements, store=store)
    return validate_measurements(predictor, mset, _targets(mset))
