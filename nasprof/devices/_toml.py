"""A small TOML writer for the devices file (Python's ``tomllib`` only reads).

It writes what ``tomllib`` gives back for such files — nested tables of strings, integers, floats, booleans,
dates and lists — so that ``tomllib.loads(dumps(doc)) == doc``. Comments are not preserved: the devices file
is a store that ``nasprof devices add/remove`` rewrites, and its header says so.
"""

from __future__ import annotations

import datetime as _dt
import math
import re
from collections.abc import Mapping
from typing import Any

__all__ = ["dumps", "quote_key", "quote_string"]

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
# TOML basic strings may hold any character except ", \ and control characters (U+0000-U+001F, U+007F);
# those are escaped, the short forms where TOML has one.
_SHORT_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def quote_string(s: str) -> str:
    out = []
    for ch in s:
        if ch in _SHORT_ESCAPES:
            out.append(_SHORT_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def quote_key(key: str) -> str:
    if not isinstance(key, str):
        raise TypeError(f"TOML keys must be strings, got {type(key).__name__}")
    return key if _BARE_KEY.match(key) else quote_string(key)


def _value(v: Any) -> str:
    # bool before int: bool is a subclass of int.
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)  # repr keeps a '.' or an exponent, so the value reads back as a float
    if isinstance(v, str):
        return quote_string(v)
    if isinstance(v, (_dt.datetime, _dt.date, _dt.time)):
        return v.isoformat()
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, Mapping):
        return "{ " + ", ".join(f"{quote_key(k)} = {_value(x)}" for k, x in v.items()) + " }" if v else "{}"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def _table(lines: list[str], prefix: tuple[str, ...], doc: Mapping[str, Any]) -> None:
    scalars = {k: v for k, v in doc.items() if not isinstance(v, Mapping)}
    tables = {k: v for k, v in doc.items() if isinstance(v, Mapping)}
    if prefix and (scalars or not tables):
        lines.append("")
        lines.append("[" + ".".join(quote_key(p) for p in prefix) + "]")
    for k, v in scalars.items():
        lines.append(f"{quote_key(k)} = {_value(v)}")
    for k, v in tables.items():
        _table(lines, (*prefix, k), v)


def dumps(doc: Mapping[str, Any], header: str = "") -> str:
    """Serialise ``doc`` as TOML; ``header`` lines are written first as comments."""
    lines = [f"# {line}".rstrip() for line in header.splitlines()]
    _table(lines, (), doc)
    return "\n".join(lines).lstrip("\n") + "\n"
