"""The ``nasprof`` command line: parse, call the library, render with rich.

Only this module imports typer and prints. Library errors (``NasprofError``) become one line on stderr and
exit code 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from nasprof.errors import NasprofError

app = typer.Typer(
    name="nasprof",
    help="Hardware profiling and latency tables for hardware-aware neural architecture search.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
space_app = typer.Typer(help="Search spaces: list, show, sample.", no_args_is_help=True)
table_app = typer.Typer(
    help="Latency lookup tables: build, show, export, import, merge.", no_args_is_help=True
)
predictor_app = typer.Typer(help="Latency predictors: fit and inspect.", no_args_is_help=True)
devices_app = typer.Typer(help="Named devices: add, list, check.", no_args_is_help=True)
app.add_typer(space_app, name="space")
app.add_typer(table_app, name="table")
app.add_typer(predictor_app, name="predictor")
app.add_typer(devices_app, name="devices")

console = Console()
err_console = Console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])


def handle_errors(fn: F) -> F:
    """Turn ``NasprofError`` into a one-line message on stderr and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except NasprofError as exc:
            msg = " ".join(str(exc).split())  # one line, whatever the library wrote
            err_console.print(f"[bold red]error:[/] {msg}", highlight=False, soft_wrap=True)
            raise typer.Exit(code=2) from None

    return wrapper  # type: ignore[return-value]


def write_json(path: Path, doc: dict[str, Any]) -> None:
    from nasprof._io import atomic_write_text

    atomic_write_text(Path(path), json.dumps(doc, indent=2) + "\n")
    err_console.print(f"wrote {path}", highlight=False)


