"""Saved strategy state (``--strategy-state``): one checked JSON layout for every strategy that learns.

A state file is a header — ``schema_version``, ``strategy``, ``space``, ``seed`` and the space's
``decisions`` (each name with its number of choices) — and the strategy's own keys
(``StatefulStrategy.state_body``). ``read_state`` checks the header against the search before the strategy
sees anything; the strategy then reads its keys through a ``StateReader``, whose every accessor checks
type, shape, range and finiteness and names the file and the key when one is wrong. A refused file raises
``StateError`` and is never written: nothing of a search's state is lost to a bad file.

``write_state`` refuses a state holding NaN or an infinity (naming the key), so a search cannot save a
state that the next one would refuse. ``resume_state`` and ``save_state`` are what ``search`` calls; each
returns the one line a caller shows (``resumed rl state from rl.json (12 updates, seed 0)``).
"""

from __future__ import annotations

import abc
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from nasprof.errors import SpaceError, StateError
from nasprof.search.strategies.base import Strategy

__all__ = ["StatefulStrategy", "StateReader", "read_state", "write_state", "resume_state", "save_state",
           "first_non_finite"]

#: How every refusal of a state file ends: the file is not touched, and what to do instead.
REMEDY = "it was left as it is: delete it to start afresh, or give another --strategy-state path"


class StatefulStrategy(Strategy):
    """A strategy that learns, and saves what it learned so that a later search resumes from it.

    Contract: ``state_body()`` is JSON-ready (dicts, lists, strings, booleans, None and finite numbers) and
    holds none of the header's keys; ``load_state(reader)`` reads every key it needs through ``reader``
    (which refuses a wrong one before anything is changed) and leaves the strategy exactly as it was when
    the body was saved. ``progress`` says in a few words how far it learned ("12 updates").
    """

    #: Version of this strategy's ``state_body`` layout; a file of another version is refused.
    state_version: ClassVar[int] = 1

    @abc.abstractmethod
    def state_body(self) -> dict[str, Any]:
        """The strategy's own keys of its state (without the header)."""

    @abc.abstractmethod
    def load_state(self, reader: StateReader) -> None:
        """Take the state in ``reader`` (its header already checked against this strategy)."""

    @property
    @abc.abstractmethod
    def progress(self) -> str:
        """How far the strategy learned, in a few words (``12 updates``)."""

    def state(self) -> dict[str, Any]:
        """Header and body: what ``save`` writes (JSON-ready)."""
        return {**state_header(self), **self.state_body()}

    def save(self, path: str | Path) -> Path:
        """Write the state to ``path`` (atomically); ``StateError`` when it holds a non-finite number."""
        return write_state(self, path)

    def resume(self, path: str | Path) -> None:
        """Load the state saved by ``save``; ``StateError`` when the file is unreadable, corrupt, or belongs
        to another strategy, space, seed or version (the strategy and the file are then unchanged)."""
        self.load_state(read_state(self, path))


def _decisions(space: Any) -> list[list[Any]] | None:
    try:
        return [[str(n), len(v)] for n, v in space.decisions()]
    except (AttributeError, SpaceError):  # a space without named decisions
        return None


def state_header(strategy: Strategy) -> dict[str, Any]:
    """The keys that tie a state to its search: version, strategy, space, seed and the space's decisions."""
    return {
        "schema_version": int(getattr(strategy, "state_version", 1)),
        "strategy": strategy.name,
        "space": str(getattr(strategy.space, "name", "?")),
        "seed": strategy.seed,
        "decisions": _decisions(strategy.space),
    }


