"""`nasprof table build|show|export|import|merge`: latency lookup tables."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from nasprof.commands._common import (
    DevicesOption,
    JsonOption,
    RayOption,
    _fmt_ms,
    _LazyBar,
    check_counts,
    check_outputs,
    console,
    emit_json,
    err_console,
    parse_count_list,
    styled,
    warn,
)

table_app = typer.Typer(
    help="Latency lookup tables: build, show, export, import, merge.", no_args_is_help=True,
    rich_markup_mode=None,
)


class _BuildBar(_LazyBar):
    """Renders ``BuildProgress``: done/total, rate, ETA, failures; kept on screen (and in logs) at the end."""

    def __init__(self) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

        super().__init__(
            TextColumn("table build", style="bold", markup=False), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"), TextColumn("ETA {task.fields[eta]}"), TimeElapsedColumn(),
            TextColumn("{task.fields[note]}", markup=False), transient=False,
        )
        self.task = self.progress.add_task("build", total=None, rate="", eta="?", note="")

    def __call__(self, p: Any) -> None:
        self._start()
        eta = "?" if p.eta_s is None else f"{int(p.eta_s // 60)}:{int(p.eta_s % 60):02d}"
        note = " · ".join(s for s in (
            f"{p.failed} failed" if p.failed else "",
            f"{p.taken_by_others} taken by others" if p.taken_by_others else "",
            f"{p.already_done} already done" if p.already_done else "",
        ) if s)
        self.progress.update(self.task, total=p.total, completed=p.done + p.taken_by_others,
                             rate=f"{p.rate_per_min:.1f}/min", eta=eta, note=note)
        self.plain("table build", p.done + p.taken_by_others, p.total)


@table_app.command("build")
def table_build_cmd(
    space: Annotated[str, typer.Option(help="Search space (see `nasprof space list`).")],
    resolution: Annotated[int, typer.Option(help="Input resolution (pixels).")],
    db: Annotated[Path, typer.Option(help="SQLite table to create or resume.")],
    device: DevicesOption = "cpu",
    limit: Annotated[
        int | None, typer.Option(help="Measure at most N (>= 1) pending entries (default: all).")
    ] = None,
    shard: Annotated[str | None, typer.Option(help="Take share I of N (1-based), e.g. 2/4.")] = None,
    threads: Annotated[
        str, typer.Option(help="Intra-op threads; a comma-separated list (1,2,4) builds one table per count, "
                               "DB.threadsN.db.")
    ] = "1",
    batch: Annotated[
        str, typer.Option(help="Images per inference; a comma-separated list (1,8) builds one table per "
                               "size, DB.batchN.db.")
    ] = "1",
    warmup: Annotated[
        int, typer.Option(help="Untimed runs per session (a ceiling with --time-per-entry).")
    ] = 10,
    runs: Annotated[int, typer.Option(help="Timed runs per session (a floor with --time-per-entry).")] = 10,
    sessions: Annotated[int, typer.Option(help="Fresh sessions per entry.")] = 2,
    time_per_entry: Annotated[
        float, typer.Option(help="Seconds of timed inference planned per entry (0: --runs for all).")
    ] = 0.25,
    target_ci: Annotated[
        float, typer.Option(help="Stop when the 95% CI of the median is within ±this (0 disables).")
    ] = 0.01,
    max_runs: Annotated[
        int, typer.Option(help="Cap on timed samples per entry (at least 2x the planned samples).")
    ] = 300,
    remeasure: Annotated[int, typer.Option(help="Extra measurements of entries flagged unstable.")] = 1,
    retry_failed: Annotated[
        bool, typer.Option("--retry-failed", help="Measure failed entries again.")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Add to a table measured in another environment, or mix "
                                           "devices that differ.")
    ] = False,
    ray_address: RayOption = None,
    mcu_memory: Annotated[
        str | None, typer.Option(help="Also store peak SRAM/Flash of each layer on this MCU board.")
    ] = None,
    int8: Annotated[
        bool,
        typer.Option("--int8", help="Quantise every layer statically to int8 (QDQ) before measuring it; the "
                                    "table records precision int8."),
    ] = False,
    json_path: JsonOption = None,
) -> None:
    """Measure every distinct layer of SPACE at RESOLUTION on DEVICE into DB (resumable, shardable)."""
    check_outputs({"--json": json_path}, [db])
    check_counts(force, runs=runs, warmup=warmup, sessions=sessions, max_runs=max_runs)
    from nasprof.devices.base import MeasureSpec
    from nasprof.errors import InputError
    from nasprof.tables.sweep import BuildInterrupted, build_sweep, sweep_targets

    if limit is not None and limit < 1:
        raise InputError(f"--limit must be at least 1, got {limit}; leave it out to measure every entry")
    if not time_per_entry >= 0:  # NaN too
        raise InputError(f"--time-per-entry must be >= 0 seconds (0: --runs for every entry), got "
                         f"{time_per_entry}")
    if target_ci and max_runs < runs * sessions:
        raise InputError(f"--max-runs {max_runs} is below the {runs * sessions} samples every entry takes "
                         "(--runs x --sessions); raise it or lower those")

    counts = parse_count_list(threads) or [1]
    batches = parse_count_list(batch, "--batch") or [1]
    targets = sweep_targets(db, counts, batches)
    spec = MeasureSpec(threads=1, warmup=warmup, runs=runs, sessions=sessions,
                       target_rel_ci=target_ci or None, max_runs=max_runs if target_ci else None)
    try:
        reports = build_sweep(space, resolution, device, targets, spec, ray_address=ray_address,
                              bar=_BuildBar,
                              limit=limit, shard=shard, retry_failed=retry_failed, remeasure=remeasure,
                              force=force, time_per_entry_s=time_per_entry or None, memory_board=mcu_memory,
                              int8=int8)
    except BuildInterrupted as exc:
        err_console.print(f"interrupted: finished entries are stored in {exc.db}; run the same command to "
                          "resume", highlight=False)
        raise typer.Exit(code=130) from None
    if len(reports) > 1:
        _render_sweep(counts, batches, targets, reports, json_path)
        return
    _render_build(db, reports[0], json_path)


def _render_sweep(counts: list[int], batches: list[int], targets: list[Any], reports: list[Any],
                  json_path: Path | None) -> None:
    doc = {"kind": "nasprof.sweep", "threads": counts, "batch": batches,
           "reports": [{"threads": t.threads, "batch": t.batch, "db": str(t.db), **r.to_dict()}
                       for t, r in zip(targets, reports, strict=True)]}
    if emit_json(json_path, doc):
        return
    for t, r in zip(targets, reports, strict=True):
        console.print(f"{t.threads} thread(s), batch {t.batch}: {t.db} — {r.written} measured",
                      highlight=False)


def _render_build(db: Path, report: Any, json_path: Path | None) -> None:
    if emit_json(json_path, report.to_dict()):
        return
    t = Table(title=f"{db} — {report.space} @ {report.resolution} on {', '.join(report.devices)}",
              title_justify="left")
    t.add_column("")
    t.add_column("value", justify="right")
    rows = [
        ("distinct layers", report.distinct),
        ("in this shard" if report.shard else "selected", report.selected),
        ("already in table", report.already_done),
        ("written now", report.written),
        ("failed", report.failed),
        ("re-measured (unstable)", report.remeasured),
        ("still unstable", report.unstable),
        ("taken by other builders", report.taken_by_others),
        ("wall time", f"{report.wall_s:.1f} s"),
        ("entries / minute", f"{report.entries_per_min:.1f}"),
        ("efficiency (timed inference ÷ wall)", f"{report.efficiency:.0%}"),
        ("complete", "yes" if report.complete else "no — run again to resume"),
    ]
    for k, v in rows:
        t.add_row(k, str(v))
    console.print(t)


@table_app.command("show")
def table_show_cmd(
    path: Annotated[Path, typer.Argument(help="Latency table (.db).")],
    op: Annotated[str | None, typer.Option(help="Only entries of this op (mbconv, conv, ...).")] = None,
    key_contains: Annotated[str | None, typer.Option(help="Only keys containing this text.")] = None,
    failed: Annotated[bool, typer.Option("--failed", help="Only failed entries.")] = False,
    unstable: Annotated[bool, typer.Option("--unstable", help="Only entries flagged unstable.")] = False,
    limit: Annotated[int, typer.Option(help="Show at most N (>= 1) rows.")] = 20,
    show_all: Annotated[bool, typer.Option("--all", help="Show every matching row.")] = False,
    json_out: JsonOption = None,
) -> None:
    """Summarise a table (entries, failures, coverage of its space, device) and list its entries."""
    check_outputs({"--json": json_out}, [path])
    if limit < 1:
        from nasprof.errors import InputError

        raise InputError(f"--limit must be at least 1, got {limit}; use --all to show every row")
    from nasprof.tables.overview import table_overview

    view = table_overview(path, op=op, key_contains=key_contains, failed=failed, unstable=unstable)
    if view.corrupt_keys:
        corrupt = view.corrupt_keys
        shown_keys = ", ".join(corrupt[:3]) + (" ..." if len(corrupt) > 3 else "")
        warn(f"{len(corrupt)} corrupt row(s) left out ({shown_keys}): the file was changed outside nasprof")
    shown = view.matching if show_all else view.matching[:limit]
    if emit_json(json_out, view.to_dict(shown)):
        return
    _render_overview(view)
    _render_entries(shown, len(view.matching))


def _render_overview(view: Any) -> None:
    """The table's header lines: path, space, device and environment; counts and coverage; who measured."""
    meta, summary, coverage, measured_by = view.metadata, view.summary, view.coverage, view.measured_by
    env = meta.get("environment", {})
    facts = [f"device {meta.get('device')}", f"backend {meta.get('backend', env.get('backend', '?'))}"]
    facts += [f"{k} {env[k]}" for k in ("cpu_model", "threads", "opt_level") if env.get(k) is not None]
    where = f"  space {meta.get('space')} @ {meta.get('resolution')} · "
    console.print(Text.assemble((str(view.path), "bold"), where + " · ".join(str(f) for f in facts)))
    cov = "" if coverage is None else (
        f" · coverage {coverage[0]}/{coverage[1]} ({coverage[0] / coverage[1]:.0%}) of the space")
    console.print(f"{summary['entries']} entries · {summary['ok']} ok · {summary['failed']} failed · "
                  f"{summary['unstable']} unstable{cov}", highlight=False)
    if len(measured_by) > 1 or any(m["host"] for m in measured_by):
        console.print("measured by " + " · ".join(
            f"{m['device']}" + (f" on {m['host']}" if m["host"] else "")
            + (f" ({m['runner']})" if m["runner"] else "") + f": {m['entries']}" for m in measured_by),
            highlight=False, markup=False)


