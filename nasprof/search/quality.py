"""How good is a design space? TinyNAS's grid of width x resolution, and RegNet's distribution functions.

**Grid quality** (``space_quality``, MCUNet/TinyNAS, Lin et al. 2020): for every (width multiplier,
resolution) cell, sample N models of the space, keep those that satisfy the constraints (a microcontroller's
SRAM and Flash, and/or a latency limit from a lookup-table predictor), and look at the MACs of the models
that fit. "Under the same memory constraint, the space whose fitting models have more computation tends to
give more accurate models": the recommended cell is the one with the highest mean MACs among those where at
least ``min_share`` of the samples fit. Sampling uses integer genotypes and analytic MACs and memory
(``nasprof.space.genotype``, ``nasprof.devices.mcu.analytic``): nothing is exported.

**Distribution functions** (``space_edf``, Radosavovic et al. 2019/2020): the empirical distribution function
of a metric (MACs, parameters, SRAM, predicted latency) over N random models of each of several spaces, side
by side, with the Kolmogorov-Smirnov distance (the largest vertical gap between two EDFs) for every pair.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from nasprof.errors import InputError, PredictorError
from nasprof.search.constraints import MemoryConstraint

__all__ = ["QualityCell", "QualityResult", "space_quality", "EdfResult", "space_edf", "ks_distance",
           "QUALITY_SCHEMA_VERSION", "EDF_METRICS"]

#: History: 1 — first version.
QUALITY_SCHEMA_VERSION = 1
#: Metrics ``space_edf`` can compare.
EDF_METRICS = ("macs", "params", "sram", "latency")
_QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)


@dataclass(frozen=True)
class QualityCell:
    """One (width, resolution) cell: every sampled model's MACs and whether it fits (raw, per model)."""

    width: float
    resolution: int
    macs: NDArray[np.int64]
    fits: NDArray[np.bool_]
    #: Per model, how far it breaks the tightest limit (0 when it fits; 0.25 = 25% over).
    overuse: NDArray[np.float64]
    sram_bytes: NDArray[np.int64] | None = None
    flash_bytes: NDArray[np.int64] | None = None
    latency_ms: NDArray[np.float64] | None = None

    @property
    def sampled(self) -> int:
        return int(self.macs.size)

    @property
    def fit_count(self) -> int:
        return int(self.fits.sum())

    @property
    def share(self) -> float:
        return self.fit_count / self.sampled if self.sampled else 0.0

    @property
    def fitting_macs(self) -> NDArray[np.int64]:
        """MACs of the models that fit, ascending (the x axis of TinyNAS's CDF)."""
        return np.sort(self.macs[self.fits])

    @property
    def mean_macs(self) -> float | None:
        m = self.fitting_macs
        return float(m.mean()) if m.size else None

    def summary(self) -> dict[str, Any]:
        m = self.fitting_macs
        out: dict[str, Any] = {
            "width": self.width,
            "resolution": self.resolution,
            "sampled": self.sampled,
            "fit": self.fit_count,
            "share": self.share,
            "mean_macs": self.mean_macs,
            "macs_quantiles": (
                {f"p{round(q * 100)}": float(np.quantile(m, q)) for q in _QUANTILES} if m.size else None
            ),
            # TinyNAS's CDF: the fitting models' MACs at 101 evenly spaced quantiles.
            "macs_cdf": [float(v) for v in np.quantile(m, np.linspace(0, 1, 101))] if m.size else [],
        }
        if self.fit_count < self.sampled:
            out["least_overuse"] = float(self.overuse.min()) if not self.fit_count else 0.0
        return out


@dataclass(frozen=True, eq=False)
class QualityResult:
    space: str
    n: int
    seed: int
    min_share: float
    cells: tuple[QualityCell, ...]
    constraint: dict[str, Any] | None
    target_ms: float | None
    #: Index into ``cells`` of the recommended cell; None when no cell has ``min_share`` of its models fit.
    recommended: int | None

    @property
    def best(self) -> QualityCell | None:
        return None if self.recommended is None else self.cells[self.recommended]

    def to_dict(self) -> dict[str, Any]:
        best = self.best
        return {
            "schema_version": QUALITY_SCHEMA_VERSION,
            "space": self.space,
            "n": self.n,
            "seed": self.seed,
            "min_share": self.min_share,
            "constraint": self.constraint,
            "target_ms": self.target_ms,
            "recommended": None if best is None else {"width": best.width, "resolution": best.resolution},
            "cells": [c.summary() for c in self.cells],
        }


def _check_grid(widths: Sequence[float], resolutions: Sequence[int]) -> None:
    if not widths or not resolutions:
        raise InputError("give at least one width multiplier (--widths) and one resolution (--resolutions)")
    for w in widths:
        if not (isinstance(w, (int, float)) and math.isfinite(w) and w > 0):
            raise InputError(f"width multipliers must be positive numbers, got {w!r}")


def _check_n(n: int, what: str = "--n") -> None:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise InputError(f"{what} must be a positive number of models, got {n!r}")


