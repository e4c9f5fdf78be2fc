"""One validation layer for the option values every command takes, applied to every command at once.

``install(app)`` wraps each registered command's function: before its body runs, every numeric option is
checked by one rule chosen from the option's name and type — seeds are integers in 0…2³²−1, counts are
integers ≥ 1 (or ≥ 0 where 0 means "none"), floats are finite and in their range, counts with a ceiling
stay under it unless ``--force`` — so a command added later cannot forget it, and a hostile value ends in
one line and exit code 2 before any import of torch or any work. ``tests/commands/test_hostile.py``
enumerates every option of the typer app and proves each numeric one has a rule.
"""

from __future__ import annotations

import functools
import inspect
import math
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nasprof.errors import InputError

__all__ = ["SEED_MAX", "Rule", "rule_for", "install", "check_value"]

SEED_MAX = 2**32 - 1


@dataclass(frozen=True)
class Rule:
    """A closed or open interval for a number (``None``: unbounded on that side)."""

    low: float | None
    high: float | None = None
    low_open: bool = False  # True: the low end itself is refused (x > low)
    high_open: bool = False
    what: str = "a number"

    def describe(self) -> str:
        lo = hi = ""
        if self.low is not None:
            lo = f"{'>' if self.low_open else '>='} {_num(self.low)}"
        if self.high is not None:
            hi = f"{'<' if self.high_open else '<='} {_num(self.high)}"
        return " and ".join(p for p in (lo, hi) if p)


def _num(v: float) -> str:
    """A bound or a value as a user reads it: 4,294,967,295 or 0.5; past 10¹⁵ in e notation (``1e+300``,
    ``1.845e+19``: not three hundred digits)."""
    if abs(v) >= 1e15:
        from decimal import Decimal

        return f"{Decimal(v):.4g}"  # exact for integers of any size, where float() would overflow
    return f"{int(v):,}" if float(v).is_integer() else f"{v:g}"


#: Integer options that may be 0 (0 means none or off); every other count is at least 1.
_INT_ZERO_OK = {"warmup", "calibrate", "remeasure", "n", "samples", "device_id", "limit", "rows"}
#: Integer options with their own range.
_INT_RULES: dict[str, Rule] = {
    "port": Rule(1, 65535, what="a TCP port"),
    "device_id": Rule(0, 1023, what="a GPU index"),
}
#: Float options: (rule, what the value is).
_FLOAT_RULES: dict[str, Rule] = {
    "target_ci": Rule(0, 1, high_open=True, what="a relative width (0 disables)"),
    "time_per_entry": Rule(0, 3600, what="seconds (0: --runs for every entry)"),
    "alpha": Rule(0, 1, low_open=True, high_open=True, what="a probability"),
    "confidence": Rule(0, 1, low_open=True, high_open=True, what="a probability"),
    "min_share": Rule(0, 1, what="a share"),
    "beta": Rule(-10, 10, what="an exponent"),
    "overhead_ms": Rule(0, 1e6, what="milliseconds"),
    "width": Rule(0.1, 4.0, what="a width multiplier"),
    # the ranges doctor and the compound-scaling grid accept (profiler/doctor, search/scaling)
    "window": Rule(0.05, 10, what="seconds"),
    "grid_step": Rule(0.01, 0.5, what="a step of the scaling grid"),
    "target_ms": Rule(0, 1e7, low_open=True, what="milliseconds"),
}
#: Search's reward exponent alpha is any finite number in a sane range (MnasNet uses -0.07).
_FLOAT_BY_COMMAND: dict[tuple[str, str], Rule] = {
    ("search", "alpha"): Rule(-10, 10, what="an exponent"),
}


def rule_for(command: str, name: str, kind: type) -> Rule:
    """The rule of option ``name`` (the Python parameter name) of ``command``, given its type."""
    if kind is int:
        if name == "seed" or name.endswith("_seed"):
            return Rule(0, SEED_MAX, what="a seed")
        if name in _INT_RULES:
            return _INT_RULES[name]
        return Rule(0 if name in _INT_ZERO_OK else 1, None, what="a count")
    rule = _FLOAT_BY_COMMAND.get((command, name)) or _FLOAT_RULES.get(name)
    return rule if rule is not None else Rule(0, None, low_open=True, what="a positive number")


def check_value(flag: str, value: Any, rule: Rule, kind: type) -> None:
    """``InputError`` naming ``flag`` when ``value`` breaks ``rule`` (or is not finite)."""
    if value is None or isinstance(value, bool):
        return
    if kind is float and not math.isfinite(value):
        raise InputError(f"{flag} must be a finite number ({rule.describe()}), got {value}")
    bad = (rule.low is not None and (value <= rule.low if rule.low_open else value < rule.low)) or (
        rule.high is not None and (value >= rule.high if rule.high_open else value > rule.high))
    if bad:
        shown = _num(value)
        if rule.high is None and not rule.low_open:
            raise InputError(f"{flag} must be at least {_num(rule.low or 0)}, got {shown}")
        if rule.high is None:
            raise InputError(f"{flag} must be above {_num(rule.low or 0)}, got {shown}")
        if rule.what == "a seed":
            raise InputError(f"{flag} must be an integer in 0…{SEED_MAX:,}, got {shown}")
        raise InputError(f"{flag} must be {rule.what} {rule.describe()}, got {shown}")


