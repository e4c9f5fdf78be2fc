"""In-network calibration of the kernel predictor on sampled architectures of nasprof's own spaces.

A kernel measured alone runs with hot caches: its weights and activations stay in L1/L2 across the
repeated runs of a one-kernel model. Inside a network they do not, so whole networks run slower than the
sum of their kernels (about 12% on the local x86 CPU for mobile networks), and the gap sits in
memory-bound kernels (depthwise, squeeze-excite, the classifier's Gemm, pooling, layout reorders).
Calibration measures a few sampled architectures end to end and fits, per *calibration group* ``g``, a
factor ``f_g`` on the isolated prediction, one cost ``γ`` per MB of convolution weights (alone they stay
in cache from run to run, in a network they arrive cold, as the lookup tables' ``β``; see
``WEIGHT_GROUPS``), and, with ``per_mb``, a cold-cache cost ``c_g`` per MB moved::

    kernel_ms = s · f_g · isolated_ms + γ · weight MB [+ c_g · MB moved]

(``s``: the device's speed ratio, below) by non-negative least squares on the relative error of the
networks' totals, with a ridge prior pulling ``f_g`` to 1 (``γ`` and ``c_g`` to 0): a group the
calibration networks lack (the memory copies of ShuffleNet, say) keeps its isolated prediction instead of an
arbitrary factor. Compute-bound convolutions (``FIXED_GROUPS``) are never rescaled, but pay ``γ``. The
networks alternate between the ``mnasnet``/``mobilenetv2`` spaces (at several resolutions and widths)
and random networks of the whole block zoo, never the networks it is judged on.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nasprof.errors import PredictorError
from nasprof.predictors.kernel.features import kernel_bytes, weight_bytes
from nasprof.predictors.kernel.kernels import Kernel

__all__ = [
    "GROUPING",
    "FIXED_GROUPS",
    "WEIGHT_GROUPS",
    "weight_mb",
    "Calibration",
    "calibration_group",
    "fit_calibration",
]

#: Name of the grouping rule below; a file fitted with another rule is refused (its groups mean other
#: kernels).
GROUPING = "v2"

Progress = Callable[[int, int, str], None]


#: Groups never rescaled: compute-bound convolutions keep their isolated time. Their weights and inputs
#: are re-read many times per output, so a cold start costs little of the total; on the local CPU the
#: isolated sums of ResNet-18/50 and RepVGG were already within 3% of the whole networks. Fitting a factor
#: for them on mobile-style networks (where they are a minority) turned that into +15-25% on the ResNets.
FIXED_GROUPS = frozenset({"conv"})


def calibration_group(k: Kernel) -> str:
    """The group whose factors apply to ``k``: its type, with convolutions split by what bounds them."""
    if k.type == "conv":
        if len(k.in_shape) >= 3 and k.in_shape[-1] * k.in_shape[-2] == 1:
            return "conv_se"  # squeeze-excite 1×1 on a 1×1 map: a matrix-vector product, weight-bound
        if k.in_shape and k.in_shape[0] < 16:
            return "conv_stem"  # a few input channels, read in the plain (not NCHWc) layout
        return "conv"
    return k.type


#: Calibration groups whose weights the cold-weight cost ``γ`` applies to (the never-rescaled convs too).
#: Not the classifier's Gemm (``fc``): a matrix-vector product reads each weight once, so its isolated
#: time already scales with its weight MB and ``f_fc`` is a cost per MB too. With both, the fit split the
#: classifier's cost between them as the big convs dictated: ``f_fc`` came out 0.85-0.93 (faster in a
#: network than alone) and γ 0.026-0.029 ms/MB, where classifiers measured in-network cost 0.008-0.021 more
#: per MB than alone. mobilenet_v3_small, two-thirds of whose 10 MB of weights are its classifier, was
#: predicted 15-27% slow. Without fc (same measurements, 3 fits): +8 to +17%, ``f_fc`` 0.97-1.01, the
#: calibration's leave-one-out RMSPE 5.4-6.6% (was 6.6-8.0%). Leaving out squeeze-excite's 1×1 convs
#: as well (also matrix-vector products) was worse on the calibration networks in all three.
WEIGHT_GROUPS = frozenset({"conv", "conv_se", "conv_stem", "dwconv"})
#: What γ applied to in files that do not say (fitted before the classifier was taken out).
_LEGACY_WEIGHT_GROUPS = frozenset({"conv", "conv_se", "conv_stem", "dwconv", "fc"})


def weight_mb(k: Kernel, groups: frozenset[str] = WEIGHT_GROUPS) -> float:
    """MB of weights ``k`` reads if its calibration group is one of ``groups``, else 0."""
    return weight_bytes(k) / 1e6 if calibration_group(k) in groups else 0.0


@dataclass(frozen=True, eq=False)
class Calibration:
    """Fitted factors (dimensionless) and cold-cache costs (ms per MB moved) per calibration group."""

    factors: Mapping[str, float]
    ms_per_mb: Mapping[str, float]
    grouping: str = GROUPING
    #: How it was fitted: networks, prior weight, errors before/after (in-sample) and leave-one-out.
    info: Mapping[str, Any] = field(default_factory=dict)
    #: The device's speed while the calibration networks ran, relative to while the kernels were sampled:
    #: median of (anchor kernel now ÷ the same kernel then), measured in the calibration's own rounds. It
    #: scales every kernel, the never-rescaled convs too (see ``measure_calibration_set``).
    speed_ratio: float = 1.0
    #: Cold-weight cost ``γ`` (ms per MB of weights of the ``weight_groups`` kernels); 0 in older files.
    ms_per_weight_mb: float = 0.0
    #: The calibration groups γ applies to, as fitted (older files: ``_LEGACY_WEIGHT_GROUPS``).
    weight_groups: frozenset[str] = WEIGHT_GROUPS

    def adjust(self, k: Kernel, isolated_ms: float) -> float:
        # The speed ratio scales the isolated times only: the costs per MB were fitted in absolute ms.
        g = calibration_group(k)
        return (
            self.speed_ratio * self.factors.get(g, 1.0) * isolated_ms
            + self.ms_per_mb.get(g, 0.0) * kernel_bytes(k) / 1e6
            + self.ms_per_weight_mb * weight_mb(k, self.weight_groups)
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "grouping": self.grouping,
            "factors": dict(sorted(self.factors.items())),
            "ms_per_mb": dict(sorted(self.ms_per_mb.items())),
            "speed_ratio": self.speed_ratio,
            "ms_per_weight_mb": self.ms_per_weight_mb,
            "weight_groups": sorted(self.weight_groups),
            "info": dict(self.info),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Calibration:
        if d.get("grouping") != GROUPING:
            raise PredictorError(
                f"predictor calibration uses grouping {d.get('grouping')!r}, this nasprof knows "
                f"{GROUPING!r}; refit with `nasprof predictor fit --kernels --calibrate N`"
            )
        factors = {str(g): float(v) for g, v in d["factors"].items()}
        per_mb = {str(g): float(v) for g, v in d.get("ms_per_mb", {}).items()}
        speed = d.get("speed_ratio", 1.0)  # absent in files written before speed anchors
        gamma = d.get("ms_per_weight_mb", 0.0)  # absent in files written before the cold-weight cost
        if not all(np.isfinite(v) and v >= 0 for v in (*factors.values(), *per_mb.values())):
            raise PredictorError("predictor calibration has negative or non-finite factors; refit it")
        if not isinstance(speed, (int, float)) or not np.isfinite(speed) or speed <= 0:
            raise PredictorError(f"predictor calibration has speed_ratio {speed!r}; refit it")
        if not isinstance(gamma, (int, float)) or not np.isfinite(gamma) or gamma < 0:
            raise PredictorError(f"predictor calibration has ms_per_weight_mb {gamma!r}; refit it")
        groups = d.get("weight_groups", sorted(_LEGACY_WEIGHT_GROUPS))
        if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
            raise PredictorError(f"predictor calibration has weight_groups {groups!r}; refit it")
        return cls(
            factors, per_mb, GROUPING, dict(d.get("info", {})), float(speed), float(gamma), frozenset(groups)
        )


def _design(
    kernel_sets: Sequence[Sequence[tuple[Kernel, float]]], groups: Sequence[str], per_mb: bool
) -> np.ndarray:
    """Rows: networks; columns: Σ isolated ms per group, then (``per_mb``) Σ MB moved per group."""
    idx = {g: i for i, g in enumerate(groups)}
    g_n = len(groups)
    x = np.zeros((len(kernel_sets), g_n * (2 if per_mb else 1)))
    for r, ks in enumerate(kernel_sets):
        for k, ms in ks:
            c = idx[calibration_group(k)]
            x[r, c] += ms
            if per_mb:
                x[r, g_n + c] += kernel_bytes(k) / 1e6
    return x


def _solve(x: np.ndarray, y: np.ndarray, m: np.ndarray, g_n: int, weight: float) -> np.ndarray:
    """argmin_{β ≥ 0} Σ ((x·β − y)/m)² + weight · Σ ((β − prior)·s)², where the first ``g_n`` columns are
    factors (prior 1) and the rest costs per MB (prior 0)."""
    # For a factor ``s`` = 1: moving a factor from 1 costs the same whatever its group's share, so a group
    # that is a sliver of every network (where the data say little) stays near 1. For a cost per MB ``s`` is
    # the column's typical share of a network, so the prior limits the *time* it adds.
    from scipy.optimize import nnls

    a = x / m[:, None]
    b = y / m
    prior = np.concatenate([np.ones(g_n), np.zeros(a.shape[1] - g_n)])
    scale = np.ones(a.shape[1])
    scale[g_n:] = np.sqrt(np.mean(a[:, g_n:] ** 2, axis=0)) + 1e-12
    reg = np.sqrt(weight) * np.diag(scale)
    sol, _ = nnls(np.vstack([a, reg]), np.concatenate([b, reg @ prior]), maxiter=50 * x.shape[1])
    return sol


def fit_calibration(
    kernel_sets: Sequence[Sequence[tuple[Kernel, float]]],
    measured_ms: Sequence[float],
    overhead_ms: float,
    *,
    prior_weight: float = 0.05,
    per_mb: bool = False,
    names: Sequence[str] | None = None,
    speed_ratio: float = 1.0,
    weight_cost: bool = True,
) -> Calibration:
    """Fit a ``Calibration`` from networks given as (kernel, isolated prediction ms) lists and their
    measured end-to-end latency. Reports the in-sample error before/after and the leave-one-out error.
    ``speed_ratio`` (from ``measure_calibration_set``) first rescales every isolated time to the device's
    speed during the calibration; the factors then describe in-network behaviour alone. ``weight_cost``
    fits the cold-weight cost ``γ`` (ms per MB of weights of the ``WEIGHT_GROUPS``, fixed groups included)."""
    from nasprof.predictors.base import error_summary

    if not math.isfinite(speed_ratio) or speed_ratio <= 0:
        raise PredictorError(f"speed_ratio must be finite and > 0, got {speed_ratio!r}")
    kernel_sets = [[(k, ms * speed_ratio) for k, ms in ks] for ks in kernel_sets]
    m = np.asarray(measured_ms, np.float64)
    if len(kernel_sets) != len(m) or len(m) < 2:
        raise PredictorError("calibration needs one measurement per network, at least two networks")
    if not np.all(np.isfinite(m)) or np.any(m <= overhead_ms):
        raise PredictorError("calibration measurements must be finite and above the per-call overhead")
    groups = sorted({calibration_group(k) for ks in kernel_sets for k, _ in ks} - FIXED_GROUPS)
    fixed_ms = np.array(
        [sum(ms for k, ms in ks if calibration_group(k) in FIXED_GROUPS) for ks in kernel_sets]
    )
    fitted_sets = [
        [(k, ms) for k, ms in ks if calibration_group(k) not in FIXED_GROUPS] for ks in kernel_sets
    ]
    x = _design(fitted_sets, groups, per_mb)
    if weight_cost:
        x = np.column_stack([x, [sum(weight_mb(k) for k, _ in ks) for ks in kernel_sets]])
    y = m - overhead_ms - fixed_ms
    if not groups:
        raise PredictorError("the calibration networks have no kernels of a calibrated group")
    beta = _solve(x, y, m, len(groups), prior_weight)
    before = x[:, : len(groups)].sum(axis=1) + overhead_ms + fixed_ms

    # Leave-one-out: each network predicted by factors fitted on the others (an honest held-out error).
    def held_out(i: int) -> float:
        rest = _solve(np.delete(x, i, 0), np.delete(y, i), np.delete(m, i), len(groups), prior_weight)
        return float(overhead_ms + fixed_ms[i] + x[i] @ rest)

    loo = np.array([held_out(i) for i in range(len(m))])
    g_n = len(groups)
    info: dict[str, Any] = {
        "networks": len(m),
        "prior_weight": prior_weight,
        "model": "f_g * isolated_ms"
        + (" + c_g * MB moved" if per_mb else "")
        + (" + gamma * weight MB" if weight_cost else ""),
        "fixed_groups": sorted(FIXED_GROUPS),
        "speed_ratio": speed_ratio,
        "before": error_summary(before, m),
        "after_in_sample": error_summary(overhead_ms + fixed_ms + x @ beta, m),
        "leave_one_out": error_summary(loo, m),
    }
    if names is not None:
        info["names"] = list(names)
    if info["leave_one_out"]["rmspe"] > info["before"]["rmspe"]:
        # A ridge prior this weak does not hold a dozen terms on a handful of networks: the fit can zero
        # factors outright (2 networks: leave-one-out 280%). Say so rather than refuse: the figures are
        # in the file for anyone to read.
        info["warning"] = (
            f"the leave-one-out error ({info['leave_one_out']['rmspe']:.1%}) is worse than uncalibrated "
            f"({info['before']['rmspe']:.1%}): {len(m)} networks are too few for {x.shape[1]} fitted terms; "
            "calibrate on 20-30"
        )
    return Calibration(
        {g: float(beta[i]) for i, g in enumerate(groups)},
        {g: float(beta[g_n + i]) for i, g in enumerate(groups)} if per_mb else {},
        GROUPING,
        info,
        float(speed_ratio),
        float(beta[-1]) if weight_cost else 0.0,
    )


