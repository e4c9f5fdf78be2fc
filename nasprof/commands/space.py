"""`nasprof space list|show|sample|layers|quality|edf`, `nasprof export` and `nasprof count`."""

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
    nb201_options,
)
from nasprof.commands._common import (
    BoardOption,
    ForceOption,
    JsonOption,
    OptLevelOption,
    OrtStyleOption,
    _fmt_count,
    _StepBar,
    check_counts,
    check_outputs,
    console,
    emit_json,
    err_console,
)

space_app = typer.Typer(help="Search spaces: list, show, sample, layers, quality, edf, ops-config.",
                        no_args_is_help=True, rich_markup_mode=None)


@space_app.command("list")
def space_list(
    json_out: JsonOption = None,
) -> None:
    """List search spaces and network presets."""
    check_outputs({"--json": json_out})
    from nasprof.space import get_preset, get_space, list_presets, list_spaces

    spaces = [get_space(n) for n in list_spaces()]
    presets = [(n, get_preset(n)) for n in list_presets()]
    if json_out is not None:
        doc = {
            "spaces": [{"name": s.name, "blocks": s.num_blocks, "size": s.size(),
                        "distinct_layers_224": len(s.distinct_layers(224)), "description": s.description}
                       for s in spaces],
            "presets": [
                {"name": n, "macs": net.macs, "params": net.params, "resolution": 224} for n, net in presets
            ],
        }
        if emit_json(json_out, doc):
            return
    t = Table(title="search spaces")
    for col in ("name", "blocks", "size", "distinct layers @224", "description"):
        t.add_column(col, justify="right" if col in ("blocks", "size", "distinct layers @224") else "left")
    for s in spaces:
        distinct = str(len(s.distinct_layers(224)))
        t.add_row(s.name, str(s.num_blocks), f"{s.size():.3e}", distinct, s.description)
    console.print(t)
    t = Table(title="presets (width 1.0, 224x224)")
    for col in ("name", "MACs", "params", "layers"):
        t.add_column(col, justify="left" if col == "name" else "right")
    for n, net in presets:
        t.add_row(n, _fmt_count(net.macs), _fmt_count(net.params), str(len(net.layers())))
    console.print(t)


@space_app.command("show")
def space_show(
    name: Annotated[str, typer.Argument(help="Space name (see `nasprof space list`).")],
    json_out: JsonOption = None,
) -> None:
    """Show a space's per-block choices and its size."""
    check_outputs({"--json": json_out})
    from nasprof.space import get_space

    space = get_space(name)
    summary = space.summary()
    summary["distinct_layers_224"] = len(space.distinct_layers(224))
    if summary.get("classes"):
        summary["distinct_layers_default"] = len(space.distinct_layers())
    if emit_json(json_out, summary):
        return
    choices = summary["choices"]
    factors = list(dict.fromkeys(k for block in choices for k in block))
    # Factors with the same choices in every block are printed once, so the table stays narrow.
    shared = [f for f in factors if all(block.get(f) == choices[0].get(f) for block in choices)]

    def fmt(values: list[Any]) -> str:
        return ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values)

    console.print(Text.assemble((space.name, "bold"), f": {space.description}"))
    for f in shared:
        console.print(f"  {f} (every block): {fmt(choices[0][f])}", highlight=False)
    t = Table()
    t.add_column("block", justify="right")
    per_block = [f for f in factors if f not in shared]
    for f in per_block:
        t.add_column(f)
    for i, block in enumerate(choices):
        t.add_row(str(i), *(fmt(block.get(f, [])) for f in per_block))
    console.print(t)
    console.print(
        f"size: {summary['size']} architectures ({summary['size']:.3e}); "
        f"distinct layers at 224: {summary['distinct_layers_224']}",
        highlight=False,
    )
    if summary.get("formula"):
        console.print(f"size formula: {summary['formula']}", highlight=False)
    if summary.get("classes"):
        console.print(f"isomorphism classes: {summary['classes']}; options (defaults): "
                      + ", ".join(f"{k}={v}" for k, v in summary["options"].items())
                      + f"; e.g. {summary['example']}", highlight=False)


