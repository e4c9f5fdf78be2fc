"""Architectures from text: nasprof's compact strings and NAS-Bench-201's own, with network options.

``parse_arch("|nor_conv_3x3~0|+|...|", input="1x52x16", outputs=18)`` is an nb201 ``Arch`` for a 1x52x16
input and 18 outputs; ``parse_arch("mnasnet:224:1.0|...")`` is ``Arch.from_string``. ``format_options(arch)``
gives back the CLI flags of an architecture's non-default options (``--input 1x52x16 --outputs 18``).
"""

from __future__ import annotations

from typing import Any

from nasprof.errors import SpaceError
from nasprof.space.arch import Arch

__all__ = ["parse_arch", "format_options", "OPTION_FLAGS"]

#: Option name -> its CLI flag.
OPTION_FLAGS = {"input": "--input", "outputs": "--outputs", "C": "--cell-channels", "N": "--cells-per-stage"}


def _is_nb201_string(text: str) -> bool:
    return text.lstrip().startswith("|") and "~" in text


def parse_arch(text: str, space: str | None = None, **options: Any) -> Arch:
    """The architecture ``text`` names: an nasprof string (``SPACE:RES:WIDTH|...``) or an NB201 string.

    ``space`` (optional) is the space the text must belong to (``"nb201"`` makes a non-NB201 string an error
    saying what is wrong). ``options`` (``input`` as ``"CxHxW"`` or a 3-tuple, ``outputs``, ``C``, ``N``) are
    nb201's network options; ``None`` values are ignored, and any other space refuses them.
    """
    from nasprof.space.spaces import get_space
    from nasprof.space.spaces.nb201 import Nb201Space

    options = {k: v for k, v in options.items() if v is not None}
    unknown = sorted(set(options) - set(OPTION_FLAGS))
    if unknown:
        raise SpaceError(f"unknown architecture option {unknown[0]!r}; known: {', '.join(OPTION_FLAGS)}")
    if not isinstance(text, str) or not text.strip():
        raise SpaceError(f"architecture string must be non-empty text, got {text!r}")
    text = text.strip()
    target = get_space(space) if space is not None else None
    if isinstance(target, Nb201Space) or (target is None and _is_nb201_string(text)):
        nb201 = target if isinstance(target, Nb201Space) else get_space("nb201")
        assert isinstance(nb201, Nb201Space)
        if text.startswith("nb201:"):
            arch = Arch.from_string(text)
            return nb201.arch(tuple(arch.blocks), **{"input": arch.option("input"), **options})
        return nb201.from_cell_string(text, **options)
    if options:
        flags = ", ".join(OPTION_FLAGS[k] for k in options)
        name = target.name if target is not None else text.split(":", 1)[0]
        raise SpaceError(f"{flags} apply to nb201 architectures only, not to {name!r}; drop them")
    arch = Arch.from_string(text)
    if target is not None and arch.space != target.name:
        raise SpaceError(f"{text[:40]!r} is a {arch.space} architecture, not a {target.name} one")
    return arch


def format_options(arch: Arch) -> str:
    """The CLI flags for ``arch``'s options that differ from their defaults (``""`` when none do)."""
    from nasprof.space.spaces.nb201 import NB201_DEFAULTS

    flags = []
    for name, flag in OPTION_FLAGS.items():
        value = arch.option(name)
        if value is None or value == NB201_DEFAULTS.get(name):
            continue
        shown = "x".join(str(v) for v in value) if isinstance(value, tuple) else str(value)
        flags.append(f"{flag} {shown}")
    return " ".join(flags)
