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
table_app = typer.Typer(help="Latency lookup tables: build, show, export, import, merge.", no_args_is_help=True)
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


# ---------------------------------------------------------------------------------------------------------
# space / export / count (issue: search spaces and export)
# ---------------------------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------------------------
# table (issue: lookup tables)
# ---------------------------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------------------------
# predictor / predict / validate (issue: predictors)
# ---------------------------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------------------------
# devices (issue: device backends)
# ---------------------------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------------------------
# search (issue: search)
# ---------------------------------------------------------------------------------------------------------


def main() -> None:
    app()


if __name__ == "__main__":
    sys.exit(main())
