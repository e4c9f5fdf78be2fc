"""Shared by the command modules: the consoles, progress bars, JSON output and small formatters."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.text import Text

# User text (paths, architecture strings, table keys, error messages) is never read as rich markup or emoji
# codes: `[/red]` in a path would raise, `[red]` vanish and `:abc:` become an emoji. Styling goes through
# ``Text`` objects (``warn``, ``styled``) instead.
console = Console(markup=False, emoji=False, highlight=False, soft_wrap=True)


err_console = Console(stderr=True, markup=False, emoji=False, highlight=False, soft_wrap=True)


def styled(text: object, style: str) -> Text:
    """``text`` (user text or not) in ``style``, never parsed as markup."""
    return Text(str(text), style=style)


def warn(message: str) -> None:
    """A yellow ``warning:`` line on stderr; the message is printed as it is."""
    err_console.print(Text.assemble(("warning:", "yellow"), " ", message), soft_wrap=True)


def error_line(message: str) -> Text:
    """The one-line ``error: ...`` every failing command ends with."""
    return Text.assemble(("error:", "bold red"), " ", one_line(message))


def write_json(path: Path, doc: dict[str, Any]) -> None:
    from nasprof._io import atomic_write_text

    atomic_write_text(Path(path), json.dumps(doc, indent=2) + "\n")
    err_console.print(f"wrote {path}", highlight=False)


#: ``--set KEY=VALUE``: a backend setting (repeatable), the one spelling for it in every command.
SetOption = Annotated[
    list[str] | None,
    typer.Option("--set", metavar="KEY=VALUE",
                 help="Backend setting, e.g. allow_spinning=false (repeatable)."),
]


def _parse_options(items: list[str] | None) -> dict[str, Any]:
    """``--set KEY=VALUE`` pairs for backend-specific settings; values are JSON when they parse as JSON."""
    from nasprof.errors import InputError

    out: dict[str, Any] = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not key.strip().replace("_", "").replace("-", "").isalnum():
            raise InputError(f"malformed --set {item!r}: write KEY=VALUE with a KEY of letters, digits and "
                             "_, e.g. allow_spinning=false")
        try:
            out[key.strip()] = json.loads(value)
        except ValueError:
            out[key.strip()] = value
    return out


_Bar = TypeVar("_Bar", bound="_LazyBar")


#: Without a terminal (a log, a pipe, CI) a bar cannot redraw: work that has run longer than this prints a
#: plain line on stderr at every tenth of its progress instead, so a long run is never silent.
PLAIN_PROGRESS_AFTER_S = 2.0


class _LazyBar:
    """A rich progress bar on stderr that starts at its first report (errors raised while validating
    print without a stray bar) and stops on leaving the ``with`` block. Without a terminal it prints a line
    per 10% instead (``plain``), once the work has run ``PLAIN_PROGRESS_AFTER_S``."""

    def __init__(self, *columns: Any, transient: bool = True) -> None:
        import time

        from rich.progress import Progress

        self.progress = Progress(*columns, console=err_console, transient=transient)
        self.enabled = err_console.is_terminal
        self.started = False
        self._t0 = time.monotonic()
        self._tenths: dict[str, int] = {}

    def _start(self) -> None:
        if self.enabled and not self.started:
            self.progress.start()
            self.started = True

    def plain(self, label: str, done: int, total: int | None) -> None:
        """A line per tenth of ``label``'s progress on stderr when there is no terminal to draw a bar on."""
        import time

        if self.enabled or not total or total <= 0:
            return
        elapsed = time.monotonic() - self._t0
        tenth = min(10, int(10 * done / total))
        if elapsed < PLAIN_PROGRESS_AFTER_S or tenth <= self._tenths.get(label, 0):
            return
        self._tenths[label] = tenth
        left = elapsed * (total - done) / done if done else 0.0
        err_console.print(f"{label}: {done}/{total} ({done / total:.0%}), {elapsed:.0f} s elapsed, "
                          f"about {left:.0f} s left")

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
    return (TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn())


class _ProgressBar(_LazyBar):
    """Renders ``nasprof.profiler.progress`` reports of a measurement (terminal only)."""

    def __init__(self) -> None:
        super().__init__(*_bar_columns())
        self.tasks: dict[str, Any] = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        self._start()
        # One bar per phase: the timed sessions share one, the profiled pass gets its own.
        phase = "profiled pass" if stage.startswith("profiled") else "timed runs"
        if phase not in self.tasks:
            self.tasks[phase] = self.progress.add_task(phase, total=total)
        self.progress.update(self.tasks[phase], completed=done, total=total,
                             description=f"{phase} ({stage})" if phase != stage else phase)
        self.plain(phase, done, total)


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
        self.plain(self.label, done, total)


def _fmt_ms(v: float) -> str:
    """Four significant digits, trailing zeros kept so columns of times read alike (0.7000, 0.6684)."""
    return f"{v:.0f}" if v >= 1000 else f"{v:#.4g}"


