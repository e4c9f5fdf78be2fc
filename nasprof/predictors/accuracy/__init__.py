"""Accuracy predictors: accuracy (or any metric) of a space's architectures learned from a few hundred
(architecture, accuracy) pairs on the one-hot encoding of their decisions (``nasprof predictor fit
--accuracy``). Stored as plain JSON (``nasprof.accuracy_predictor``), never pickled."""

from nasprof.predictors.accuracy.fit import fit_accuracy_predictor
from nasprof.predictors.accuracy.predictor import (
    ACCURACY_PREDICTOR_FORMAT,
    ACCURACY_PREDICTOR_SCHEMA_VERSION,
    AccuracyPredictor,
    OneHotEncoding,
)

__all__ = [
    "ACCURACY_PREDICTOR_FORMAT",
    "ACCURACY_PREDICTOR_SCHEMA_VERSION",
    "AccuracyPredictor",
    "OneHotEncoding",
    "fit_accuracy_predictor",
]
