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
    SpaceOption,
    arch_from_cli,
    nb201_options,
    wants_arch,
)
from nasprof.commands._common import (
    ForceOption,
    JsonOption,
    _fmt_count,
    _StepBar,
    check_counts,
    check_outputs,
    console,
    emit_json,
    err_console,
)

space_app = typer.Typer(help="Search spaces: list, show, sample.", no_args_is_help=True)


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
    from nasprof.errors import InputError

    try:
        values = [kind(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise InputError(f"{flag} takes comma-separated {'integers' if kind is int else 'numbers'}, "
                         f"got {text!r}") from None
    if not values:
        raise InputError(f"{flag} needs at least one value")
    return values


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
    device: Annotated[
        str | None, typer.Option("--device", help="MCU board whose SRAM and Flash must fit (stm32f746).")
    ] = None,
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
    metric: Annotated[str, typer.Option("--metric", help="macs, params, sram (needs --device) or latency "
                                                         "(needs a --predictor per space).")] = "macs",
    n: Annotated[int, typer.Option("--n", help="Models sampled per space.")] = 1000,
    seed: Annotated[int, typer.Option("--seed", help="Random seed: the same seed, the same samples.")] = 0,
    resolution: Annotated[int | None, typer.Option(
        help="Input resolution (default: each space's; for latency, its predictor's).")] = None,
    width: Annotated[float, typer.Option(help="Global width multiplier.")] = 1.0,
    device: Annotated[
        str | None, typer.Option("--device", help="MCU board whose SRAM the sram metric uses (stm32f746).")
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

    result = space_edf([x.strip() for x in spaces.split(",") if x.strip()], metric, n=n, seed=seed,
                       resolution=resolution, width=width, device=device,
                       predictors=_load_predictors(predictor))
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


def _convert_onnx(src: Path, output: Path, kind: str, *, int8: bool, seed: int, opt_level: str,
                  ort_style: str, network_options: dict[str, Any]) -> None:
    """`export FILE.onnx`: a model the user brings, quantised to int8 (--int8) and/or converted to the ORT
    format (-o FILE.ort); the options that build a network do not apply to it."""
    import tempfile

    from nasprof.errors import InputError

    given = [flag for flag, v in network_options.items() if v is not None]
    if given:
        raise InputError(f"{', '.join(given)} build a network; {src} is one already (export it again from "
                         "its framework to change its size)")
    if not int8 and kind == "onnx":
        raise InputError(f"{src} is already ONNX: add --int8 to quantise it, or write -o NAME.ort to convert "
                         "it")
    with err_console.status(f"converting {src.name}"), \
            tempfile.TemporaryDirectory(prefix="nasprof-export-") as tmp:
        path = src
        what = []
        if int8:
            from nasprof.space.quantize import quantize_int8

            q = quantize_int8(src, output if kind == "onnx" else Path(tmp) / "model.int8.onnx", seed=seed)
            path = q.path
            what.append(f"int8, QDQ: {sum(q.quantized_ops.values())} ops quantised, "
                        f"{sum(q.float_ops.values())} left in float")
        if kind == "ort":
            from nasprof.space.ort_format import convert_to_ort

            path = convert_to_ort(path, output, opt_level=opt_level, style=ort_style)
            what.append(f"ORT format, {opt_level}, {ort_style}")
    console.print(f"wrote {path}: {src.name} ({'; '.join(what)})", highlight=False)


def _resolve(model: str, resolution: int | None, width: float | None, space: str | None, input: str | None,
             outputs: int | None, c: int | None, n: int | None, options: dict[str, Any]) -> Any:
    """The ``Network`` a command's model argument names: an architecture read with ``--space`` and nb201's
    options, or anything ``resolve_model`` reads (preset, string, JSON file)."""
    from nasprof.errors import InputError
    from nasprof.space import resolve_model

    if wants_arch(model, space, input=input, outputs=outputs, c=c, n=n):
        if resolution is not None or width is not None or options:
            raise InputError("--resolution/--width/--last-channel do not apply with --space or nb201 "
                             "options; "
                             "give an nb201 input shape with --input CxHxW")
        return arch_from_cli(model, space, input, outputs, c, n).network()
    return resolve_model(model, resolution=resolution, width=width, **options)


def export_cmd(
    model: Annotated[str, typer.Argument(help="Preset name, architecture string (SPACE:RES:WIDTH|...), "
                                              "architecture JSON file, or an ONNX file to quantise (--int8) "
                                              "or convert (-o NAME.ort).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Where to write the ONNX file.")],
    resolution: Annotated[int | None, typer.Option(help="Input resolution (presets: default 224).")] = None,
    width: Annotated[float | None, typer.Option(help="Width multiplier (presets: default 1.0).")] = None,
    last_channel: Annotated[
        int | None, typer.Option(help="mobilenet_v2 only: override the last channel.")
    ] = None,
    seed: Annotated[
        int, typer.Option(help="Seed of the random weights, and of the int8 calibration inputs.")
    ] = 0,
    batch: Annotated[
        int, typer.Option("--batch", help="Images per inference (a fixed input dimension).")
    ] = 1,
    int8: Annotated[
        bool,
        typer.Option("--int8", help="Quantise statically to int8 (QDQ; calibrated on seeded random inputs, "
                                    "per-channel weights)."),
    ] = False,
    fmt: Annotated[
        str | None, typer.Option("--format", help="onnx or ort (onnxruntime-mobile's ORT format); default: "
                                                  "-o's suffix.")
    ] = None,
    opt_level: Annotated[
        str, typer.Option("--opt-level", help="With --format ort: graph optimisation level: disable, basic, "
                                              "extended, all.")
    ] = "all",
    ort_style: Annotated[
        str, typer.Option("--ort-style", help="With --format ort: fixed (optimised here) or runtime "
                                              "(optimised by the phone's minimal build).")
    ] = "fixed",
    space: SpaceOption = None,
    input: InputOption = None,
    outputs: OutputsOption = None,
    cell_channels: CellChannelsOption = None,
    cells_per_stage: CellsPerStageOption = None,
) -> None:
    """Export a preset or architecture to ONNX (opset 17, batch 1, BN folded, node names scoped by layer), or
    to the ORT format that minimal onnxruntime builds load."""
    check_outputs({"--output": output}, [model])
    from nasprof.errors import InputError
    from nasprof.space import count_network, export_network

    kind = (fmt or output.suffix.lstrip(".")).lower()
    if kind not in ("onnx", "ort") or output.suffix.lower() != f".{kind}":
        # like --plot and .png: the name says what the file holds
        suffix = kind if kind in ("onnx", "ort") else "onnx"
        raise InputError(f"--output writes {'ORT format' if kind == 'ort' else 'ONNX'}; give a path ending "
                         f"in .{suffix}, got {output}")
    if kind == "onnx" and (opt_level != "all" or ort_style != "fixed"):
        raise InputError("--opt-level and --ort-style apply to --format ort")
    if model.lower().endswith(".onnx"):
        if not Path(model).is_file():
            raise InputError(f"ONNX file {model} does not exist")
        _convert_onnx(Path(model), output, kind, int8=int8, seed=seed, opt_level=opt_level,
                      ort_style=ort_style, network_options={"--resolution": resolution, "--width": width,
                                                            "--last-channel": last_channel,
                                                            "--batch": None if batch == 1 else batch})
        return
    options = {} if last_channel is None else {"last_channel": last_channel}
    net = _resolve(model, resolution, width, space, input, outputs, cell_channels, cells_per_stage, options)
    with err_console.status(f"exporting {net.name} at {net.resolution}x{net.input_shape[3]}"):
        import tempfile

        with tempfile.TemporaryDirectory(prefix="nasprof-export-") as tmp:
            onnx_out = output if kind == "onnx" else Path(tmp) / "model.onnx"
            if int8:
                from nasprof.space.quantize import quantize_int8

                fp32 = export_network(net, Path(tmp) / "fp32.onnx", seed=seed, batch=batch)
                path = quantize_int8(fp32, onnx_out, seed=seed).path
            else:
                path = export_network(net, onnx_out, seed=seed, batch=batch)
            if kind == "ort":
                from nasprof.space.ort_format import convert_to_ort

                path = convert_to_ort(path, output, opt_level=opt_level, style=ort_style)
    counts = count_network(net)
    shape = [batch, *net.input_shape[1:]]
    what = (" (int8, QDQ)" if int8 else "")
    what += f" (ORT format, {opt_level}, {ort_style})" if kind == "ort" else ""
    console.print(f"wrote {path}: {net.name}{what}, input {shape}, "
                  f"{len(counts.layers)} layers, {_fmt_count(counts.macs)} MACs per image, "
                  f"{_fmt_count(counts.params)} params", highlight=False)


def count_cmd(
    model: Annotated[str, typer.Argument(help="ONNX file, preset name, architecture string or JSON file.")],
    resolution: Annotated[int | None, typer.Option(help="Input resolution (presets: default 224).")] = None,
    width: Annotated[float | None, typer.Option(help="Width multiplier (presets: default 1.0).")] = None,
    space: SpaceOption = None,
    input: InputOption = None,
    outputs: OutputsOption = None,
    cell_channels: CellChannelsOption = None,
    cells_per_stage: CellsPerStageOption = None,
    json_out: JsonOption = None,
) -> None:
    """MACs and parameters per layer and in total (analytic for presets/architectures, read from the graph
    for ONNX files; the two agree exactly for nasprof exports)."""
    check_outputs({"--json": json_out}, [model])
    from nasprof.space import count_network, count_onnx

    if model.endswith(".onnx"):
        if resolution is not None or width is not None:
            from nasprof.errors import InputError

            raise InputError("--resolution/--width apply to presets and architectures, not to ONNX files")
        counts = count_onnx(Path(model))
    else:
        counts = count_network(
            _resolve(model, resolution, width, space, input, outputs, cell_channels, cells_per_stage, {})
        )
    if emit_json(json_out, counts.to_dict()):
        return
    t = Table(title=f"{counts.name} ({counts.source} count)")
    for col in ("layer", "detail", "MACs", "params"):
        t.add_column(col, justify="right" if col in ("MACs", "params") else "left", overflow="fold")
    for layer in counts.layers:
        t.add_row(layer.scope, layer.detail, f"{layer.macs:,}", f"{layer.params:,}")
    t.add_section()
    t.add_row("total", "", f"{counts.macs:,}", f"{counts.params:,}")
    console.print(t)
    console.print(f"{_fmt_count(counts.macs)} MACs, {_fmt_count(counts.params)} params", highlight=False)
