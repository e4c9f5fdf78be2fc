"""Calibrating a ``LutPredictor`` on a device: sample architectures of its space, measure them end to end
in interleaved rounds (and profile each once for the in-network ratios), and fit the predictor's family
factors, cost per MB of weights and per-network constant on them (``LutPredictor.calibrate``)."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from nasprof.errors import InputError, PredictorError
from nasprof.space.layer import priced_layers

__all__ = ["calibrate_lut", "calibrate_on_measured", "lut_calibration_archs"]

Progress = Callable[[int, int, str], None]


def calibrate_on_measured(
    predictor: Any,
    archs: Sequence[Any],
    measured: Sequence[Any],
    paths: Sequence[Path],
    backend: Any,
    spec: Any,
    in_network: bool,
    progress: Progress | None,
) -> Any:
    """``predictor.calibrate`` on calibration networks already measured end to end (``measured``:
    ``Measurement`` objects, one per path). With ``in_network``, each network first gets one profiled pass
    for the in-network ratios; a device without per-node times calibrates without them, and the training
    error says so."""
    from nasprof.predictors.lut.in_network import profile_networks

    profiles = profile_networks(paths, backend, spec, progress=progress) if in_network else None
    out = predictor.calibrate(archs, [m.median_ms for m in measured], profiles=profiles)
    if in_network and profiles is None:
        out.training_error["in_network"] = "skipped: the device gives no per-node times"
    return out


def lut_calibration_archs(predictor: Any, samples: int, seed: int) -> list[Any]:
    """``samples`` architectures of a LUT predictor's space at its resolution, minus those with a layer the
    table lacks; ``PredictorError`` if none is left."""
    from nasprof.space import get_space

    if predictor.kind != "lut" or not predictor.space:
        raise PredictorError(
            "only a lookup-table predictor that knows its space (fitted from a table `nasprof table build` "
            "made) is calibrated this way; calibrate a kernel predictor with `nasprof predictor fit "
            "--kernels --calibrate N` or `nasprof validate --calibrate N`"
        )
    if samples < 1:
        raise InputError(f"--calibrate must be at least 1, got {samples}")
    archs = get_space(predictor.space).sample(samples, seed=seed, resolution=predictor.resolution)
    usable = [a for a in archs if all(layer.key in predictor.entries for layer in priced_layers(a.layers()))]
    if not usable:
        raise PredictorError(f"none of {samples} sampled architectures is fully in the table; build it first")
    return usable


def calibrate_lut(
    predictor: Any,
    device: str,
    *,
    samples: int = 10,
    seed: int = 1000,
    spec: Any = None,
    in_network: bool = True,
    progress: Progress | None = None,
) -> Any:
    """Calibrate a ``LutPredictor`` (``LutPredictor.calibrate``: per-family factors and a cost per MB of
    weights, or a single scale with fewer than ~20 networks) on ``samples`` architectures of its space,
    measured end to end in interleaved rounds.

    The seed defaults to 1000 so calibration architectures differ from a validation run's (seed 0).
    Architectures with layers the table lacks are skipped; ``PredictorError`` if none is left.
    With ``in_network`` (default) each network is also profiled once and the predictor first learns an
    in-network ratio per table key (``LutPredictor.learn_layer_ratios``).
    """
    from nasprof.devices import get_device
    from nasprof.profiler.interleave import measure_interleaved
    from nasprof.space import export_many

    usable = lut_calibration_archs(predictor, samples, seed)
    backend = get_device(device)
    backend.ensure_available()
    from nasprof.predictors.validation import validation_spec

    spec = spec or validation_spec(predictor)
    with tempfile.TemporaryDirectory(prefix="nasprof-calibrate-") as tmp:
        paths = export_many(usable, tmp)
        ms = measure_interleaved(backend, paths, spec, seed=seed, progress=progress)
        return calibrate_on_measured(predictor, usable, ms, paths, backend, spec, in_network, progress)