@space_app.command("sample")
def space_sample(
    name: Annotated[str, typer.Argument(help="Space name (see `nasprof space list`).")],
    n: Annotated[int, typer.Option("--n", min=0, help="How many architectures.")] = 5,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same architectures.")] = 0,
    resolution: Annotated[int | None, typer.Option(help="Input resolution (default: the space's).")] = None,
    width: Annotated[float, typer.Option(help="Global width multiplier.")] = 1.0,
    input: InputOption = None,
    outputs: OutputsOption = None,
    cell_channels: CellChannelsOption = None,
    cells_per_stage: CellsPerStageOption = None,
    unique: Annotated[bool, typer.Option("--unique", help="nb201: of distinct isomorphism classes.")] = False,
    json_out: JsonOption = None,
    force: ForceOption = False,
) -> None:
    """Sample architectures uniformly from a space (seeded); nb201 prints NAS-Bench-201 strings."""
    check_outputs({"--json": json_out})
    check_counts(force, n=n)
    from nasprof.errors import InputError
    from nasprof.space import get_space
    from nasprof.space.spaces.nb201 import Nb201Space

    space = get_space(name)
    opts = nb201_options(input, outputs, cell_channels, cells_per_stage)
    if isinstance(space, Nb201Space):
        archs = space.sample(n, seed=seed, resolution=resolution, width=width, unique=unique, **opts)
    elif opts or unique:
        raise InputError("--input, --outputs, --cell-channels, --cells-per-stage and --unique apply to nb201")
    else:
        archs = space.sample(n, seed=seed, resolution=resolution, width=width)
    if json_out is not None:
        docs = [dict(a.to_dict(), macs=a.macs, params=a.params) for a in archs]
        if emit_json(json_out, docs):
            return
    t = Table(title=f"{n} samples from {name} (seed {seed})")
    for col in ("#", "MACs", "params", "architecture"):
        t.add_column(col, justify="left" if col == "architecture" else "right", overflow="fold")
    for i, a in enumerate(archs):
        t.add_row(str(i), _fmt_count(a.macs), _fmt_count(a.params), a.to_string())
    console.print(t)


@space_app.command("layers")
def space_layers(
    name: Annotated[str, typer.Argument(help="Space name (see `nasprof space list`).")],
    resolution: Annotated[int | None, typer.Option(help="Input resolution (default: the space's).")] = None,
    width: Annotated[float, typer.Option(help="Global width multiplier.")] = 1.0,
    json_out: JsonOption = None,
) -> None:
    """List every distinct layer (table key) of a space: what a latency table must measure."""
    check_outputs({"--json": json_out})
    from nasprof.space import get_space

    layers = get_space(name).distinct_layers(resolution, width=width)
    if json_out is not None:
        docs = [dict(x.to_dict(), key=x.key, macs=x.macs, params=x.params) for x in layers]
        if emit_json(json_out, docs):
            return
    t = Table(title=f"{len(layers)} distinct layers of {name}")
    for col in ("key", "MACs", "params"):
        t.add_column(col, justify="left" if col == "key" else "right", overflow="fold")
    for layer in layers:
        t.add_row(layer.key, _fmt_count(layer.macs), _fmt_count(layer.params))
    console.print(t)


def _numbers(text: str, flag: str, kind: type = float) -> list[Any]:
    import math

    from nasprof.errors import InputError

    items = text.split(",")
    if any(not x.strip() for x in items):  # "0.5,," is a typo, not a shorter list
        raise InputError(f"{flag} has an empty item in {text!r}; write comma-separated values, e.g. 0.5,0.75")
    try:
        values = [kind(x) for x in items]
    except ValueError:
        raise InputError(f"{flag} takes comma-separated {'integers' if kind is int else 'numbers'}, "
                         f"got {text!r}") from None
    if any(not math.isfinite(v) or v <= 0 for v in values):
        raise InputError(f"{flag} takes positive finite values, got {text!r}")
    return values


def _names(text: str, flag: str) -> list[str]:
    from nasprof.errors import InputError

    names = [x.strip() for x in text.split(",")]
    if any(not x for x in names):  # "a,,b" is a typo, not a shorter list
        raise InputError(f"{flag} has an empty item in {text!r}; write comma-separated names, e.g. "
                         "mobilenetv2,mnasnet")
    twice = sorted({x for x in names if names.count(x) > 1})
    if twice:
        raise InputError(f"{flag} names {', '.join(twice)} twice; name each space once")
    return names


def _load_predictors(paths: list[Path] | None) -> list[Any]:
    from nasprof.predictors import Predictor

    return [Predictor.load(p) for p in paths or []]


