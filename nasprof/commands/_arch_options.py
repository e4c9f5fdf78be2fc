"""Options that say which architecture a command works on, declared once: ``--space`` and nb201's network
options (``--input``, ``--outputs``, ``--cell-channels``, ``--cells-per-stage``), a preset's ``--resolution``
and ``--width``, and ``arch_from_cli``."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from nasprof.space.arch import Arch

__all__ = [
    "SpaceOption",
    "InputOption",
    "OutputsOption",
    "CellChannelsOption",
    "CellsPerStageOption",
    "ResolutionOption",
    "WidthOption",
    "arch_from_cli",
    "nb201_options",
    "wants_arch",
]

SpaceOption = Annotated[
    str | None,
    typer.Option("--space", help="The space the architecture string belongs to (nb201 for NAS-Bench-201 "
                                 "strings; other spaces' strings name their space)."),
]
InputOption = Annotated[
    str | None,
    typer.Option("--input", help="nb201: input shape CxHxW, e.g. 1x52x16 (default 3x32x32; H and W "
                                 "multiples of 4)."),
]
OutputsOption = Annotated[
    int | None, typer.Option("--outputs", help="nb201: number of outputs of the classifier (default 100).")
]
CellChannelsOption = Annotated[
    int | None,
    typer.Option("--cell-channels", help="nb201: channels C of the first stage's cells (default 16)."),
]
CellsPerStageOption = Annotated[
    int | None, typer.Option("--cells-per-stage", help="nb201: cells N per stage (default 5).")
]

#: ``--resolution`` and ``--width`` of a model argument that names a preset or an architecture string.
ResolutionOption = Annotated[
    int | None, typer.Option("--resolution", help="Input resolution (presets: default 224).")
]
WidthOption = Annotated[
    float | None, typer.Option("--width", help="Width multiplier (presets: default 1.0).")
]


def nb201_options(
    input: str | None = None, outputs: int | None = None, c: int | None = None, n: int | None = None
) -> dict[str, Any]:
    """The given nb201 options by their ``Arch.options`` names (absent ones left out)."""
    given = {"input": input, "outputs": outputs, "C": c, "N": n}
    return {k: v for k, v in given.items() if v is not None}


def wants_arch(text: str, space: str | None, **options: Any) -> bool:
    """Whether a command's model argument must be read by ``arch_from_cli`` (a space or options are given, or
    it is an NB201 string) rather than as a preset name or file."""
    stripped = text.lstrip()
    return space is not None or bool(nb201_options(**options)) or (stripped.startswith("|") and "~" in text)


def arch_from_cli(
    text: str,
    space: str | None = None,
    input: str | None = None,
    outputs: int | None = None,
    c: int | None = None,
    n: int | None = None,
) -> Arch:
    """The architecture a command line names: ``text`` (an nasprof or NB201 string) in ``space`` with nb201's
    options; ``SpaceError`` (one line naming the fix) when they do not fit."""
    from nasprof.space.parse import parse_arch

    return parse_arch(text, space, **nb201_options(input, outputs, c, n))