def _render_entries(shown: list[Any], matching: int) -> None:
    """The shown entries: key, median, p90, MAD, samples, MACs, and flags or error."""
    t = Table(title=f"{len(shown)} of {matching} matching entries", title_justify="left")
    t.add_column("key", overflow="fold")  # keys differ at their end: never truncate them
    for col, just in (("median ms", "right"), ("p90 ms", "right"), ("MAD ms", "right"),
                      ("n", "right"), ("MMACs", "right"), ("flags / error", "left")):
        t.add_column(col, justify=just)  # type: ignore[arg-type]
    for e in shown:
        t.add_row(
            e.key,
            "" if e.median_ms is None else _fmt_ms(e.median_ms),
            "" if e.p90_ms is None else _fmt_ms(e.p90_ms),
            "" if e.mad_ms is None else _fmt_ms(e.mad_ms),
            str(e.n), "" if e.macs is None else f"{e.macs / 1e6:.2f}",
            styled(e.error, "red") if e.error else ",".join(e.flags),
        )
    console.print(t)


@table_app.command("export")
def table_export_cmd(
    path: Annotated[Path, typer.Argument(help="Latency table (.db).")],
    out: Annotated[Path, typer.Option("--output", "-o", help="File to write.")],
    fmt: Annotated[
        str | None,
        typer.Option("--format", help="csv, parquet or ofa (OFA/ProxylessNAS YAML); default: -o's suffix."),
    ] = None,
    style: Annotated[
        str, typer.Option("--style", help="With --format ofa: auto, proxyless or mbv3 (the key layout).")
    ] = "auto",
) -> None:
    """Write every entry (raw samples included) and the table metadata to CSV (a plain CSV, its metadata in
    PATH.meta.json beside it) or Parquet (metadata inside); or the layers OFA's and ProxylessNAS's latency
    estimators know, in their YAML layout."""
    check_outputs({"--output": out}, [path])
    from nasprof.tables.transfer import export_table, meta_path

    kind = (fmt or ("ofa" if out.suffix.lower() in (".yaml", ".yml") else "")).lower()
    if kind == "ofa":
        from nasprof.tables.transfer import check_suffix

        check_suffix(out, "ofa")
        from nasprof.tables.ofa import export_ofa
        from nasprof.tables.store import LatencyTable

        with LatencyTable.load(path) as table:
            result = export_ofa(list(table.entries()), out, style)
        err_console.print(f"wrote {result.path}: {result.written} layers in OFA's {result.style} layout",
                          highlight=False)
        if result.skipped:
            reasons: dict[str, int] = {}
            for _, why in result.skipped:
                reasons[why] = reasons.get(why, 0) + 1
            for why, count in sorted(reasons.items(), key=lambda x: -x[1]):
                warn(f"{count} layer(s) left out: {why} (listed at the top of the file)")
        return
    if style != "auto":
        from nasprof.errors import InputError

        raise InputError("--style applies to --format ofa only")
    written = export_table(path, out, fmt)
    side = meta_path(written)
    extra = f" and its metadata {side}" if written.suffix.lower() != ".parquet" and side.exists() else ""
    err_console.print(f"wrote {written}{extra}", highlight=False)


