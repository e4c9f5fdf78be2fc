"""The ``nasprof`` command line: the typer app, its command groups, and the one place where library errors
become a one-line message and exit code 2.

The commands live in ``nasprof.commands`` (one module per group: parse, call the library, render with rich);
this module only registers them. Library errors (``NasprofError``) end in one line on stderr and exit code
2, whichever command raised them; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import signal
import sys
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from nasprof.commands import (
    _validate,
    check_mobile,
    compare,
    devices,
    doctor,
    export,
    measure,
    predict,
    predictor,
    scale,
    search,
    space,
    table,
    validate,
    worker,
)
from nasprof.commands._common import console, err_console, error_line
from nasprof.commands.measurements import measurements_app
from nasprof.errors import NasprofError


class _Group(TyperGroup):
    """The root group: a ``NasprofError`` from any command below it is one line and exit code 2."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except NasprofError as exc:
            err_console.print(error_line(str(exc)), soft_wrap=True)
            raise typer.Exit(code=2) from None


app = typer.Typer(
    name="nasprof",
    cls=_Group,
    help="Hardware profiling and latency tables for hardware-aware neural architecture search.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    # Help is plain text: `pip install 'nasprof[optuna]'` must not lose `[optuna]` to rich markup.
    rich_markup_mode=None,
)
app.command("measure")(measure.measure_cmd)
app.command("compare")(compare.compare_cmd)
app.command("doctor")(doctor.doctor_cmd)
app.command("export")(export.export_cmd)
app.command("count")(export.count_cmd)
app.command("check-mobile")(check_mobile.check_mobile_cmd)
space.space_app.command("ops-config")(space.ops_config_cmd)
app.command("predict")(predict.predict_cmd)
app.command("validate")(validate.validate_cmd)
app.command("search")(search.search_cmd)
app.command("worker")(worker.worker_cmd)
app.command("scale")(scale.scale_cmd)
app.add_typer(space.space_app, name="space")
app.add_typer(table.table_app, name="table")
app.add_typer(predictor.predictor_app, name="predictor")
app.add_typer(devices.devices_app, name="devices")
app.add_typer(measurements_app, name="measurements")


# Every command's numeric options pass one set of rules before its body runs (commands/_validate.py).
_validate.install(app)


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


def _terminate(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main() -> None:
    """The ``nasprof`` entry point. Click's usage errors (a bad option value, a missing option) become one
    line and exit code 2 like the library's errors, instead of typer's five-line box."""
    # click's exception classes, wherever this typer takes click from (the package, or its vendored copy).
    click_exc = sys.modules[typer.BadParameter.__module__]
    # SIGTERM (a scheduler, `kill`, a CI timeout) stops a command as Ctrl-C does: long jobs keep what they
    # finished and say how to resume.
    signal.signal(signal.SIGTERM, _terminate)
    no_args_is_help = getattr(click_exc, "NoArgsIsHelpError", None)
    try:
        rv = app(standalone_mode=False)
    except click_exc.ClickException as exc:
        if no_args_is_help is not None and isinstance(exc, no_args_is_help):
            # A bare group (`nasprof space`): its help, as typer shows it.
            err_console.print(exc.format_message())
            sys.exit(2)
        ctx = getattr(exc, "ctx", None)
        hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
        err_console.print(error_line(exc.format_message() + hint), soft_wrap=True)
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        err_console.print("interrupted")
        sys.exit(130)
    sys.exit(rv if isinstance(rv, int) else 0)


if __name__ == "__main__":
    main()
