"""The re-weighting fit: per column a weight, shrunk toward one common scale, chosen by leave-one-out.

For networks i with amounts ``z_i`` (one per column) and measured latency ``y_i``, the model is
``y_i ≈ b + Σ_k v_k z_ik``. Errors are relative (the targets are ±5/±10%), so each row is divided by
``y_i``. First a two-number fit (``b`` and one scale ``s`` for all columns: the source's proportions kept);
then ridge toward ``v_k = s`` with strength ``λ``, the deviation of each column priced by the share of a
typical network's time it moves. ``λ`` is chosen by closed-form leave-one-out error (the hat matrix), so the
few measured networks decide how far the target may depart from the source's proportions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from nasprof.errors import PredictorError

__all__ = ["WeightFit", "fit_weights", "LAMBDAS"]

#: Ridge strengths tried; ``inf`` is the two-number fit (the source's proportions kept exactly).
LAMBDAS: tuple[float, ...] = (1e-6, 1e-4, 1e-3, 1e-2, 0.1, 1.0, 10.0, 100.0, math.inf)


@dataclass(frozen=True)
class WeightFit:
    intercept_ms: float
    weights: np.ndarray
    scale: float
    lam: float
    #: Leave-one-out relative errors ((predicted − measured) / measured) of the measured networks.
    loo_rel: np.ndarray

    @property
    def loo_rmspe(self) -> float:
        finite = self.loo_rel[np.isfinite(self.loo_rel)]
        if finite.size < self.loo_rel.size:
            return math.inf
        return float(np.sqrt(np.mean(finite**2))) if finite.size else math.inf

    def predict(self, z: np.ndarray) -> np.ndarray:
        return self.intercept_ms + z @ self.weights


def _solve(a: np.ndarray, penalty: np.ndarray, rhs_prior: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """θ and the hat-matrix diagonal of argmin |aθ − 1|² + (θ − θ0)ᵀ P (θ − θ0) (``rhs_prior`` = P θ0)."""
    # Columns differ by orders of magnitude (multiply-adds beside element counts): solve on unit-norm
    # columns, so the jitter below is the same small ridge for every column.
    norms = np.linalg.norm(a, axis=0)
    norms[norms == 0] = 1.0
    an = a / norms
    gram = an.T @ an + penalty / np.outer(norms, norms)
    # A tiny jitter keeps columns that no measured network has (all zero) from making it singular.
    gram += np.eye(gram.shape[0]) * 1e-10
    inv = np.linalg.pinv(gram)
    theta = inv @ (an.T @ np.ones(a.shape[0]) + rhs_prior / norms) / norms
    hat = np.einsum("ij,jk,ik->i", an, inv, an)
    return theta, hat


def fit_weights(z: np.ndarray, y: np.ndarray, lambdas: tuple[float, ...] = LAMBDAS) -> WeightFit:
    """The best fit over ``lambdas`` by leave-one-out RMSPE (ties: the stronger prior)."""
    z = np.asarray(z, np.float64)
    y = np.asarray(y, np.float64)
    n, d = z.shape
    if n < 2:
        raise PredictorError(f"adapting needs at least 2 measured networks, got {n}")
    if not np.all(np.isfinite(z)):
        raise PredictorError("the decomposition gave a non-finite amount; the source predictor is broken")
    w = 1.0 / y
    total = z.sum(axis=1)
    # Stage 1: b + s * total. Solved in the same relative form.
    a1 = np.c_[np.ones(n), total] * w[:, None]
    (b0, s), hat1 = _solve(a1, np.zeros((2, 2)), np.zeros(2))
    if not s > 0:
        # The measurements do not grow with the source's amounts: keep the proportions, fit the scale only.
        s = float(np.sum(total * y * w**2) / max(np.sum((total * w) ** 2), 1e-300))
        b0 = 0.0
    best: WeightFit | None = None
    for lam in sorted(lambdas, reverse=True):
        if math.isinf(lam):
            r = (a1 @ np.array([b0, s])) - 1.0
            loo = r / np.maximum(1.0 - hat1, 1e-9)
            cand = WeightFit(float(b0), np.full(d, float(s)), float(s), lam, loo)
        else:
            a = np.c_[np.ones(n), z] * w[:, None]
            # Deviation of column k priced by the share of a typical network's time it carries.
            typical = np.maximum(np.mean(z, axis=0), 0.0) / float(np.mean(y))
            # A column no measured network has keeps the prior weight exactly: nothing pulls it elsewhere,
            # and an unpenalised free weight would come out anywhere (a 3x3 convolution at 0 ms).
            typical[typical == 0] = float(np.mean(total)) / float(np.mean(y)) / d
            pen = np.diag(np.r_[0.0, lam * typical**2])
            theta0 = np.r_[0.0, np.full(d, s)]
            theta, hat = _solve(a, pen, pen @ theta0)
            r = a @ theta - 1.0
            loo = r / np.maximum(1.0 - hat, 1e-9)
            cand = WeightFit(float(theta[0]), theta[1:], float(s), lam, loo)
        if best is None or cand.loo_rmspe < best.loo_rmspe - 1e-12:
            best = cand
    assert best is not None
    return best
