"""`nasprof scale`: compound scaling (EfficientNet) of a base network against latency and memory limits."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from nasprof.commands._common import (
    BoardOption,
    JsonOption,
    _StepBar,
    check_outputs,
    console,
    emit_json,
    err_console,
)


def scale_cmd(
    base: Annotated[
        str, typer.Argument(help="Base network: a preset (efficientnet_b0, ...) or an arch string.")
    ],
    phi: Annotated[
        str, typer.Option("--phi", help="Compound coefficients phi to size, comma-separated.")
    ] = "0,1,2,3",
    predictor: Annotated[
        Path | None,
        typer.Option("--predictor", help="Kernel predictor file: latency of each scaled network, and a grid "
                     "search of (alpha, beta, gamma) by latency per MAC on its device."),
    ] = None,
    coefficients: Annotated[
        str | None,
        typer.Option("--coefficients", help="alpha,beta,gamma to use instead of a grid search "
                     "(EfficientNet's: 1.2,1.1,1.15)."),
    ] = None,
    resolution: Annotated[
        int | None,
        typer.Option("--resolution", help="Resolution of the base network (default: the architecture's own; "
                     "224 for a preset)."),
    ] = None,
    grid_step: Annotated[
        float, typer.Option("--grid-step", help="Step of the (alpha, beta, gamma) grid.")
    ] = 0.1,
    target_ms: Annotated[
        float | None, typer.Option("--target-ms", help="Latency limit in milliseconds (needs --predictor).")
    ] = None,
    board: BoardOption = None,
    json_out: JsonOption = None,
    plot: Annotated[
        Path | None, typer.Option("--plot", help="Write the family against the target as PNG.")
    ] = None,
) -> None:
    """Compound scaling (EfficientNet): depth alpha^phi, width beta^phi, resolution gamma^phi of a base
    network, each member's MACs, latency and memory against the limits."""
    from nasprof.errors import InputError
    from nasprof.search.scaling import scale_family

    check_outputs({"--json": json_out, "--plot": plot}, [predictor])
    if plot is not None and plot.suffix.lower() != ".png":
        raise InputError(f"--plot writes a PNG; give a path ending in .png, got {plot}")
    phis = _floats(phi, "--phi")
    coefs = None
    if coefficients is not None:
        values = _floats(coefficients, "--coefficients")
        if len(values) != 3:
            raise InputError(f"--coefficients takes alpha,beta,gamma, got {coefficients!r}")
        coefs = (values[0], values[1], values[2])
    if target_ms is not None and predictor is None:
        raise InputError(
            "--target-ms needs --predictor (a kernel predictor) to predict each network's latency"
        )
    model = None
    if predictor is not None:
        from nasprof.predictors import load_predictor

        model = load_predictor(predictor)
    with _StepBar("scaling") as bar:
        result = scale_family(
            base, phis, coefficients=coefs, base_resolution=resolution, grid_step=grid_step, predictor=model,
            target_ms=target_ms, board=board, progress=lambda done, total, what: bar(done, total, what),
        )
    if not emit_json(json_out, result.to_dict()):
        _render_scaling(result)
    if plot is not None:
        from nasprof.search.plot import plot_scaling

        plot_scaling(result, plot)
        err_console.print(f"wrote {plot}", highlight=False)


def _floats(text: str, flag: str) -> list[float]:
    from nasprof.errors import InputError

    items = text.split(",")
    if any(not x.strip() for x in items):  # "0,,1" is a typo, not a shorter list
        raise InputError(f"{flag} has an empty item in {text!r}; write comma-separated numbers, e.g. 0,1,2")
    try:
        return [float(x) for x in items]
    except ValueError:
        raise InputError(f"{flag} takes comma-separated numbers, got {text!r}") from None


def _render_scaling(result: Any) -> None:
    a, b, g = result.coefficients
    table = Table(title=f"{result.base} scaled by alpha={a:g} beta={b:g} gamma={g:g}")
    cols = ["phi", "depth", "width", "px", "MMACs", "M params"]
    fam = result.family
    if any(c.latency_ms is not None for c in fam):
        cols.append("latency ms")
    if any(c.sram_bytes is not None for c in fam):
        cols += ["SRAM KiB", "Flash KiB"]
    cols.append("fits")
    for col in cols:
        table.add_column(col, justify="right")
    for c in fam:
        row = [f"{c.phi:g}", f"{c.depth:.3f}", f"{c.width:.3f}", str(c.resolution), f"{c.macs / 1e6:.1f}",
               f"{c.params / 1e6:.2f}"]
        if "latency ms" in cols:
            row.append("-" if c.latency_ms is None else f"{c.latency_ms:.3f}")
        if "SRAM KiB" in cols:
            row += [f"{(c.sram_bytes or 0) / 1024:.0f}", f"{(c.flash_bytes or 0) / 1024:.0f}"]
        row.append("yes" if c.feasible else "no: " + "; ".join(c.violations))
        table.add_row(*row)
    console.print(table)
    console.print(result.how, highlight=False)