@table_app.command("import")
def table_import_cmd(
    src: Annotated[Path, typer.Argument(help="CSV or Parquet written by `nasprof table export`.")],
    out: Annotated[Path, typer.Option("--output", "-o", help="New table (.db) to create.")],
    fmt: Annotated[
        str | None, typer.Option("--format", help="csv or parquet (default: from the suffix).")
    ] = None,
) -> None:
    """Validate an exported table and store it as a new SQLite table."""
    check_outputs({"--output": out}, [src])
    from nasprof.tables.transfer import import_table

    n = import_table(src, out, fmt)
    err_console.print(f"imported {n} entries into {out}", highlight=False)


@table_app.command("merge")
def table_merge_cmd(
    a: Annotated[Path, typer.Argument(help="First table.")],
    b: Annotated[Path, typer.Argument(help="Second table.")],
    out: Annotated[Path, typer.Option("--output", "-o", help="New merged table (.db).")],
    force: Annotated[
        bool, typer.Option("--force", help="Merge even if device/environment/space differ.")
    ] = False,
) -> None:
    """Merge two tables of one device into a new one (per key: success, then more samples, then newer)."""
    check_outputs({"--output": out}, [a, b])
    from nasprof.tables.transfer import merge_tables

    r = merge_tables(a, b, out, force=force)
    err_console.print(
        f"merged {r.entries} entries into {out} ({r.only_a} only in {a.name}, {r.only_b} only in {b.name}, "
        f"{r.both} in both: {r.from_b_in_conflicts} taken from {b.name})", highlight=False)
    for d in r.forced_differences:
        warn(f"forced despite {d}")
