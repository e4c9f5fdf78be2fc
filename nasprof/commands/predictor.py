"""`nasprof predictor fit|adapt|show` and the phrases other commands use to describe a predictor."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from nasprof.commands._arch_options import (
    CellChannelsOption,
    CellsPerStageOption,
    InputOption,
    OutputsOption,
    SpaceOption,
)
from nasprof.commands._common import (
    CalibrateSeedOption,
    ColdWeightsOption,
    DevicesOption,
    ForceOption,
    InNetworkOption,
    JsonOption,
    MeasureOptLevelOption,
    RayOption,
    RunsOption,
    SeedOption,
    StoreOption,
    ThreadsOption,
    _StepBar,
    attach_ray,
    check_counts,
    check_outputs,
    console,
    emit_json,
    err_console,
    warn,
)

predictor_app = typer.Typer(help="Latency predictors: fit, adapt, show.", no_args_is_help=True,
                            rich_markup_mode=None)


@predictor_app.command("fit")
def predictor_fit_cmd(
    output: Annotated[Path, typer.Option("--output", "-o", help="Predictor file to write (JSON).")],
    table: Annotated[Path | None, typer.Option("--table", help="Fit a LUT predictor on this table.")] = None,
    accuracy: Annotated[
        Path | None,
        typer.Option("--accuracy", help="Fit an accuracy predictor on these (architecture, accuracy) pairs "
                     "(CSV/Parquet; a few hundred), validated on held-out pairs."),
    ] = None,
    kernels: Annotated[bool, typer.Option("--kernels", help="Fit a kernel-level regressor.")] = False,
    device: DevicesOption = "cpu",
    budget: Annotated[
        int,
        typer.Option(help="Kernel measurements to spend (with --kernels); 1500 is what README's figures "
                     "use (~3 min on a 2-core CPU)."),
    ] = 1500,
    threads: ThreadsOption = 1,
    opt_level: MeasureOptLevelOption = "all",
    runs: RunsOption = 25,
    seed: SeedOption = 0,
    overhead_ms: Annotated[
        float | None, typer.Option(help="Per-call overhead (ms) to subtract per table entry (LUT).")
    ] = None,
    measure_overhead: Annotated[
        bool, typer.Option("--measure-overhead", help="Measure the per-call overhead on the table's device.")
    ] = False,
    calibrate: Annotated[
        int,
        typer.Option(
            help="Measure this many sampled architectures end to end and calibrate on them: the LUT's "
            "family factors and in-network ratios (--table; 100 for README's figures), or the kernel "
            "predictor's in-network factors (--kernels; 20-30 is typical)."
        ),
    ] = 0,
    calibrate_seed: CalibrateSeedOption = 1000,
    in_network: InNetworkOption = True,
    cold_weights: ColdWeightsOption = True,
    force: ForceOption = False,
    ray_address: RayOption = None,
) -> None:
    """Fit a predictor: from a lookup table (--table), by measuring sampled kernels (--kernels), or an
    accuracy predictor from (architecture, accuracy) pairs (--accuracy)."""
    check_outputs({"--output": output}, [table, accuracy])
    if accuracy is not None:
        _fit_accuracy(accuracy, output, seed, other=table is not None or kernels)
        return
    check_counts(force, budget=budget, calibrate=calibrate, runs=runs)
    device = attach_ray(ray_address, device)
    from nasprof.errors import InputError

    if (table is None) == (not kernels):
        raise InputError("give exactly one of --table PATH (lookup table) or --kernels (regression)")
    if table is not None:
        from nasprof.predictors.lut.fit import fit_lut_predictor

        with _StepBar("calibrating") as bar:
            lut = fit_lut_predictor(table, overhead_ms=overhead_ms, measure_overhead=measure_overhead,
                                    calibrate=calibrate, calibrate_seed=calibrate_seed, in_network=in_network,
                                    progress=bar)
        lut.save(output)
        _render_lut_fit(lut, output)
        return
    from nasprof.predictors.kernel.trainer import fit_kernel_predictor, kernel_spec

    spec = kernel_spec(threads=threads, runs=runs, opt_level=opt_level, seed=seed)
    with _StepBar("measuring kernels") as bar:
        p = fit_kernel_predictor(device, budget=budget, spec=spec, seed=seed, progress=bar,
                                 calibrate=calibrate, calibrate_seed=calibrate_seed, weight_cost=cold_weights)
    p.save(output)
    _render_kernel_fit(p, device, output)


def _render_lut_fit(p: Any, output: Path) -> None:
    """What ``predictor fit --table`` wrote: entries, device, overhead, calibration and its error."""
    err_console.print(f"wrote {output}: lookup-table predictor, {len(p.entries)} entries, "
                      f"device {p.device}, overhead {p.overhead_ms:.4f} ms, {p.calibration_summary()}",
                      highlight=False)
    _warn_incomplete(p)
    loo = p.training_error.get("leave_one_out")
    if loo is not None:
        before = p.training_error["before"]
        console.print(f"calibrated on {p.training_error['networks']} sampled architectures: RMSPE "
                      f"{before['rmspe']:.1%} uncalibrated -> {loo['rmspe']:.1%} (leave-one-out), within "
                      f"±5% {loo['within_5pct']:.0%}, ±10% {loo['within_10pct']:.0%}", highlight=False)


def _render_kernel_fit(p: Any, device: str, output: Path) -> None:
    """What ``predictor fit --kernels`` wrote: kernel types, rules, training error, calibration."""
    err_console.print(f"wrote {output}: kernel predictor for {device}, types {', '.join(p.kernel_types)}",
                      highlight=False)
    console.print(f"kernel rules detected on {p.rules.identity()}", highlight=False)
    for line in p.rules.unexplained:
        warn(f"the split does not reproduce probe {line}")
    _render_training_error(p.training_error)
    if p.calibration is not None:
        info = p.calibration.info
        console.print(
            f"calibrated on {info['networks']} sampled architectures: RMSPE "
            f"{info['before']['rmspe']:.1%} uncalibrated -> {info['leave_one_out']['rmspe']:.1%} "
            f"(leave-one-out); device speed vs kernel sampling x{p.calibration.speed_ratio:.3f} (anchors); "
            f"cold weights {p.calibration.ms_per_weight_mb:.4f} ms/MB",
            highlight=False,
        )
        _calibration_warning(p)


def _fit_accuracy(pairs: Path, output: Path, seed: int, other: bool) -> None:
    from nasprof.errors import InputError
    from nasprof.predictors.accuracy import fit_accuracy_predictor

    if other:
        raise InputError("--accuracy fits an accuracy predictor on its own: drop --table/--kernels")
    p = fit_accuracy_predictor(pairs, seed=seed)
    p.save(output)
    v = p.validation
    console.print(f"{p.space} accuracy predictor ({p.kind}, {v['n_train']} training pairs): Kendall τ "
                  f"{v['kendall_tau']:.3f} · Spearman ρ {v['spearman_rho']:.3f} · RMSE {v['rmse']:.4g} on "
                  f"{v['n_test']} held-out pairs", highlight=False)
    err_console.print(f"wrote {output}", highlight=False)


def _refit_warning(p: Any) -> None:
    """A kernel predictor that should be refitted (``KernelPredictor.refit_reason``)."""
    stale = getattr(p, "refit_reason", None)
    if stale:
        warn(f"{stale}")


def _rules_check(p: Any, strict: bool) -> None:
    """A kernel predictor whose rules were detected on another device or onnxruntime: a warning, or with
    ``--strict`` an error."""
    from nasprof.errors import PredictorError

    for msg in p.compatibility():
        if strict:
            raise PredictorError(f"{msg} (--strict)")
        warn(f"{msg}")


def _calibration_warning(p: Any) -> None:
    """A stale kernel predictor, or a kernel calibration that predicts its own held-out networks worse than
    no calibration (``Predictor.warnings`` without the rules check, which ``_rules_check`` owns)."""
    rules_lines = set(p.compatibility())
    for w in p.warnings():
        if w not in rules_lines:
            warn(w)


def _render_training_error(training: dict[str, Any]) -> None:
    per_type = training.get("per_type") or {}
    if not per_type:
        return
    t = Table(title=f"training error ({training.get('method', '')})")
    for col in ("kernel type", "n", "RMSPE", "within ±10%"):
        t.add_column(col, justify="left" if col == "kernel type" else "right")
    for k, v in sorted(per_type.items()):
        t.add_row(k, str(v["n"]), f"{v['rmspe']:.1%}", f"{v['within_10pct']:.0%}")
    console.print(t)


@predictor_app.command("show")
def predictor_show_cmd(
    path: Annotated[Path, typer.Argument(help="Predictor file.")],
    json_out: JsonOption = None,
) -> None:
    """Show a predictor's kind, device, measurement settings, features and training error."""
    check_outputs({"--json": json_out}, [path])
    from nasprof.predictors import Predictor

    p = Predictor.load(path)
    d = p.describe()
    if emit_json(json_out, d):
        return
    t = Table(title=str(path), show_header=False)
    t.add_column("field")
    t.add_column("value")
    for k in ("kind", "device", "schema_version", "measure_spec", "features", "metadata"):
        t.add_row(k, json.dumps(d.get(k)) if not isinstance(d.get(k), str) else d[k])
    for label, text in d["details"].items():
        t.add_row(label, text)
    console.print(t)
    _render_training_error(p.training_error)
    for w in d["warnings"]:
        warn(w)


