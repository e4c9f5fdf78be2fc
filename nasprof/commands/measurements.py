"""`nasprof measurements import|show|list|export`: end-to-end latencies measured elsewhere, as data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from nasprof.commands._arch_options import InputOption, OutputsOption, SpaceOption
from nasprof.commands._common import (
    JsonOption,
    StoreOption,
    _fmt_ms,
    check_outputs,
    console,
    emit_json,
    err_console,
    warn,
)

measurements_app = typer.Typer(
    help="Latencies of whole networks measured elsewhere: import, show, list, export.", no_args_is_help=True,
    rich_markup_mode=None,
)

def _arch_options(space: str | None, input_shape: str | None, outputs: int | None) -> dict[str, Any]:
    from nasprof.errors import InputError

    if space is None and (input_shape is not None or outputs is not None):
        raise InputError("--input and --outputs describe the architectures of a --space; give --space too")
    opts: dict[str, Any] = {}
    if input_shape is not None:
        parts = input_shape.lower().split("x")
        if len(parts) != 3 or not all(p.isdigit() and int(p) > 0 for p in parts):
            raise InputError(f"malformed --input {input_shape!r}: write CxHxW with positive integers, e.g. "
                             "1x52x16")
        opts["input"] = "x".join(str(int(p)) for p in parts)
    if outputs is not None:
        if outputs < 1:
            raise InputError(f"--outputs must be at least 1, got {outputs}")
        opts["outputs"] = outputs
    return opts


@measurements_app.command("import")
def import_cmd(
    src: Annotated[Path, typer.Argument(metavar="FILE", help="CSV or Parquet: one network per row.")],
    name: Annotated[str, typer.Option("--name", help="Set name (a re-import makes its next version).")],
    device: Annotated[str, typer.Option("--device", "-d", help="Device the latencies were measured on.")],
    runtime: Annotated[
        str | None, typer.Option(help="Runtime that ran the networks, e.g. 'onnxruntime 1.17'.")
    ] = None,
    threads: Annotated[int | None, typer.Option(help="Threads the networks ran with.")] = None,
    measured_by: Annotated[str | None, typer.Option(help="Who (or which paper) measured them.")] = None,
    measured_at: Annotated[
        str | None, typer.Option(help="When they were measured (ISO 8601, e.g. 2024-05-01).")
    ] = None,
    notes: Annotated[str | None, typer.Option(help="Free text kept with the set.")] = None,
    space: SpaceOption = None,
    input_shape: InputOption = None,
    outputs: OutputsOption = None,
    arch_column: Annotated[
        str | None, typer.Option(help="Column holding the architecture, when not arch/arch_str/architecture.")
    ] = None,
    latency_column: Annotated[
        str | None, typer.Option(help="Column holding the median latency in ms, when not latency_ms/"
                                      "latency_ms_median/median_ms.")
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Store a file already imported under NAME again.")
    ] = False,
    store: StoreOption = None,
    json_path: JsonOption = None,
) -> None:
    """Store FILE as the next version of set NAME; every row is checked first (all or nothing).

    The provenance is kept with it: device, runtime, threads, who and when, the file and its sha256."""
    check_outputs({"--json": json_path}, [src, store])
    from nasprof.errors import InputError
    from nasprof.tables.measurements import import_measurements, space_validator

    if threads is not None and threads < 1:
        raise InputError(f"--threads must be at least 1, got {threads}")
    opts = _arch_options(space, input_shape, outputs)
    validate = space_validator(space, opts) if space is not None else None
    ms = import_measurements(src, name, device=device, runtime=runtime, threads=threads,
                             measured_by=measured_by, measured_at=measured_at, notes=notes, space=space,
                             arch_options=opts, validate_arch=validate, store=store, force=force,
                             arch_column=arch_column, latency_column=latency_column)
    for w in ms.warnings:
        warn(w)
    if emit_json(json_path, ms.to_dict(rows=0)):
        return
    s = ms.summary()
    err_console.print(f"imported {s['count']} networks from {src} as {ms.label} (median "
                      f"{_fmt_ms(s['median_ms'])} ms, {_fmt_ms(s['min_ms'])}–{_fmt_ms(s['max_ms'])} ms)",
                      highlight=False)


@measurements_app.command("show")
def show_cmd(
    ref: Annotated[
        str, typer.Argument(metavar="NAME[@vN]",
                            help="A stored set (default: its latest), or a CSV/Parquet file.")
    ],
    rows: Annotated[int, typer.Option("--rows", help="Show the first N rows (0: none).")] = 10,
    store: StoreOption = None,
    json_path: JsonOption = None,
) -> None:
    """Provenance and latency summary (count, median, min, max) of a set, and its first rows."""
    check_outputs({"--json": json_path}, [store])
    from nasprof.errors import InputError
    from nasprof.tables.measurements import load_measurement_set

    if rows < 0:
        raise InputError(f"--rows must be >= 0, got {rows}")
    ms = load_measurement_set(ref, store=store)
    for w in ms.warnings:  # a file read directly: its ignored columns, merged duplicates
        warn(w)
    if emit_json(json_path, ms.to_dict(rows=rows)):
        return
    _render_set(ms)
    if rows:
        _render_rows(ms, rows)


def _render_set(ms: Any) -> None:
    """A set's name and size, its provenance, and the summary of its latencies."""
    s = ms.summary()
    console.print(Text.assemble((ms.label, "bold"), f"  {s['count']} networks"
                                + (f" · space {ms.space}" if ms.space else "")))
    facts = Table(title="provenance", title_justify="left", show_header=False)
    facts.add_column("")
    facts.add_column("", overflow="fold")
    for key, value in ms.provenance.items():
        facts.add_row(key, value)
    for key, value in ms.arch_options.items():
        facts.add_row(f"arch option {key}", str(value))
    console.print(facts)
    stats = Table(title="latency", title_justify="left")
    stats.add_column("statistic")
    stats.add_column("value", justify="right")
    stats.add_row("count", str(s["count"]))
    for label, key in (("median", "median_ms"), ("min", "min_ms"), ("max", "max_ms")):
        stats.add_row(label, f"{_fmt_ms(s[key])} ms")
    stats.add_row("with accuracy", str(s["with_accuracy"]))
    stats.add_row("with raw samples", str(s["with_samples"]))
    console.print(stats)


