"""``KernelPredictor``: latency of any ONNX graph as the sum of per-kernel regressions.

Per kernel type the model is ``ms = base(x) · exp(forest(x))``: ``base`` is a non-negative linear fit on
MACs and bytes moved (it extrapolates sensibly to kernels larger than any sampled), and a random forest
learns the log-ratio that the linear model misses (cache effects, channel alignment, activation cost).
A network's latency is ``overhead_ms`` (one ``session.run`` call) plus the sum over its kernels.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nasprof.errors import InputError, PredictorError
from nasprof.predictors.base import Prediction, PredictionPart, Predictor, error_summary
from nasprof.predictors.forest import TreeEnsemble
from nasprof.predictors.kernel.calibration import Calibration
from nasprof.predictors.kernel.features import (
    FEATURES,
    feature_matrix,
    kernel_bytes,
    kernel_macs,
    multiplicity,
)
from nasprof.predictors.kernel.rules import KernelRules
from nasprof.predictors.kernel.split import DEFAULT_NCHWC_BLOCK, SPLIT_RULES, Kernel, split_kernels

__all__ = ["KernelPredictor", "KernelRegressor", "fit_regressor"]

#: ``KernelRules.note`` of the fallback rules given to a file written before rules were detected.
LEGACY_RULES_NOTE = "file written before kernel rules were detected on devices"
#: Floor for a kernel's isolated latency after subtracting the per-call overhead (timer resolution).
_MIN_KERNEL_MS = 0.0005


@dataclass(frozen=True, eq=False)
class KernelRegressor:
    """The model for one kernel type."""

    intercept_ms: float
    ms_per_mmac: float
    ms_per_mb: float
    forest: TreeEnsemble | None

    def base(self, x: np.ndarray) -> np.ndarray:
        macs, nbytes = x[:, FEATURES.index("macs")], x[:, FEATURES.index("bytes")]
        return self.intercept_ms + self.ms_per_mmac * macs / 1e6 + self.ms_per_mb * nbytes / 1e6

    def predict(self, x: np.ndarray) -> np.ndarray:
        base = self.base(x)
        if self.forest is None:
            return base
        return base * np.exp(self.forest.predict(x))

    def to_dict(self) -> dict[str, Any]:
        return {
            "intercept_ms": self.intercept_ms,
            "ms_per_mmac": self.ms_per_mmac,
            "ms_per_mb": self.ms_per_mb,
            "forest": None if self.forest is None else self.forest.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> KernelRegressor:
        f = d.get("forest")
        return cls(
            float(d["intercept_ms"]),
            float(d["ms_per_mmac"]),
            float(d["ms_per_mb"]),
            None if f is None else TreeEnsemble.from_dict(f),
        )


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


class KernelPredictor(Predictor):
    """Predicts ONNX graphs kernel by kernel; ``regressors`` maps kernel type -> ``KernelRegressor``."""

    kind = "kernel"

    def __init__(
        self,
        regressors: Mapping[str, KernelRegressor],
        *,
        overhead_ms: float,
        rules: KernelRules | None = None,
        opt_level: str = "all",
        calibration: Calibration | None = None,
        anchors: Sequence[tuple[Kernel, float]] = (),
        split_rules: int = SPLIT_RULES,
        **kw: Any,
    ) -> None:
        super().__init__(**kw)
        if not math.isfinite(overhead_ms) or overhead_ms < 0:
            raise PredictorError(f"overhead_ms must be finite and >= 0, got {overhead_ms!r}")
        self.regressors = dict(regressors)
        self.overhead_ms = float(overhead_ms)
        #: What the device executes for a graph (fusions, layout), detected on it when fitted; without it,
        #: the hand-written fallback rules of ``opt_level`` with no layout reorders.
        self.rules = rules if rules is not None else KernelRules.fallback(opt_level)
        #: In-network correction fitted on sampled architectures (None: isolated kernel times summed).
        self.calibration = calibration
        #: (kernel, end-to-end ms when sampled): a few training kernels re-measured during calibration to
        #: tell the device's speed change apart from in-network effects (``measure_calibration_set``).
        self.anchors = tuple(anchors)
        #: ``split.SPLIT_RULES`` when it was fitted (1 in files written before the version was stored).
        self.split_rules = int(split_rules)

    @property
    def opt_level(self) -> str:
        return self.rules.opt_level

    @property
    def reorders(self) -> bool:
        """Whether the device inserts NCHWc layout reorders (x86 CPUs at level "all")."""
        return self.rules.reorders

    @property
    def nchwc_block(self) -> int:
        """Channels per NCHWc block on the device (16 with AVX-512, 8 with AVX2, 0 without the layout)."""
        return self.rules.nchwc_block

    @property
    def refit_reason(self) -> str | None:
        """Why the file should be refitted, if its regressors predate the split's current kernel kinds,
        learned reorder times with the profiler's per-node cost in them, or follow rules that were not
        detected on the device. Such a file still predicts."""
        if self.split_rules < 2:
            unseen = (
                "AveragePool(ceil_mode, count_include_pad) kernels or widths that are not a multiple of 4, "
                "which onnxruntime runs unblocked and slower"
                if self.reorders  # the NCHWc rules matter only where the device inserts reorders (x86 CPUs)
                else "AveragePool(ceil_mode, count_include_pad) as a kernel of its own"
            )
            return (
                f"fitted with kernel-split rules v{self.split_rules} (this nasprof has v{SPLIT_RULES}): its "
                f"regressors never saw {unseen}; refit with `nasprof predictor fit --kernels`"
            )
        if self.reorders and "profiler_node_cost_ms" not in self.metadata:
            return (
                "the layout-reorder times in this file include the profiler's own cost per node (about 2 µs "
                "each, fitted before 2026-11-23), so networks with many small reorders come out high; refit "
                "with `nasprof predictor fit --kernels`"
            )
        if self.rules.note == LEGACY_RULES_NOTE:
            return (
                f"this file predates detected kernel rules: its split follows the hand-written ones "
                f"({self.rules.layout}), which may not be what {self.device!r} runs; refit with "
                "`nasprof predictor fit --kernels` to detect them"
            )
        return None

    def compatibility(self) -> list[str]:
        """Where the device now differs from the one the rules were detected on (another CPU, another
        onnxruntime): one line each. Checked for the local CPU, the one device that can be read without
        running anything."""
        from nasprof.predictors.kernel.rules import local_mismatch

        return local_mismatch(self.rules)

    @property
    def features(self) -> list[str]:
        return list(FEATURES)

    @property
    def kernel_types(self) -> list[str]:
        return sorted(self.regressors)

    def kernels(self, model: str | Path) -> list[Kernel]:
        return split_kernels(model, self.rules)

    def explain(self, target: Any) -> Prediction:
        if not isinstance(target, (str, Path)) or not str(target).endswith(".onnx"):
            raise PredictorError(
                f"a kernel predictor reads ONNX graphs; got {type(target).__name__} {str(target)[:60]!r} "
                "(export the architecture first, or use a lookup-table predictor)"
            )
        return self.explain_kernels(self.kernels(target))

    def explain_kernels(self, kernels: Sequence[Kernel]) -> Prediction:
        cal = self.calibration
        parts: list[PredictionPart | None] = [None] * len(kernels)
        missing: list[str] = []
        by_type: dict[str, list[int]] = {}
        for i, k in enumerate(kernels):
            if k.type == "free":
                parts[i] = PredictionPart(k.name, "free", 0.0, "free")
            elif k.type in self.regressors:
                by_type.setdefault(k.type, []).append(i)
            else:
                missing.append(f"{k.name} ({k.type})")
                parts[i] = PredictionPart(k.name, k.type, 0.0, "missing")
        for t, idx in by_type.items():
            group = [kernels[i] for i in idx]
            ms = self.regressors[t].predict(feature_matrix(group)) * multiplicity(group)
            for i, v in zip(idx, ms, strict=True):
                v = float(v) if cal is None else cal.adjust(kernels[i], float(v))
                parts[i] = PredictionPart(kernels[i].name, t, v, "regression")
        done = tuple(p for p in parts if p is not None)
        total = self.overhead_ms + sum(p.latency_ms for p in done)
        return Prediction(total, done, overhead_ms=self.overhead_ms, missing=tuple(missing))

    def isolated(self, kernels: Sequence[Kernel]) -> list[tuple[Kernel, float]]:
        """(kernel, isolated prediction ms) for every kernel a regressor covers, without calibration."""
        plain = self.with_calibration(None)
        return [
            (k, p.latency_ms)
            for k, p in zip(
                [k for k in kernels if k.type != "free"],
                [p for p in plain.explain_kernels(kernels).parts if p.kind != "free"],
                strict=True,
            )
            if p.source == "regression"
        ]

    def with_calibration(self, calibration: Calibration | None) -> KernelPredictor:
        """A copy with ``calibration`` (None: the isolated sum)."""
        info = dict(self.training_error)
        info.pop("calibration", None)
        if calibration is not None:
            info["calibration"] = dict(calibration.info)
        return KernelPredictor(
            self.regressors,
            overhead_ms=self.overhead_ms,
            rules=self.rules,
            calibration=calibration,
            anchors=self.anchors,
            split_rules=self.split_rules,
            device=self.device,
            measure_spec=self.measure_spec,
            training_error=info,
            metadata=self.metadata,
        )

    def calibrate(
        self,
        networks: Sequence[str | Path | Sequence[Kernel]],
        measured_ms: Sequence[float],
        *,
        prior_weight: float = 0.05,
        per_mb: bool = False,
        names: Sequence[str] | None = None,
        speed_ratio: float = 1.0,
        weight_cost: bool = True,
    ) -> KernelPredictor:
        """A copy calibrated on these networks (ONNX paths or kernel lists) measured end to end; see
        ``nasprof.predictors.kernel.calibration``. Use networks other than those you validate on.
        ``speed_ratio`` comes from ``measure_calibration_set`` with this predictor's ``anchors``."""
        from nasprof.predictors.kernel.calibration import fit_calibration

        sets = [self.isolated(n if not isinstance(n, (str, Path)) else self.kernels(n)) for n in networks]
        cal = fit_calibration(
            sets, measured_ms, self.overhead_ms, prior_weight=prior_weight, per_mb=per_mb, names=names,
            speed_ratio=speed_ratio, weight_cost=weight_cost,
        )
        return self.with_calibration(cal)

    # -- training ---------------------------------------------------------------------------------------
    @classmethod
    def fit(
        cls,
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
        from nasprof.predictors.kernel import sampling as ks

        if calibrate == 1 or calibrate < 0:  # checked before spending the kernel budget
            raise InputError(f"--calibrate needs at least 2 architectures, got {calibrate}")
        if budget < len(ks.BUDGET_SHARES):
            raise PredictorError(f"--budget {budget} is too small: use at least {len(ks.BUDGET_SHARES)}")
        spec = spec or MeasureSpec(threads=1, warmup=5, runs=25, sessions=1)
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
        counts = {t: max(1, int(first * share)) for t, share in ks.BUDGET_SHARES.items()}
        while sum(counts.values()) > budget:  # tiny budgets: take from the largest share first
            counts[max(counts, key=counts.__getitem__)] -= 1
        configs = [k for t, n in counts.items() for k in ks.sample_kernels(t, n, rng, rules.nchwc_block)]
        samples = ks.measure_kernels(configs, device, spec, progress=progress, total=budget)
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
            extra = [ks.resample_around(bad[i % len(bad)], rng) for i in range(remaining)]
            samples += ks.measure_kernels(
                extra, device, spec, progress=progress, done_before=len(samples), total=budget
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
        fitted = cls(
            regressors,
            overhead_ms=overhead,
            rules=rules,
            anchors=pick_anchors(samples, np.random.default_rng([seed, 2])),
            device=device,
            measure_spec=_spec_dict(spec),
            training_error={"method": "out-of-bag", "per_type": training},
            metadata={
                "budget": budget,
                "seed": seed,
                "samples": counts,
                "reorder_samples": len(reorders),
                "profiler_node_cost_ms": node_cost,
            },
        )
        if calibrate <= 0:
            return fitted
        from nasprof.predictors.kernel.calibration import (
            calibration_archs,
            measure_calibration_set,
            network_name,
        )

        archs = calibration_archs(calibrate, calibrate_seed)
        # The end-to-end reference pools several fresh sessions: one session's placement is 2-4% off.
        cspec = calibrate_spec or dataclasses.replace(spec, warmup=10, runs=30, sessions=6, per_node=False)
        kernel_sets, measured, speed, _ = measure_calibration_set(
            archs, fitted.kernels, device, cspec, progress=progress, anchors=fitted.anchors
        )
        out = fitted.calibrate(
            kernel_sets, measured, names=[network_name(a) for a in archs], speed_ratio=speed,
            weight_cost=weight_cost,
        )
        out.metadata["calibration"] = {"archs": calibrate, "seed": calibrate_seed, "spec": _spec_dict(cspec)}
        return out

    # -- files ------------------------------------------------------------------------------------------
    def _body(self) -> dict[str, Any]:
        return {
            "overhead_ms": self.overhead_ms,
            "rules": self.rules.to_dict(),
            "regressors": {t: r.to_dict() for t, r in sorted(self.regressors.items())},
            "calibration": None if self.calibration is None else self.calibration.to_dict(),
            "anchors": [{"kernel": dataclasses.asdict(k), "e2e_ms": ms} for k, ms in self.anchors],
            "split_rules": self.split_rules,
        }

    @classmethod
    def _from_body(cls, body: Mapping[str, Any], header: Mapping[str, Any]) -> KernelPredictor:
        if list(header.get("features", [])) != list(FEATURES):
            raise PredictorError(
                "predictor file was fitted on other kernel features than this nasprof computes; refit it"
            )
        regs = {str(t): KernelRegressor.from_dict(d) for t, d in body["regressors"].items()}
        cal = body.get("calibration")  # absent in files written before calibration existed
        try:  # absent in files written before speed anchors: calibrating them assumes a steady device
            anchors = [(_kernel_from_dict(a["kernel"]), float(a["e2e_ms"])) for a in body.get("anchors", [])]
        except (KeyError, TypeError, ValueError) as exc:
            raise PredictorError(f"predictor file has a corrupt anchor kernel: {exc}; refit it") from None
        return cls(
            regs,
            overhead_ms=float(body["overhead_ms"]),
            rules=_rules_of(body),
            calibration=None if cal is None else Calibration.from_dict(cal),
            anchors=anchors,
            split_rules=_split_rules(body.get("split_rules", 1)),  # absent before the rules were versioned
            device=str(header["device"]),
            measure_spec=header.get("measure_spec"),
            training_error=header.get("training_error"),
            metadata=header.get("metadata"),
        )


def _split_rules(v: Any) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or v < 1:
        raise PredictorError(f"predictor file has split_rules {v!r}; refit it")
    if v > SPLIT_RULES:
        raise PredictorError(
            f"predictor file was fitted with kernel-split rules v{v}, newer than this nasprof's "
            f"v{SPLIT_RULES}; upgrade nasprof"
        )
    return v


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


def _rules_of(body: Mapping[str, Any]) -> KernelRules:
    """The file's rules; files written before the rules were probed carry the level, whether the device
    inserted reorders and (later) its block, which the fallback rules take."""
    if "rules" in body:
        return KernelRules.from_dict(body["rules"])
    block = int(body.get("nchwc_block", DEFAULT_NCHWC_BLOCK)) if body.get("reorders", False) else 0
    return KernelRules.fallback(str(body["opt_level"]), block, note=LEGACY_RULES_NOTE)


def _kernel_from_dict(d: Mapping[str, Any]) -> Kernel:
    tuples = ("covers", "in_shape", "out_shape", "inputs")
    fields = {f.name for f in dataclasses.fields(Kernel)}
    args: dict[str, Any] = {k: (tuple(v) if k in tuples else v) for k, v in d.items() if k in fields}
    return Kernel(**args)


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


def kernel_summary(kernels: Sequence[Kernel]) -> list[dict[str, Any]]:
    """Kernels as rows (for ``--json`` output and debugging)."""
    return [
        {
            "name": k.name,
            "type": k.type,
            "covers": list(k.covers),
            "in_shape": list(k.in_shape),
            "out_shape": list(k.out_shape),
            "macs": kernel_macs(k),
            "bytes": kernel_bytes(k),
        }
        for k in kernels
    ]