def _warn_incomplete(p: Any) -> None:
    """A table that misses layers of its space fits a predictor that fails on the architectures using them:
    say so now, not at the first search."""
    from nasprof.predictors.lut.fit import missing_layers

    gap = missing_layers(p)
    if gap is not None and gap[0]:
        warn(f"the table lacks {gap[0]} of the {gap[1]} distinct layers of {p.space} at "
             f"{p.resolution} px: architectures that use them cannot be predicted; finish it with "
             "`nasprof table build` (same --db resumes)")


@predictor_app.command("adapt")
def predictor_adapt_cmd(
    output: Annotated[Path, typer.Option("--output", "-o", help="Predictor file to write (JSON), or with "
                                         "--plan the list of networks to measure (one per line).")],
    measurements: Annotated[
        str | None, typer.Option("--measurements", help="The target device's end-to-end measurements: a "
                                 "CSV/Parquet file (columns arch, latency_ms) or a stored set NAME[@vN].")
    ] = None,
    source: Annotated[
        Path | None, typer.Option("--from", help="A predictor of another device to re-weight (default for "
                                  "nb201: none, the space's own structure).")
    ] = None,
    plan_k: Annotated[
        int | None, typer.Option("--plan", help="Instead of adapting: name the K networks most worth "
                                 "measuring (a D-optimal design), written to --output.")
    ] = None,
    space: SpaceOption = None,
    input_shape: InputOption = None,
    outputs: OutputsOption = None,
    cell_channels: CellChannelsOption = None,
    cells_per_stage: CellsPerStageOption = None,
    device: Annotated[str | None, typer.Option(
        "--device-name", help="Name of the target device recorded in the predictor (default: the "
        "measurements' device).")] = None,
    store: StoreOption = None,
    json_out: JsonOption = None,
    force: ForceOption = False,
) -> None:
    """Learn a device nasprof can only time end to end from a few whole-network measurements."""
    check_outputs({"--output": output, "--json": json_out}, [p for p in (source, store) if p is not None])
    from nasprof.predictors.adapt.api import adapt_from_measurements, plan_networks

    options = {"input": input_shape, "outputs": outputs, "C": cell_channels, "N": cells_per_stage}
    if plan_k is not None:
        if measurements is not None:
            from nasprof.errors import InputError

            raise InputError("--plan names networks to measure; adapt with --measurements afterwards")
        check_counts(force, plan=plan_k)
        chosen = plan_networks(plan_k, space=space or "nb201", options=options, source=source)
        from nasprof._io import atomic_write_text

        atomic_write_text(output, "".join(f"{a}\n" for a in chosen))
        err_console.print(f"wrote {output}: {len(chosen)} networks to measure, one per line", highlight=False)
        return
    report = adapt_from_measurements(measurements, space=space, options=options, source=source,
                                     device=device, store=store)
    report.predictor.save(output)
    err = report.predictor.training_error
    doc = {"output": str(output), "device": report.predictor.device, "n": err.get("n"),
           "loo_rmspe": err.get("loo_rmspe"), "loo_within_10pct": err.get("loo_within_10pct"),
           "chosen": report.candidates[0][0],
           "candidates": [{"decomposition": d, "loo_rms_log_error": s} for d, s in report.candidates]}
    if not emit_json(json_out, doc):
        t = Table(title=f"adapted to {report.predictor.device} from {err.get('n')} measured networks")
        t.add_column("decomposition")
        t.add_column("leave-one-out RMS log error", justify="right")
        for i, (d, s) in enumerate(report.candidates[:5]):
            t.add_row(("→ " if i == 0 else "  ") + d, f"{s:.4f}")
        console.print(t)
        console.print(f"leave-one-out: RMSPE {err.get('loo_rmspe', float('nan')):.1%} · within ±10% "
                      f"{err.get('loo_within_10pct', 0):.0%}", highlight=False)
        for w in report.predictor.warnings():
            warn(w)
    err_console.print(f"wrote {output}", highlight=False)
