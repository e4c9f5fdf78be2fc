"""`nasprof measure`: time a model on a device and render the measurement (or an MCU estimate)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from nasprof.commands._common import (
    DeviceOption,
    ForceOption,
    JsonOption,
    MeasureOptLevelOption,
    RecordOption,
    RunsOption,
    SeedOption,
    SetOption,
    _fmt_ms,
    _kib,
    _parse_options,
    _ProgressBar,
    _tail,
    check_counts,
    check_outputs,
    console,
    emit_json,
    err_console,
    parse_count_list,
    styled,
    to_stdout,
    warn,
)


def _parse_int_range(text: str) -> tuple[int, int]:
    from nasprof.errors import InputError

    low, sep, high = text.partition(":")
    try:
        if not sep:
            raise ValueError
        return int(low), int(high)
    except ValueError:
        raise InputError(f"malformed --int-range {text!r}: write LOW:HIGH, e.g. 0:10") from None


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
    console.print(Text.assemble((title, "bold"), "  " + " · ".join(facts)))

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
    mem = md.get("peak_memory") or {}
    if mem.get("peak_rss_bytes"):
        added = mem.get("added_bytes")
        extra = (f" ({added / 2**20:.1f} MiB above the process before the sessions)" if added is not None
                 else " (the process's lifetime peak)")
        peak = mem["peak_rss_bytes"] / 2**20
        console.print(f"peak memory: {peak:.1f} MiB resident{extra}", highlight=False)
    for w in m.warnings:
        warn(f"{w}")

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


def render_mcu_report(r: Any) -> None:
    """Print an MCU estimate (``McuReport.to_dict()``): fit, peak SRAM and where, Flash, per-layer memory."""
    b, sram, flash = r["board_spec"], r["sram"], r["flash"]
    head = f"{Path(str(r['model'])).name} on {r['board']}"
    rest = f" ({b['core']}, {b['clock_mhz']:g} MHz) · memory model {r['memory_model']}"
    rest += f" · runtime {r['runtime']}"
    console.print(Text.assemble((head, "bold"), rest + " · ESTIMATE"))
    fit = Table(title="fit (KiB)", title_justify="left")
    for col in ("", "needed", "board", "headroom", "fits"):
        fit.add_column(col, justify="left" if col in ("", "fits") else "right")
    for label, need, have, room, ok in (
        ("peak SRAM", r["peak_sram_bytes"], b["sram_bytes"], r["sram_headroom_bytes"], r["fits_sram"]),
        ("Flash", r["flash_bytes"], b["flash_bytes"], r["flash_headroom_bytes"], r["fits_flash"]),
    ):
        fit.add_row(label, _kib(need), _kib(have), f"{_kib(room)} ({room / have:+.0%})",
                    styled("yes", "green") if ok else styled("NO", "red"))
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
    warn("estimate: computed from a model of the runtime and board, not measured")
    if r.get("partial"):
        warn(f"partial estimate; not sized: {', '.join(r['unsized_ops'])}")


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


def measure_cmd(
    model: Annotated[Path, typer.Argument(help="ONNX model to time.")],
    device: DeviceOption = "cpu",
    threads: Annotated[
        str | None,
        typer.Option(help="Intra-op threads [default: the device's setting, else 1]; a comma-separated list "
                          "(1,2,4) measures once per count and compares them."),
    ] = None,
    warmup: Annotated[int, typer.Option(help="Untimed runs per session before timing.")] = 20,
    runs: RunsOption = 100,
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
    opt_level: MeasureOptLevelOption = "all",
    seed: SeedOption = 0,
    int_range: Annotated[str, typer.Option(help="LOW:HIGH range of random integer inputs.")] = "0:10",
    target_ci: Annotated[
        float | None,
        typer.Option(help="Keep sampling until the 95% CI of the median is within ±this (e.g. 0.01)."),
    ] = None,
    max_runs: Annotated[int | None, typer.Option(help="Cap on samples with --target-ci.")] = None,
    option: SetOption = None,
    json_path: JsonOption = None,
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
    force: ForceOption = False,
    record: RecordOption = None,
) -> None:
    """Time MODEL end to end (profiling off, fresh sessions); optionally break it down per node.

    On a microcontroller board (e.g. --device stm32f746) this estimates peak SRAM, Flash and latency instead.
    """
    check_outputs({"--json": json_path, "--plot": plot}, [model])
    check_counts(force, runs=runs, warmup=warmup,
                 sessions=sessions,
                 max_runs=max_runs, per_node_runs=per_node_runs)
    import nasprof
    from nasprof.profiler.progress import progress_to

    if record is not None:  # a bad name is refused before any timing
        from nasprof.tables.measurements import check_set_name

        check_set_name(record)

    opts = {**_parse_options(option), **_mcu_options(memory_model, runtime, allow_partial)}
    thread_list = _check_measure_flags(device, plot, top, threads, per_node, record)
    common = dict(warmup=warmup, runs=runs, sessions=sessions, input_shapes=list(input_shape or []),
                  opt_level=opt_level, seed=seed, target_rel_ci=target_ci, max_runs=max_runs,
                  int_range=_parse_int_range(int_range), options=opts)
    if thread_list is not None and len(thread_list) > 1:
        from nasprof.devices.api import measure_sweep

        with _ProgressBar() as bar, progress_to(bar):
            sweep = measure_sweep(model, thread_list, device=device, **common)  # type: ignore[arg-type]
        _render_sweep(model, thread_list, sweep, json_path)
        return
    with _ProgressBar() as bar, progress_to(bar):
        m = nasprof.measure(model, device=device, threads=thread_list[0] if thread_list else None,  # type: ignore[arg-type]
                            per_node=per_node, per_node_runs=per_node_runs, **common)
    if not to_stdout(json_path):
        render_measurement(m, model, top=top)
    if record is not None:
        _record(record, model, m)
    _emit_measurement(m, plot, json_path)


def _check_measure_flags(device: str | None, plot: Path | None, top: int, threads: str | None,
                         per_node: bool, record: str | None) -> list[int] | None:
    """Refuse flag combinations before timing anything; the thread counts of --threads (None: not given)."""
    from nasprof.devices import get_device
    from nasprof.devices.mcu import McuBackend
    from nasprof.errors import InputError

    if plot is not None and not isinstance(get_device(device or "cpu"), McuBackend):
        raise InputError("--plot draws a microcontroller memory profile; use it with a board device "
                         "(e.g. --device stm32f746)")
    if plot is not None and plot.suffix.lower() != ".png":
        raise InputError(f"--plot writes a PNG; give a path ending in .png, got {str(plot)!r}")
    if top < 1:  # a negative slice would show all nodes but the last ones
        raise InputError(f"--top must be at least 1, got {top}")
    thread_list = parse_count_list(threads)
    if thread_list is not None and device is not None and isinstance(get_device(device), McuBackend):
        # one core, nothing run: the flag would be ignored
        raise InputError(f"--threads means nothing to a microcontroller estimate ({device} has one core "
                         "and nothing is run); drop --threads")
    if thread_list is not None and len(thread_list) > 1 and (per_node or plot is not None or record):
        raise InputError("a --threads sweep gives one summary per count; measure one count for "
                         "--per-node, --plot or --record")
    return thread_list


def _record(name: str, model: Path, m: Any) -> None:
    """``measure --record NAME``: the samples into measurement set NAME (a new version)."""
    from nasprof.errors import InputError
    from nasprof.tables.measurements import record_measurement

    if m.estimated:
        raise InputError("--record stores measured latencies, and this is an estimate; drop --record")
    rec = record_measurement(name, model, m.samples_ms,
                             {**m.metadata, "device": m.device, "backend": m.backend})
    err_console.print(f"recorded in {rec.label}", highlight=False)


def _emit_measurement(m: Any, plot: Path | None, json_path: Path | None) -> None:
    """The board's memory plot and the JSON document (an MCU estimate's report fields at the top level)."""
    mcu = m.memory if m.estimated and (m.memory or {}).get("kind") == "nasprof.mcu_estimate" else None
    if plot is not None and mcu is not None:
        from nasprof.devices.mcu.plot import plot_memory_profile

        err_console.print(f"wrote {plot_memory_profile(mcu, plot)}", highlight=False)
    if json_path is not None:
        doc = m.to_dict()
        if mcu is not None:  # the report's fields at the top level; latency_ms becomes {runtime: ms}
            doc.update({k: v for k, v in mcu.items() if k not in ("schema_version", "kind")})
        emit_json(json_path, doc)


def _render_sweep(model: Path, counts: list[int], sweep: list[Any], json_path: Path | None) -> None:
    """One row per thread count: median, p90, CV and the speed-up over the first count."""
    doc = {"schema_version": 1, "kind": "nasprof.sweep", "setting": "threads", "values": counts,
           "measurements": [m.to_dict() for m in sweep]}
    if emit_json(json_path, doc):
        return
    base = sweep[0].median_ms
    t = Table(title=f"{model.name} on {sweep[0].device}: threads sweep")
    for col in ("threads", "median ms", "p90 ms", "CV", f"speed-up over {counts[0]}", "samples"):
        t.add_column(col, justify="right")
    for n, m in zip(counts, sweep, strict=True):
        t.add_row(str(n), _fmt_ms(m.median_ms), _fmt_ms(m.p90_ms), f"{m.cv:.1%}",
                  f"{base / m.median_ms:.2f}x", str(m.n))
    console.print(t)
    for n, m in zip(counts, sweep, strict=True):
        for w in m.warnings:
            warn(f"{n} threads: {w}")


