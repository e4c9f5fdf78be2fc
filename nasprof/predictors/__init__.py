"""Latency predictors: lookup-table sums (``LutPredictor``) and kernel-level regression (``KernelPredictor``).

``Predictor.load(path)`` reads either kind from its JSON file (never pickle).
"""

from __future__ import annotations

from nasprof.predictors.adapt.predictor import AdaptedPredictor
from nasprof.predictors.base import (
    PREDICTOR_SCHEMA_VERSION,
    Prediction,
    PredictionPart,
    Predictor,
    error_summary,
    load_predictor,
)
from nasprof.predictors.kernel.predictor import KernelPredictor
from nasprof.predictors.lut.predictor import LutPredictor

__all__ = [
    "PREDICTOR_SCHEMA_VERSION",
    "Prediction",
    "PredictionPart",
    "Predictor",
    "AdaptedPredictor",
    "KernelPredictor",
    "LutPredictor",
    "load_predictor",
    "error_summary",
]
