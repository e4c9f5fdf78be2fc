"""``adapt``: a predictor for a device known only by end-to-end latencies of a few networks, and ``plan``:
which networks to measure for it.

Each candidate decomposition (the NB201 cell graph under every runtime-rewrite hypothesis, or a source
predictor's parts) is fitted by ``fit_weights``; the one with the lowest leave-one-out error on the measured
networks wins. Nothing is chosen on networks the user did not measure.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nasprof.errors import PredictorError
from nasprof.predictors.adapt.decomposition import NB201_OPS, CellGraph, Decomposition, SourceParts
from nasprof.predictors.adapt.fit import WeightFit, fit_weights
from nasprof.predictors.adapt.predictor import AdaptedPredictor
from nasprof.predictors.adapt.rewrites import REWRITES

__all__ = ["adapt", "AdaptReport", "candidate_decompositions", "plan", "nb201_strings", "NB201_DEFAULTS"]

NB201_DEFAULTS: dict[str, Any] = {"input": (3, 32, 32), "outputs": 100, "C": 16, "N": 5}


@dataclass(frozen=True)
class AdaptReport:
    predictor: AdaptedPredictor
    #: Per candidate decomposition: its description and leave-one-out RMS log error (the winner first).
    candidates: tuple[tuple[str, float], ...]
    loo_rel: np.ndarray


def nb201_strings() -> list[str]:
    """All 15,625 NAS-Bench-201 cells as standard strings, in genotype order (edge 0 slowest)."""
    out = []
    for ops in itertools.product(NB201_OPS, repeat=6):
        o = ops
        out.append(f"|{o[0]}~0|+|{o[1]}~0|{o[2]}~1|+|{o[3]}~0|{o[4]}~1|{o[5]}~2|")
    return out


def candidate_decompositions(
    source: Any = None, options: Mapping[str, Any] | None = None
) -> list[Decomposition]:
    """The NB201 cell graph under each rewrite hypothesis (no source), or the source's parts."""
    if source is not None:
        return [SourceParts(source)]
    opts = {**NB201_DEFAULTS, **dict(options or {})}
    return [CellGraph(r, opts) for r in REWRITES]


def _fit_one(dec: Decomposition, targets: Sequence[Any], y: np.ndarray) -> tuple[WeightFit, float | None,
                                                                                  np.ndarray]:
    z = dec.matrix(targets)
    const = dec.constant(targets)
    live = ~const
    if live.sum() < 2:
        raise PredictorError(
            f"adapting needs at least 2 measured networks the runtime cannot fold away, got {int(live.sum())}"
        )
    fit = fit_weights(z[live], y[live])
    loo = np.empty(len(y))
    loo[live] = fit.loo_rel
    constant_ms = float(np.median(y[const])) if const.any() else None
    for i in np.flatnonzero(const):
        others = y[const & (np.arange(len(y)) != i)]
        guess = float(np.median(others)) if others.size else float(fit.predict(z[i : i + 1])[0])
        loo[i] = (guess - y[i]) / y[i]
    return fit, constant_ms, loo


def _rmspe(rel: np.ndarray) -> float:
    return float(np.sqrt(np.mean(rel**2))) if np.all(np.isfinite(rel)) else math.inf


def _log_score(rel: np.ndarray) -> float:
    """Root mean square of log(predicted / measured): how hypotheses are compared. Symmetric, so a network
    the runtime folded to almost nothing (measured 0.004 ms, predicted 5 ms by a hypothesis that does not
    fold) counts as strongly as the converse, and one such network cannot hide behind a relative error
    that is bounded below by -100%."""
    if not np.all(np.isfinite(rel)):
        return math.inf
    return float(np.sqrt(np.mean(np.log(np.maximum(1.0 + rel, 1e-6)) ** 2)))


