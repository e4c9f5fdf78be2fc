"""`nasprof export` and `nasprof count`: a preset, an architecture or a user's ONNX file to ONNX or the ORT
format (int8 on request), and its MACs and parameters."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from nasprof.commands._arch_options import (
    CellChannelsOption,
    CellsPerStageOption,
    InputOption,
    OutputsOption,
    ResolutionOption,
    SpaceOption,
    WidthOption,
    arch_from_cli,
    wants_arch,
)
from nasprof.commands._common import (
    JsonOption,
    OptLevelOption,
    OrtStyleOption,
    SeedOption,
    _fmt_count,
    check_outputs,
    console,
    emit_json,
    err_console,
)


def _convert_onnx(src: str, output: Path, kind: str, *, int8: bool, seed: int, opt_level: str,
                  ort_style: str, network_options: dict[str, Any]) -> None:
    """`export FILE.onnx`: a model the user brings, quantised to int8 (--int8) and/or converted to the ORT
    format (-o FILE.ort); the options that build a network do not apply to it."""
    from nasprof.space.export_file import convert_model_file

    with err_console.status(f"converting {Path(src).name}"):
        path, q = convert_model_file(src, output, kind, int8=int8, seed=seed, opt_level=opt_level,
                                     ort_style=ort_style, network_options=network_options)
    what = []
    if q is not None:
        what.append(f"int8, QDQ: {sum(q.quantized_ops.values())} ops quantised, "
                    f"{sum(q.float_ops.values())} left in float")
    if kind == "ort":
        what.append(f"ORT format, {opt_level}, {ort_style}")
    console.print(f"wrote {path}: {Path(src).name} ({'; '.join(what)})", highlight=False)


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
    resolution: ResolutionOption = None,
    width: WidthOption = None,
    last_channel: Annotated[
        int | None, typer.Option(help="mobilenet_v2 only: override the last channel.")
    ] = None,
    seed: SeedOption = 0,
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
    opt_level: OptLevelOption = "all",
    ort_style: OrtStyleOption = "fixed",
    space: SpaceOption = None,
    input: InputOption = None,
    outputs: OutputsOption = None,
    cell_channels: CellChannelsOption = None,
    cells_per_stage: CellsPerStageOption = None,
) -> None:
    """Export a preset or architecture to ONNX (opset 17, batch 1, BN folded, node names scoped by layer), or
    to the ORT format that minimal onnxruntime builds load."""
    check_outputs({"--output": output}, [model])
    from nasprof.space.export_file import export_format, write_network

    kind = export_format(fmt, output, opt_level=opt_level, ort_style=ort_style)
    if model.lower().endswith(".onnx"):
        network_options = {"--resolution": resolution, "--width": width, "--last-channel": last_channel,
                           "--batch": None if batch == 1 else batch}
        _convert_onnx(model, output, kind, int8=int8, seed=seed, opt_level=opt_level, ort_style=ort_style,
                      network_options=network_options)
        return
    options = {} if last_channel is None else {"last_channel": last_channel}
    net = _resolve(model, resolution, width, space, input, outputs, cell_channels, cells_per_stage, options)
    with err_console.status(f"exporting {net.name} at {net.resolution}x{net.input_shape[3]}"):
        path = write_network(net, output, kind, int8=int8, seed=seed, batch=batch, opt_level=opt_level,
                             ort_style=ort_style)
    _render_export(path, net, kind, batch=batch, int8=int8, opt_level=opt_level, ort_style=ort_style)


def _render_export(path: Path, net: Any, kind: str, *, batch: int, int8: bool, opt_level: str,
                   ort_style: str) -> None:
    """The line ``export`` ends with: what was written, its input, layers, MACs and parameters."""
    from nasprof.space import count_network

    counts = count_network(net)
    shape = [batch, *net.input_shape[1:]]
    what = (" (int8, QDQ)" if int8 else "")
    what += f" (ORT format, {opt_level}, {ort_style})" if kind == "ort" else ""
    console.print(f"wrote {path}: {net.name}{what}, input {shape}, "
                  f"{len(counts.layers)} layers, {_fmt_count(counts.macs)} MACs per image, "
                  f"{_fmt_count(counts.params)} params", highlight=False)


def count_cmd(
    model: Annotated[str, typer.Argument(help="ONNX file, preset name, architecture string or JSON file.")],
    resolution: ResolutionOption = None,
    width: WidthOption = None,
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
        given = {"--resolution": resolution, "--width": width, "--space": space, "--input": input,
                 "--outputs": outputs, "--cell-channels": cell_channels, "--cells-per-stage": cells_per_stage}
        ignored = [flag for flag, value in given.items() if value is not None]
        if ignored:
            from nasprof.errors import InputError

            raise InputError(f"{', '.join(ignored)} apply to presets and architectures, not to ONNX files "
                             "(an ONNX graph is counted as it is)")
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