def _tail(name: str, width: int = 36) -> str:
    """Node names differ at their end (``.../conv.1/Conv``); shorten from the left."""
    return name if len(name) <= width else "…" + name[-(width - 1):]


def _fmt_count(n: int) -> str:
    """1234567 -> '1.23M' (human tables; --json keeps exact integers)."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(n)


def _kib(n: int) -> str:
    return f"{n / 1024:,.1f}"


def one_line(text: str) -> str:
    """A message on one line, whatever the library wrote."""
    return " ".join(str(text).split())


#: ``--ray HOST:PORT``: the devices of a Ray cluster (``nasprof.devices.farm``).
RayOption = Annotated[
    str | None,
    typer.Option("--ray", metavar="HOST:PORT",
                 help="Measure on --device as served by this Ray cluster (or auto): a phone attached to "
                      "another host (`nasprof worker`); this host writes the results. Needs nasprof[ray]."),
]


def attach_ray(address: str | None, device: str) -> str:
    """With --ray, make ``device`` (names or globs) resolve to the cluster's devices in this process; returns
    the device list to measure on (``pixel-a,pixel-b`` for ``pixel-*``), or ``device`` without --ray."""
    if address is None:
        return device
    import importlib

    from nasprof.devices.farm import attach, detach

    devices = attach(address, device)
    # The click typer runs on (the package, or the copy newer typers vendor): its context is this command's.
    click_globals = importlib.import_module(typer.BadParameter.__module__.rpartition(".")[0] + ".globals")
    ctx = click_globals.get_current_context(silent=True)
    if ctx is not None:  # the phones are free for the cluster's next job when the command ends, however
        ctx.call_on_close(lambda: detach(devices))
    return ",".join(d.device for d in devices)


#: ``--json PATH``: the same result for scripts; ``-`` prints it instead of the table.
JsonOption = Annotated[
    Path | None,
    typer.Option("--json", metavar="PATH",
                 help="Write the result as JSON to PATH (- prints it instead of the table)."),
]


def to_stdout(path: Path | None) -> bool:
    """Whether ``--json`` asked for standard output (``-``): the command then prints nothing else there."""
    return path is not None and str(path) == "-"


def emit_json(path: Path | None, doc: Any) -> bool:
    """Write ``doc`` for ``--json PATH``; True when it went to standard output (``-``), so the caller shows
    nothing else there."""
    if path is None:
        return False
    if to_stdout(path):
        sys.stdout.write(json.dumps(doc, indent=2, default=str) + "\n")
        return True
    write_json(path, doc)
    return False


def check_outputs(outputs: dict[str, Path | None], inputs: Iterable[Path | str | None] = ()) -> None:
    """Refuse every output that cannot be written, or would overwrite an input or another output, before
    the command does any work. ``outputs`` maps the option's name (``--json``) to its path; ``-`` (standard
    output) and None are skipped."""
    from nasprof._io import check_output, same_file
    from nasprof.errors import InputError

    given = [(flag, p) for flag, p in outputs.items() if p is not None and not to_stdout(p)]
    for i, (flag, path) in enumerate(given):
        check_output(path, inputs=inputs, label=flag)
        for other_flag, other in given[:i]:
            if same_file(path, other):
                raise InputError(f"{other_flag} and {flag} both name {path}; give each its own file")


#: Ceilings of count options: far beyond what any sane run needs (each is hours of work or GBs of memory on
#: a 2-core host), low enough that a typo (10**12) is refused at once instead of running for ever.
#: ``--force`` lifts them.
CEILINGS: dict[str, tuple[int, str]] = {
    "--runs": (1_000_000, "timed runs per session"),
    "--warmup": (1_000_000, "warm-up runs per session"),
    "--sessions": (10_000, "sessions"),
    "--max-runs": (10_000_000, "samples"),
    "--per-node-runs": (100_000, "profiled runs"),
    "--budget": (10_000_000, "candidates or measurements"),
    "--n": (1_000_000, "architectures"),
    "--samples": (100_000, "networks"),
    "--calibrate": (100_000, "networks"),
    "--plan": (100_000, "networks"),
}

ForceOption = Annotated[
    bool, typer.Option("--force", help="Run even above nasprof's ceilings of counts (see the CLI reference).")
]


def check_counts(force: bool, **counts: int | None) -> None:
    """Refuse a count option above its ceiling (``CEILINGS``) unless ``force``; keyword names are the
    options' names with underscores (``max_runs`` for ``--max-runs``)."""
    from nasprof.errors import InputError

    for name, value in counts.items():
        flag = "--" + name.replace("_", "-")
        ceiling, what = CEILINGS[flag]
        if value is not None and value > ceiling and not force:
            raise InputError(f"{flag} {value:,} is above the ceiling of {ceiling:,} {what}; a run that large "
                             "takes hours or more memory than this host has: lower it, or pass --force")


