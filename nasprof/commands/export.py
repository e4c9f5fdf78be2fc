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
    SpaceOption,
    arch_from_cli,
    wants_arch,
)
from nasprof.commands._common import (
    JsonOption,
    OptLevelOption,
    OrtStyleOption,
    _fmt_count,
    check_outputs,
    console,
    emit_json,
    err_console,
)


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
    from nasprof.errors import InputError
    from nasprof.space import count_network, export_network

    if fmt is not None and fmt.lower() not in ("onnx", "ort"):
        raise InputError(f"unknown --format {fmt!r}: use onnx or ort")
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