def _render_rows(ms: Any, rows: int) -> None:
    """The first ``rows`` networks of a set: line, architecture or model, latency, spread, samples."""
    t = Table(title=f"first {min(rows, len(ms))} of {len(ms)} rows", title_justify="left")
    t.add_column("line", justify="right")
    t.add_column("architecture / model", overflow="fold")
    for col in ("latency ms", "spread ms", "samples", "accuracy"):
        t.add_column(col, justify="right")
    for r in ms.rows[:rows]:
        t.add_row(str(r.line), r.key, _fmt_ms(r.latency_ms),
                  "" if r.spread_ms is None else _fmt_ms(r.spread_ms), str(len(r.samples_ms) or ""),
                  "" if r.accuracy is None else f"{r.accuracy:g}")
    console.print(t)


@measurements_app.command("list")
def list_cmd(store: StoreOption = None, json_path: JsonOption = None) -> None:
    """Every stored set and version: networks, device, when imported."""
    check_outputs({"--json": json_path}, [store])
    from nasprof.tables.measurement_store import default_store
    from nasprof.tables.measurements import list_measurement_sets

    infos = list_measurement_sets(store)
    if emit_json(json_path, {"store": str(store or default_store()), "sets": [i.to_dict() for i in infos]}):
        return
    if not infos:
        err_console.print(f"no measurement sets in {store or default_store()}; add one with `nasprof "
                          "measurements import FILE --name NAME --device DEV`", highlight=False)
        return
    t = Table(title=str(store or default_store()), title_justify="left")
    for col in ("set", "networks", "device", "space", "source", "imported"):
        t.add_column(col, justify="right" if col == "networks" else "left",
                     overflow="fold" if col == "source" else "ellipsis")
    for i in infos:
        source = i.provenance.get("source", "")
        t.add_row(f"{i.name}@v{i.version}", str(i.count), i.provenance.get("device", ""), i.space or "",
                  Path(source).name if "/" in source else source, i.created_at[:19].replace("T", " "))
    console.print(t)


@measurements_app.command("export")
def export_cmd(
    ref: Annotated[str, typer.Argument(metavar="NAME[@vN]", help="A stored set (default: its latest).")],
    out: Annotated[Path, typer.Option("--output", "-o", help="CSV or Parquet file to write (by suffix).")],
    store: StoreOption = None,
) -> None:
    """Write a set's rows to CSV (provenance in FILE.meta.json beside it) or Parquet (provenance inside)."""
    from nasprof.tables.measurement_store import default_store
    from nasprof.tables.measurements import export_measurement_set

    check_outputs({"--output": out}, [store or default_store()])
    written = export_measurement_set(ref, out, store=store)
    err_console.print(f"wrote {written}", highlight=False)
