"""The family fit behind ``LutPredictor.calibrate``: one factor per layer family, the cost per MB of
weights ``β`` and a per-network constant, fitted to end-to-end measurements by non-negative least squares
with a weak ridge prior, and judged leave-one-out (see the model in ``nasprof.predictors.lut.predictor``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from nasprof.errors import PredictorError
from nasprof.predictors.base import error_summary
from nasprof.predictors.lut.keys import key_family

__all__ = ["fit_families"]


def fit_families(lut: Any, archs: Sequence[Any], measured_ms: Sequence[float], *, model: str,
                 prior_weight: float) -> Any:
    """``lut`` (a ``LutPredictor``) calibrated on ``archs`` and their measured latencies; ``model`` is
    ``"scale"`` or ``"families"`` as ``LutPredictor.calibrate`` documents."""
    if model not in ("scale", "families"):
        raise PredictorError(f"unknown calibration model {model!r}; use 'scale' or 'families'")
    if len(archs) != len(measured_ms) or not archs:
        raise PredictorError("calibrate needs one measurement per architecture, at least one")
    m = np.asarray(measured_ms, np.float64)
    if not np.all(np.isfinite(m)) or np.any(m <= lut.overhead_ms):
        raise PredictorError("calibration measurements must be finite and above the per-call overhead")
    keys = [lut.layer_keys(a) for a in archs]
    lut.ids_of_keys([k for ks in keys for k in ks])  # names a key the table lacks
    families = sorted({key_family(k) for ks in keys for k in ks})
    # Design: per network, Σ (entry − overhead) per family, then Σ weight MB.
    col = {g: i for i, g in enumerate(families)}
    x = np.zeros((len(archs), len(families) + 1))
    for r, ks in enumerate(keys):
        for k in ks:
            x[r, col[key_family(k)]] += lut.net_ms(k)
            x[r, -1] += lut.weight_mb.get(k, 0.0)
    y = m - lut.overhead_ms
    before = x[:, :-1].sum(axis=1) + lut.overhead_ms
    has_weights = bool(x[:, -1].any())
    # A family that is the same in every calibration network (the stem and head of a space at one
    # resolution) is a constant: it cannot be told apart from the other terms, and a free factor for it
    # ran to the bound (0.2) in the demo. It keeps the single scale.
    spread = np.ptp(x[:, :-1], axis=0)
    varying = [i for i, v in enumerate(spread) if v > 1e-9 * max(1.0, float(np.abs(x[:, i]).max()))]
    fitted = np.array(varying + [len(families)], dtype=np.int64)  # varying families, then β
    n_params = len(varying) + 2  # and the per-network constant
    note = ""
    if model == "families" and not has_weights:
        model, note = "scale", "the table has no params column: single scale fitted"
    elif model == "families" and len(archs) < 3 * n_params:
        model, note = "scale", f"{len(archs)} networks < 3 per parameter ({3 * n_params}): single scale"

    def fit(rows: np.ndarray) -> tuple[float, np.ndarray]:
        """(scale, [family factors..., β, per-network constant]); β and the constant are 0 for
        ``model="scale"``."""
        s_all = x[rows, :-1].sum(axis=1)
        w = 1.0 / m[rows] ** 2
        scale = float(np.sum(s_all * y[rows] * w) / np.sum(s_all**2 * w))
        beta = np.append(np.full(len(families), scale), [0.0, 0.0])
        if model == "families":
            fixed = np.setdiff1d(np.arange(len(families)), fitted)
            rest = y[rows] - x[np.ix_(rows, fixed)] @ beta[fixed]
            sol = _ridge_lsq(x[np.ix_(rows, fitted)], rest, m[rows], scale, prior_weight)
            beta[fitted], beta[-1] = sol[:-1], sol[-1]
        return scale, beta

    def held_out(i: int) -> float:
        """Network ``i`` predicted by a fit on the others."""
        b = fit(np.delete(np.arange(len(m)), i))[1]
        return float(lut.overhead_ms + x[i] @ b[:-1] + b[-1])

    scale, beta = fit(np.arange(len(m)))
    loo = np.array([held_out(i) for i in range(len(m))]) if len(m) > 1 else None
    factors = {families[i]: float(np.clip(beta[i], 0.2, 5.0)) for i in varying}
    out = lut.copy_with(
        scale=float(np.clip(scale, 0.2, 5.0)),
        group_factors=factors if model == "families" else {},
        ms_per_weight_mb=float(beta[-2]),
        offset_ms=float(beta[-1]),
    )
    out.training_error = {
        "method": f"{model} fitted on {len(archs)} end-to-end measurements"
        + (f" ({note})" if note else ""),
        "model": model,
        "networks": len(archs),
        "prior_weight": prior_weight,
        "before": error_summary(before, m),
        "after": error_summary(out.predict_many(archs), m),
    }
    if loo is not None:
        out.training_error["leave_one_out"] = error_summary(loo, m)
    return out


def _ridge_lsq(x: np.ndarray, y: np.ndarray, m: np.ndarray, scale: float, weight: float) -> np.ndarray:
    """argmin Σ ((x·β + c − y)/m)² + weight · Σ ((β − prior)·s)² + weight · (c·s_c)² over family factors
    and β ≥ 0 (the columns of ``x``: factors with prior ``scale``, then ms per weight MB with prior 0) and
    a per-network constant ``c`` of either sign (prior 0), returned last.

    The constant stands for what a network pays once that no layer's entry holds, or that every entry
    holds and a network does not: an entry measured alone converts its input and output between layouts,
    a network converts once at each end; the fit made it negative on the local CPU."""
    from scipy.optimize import lsq_linear

    a = np.hstack([x, np.ones((len(y), 1))]) / m[:, None]
    b = y / m
    prior = np.append(np.full(x.shape[1] - 1, scale), [0.0, 0.0])
    # Column scales: moving a parameter from its prior is priced by its column's typical share of a network,
    # so the prior limits the *time* a deviation adds: a family that is a sliver of every network (where
    # the data say little) stays at the scale.
    s = np.sqrt(np.mean(a**2, axis=0)) + 1e-12
    reg = np.sqrt(weight) * np.diag(s)
    lower = np.append(np.zeros(x.shape[1]), -np.inf)
    res = lsq_linear(np.vstack([a, reg]), np.concatenate([b, reg @ prior]), bounds=(lower, np.inf))
    return np.asarray(res.x)
