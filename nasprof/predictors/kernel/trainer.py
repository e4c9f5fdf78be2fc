"""Fit a ``KernelPredictor`` by measuring a device: probe its kernel rules, sample kernel configurations
shaped like mobile CNNs, measure each as a one-kernel model, fit one regressor per kernel type (adaptive
sampling spends a quarter of the budget near the worst out-of-bag errors), then optionally calibrate on
sampled networks measured end to end. The predictor class itself only loads, predicts, explains and saves.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from nasprof.errors import InputError, PredictorError
from nasprof.predictors.base import error_summary
from nasprof.predictors.forest import TreeEnsemble
from nasprof.predictors.kernel.features import FEATURES, coverage_key, feature_matrix, multiplicity
from nasprof.predictors.kernel.kernels import Kernel
from nasprof.predictors.kernel.predictor import _MIN_KERNEL_MS, KernelPredictor, KernelRegressor
from nasprof.predictors.kernel.rules import KernelRules

if TYPE_CHECKING:
    from nasprof.profiler.spec import MeasureSpec

__all__ = ["fit_kernel_predictor", "fit_regressor", "kernel_spec", "pick_anchors", "ANCHORS"]


def kernel_spec(*, threads: int = 1, runs: int = 25, opt_level: str = "all", seed: int = 0) -> MeasureSpec:
    """The settings every sampled kernel is measured with: 5 warm-up runs, ``runs`` timed runs, one
    session (a ``MeasureSpec``)."""
    from nasprof.devices import MeasureSpec

    return MeasureSpec(threads=threads, warmup=5, runs=runs, sessions=1, opt_level=opt_level, seed=seed)


def fit_kernel_predictor(
    device: str = "cpu",
    *,
    budget: int = 1500,
    spec: Any = None,
    seed: int = 0,
    adaptive_share: float = 0.25,
    n_estimators: int = 100,
    progress: Any = None,
    calibrate: int = 0,
    calibrate_seed: int = 1000,
    calibrate_spec: Any = None,
    weight_cost: bool = True,
    rules: KernelRules | None = None,
    ) -> KernelPredictor:
    """Sample kernel configurations, measure them on ``device``, fit one regressor per kernel type.

    ``budget`` counts measurements; ``adaptive_share`` of it goes to configurations near the ones the
    first fit predicts worst (out-of-bag error > 10%). ``progress(done, total, what)`` is called after
    each measurement. ``calibrate`` > 0 then measures that many sampled architectures of the
    ``mnasnet``/``mobilenetv2`` spaces end to end (``calibrate_spec``, 6 sessions by default) and fits
    the in-network correction on them (see ``calibration``); ``weight_cost`` fits its cold-weight
    cost γ (on by default: it predicts networks like the calibration networks better, and the presets
    too since γ left the classifier out: ≥ 90% within ±10% in 6 of 6 runs with it, 4 of 6 without).
    ``rules``: what the device executes; probed on ``device`` first when not given (a few seconds).
    """
    from nasprof.devices import MeasureSpec
    from nasprof.predictors.kernel import measure as ks
    from nasprof.predictors.kernel import sampling

    if calibrate == 1 or calibrate < 0:  # checked before spending the kernel budget
        raise InputError(f"--calibrate needs at least 2 architectures, got {calibrate}")
    if budget < len(sampling.BUDGET_SHARES):
        raise PredictorError(f"--budget {budget} is too small: use at least {len(sampling.BUDGET_SHARES)}")
    spec = spec or MeasureSpec(threads=1, warmup=5, runs=25, sessions=1)
    # Several interchangeable devices ("pixel-a,pixel-b") share the kernel budget; the rules, the per-call
    # overhead and the calibration networks are measured on the first, which names the predictor.
    names = _comparable_devices(device, spec)
    device = names[0]
    if rules is None:
        from nasprof.predictors.kernel.probe import probe_rules

        rules = probe_rules(device, opt_level=spec.opt_level, threads=spec.threads).rules
    elif rules.opt_level != spec.opt_level:
        raise PredictorError(
            f"the kernel rules were detected at level {rules.opt_level!r}, the samples would be measured "
            f"at {spec.opt_level!r}; probe the device at the level you fit"
        )
    rng = np.random.default_rng(seed)
    overhead = ks.measure_overhead(device, spec)
    first = int(budget * (1 - adaptive_share))
    counts = {t: max(1, int(first * share)) for t, share in sampling.BUDGET_SHARES.items()}
    while sum(counts.values()) > budget:  # tiny budgets: take from the largest share first
        counts[max(counts, key=counts.__getitem__)] -= 1
    configs = [k for t, n in counts.items() for k in sampling.sample_kernels(t, n, rng, rules.nchwc_block)]
    left: dict[str, str] = {}  # devices that vanished: later steps measure on one still there
    samples = ks.measure_kernels(configs, ",".join(names), spec, progress=progress, total=budget, left=left)
    remaining = budget - len(samples)
    if remaining > 0:  # adaptive round: spend the rest where the out-of-bag error is large
        bad: list[Kernel] = []
        node_cost = ks.profiler_node_cost(samples, overhead)
        for group in _by_type(samples).values():
            _, y, oob = _fit_group(group, overhead, node_cost, n_estimators=30, seed=seed)
            rel = np.abs(oob - y) / y
            bad += [group[i].kernel for i in np.argsort(-rel) if rel[i] > 0.10]
        if not bad:  # everything already within 10%: spread the rest like the first round
            bad = [s.kernel for s in samples]
        extra = [sampling.resample_around(bad[i % len(bad)], rng) for i in range(remaining)]
        samples += ks.measure_kernels(
            extra, ",".join(n for n in names if n not in left), spec, progress=progress,
            done_before=len(samples), total=budget, left=left,
        )
    regressors: dict[str, KernelRegressor] = {}
    training: dict[str, Any] = {}
    # The profiler adds a few µs to every node it times: taken off before a profiled pass is split
    # between a kernel and its reorders (``KernelSample.reorder_times``).
    node_cost = ks.profiler_node_cost(samples, overhead)
    for t, group in _by_type(samples).items():
        reg, y, oob = _fit_group(group, overhead, node_cost, n_estimators=n_estimators, seed=seed)
        regressors[t] = reg
        # Judged on the one-kernel models' end-to-end latency (what was measured), out-of-bag.
        e2e = np.array([s.e2e_ms for s in group])
        training[t] = error_summary(e2e - y + oob, e2e)
    reorders = [
        (k, ms)
        for s in samples
        for (k, _), ms in zip(s.reorders, s.reorder_times(overhead, node_cost), strict=True)
    ]
    if len(reorders) >= 2:
        rx = feature_matrix([k for k, _ in reorders])
        ry = np.maximum(np.array([ms for _, ms in reorders]), _MIN_KERNEL_MS)
        regressors["reorder"], oob = fit_regressor(rx, ry, n_estimators=n_estimators, seed=seed)
        training["reorder"] = {
            **error_summary(oob, ry),
            "source": "profiled reorder nodes, the profiler's cost per node taken off",
        }
    counts = {t: len(g) for t, g in _by_type(samples).items()}
    fitted = KernelPredictor(
        regressors,
        overhead_ms=overhead,
        rules=rules,
        anchors=pick_anchors(samples, np.random.default_rng([seed, 2])),
        covered=_covered(samples, regressors),
        device=device,
        measure_spec=_spec_dict(spec),
        training_error={"method": "out-of-bag", "per_type": training},
        metadata={
            "budget": budget,
            "seed": seed,
            "samples": counts,
            "reorder_samples": len(reorders),
            "devices": names,
            "samples_by_device": {n: sum(s.measured_on == n for s in samples) for n in names},
            "profiler_node_cost_ms": node_cost,
        },
    )
    if calibrate <= 0:
        return fitted
    from nasprof.predictors.calibration.rounds import (
        calibration_archs,
        measure_calibration_set,
        network_name,
    )

    archs = calibration_archs(calibrate, calibrate_seed)
    # The end-to-end reference pools several fresh sessions: one session's placement is 2-4% off.
    cspec = calibrate_spec or dataclasses.replace(spec, warmup=10, runs=30, sessions=6, per_node=False)
    on = next(n for n in names if n not in left)
    kernel_sets, measured, speed, _ = measure_calibration_set(
        archs, fitted.kernels, on, cspec, progress=progress, anchors=fitted.anchors
    )
    out = fitted.calibrate(
        kernel_sets, measured, names=[network_name(a) for a in archs], speed_ratio=speed,
        weight_cost=weight_cost,
    )
    out.metadata["calibration"] = {"archs": calibrate, "seed": calibrate_seed, "spec": _spec_dict(cspec)}
    return out


def _comparable_devices(device: str, spec: Any) -> list[str]:
    """The device names of ``device`` (one, or several sharing the samples), refused when they differ."""
    from nasprof.devices import get_devices
    from nasprof.tables.compat import check_comparable

    backends = get_devices(device)
    if len(backends) > 1:
        check_comparable(backends, spec, force=None,
                         what="one kernel predictor learns one device type: give devices of one model")
    return [b.device for b in backends]


def fit_regressor(
    x: np.ndarray, y_ms: np.ndarray, *, n_estimators: int = 100, seed: int = 0
) -> tuple[KernelRegressor, np.ndarray]:
    """Fit one kernel type; returns the regressor and out-of-bag predictions (ms) for each sample."""
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.linear_model import LinearRegression

    from nasprof.predictors.forest import forest_to_dict

    x = np.asarray(x, np.float64)
    y = np.maximum(np.asarray(y_ms, np.float64), _MIN_KERNEL_MS)
    lin_x = np.column_stack([x[:, FEATURES.index("macs")] / 1e6, x[:, FEATURES.index("bytes")] / 1e6])
    # Weighted by 1/y so small kernels count as much as large ones (we care about relative error).
    lin = LinearRegression(positive=True).fit(lin_x, y, sample_weight=1.0 / y)
    intercept = max(float(lin.intercept_), _MIN_KERNEL_MS)
    reg = KernelRegressor(intercept, float(lin.coef_[0]), float(lin.coef_[1]), None)
    base = reg.base(x)
    if len(y) < 8:  # too few samples for a forest to beat the linear model
        return reg, base
    target = np.log(y / base)
    rf = RandomForestRegressor(
        n_estimators=n_estimators,
        min_samples_leaf=2,
        max_features=0.6,
        oob_score=True,
        random_state=seed,
        n_jobs=1,
    )
    with warnings.catch_warnings():
        # Few samples leave some rows without out-of-bag trees; those get a 0 log-ratio (the linear base).
        warnings.simplefilter("ignore", UserWarning)
        rf.fit(x, target)
    forest = TreeEnsemble.from_dict(forest_to_dict(rf))
    oob = np.nan_to_num(np.asarray(rf.oob_prediction_, np.float64).ravel())
    return KernelRegressor(reg.intercept_ms, reg.ms_per_mmac, reg.ms_per_mb, forest), base * np.exp(oob)


#: Anchor kernels kept per predictor, and the end-to-end range they are drawn from: long enough that the
#: timer and per-call overhead do not dominate, short enough to cost little in every calibration round.
ANCHORS = 24
_ANCHOR_MS = (0.03, 2.0)


def pick_anchors(
    samples: Sequence[Any], rng: np.random.Generator, n: int = ANCHORS
) -> list[tuple[Kernel, float]]:
    """``n`` training samples (kernel, end-to-end ms) spread over the kernel types in proportion to the
    samples, preferring end-to-end times in ``_ANCHOR_MS``."""
    pool = [s for s in samples if _ANCHOR_MS[0] <= s.e2e_ms <= _ANCHOR_MS[1]] or list(samples)
    if not pool:
        return []
    idx = rng.choice(len(pool), size=min(n, len(pool)), replace=False)
    return [(pool[i].kernel, float(pool[i].e2e_ms)) for i in sorted(idx)]


def _covered(samples: Sequence[Any], regressors: Mapping[str, Any]) -> dict[str, list[str]]:
    """Kernel type -> the variants (``coverage_key``) its samples had: the predictor refuses others rather
    than extrapolate a regressor to an op it never timed."""
    out: dict[str, set[str]] = {t: set() for t in regressors}
    for s in samples:
        if s.kernel.type in out:
            out[s.kernel.type].add(coverage_key(s.kernel))
    if "reorder" in out:
        # Reorder samples come from the profiled passes around sampled kernels, not from ``samples``' own
        # kernels; their variants differ only in direction, which the shapes tell apart.
        out["reorder"] = {""}
    return {t: sorted(v) for t, v in out.items()}


def _by_type(samples: Sequence[Any]) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for s in samples:
        out.setdefault(s.kernel.type, []).append(s)
    return out


def _fit_group(
    group: Sequence[Any], overhead_ms: float, node_cost_ms: float, *, n_estimators: int, seed: int
) -> tuple[KernelRegressor, np.ndarray, np.ndarray]:
    """Fit one kernel type's samples: (regressor, each sample's own ms, its out-of-bag prediction ms).
    The regressor sees one group of a grouped conv (``per_group``); times are scaled back to the kernel."""
    kernels = [s.kernel for s in group]
    y, mult = _kernel_ms(group, overhead_ms, node_cost_ms), multiplicity(kernels)
    reg, oob = fit_regressor(feature_matrix(kernels), y / mult, n_estimators=n_estimators, seed=seed)
    return reg, y, oob * mult


def _kernel_ms(group: Sequence[Any], overhead_ms: float, node_cost_ms: float) -> np.ndarray:
    """A kernel's own time: end-to-end without the per-call overhead and the layout reorders around it
    (``KernelSample.own_ms``)."""
    return np.maximum(np.array([s.own_ms(overhead_ms, node_cost_ms) for s in group]), _MIN_KERNEL_MS)


def _spec_dict(spec: Any) -> dict[str, Any]:
    return {
        "threads": spec.threads,
        "warmup": spec.warmup,
        "runs": spec.runs,
        "sessions": spec.sessions,
        "opt_level": spec.opt_level,
    }