def _latency_of(predictors: Sequence[Any], space: Any, codes: Any, resolution: int, width: float) -> Any:
    """Predicted latencies of ``codes`` at one cell, from the predictor recorded for that resolution."""
    from nasprof.predictors.layerwise import Layerwise, predict_codes

    for p in predictors:
        if getattr(p, "resolution", None) == resolution and isinstance(p, Layerwise):
            recorded = getattr(p, "space", None)
            if recorded not in (None, space.name):
                raise PredictorError(f"the predictor for {resolution} px was built for space {recorded!r}, "
                                     f"not {space.name!r}")
            try:
                return predict_codes(p, codes, space.chain_layout(resolution, width))
            except PredictorError as exc:
                if width == 1.0:
                    raise
                # Tables are built from a space's width-1.0 layers: other widths' layers are not in them.
                raise PredictorError(
                    f"the predictor for {resolution} px cannot price width {width:g} ({exc}); latency tables "
                    "hold the layers of width 1.0, so use --widths 1.0 with a lookup-table predictor"
                ) from None
    known = sorted({str(getattr(p, "resolution", "?")) for p in predictors})
    raise PredictorError(
        f"no lookup-table predictor for {resolution} px (given: {', '.join(known) or 'none'}); a latency "
        "limit needs one lookup-table predictor per resolution of the grid, each built at that resolution"
    )


def space_quality(
    space: Any,
    widths: Sequence[float],
    resolutions: Sequence[int],
    *,
    n: int = 1000,
    seed: int = 0,
    device: str | None = None,
    predictors: Sequence[Any] = (),
    target_ms: float | None = None,
    min_share: float = 0.1,
    on_progress: Any = None,
) -> QualityResult:
    """Sample ``n`` models per (width, resolution) cell, check them against the constraints and recommend
    the cell whose fitting models have the highest mean MACs (TinyNAS). ``device``: a microcontroller board
    (SRAM, Flash); ``predictors`` + ``target_ms``: lookup-table predictors (one per resolution) and a latency
    limit. ``InputError`` when no model of any cell fits, naming the closest cell and by how much."""
    if isinstance(space, str):
        from nasprof.space import get_space

        space = get_space(space)
    _check_grid(widths, resolutions)
    _check_n(n)
    if not 0.0 < min_share <= 1.0:
        raise InputError(f"--min-share must be in (0, 1], got {min_share!r}")
    if (target_ms is None) != (not predictors):
        raise InputError("a latency limit needs both --target-ms and --predictor")
    if target_ms is not None and not (math.isfinite(target_ms) and target_ms > 0):
        raise InputError(f"--target-ms must be a positive number of milliseconds, got {target_ms!r}")
    if device is None and target_ms is None:
        raise InputError("give a constraint: a microcontroller --board, or --predictor with --target-ms")
    constraint = MemoryConstraint.for_device(device) if device else None
    gt = space.genotypes()
    cells = []
    grid = [(float(w), int(r)) for w in widths for r in resolutions]
    for i, (w, r) in enumerate(grid):
        space.checked_resolution(r, w)  # a clear error before any work
        codes = gt.sample(n, np.random.default_rng([seed, i]))
        layout = space.chain_layout(r, w)
        macs = layout.macs(codes)
        over = np.zeros(n)
        sram = flash = lat = None
        if constraint is not None:
            archs = gt.decode(codes, r, w)
            sram, flash = constraint.usage(archs)
            ratio = np.maximum(sram / constraint.sram_bytes, flash / constraint.flash_bytes)
            over = np.maximum(over, ratio - 1)
        if target_ms is not None:
            lat = _latency_of(predictors, space, codes, r, w)
            over = np.maximum(over, lat / target_ms - 1)
        over = np.maximum(over, 0.0)
        cells.append(QualityCell(w, r, macs, over == 0.0, over, sram, flash, lat))
        if on_progress is not None:
            on_progress(i + 1, len(grid))
    if not any(c.fit_count for c in cells):
        closest = min(cells, key=lambda c: float(c.overuse.min()))
        raise InputError(
            f"no sampled model of any cell fits; the closest is width {closest.width:g} at "
            f"{closest.resolution} px, whose smallest model is {closest.overuse.min():.0%} over the limit — "
            "try smaller widths or resolutions, or a larger board or target"
        )
    eligible = [i for i, c in enumerate(cells) if c.share >= min_share]
    recommended = max(eligible, key=lambda i: cells[i].mean_macs or 0.0) if eligible else None
    return QualityResult(
        space=str(space.name),
        n=int(n),
        seed=int(seed),
        min_share=float(min_share),
        cells=tuple(cells),
        constraint=None if constraint is None else constraint.to_dict(),
        target_ms=target_ms,
        recommended=recommended,
    )


# -- distribution functions ------------------------------------------------------------------------------
def ks_distance(a: NDArray[np.float64], b: NDArray[np.float64]) -> float:
    """Kolmogorov-Smirnov distance: the largest gap between the two samples' EDFs."""
    a, b = np.sort(np.asarray(a, np.float64)), np.sort(np.asarray(b, np.float64))
    points = np.concatenate([a, b])
    fa = np.searchsorted(a, points, side="right") / a.size
    fb = np.searchsorted(b, points, side="right") / b.size
    return float(np.abs(fa - fb).max())