PlotOption = Annotated[Path | None, typer.Option("--plot", help="Write the curves as a PNG.")]
PredictorsOption = Annotated[
    list[Path] | None,
    typer.Option("--predictor", help="Lookup-table predictor file; repeat for one per resolution or space."),
]


@space_app.command("quality")
def space_quality_cmd(
    name: Annotated[str, typer.Argument(help="Space name (see `nasprof space list`).")],
    widths: Annotated[
        str | None, typer.Option("--widths", help="Width multipliers, comma-separated (default 0.5,0.75,1.0; "
                                                  "with --predictor 1.0, the width tables are built at).")
    ] = None,
    resolutions: Annotated[
        str | None, typer.Option("--resolutions", help="Input resolutions, comma-separated (default "
                                                       "96,128,160,192,224; with --predictor, theirs).")
    ] = None,
    n: Annotated[int, typer.Option("--n", help="Models sampled per grid cell.")] = 1000,
    seed: Annotated[int, typer.Option("--seed", help="Random seed: the same seed, the same samples.")] = 0,
    device: BoardOption = None,
    predictor: PredictorsOption = None,
    target_ms: Annotated[
        float | None, typer.Option("--target-ms", help="Latency limit in milliseconds (needs --predictor).")
    ] = None,
    min_share: Annotated[
        float, typer.Option("--min-share", help="Share of a cell's models that must fit for it to be chosen.")
    ] = 0.1,
    json_out: JsonOption = None,
    plot: PlotOption = None,
    force: ForceOption = False,
) -> None:
    """TinyNAS's design-space choice: per width x resolution cell, the share of sampled models that fit the
    constraints and their MACs; recommends the cell whose fitting models have the most MACs on average."""
    check_outputs({"--json": json_out, "--plot": plot}, list(predictor or []))
    check_counts(force, n=n)
    from nasprof.search.quality import space_quality

    predictors = _load_predictors(predictor)
    if widths is None:
        widths = "1.0" if predictors else "0.5,0.75,1.0"
    if resolutions is None:
        known = sorted({int(r) for p in predictors if (r := getattr(p, "resolution", None)) is not None})
        resolutions = ",".join(map(str, known)) or "96,128,160,192,224"
    with _StepBar("sampling") as bar:
        result = space_quality(
            name, _numbers(widths, "--widths"), _numbers(resolutions, "--resolutions", int), n=n, seed=seed,
            device=device, predictors=predictors, target_ms=target_ms, min_share=min_share,
            on_progress=lambda done, total: bar(done, total, "cells"),
        )
    if plot is not None:
        from nasprof.search.plot import plot_quality

        plot_quality(result, plot)
        err_console.print(f"wrote {plot}", highlight=False)
    if emit_json(json_out, result.to_dict()):
        return
    limits = result.constraint or {}
    memory = (f"{limits['device']} (SRAM {limits['sram_bytes'] // 1024} KiB, "
              f"Flash {limits['flash_bytes'] // 1024} KiB)") if limits else ""
    what = [memory, f"latency ≤ {result.target_ms:g} ms" if result.target_ms else ""]
    t = Table(title=f"{result.space}: {result.n} models per cell under {' and '.join(x for x in what if x)}")
    for col in ("width", "px", "fit", "mean MMACs", "p10 / p50 / p90 MMACs", ""):
        t.add_column(col, justify="right")
    for i, c in enumerate(result.cells):
        q = c.summary()["macs_quantiles"]
        spread = " / ".join(f"{q[k] / 1e6:.1f}" for k in ("p10", "p50", "p90")) if q else "-"
        mean = f"{c.mean_macs / 1e6:.1f}" if c.mean_macs is not None else "-"
        t.add_row(f"{c.width:g}", str(c.resolution), f"{c.share:.0%}", mean, spread,
                  "recommended" if i == result.recommended else "")
    console.print(t)
    best = result.best
    if best is None:
        top = max(result.cells, key=lambda c: c.share)
        console.print(f"no cell has {result.min_share:.0%} of its models fitting (best: width "
                      f"{top.width:g} at {top.resolution} px, {top.share:.1%}); lower --min-share or relax "
                      "the constraint", highlight=False)
    else:
        mmacs = (best.mean_macs or 0.0) / 1e6
        console.print(f"recommended: width {best.width:g} at {best.resolution} px ({best.share:.0%} of its "
                      f"models fit, mean {mmacs:.1f} MMACs)", highlight=False)