def _shown(value: Any) -> str:
    """A value for a message: short, and NaN/inf spelt as JSON spells them."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    text = json.dumps(value) if isinstance(value, (bool, type(None))) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    return {dict: "an object", list: "a list", str: "a string", int: "a number", float: "a number"}.get(
        type(value), type(value).__name__)


def first_non_finite(value: Any, key: str = "") -> tuple[str, float] | None:
    """The first NaN or infinity in a JSON-like tree, as (dotted key, value); None when every number is
    finite. Lists of numbers are checked as arrays (a state holds a few hundred thousand weights)."""
    if isinstance(value, float):
        return None if math.isfinite(value) else (key, value)
    if isinstance(value, Mapping):
        for k, v in value.items():
            hit = first_non_finite(v, f"{key}.{k}" if key else str(k))
            if hit is not None:
                return hit
        return None
    if isinstance(value, (list, tuple)):
        try:
            arr = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):  # ragged, or not all numbers: look item by item
            arr = None
        if arr is not None and np.isfinite(arr).all():
            return None
        for i, v in enumerate(value):
            hit = first_non_finite(v, f"{key}[{i}]")
            if hit is not None:
                return hit
    return None


class StateReader:
    """The keys of one state file (or of one object inside it), each read through a check that names the
    file and the key when it fails. Nothing is converted lazily: a reader's accessors either return a
    checked value or raise ``StateError``."""

    def __init__(self, path: Path, doc: Mapping[str, Any], prefix: str = "") -> None:
        self.path = path
        self.doc = doc
        self.prefix = prefix

    def error(self, key: str, problem: str) -> StateError:
        """The ``StateError`` for ``key`` of this file: ``problem`` says what is wrong with it."""
        return StateError(f"strategy state {self.path}: key {self.prefix + key!r} {problem}; {REMEDY}")

    def keys(self) -> list[str]:
        return [str(k) for k in self.doc]

    def __contains__(self, key: str) -> bool:
        return key in self.doc

    def raw(self, key: str) -> Any:
        """The value of ``key`` as it is in the file (present, nothing else checked)."""
        if key not in self.doc:
            raise self.error(key, "is missing")
        return self.doc[key]

    def section(self, key: str) -> StateReader:
        """The object under ``key``, as a reader of its own keys."""
        value = self.raw(key)
        if not isinstance(value, Mapping):
            raise self.error(key, f"is {_type_name(value)}, not an object")
        return StateReader(self.path, value, f"{self.prefix}{key}.")

    def exact_keys(self, expected: Sequence[str]) -> None:
        """Refuse a missing or an unexpected key (names the first of each)."""
        for k in expected:
            if k not in self.doc:
                raise self.error(k, "is missing")
        extra = [k for k in self.keys() if k not in set(expected)]
        if extra:
            raise self.error(extra[0], "is not part of this strategy's state (saved by another version or "
                                       "another configuration?)")

    def number(self, key: str, *, low: float | None = None, high: float | None = None,
               optional: bool = False) -> float | None:
        """A finite number in [``low``, ``high``]; null too when ``optional``."""
        value = self.raw(key)
        if value is None and optional:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.error(key, f"is {_type_name(value)} ({_shown(value)}), not a number")
        if not math.isfinite(value):
            raise self.error(key, f"is {_shown(value)}, not a finite number")
        if (low is not None and value < low) or (high is not None and value > high):
            raise self.error(key, f"is {_shown(value)}, {_range(low, high)}")
        return float(value)

    def integer(self, key: str, *, low: int = 0, high: int | None = None) -> int:
        """An integer in [``low``, ``high``]."""
        value = self.raw(key)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(key, f"is {_type_name(value)} ({_shown(value)}), not an integer")
        if value < low or (high is not None and value > high):
            raise self.error(key, f"is {value}, {_range(low, high)}")
        return value

    def array(self, key: str, shape: tuple[int, ...] | None = None, *, low: float | None = None,
              high: float | None = None, integral: bool = False) -> np.ndarray:
        """A (nested) list of finite numbers of ``shape``, in [``low``, ``high``], whole numbers when
        ``integral``; as float64."""
        value = self.raw(key)
        if isinstance(value, (bool, str)) or value is None or isinstance(value, Mapping):
            raise self.error(key, f"is {_type_name(value)}, not numbers")
        try:
            arr = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            raise self.error(key, "is not a list of numbers (ragged, or with text or nulls)") from None
        if shape is not None and arr.shape != tuple(shape):
            raise self.error(key, f"has shape {_shape(arr.shape)}, expected {_shape(shape)} (saved for "
                                  "another configuration?)")
        bad = ~np.isfinite(arr)
        if bad.any():
            first = float(arr.reshape(-1)[int(np.flatnonzero(bad.reshape(-1))[0])])
            raise self.error(key, f"holds {_count(int(bad.sum()), 'non-finite number')} (the first is "
                                  f"{_shown(first)})")
        if (low is not None and (arr < low).any()) or (high is not None and (arr > high).any()):
            out = arr[(arr < (low if low is not None else -np.inf)) | (arr > (high if high is not None
                                                                             else np.inf))]
            raise self.error(key, f"holds {_count(out.size, 'number')} {_range(low, high)} (the first is "
                                  f"{_shown(float(out[0]))})")
        if integral and not np.array_equal(arr, np.round(arr)):
            raise self.error(key, "holds numbers that are not whole")
        return arr


def _count(n: int, what: str) -> str:
    return f"{n} {what}{'' if n == 1 else 's'}"


def _range(low: float | None, high: float | None) -> str:
    if high is None:
        return f"out of range (must be >= {low:g})"
    if low is None:
        return f"out of range (must be <= {high:g})"
    return f"out of range [{low:g}, {high:g}]"


def _shape(shape: Sequence[int]) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def _load_json(path: Path) -> Any:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise StateError(f"strategy state {path} does not exist") from None
    except IsADirectoryError:
        raise StateError(f"strategy state {path} is a directory; give a file") from None
    except OSError as exc:
        raise StateError(f"cannot read strategy state {path}: {exc.strerror or exc}") from None
    if not data.strip():
        raise StateError(f"strategy state {path} is empty; {REMEDY}")
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise StateError(f"strategy state {path} is not text (a binary file?); {REMEDY}") from None
    except RecursionError:
        raise StateError(f"strategy state {path} is nested too deeply to be a state; {REMEDY}") from None
    except ValueError as exc:  # json.JSONDecodeError: truncated or not JSON
        raise StateError(f"strategy state {path} is not valid JSON ({exc}: truncated or not a state?); "
                         f"{REMEDY}") from None


def read_state(strategy: StatefulStrategy, path: str | Path) -> StateReader:
    """Read ``path`` and check its header against ``strategy`` (version, strategy, space, seed, the space's
    decisions); the reader of the whole file. ``StateError`` names the file and the key that does not fit."""
    path = Path(path)
    doc = _load_json(path)
    if not isinstance(doc, dict):
        raise StateError(f"strategy state {path} holds {_type_name(doc)}, not a state object; {REMEDY}")
    reader = StateReader(path, doc)
    name, version = strategy.name, strategy.state_version
    saved = reader.raw("strategy")
    if saved != name:
        known = isinstance(saved, str) and saved.isidentifier()
        hint = f" (resume it with --strategy {saved})" if known else ""
        raise reader.error("strategy", f"is {_shown(saved)}, not {name!r}: a state of another strategy{hint}")
    got = reader.integer("schema_version", low=0)
    if got != version:
        newer = "newer than" if got > version else "older than"
        raise reader.error("schema_version", f"is {got}, {newer} the version {version} this nasprof reads "
                                             f"for {name} states")
    space = str(getattr(strategy.space, "name", "?"))
    saved_space, saved_seed = reader.raw("space"), reader.raw("seed")
    if saved_space != space or saved_seed != strategy.seed:
        key = "space" if saved_space != space else "seed"
        raise StateError(
            f"strategy state {path}: key {key!r} does not fit: it is the {name} state of space "
            f"{_shown(saved_space)} with seed {_shown(saved_seed)}; this search is space {space!r} with "
            f"seed {strategy.seed}: use the same --seed and --space to resume it, or give another "
            "--strategy-state path (the file was left as it is)"
        )
    decisions = _decisions(strategy.space)
    if reader.raw("decisions") != decisions:
        raise reader.error("decisions", f"does not match the decisions of space {space!r} in this nasprof "
                                        "(saved by another version of the space?)")
    return reader


def write_state(strategy: StatefulStrategy, path: str | Path) -> Path:
    """Write ``strategy.state()`` to ``path`` atomically; refused (``StateError``, the file untouched) when a
    number in it is NaN or infinite, so no search saves a state the next one cannot resume."""
    from nasprof._io import atomic_write_text

    path = Path(path)
    doc = strategy.state()
    hit = first_non_finite(doc)
    if hit is not None:
        raise StateError(
            f"not saving the {strategy.name} state to {path}: key {hit[0]!r} is {_shown(hit[1])} after this "
            f"search ({strategy.progress}); {path} keeps what it held before"
        )
    return atomic_write_text(path, json.dumps(doc, allow_nan=False) + "\n")


def _size(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def resume_state(strategy: StatefulStrategy, path: str | Path) -> str:
    """Resume ``strategy`` from ``path`` when the file exists; the line to show either way. ``StateError``
    for a file it cannot resume from."""
    path = Path(path)
    if not path.exists():
        return f"no {strategy.name} state at {path} yet: starting afresh (seed {strategy.seed})"
    strategy.resume(path)
    return f"resumed {strategy.name} state from {path} ({strategy.progress}, seed {strategy.seed})"


def save_state(strategy: StatefulStrategy, path: str | Path) -> str:
    """Save ``strategy``'s state to ``path``; the line to show."""
    written = strategy.save(path)
    return f"saved {strategy.name} state to {written} ({_size(written.stat().st_size)})"