def adapt(
    targets: Sequence[Any],
    latencies_ms: Sequence[float],
    *,
    device: str,
    source: Any = None,
    options: Mapping[str, Any] | None = None,
    learned_from: Mapping[str, Any] | None = None,
) -> AdaptReport:
    """Fit every candidate decomposition to the measured ``targets`` and keep the best by leave-one-out."""
    y = np.asarray(latencies_ms, np.float64)
    if len(targets) != y.size:
        raise PredictorError("need one latency per measured network")
    if y.size < 2:
        raise PredictorError(f"adapting needs at least 2 measured networks, got {y.size}")
    if not np.all(np.isfinite(y)) or np.any(y <= 0):
        raise PredictorError("measured latencies must be finite and positive")
    results = []
    refused: list[str] = []
    for dec in candidate_decompositions(source, options):
        try:
            fit, constant_ms, loo = _fit_one(dec, targets, y)
        except PredictorError as exc:  # e.g. every measured network folds away under this hypothesis
            refused.append(str(exc))
            continue
        results.append((_log_score(loo), dec, fit, constant_ms, loo))
    if not results:
        raise PredictorError(refused[0])
    order = sorted(range(len(results)), key=lambda i: (results[i][0], i))
    _, dec, fit, constant_ms, loo = results[order[0]]
    rmspe = _rmspe(loo)
    finite = loo[np.isfinite(loo)]
    training_error = {
        "n": int(y.size),
        "loo_rmspe": rmspe,
        "loo_within_5pct": float(np.mean(np.abs(finite) <= 0.05)) if finite.size else 0.0,
        "loo_within_10pct": float(np.mean(np.abs(finite) <= 0.10)) if finite.size else 0.0,
        # The spread of leave-one-out errors: what a prediction's interval is built from.
        "loo_rel_quantiles": {q: float(np.quantile(finite, float(q))) for q in ("0.05", "0.5", "0.95")}
        if finite.size else {},
        "ridge_lambda": fit.lam if math.isfinite(fit.lam) else "inf",
    }
    lf = {"n": int(y.size), "scale": fit.scale, **dict(learned_from or {}),
          "networks": [str(t) for t in targets], "latencies_ms": [float(v) for v in y]}
    metadata = {"space": "nb201" if isinstance(dec, CellGraph) else getattr(source, "space", None)}
    predictor = AdaptedPredictor(
        decomposition=dec, intercept_ms=fit.intercept_ms, weights=list(fit.weights), constant_ms=constant_ms,
        learned_from=lf, device=device, training_error=training_error, metadata=metadata,
    )
    cands = tuple((results[i][1].describe(), results[i][0]) for i in order)
    return AdaptReport(predictor, cands, loo)


def plan(
    candidates: Sequence[Any], k: int, decompositions: Sequence[Decomposition], prior_weight: float = 1.0
) -> list[int]:
    """Indices of ``k`` candidates forming a D-optimal design over the decompositions' columns.

    The design is on relative terms (each row divided by its expected size), since the fit weighs errors
    relatively; columns of every rewrite hypothesis are stacked so the chosen networks tell the hypotheses
    apart as well as fix the weights. Greedy: each step takes the network whose row the current design
    knows least (largest ``xᵀ M⁻¹ x``), a standard near-optimal approximation. ``M`` starts from the
    prior (``prior_weight`` networks' worth of information per unit-scaled column, as the fit's ridge toward
    the source has), so a few networks are spread over what matters most instead of chasing extremes.
    Networks any hypothesis folds into a constant are never proposed: their time says nothing about the
    weights.
    """
    if k < 1:
        raise PredictorError(f"--plan needs a positive number of networks, got {k}")
    if k > len(candidates):
        raise PredictorError(f"--plan {k}: the space offers only {len(candidates)} candidate networks")
    usable = ~np.any([d.constant(candidates) for d in decompositions], axis=0)
    index = np.flatnonzero(usable)
    if k > index.size:
        raise PredictorError(f"--plan {k}: the space offers only {index.size} networks worth measuring")
    candidates = [candidates[int(i)] for i in index]
    blocks = [d.matrix(candidates) for d in decompositions]
    total = blocks[0].sum(axis=1)
    size = total + 0.1 * float(np.mean(total)) + 1e-12
    x = np.concatenate([np.ones((len(candidates), 1)), *blocks], axis=1) / size[:, None]
    # Identical columns (hypotheses that agree on a kind) carry no new information.
    _, keep = np.unique(np.round(x / (np.abs(x).max(axis=0) + 1e-300), 12), axis=1, return_index=True)
    x = x[:, np.sort(keep)]
    # No rescaling of columns: an entry is the share of the network's (expected) time in that column, so a
    # kind of work that carries much of the time (3x3 convolutions) is pinned down first.
    minv = np.eye(x.shape[1]) / prior_weight
    chosen: list[int] = []
    taken = np.zeros(len(x), dtype=bool)
    for _ in range(k):
        gain = np.einsum("ij,jk,ik->i", x, minv, x)
        gain[taken] = -np.inf
        i = int(np.argmax(gain))
        chosen.append(i)
        taken[i] = True
        v = minv @ x[i]
        minv -= np.outer(v, v) / (1.0 + x[i] @ v)
    return [int(index[i]) for i in chosen]