@space_app.command("edf")
def space_edf_cmd(
    spaces: Annotated[str, typer.Option("--spaces", help="Two or more space names, comma-separated.")],
    metric: Annotated[str, typer.Option("--metric", help="macs, params, sram (needs --board) or latency "
                                                         "(needs a --predictor per space).")] = "macs",
    n: Annotated[int, typer.Option("--n", help="Models sampled per space.")] = 1000,
    seed: Annotated[int, typer.Option("--seed", help="Random seed: the same seed, the same samples.")] = 0,
    resolution: Annotated[int | None, typer.Option(
        help="Input resolution (default: each space's; for latency, its predictor's).")] = None,
    width: Annotated[float, typer.Option(help="Global width multiplier.")] = 1.0,
    device: Annotated[
        str | None, typer.Option("--board", help="MCU board whose SRAM the sram metric uses (stm32f746).")
    ] = None,
    predictor: PredictorsOption = None,
    json_out: JsonOption = None,
    plot: PlotOption = None,
    force: ForceOption = False,
) -> None:
    """RegNet's comparison of design spaces: the empirical distribution function of a metric over random
    models of each space, and the Kolmogorov-Smirnov distance between every pair."""
    check_outputs({"--json": json_out, "--plot": plot}, list(predictor or []))
    check_counts(force, n=n)
    from nasprof.search.quality import space_edf

    names = _names(spaces, "--spaces")
    predictors = _load_predictors(predictor)
    with _StepBar("sampling") as bar:
        result = space_edf(names, metric, n=n, seed=seed, resolution=resolution, width=width, device=device,
                           predictors=predictors, progress=bar)
    if plot is not None:
        from nasprof.search.plot import plot_edf

        plot_edf(result, plot)
        err_console.print(f"wrote {plot}", highlight=False)
    doc = result.to_dict()
    if emit_json(json_out, doc):
        return
    t = Table(title=f"{result.metric} ({result.unit}) of {result.n} random models per space")
    for col in ("space", "p10", "median", "p90"):
        t.add_column(col, justify="left" if col == "space" else "right")
    for name, d in doc["spaces"].items():
        q = d["quantiles"]
        t.add_row(name, f"{q['p10']:.4g}", f"{d['median']:.4g}", f"{q['p90']:.4g}")
    console.print(t)
    for row in doc["ks"]:
        console.print(f"KS distance {row['a']} / {row['b']}: {row['distance']:.3f}", highlight=False)


def ops_config_cmd(
    name: Annotated[str, typer.Argument(help="Space name (see `nasprof space list`).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Operator config to write "
                                                              "(e.g. required_operators.config).")],
    resolution: Annotated[int | None, typer.Option(help="Input resolution (default: the space's).")] = None,
    width: Annotated[float, typer.Option(help="Global width multiplier.")] = 1.0,
    int8: Annotated[
        bool, typer.Option("--int8", help="For int8 (QDQ) tables, as `table build --int8`.")
    ] = False,
    preset: Annotated[
        list[str] | None, typer.Option("--preset", help="Also cover this preset (repeatable).")
    ] = None,
    samples: Annotated[
        int, typer.Option("--samples", min=0, help="Whole networks of the space covered (validate runs "
                                                   "them).")
    ] = 3,
    opt_level: OptLevelOption = "all",
    ort_style: OrtStyleOption = "fixed",
    seed: Annotated[int, typer.Option(help="Seed of the sampled networks and the weights.")] = 0,
) -> None:
    """Write the reduced-build operator config (onnxruntime's --include_ops_by_config format) that covers
    every layer a table build of SPACE measures: build a minimal runner with it and it can measure the
    whole table."""
    check_outputs({"--output": output})
    from nasprof.space.ort_format import space_ops_config

    with _StepBar("converting") as bar:
        result = space_ops_config(name, output, resolution=resolution, width=width, int8=int8,
                                  presets=list(preset or []), samples=samples, opt_level=opt_level,
                                  style=ort_style, seed=seed, progress=lambda d, t: bar(d, t, "models"))
    n_ops = sum(len(v) for v in result.ops.values())
    err_console.print(f"wrote {result.path}: {n_ops} operators from {result.layer_models} layer models and "
                      f"{result.network_models} networks", highlight=False)
    for (domain, opset), ops in sorted(result.ops.items()):
        console.print(f"{domain} opset {opset}: {', '.join(sorted(ops))}", highlight=False)
