"""``KernelPredictor``: latency of an ONNX graph as the sum of per-kernel regressions (loading, predicting,
explaining, saving; fitting one by measuring a device is ``nasprof.predictors.kernel.trainer``).

Per kernel type the model is ``ms = base(x) · exp(forest(x))``: ``base`` is a non-negative linear fit on
MACs and bytes moved (it extrapolates sensibly to kernels larger than any sampled), and a random forest
learns the log-ratio that the linear model misses (cache effects, channel alignment, activation cost).
A network's latency is ``overhead_ms`` (one ``session.run`` call) plus the sum over its kernels.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nasprof.errors import PredictorError
from nasprof.predictors.base import Prediction, PredictionPart, Predictor
from nasprof.predictors.calibration.kernel import Calibration
from nasprof.predictors.forest import ForestBank, TreeEnsemble
from nasprof.predictors.kernel.features import (
    FEATURES,
    coverage_key,
    feature_matrix,
    kernel_bytes,
    kernel_macs,
    multiplicity,
)
from nasprof.predictors.kernel.kernels import Kernel
from nasprof.predictors.kernel.predictor_file import (
    LEGACY_RULES_NOTE,
    covered_of,
    kernel_from_dict,
    rules_of,
    split_rules_of,
)
from nasprof.predictors.kernel.rules import KernelRules
from nasprof.predictors.kernel.split import SPLIT_RULES, split_kernels

__all__ = ["KernelPredictor", "KernelRegressor"]

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


#: Kernel types of a quantised graph (QDQ format, or onnxruntime's fused int8 ops).
_INT8_TYPES = frozenset({"QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul",
                         "MatMulInteger", "ConvInteger", "DynamicQuantizeLinear"})


class KernelPredictor(Predictor):
    """Predicts ONNX graphs kernel by kernel; ``regressors`` maps kernel type -> ``KernelRegressor``."""

    kind = "kernel"
    calibrates_on = "networks"
    reads_architectures = False

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
        covered: Mapping[str, Iterable[str]] | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(**kw)
        #: Kernel type -> the variants (op, activation) its regressor saw samples of; None: not recorded.
        self.covered = (None if covered is None
                        else {str(t): frozenset(map(str, v)) for t, v in covered.items()})
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
        self._bank_cache: tuple[ForestBank | None, dict[str, int], np.ndarray] | None = None

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

    def part_group(self, part: PredictionPart) -> str:
        return part.kind  # a kernel type: conv, dwconv, eltwise, ...

    def compatibility(self) -> list[str]:
        """Where the device now differs from the one the rules were detected on (another CPU, another
        onnxruntime): one line each. Checked for the local CPU, the one device that can be read without
        running anything."""
        from nasprof.predictors.kernel.rules import local_mismatch

        return local_mismatch(self.rules)

    # -- summaries --------------------------------------------------------------------------------------
    def calibration_summary(self) -> str:
        """Group factors, cold-weight cost and device speed in a phrase ("" when uncalibrated)."""
        cal = self.calibration
        if cal is None:
            return ""
        factors = ", ".join(f"{g} ×{f:.2f}" for g, f in sorted(cal.factors.items()) if abs(f - 1.0) >= 0.005)
        return (f"factors {factors or 'all ×1.00'}, cold weights {cal.ms_per_weight_mb:.4f} ms/MB, device "
                f"speed ×{cal.speed_ratio:.3f} (anchors)")

    def details(self) -> dict[str, str]:
        out = {"kernel types": ", ".join(self.kernel_types), "overhead_ms": f"{self.overhead_ms:.4f}"}
        if self.covered is not None:
            out["covers"] = "; ".join(
                f"{t} ({', '.join(sorted(v))})" if any(v) else t for t, v in sorted(self.covered.items())
            )
        out.update({f"rules: {k}": str(v) for k, v in self.rules.describe().items()})
        cal = self.calibration
        if cal is not None:
            out["calibration factors"] = json.dumps({g: round(v, 3) for g, v in cal.factors.items()})
            if cal.ms_per_mb:
                moved = {g: round(v, 4) for g, v in cal.ms_per_mb.items()}
                out["calibration ms/MB moved"] = json.dumps(moved)
            out["calibration cold weights"] = (f"{cal.ms_per_weight_mb:.4f} ms per MB of weights of "
                                               + ", ".join(sorted(cal.weight_groups)))
            out["calibration speed ratio"] = f"{cal.speed_ratio:.3f} (anchor kernels then vs now)"
            out["calibration RMSPE"] = (f"{cal.info['before']['rmspe']:.1%} uncalibrated, "
                                        f"{cal.info['leave_one_out']['rmspe']:.1%} leave-one-out "
                                        f"({cal.info['networks']} networks)")
        return out

    def warnings(self) -> list[str]:
        """Refit reasons, a calibration worse than none on its own held-out networks, and rules detected
        on another CPU or onnxruntime (``compatibility``)."""
        out = [self.refit_reason] if self.refit_reason else []
        w = self.calibration.info.get("warning") if self.calibration is not None else None
        if w:
            out.append(f"calibration: {w}")
        return out + self.compatibility()

    @property
    def features(self) -> list[str]:
        return list(FEATURES)

    @property
    def kernel_types(self) -> list[str]:
        return sorted(self.regressors)

    def kernels(self, model: str | Path) -> list[Kernel]:
        kernels = split_kernels(model, self.rules)
        quantized = sum(1 for k in kernels if k.type in _INT8_TYPES)
        if quantized:
            # onnxruntime fuses QDQ pairs into int8 kernels (QLinearConv, ...) whose costs the float
            # regressors do not describe: predicting them as float convs would be silently wrong.
            raise PredictorError(
                f"{Path(model).name} is an int8 (QDQ) graph ({quantized} quantise/dequantise nodes); this "
                "kernel predictor models float kernels only: measure it, or build an int8 table "
                "(`nasprof table build --int8`) and fit a lookup-table predictor"
            )
        return kernels

    def explain(self, target: Any) -> Prediction:
        return self.explain_kernels(self.kernels(self._onnx_path(target)))

    @staticmethod
    def _onnx_path(target: Any) -> str | Path:
        if not isinstance(target, (str, Path)) or not str(target).endswith(".onnx"):
            raise PredictorError(
                f"a kernel predictor reads ONNX graphs; got {type(target).__name__} {str(target)[:60]!r} "
                "(export the architecture first, or use a lookup-table predictor)"
            )
        return target

    def explain_kernels(self, kernels: Sequence[Kernel]) -> Prediction:
        return self.explain_many_kernels([kernels])[0]

    def explain_many(self, targets: Iterable[str | Path]) -> list[Prediction]:
        """``explain`` for several ONNX graphs, their regressors asked once for all graphs' kernels."""
        return self.explain_many_kernels([self.kernels(self._onnx_path(t)) for t in targets])

    def predict_many(self, targets: Iterable[Any]) -> np.ndarray:
        """Latencies (ms) of several ONNX graphs (or kernel lists), the regressors batched across graphs;
        ``PredictorError`` names the first graph with parts no regressor covers."""
        targets = list(targets)
        graphs = [t if not isinstance(t, (str, Path)) else self.kernels(self._onnx_path(t)) for t in targets]
        preds = self.explain_many_kernels(graphs)
        for t, p in zip(targets, preds, strict=True):
            self._check_complete(p, f"{t}: " if isinstance(t, (str, Path)) else "")
        return np.array([p.latency_ms for p in preds], dtype=np.float64)

    def explain_many_kernels(self, graphs: Sequence[Sequence[Kernel]]) -> list[Prediction]:
        """Predictions of several kernel lists; every covered kernel of every list in one regression."""
        cal = self.calibration
        rows: list[Kernel] = []
        slots: list[tuple[int, int]] = []  # (graph, kernel index) of each row
        parts_of: list[list[PredictionPart | None]] = []
        missing_of: list[list[str]] = []
        counts: list[tuple[int, int, int, int]] = []  # nodes, macs, missing nodes, missing macs
        for gi, kernels in enumerate(graphs):
            parts: list[PredictionPart | None] = [None] * len(kernels)
            missing: list[str] = []
            nodes = macs = missing_nodes = missing_macs = 0
            for i, k in enumerate(kernels):
                if k.type == "free":
                    parts[i] = PredictionPart(k.name, "free", 0.0, "free")
                    continue
                n, m = max(len(k.covers), 1), kernel_macs(k)
                nodes, macs = nodes + n, macs + m
                if k.type in self.regressors and self.covers(k):
                    rows.append(k)
                    slots.append((gi, i))
                else:
                    what = (k.type if k.type not in self.regressors
                            else f"{k.type} {coverage_key(k)}, never sampled")
                    missing.append(f"{k.name} ({what})")
                    parts[i] = PredictionPart(k.name, k.type, 0.0, "missing")
                    missing_nodes, missing_macs = missing_nodes + n, missing_macs + m
            parts_of.append(parts)
            missing_of.append(missing)
            counts.append((nodes, macs, missing_nodes, missing_macs))
        ms = self.regress(rows)
        for (gi, i), k, v in zip(slots, rows, ms.tolist(), strict=True):
            v = v if cal is None else cal.adjust(k, v)
            parts_of[gi][i] = PredictionPart(k.name, k.type, v, "regression")
        out = []
        for parts, missing, (nodes, macs, missing_nodes, missing_macs) in zip(
            parts_of, missing_of, counts, strict=True
        ):
            done = tuple(p for p in parts if p is not None)
            out.append(Prediction(
                self.overhead_ms + sum(p.latency_ms for p in done), done, overhead_ms=self.overhead_ms,
                missing=tuple(missing),
                covered_node_share=1.0 - missing_nodes / nodes if nodes else 1.0,
                covered_macs_share=1.0 - missing_macs / macs if macs else 1.0,
            ))
        return out

    def regress(self, kernels: Sequence[Kernel]) -> np.ndarray:
        """Isolated latency (ms, before calibration) of kernels whose types all have regressors: the linear
        part per type, then every type's forest in one walk (``ForestBank``)."""
        if not kernels:
            return np.zeros(0)
        bank, order, coef = self._bank()
        which = np.array([order[k.type] for k in kernels], dtype=np.int64)
        x = feature_matrix(kernels)
        c = coef[which]  # (n, 4): intercept, ms per MMAC, ms per MB, forest index (-1: none)
        ms = (c[:, 0] + c[:, 1] * x[:, FEATURES.index("macs")] / 1e6
              + c[:, 2] * x[:, FEATURES.index("bytes")] / 1e6)
        forest = c[:, 3].astype(np.int64)
        has = forest >= 0
        if bank is not None and has.any():
            ms[has] = ms[has] * np.exp(bank.predict(x[has], forest[has]))
        return ms * multiplicity(kernels)

    def _bank(self) -> tuple[ForestBank | None, dict[str, int], np.ndarray]:
        """The regressors as one forest bank and a coefficient row per type (built once per predictor)."""
        if self._bank_cache is None:
            types = sorted(self.regressors)
            forests = [self.regressors[t].forest for t in types]
            present = [f for f in forests if f is not None]
            idx = iter(range(len(present)))
            coef = np.array([
                [r.intercept_ms, r.ms_per_mmac, r.ms_per_mb, -1 if r.forest is None else next(idx)]
                for r in (self.regressors[t] for t in types)
            ], dtype=np.float64).reshape(len(types), 4)
            bank = ForestBank(present) if present else None
            self._bank_cache = (bank, {t: i for i, t in enumerate(types)}, coef)
        return self._bank_cache

    def covers(self, k: Kernel) -> bool:
        """Whether the regressor of ``k``'s type was trained on its variant (files that predate the record
        of covered variants cover every variant of their types)."""
        if self.covered is None or k.type not in self.covered:
            return True
        return coverage_key(k) in self.covered[k.type]

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
            covered=self.covered,
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
        ``nasprof.predictors.calibration.kernel``. Use networks other than those you validate on.
        ``speed_ratio`` comes from ``measure_calibration_set`` with this predictor's ``anchors``."""
        from nasprof.predictors.calibration.kernel import fit_calibration

        sets = [self.isolated(n if not isinstance(n, (str, Path)) else self.kernels(n)) for n in networks]
        cal = fit_calibration(
            sets, measured_ms, self.overhead_ms, prior_weight=prior_weight, per_mb=per_mb, names=names,
            speed_ratio=speed_ratio, weight_cost=weight_cost,
        )
        return self.with_calibration(cal)

    # -- files ------------------------------------------------------------------------------------------
    def _body(self) -> dict[str, Any]:
        return {
            "overhead_ms": self.overhead_ms,
            "rules": self.rules.to_dict(),
            "regressors": {t: r.to_dict() for t, r in sorted(self.regressors.items())},
            "calibration": None if self.calibration is None else self.calibration.to_dict(),
            "anchors": [{"kernel": dataclasses.asdict(k), "e2e_ms": ms} for k, ms in self.anchors],
            "split_rules": self.split_rules,
            "covered": (None if self.covered is None
                        else {t: sorted(v) for t, v in sorted(self.covered.items())}),
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
            anchors = [(kernel_from_dict(a["kernel"]), float(a["e2e_ms"])) for a in body.get("anchors", [])]
        except (KeyError, TypeError, ValueError) as exc:
            raise PredictorError(f"predictor file has a corrupt anchor kernel: {exc}; refit it") from None
        return cls(
            regs,
            overhead_ms=float(body["overhead_ms"]),
            rules=rules_of(body),
            calibration=None if cal is None else Calibration.from_dict(cal),
            anchors=anchors,
            split_rules=split_rules_of(body.get("split_rules", 1)),
            covered=covered_of(body.get("covered")),  # absent before the rules were versioned
            device=str(header["device"]),
            measure_spec=header.get("measure_spec"),
            training_error=header.get("training_error"),
            metadata=header.get("metadata"),
        )


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
