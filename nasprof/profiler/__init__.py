"""Timing, statistics and profile parsing (backend-independent parts)."""

from nasprof.profiler.measurement import MEASUREMENT_SCHEMA_VERSION, Measurement, NodeTime
from nasprof.profiler.stats import SampleStats, stability_warnings

__all__ = ["Measurement", "NodeTime", "MEASUREMENT_SCHEMA_VERSION", "SampleStats", "stability_warnings"]