def _flag(name: str, info: Any) -> str:
    # In ``Annotated[..., typer.Option("--plan", "-p")]`` typer keeps the first declaration as ``default``.
    first = getattr(info, "default", None)
    given = [first] if isinstance(first, str) and first.startswith("-") else []
    decls = [d for d in [*given, *(getattr(info, "param_decls", ()) or ())] if d.startswith("--")]
    return max(decls, key=len) if decls else "--" + name.replace("_", "-")


def numeric_options(fn: Callable[..., Any]) -> list[tuple[str, str, type]]:
    """(parameter name, flag, int or float) of every numeric typer option of a command function."""
    import typer.models

    hints = typing.get_type_hints(fn, include_extras=True)
    out = []
    for name in inspect.signature(fn).parameters:
        hint = hints.get(name)
        if typing.get_origin(hint) is not typing.Annotated:
            continue
        base, *meta = typing.get_args(hint)
        info = next((m for m in meta if isinstance(m, typer.models.ParameterInfo)), None)
        kinds = {t for t in (typing.get_args(base) or (base,)) if t in (int, float)}
        if info is None or len(kinds) != 1 or bool in (typing.get_args(base) or (base,)):
            continue
        out.append((name, _flag(name, info), kinds.pop()))
    return out


#: Path parameters that name a file a command reads: checked to exist before anything is imported or run
#: (a missing file answers at once instead of after seconds of imports).
_INPUT_FILES = {"model", "predictor", "archs", "src", "fallback", "accuracy", "a", "b"}


#: A model given as text (a preset, an architecture string, or a file): checked like a file when its name
#: ends in one of these suffixes (``count missing.onnx``, ``export dir.onnx``).
_MODEL_SUFFIXES = {".onnx": "ONNX file", ".ort": "ORT file"}


def input_files(fn: Callable[..., Any]) -> list[tuple[str, str]]:
    """(parameter name, flag or argument name) of the Path parameters that are files a command reads, and of
    a text ``model`` argument (label ``""``: checked only when it names an .onnx or .ort file)."""
    hints = typing.get_type_hints(fn, include_extras=True)
    out = []
    for name in inspect.signature(fn).parameters:
        hint = hints.get(name)
        if name not in _INPUT_FILES or typing.get_origin(hint) is not typing.Annotated:
            continue
        base, *meta = typing.get_args(hint)
        if Path in (typing.get_args(base) or (base,)):
            info = meta[0] if meta else None
            out.append((name, _flag(name, info) if type(info).__name__ == "OptionInfo" else name.upper()))
        elif name == "model" and base is str:
            out.append((name, ""))
    return out


def check_input_file(label: str, value: Any) -> None:
    if value is None or str(value) == "-":
        return
    if not label:  # a model given as text: a file only when its name says so
        label = _MODEL_SUFFIXES.get(Path(str(value)).suffix.lower(), "")
        if not label:
            return
    p = Path(value)
    if p.is_dir():
        raise InputError(f"{label} {p} is a directory; give a file")
    if not p.exists():
        raise InputError(f"{label} {p} does not exist")
    if not p.is_file():
        raise InputError(f"{label} {p} is not a regular file")


def _guard(command: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    options = numeric_options(fn)
    inputs = input_files(fn)

    @functools.wraps(fn)
    def checked(*args: Any, **kwargs: Any) -> Any:
        from nasprof.commands._common import CEILINGS

        bound = inspect.signature(fn).bind_partial(*args, **kwargs)
        force = bool(bound.arguments.get("force"))
        for name, flag, kind in options:
            value = bound.arguments.get(name)
            check_value(flag, value, rule_for(command, name, kind), kind)
            # Counts with a ceiling (a typo such as --samples 100000000 would run for days): --force lifts it.
            if flag in CEILINGS and value is not None and value > CEILINGS[flag][0] and not force:
                ceiling, what = CEILINGS[flag]
                hint = "lower it, or pass --force" if "force" in bound.signature.parameters else "lower it"
                raise InputError(f"{flag} {_num(value)} is above the ceiling of {ceiling:,} {what}; a run "
                                 f"that large takes hours or more memory than this host has: {hint}")
        for name, label in inputs:
            check_input_file(label, bound.arguments.get(name))
        return fn(*args, **kwargs)

    checked.__nasprof_validated__ = True  # type: ignore[attr-defined]
    return checked


def iter_commands(app: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """(command path such as ``"table build"``, its typer ``CommandInfo``) for every command of ``app`` and of
    its sub-apps: what ``install`` wraps, and what the tests sweep."""
    out = []
    for info in app.registered_commands:
        if info.callback is not None:
            out.append(((prefix + " " + (info.name or info.callback.__name__)).strip(), info))
    for group in app.registered_groups:
        out += iter_commands(group.typer_instance, (prefix + " " + (group.name or "")).strip())
    return out


def install(app: Any) -> None:
    """Wrap every command of ``app`` (and of its sub-apps) with the checks above, once."""
    for path, info in iter_commands(app):
        if not getattr(info.callback, "__nasprof_validated__", False):
            info.callback = _guard(path, info.callback)
