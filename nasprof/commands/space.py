"""`nasprof space list|show|sample|layers`, `nasprof export` and `nasprof count`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from nasprof.commands._common import (
    ForceOption,
    JsonOption,
    _fmt_count,
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


@space_app.command("sample")
def space_sample(
    name: Annotated[str, typer.Argument(help="Space name (see `nasprof space list`).")],
    n: Annotated[int, typer.Option("--n", min=0, help="How many architectures.")] = 5,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same architectures.")] = 0,
    resolution: Annotated[int | None, typer.Option(help="Input resolution (default: the space's).")] = None,
    width: Annotated[float, typer.Option(help="Global width multiplier.")] = 1.0,
    json_out: JsonOption = None,
    force: ForceOption = False,
) -> None:
    """Sample architectures uniformly from a space (seeded)."""
    check_outputs({"--json": json_out})
    check_counts(force, n=n)
    from nasprof.space import get_space

    archs = get_space(name).sample(n, seed=seed, resolution=resolution, width=width)
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


def export_cmd(
    model: Annotated[str, typer.Argument(help="Preset name, architecture string (SPACE:RES:WIDTH|...) or "
                                              "architecture JSON file.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Where to write the ONNX file.")],
    resolution: Annotated[int | None, typer.Option(help="Input resolution (presets: default 224).")] = None,
    width: Annotated[float | None, typer.Option(help="Width multiplier (presets: default 1.0).")] = None,
    last_channel: Annotated[
        int | None, typer.Option(help="mobilenet_v2 only: override the last channel.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the random weights.")] = 0,
) -> None:
    """Export a preset or architecture to ONNX (opset 17, batch 1, BN folded, node names scoped by layer)."""
    check_outputs({"--output": output}, [model])
    from nasprof.space import count_network, export_network, resolve_model

    if output.suffix.lower() != ".onnx":  # like --plot and .png: the name says what the file holds
        from nasprof.errors import InputError

        raise InputError(f"--output writes ONNX; give a path ending in .onnx, got {output}")
    options = {} if last_channel is None else {"last_channel": last_channel}
    net = resolve_model(model, resolution=resolution, width=width, **options)
    with err_console.status(f"exporting {net.name} at {net.resolution}x{net.resolution}"):
        path = export_network(net, output, seed=seed)
    counts = count_network(net)
    console.print(f"wrote {path}: {net.name}, input {list(net.input_shape)}, {len(counts.layers)} layers, "
                  f"{_fmt_count(counts.macs)} MACs, {_fmt_count(counts.params)} params", highlight=False)


def count_cmd(
    model: Annotated[str, typer.Argument(help="ONNX file, preset name, architecture string or JSON file.")],
    resolution: Annotated[int | None, typer.Option(help="Input resolution (presets: default 224).")] = None,
    width: Annotated[float | None, typer.Option(help="Width multiplier (presets: default 1.0).")] = None,
    json_out: JsonOption = None,
) -> None:
    """MACs and parameters per layer and in total (analytic for presets/architectures, read from the graph
    for ONNX files; the two agree exactly for nasprof exports)."""
    check_outputs({"--json": json_out}, [model])
    from nasprof.space import count_network, count_onnx, resolve_model

    if model.endswith(".onnx"):
        if resolution is not None or width is not None:
            from nasprof.errors import InputError

            raise InputError("--resolution/--width apply to presets and architectures, not to ONNX files")
        counts = count_onnx(Path(model))
    else:
        counts = count_network(resolve_model(model, resolution=resolution, width=width))
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
