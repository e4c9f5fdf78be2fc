"""Learning a device from a few end-to-end measurements (``nasprof predictor adapt``)."""

from nasprof.predictors.adapt.adapt import AdaptReport, adapt, candidate_decompositions, nb201_strings, plan
from nasprof.predictors.adapt.predictor import AdaptedPredictor
from nasprof.predictors.adapt.rewrites import REWRITES, Rewrites, cell_counts

__all__ = [
    "AdaptReport",
    "AdaptedPredictor",
    "REWRITES",
    "Rewrites",
    "adapt",
    "candidate_decompositions",
    "cell_counts",
    "nb201_strings",
    "plan",
]
