"""`nasprof predict` and `nasprof validate`: a predictor against a model, or against the device."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from nasprof.commands._arch_options import (
    CellChannelsOption,
    CellsPerStageOption,
    InputOption,
    OutputsOption,
    SpaceOption,
)
from nasprof.commands._common import (
    ForceOption,
    JsonOption,
    RayOption,
    _fmt_ms,
    _StepBar,
    attach_ray,
    check_counts,
    check_outputs,
    console,
    emit_json,
    err_console,
    styled,
)
from nasprof.commands.predictor import (
    _calibration_warning,
    _ColdWeightsOption,
    _InNetworkOption,
    _refit_warning,
    _rules_check,
    _StrictOption,
)


def predict_cmd(
    predictor: Annotated[Path, typer.Option("--predictor", "-p", help="Predictor file.")],
    target: Annotated[
        str | None, typer.Argument(help="MODEL.onnx (kernel predictor) or an architecture (LUT, adapted).")
    ] = None,
    archs: Annotated[
        Path | None, typer.Option("--archs", help="Predict every architecture of this file (one per line; "
                                  "blank lines and # comments skipped) in one call.")
    ] = None,
    csv_path: Annotated[
        Path | None, typer.Option("--csv", help="With --archs: write arch,predicted_ms (CSV).")
    ] = None,
    space: SpaceOption = None,
    input_shape: InputOption = None,
    outputs: OutputsOption = None,
    cell_channels: CellChannelsOption = None,
    cells_per_stage: CellsPerStageOption = None,
    device: Annotated[
        str | None, typer.Option("--device", "-d", help="Refuse a predictor for another device.")
    ] = None,
    fallback: Annotated[
        Path | None, typer.Option(help="Kernel predictor for layers missing from a LUT (flagged).")
    ] = None,
    allow_partial: Annotated[
        bool, typer.Option("--allow-partial", help="Exit 0 even if some operators cannot be predicted.")
    ] = False,
    explain: Annotated[
        bool, typer.Option("--explain", help="List every part (kernel or table entry): its time and share, "
                           "and what cannot be predicted.")
    ] = False,
    json_out: JsonOption = None,
    strict: _StrictOption = False,
) -> None:
    """Predict the latency of an ONNX model or an architecture, or of every architecture of a file."""
    if archs is not None:
        if target is not None:
            from nasprof.errors import InputError

            raise InputError("give an architecture or --archs FILE, not both")
        _predict_list(predictor, archs, device, json_out, csv_path,
                      (space, input_shape, outputs, cell_channels, cells_per_stage))
        return
    if target is None:
        from nasprof.errors import InputError

        raise InputError("give a MODEL.onnx or an architecture to predict, or --archs FILE")
    nb201_given = (input_shape, outputs, cell_channels, cells_per_stage)
    if space is not None or any(v is not None for v in nb201_given):
        from nasprof.commands._arch_options import arch_from_cli

        arch_target: Any = arch_from_cli(target, space, input_shape, outputs, cell_channels, cells_per_stage)
    else:
        arch_target = target
    check_outputs({"--json": json_out}, [predictor, target, fallback])
    from nasprof.errors import InputError
    from nasprof.predictors import Predictor

    p = Predictor.load(predictor, device=device)
    _refit_warning(p)
    _rules_check(p, strict)
    if fallback is not None:
        if p.kind != "lut":
            raise InputError("--fallback applies to lookup-table predictors only")
        p = p.with_fallback(Predictor.load(fallback, device=p.device))  # type: ignore[attr-defined]
    if target.endswith(".onnx") and not Path(target).is_file():
        raise InputError(f"model {target} does not exist")
    result = p.explain(arch_target)
    doc = {"target": target, "device": p.device, "predictor": p.kind, **result.to_dict()}
    if not emit_json(json_out, doc):
        by_kind: dict[str, list[float]] = {}
        for part in result.parts:
            by_kind.setdefault(part.kind if p.kind == "kernel" else part.source, []).append(part.latency_ms)
        t = Table(title=f"{Path(target).name if target.endswith('.onnx') else 'architecture'} on {p.device}")
        for col in ("part", "count", "ms"):
            t.add_column(col, justify="left" if col == "part" else "right")
        for k, v in sorted(by_kind.items(), key=lambda kv: -sum(kv[1])):
            t.add_row(k, str(len(v)), _fmt_ms(sum(v)))
        t.add_row("per-call overhead", "1", _fmt_ms(result.overhead_ms))
        if explain:
            _render_parts(result)
        console.print(t)
        partial = ""
        if result.missing and result.covered_node_share is not None:
            partial = (f" (partial): the predicted parts are {result.covered_node_share:.0%} of the graph's "
                       f"nodes and {result.covered_macs_share:.0%} of its MACs")
        elif result.missing:
            partial = " (partial)"
        console.print(Text.assemble("predicted latency: ", (f"{result.latency_ms:.3f} ms", "bold"), partial))
        if result.fallback:
            err_console.print(f"note: {len(result.fallback)} layer(s) predicted by the fallback predictor",
                              highlight=False)
    if result.missing:
        shown = ", ".join(result.missing[:8]) + (" ..." if len(result.missing) > 8 else "")
        err_console.print(
            f"cannot predict {len(result.missing)} part(s): {shown}", highlight=False, soft_wrap=True
        )
        if not allow_partial:
            raise typer.Exit(code=2)


def _render_parts(result: Any) -> None:
    """Every part in graph order: its kind, time and share; a part that cannot be predicted is marked."""
    t = Table(title="parts")
    for col in ("part", "kind", "ms", "share", "source"):
        t.add_column(col, justify="right" if col in ("ms", "share") else "left", overflow="fold")
    for part in result.parts:
        if part.source == "free":
            continue
        share = part.latency_ms / result.latency_ms if result.latency_ms > 0 else 0.0
        source = styled("NOT PREDICTED", "bold red") if part.source == "missing" else part.source
        t.add_row(part.name, part.kind, _fmt_ms(part.latency_ms), f"{share:.1%}", source)
    console.print(t)


def validate_cmd(
    predictor: Annotated[Path, typer.Option("--predictor", "-p", help="Predictor file.")],
    device: Annotated[
        str,
        typer.Option("--device", "-d", help="Device to measure on, or several identical ones sharing the "
                     "networks: pixel-a,pixel-b (with --ray, names or patterns: 'pixel-*')."),
    ] = "cpu",
    space: Annotated[str | None, typer.Option(help="Search space to sample architectures from.")] = None,
    samples: Annotated[int, typer.Option(help="Architectures to sample.")] = 20,
    seed: Annotated[int, typer.Option(help="Sampling seed.")] = 0,
    models: Annotated[
        list[Path] | None, typer.Option("--models", help="Validate these ONNX files instead (repeatable).")
    ] = None,
    runs: Annotated[int, typer.Option(help="Timed runs per session per network.")] = 25,
    sessions: Annotated[
        int, typer.Option(help="Interleaved rounds: every network gets one fresh session per round.")
    ] = 6,
    allow_partial: Annotated[bool, typer.Option("--allow-partial", help="Skip unknown operators.")] = False,
    calibrate: Annotated[
        int,
        typer.Option(help="First calibrate on N other sampled networks, measured in the same rounds "
                     "(LUT: 100 for README's figures; kernel predictor: 20-30)."),
    ] = 0,
    calibrate_seed: Annotated[int, typer.Option(help="Seed of the calibration networks.")] = 1000,
    in_network: _InNetworkOption = True,
    cold_weights: _ColdWeightsOption = True,
    save_predictor: Annotated[
        Path | None,
        typer.Option("--save-predictor", help="With --calibrate: write the calibrated predictor."),
    ] = None,
    json_path: JsonOption = None,
    csv_path: Annotated[Path | None, typer.Option("--csv", help="Write predicted vs measured (CSV).")] = None,
    plot_path: Annotated[Path | None, typer.Option("--plot", help="Write a scatter plot (PNG).")] = None,
    extra_models: Annotated[list[str] | None, typer.Argument(help="More ONNX files after --models.")] = None,
    strict: _StrictOption = False,
    force: ForceOption = False,
    ray_address: RayOption = None,
    measurements: Annotated[
        str | None, typer.Option("--measurements", help="Compare with these end-to-end measurements "
                                 "instead of measuring (a CSV/Parquet file or a stored set NAME[@vN]); no "
                                 "device needed.")
    ] = None,
    store: Annotated[Path | None, typer.Option("--store", help="Measurements store (default: "
                                               "$NASPROF_HOME/measurements.db).")] = None,
) -> None:
    """Measure sampled architectures (or given models) end to end and compare with the predictor, or
    compare with measurements made elsewhere (--measurements)."""
    if measurements is not None:
        _validate_measured(predictor, measurements, store, json_path, csv_path, plot_path)
        return
    check_outputs({"--json": json_path, "--csv": csv_path, "--plot": plot_path,
                   "--save-predictor": save_predictor},
                  [predictor, *(models or []), *(extra_models or [])])
    check_counts(force, samples=samples, calibrate=calibrate, runs=runs, sessions=sessions)
    device = attach_ray(ray_address, device)
    from nasprof.errors import InputError
    from nasprof.predictors import Predictor
    from nasprof.predictors.validation import validate, validation_spec

    p = Predictor.load(predictor)  # validate() checks its device against --device's (maybe several)
    _rules_check(p, strict)
    all_models = [*(models or []), *(Path(m) for m in (extra_models or []))]
    if extra_models and not models:
        raise InputError(f"unexpected argument {extra_models[0]!r}; ONNX files go after --models")
    if save_predictor is not None and not calibrate:
        raise InputError("--save-predictor writes the predictor --calibrate fits; add --calibrate N")
    spec = validation_spec(p, runs=runs, sessions=sessions)
    with _StepBar("measuring networks") as bar:
        report = validate(p, device, space=space, samples=samples, seed=seed, models=all_models or None,
                          spec=spec, allow_partial=allow_partial, calibrate=calibrate,
                          calibrate_seed=calibrate_seed, in_network=in_network, weight_cost=cold_weights,
                          progress=bar)
    if calibrate and save_predictor is not None:
        assert report.predictor is not None
        report.predictor.save(save_predictor)
        err_console.print(f"wrote {save_predictor}", highlight=False)
    if report.predictor_kind == "kernel" and calibrate:
        _calibration_warning(report.predictor)
    if not emit_json(json_path, report.to_dict()):
        _render_validation(report, p.kind, device, calibrate)
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
    from nasprof.predictors.measured import validate_measurements
    from nasprof.tables.measurements import load_measurement_set

    p = Predictor.load(predictor)
    mset = load_measurement_set(measurements, store=store)
    targets = _measured_targets(mset)
    report = validate_measurements(p, mset, targets)
    if not emit_json(json_path, report.to_dict()):
        s = report.summary
        console.print(f"{len(report.rows)} networks of {mset.label} against {p.kind} predictor of {p.device}",
                      highlight=False)
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
            from nasprof.commands._common import warn

            warn(f"{overlap} of these networks are ones the predictor learned from: their errors flatter it")
    if csv_path is not None:
        import csv

        from nasprof._io import atomic_write_text

        rows = list(report.rows)
        import io

        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
        atomic_write_text(csv_path, buf.getvalue())
        err_console.print(f"wrote {csv_path}", highlight=False)
    if plot_path is not None:
        from nasprof.predictors.adapt.plot import scatter

        scatter(report, plot_path)
        err_console.print(f"wrote {plot_path}", highlight=False)


def _measured_targets(mset: Any) -> list[Any] | None:
    """Architectures of a set that names its space (nb201 strings read with the set's options), so the
    predictor can check them; None to hand it the texts as they are."""
    if mset.space is None and not mset.arch_options:
        return None
    from nasprof.errors import InputError, NasprofError
    from nasprof.space.parse import parse_arch

    out: list[Any] = []
    for r in mset.rows:
        if r.arch is None:
            out.append(r.model)
            continue
        try:
            out.append(parse_arch(r.arch, mset.space, **dict(mset.arch_options)))
        except NasprofError as exc:
            raise InputError(f"{mset.label} line {r.line}: {exc}") from None
    return out


def _predict_list(predictor: Path, archs: Path, device: str | None, json_out: Path | None,
                  csv_path: Path | None, arch_opts: tuple[Any, ...]) -> None:
    """``predict --archs FILE``: every line's architecture in one vectorised call."""
    check_outputs({"--json": json_out, "--csv": csv_path}, [predictor, archs])
    from nasprof.commands._arch_options import arch_from_cli
    from nasprof.errors import InputError, NasprofError
    from nasprof.predictors import Predictor

    try:
        text = archs.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"--archs file {archs} does not exist") from None
    except IsADirectoryError:
        raise InputError(f"--archs {archs} is a directory; give a file with one architecture per "
                         "line") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read --archs file {archs}: {exc}") from None
    lines = [(i, ln.strip()) for i, ln in enumerate(text.splitlines(), start=1)
             if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        raise InputError(f"--archs file {archs} holds no architectures")
    p = Predictor.load(predictor, device=device)
    parse = arch_opts[0] is not None or any(v is not None for v in arch_opts[1:])
    targets: list[Any] = []
    for i, ln in lines:
        try:
            targets.append(arch_from_cli(ln, *arch_opts) if parse else ln)
        except NasprofError as exc:
            raise InputError(f"{archs} line {i}: {exc}") from None
    try:
        lat = p.predict_many(targets)
    except NasprofError as exc:
        raise InputError(f"{archs}: {exc}") from None
    rows = [{"arch": ln, "predicted_ms": float(v)} for (_, ln), v in zip(lines, lat, strict=True)]
    if csv_path is not None:
        import csv
        import io

        from nasprof._io import atomic_write_text

        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=["arch", "predicted_ms"])
        w.writeheader()
        w.writerows(rows)
        atomic_write_text(csv_path, buf.getvalue())
        err_console.print(f"wrote {csv_path}", highlight=False)
    if not emit_json(json_out, {"predictor": p.kind, "device": p.device, "rows": rows}) and csv_path is None:
        console.print("arch,predicted_ms", highlight=False)
        for r in rows:
            console.print(f"{r['arch']},{r['predicted_ms']:.6g}", highlight=False)
