"""`nasprof compare`: an A/B of measurements (ratio of medians, its interval, a test and a verdict)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from nasprof.commands._common import (
    JsonOption,
    _fmt_ms,
    check_outputs,
    console,
    emit_json,
    err_console,
    warn,
)


def compare_cmd(
    files: Annotated[
        list[Path],
        typer.Argument(help="Measurement JSON files (`measure --json`); the first is the baseline."),
    ],
    alpha: Annotated[float, typer.Option("--alpha", help="Significance level of the verdict.")] = 0.05,
    json_out: JsonOption = None,
    plot: Annotated[
        Path | None, typer.Option("--plot", help="Write the sample distributions as a PNG.")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Compare even when device or timing settings "
                                                        "differ (the differences are listed).")] = False,
) -> None:
    """Compare measurements with the first (pyperf's compare_to): ratio of medians with a 95% bootstrap
    interval, Mann-Whitney U, a faster / slower / not significant verdict, and per-block deltas."""
    check_outputs({"--json": json_out, "--plot": plot}, list(files))
    from nasprof.profiler.compare import (
        compare_measurements,
        comparison_document,
        load_measurement,
        plot_comparison,
    )

    measurements = [load_measurement(f) for f in files]
    labels = [str(f) for f in files]
    comparisons = compare_measurements(measurements, labels, alpha=alpha, force=force)
    if plot is not None:
        err_console.print(f"wrote {plot_comparison(measurements, labels, plot)}", highlight=False)
    if emit_json(json_out, comparison_document(comparisons, measurements, labels)):
        return
    _render_comparisons(comparisons, labels[0], measurements[0].median_ms)


def _render_comparisons(comparisons: list[Any], baseline: str, baseline_ms: float) -> None:
    """One row per measurement against the baseline, then each one's warnings and per-block deltas."""
    t = Table(title=f"against {baseline} (median {_fmt_ms(baseline_ms)} ms)")
    for col in ("measurement", "median ms", "ratio", "95% CI", "p (Mann-Whitney)", "verdict"):
        t.add_column(col, justify="left" if col in ("measurement", "verdict") else "right")
    for c in comparisons:
        style = {"faster": "green", "slower": "red"}.get(c.verdict.removeprefix("estimated "), "")
        ci = "—" if c.estimated else f"{c.ci95[0]:.3f}–{c.ci95[1]:.3f}"
        p = "— (estimates)" if c.estimated else f"{c.p_value:.2g}"
        t.add_row(c.other, _fmt_ms(c.other_median_ms), f"{c.ratio:.3f}", ci, p, Text(c.verdict, style=style))
    console.print(t)
    for c in comparisons:
        for d in c.differences:
            warn(f"{c.other}: {d} (compared because of --force)")
        if c.resampled == "samples":
            console.print(f"{c.other}: fewer than 5 sessions, so the interval resamples single runs and "
                          "is too narrow when sessions differ; measure with --sessions 5 or more",
                          highlight=False)
        if c.per_block:
            bt = Table(title=f"{c.other}: where the time changed (per block, largest first)")
            for col in ("block", "baseline ms", "other ms", "delta ms"):
                bt.add_column(col, justify="left" if col == "block" else "right")
            for row in c.per_block[:10]:
                bt.add_row(row["block"], _fmt_ms(row["baseline_ms"]) if row["baseline_ms"] else "-",
                           _fmt_ms(row["other_ms"]) if row["other_ms"] else "-", f"{row['delta_ms']:+.4f}")
            console.print(bt)
