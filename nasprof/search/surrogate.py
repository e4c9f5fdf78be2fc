"""Surrogates between true accuracy queries: a cheap estimate of the accuracy of networks not asked yet.

``OnlineSurrogate`` refits a ridge regression on the queries a search has made so far (its
``QueriedAccuracy`` cache), on the one-hot encoding of the space's decisions (``nasprof.predictors.
accuracy``). (Products of two decisions' features, 375 more for nb201, ranked held-out NB201 networks
worse from 300 pairs: Kendall τ 0.32 against 0.48 on darcy, 0.59 against 0.64 on CIFAR-100.)
``PredictorSurrogate`` wraps a fitted ``AccuracyPredictor``. Either one is asked through
``Evaluator.screen``, which adds the latency predictor and the constraints, and a strategy (evolution's
``screen``) uses the estimate to choose which children to query.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from nasprof.errors import InputError
from nasprof.search.accuracy import QueriedAccuracy

__all__ = ["OnlineSurrogate", "PredictorSurrogate", "make_surrogate"]

RIDGE_ALPHA = 1.0


class OnlineSurrogate:
    """A ridge fit on the (network, accuracy) pairs a search has queried, refitted when there are new ones.
    Until it has ``min_pairs`` pairs it predicts the mean (no preference)."""

    def __init__(self, space: Any, counter: QueriedAccuracy, *, min_pairs: int = 10,
                 alpha: float = RIDGE_ALPHA) -> None:
        from nasprof.predictors.accuracy import OneHotEncoding

        self.space = getattr(space, "base", space)
        self.counter = counter
        self.encoding = OneHotEncoding.for_space(self.space)
        self.min_pairs = min_pairs
        self.alpha = alpha
        self._fitted_at = -1
        self._coef: NDArray[np.float64] | None = None
        self._mean = 0.0

    def features(self, archs: Sequence[Any]) -> NDArray[np.float64]:
        return self.encoding.encode(self.space, archs)

    def _fit(self) -> None:
        pairs = [(self.counter.members[k], v) for k, v in self.counter.cache.items()
                 if k in self.counter.members and np.isfinite(v)]
        self._fitted_at = self.counter.queries
        if len(pairs) < self.min_pairs:
            self._coef = None
            self._mean = float(np.mean([v for _, v in pairs])) if pairs else 0.0
            return
        x = self.features([a for a, _ in pairs])
        y = np.array([v for _, v in pairs], dtype=np.float64)
        self._mean = float(y.mean())
        xc = x - x.mean(axis=0)
        gram = xc.T @ xc + self.alpha * np.eye(x.shape[1])
        self._coef = np.linalg.solve(gram, xc.T @ (y - self._mean))
        self._center = x.mean(axis=0)

    def predict_many(self, archs: Sequence[Any]) -> NDArray[np.float64]:
        if self._fitted_at != self.counter.queries:
            self._fit()
        if self._coef is None:
            return np.full(len(archs), self._mean)
        return self._mean + (self.features(archs) - self._center) @ self._coef


class PredictorSurrogate:
    """A fitted ``AccuracyPredictor`` as a surrogate."""

    def __init__(self, predictor: Any) -> None:
        self.predictor = predictor

    def predict_many(self, archs: Sequence[Any]) -> NDArray[np.float64]:
        return np.asarray(self.predictor.predict_many(archs), dtype=np.float64)


def make_surrogate(surrogate: Any, space: Any, counter: QueriedAccuracy | None) -> Any:
    """``"online"`` (needs the search's query counter), an ``AccuracyPredictor`` or its file, or any object
    with ``predict_many``."""
    from pathlib import Path

    if isinstance(surrogate, str) and surrogate == "online":
        if counter is None:
            raise InputError("an online surrogate learns from accuracy queries: give --accuracy")
        return OnlineSurrogate(space, counter)
    if isinstance(surrogate, (str, Path)):
        from nasprof.predictors.accuracy import AccuracyPredictor

        p = AccuracyPredictor.load(surrogate)
        p.check_space(getattr(space, "name", None), f"surrogate {surrogate}")
        return PredictorSurrogate(p)
    if hasattr(surrogate, "predict_many"):
        return surrogate
    raise InputError(f"surrogate must be 'online', an accuracy predictor file or object, got {surrogate!r}")
