"""`nasprof predict`: a predictor against an ONNX model, an architecture, or a list of architectures."""

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
    ExpectDeviceOption,
    JsonOption,
    PredictorOption,
    StrictOption,
    _fmt_ms,
    check_outputs,
    console,
    emit_json,
    err_console,
    styled,
)
from nasprof.commands.predictor import _refit_warning, _rules_check


def predict_cmd(
    predictor: PredictorOption,
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
    device: ExpectDeviceOption = None,
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
    strict: StrictOption = False,
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
        p = p.with_fallback(Predictor.load(fallback, device=p.device))
    if target.endswith(".onnx") and not Path(target).is_file():
        raise InputError(f"model {target} does not exist")
    result = p.explain(arch_target)
    _render_prediction(p, target, result, explain, json_out)
    if result.missing:
        shown = ", ".join(result.missing[:8]) + (" ..." if len(result.missing) > 8 else "")
        err_console.print(
            f"cannot predict {len(result.missing)} part(s): {shown}", highlight=False, soft_wrap=True
        )
        if not allow_partial:
            raise typer.Exit(code=2)


def _render_prediction(p: Any, target: str, result: Any, explain: bool, json_out: Path | None) -> None:
    """The prediction's summary by part group (or its JSON), the parts with --explain, and the total."""
    doc = {"target": target, "device": p.device, "predictor": p.kind, **result.to_dict()}
    if emit_json(json_out, doc):
        return
    by_kind: dict[str, list[float]] = {}
    for part in result.parts:
        by_kind.setdefault(p.part_group(part), []).append(part.latency_ms)
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
