"""Fitting a ``LutPredictor`` from a latency table (``nasprof predictor fit --table``): the per-call overhead
(given, or measured on the table's device), the optional calibration on sampled architectures, and which
layers of the table's space the table lacks."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from nasprof.predictors.lut.predictor import LutPredictor

__all__ = ["fit_lut_predictor", "missing_layers", "table_overhead_ms"]

Progress = Callable[[int, int, str], None]


def table_overhead_ms(table: str | Path) -> float:
    """The per-call overhead (ms) of a near-empty model on the device a table was measured on, with the
    table's threads and optimisation level."""
    from nasprof.devices import MeasureSpec
    from nasprof.predictors.kernel.measure import measure_overhead
    from nasprof.tables.store import LatencyTable

    meta = LatencyTable.load(table).metadata
    spec = meta.get("measure_spec") or meta.get("spec") or {}
    ms = MeasureSpec(threads=int(spec.get("threads", 1)), opt_level=str(spec.get("opt_level", "all")))
    return measure_overhead(str(meta.get("device", "cpu")), ms)


def fit_lut_predictor(
    table: str | Path,
    *,
    overhead_ms: float | None = None,
    measure_overhead: bool = False,
    calibrate: int = 0,
    calibrate_seed: int = 1000,
    in_network: bool = True,
    progress: Progress | None = None,
) -> LutPredictor:
    """A ``LutPredictor`` of ``table``: ``overhead_ms`` subtracted per entry (``measure_overhead``: measured
    on the table's device instead), then with ``calibrate`` > 0 calibrated on that many sampled
    architectures of its space (seed ``calibrate_seed``) measured end to end on the table's device
    (``calibrate_lut``)."""
    if measure_overhead:
        overhead_ms = table_overhead_ms(table)
    p = LutPredictor.from_table(table, overhead_ms=overhead_ms)
    if calibrate:
        from nasprof.predictors.calibration.rounds import calibrate_lut

        p = calibrate_lut(p, p.device, samples=calibrate, seed=calibrate_seed, in_network=in_network,
                          progress=progress)
    return p


def missing_layers(p: LutPredictor) -> tuple[int, int] | None:
    """``(missing, distinct)``: the distinct layers of the predictor's space at its resolution that its
    table lacks (architectures using them cannot be predicted); None when the predictor names no known
    space."""
    if not p.space or not p.resolution:
        return None
    from nasprof.errors import SpaceError
    from nasprof.space import get_space

    try:
        keys = {layer.key for layer in get_space(p.space).distinct_layers(p.resolution)}
    except SpaceError:  # a table of an unknown or retired space: nothing to compare with
        return None
    return len(keys - set(p.entries)), len(keys)
