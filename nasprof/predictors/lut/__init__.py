"""The lookup-table predictor: a network's latency as the sum of its layers' table entries, calibrated
per layer family, per MB of weights and per network (``in_network``)."""

from __future__ import annotations

from nasprof.predictors.lut.predictor import LutPredictor

__all__ = ["LutPredictor"]