@dataclass(frozen=True, eq=False)
class EdfResult:
    metric: str
    n: int
    seed: int
    resolution: int | None
    width: float
    #: Per space, the metric of each sampled model (in sampling order).
    values: dict[str, NDArray[np.float64]]

    @property
    def unit(self) -> str:
        return {"macs": "MACs", "params": "parameters", "sram": "bytes", "latency": "ms"}[self.metric]

    def ks(self) -> dict[tuple[str, str], float]:
        names = list(self.values)
        return {(a, b): ks_distance(self.values[a], self.values[b])
                for i, a in enumerate(names) for b in names[i + 1 :]}

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": QUALITY_SCHEMA_VERSION,
            "metric": self.metric,
            "unit": self.unit,
            "n": self.n,
            "seed": self.seed,
            "resolution": self.resolution,
            "width": self.width,
            "spaces": {
                name: {
                    "median": float(np.median(v)),
                    "quantiles": {f"p{round(q * 100)}": float(np.quantile(v, q)) for q in _QUANTILES},
                    "edf": [float(x) for x in np.quantile(v, np.linspace(0, 1, 101))],
                }
                for name, v in self.values.items()
            },
            "ks": [{"a": a, "b": b, "distance": d} for (a, b), d in self.ks().items()],
        }


#: ``space_edf`` prices the sram metric this many models at a time, reporting progress after each batch.
_EDF_BATCH = 10


def space_edf(
    spaces: Sequence[str],
    metric: str = "macs",
    *,
    n: int = 1000,
    seed: int = 0,
    resolution: int | None = None,
    width: float = 1.0,
    device: str | None = None,
    predictors: Sequence[Any] = (),
    progress: Callable[[int, int, str], None] | None = None,
) -> EdfResult:
    """The metric's empirical distribution over ``n`` random models of each space, and pairwise KS distances.
    ``sram`` needs a microcontroller ``device``; ``latency`` a lookup-table predictor per space.

    Every space is checked (known, samplable, at a valid resolution, with its predictor) before any is
    sampled. ``progress(done, total, space)`` reports the models priced so far out of ``n`` per space, and
    the space being priced (as it starts, as it goes, and when it is done)."""
    from nasprof.errors import SpaceError
    from nasprof.space import get_space

    if metric not in EDF_METRICS:
        raise InputError(f"unknown metric {metric!r}: use one of {', '.join(EDF_METRICS)}")
    names = list(dict.fromkeys(spaces))
    if len(names) < 2:
        raise InputError("compare at least two spaces (--spaces a,b)")
    _check_n(n)
    if metric == "sram" and not device:
        raise InputError("the sram metric needs a microcontroller --board (e.g. stm32f746)")
    if metric == "latency" and not predictors:
        raise InputError("the latency metric needs a lookup-table --predictor for each space")
    constraint = MemoryConstraint.for_device(device) if metric == "sram" and device else None
    plan = []
    for name in names:
        space = get_space(name)
        mine = [p for p in predictors if getattr(p, "space", None) == name]
        if metric == "latency" and not mine:
            raise PredictorError(f"no lookup-table predictor for space {name!r} among the --predictor files")
        # A latency EDF is taken where the space's predictor was built, unless a resolution is asked for.
        asked = resolution if resolution is not None or metric != "latency" else mine[0].resolution
        plan.append((name, space, mine, space.checked_resolution(asked, width)))
    total, done = n * len(plan), 0
    layouts = []
    for name, space, _mine, res in plan:
        if progress is not None:  # a space's layers are laid out once, before its first model is priced
            progress(0, total, f"{name}: layers")
        try:
            space.genotypes()
            layouts.append(space.chain_layout(res, width))
        except SpaceError as exc:
            raise InputError(f"space edf cannot sample {name!r}: {exc}") from None
    values: dict[str, NDArray[np.float64]] = {}
    for i, ((name, space, mine, res), layout) in enumerate(zip(plan, layouts, strict=True)):
        if progress is not None:  # the space now being priced, before its first model is
            progress(done, total, name)
        codes = space.genotypes().sample(n, np.random.default_rng([seed, i]))
        if metric == "macs":
            v = layout.macs(codes).astype(np.float64)
        elif metric == "params":
            v = layout.table(lambda layer: layer.params)(codes)[0]
        elif metric == "sram":
            assert constraint is not None
            parts = []
            for start in range(0, n, _EDF_BATCH):  # one model at a time underneath: report as it goes
                batch = space.genotypes().decode(codes[start:start + _EDF_BATCH], res, width)
                parts.append(constraint.usage(batch)[0].astype(np.float64))
                if progress is not None:
                    progress(done + min(n, start + _EDF_BATCH), total, name)
            v = np.concatenate(parts)
        else:
            v = _latency_of(mine, space, codes, res, width)
        values[name] = np.asarray(v, dtype=np.float64)
        done += n
        if progress is not None:
            progress(done, total, name)
    return EdfResult(metric, int(n), int(seed), resolution, float(width), values)
