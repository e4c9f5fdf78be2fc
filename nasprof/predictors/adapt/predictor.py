"""``AdaptedPredictor``: a device learned from a few end-to-end measurements (``nasprof predictor adapt``).

Its file holds the decomposition (the NB201 cell graph with the runtime rewrites chosen, or an embedded
source predictor), one weight per column, the per-network constant, the networks it learned from and their
leave-one-out errors: an ordinary predictor file that ``predict``, ``validate`` and ``search`` read.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from nasprof.errors import PredictorError
from nasprof.predictors.adapt.decomposition import Decomposition, decomposition_from_dict
from nasprof.predictors.base import Prediction, PredictionPart, Predictor

__all__ = ["AdaptedPredictor"]


class AdaptedPredictor(Predictor):
    kind = "adapted"

    def __init__(
        self,
        *,
        decomposition: Decomposition,
        intercept_ms: float,
        weights: Sequence[float],
        constant_ms: float | None = None,
        learned_from: Mapping[str, Any] | None = None,
        device: str,
        training_error: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(device=device, training_error=training_error, metadata=metadata)
        self.decomposition = decomposition
        self.intercept_ms = float(intercept_ms)
        self.weights = np.asarray(weights, np.float64)
        if self.weights.shape != (len(decomposition.columns),) or not np.all(np.isfinite(self.weights)):
            raise PredictorError("adapted predictor: one finite weight per decomposition column needed")
        self.constant_ms = None if constant_ms is None else float(constant_ms)
        self.learned_from = dict(learned_from or {})
        measured = [float(v) for v in self.learned_from.get("latencies_ms", []) or []]
        self.floor_ms = 1e-3 * float(np.median(measured)) if measured else 1e-6

    @property
    def space(self) -> str | None:
        return "nb201" if self.decomposition.name == "cell_graph" else self.metadata.get("space")

    @property
    def features(self) -> list[str]:
        return self.decomposition.columns

    # -- prediction -------------------------------------------------------------------------------------
    def predict_many(self, targets: Iterable[Any]) -> np.ndarray:
        items = list(targets)
        if not items:
            return np.zeros(0)
        z = self.decomposition.matrix(items)
        out = self.intercept_ms + z @ self.weights
        if self.constant_ms is not None:
            out = np.where(self.decomposition.constant(items), self.constant_ms, out)
        # A linear fit can go to or below zero far outside the measured networks (a cell of almost no work
        # when the fit's constant came out near zero): floor it at a thousandth of a typical measured
        # network instead of predicting a non-positive time.
        return np.maximum(out, self.floor_ms)

    def explain(self, target: Any) -> Prediction:
        z = self.decomposition.matrix([target])[0]
        if self.constant_ms is not None and bool(self.decomposition.constant([target])[0]):
            return Prediction(self.constant_ms, (PredictionPart("folded to a constant", "constant",
                                                                self.constant_ms, "adapted"),))
        parts = tuple(
            PredictionPart(name, "adapted", float(v * amount), "adapted")
            for name, v, amount in zip(self.features, self.weights, z, strict=True)
            if amount
        )
        total = self.intercept_ms + sum(p.latency_ms for p in parts)
        return Prediction(float(total), parts, overhead_ms=self.intercept_ms)

    def predict(self, target: Any) -> float:
        return float(self.predict_many([target])[0])

    # -- files ------------------------------------------------------------------------------------------
    def _body(self) -> dict[str, Any]:
        return {
            "decomposition": self.decomposition.to_dict(),
            "intercept_ms": self.intercept_ms,
            "weights": [float(v) for v in self.weights],
            "constant_ms": self.constant_ms,
            "learned_from": self.learned_from,
        }

    @classmethod
    def _from_body(cls, body: Mapping[str, Any], header: Mapping[str, Any]) -> AdaptedPredictor:
        return cls(
            decomposition=decomposition_from_dict(body["decomposition"]),
            intercept_ms=float(body["intercept_ms"]),
            weights=[float(v) for v in body["weights"]],
            constant_ms=None if body.get("constant_ms") is None else float(body["constant_ms"]),
            learned_from=body.get("learned_from") or {},
            device=str(header["device"]),
            training_error=header.get("training_error") or {},
            metadata=header.get("metadata") or {},
        )

    def details(self) -> dict[str, str]:
        lf = self.learned_from
        err = self.training_error
        out = {
            "decomposition": self.decomposition.describe(),
            "learned from": f"{lf.get('n', '?')} networks of {lf.get('source', '?')}"
            + (f" ({lf['provenance']})" if lf.get("provenance") else ""),
            "per-network constant": f"{self.intercept_ms:.4g} ms",
            "weights (× source)": ", ".join(
                f"{n} {v / float(lf.get('scale') or 1.0):.3g}" for n, v in zip(self.features, self.weights,
                                                                             strict=True)
            ),
        }
        if "loo_rmspe" in err:
            out["leave-one-out error"] = (
                f"RMSPE {err['loo_rmspe']:.1%} · within ±10% {err.get('loo_within_10pct', 0):.0%} "
                f"(n={lf.get('n', '?')})"
            )
        return out

    def warnings(self) -> list[str]:
        n = int(self.learned_from.get("n", 0) or 0)
        if 0 < n < 2 * (len(self.features) + 1):
            return [f"learned from {n} networks for {len(self.features) + 1} numbers: the prior toward the "
                    "source carries much of it; measure more networks (`predictor adapt --plan`)"]
        return []