def parse_count_list(text: str | None, flag: str = "--threads") -> list[int] | None:
    """``--threads`` or ``--batch``: one count (``2``) or a comma-separated sweep (``1,2,4``); None when
    not given."""
    from nasprof.errors import InputError

    if text is None:
        return None
    try:  # an empty item (``1,`` or ``1,,2``) is a typo, not a shorter list
        values = [int(x) for x in str(text).split(",")]
    except ValueError:
        raise InputError(f"{flag} takes a count or a comma-separated list (1,2,4), got {text!r}") from None
    if not values or any(v < 1 for v in values):
        raise InputError(f"{flag} needs counts >= 1, got {text!r}")
    if len(set(values)) != len(values):
        raise InputError(f"{flag} lists a count twice: {text!r}")
    return values


#: ``--opt-level`` / ``--ort-style`` of the ORT format (``export --format ort``, ``space ops-config``).
OptLevelOption = Annotated[
    str, typer.Option("--opt-level", help="ORT format: graph optimisation level: disable, basic, extended, "
                                          "all.")
]
OrtStyleOption = Annotated[
    str, typer.Option("--ort-style", help="ORT format: optimisation style: fixed (applied here) or runtime "
                                          "(applied by the phone's minimal build).")
]


#: ``--board``: a microcontroller board whose memory a network must fit (``search``, ``space quality``,
#: ``space edf``, ``scale``); ``--device`` always names a device to measure on.
BoardOption = Annotated[
    str | None, typer.Option("--board", help="MCU board whose SRAM and Flash must fit (stm32f746).")
]
#: ``predict --expect-device``: refuse a predictor fitted for another device.
ExpectDeviceOption = Annotated[
    str | None, typer.Option("--expect-device", help="Refuse a predictor fitted for another device.")
]


# ---- Options shared by several commands, declared once: one flag, one meaning, one help text. ----

#: ``--device``: the device to measure on (a name of `nasprof devices list`).
DeviceOption = Annotated[
    str, typer.Option("--device", "-d", help="Device to measure on (see `nasprof devices list`).")
]
#: ``--device`` of the commands that can spread their work over several identical devices (or a farm's).
DevicesOption = Annotated[
    str,
    typer.Option("--device", "-d", help="Device to measure on (see `nasprof devices list`), or several "
                 "identical ones sharing the work: pixel-a,pixel-b (with --ray, names or patterns: "
                 "'pixel-*')."),
]
#: ``--predictor``: a latency predictor file to read.
PredictorOption = Annotated[
    Path, typer.Option("--predictor", "-p", help="Latency predictor file (from `nasprof predictor fit`).")
]
#: ``--seed``: every random choice of a command (sampling, weights, inputs) follows it.
SeedOption = Annotated[int, typer.Option("--seed", help="Random seed: the same seed, the same result.")]
#: ``--threads`` as one count (``measure`` and ``table build`` take a sweep instead).
ThreadsOption = Annotated[int, typer.Option("--threads", help="Intra-op threads of the runtime.")]
#: ``--opt-level`` of a runtime that measures (the ORT format's own is ``OptLevelOption``).
MeasureOptLevelOption = Annotated[
    str, typer.Option("--opt-level", help="Graph optimisation level of the runtime: disable, basic, "
                                          "extended, all.")
]
#: ``--runs``: timed runs per session.
RunsOption = Annotated[int, typer.Option("--runs", help="Timed runs per session.")]
#: ``--calibrate-seed``: the networks a calibration measures.
CalibrateSeedOption = Annotated[
    int, typer.Option("--calibrate-seed", help="Seed of the calibration networks.")
]
#: ``--record NAME``: what a command measured, stored as the next version of a measurement set.
RecordOption = Annotated[
    str | None,
    typer.Option("--record", metavar="NAME", help="Also store what is measured in measurement set NAME as "
                 "its next version (see `nasprof measurements`)."),
]
#: ``--store PATH``: the measurement store (default ``$NASPROF_HOME/measurements.db``).
StoreOption = Annotated[
    Path | None,
    typer.Option("--store", metavar="PATH",
                 help="Measurement store (default: $NASPROF_HOME/measurements.db, else "
                      "~/.local/share/nasprof/measurements.db)."),
]
#: ``--in-network/--no-in-network`` of ``predictor fit`` and ``validate`` (LUT calibration).
InNetworkOption = Annotated[
    bool,
    typer.Option(
        "--in-network/--no-in-network",
        help="LUT calibration: also profile each calibration network once and learn an in-network "
        "ratio per table key first (needs per-node times from the device).",
    ),
]
#: ``--cold-weights/--no-cold-weights`` of ``predictor fit`` and ``validate`` (kernel calibration).
ColdWeightsOption = Annotated[
    bool,
    typer.Option(
        "--cold-weights/--no-cold-weights",
        help="Kernel-predictor calibration: fit a cost per MB of weights (they arrive cold in a network). "
        "On by default: better on networks like the calibration ones and on the presets (README).",
    ),
]
#: ``--strict`` of the commands that read a kernel predictor.
StrictOption = Annotated[
    bool,
    typer.Option("--strict", help="Refuse a kernel predictor whose rules were detected on another device, "
                 "CPU or onnxruntime version (default: warn)."),
]
