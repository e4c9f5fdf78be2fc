"""Validate a latency predictor against end-to-end measurements.

``validate`` samples architectures from a space (or takes given ONNX files), exports each, measures it on
the device with profiling off, and compares with the prediction. The report gives RMSE (ms), RMSPE, the
shares within ±5% / ±10% (0..1), the worst cases, a CSV of predicted vs measured and a scatter plot with
the ±10% band.

The networks are measured in interleaved rounds (``nasprof.profiler.interleave``): one fresh session per
network per round, so a drift of the machine's speed spreads over all networks instead of landing on a
few. The even and odd rounds are two independent measurements of each network; the report compares them
as its *noise floor*: the accuracy a perfect predictor would reach against measurements this noisy.
"""

from __future__ import annotations

import csv
import io
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from nasprof.errors import InputError, PredictorError
from nasprof.predictors.base import Predictor, error_summary
from nasprof.predictors.calibration.rounds import (
    calibrate_in_rounds,
    calibrate_on_measured,
    calibration_archs,
    lut_calibration_archs,
    measure_spread,
    validation_spec,
)

if TYPE_CHECKING:
    from nasprof.tables.measurements import MeasurementSet

__all__ = [
    "ValidationRow",
    "ValidationReport",
    "validate",
    "record_validation",
    "VALIDATION_SCHEMA_VERSION",
]

#: History: 1 — first version.
VALIDATION_SCHEMA_VERSION = 1

Progress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class ValidationRow:
    name: str
    predicted_ms: float
    measured_ms: float
    #: Spread of the measurement: median absolute deviation of its samples (ms).
    measured_mad_ms: float = 0.0
    #: Medians of the even and of the odd measurement rounds: two independent measurements (noise floor).
    measured_halves_ms: tuple[float, float] | None = None
    #: The device instance that measured it (one of several sharing a validation).
    measured_on: str | None = None

    @property
    def rel_error(self) -> float:
        return (self.predicted_ms - self.measured_ms) / self.measured_ms


@dataclass(frozen=True)
class ValidationReport:
    rows: tuple[ValidationRow, ...]
    device: str
    predictor_kind: str
    metadata: Mapping[str, Any] = field(default_factory=dict)
    #: The predictor the rows were predicted with (the calibrated one with ``validate(calibrate=N)``).
    predictor: Predictor | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not self.rows:
            raise InputError("a validation needs at least one network")

    @property
    def summary(self) -> dict[str, float]:
        return error_summary([r.predicted_ms for r in self.rows], [r.measured_ms for r in self.rows])

    @property
    def n(self) -> int:
        return len(self.rows)

    @property
    def rmse_ms(self) -> float:
        return self.summary["rmse_ms"]

    @property
    def rmspe(self) -> float:
        return self.summary["rmspe"]

    @property
    def within_5pct(self) -> float:
        return self.summary["within_5pct"]

    @property
    def within_10pct(self) -> float:
        return self.summary["within_10pct"]

    @property
    def noise_floor(self) -> dict[str, float] | None:
        """Even-round medians against odd-round medians, in the same terms as ``summary``: how well one
        measurement predicts another. ``None`` if the networks were measured in fewer than two rounds."""
        halves = [r.measured_halves_ms for r in self.rows if r.measured_halves_ms is not None]
        if not halves:
            return None
        return error_summary([h[0] for h in halves], [h[1] for h in halves])

    def worst(self, k: int = 5) -> list[ValidationRow]:
        return sorted(self.rows, key=lambda r: -abs(r.rel_error))[:k]

    def to_dict(self) -> dict[str, Any]:
        s = self.summary
        return {
            "schema_version": VALIDATION_SCHEMA_VERSION,
            "kind": "nasprof.validation",
            "device": self.device,
            "predictor_kind": self.predictor_kind,
            **s,
            "noise_floor": self.noise_floor,
            "worst": [{"name": r.name, "rel_error": r.rel_error} for r in self.worst()],
            "rows": [
                {
                    "name": r.name,
                    "predicted_ms": r.predicted_ms,
                    "measured_ms": r.measured_ms,
                    "measured_mad_ms": r.measured_mad_ms,
                    "rel_error": r.rel_error,
                    "measured_on": r.measured_on,
                }
                for r in self.rows
            ],
            "metadata": dict(self.metadata),
        }

    def write_csv(self, path: str | Path) -> Path:
        from nasprof._io import atomic_write_text

        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["name", "predicted_ms", "measured_ms", "measured_mad_ms", "rel_error", "measured_on"])
        for r in self.rows:
            w.writerow(
                [
                    r.name,
                    f"{r.predicted_ms:.6f}",
                    f"{r.measured_ms:.6f}",
                    f"{r.measured_mad_ms:.6f}",
                    f"{r.rel_error:.6f}",
                    r.measured_on or "",
                ]
            )
        return atomic_write_text(Path(path), buf.getvalue())

    def plot(self, path: str | Path, title: str | None = None) -> Path:
        """Scatter of predicted vs measured with the y = x line and the ±10% band, as PNG."""
        import matplotlib

        matplotlib.use("Agg")  # no display needed; set before pyplot is imported
        import matplotlib.pyplot as plt

        from nasprof._io import atomic_write_bytes

        m = np.array([r.measured_ms for r in self.rows])
        p = np.array([r.predicted_ms for r in self.rows])
        lo, hi = float(min(m.min(), p.min())) * 0.9, float(max(m.max(), p.max())) * 1.1
        line = np.linspace(lo, hi, 50)
        fig, ax = plt.subplots(figsize=(5, 5), dpi=120)
        ax.fill_between(line, line * 0.9, line * 1.1, color="tab:green", alpha=0.15, label="±10%")
        ax.plot(line, line, color="tab:green", lw=1)
        inside = np.abs(p - m) <= 0.1 * m * (1 + 1e-9)
        ax.scatter(m[inside], p[inside], s=12, color="tab:blue", label="within ±10%")
        ax.scatter(m[~inside], p[~inside], s=16, color="tab:red", marker="x", label="outside")
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        ax.set_xlabel("measured latency (ms)")
        ax.set_ylabel("predicted latency (ms)")
        ax.set_title(
            title
            or f"{self.predictor_kind} predictor on {self.device}: "
            f"{self.within_10pct:.0%} within ±10% (n={self.n})",
            fontsize=9,
        )
        ax.legend(loc="upper left", fontsize=8)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", bbox_inches="tight")
        plt.close(fig)
        return atomic_write_bytes(Path(path), buf.getvalue())


