"""`nasprof validate`: a predictor against the device, or against measurements made elsewhere."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from nasprof.commands._common import (
    CalibrateSeedOption,
    ColdWeightsOption,
    DevicesOption,
    ForceOption,
    InNetworkOption,
    JsonOption,
    PredictorOption,
    RayOption,
    RecordOption,
    RunsOption,
    SeedOption,
    StoreOption,
    StrictOption,
    _StepBar,
    attach_ray,
    check_counts,
    check_outputs,
    console,
    emit_json,
    err_console,
    warn,
)
from nasprof.commands.predictor import _calibration_warning, _rules_check


def validate_cmd(
    predictor: PredictorOption,
    device: DevicesOption = "cpu",
    space: Annotated[str | None, typer.Option(help="Search space to sample architectures from.")] = None,
    samples: Annotated[int, typer.Option(help="Architectures to sample.")] = 20,
    seed: SeedOption = 0,
    models: Annotated[
        list[Path] | None, typer.Option("--models", help="Validate these ONNX files instead (repeatable).")
    ] = None,
    runs: RunsOption = 25,
    sessions: Annotated[
        int, typer.Option(help="Interleaved rounds: every network gets one fresh session per round.")
    ] = 6,
    allow_partial: Annotated[bool, typer.Option("--allow-partial", help="Skip unknown operators.")] = False,
    calibrate: Annotated[
        int,
        typer.Option(help="First calibrate on N other sampled networks, measured in the same rounds "
                     "(LUT: 100 for README's figures; kernel predictor: 20-30)."),
    ] = 0,
    calibrate_seed: CalibrateSeedOption = 1000,
    in_network: InNetworkOption = True,
    cold_weights: ColdWeightsOption = True,
    save_predictor: Annotated[
        Path | None,
        typer.Option("--save-predictor", help="With --calibrate: write the calibrated predictor."),
    ] = None,
    json_path: JsonOption = None,
    csv_path: Annotated[Path | None, typer.Option("--csv", help="Write predicted vs measured (CSV).")] = None,
    plot_path: Annotated[Path | None, typer.Option("--plot", help="Write a scatter plot (PNG).")] = None,
    extra_models: Annotated[list[str] | None, typer.Argument(help="More ONNX files after --models.")] = None,
    strict: StrictOption = False,
    force: ForceOption = False,
    ray_address: RayOption = None,
    measurements: Annotated[
        str | None, typer.Option("--measurements", help="Compare with these end-to-end measurements "
                                 "instead of measuring (a CSV/Parquet file or a stored set NAME[@vN]); no "
                                 "device needed.")
    ] = None,
    store: StoreOption = None,
    record: RecordOption = None,
) -> None:
    """Measure sampled architectures (or given models) end to end and compare with the predictor, or
    compare with measurements made elsewhere (--measurements)."""
    from nasprof.errors import InputError

    if measurements is not None:
        if record is not None:
            raise InputError("--record stores what validate measures; with --measurements nothing is "
                             "measured")
        _validate_measured(predictor, measurements, store, json_path, csv_path, plot_path)
        return
    if record is not None:  # a bad name is refused before any measuring
        from nasprof.tables.measurements import check_set_name

        check_set_name(record)
    check_outputs({"--json": json_path, "--csv": csv_path, "--plot": plot_path,
                   "--save-predictor": save_predictor},
                  [predictor, *(models or []), *(extra_models or [])])
    check_counts(force, samples=samples, calibrate=calibrate, runs=runs, sessions=sessions)
    device = attach_ray(ray_address, device)
    from nasprof.predictors import Predictor
    from nasprof.predictors.calibration.rounds import validation_spec
    from nasprof.predictors.validation import validate

    p = Predictor.load(predictor)  # validate() checks its device against --device's (maybe several)
    _rules_check(p, strict)
    if extra_models and not models:
        raise InputError(f"unexpected argument {extra_models[0]!r}; ONNX files go after --models")
    if save_predictor is not None and not calibrate:
        raise InputError("--save-predictor writes the predictor --calibrate fits; add --calibrate N")
    all_models = [*(models or []), *(Path(m) for m in (extra_models or []))]
    with _StepBar("measuring networks") as bar:
        report = validate(p, device, space=space, samples=samples, seed=seed, models=all_models or None,
                          spec=validation_spec(p, runs=runs, sessions=sessions), allow_partial=allow_partial,
                          calibrate=calibrate, calibrate_seed=calibrate_seed, in_network=in_network,
                          weight_cost=cold_weights, progress=bar)
    _emit_validation(report, p.kind, device, calibrate, save_predictor=save_predictor, record=record,
                     store=store, json_path=json_path, csv_path=csv_path, plot_path=plot_path)


def _emit_validation(report: Any, kind: str, device: str, calibrate: int, *, save_predictor: Path | None,
                     record: str | None, store: Path | None, json_path: Path | None, csv_path: Path | None,
                     plot_path: Path | None) -> None:
    """Everything ``validate`` writes after measuring: the calibrated predictor, the recorded set, the table
    (or JSON), the CSV and the plot."""
    if calibrate and save_predictor is not None:
        assert report.predictor is not None
        report.predictor.save(save_predictor)
        err_console.print(f"wrote {save_predictor}", highlight=False)
    if calibrate:
        _calibration_warning(report.predictor)
    if record is not None:
        from nasprof.predictors.validation import record_validation

        rec = record_validation(report, record, store)
        err_console.print(f"recorded {len(report.rows)} networks into {rec.label}", highlight=False)
    if not emit_json(json_path, report.to_dict()):
        _render_validation(report, kind, device, calibrate)
    if csv_path is not None:
        report.write_csv(csv_path)
        err_console.print(f"wrote {csv_path}", highlight=False)
    if plot_path is not None:
        report.plot(plot_path)
        err_console.print(f"wrote {plot_path}", highlight=False)


def _render_validation(report: Any, kind: str, device: str, calibrate: int) -> None:
    if calibrate:
        cal = report.metadata["calibration"]
        loo = cal.get("leave_one_out") or cal["after"]
        phrase = report.predictor.calibration_summary()
        console.print(f"calibrated on {cal['networks']} other networks measured in the same rounds "
                      f"({phrase}): leave-one-out RMSPE {loo['rmspe']:.1%}", highlight=False)
    t = Table(title=f"{kind} predictor vs {device} (n={report.n})")
    for col in ("network", "predicted ms", "measured ms", "error"):
        t.add_column(col, justify="left" if col == "network" else "right", overflow="fold")
    for r in report.worst(10):
        t.add_row(r.name[:60], f"{r.predicted_ms:.3f}", f"{r.measured_ms:.3f}", f"{r.rel_error:+.1%}")
    console.print(t)
    console.print(f"RMSE {report.rmse_ms:.3f} ms · RMSPE {report.rmspe:.1%} · within ±5% "
                  f"{report.within_5pct:.0%} · within ±10% {report.within_10pct:.0%}", highlight=False)
    floor = report.noise_floor
    if floor is not None:
        console.print(f"noise floor (even vs odd measurement rounds): RMSPE {floor['rmspe']:.1%} · within "
                      f"±5% {floor['within_5pct']:.0%} · within ±10% {floor['within_10pct']:.0%}",
                      highlight=False)


def _validate_measured(predictor: Path, measurements: str, store: Path | None, json_path: Path | None,
                       csv_path: Path | None, plot_path: Path | None) -> None:
    """``validate --measurements``: predict the measured networks and compare, with no device."""
    check_outputs({"--json": json_path, "--csv": csv_path, "--plot": plot_path},
                  [predictor, *([store] if store else [])])
    from nasprof.predictors import Predictor
    from nasprof.predictors.measured import validate_measurement_set

    p = Predictor.load(predictor)
    report = validate_measurement_set(p, measurements, store=store)
    if not emit_json(json_path, report.to_dict()):
        _render_measured(report, p)
    if csv_path is not None:
        report.write_csv(csv_path)
        err_console.print(f"wrote {csv_path}", highlight=False)
    if plot_path is not None:
        from nasprof.predictors.adapt.plot import scatter

        scatter(report, plot_path)
        err_console.print(f"wrote {plot_path}", highlight=False)


def _render_measured(report: Any, p: Any) -> None:
    """``validate --measurements``' summary: agreement, noise floor, and networks the predictor learned."""
    s = report.summary
    console.print(f"{len(report.rows)} networks of {report.measurements} against {p.kind} predictor of "
                  f"{p.device}", highlight=False)
    console.print(f"RMSPE {s['rmspe']:.1%} · within ±5% {s['within_5pct']:.0%} · within ±10% "
                  f"{s['within_10pct']:.0%} · Spearman ρ {s['spearman']:.4f} · "
                  f"Kendall τ {s['kendall']:.4f}",
                  highlight=False)
    nf = report.noise_floor
    if nf:
        console.print(f"noise floor ({nf['method']}): within ±10% {nf['within_10pct']:.0%} · Spearman ρ "
                      f"{nf['spearman']:.4f}", highlight=False)
    else:
        console.print("noise floor: unknown (the measurements carry no samples or spreads)",
                      highlight=False)
    overlap = report.metadata.get("learned_from_overlap")
    if overlap:
        warn(f"{overlap} of these networks are ones the predictor learned from: their errors flatter it")
