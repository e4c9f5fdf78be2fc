"""onnxruntime-mobile: `nasprof space ops-config` (a minimal runner's operator config for a space) and
`nasprof check-mobile` (which parts of a model the mobile execution providers could take)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from nasprof.commands._common import JsonOption, _StepBar, check_outputs, console, emit_json, err_console

OptLevelOption = Annotated[
    str, typer.Option("--opt-level", help="Graph optimisation level: disable, basic, extended, all.")
]
OrtStyleOption = Annotated[
    str, typer.Option("--ort-style", help="ORT-format optimisation style: fixed (applied here) or runtime "
                                          "(applied by the phone's minimal build).")
]


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


def check_mobile_cmd(
    model: Annotated[Path, typer.Argument(help="ONNX model.")],
    json_out: JsonOption = None,
) -> None:
    """Which parts of MODEL the mobile execution providers (NNAPI, CoreML) could run, with onnxruntime's
    usability checker: nodes taken, partitions, operators they lack, and onnxruntime's verdict."""
    check_outputs({"--json": json_out}, [model])
    from nasprof.space.ort_format import mobile_usability

    rows = mobile_usability(model)
    if emit_json(json_out, {"schema_version": 1, "kind": "nasprof.mobile_usability", "model": str(model),
                            "providers": [r.to_dict() for r in rows]}):
        return
    t = Table(title=f"{model.name}: mobile execution providers")
    for col in ("provider", "nodes taken", "partitions", "operators it lacks", "verdict"):
        t.add_column(col, justify="right" if col in ("nodes taken", "partitions") else "left")
    for r in rows:
        t.add_row(r.provider, f"{r.supported_nodes}/{r.nodes}", str(r.partitions),
                  ", ".join(r.unsupported_ops) or "—", r.verdict)
    console.print(t)