def validate(
    predictor: Predictor,
    device: str,
    *,
    space: str | None = None,
    samples: int = 20,
    seed: int = 0,
    models: Sequence[str | Path] | None = None,
    spec: Any = None,
    allow_partial: bool = False,
    calibrate: int = 0,
    calibrate_seed: int = 1000,
    in_network: bool = True,
    weight_cost: bool = True,
    progress: Progress | None = None,
) -> ValidationReport:
    """Measure networks end-to-end on ``device`` and compare with ``predictor``'s predictions.

    ``calibrate`` > 0 (lookup-table predictors) first calibrates the predictor (``LutPredictor.calibrate``)
    on that many *other* architectures of its space (seed ``calibrate_seed``), measured in the same
    interleaved rounds as the validated networks, so calibration and validation see the same machine. The
    calibrated predictor is then ``report.predictor``; the report's metadata holds its calibration error.
    With ``in_network`` (default) each calibration network also gets one profiled pass, and the predictor
    learns an in-network ratio per table key first (``LutPredictor.learn_layer_ratios``).

    A kernel predictor is calibrated the way ``predictor fit --kernels --calibrate N`` does
    (``calibration_archs``: sampled mobile architectures and block-zoo networks, with the predictor's
    anchor kernels for the device's speed), but in the same rounds as the validated networks;
    ``weight_cost`` fits its cold-weight cost γ.

    ``device`` may name several interchangeable devices (``"pixel-a,pixel-b"``; with ``--ray``, a farm's
    phones): the networks are split between them, each device measuring its share in interleaved rounds
    (``measure_spread``), and a device that vanishes hands its share to another. They must be the same model,
    runner and settings, and one of them a device the predictor was fitted on. The calibration's profiled
    passes run on the first device; a kernel predictor's calibration needs a single device."""
    from nasprof.devices import get_devices
    from nasprof.profiler.interleave import half_medians
    from nasprof.space import export_many, get_space

    backends = get_devices(device)
    names = [b.device for b in backends]
    if not set(names) & set(predictor.fitted_devices):
        raise PredictorError(
            f"the predictor was fitted for device {predictor.device!r}, not {device!r}; "
            f"validate it on its own device (--device {predictor.device})"
        )
    if not models and not space:
        raise InputError("give --space NAME (to sample architectures) or --models A.onnx ...")
    if samples < 1:
        raise InputError(f"--samples must be at least 1, got {samples}")
    if calibrate < 0:
        raise InputError(f"--calibrate must be >= 0, got {calibrate}")
    kernel_calibration = bool(calibrate) and predictor.calibrates_on == "networks"
    if kernel_calibration and len(backends) > 1:
        raise InputError(
            "--calibrate with a kernel predictor measures its calibration rounds on one device: give one "
            "--device (or calibrate when fitting: predictor fit --kernels --calibrate N)"
        )
    if kernel_calibration:
        calib = calibration_archs(calibrate, calibrate_seed)
    else:
        calib = lut_calibration_archs(predictor, calibrate, calibrate_seed) if calibrate else []
    if calibrate and space and not models and calibrate_seed == seed:
        raise InputError(
            "--calibrate-seed equals --seed: calibration and validation networks would be the same"
        )
    spec = spec or validation_spec(predictor)
    if len(backends) > 1:
        from nasprof.tables.compat import check_comparable

        check_comparable(backends, spec, force=None,
                         what="one validation measures one device type: give devices of one model")
    for b in backends:
        b.ensure_available()
    backend = backends[0]
    rows: list[ValidationRow] = []

    def predict(target: Any) -> float:
        p = predictor.explain(target)
        if p.missing and not allow_partial:
            raise PredictorError(
                f"cannot predict {len(p.missing)} part(s) of {target}: {', '.join(p.missing[:3])}; "
                "pass --allow-partial to validate what can be predicted"
            )
        return p.latency_ms

    targets: list[tuple[str, Path, Any]] = []  # (name, ONNX file, what the predictor is asked)
    with tempfile.TemporaryDirectory(prefix="nasprof-validate-") as tmp:
        if models:
            for model in models:
                path = Path(model)
                if not path.is_file():
                    raise InputError(f"model {path} does not exist")
                targets.append((path.stem, path, path))
            what: dict[str, Any] = {"models": [str(m) for m in models]}
            calib_paths = [] if kernel_calibration else export_many(calib, tmp, "calib")
        else:
            sp = get_space(space)  # type: ignore[arg-type]
            # A lookup table holds one resolution: sample at it.
            archs = sp.sample(samples, seed=seed, resolution=getattr(predictor, "resolution", None))
            # Calibration and validation networks in one export: the disk check counts both. (A kernel
            # predictor's calibration set exports its own networks.)
            n_cal = 0 if kernel_calibration else len(calib)
            exported = export_many([*calib[:n_cal], *archs], tmp)
            calib_paths = exported[:n_cal]
            for arch, path in zip(archs, exported[n_cal:], strict=True):
                targets.append((arch.to_string(), path, arch if predictor.reads_architectures else path))
            what = {"space": space, "samples": samples, "seed": seed}
        # Predict first: a network the predictor cannot handle fails before minutes of measuring.
        predicted = [predict(target) for _, _, target in targets]
        calibration: dict[str, Any] | None = None
        if kernel_calibration:
            predictor, measured, info = calibrate_in_rounds(
                predictor, calib, [p for _, p, _ in targets], backend.device, spec, seed, progress,
                weight_cost,
            )
            measured_on = [backend.device] * len(measured)
        else:
            paths = calib_paths + [p for _, p, _ in targets]
            left: dict[str, str] = {}
            measured_all, on_all = measure_spread(backends, paths, spec, seed=seed, progress=progress,
                                                  left=left)
            measured, measured_on = measured_all[len(calib_paths) :], on_all[len(calib_paths) :]
            backend = next(b for b in backends if b.device not in left)  # the profiled passes' device
            if calibrate:
                predictor = calibrate_on_measured(
                    predictor, calib, measured_all[: len(calib_paths)], calib_paths, backend, spec,
                    in_network, progress,
                )
                info = predictor.training_error
        if calibrate:
            calibration = {"seed": calibrate_seed, **info}
            predicted = [predict(target) for _, _, target in targets]
    for (name, _, _), pred, m, on in zip(targets, predicted, measured, measured_on, strict=True):
        rows.append(ValidationRow(name, pred, m.median_ms, m.mad_ms, half_medians(m), on))
    meta = {
        **what,
        "measure_spec": {
            "threads": spec.threads,
            "opt_level": spec.opt_level,
            "runs": spec.runs,
            "warmup": spec.warmup,
            "rounds": spec.sessions,
            "interleaved": True,
        },
        "device_info": backend.describe(),
        "devices": names,
    }
    if calibration is not None:
        meta["calibration"] = calibration
    return ValidationReport(
        tuple(rows), device=names[0], predictor_kind=predictor.kind, metadata=meta, predictor=predictor
    )


def record_validation(report: ValidationReport, name: str, store: str | Path | None = None) -> MeasurementSet:
    """The networks a ``validate`` run measured (median, spread from the MAD) as ONE new version of
    measurement set ``name`` (``validate --record``); returns the ``MeasurementSet`` written."""
    from nasprof.tables.measurements import record_measurements

    spec = report.metadata.get("measure_spec", {})
    # Rows of --models are named by the file's stem: store the path, which `validate --measurements` reads.
    paths = {Path(m).stem: str(Path(m).resolve()) for m in report.metadata.get("models", [])}
    nets = [(paths.get(r.name, r.name), r.measured_ms,
             1.4826 * r.measured_mad_ms if r.measured_mad_ms else None, ()) for r in report.rows]
    return record_measurements(name, nets, {"device": report.device, "threads": spec.get("threads"),
                                            "measured_by": "nasprof validate", "source": "nasprof validate"},
                               store=store)