def _version_callback(value: bool) -> None:
    if value:
        from nasprof._version import __version__

        console.print(f"nasprof {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version_callback, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    """Hardware profiling and latency tables for hardware-aware NAS."""


# ---------------------------------------------------------------------------------------------------------
# measure (issue: measurement on the local CPU)
# ---------------------------------------------------------------------------------------------------------


def _parse_int_range(text: str) -> tuple[int, int]:
    from nasprof.errors import InputError

    low, sep, high = text.partition(":")
    try:
        if not sep:
            raise ValueError
        return int(low), int(high)
    except ValueError:
        raise InputError(f"malformed --int-range {text!r}: write LOW:HIGH, e.g. 0:10") from None


def _parse_options(items: list[str] | None) -> dict[str, Any]:
    """``KEY=VALUE`` pairs for backend-specific settings; values are JSON when they parse as JSON."""
    from nasprof.errors import InputError

    out: dict[str, Any] = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            # -o is --output elsewhere (export, predictor fit); here it is --option, so say where output goes.
            hint = "; to write the result use --json PATH" if not sep else ""
            raise InputError(f"malformed --option {item!r}: write KEY=VALUE, e.g. allow_spinning=false{hint}")
        try:
            out[key.strip()] = json.loads(value)
        except ValueError:
            out[key.strip()] = value
    return out


_Bar = TypeVar("_Bar", bound="_LazyBar")


class _LazyBar:
    """A rich progress bar on stderr that starts at its first report (errors raised while validating
    print without a stray bar) and stops on leaving the ``with`` block. ``terminal_only`` keeps it out of
    logs and pipes, where a bar is noise."""

    def __init__(self, *columns: Any, transient: bool = True, terminal_only: bool = False) -> None:
        from rich.progress import Progress

        self.progress = Progress(*columns, console=err_console, transient=transient)
        self.enabled = err_console.is_terminal or not terminal_only
        self.started = False

    def _start(self) -> None:
        if self.enabled and not self.started:
            self.progress.start()
            self.started = True

    def __enter__(self: _Bar) -> _Bar:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.started:
            self.progress.stop()


def _bar_columns() -> tuple[Any, ...]:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    # Time left too: a large --budget or --samples is hours of measuring, better known at the first steps.
    return (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            TextColumn("left"), TimeRemainingColumn())


class _ProgressBar(_LazyBar):
    """Renders ``nasprof.profiler.progress`` reports of a measurement (terminal only)."""

    def __init__(self) -> None:
        super().__init__(*_bar_columns(), terminal_only=True)
        self.tasks: dict[str, Any] = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        self._start()
        # One bar per phase: the timed sessions share one, the profiled pass gets its own.
        phase = "profiled pass" if stage.startswith("profiled") else "timed runs"
        if phase not in self.tasks:
            self.tasks[phase] = self.progress.add_task(phase, total=total)
        self.progress.update(self.tasks[phase], completed=done, total=total,
                             description=f"{phase} ({stage})" if phase != stage else phase)


def _fmt_ms(v: float) -> str:
    """Four significant digits, trailing zeros kept so columns of times read alike (0.7000, 0.6684)."""
    return f"{v:.0f}" if v >= 1000 else f"{v:#.4g}"


def _tail(name: str, width: int = 36) -> str:
    """Node names differ at their end (``.../conv.1/Conv``); shorten from the left."""
    return name if len(name) <= width else "…" + name[-(width - 1):]


def render_measurement(m: Any, model: Path | None = None, top: int = 15) -> None:
    """Print a ``Measurement`` as rich tables. Estimates (``m.estimated``) and memory reports branch here."""
    if m.estimated and (m.memory or {}).get("kind") == "nasprof.mcu_estimate":
        render_mcu_report(m.memory)  # a microcontroller estimate: memory first, latency per runtime
        return
    md = m.metadata
    title = f"{model.name if model else md.get('model_path', '')} on {m.device}"
    facts = [f"backend {m.backend}"]
    for key, label in (("cpu_model", ""), ("threads", "threads "), ("opt_level", "opt ")):
        if md.get(key) is not None:
            facts.append(f"{label}{md[key]}")
    console.print(f"[bold]{title}[/]  " + " · ".join(facts), highlight=False)

    # Vertical (statistic, value): readable in an 80-column terminal, unlike ten numeric columns.
    lat = Table(title="end-to-end latency" + (" — ESTIMATE" if m.estimated else ""), title_justify="left")
    lat.add_column("statistic")
    lat.add_column("value", justify="right")
    for label, v in (("median", m.median_ms), ("p90", m.p90_ms), ("p99", m.p99_ms), ("mean", m.mean_ms),
                     ("min", m.min_ms), ("max", m.max_ms), ("MAD", m.mad_ms)):
        lat.add_row(label, f"{_fmt_ms(v)} ms")
    lat.add_row("CV", f"{m.cv:.1%}")
    if md.get("median_rel_ci95") is not None:
        lat.add_row("95% CI of median", f"±{md['median_rel_ci95']:.1%}")
    lat.add_row("samples", f"{m.n} ({m.sessions} sessions)")
    if m.sessions > 1:
        lat.add_row("session medians", ", ".join(_fmt_ms(v) for v in m.session_medians_ms) + " ms")
    console.print(lat)
    for w in m.warnings:
        err_console.print(f"[yellow]warning:[/] {w}", highlight=False, soft_wrap=True)

    if m.per_node:
        nodes = Table(title=f"top {min(top, len(m.per_node))} of {len(m.per_node)} nodes "
                            f"(profiled pass, opt level {md.get('per_node_opt_level', '?')})",
                      title_justify="left")
        for col, just in (("node", "left"), ("op", "left"), ("block", "left"), ("ms", "right"),
                          ("share", "right"), ("covers", "right")):
            nodes.add_column(col, justify=just)  # type: ignore[arg-type]
        for n in sorted(m.per_node, key=lambda n: -n.duration_ms)[:top]:
            nodes.add_row(_tail(n.name), n.op_type, n.block, _fmt_ms(n.duration_ms),
                          f"{n.duration_ms / m.median_ms:.1%}", str(len(n.covers)))
        console.print(nodes)
        for key, rows in (("op_type", m.per_op_type), ("block", m.per_block)):
            t = Table(title=f"per {key.replace('_', ' ')}", title_justify="left")
            for col in (key.replace("_", " "), "nodes", "ms", "share"):
                t.add_column(col, justify="left" if col == key.replace("_", " ") else "right")
            for r in rows:
                t.add_row(str(r[key]), str(r["nodes"]), _fmt_ms(r["duration_ms"]), f"{r['share']:.1%}")
            console.print(t)
        console.print(f"coverage (sum of nodes ÷ end-to-end median): {m.node_coverage:.1%}", highlight=False)


def _kib(n: int) -> str:
    return f"{n / 1024:,.1f}"


def render_mcu_report(r: Any) -> None:
    """Print an MCU estimate (``McuReport.to_dict()``): fit, peak SRAM and where, Flash, per-layer memory."""
    b, sram, flash = r["board_spec"], r["sram"], r["flash"]
    console.print(f"[bold]{Path(str(r['model'])).name} on {r['board']}[/] "
                  f"({b['core']}, {b['clock_mhz']:g} MHz) · memory model {r['memory_model']} · "
                  f"runtime {r['runtime']} · ESTIMATE", highlight=False)
    fit = Table(title="fit (KiB)", title_justify="left")
    for col in ("", "needed", "board", "headroom", "fits"):
        fit.add_column(col, justify="left" if col in ("", "fits") else "right")
    for label, need, have, room, ok in (
        ("peak SRAM", r["peak_sram_bytes"], b["sram_bytes"], r["sram_headroom_bytes"], r["fits_sram"]),
        ("Flash", r["flash_bytes"], b["flash_bytes"], r["flash_headroom_bytes"], r["fits_flash"]),
    ):
        fit.add_row(label, _kib(need), _kib(have), f"{_kib(room)} ({room / have:+.0%})",
                    "[green]yes[/]" if ok else "[red]NO[/]")
    console.print(fit)
    console.print(
        f"peak SRAM {r['peak_sram_bytes']:,} B at layer {sram['peak_index']} {r['peak_layer']} "
        f"(activations {sram['activation_bytes']:,} B, static buffers {sram['static_scratch_bytes']:,} B, "
        f"persistent {sram['persistent_bytes']:,} B)", highlight=False)
    console.print(
        f"Flash {r['flash_bytes']:,} B = weights {flash['weight_bytes']:,} + biases {flash['bias_bytes']:,} "
        f"+ quantisation {flash['quant_bytes']:,} + {r['runtime']} code {flash['code_bytes']:,}",
        highlight=False)
    layers = Table(title=f"per-layer SRAM in KiB ({r['memory_model']}); * = peak, ip = depthwise in place",
                   title_justify="left")
    for col in ("#", "layer", "kind", "in", "out", "live", "scratch", "total", "ms"):
        layers.add_column(col, justify="left" if col in ("layer", "kind") else "right")
    for row in r["per_layer"]:
        mark = "*" if row["index"] == sram["peak_index"] else ""
        kind = {"depthwise": "dw"}.get(row["kind"], row["kind"]) + (" ip" if row["in_place"] else "")
        layers.add_row(f"{row['index']}{mark}", _tail(row["name"], 24), kind, _kib(row["input_bytes"]),
                       _kib(row["output_bytes"]), _kib(row["other_bytes"]), _kib(row["scratch_bytes"]),
                       _kib(row["total_bytes"]), _fmt_ms(row["latency_ms"]))
    console.print(layers)
    console.print(f"{r['macs']:,} MACs; latency = MACs x cycles per MAC of the runtime / clock",
                  highlight=False)
    lat = Table(title="estimated latency", title_justify="left")
    lat.add_column("runtime")
    lat.add_column("ms", justify="right")
    for name, ms in r["latency_ms"].items():
        lat.add_row(name + (" *" if name == r["runtime"] else ""), _fmt_ms(ms))
    console.print(lat)
    err_console.print("[yellow]warning:[/] estimate: computed from a model of the runtime and board, "
                      "not measured", highlight=False)
    if r.get("partial"):
        err_console.print(f"[yellow]warning:[/] partial estimate; not sized: {', '.join(r['unsized_ops'])}",
                          highlight=False)


def _mcu_options(memory_model: str | None, runtime: str | None, allow_partial: bool) -> dict[str, Any]:
    """The MCU-only options, passed on only when given (other backends reject unknown options)."""
    opts: dict[str, Any] = {}
    if memory_model is not None:
        opts["memory_model"] = memory_model
    if runtime is not None:
        opts["runtime"] = runtime
    if allow_partial:
        opts["allow_partial"] = True
    return opts


@app.command("measure")
@handle_errors
def measure_cmd(
    model: Annotated[Path, typer.Argument(help="ONNX model to time.")],
    device: Annotated[
        str, typer.Option("--device", "-d", help="Device name (see `nasprof devices list`).")
    ] = "cpu",
    threads: Annotated[
        int | None, typer.Option(help="Intra-op threads [default: the device's setting, else 1].")
    ] = None,
    warmup: Annotated[int, typer.Option(help="Untimed runs per session before timing.")] = 20,
    runs: Annotated[int, typer.Option(help="Timed runs per session.")] = 100,
    sessions: Annotated[int, typer.Option(help="Fresh runtime sessions; their medians are compared.")] = 3,
    input_shape: Annotated[
        list[str] | None,
        typer.Option("--input-shape", help="Fix symbolic dims: NAME=1x3x224x224 (repeatable)."),
    ] = None,
    per_node: Annotated[
        bool, typer.Option("--per-node", help="Add a profiled pass: per node/op/block.")
    ] = False,
    per_node_runs: Annotated[int, typer.Option(help="Runs of the profiled pass.")] = 20,
    top: Annotated[int, typer.Option(help="Nodes shown with --per-node.")] = 15,
    opt_level: Annotated[str, typer.Option(help="Graph optimisation: disable|basic|extended|all.")] = "all",
    seed: Annotated[int, typer.Option(help="Seed of the random inputs.")] = 0,
    int_range: Annotated[str, typer.Option(help="LOW:HIGH range of random integer inputs.")] = "0:10",
    target_ci: Annotated[
        float | None,
        typer.Option(help="Keep sampling until the 95% CI of the median is within ±this (e.g. 0.01)."),
    ] = None,
    max_runs: Annotated[int | None, typer.Option(help="Cap on samples with --target-ci.")] = None,
    option: Annotated[
        list[str] | None, typer.Option("--option", "-o", help="Backend setting KEY=VALUE (repeatable).")
    ] = None,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Also write the result as JSON here.")
    ] = None,
    memory_model: Annotated[
        str | None, typer.Option(help="MCU boards: per-layer | tflm | tinyengine (default per-layer).")
    ] = None,
    runtime: Annotated[
        str | None, typer.Option(help="MCU boards: tflm | cmsis-nn | x-cube-ai | tinyengine.")
    ] = None,
    plot: Annotated[Path | None, typer.Option(help="MCU boards: write the per-layer memory plot (PNG).")] = (
        None
    ),
    allow_partial: Annotated[
        bool, typer.Option("--allow-partial", help="MCU boards: estimate past operators it cannot size.")
    ] = False,
) -> None:
    """Time MODEL end to end (profiling off, fresh sessions); optionally break it down per node.

    On a microcontroller board (e.g. --device stm32f746) this estimates peak SRAM, Flash and latency instead.
    """
    import nasprof
    from nasprof.profiler.progress import progress_to

    opts = {**_parse_options(option), **_mcu_options(memory_model, runtime, allow_partial)}
    if plot is not None:  # refuse before timing anything: only board estimates have a memory profile
        from nasprof.devices import get_device
        from nasprof.devices.mcu import McuBackend
        from nasprof.errors import InputError

        if not isinstance(get_device(device), McuBackend):
            raise InputError("--plot draws a microcontroller memory profile; use it with a board device "
                             "(e.g. --device stm32f746)")
    from nasprof.errors import InputError

    for opt, out in (("--json", json_path), ("--plot", plot)):
        # Fail before measuring, not after minutes of timing.
        if out is not None and not out.parent.is_dir():
            raise InputError(f"cannot write {opt} {out}: directory {out.parent} does not exist")
        if out is not None and out.is_dir():
            raise InputError(f"cannot write {opt} {out}: it is a directory; give a file name")
    if plot is not None and plot.suffix.lower() != ".png":
        raise InputError(f"--plot writes a PNG; give a path ending in .png, got {str(plot)!r}")
    if top < 1:  # a negative slice would show all nodes but the last ones
        raise InputError(f"--top must be at least 1, got {top}")
    with _ProgressBar() as bar, progress_to(bar):
        m = nasprof.measure(
            model, device=device, threads=threads, warmup=warmup, runs=runs, sessions=sessions,
            input_shapes=list(input_shape or []), per_node=per_node, per_node_runs=per_node_runs,
            opt_level=opt_level, seed=seed, target_rel_ci=target_ci, max_runs=max_runs,
            int_range=_parse_int_range(int_range), options=opts,
        )
    render_measurement(m, model, top=top)
    mcu = m.memory if m.estimated and (m.memory or {}).get("kind") == "nasprof.mcu_estimate" else None
    if plot is not None and mcu is not None:
        from nasprof.devices.mcu.plot import plot_memory_profile

        err_console.print(f"wrote {plot_memory_profile(mcu, plot)}", highlight=False)
    if json_path is not None:
        doc = m.to_dict()
        if mcu is not None:  # the report's fields at the top level; latency_ms becomes {runtime: ms}
            doc.update({k: v for k, v in mcu.items() if k not in ("schema_version", "kind")})
        write_json(json_path, doc)


# ---------------------------------------------------------------------------------------------------------
# space / export / count (issue: search spaces and export)
# ---------------------------------------------------------------------------------------------------------


def _fmt_count(n: int) -> str:
    """1234567 -> '1.23M' (human tables; --json keeps exact integers)."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(n)


@space_app.command("list")
@handle_errors
def space_list(
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    """List search spaces and network presets."""
    from nasprof.space import get_preset, get_space, list_presets, list_spaces

    spaces = [get_space(n) for n in list_spaces()]
    presets = [(n, get_preset(n)) for n in list_presets()]
    if json_out:
        doc = {
            "spaces": [{"name": s.name, "blocks": s.num_blocks, "size": s.size(),
                        "distinct_layers_224": len(s.distinct_layers(224)), "description": s.description}
                       for s in spaces],
            "presets": [
                {"name": n, "macs": net.macs, "params": net.params, "resolution": 224} for n, net in presets
            ],
        }
        console.print_json(json.dumps(doc))
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
@handle_errors
def space_show(
    name: Annotated[str, typer.Argument(help="Space name (see `nasprof space list`).")],
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Show a space's per-block choices and its size."""
    from nasprof.space import get_space

    space = get_space(name)
    summary = space.summary()
    summary["distinct_layers_224"] = len(space.distinct_layers(224))
    if json_out:
        console.print_json(json.dumps(summary))
        return
    choices = summary["choices"]
    factors = list(dict.fromkeys(k for block in choices for k in block))
    # Factors with the same choices in every block are printed once, so the table stays narrow.
    shared = [f for f in factors if all(block.get(f) == choices[0].get(f) for block in choices)]

    def fmt(values: list[Any]) -> str:
        return ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values)

    console.print(f"[bold]{space.name}[/]: {space.description}", highlight=False)
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
@handle_errors
def space_sample(
    name: Annotated[str, typer.Argument(help="Space name (see `nasprof space list`).")],
    n: Annotated[int, typer.Option("--n", min=0, help="How many architectures.")] = 5,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same architectures.")] = 0,
    resolution: Annotated[int | None, typer.Option(help="Input resolution (default: the space's).")] = None,
    width: Annotated[float, typer.Option(help="Global width multiplier.")] = 1.0,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON (list of architectures).")] = False,
) -> None:
    """Sample architectures uniformly from a space (seeded)."""
    from nasprof.space import get_space

    archs = get_space(name).sample(n, seed=seed, resolution=resolution, width=width)
    if json_out:
        docs = [dict(a.to_dict(), macs=a.macs, params=a.params) for a in archs]
        console.print_json(json.dumps(docs))
        return
    t = Table(title=f"{n} samples from {name} (seed {seed})")
    for col in ("#", "MACs", "params", "architecture"):
        t.add_column(col, justify="left" if col == "architecture" else "right", overflow="fold")
    for i, a in enumerate(archs):
        t.add_row(str(i), _fmt_count(a.macs), _fmt_count(a.params), a.to_string())
    console.print(t)


@space_app.command("layers")
@handle_errors
def space_layers(
    name: Annotated[str, typer.Argument(help="Space name (see `nasprof space list`).")],
    resolution: Annotated[int | None, typer.Option(help="Input resolution (default: the space's).")] = None,
    width: Annotated[float, typer.Option(help="Global width multiplier.")] = 1.0,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON (one object per layer).")] = False,
) -> None:
    """List every distinct layer (table key) of a space: what a latency table must measure."""
    from nasprof.space import get_space

    layers = get_space(name).distinct_layers(resolution, width=width)
    if json_out:
        docs = [dict(x.to_dict(), key=x.key, macs=x.macs, params=x.params) for x in layers]
        console.print_json(json.dumps(docs))
        return
    t = Table(title=f"{len(layers)} distinct layers of {name}")
    for col in ("key", "MACs", "params"):
        t.add_column(col, justify="left" if col == "key" else "right", overflow="fold")
    for layer in layers:
        t.add_row(layer.key, _fmt_count(layer.macs), _fmt_count(layer.params))
    console.print(t)


@app.command("export")
@handle_errors
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


@app.command("count")
@handle_errors
def count_cmd(
    model: Annotated[str, typer.Argument(help="ONNX file, preset name, architecture string or JSON file.")],
    resolution: Annotated[int | None, typer.Option(help="Input resolution (presets: default 224).")] = None,
    width: Annotated[float | None, typer.Option(help="Width multiplier (presets: default 1.0).")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """MACs and parameters per layer and in total (analytic for presets/architectures, read from the graph
    for ONNX files; the two agree exactly for nasprof exports)."""
    from nasprof.space import count_network, count_onnx, resolve_model

    if model.endswith(".onnx"):
        if resolution is not None or width is not None:
            from nasprof.errors import InputError

            raise InputError("--resolution/--width apply to presets and architectures, not to ONNX files")
        counts = count_onnx(Path(model))
    else:
        counts = count_network(resolve_model(model, resolution=resolution, width=width))
    if json_out:
        console.print_json(json.dumps(counts.to_dict()))
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


# ---------------------------------------------------------------------------------------------------------
# table (issue: lookup tables)
# ---------------------------------------------------------------------------------------------------------


class _BuildBar(_LazyBar):
    """Renders ``BuildProgress``: done/total, rate, ETA, failures; kept on screen (and in logs) at the end."""

    def __init__(self) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

        super().__init__(
            TextColumn("[bold]table build[/]"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"), TextColumn("ETA {task.fields[eta]}"), TimeElapsedColumn(),
            TextColumn("{task.fields[note]}"), transient=False,
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


@table_app.command("build")
@handle_errors
def table_build_cmd(
    space: Annotated[str, typer.Option(help="Search space (see `nasprof space list`).")],
    resolution: Annotated[int, typer.Option(help="Input resolution (pixels).")],
    db: Annotated[Path, typer.Option(help="SQLite table to create or resume.")],
    device: Annotated[
        str, typer.Option("--device", "-d", help="Device, or several identical ones: pixel,pixel2.")
    ] = "cpu",
    limit: Annotated[int | None, typer.Option(help="Measure at most N pending entries.")] = None,
    shard: Annotated[str | None, typer.Option(help="Take share I of N (1-based), e.g. 2/4.")] = None,
    threads: Annotated[int, typer.Option(help="Intra-op threads.")] = 1,
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
        bool, typer.Option("--force", help="Add to a table measured in another environment.")
    ] = False,
    mcu_memory: Annotated[
        str | None, typer.Option(help="Also store peak SRAM/Flash of each layer on this MCU board.")
    ] = None,
    json_path: Annotated[Path | None, typer.Option("--json", help="Write the build report as JSON.")] = None,
) -> None:
    """Measure every distinct layer of SPACE at RESOLUTION on DEVICE into DB (resumable, shardable)."""
    from nasprof.devices.base import MeasureSpec
    from nasprof.tables.builder import build_table

    spec = MeasureSpec(threads=threads, warmup=warmup, runs=runs, sessions=sessions,
                       target_rel_ci=target_ci or None, max_runs=max_runs if target_ci else None)
    try:
        with _BuildBar() as bar:
            report = build_table(space, resolution, device, db, limit=limit, shard=shard, spec=spec,
                                 retry_failed=retry_failed, remeasure=remeasure, force=force,
                                 time_per_entry_s=time_per_entry or None, memory_board=mcu_memory,
                                 progress=bar)
    except KeyboardInterrupt:
        err_console.print(f"interrupted: finished entries are stored in {db}; run the same command to resume",
                          highlight=False)
        raise typer.Exit(code=130) from None
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
    if json_path is not None:
        write_json(json_path, report.to_dict())


@table_app.command("show")
@handle_errors
def table_show_cmd(
    path: Annotated[Path, typer.Argument(help="Latency table (.db).")],
    op: Annotated[str | None, typer.Option(help="Only entries of this op (mbconv, conv, ...).")] = None,
    key_contains: Annotated[str | None, typer.Option(help="Only keys containing this text.")] = None,
    failed: Annotated[bool, typer.Option("--failed", help="Only failed entries.")] = False,
    unstable: Annotated[bool, typer.Option("--unstable", help="Only entries flagged unstable.")] = False,
    limit: Annotated[int, typer.Option(help="Rows shown (0 = all).")] = 20,
    json_out: Annotated[bool, typer.Option("--json", help="Print summary and rows as JSON.")] = False,
) -> None:
    """Summarise a table (entries, failures, coverage of its space, device) and list its entries."""
    from nasprof.tables import LatencyTable
    from nasprof.tables.transfer import table_coverage

    with LatencyTable.load(path) as table:
        meta, summary, coverage = table.metadata, table.summary(), table_coverage(table)
        rows = [e for e in table.entries()
                if (op is None or e.op == op) and (key_contains is None or key_contains in e.key)
                and (not failed or not e.ok) and (not unstable or "unstable" in e.flags)]
    shown = rows if limit <= 0 else rows[:limit]
    if json_out:
        doc = {"path": str(path), "metadata": meta, "summary": summary,
               "coverage": None if coverage is None else {"measured": coverage[0], "distinct": coverage[1]},
               "matching": len(rows),
               "entries": [{k: v for k, v in e.to_row().items() if k != "samples_ms"} | {"n": e.n}
                           for e in shown]}
        console.print_json(json.dumps(doc))
        return
    env = meta.get("environment", {})
    facts = [f"device {meta.get('device')}", f"backend {meta.get('backend', env.get('backend', '?'))}"]
    facts += [f"{k} {env[k]}" for k in ("cpu_model", "threads", "opt_level") if env.get(k) is not None]
    console.print(f"[bold]{path}[/]  space {meta.get('space')} @ {meta.get('resolution')} · " + " · ".join(
        str(f) for f in facts), highlight=False)
    cov = "" if coverage is None else (
        f" · coverage {coverage[0]}/{coverage[1]} ({coverage[0] / coverage[1]:.0%}) of the space")
    console.print(f"{summary['entries']} entries · {summary['ok']} ok · {summary['failed']} failed · "
                  f"{summary['unstable']} unstable{cov}", highlight=False)
    t = Table(title=f"{len(shown)} of {len(rows)} matching entries", title_justify="left")
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
            f"[red]{e.error}[/]" if e.error else ",".join(e.flags),
        )
    console.print(t)


@table_app.command("export")
@handle_errors
def table_export_cmd(
    path: Annotated[Path, typer.Argument(help="Latency table (.db).")],
    out: Annotated[Path, typer.Option("--output", "-o", help="File to write.")],
    fmt: Annotated[
        str | None, typer.Option("--format", help="csv or parquet (default: from -o's suffix).")
    ] = None,
) -> None:
    """Write every entry (raw samples included) and the table metadata to CSV or Parquet."""
    from nasprof.tables.transfer import export_table

    export_table(path, out, fmt)
    err_console.print(f"wrote {out}", highlight=False)


@table_app.command("import")
@handle_errors
def table_import_cmd(
    src: Annotated[Path, typer.Argument(help="CSV or Parquet written by `nasprof table export`.")],
    out: Annotated[Path, typer.Option("--output", "-o", help="New table (.db) to create.")],
    fmt: Annotated[
        str | None, typer.Option("--format", help="csv or parquet (default: from the suffix).")
    ] = None,
) -> None:
    """Validate an exported table and store it as a new SQLite table."""
    from nasprof.tables.transfer import import_table

    n = import_table(src, out, fmt)
    err_console.print(f"imported {n} entries into {out}", highlight=False)


@table_app.command("merge")
@handle_errors
def table_merge_cmd(
    a: Annotated[Path, typer.Argument(help="First table.")],
    b: Annotated[Path, typer.Argument(help="Second table.")],
    out: Annotated[Path, typer.Option("--output", "-o", help="New merged table (.db).")],
    force: Annotated[
        bool, typer.Option("--force", help="Merge even if device/environment/space differ.")
    ] = False,
) -> None:
    """Merge two tables of one device into a new one (per key: success, then more samples, then newer)."""
    from nasprof.tables.transfer import merge_tables

    r = merge_tables(a, b, out, force=force)
    err_console.print(
        f"merged {r.entries} entries into {out} ({r.only_a} only in {a.name}, {r.only_b} only in {b.name}, "
        f"{r.both} in both: {r.from_b_in_conflicts} taken from {b.name})", highlight=False)
    for d in r.forced_differences:
        err_console.print(f"[yellow]warning:[/] forced despite {d}", highlight=False)


# ---------------------------------------------------------------------------------------------------------
# predictor / predict / validate (issue: predictors)
# ---------------------------------------------------------------------------------------------------------


#: ``--in-network/--no-in-network`` of ``predictor fit`` and ``validate`` (LUT calibration).
_InNetworkOption = Annotated[
    bool,
    typer.Option(
        "--in-network/--no-in-network",
        help="LUT calibration: also profile each calibration network once and learn an in-network "
        "ratio per table key first (needs per-node times from the device).",
    ),
]
_ColdWeightsOption = Annotated[
    bool,
    typer.Option(
        "--cold-weights/--no-cold-weights",
        help="Kernel-predictor calibration: fit a cost per MB of weights (they arrive cold in a network). "
        "On by default: better on networks like the calibration ones and on the presets (README).",
    ),
]


class _StepBar(_LazyBar):
    """Renders library calls that report ``progress(done, total, what)``."""

    def __init__(self, label: str) -> None:
        super().__init__(*_bar_columns())
        self.label = label
        self.task: Any = None

    def __call__(self, done: int, total: int, what: str) -> None:
        self._start()
        if self.task is None:
            self.task = self.progress.add_task(self.label, total=total)
        self.progress.update(self.task, completed=done, total=total, description=f"{self.label} ({what})")


@predictor_app.command("fit")
@handle_errors
def predictor_fit_cmd(
    output: Annotated[Path, typer.Option("--output", "-o", help="Predictor file to write (JSON).")],
    table: Annotated[Path | None, typer.Option("--table", help="Fit a LUT predictor on this table.")] = None,
    kernels: Annotated[bool, typer.Option("--kernels", help="Fit a kernel-level regressor.")] = False,
    device: Annotated[str, typer.Option("--device", "-d", help="Device to measure kernels on.")] = "cpu",
    budget: Annotated[
        int,
        typer.Option(help="Kernel measurements to spend (with --kernels); 1500 is what README's figures "
                     "use (~3 min on a 2-core CPU)."),
    ] = 1500,
    threads: Annotated[int, typer.Option(help="Intra-op threads (with --kernels).")] = 1,
    opt_level: Annotated[str, typer.Option(help="Graph optimisation level (with --kernels).")] = "all",
    runs: Annotated[int, typer.Option(help="Timed runs per kernel measurement.")] = 25,
    seed: Annotated[int, typer.Option(help="Seed of the kernel sampling.")] = 0,
    overhead_ms: Annotated[
        float | None, typer.Option(help="Per-call overhead (ms) to subtract per table entry (LUT).")
    ] = None,
    measure_overhead: Annotated[
        bool, typer.Option("--measure-overhead", help="Measure the per-call overhead on the table's device.")
    ] = False,
    calibrate: Annotated[
        int,
        typer.Option(
            help="Measure this many sampled architectures end to end and calibrate on them: the LUT's "
            "family factors and in-network ratios (--table; 100 for README's figures), or the kernel "
            "predictor's in-network factors (--kernels; 20-30 is typical)."
        ),
    ] = 0,
    calibrate_seed: Annotated[int, typer.Option(help="Seed of the calibration architectures.")] = 1000,
    in_network: _InNetworkOption = True,
    cold_weights: _ColdWeightsOption = True,
) -> None:
    """Fit a predictor: from a lookup table (--table) or by measuring sampled kernels (--kernels)."""
    from nasprof.errors import InputError
    from nasprof.predictors import KernelPredictor, LutPredictor

    if (table is None) == (not kernels):
        raise InputError("give exactly one of --table PATH (lookup table) or --kernels (regression)")
    if table is not None:
        if measure_overhead:
            overhead_ms = _measure_table_overhead(table)
        p: Any = LutPredictor.from_table(table, overhead_ms=overhead_ms)
        if calibrate:
            from nasprof.predictors.validation import calibrate_lut

            with _StepBar("calibrating") as bar:
                p = calibrate_lut(p, p.device, samples=calibrate, seed=calibrate_seed, in_network=in_network,
                                  progress=bar)
        p.save(output)
        err_console.print(f"wrote {output}: lookup-table predictor, {len(p.entries)} entries, "
                          f"device {p.device}, overhead {p.overhead_ms:.4f} ms, {_lut_calibration(p)}",
                          highlight=False)
        loo = p.training_error.get("leave_one_out")
        if loo is not None:
            before = p.training_error["before"]
            console.print(f"calibrated on {p.training_error['networks']} sampled architectures: RMSPE "
                          f"{before['rmspe']:.1%} uncalibrated -> {loo['rmspe']:.1%} (leave-one-out), within "
                          f"±5% {loo['within_5pct']:.0%}, ±10% {loo['within_10pct']:.0%}", highlight=False)
        return
    from nasprof.devices import MeasureSpec

    spec = MeasureSpec(threads=threads, warmup=5, runs=runs, sessions=1, opt_level=opt_level, seed=seed)
    with _StepBar("measuring kernels") as bar:
        p = KernelPredictor.fit(
            device,
            budget=budget,
            spec=spec,
            seed=seed,
            progress=bar,
            calibrate=calibrate,
            calibrate_seed=calibrate_seed,
            weight_cost=cold_weights,
        )
    p.save(output)
    err_console.print(f"wrote {output}: kernel predictor for {device}, types {', '.join(p.kernel_types)}",
                      highlight=False)
    console.print(f"kernel rules detected on {p.rules.identity()}", highlight=False)
    for line in p.rules.unexplained:
        err_console.print(f"[yellow]warning:[/] the split does not reproduce probe {line}", highlight=False)
    _render_training_error(p.training_error)
    if p.calibration is not None:
        info = p.calibration.info
        console.print(
            f"calibrated on {info['networks']} sampled architectures: RMSPE "
            f"{info['before']['rmspe']:.1%} uncalibrated -> {info['leave_one_out']['rmspe']:.1%} "
            f"(leave-one-out); device speed vs kernel sampling x{p.calibration.speed_ratio:.3f} (anchors); "
            f"cold weights {p.calibration.ms_per_weight_mb:.4f} ms/MB",
            highlight=False,
        )
        _calibration_warning(p)


def _lut_calibration(p: Any) -> str:
    """The LUT's calibration in a phrase: in-network ratios, family factors and cost per weight MB, or
    its scale."""
    import numpy as np

    ratios = ""
    if p.layer_ratios:
        lo, mid, hi = np.percentile(list(p.layer_ratios.values()), [10, 50, 90])
        ratios = f"in-network ratios p10/p50/p90 {lo:.2f}/{mid:.2f}/{hi:.2f} on {len(p.layer_ratios)} keys, "
    if not p.group_factors:
        return f"{ratios}scale {p.scale:.4f}"
    factors = ", ".join(f"{g} ×{f:.3f}" for g, f in sorted(p.group_factors.items()))
    return (f"{ratios}factors {factors} (others ×{p.scale:.3f}), {p.ms_per_weight_mb:.4f} ms per MB of "
            f"weights, per-network constant {p.offset_ms:+.4f} ms")


def _refit_warning(p: Any) -> None:
    """A kernel predictor that should be refitted (``KernelPredictor.refit_reason``)."""
    stale = getattr(p, "refit_reason", None)
    if stale:
        err_console.print(f"[yellow]warning:[/] {stale}", highlight=False, soft_wrap=True)


def _rules_check(p: Any, strict: bool) -> None:
    """A kernel predictor whose rules were detected on another device or onnxruntime: a warning, or with
    ``--strict`` an error."""
    from nasprof.errors import PredictorError

    for msg in p.compatibility() if p.kind == "kernel" else []:
        if strict:
            raise PredictorError(f"{msg} (--strict)")
        err_console.print(f"[yellow]warning:[/] {msg}", highlight=False, soft_wrap=True)


_StrictOption = Annotated[
    bool,
    typer.Option("--strict", help="Refuse a kernel predictor whose rules were detected on another device, "
                 "CPU or onnxruntime version (default: warn)."),
]


def _calibration_warning(p: Any) -> None:
    """A stale kernel predictor, or a kernel calibration that predicts its own held-out networks worse than
    no calibration."""
    _refit_warning(p)
    w = p.calibration.info.get("warning") if p.calibration is not None else None
    if w:
        err_console.print(f"[yellow]warning:[/] calibration: {w}", highlight=False, soft_wrap=True)


def _kernel_calibration(p: Any) -> str:
    """A kernel predictor's calibration in a phrase: group factors, cold-weight cost, device speed."""
    cal = p.calibration
    factors = ", ".join(f"{g} ×{f:.2f}" for g, f in sorted(cal.factors.items()) if abs(f - 1.0) >= 0.005)
    return (f"factors {factors or 'all ×1.00'}, cold weights {cal.ms_per_weight_mb:.4f} ms/MB, device speed "
            f"×{cal.speed_ratio:.3f} (anchors)")


def _measure_table_overhead(table: Path) -> float:
    from nasprof.devices import MeasureSpec
    from nasprof.predictors.kernel.sampling import measure_overhead
    from nasprof.tables.store import LatencyTable

    meta = LatencyTable.load(table).metadata
    spec = meta.get("measure_spec") or meta.get("spec") or {}
    ms = MeasureSpec(threads=int(spec.get("threads", 1)), opt_level=str(spec.get("opt_level", "all")))
    return measure_overhead(str(meta.get("device", "cpu")), ms)


def _render_training_error(training: dict[str, Any]) -> None:
    per_type = training.get("per_type") or {}
    if not per_type:
        return
    t = Table(title=f"training error ({training.get('method', '')})")
    for col in ("kernel type", "n", "RMSPE", "within ±10%"):
        t.add_column(col, justify="left" if col == "kernel type" else "right")
    for k, v in sorted(per_type.items()):
        t.add_row(k, str(v["n"]), f"{v['rmspe']:.1%}", f"{v['within_10pct']:.0%}")
    console.print(t)


@predictor_app.command("show")
@handle_errors
def predictor_show_cmd(
    path: Annotated[Path, typer.Argument(help="Predictor file.")],
    json_out: Annotated[bool, typer.Option("--json", help="Print the header as JSON.")] = False,
) -> None:
    """Show a predictor's kind, device, measurement settings, features and training error."""
    from nasprof.predictors import Predictor

    p = Predictor.load(path)
    d = p.describe()
    if json_out:
        console.print_json(json.dumps(d))
        return
    t = Table(title=str(path), show_header=False)
    t.add_column("field")
    t.add_column("value")
    for k in ("kind", "device", "schema_version", "measure_spec", "features", "metadata"):
        t.add_row(k, json.dumps(d.get(k)) if not isinstance(d.get(k), str) else d[k])
    if p.kind == "lut":
        t.add_row("entries", str(len(p.entries)))  # type: ignore[attr-defined]
        t.add_row("overhead_ms", f"{p.overhead_ms:.4f}")  # type: ignore[attr-defined]
        t.add_row("calibration", _lut_calibration(p))
        loo = p.training_error.get("leave_one_out")
        if loo is not None:
            t.add_row("calibration RMSPE", f"{p.training_error['before']['rmspe']:.1%} uncalibrated, "
                      f"{loo['rmspe']:.1%} leave-one-out ({p.training_error['networks']} networks)")
    else:
        t.add_row("kernel types", ", ".join(p.kernel_types))  # type: ignore[attr-defined]
        t.add_row("overhead_ms", f"{p.overhead_ms:.4f}")  # type: ignore[attr-defined]
        for k, v in p.rules.describe().items():  # type: ignore[attr-defined]
            t.add_row(f"rules: {k}", str(v))
        cal = p.calibration  # type: ignore[attr-defined]
        if cal is not None:
            t.add_row("calibration factors", json.dumps({g: round(v, 3) for g, v in cal.factors.items()}))
            if cal.ms_per_mb:
                t.add_row("calibration ms/MB moved",
                          json.dumps({g: round(v, 4) for g, v in cal.ms_per_mb.items()}))
            t.add_row("calibration cold weights",
                      f"{cal.ms_per_weight_mb:.4f} ms per MB of weights of "
                      + ", ".join(sorted(cal.weight_groups)))
            t.add_row("calibration speed ratio", f"{cal.speed_ratio:.3f} (anchor kernels then vs now)")
            t.add_row(
                "calibration RMSPE",
                f"{cal.info['before']['rmspe']:.1%} uncalibrated, {cal.info['leave_one_out']['rmspe']:.1%} "
                f"leave-one-out ({cal.info['networks']} networks)",
            )
    console.print(t)
    _render_training_error(p.training_error)
    if p.kind == "kernel":
        _calibration_warning(p)
        _rules_check(p, strict=False)


@app.command("predict")
@handle_errors
def predict_cmd(
    target: Annotated[str, typer.Argument(help="MODEL.onnx (kernel predictor) or an architecture (LUT).")],
    predictor: Annotated[Path, typer.Option("--predictor", "-p", help="Predictor file.")],
    device: Annotated[
        str | None, typer.Option("--device", "-d", help="Refuse a predictor for another device.")
    ] = None,
    fallback: Annotated[
        Path | None, typer.Option(help="Kernel predictor for layers missing from a LUT (flagged).")
    ] = None,
    allow_partial: Annotated[
        bool, typer.Option("--allow-partial", help="Exit 0 even if some operators cannot be predicted.")
    ] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the prediction as JSON.")] = False,
    strict: _StrictOption = False,
) -> None:
    """Predict the latency of an ONNX model or an architecture."""
    from nasprof.errors import InputError
    from nasprof.predictors import Predictor

    p = Predictor.load(predictor, device=device)
    _refit_warning(p)
    _rules_check(p, strict)
    if fallback is not None:
        if p.kind != "lut":
            raise InputError("--fallback applies to lookup-table predictors only")
        p = p.with_fallback(Predictor.load(fallback, device=p.device))  # type: ignore[attr-defined]
    if target.endswith(".onnx") and not Path(target).is_file():
        raise InputError(f"model {target} does not exist")
    result = p.explain(target)
    if json_out:
        console.print_json(json.dumps({"target": target, "device": p.device, "predictor": p.kind,
                                       **result.to_dict()}))
    else:
        by_kind: dict[str, list[float]] = {}
        for part in result.parts:
            by_kind.setdefault(part.kind if p.kind == "kernel" else part.source, []).append(part.latency_ms)
        t = Table(title=f"{Path(target).name if target.endswith('.onnx') else 'architecture'} on {p.device}")
        for col in ("part", "count", "ms"):
            t.add_column(col, justify="left" if col == "part" else "right")
        for k, v in sorted(by_kind.items(), key=lambda kv: -sum(kv[1])):
            t.add_row(k, str(len(v)), _fmt_ms(sum(v)))
        t.add_row("per-call overhead", "1", _fmt_ms(result.overhead_ms))
        console.print(t)
        console.print(f"predicted latency: [bold]{result.latency_ms:.3f} ms[/]"
                      + (" (partial)" if result.missing else ""))
        if result.fallback:
            err_console.print(f"note: {len(result.fallback)} layer(s) predicted by the fallback predictor",
                              highlight=False)
    if result.missing:
        shown = ", ".join(result.missing[:8]) + (" ..." if len(result.missing) > 8 else "")
        err_console.print(
            f"cannot predict {len(result.missing)} part(s): {shown}", highlight=False, soft_wrap=True
        )
        if not allow_partial:
            raise typer.Exit(code=2)


@app.command("validate")
@handle_errors
def validate_cmd(
    predictor: Annotated[Path, typer.Option("--predictor", "-p", help="Predictor file.")],
    device: Annotated[str, typer.Option("--device", "-d", help="Device to measure on.")] = "cpu",
    space: Annotated[str | None, typer.Option(help="Search space to sample architectures from.")] = None,
    samples: Annotated[int, typer.Option(help="Architectures to sample.")] = 20,
    seed: Annotated[int, typer.Option(help="Sampling seed.")] = 0,
    models: Annotated[
        list[Path] | None, typer.Option("--models", help="Validate these ONNX files instead (repeatable).")
    ] = None,
    runs: Annotated[int, typer.Option(help="Timed runs per session per network.")] = 25,
    sessions: Annotated[
        int, typer.Option(help="Interleaved rounds: every network gets one fresh session per round.")
    ] = 6,
    allow_partial: Annotated[bool, typer.Option("--allow-partial", help="Skip unknown operators.")] = False,
    calibrate: Annotated[
        int,
        typer.Option(help="First calibrate on N other sampled networks, measured in the same rounds "
                     "(LUT: 100 for README's figures; kernel predictor: 20-30)."),
    ] = 0,
    calibrate_seed: Annotated[int, typer.Option(help="Seed of the calibration networks.")] = 1000,
    in_network: _InNetworkOption = True,
    cold_weights: _ColdWeightsOption = True,
    save_predictor: Annotated[
        Path | None,
        typer.Option("--save-predictor", help="With --calibrate: write the calibrated predictor."),
    ] = None,
    json_path: Annotated[Path | None, typer.Option("--json", help="Write the report as JSON.")] = None,
    csv_path: Annotated[Path | None, typer.Option("--csv", help="Write predicted vs measured (CSV).")] = None,
    plot_path: Annotated[Path | None, typer.Option("--plot", help="Write a scatter plot (PNG).")] = None,
    extra_models: Annotated[list[str] | None, typer.Argument(help="More ONNX files after --models.")] = None,
    strict: _StrictOption = False,
) -> None:
    """Measure sampled architectures (or given models) end to end and compare with the predictor."""
    from nasprof.errors import InputError
    from nasprof.predictors import Predictor
    from nasprof.predictors.validation import validate, validation_spec

    p = Predictor.load(predictor, device=device)
    _rules_check(p, strict)
    all_models = [*(models or []), *(Path(m) for m in (extra_models or []))]
    if extra_models and not models:
        raise InputError(f"unexpected argument {extra_models[0]!r}; ONNX files go after --models")
    if save_predictor is not None and not calibrate:
        raise InputError("--save-predictor writes the predictor --calibrate fits; add --calibrate N")
    spec = validation_spec(p, runs=runs, sessions=sessions)
    with _StepBar("measuring networks") as bar:
        report = validate(p, device, space=space, samples=samples, seed=seed, models=all_models or None,
                          spec=spec, allow_partial=allow_partial, calibrate=calibrate,
                          calibrate_seed=calibrate_seed, in_network=in_network, weight_cost=cold_weights,
                          progress=bar)
    if calibrate:
        cal = report.metadata["calibration"]
        loo = cal.get("leave_one_out") or cal["after"]
        phrase = (_kernel_calibration(report.predictor) if report.predictor_kind == "kernel"
                  else _lut_calibration(report.predictor))
        console.print(f"calibrated on {cal['networks']} other networks measured in the same rounds "
                      f"({phrase}): leave-one-out RMSPE {loo['rmspe']:.1%}", highlight=False)
        if report.predictor_kind == "kernel":
            _calibration_warning(report.predictor)
        if save_predictor is not None:
            assert report.predictor is not None
            report.predictor.save(save_predictor)
            err_console.print(f"wrote {save_predictor}", highlight=False)
    t = Table(title=f"{p.kind} predictor vs {device} (n={report.n})")
    for col in ("network", "predicted ms", "measured ms", "error"):
        t.add_column(col, justify="left" if col == "network" else "right", overflow="fold")
    for r in report.worst(10):
        t.add_row(r.name[:60], f"{r.predicted_ms:.3f}", f"{r.measured_ms:.3f}", f"{r.rel_error:+.1%}")
    console.print(t)
    console.print(f"RMSE {report.rmse_ms:.3f} ms · RMSPE {report.rmspe:.1%} · within ±5% "
                  f"{report.within_5pct:.0%} · within ±10% {report.within_10pct:.0%}", highlight=False)
    floor = report.noise_floor
    if floor is not None:
        console.print(f"noise floor (even vs odd measurement rounds): RMSPE {floor['rmspe']:.1%} · within "
                      f"±5% {floor['within_5pct']:.0%} · within ±10% {floor['within_10pct']:.0%}",
                      highlight=False)
    if json_path is not None:
        write_json(json_path, report.to_dict())
    if csv_path is not None:
        report.write_csv(csv_path)
        err_console.print(f"wrote {csv_path}", highlight=False)
    if plot_path is not None:
        report.plot(plot_path)
        err_console.print(f"wrote {plot_path}", highlight=False)


# ---------------------------------------------------------------------------------------------------------
# devices (issue: device backends)
# ---------------------------------------------------------------------------------------------------------


@devices_app.command("add")
@handle_errors
def devices_add_cmd(
    name: Annotated[str, typer.Argument(help="Device name, e.g. pixel (letters, digits, - and _).")],
    backend: Annotated[str, typer.Option("--backend", "-b", help="Backend kind: cpu, cuda, android, mcu.")],
    serial: Annotated[str | None, typer.Option(help="Android: adb serial (see `adb devices`).")] = None,
    cores: Annotated[str | None, typer.Option(help="Android: big | all | hex CPU mask such as 0xf0.")] = None,
    threads: Annotated[int | None, typer.Option(help="Threads used on the device (default 1).")] = None,
    runner: Annotated[
        Path | None, typer.Option(help="Android: onnxruntime_perf_test built for the device.")
    ] = None,
    board: Annotated[str | None, typer.Option(help="mcu: board name, e.g. stm32f746.")] = None,
    device_id: Annotated[int | None, typer.Option("--device-id", help="cuda: GPU index.")] = None,
    option: Annotated[
        list[str] | None, typer.Option("--option", "-o", help="Other backend setting KEY=VALUE (repeatable).")
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace a device of that name, or shadow a built-in.")
    ] = False,
    project: Annotated[
        bool, typer.Option("--project", help="Write ./nasprof.toml instead of the user's devices file.")
    ] = False,
) -> None:
    """Add a named device to the devices file (./nasprof.toml if present, else the user's devices.toml)."""
    from nasprof.devices import config as devcfg
    from nasprof.devices.resolve import add_named_device

    options: dict[str, Any] = _parse_options(option)
    given = {"serial": serial, "cores": cores, "threads": threads, "board": board, "device_id": device_id,
             "runner": None if runner is None else str(runner)}
    options.update({k: v for k, v in given.items() if v is not None})
    path = Path.cwd() / devcfg.PROJECT_FILE if project else None
    written = add_named_device(name, backend, options, force=force, devices_path=path)
    err_console.print(f"added device [bold]{name}[/] ({backend}) to {written}", highlight=False)


@devices_app.command("remove")
@handle_errors
def devices_remove_cmd(name: Annotated[str, typer.Argument(help="Named device to remove.")]) -> None:
    """Remove a named device from the devices file."""
    from nasprof.devices.resolve import remove_named_device

    written = remove_named_device(name)
    err_console.print(f"removed device [bold]{name}[/] from {written}", highlight=False)


@devices_app.command("list")
@handle_errors
def devices_list_cmd(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List every device (named ones, then built-ins) and whether it can be used here, or why not."""
    from nasprof.devices import list_devices
    from nasprof.devices.config import devices_file

    rows = list_devices()
    path = devices_file()
    if as_json:
        console.print_json(json.dumps({"devices_file": str(path), "devices": [r.to_dict() for r in rows]}))
        return
    t = Table(title=f"devices (named devices from {path})")
    for col in ("name", "backend", "source", "available", "settings / why not"):
        t.add_column(col, overflow="fold")
    for r in rows:
        settings = ", ".join(f"{k}={v}" for k, v in r.options.items())
        t.add_row(r.name, r.backend, r.source, "[green]yes[/]" if r.available else "[red]no[/]",
                  settings if r.available else " — ".join(filter(None, [settings, r.reason])))
    console.print(t)


@devices_app.command("check")
@handle_errors
def devices_check_cmd(
    name: Annotated[str, typer.Argument(help="Device to check (see `nasprof devices list`).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Connect to a device and show what it reports (model, cores, clocks, thermal state, runtimes)."""
    from nasprof.devices import get_device

    backend = get_device(name)
    backend.ensure_available()
    info = backend.describe()
    if as_json:
        console.print_json(json.dumps(info, default=str))
        return
    t = Table(title=f"{name}: available", show_header=False)
    t.add_column("key", style="bold")
    t.add_column("value", overflow="fold")
    for key, value in info.items():
        t.add_row(str(key), value if isinstance(value, str) else json.dumps(value, default=str))
    console.print(t)


@devices_app.command("probe")
@handle_errors
def devices_probe_cmd(
    name: Annotated[str, typer.Argument(help="Device to probe (see `nasprof devices list`).")],
    opt_level: Annotated[str, typer.Option(help="Graph optimisation level to probe at.")] = "all",
    threads: Annotated[int, typer.Option(help="Intra-op threads.")] = 1,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Write the rules and every probe's kernels as JSON (- for "
                                  "stdout).")
    ] = None,
) -> None:
    """Run small probe graphs on a device and show the kernel rules it follows: which ops fuse, whether it
    has a blocked (NCHWc) layout and its block size, which kernels run blocked, where reorders go."""
    from nasprof.predictors.kernel.probe import probe_rules

    with _StepBar("probing") as bar:
        report = probe_rules(name, opt_level=opt_level, threads=threads, progress=bar)
    if json_path is not None and str(json_path) == "-":
        console.print_json(json.dumps(report.to_dict()))
        return
    t = Table(title=f"{name}: kernel rules ({len(report.observations)} probes, {report.seconds:.1f} s)",
              show_header=False)
    t.add_column("rule", style="bold")
    t.add_column("value", overflow="fold")
    for k, v in report.rules.describe().items():
        t.add_row(k, str(v))
    console.print(t)
    if json_path is not None:
        report.save_json(json_path)
        err_console.print(f"wrote {json_path}", highlight=False)


# ---------------------------------------------------------------------------------------------------------
# search (issue: search)
# ---------------------------------------------------------------------------------------------------------


@app.command("search")
@handle_errors
def search_cmd(
    space: Annotated[str, typer.Option("--space", help="Search space name (see `nasprof space list`).")],
    predictor: Annotated[
        Path, typer.Option("--predictor", help="Latency predictor file (from `nasprof predictor fit`).")
    ],
    target_ms: Annotated[float, typer.Option("--target-ms", help="Latency target T in milliseconds (> 0).")],
    budget: Annotated[int, typer.Option("--budget", help="Number of candidates to evaluate.")],
    seed: Annotated[int, typer.Option("--seed", help="Random seed: the same seed, the same result.")] = 0,
    reward: Annotated[
        str, typer.Option("--reward", help="MnasNet reward preset: soft (a=b=-0.07) or hard (a=0, b=-1).")
    ] = "soft",
    alpha: Annotated[
        float | None, typer.Option("--alpha", help="Exponent below the target (overrides the preset).")
    ] = None,
    beta: Annotated[
        float | None, typer.Option("--beta", help="Exponent above the target (overrides the preset).")
    ] = None,
    proxy: Annotated[
        str, typer.Option("--proxy", help="Accuracy proxy: macs (log10 MACs) or naswot (needs torch).")
    ] = "macs",
    strategy: Annotated[
        str, typer.Option("--strategy", help="evolution (aging evolution) or random.")
    ] = "evolution",
    device: Annotated[
        str | None, typer.Option("--device", help="MCU board whose SRAM and Flash must fit (stm32f746).")
    ] = None,
    top: Annotated[int, typer.Option("--top", help="Rows in the printed table.")] = 10,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write the result (Pareto front, best) as JSON.")
    ] = None,
    plot: Annotated[Path | None, typer.Option("--plot", help="Write the front as a PNG.")] = None,
    export_best: Annotated[
        Path | None, typer.Option("--export-best", help="Export the best architecture to ONNX.")
    ] = None,
) -> None:
    """Search a space for the best MnasNet reward (predicted latency x accuracy proxy): print the top
    architectures, write the Pareto front (JSON, PNG) and export the best one (ONNX)."""
    from nasprof.errors import InputError
    from nasprof.search.api import search

    # Fail before a long search, not after it, when an output cannot be written.
    for opt, out in (("--json", json_out), ("--plot", plot), ("--export-best", export_best)):
        if out is not None and not out.parent.is_dir():
            raise InputError(f"{opt}: directory {out.parent} does not exist")
        if out is not None and out.is_dir():
            raise InputError(f"{opt}: {out} is a directory; give a file name")
    if plot is not None and plot.suffix.lower() != ".png":
        raise InputError(f"--plot writes a PNG; give a path ending in .png, got {plot}")
    if export_best is not None and export_best.suffix.lower() != ".onnx":
        raise InputError(f"--export-best writes ONNX; give a path ending in .onnx, got {export_best}")
    if top < 1:
        raise InputError(f"--top must be at least 1, got {top}")

    with _StepBar("searching") as bar:
        result = search(
            space, predictor, target_ms, budget=budget, seed=seed, reward=reward, alpha=alpha, beta=beta,
            proxy=proxy, strategy=strategy, device=device,
            on_progress=lambda done, total: bar(done, total, "candidates"),
        )
    if result.best is None:
        if json_out is not None:  # the overflow figures are still worth keeping
            write_json(json_out, result.to_dict(top=top))
        limits = result.constraint or {}
        raise InputError(
            f"none of the {result.evaluated} candidates fits {limits.get('device')} "
            f"(SRAM {limits.get('sram_bytes')} B, Flash {limits.get('flash_bytes')} B); "
            "raise --budget or pick a larger board"
        )
    rw = result.reward
    table = Table(
        title=f"{result.space}: top {top} of {result.evaluated} by reward ({rw.name}: a={rw.alpha:g}, "
        f"b={rw.beta:g}, T={rw.target_ms:g} ms)"
    )
    for col in ("#", "latency ms", f"proxy ({result.proxy})", "reward", "MMACs"):
        table.add_column(col, justify="right")
    if result.constraint:
        table.add_column("SRAM KiB", justify="right")
        table.add_column("Flash KiB", justify="right")
    ranked = result.top(top)
    for i, c in enumerate(ranked, 1):
        row = [str(i), f"{c.latency_ms:.3f}", f"{c.accuracy:.4f}", f"{c.reward:.4f}", f"{c.macs / 1e6:.1f}"]
        if result.constraint:
            row += [f"{(c.sram_bytes or 0) / 1024:.0f}", f"{(c.flash_bytes or 0) / 1024:.0f}"]
        table.add_row(*row)
    console.print(table)
    # Whole strings, one per line, so they can be copied into `nasprof export` or `predict`.
    for i, c in enumerate(ranked, 1):
        console.print(f"{i:>3}  {c.arch}", highlight=False, soft_wrap=True)
    console.print(
        f"evaluated {result.evaluated} in {result.seconds:.2f} s ({result.per_second:,.0f}/s), "
        f"{result.feasible_count} feasible, Pareto front: {len(result.pareto)} architectures",
        highlight=False,
    )
    if json_out is not None:
        write_json(json_out, result.to_dict(top=top))
    if plot is not None:
        from nasprof.search.plot import plot_search

        plot_search(result, plot)
        err_console.print(f"wrote {plot}", highlight=False)
    if export_best is not None:
        from nasprof.search.api import export_best_arch

        export_best_arch(result, export_best)
        err_console.print(f"wrote {export_best}", highlight=False)


def main() -> None:
    """The ``nasprof`` entry point. Click's usage errors (a bad option value, a missing option) become one
    line and exit code 2 like the library's errors, instead of typer's five-line box."""
    # click's exception classes, wherever this typer takes click from (the package, or its vendored copy).
    click_exc = sys.modules[typer.BadParameter.__module__]
    no_args_is_help = getattr(click_exc, "NoArgsIsHelpError", None)
    try:
        rv = app(standalone_mode=False)
    except click_exc.ClickException as exc:
        if no_args_is_help is not None and isinstance(exc, no_args_is_help):
            # A bare group (`nasprof space`): its help, as typer shows it.
            err_console.print(exc.format_message(), highlight=False, markup=False)
            sys.exit(2)
        msg = " ".join(exc.format_message().split())
        ctx = getattr(exc, "ctx", None)
        hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
        err_console.print(f"[bold red]error:[/] {msg}{hint}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except typer.Abort:
        err_console.print("aborted", highlight=False)
        sys.exit(130)
    sys.exit(rv if isinstance(rv, int) else 0)


if __name__ == "__main__":
    main()
