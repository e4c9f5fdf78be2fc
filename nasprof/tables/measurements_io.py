"""Reading files of end-to-end latencies measured elsewhere (CSV or Parquet); writing them back out
(export) is ``measurements_export``.

A file holds one network per row: its architecture text (or a model path), its median latency in
milliseconds, and optionally a spread, raw samples and an accuracy. Column names are recognised from a few
common spellings (``COLUMNS``); other columns are ignored and named in a warning. Reading is all or
nothing: every invalid row is reported with its line (CSV, the header is line 1) or row (Parquet, 1-based),
and no row is returned when any is invalid.
"""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nasprof.errors import InputError, MissingDependencyError, NasprofError

__all__ = [
    "COLUMNS", "MAX_ROWS", "MeasuredNetwork", "MeasurementRows", "read_measurements_file", "require_pyarrow",
]

#: Rows one file may hold: far beyond any benchmark of whole networks, low enough to refuse a wrong file.
MAX_ROWS = 1_000_000

#: Recognised column names (lower case) per field, in order of preference.
COLUMNS: dict[str, tuple[str, ...]] = {
    "arch": ("arch", "arch_str", "architecture"),
    "model": ("model", "model_path"),
    "latency": ("latency_ms", "latency_ms_median", "median_ms"),
    "spread": ("spread_ms", "std_ms", "latency_ms2_var"),
    "samples": ("samples_ms",),
    "accuracy": ("accuracy", "acc"),
}
#: The spread column that holds a variance in ms² (its square root is the spread).
_VARIANCE = "latency_ms2_var"
_ERRORS_SHOWN = 5


@dataclass(frozen=True, kw_only=True)
class MeasuredNetwork:
    """One network's end-to-end latency as measured elsewhere.

    Exactly one of ``arch`` (architecture text as the user gave it) and ``model`` (a model path) is set.
    ``latency_ms`` is the median, ``spread_ms`` a standard deviation, ``samples_ms`` the raw samples when
    given (else empty), ``line`` the line (CSV) or row (Parquet) of the source it came from.
    """

    latency_ms: float
    arch: str | None = None
    model: str | None = None
    spread_ms: float | None = None
    samples_ms: tuple[float, ...] = ()
    accuracy: float | None = None
    line: int = 0

    def __post_init__(self) -> None:
        if (self.arch is None) == (self.model is None):
            raise InputError("a measured network needs exactly one of arch and model"
                             + (", got both" if self.arch is not None else ", got neither"))
        if (self.arch if self.arch is not None else self.model) == "":
            raise InputError("the architecture (or model) text is empty")
        latency = float(self.latency_ms)
        if not math.isfinite(latency) or latency <= 0:
            raise InputError(f"latency {self.latency_ms!r} ms must be a finite number > 0")
        object.__setattr__(self, "latency_ms", latency)
        if self.spread_ms is not None:
            spread = float(self.spread_ms)
            if not math.isfinite(spread) or spread < 0:
                raise InputError(f"spread {self.spread_ms!r} ms must be a finite number >= 0")
            object.__setattr__(self, "spread_ms", spread)
        samples = tuple(float(v) for v in self.samples_ms)
        if any(not math.isfinite(v) or v <= 0 for v in samples):
            raise InputError("samples_ms must all be finite numbers > 0")
        object.__setattr__(self, "samples_ms", samples)
        if self.accuracy is not None:
            acc = float(self.accuracy)
            if not math.isfinite(acc):
                raise InputError(f"accuracy is {self.accuracy!r}; leave the cell empty when unknown")
            object.__setattr__(self, "accuracy", acc)

    @property
    def key(self) -> str:
        """The architecture text, or the model path."""
        return self.arch if self.arch is not None else str(self.model)

    def data(self) -> tuple[Any, ...]:
        """Everything but the line: two rows with equal ``data()`` are the same measurement."""
        return (self.arch, self.model, self.latency_ms, self.spread_ms, self.samples_ms, self.accuracy)


class MeasurementRows(list[MeasuredNetwork]):
    """The rows of a file (a list), with what the caller should be told: ``warnings`` (ignored columns,
    merged duplicates), ``merged`` (identical duplicate rows dropped) and ``columns`` (as found)."""

    warnings: tuple[str, ...] = ()
    merged: int = 0
    columns: tuple[str, ...] = ()


# -- reading -------------------------------------------------------------------------------------------------
def read_measurements_file(
    path: str | Path,
    *,
    arch_column: str | None = None,
    latency_column: str | None = None,
    model_column: str | None = None,
    spread_column: str | None = None,
    samples_column: str | None = None,
    accuracy_column: str | None = None,
    validate_arch: Callable[[str], None] | None = None,
) -> MeasurementRows:
    """Read and validate a CSV or Parquet file of measured networks (format from the suffix, else sniffed).

    ``*_column`` name a column explicitly where the file's names are not among ``COLUMNS``. A spread column
    named ``latency_ms2_var`` holds a variance (converted with sqrt). ``validate_arch`` is called with each
    distinct architecture text; a ``NasprofError`` it raises is reported with the line. Identical duplicate
    rows are merged (counted in ``.merged``, said in ``.warnings``); duplicates that disagree are an error.
    Raises ``InputError`` (or the validator's error class) naming the file and every bad line; nothing is
    returned when any row is invalid.
    """
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path} is a directory; give a CSV or Parquet file")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"no file at {path}") from None
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not data.strip():
        raise InputError(f"{path} is empty; it needs a header and one row per network")
    suffix = path.suffix.lower()
    is_parquet = data[:4] == b"PAR1"
    if suffix in (".parquet", ".pq"):
        if not is_parquet:
            raise InputError(f"{path} is not a Parquet file (no Parquet header); a CSV must be named .csv")
        header, rows, unit = _parquet_rows(path)
    else:
        if is_parquet:
            if suffix in (".csv", ".tsv", ".txt"):
                raise InputError(f"{path} holds Parquet data but is named {suffix}; rename it to .parquet")
            header, rows, unit = _parquet_rows(path)
        else:
            header, rows, unit = _csv_rows(path, data)
    explicit = {"arch": arch_column, "model": model_column, "latency": latency_column,
                "spread": spread_column, "samples": samples_column, "accuracy": accuracy_column}
    chosen = _choose_columns(path, header, explicit)
    used = {c for c in chosen.values() if c is not None}
    extra = [h for h in header if h not in used]
    return _validate(path, rows, chosen, unit, extra, header, validate_arch)


def _text(path: Path, data: bytes) -> str:
    if data.startswith(b"SQLite format 3\x00"):
        raise InputError(f"{path} is an SQLite database, not a CSV; a measurement store is read by its set "
                         "names (`nasprof measurements list --store PATH`)")
    if b"\x00" in data[:65536]:
        raise InputError(f"{path} is a binary file, not a CSV; give a CSV (UTF-8 text) or a .parquet file")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InputError(f"{path} line {line}: not UTF-8 text (byte 0x{data[exc.start]:02x}); save the "
                         "file as UTF-8 CSV") from None


def _csv_rows(path: Path, data: bytes) -> tuple[list[str], Iterator[tuple[int, dict[str, Any]]], str]:
    text = _text(path, data)
    first = text.splitlines()[0] if text.splitlines() else ""
    delimiter = max((",", ";", "\t"), key=first.count) if first else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = [h.strip().lower() for h in next(reader)]
    except (StopIteration, csv.Error) as exc:
        raise InputError(f"{path}: malformed CSV header ({exc})") from None
    if not any(header):
        raise InputError(f"{path} line 1: the header is empty; name the columns (arch, latency_ms, ...)")
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise InputError(f"{path} line 1: column(s) {', '.join(dupes)} appear twice in the header")

    def rows() -> Iterator[tuple[int, dict[str, Any]]]:
        start = reader.line_num + 1
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise InputError(f"{path} line {start}: malformed CSV ({exc})") from None
            line, start = start, reader.line_num + 1
            if not cells or all(not c.strip() for c in cells):
                continue  # a blank line
            if len(cells) > len(header):
                raise InputError(f"{path} line {line}: {len(cells)} cells but {len(header)} columns in the "
                                 "header (an unquoted comma in a value?)")
            yield line, dict(zip(header, cells, strict=False))

    return header, rows(), "line"


def require_pyarrow() -> Any:
    """pyarrow with its parquet module, or ``MissingDependencyError`` saying what to install."""
    try:
        import pyarrow
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        raise MissingDependencyError("reading and writing Parquet needs pyarrow: "
                                     "pip install 'nasprof[parquet]'") from None
    return pyarrow


def _parquet_rows(path: Path) -> tuple[list[str], Iterator[tuple[int, dict[str, Any]]], str]:
    pa = require_pyarrow()
    try:
        table = pa.parquet.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise InputError(f"{path} is not a readable Parquet file ({exc})") from None
    names = [str(n) for n in table.column_names]
    header = [n.strip().lower() for n in names]
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise InputError(f"{path}: column(s) {', '.join(dupes)} appear twice")
    if table.num_rows > MAX_ROWS:
        raise InputError(f"{path} has {table.num_rows:,} rows, more than the {MAX_ROWS:,} nasprof reads; "
                         "split it")
    columns = {h: table.column(n).to_pylist() for h, n in zip(header, names, strict=True)}

    def rows() -> Iterator[tuple[int, dict[str, Any]]]:
        for i in range(table.num_rows):
            yield i + 1, {h: columns[h][i] for h in header}

    return header, rows(), "row"


def _choose_columns(path: Path, header: Sequence[str], explicit: Mapping[str, str | None]
                    ) -> dict[str, str | None]:
    found = ", ".join(h for h in header if h) or "none"
    chosen: dict[str, str | None] = {}
    for field_, names in COLUMNS.items():
        given = explicit.get(field_)
        if given is not None:
            if given.strip().lower() not in header:
                raise InputError(f"{path}: no column {given!r} (columns found: {found})")
            chosen[field_] = given.strip().lower()
            continue
        present = [n for n in names if n in header]
        if len(present) > 1:
            raise InputError(f"{path}: columns {' and '.join(present)} could both be the {field_}; keep one "
                             f"or name it with --{field_}-column")
        chosen[field_] = present[0] if present else None
    if chosen["arch"] is None and chosen["model"] is None:
        raise InputError(f"{path}: no architecture column ({', '.join(COLUMNS['arch'])}) and no model "
                         f"column ({', '.join(COLUMNS['model'])}); columns found: {found}")
    if chosen["latency"] is None and chosen["samples"] is None:
        raise InputError(f"{path}: no latency column ({', '.join(COLUMNS['latency'])}, in milliseconds) "
                         f"and no samples_ms; columns found: {found}")
    return chosen


def _empty(v: Any) -> bool:
    return v is None or (isinstance(v, str) and not v.strip())


def _number(v: Any, what: str) -> float:
    if isinstance(v, bool):
        raise InputError(f"{what} {v!r} is not a number")
    try:
        return float(v.strip() if isinstance(v, str) else v)
    except (TypeError, ValueError):
        raise InputError(f"{what} {v!r} is not a number") from None


def _samples(v: Any) -> tuple[float, ...]:
    if _empty(v):
        return ()
    if isinstance(v, str):
        text = v.strip()
        if text.startswith("["):
            try:
                items = json.loads(text)
            except ValueError:
                raise InputError(f"samples_ms {text[:40]!r} is not a JSON list") from None
            if not isinstance(items, list):
                raise InputError("samples_ms must be a JSON list of numbers")
        else:
            items = text.replace(";", " ").replace(",", " ").split()
    elif isinstance(v, Iterable):
        items = list(v)
    else:
        items = [v]
    values = tuple(_number(x, "sample") for x in items)
    if any(not math.isfinite(x) or x <= 0 for x in values):
        raise InputError("samples_ms must all be finite numbers > 0 (milliseconds)")
    return values


def _row(cells: Mapping[str, Any], chosen: Mapping[str, str | None], line: int) -> MeasuredNetwork:
    def cell(field_: str) -> Any:
        col = chosen[field_]
        return None if col is None else cells.get(col)

    arch, model = cell("arch"), cell("model")
    arch = None if _empty(arch) else str(arch).strip()
    model = None if _empty(model) else str(model).strip()
    if arch is None and model is None:
        raise InputError("no architecture" + (" or model" if chosen["model"] else ""))
    if arch is not None and model is not None:
        raise InputError(f"both an architecture and a model ({model}); give one per row")
    samples = _samples(cell("samples"))
    raw = cell("latency")
    if _empty(raw):
        if not samples:
            raise InputError("no latency")
        latency = statistics.median(samples)
    else:
        latency = _number(raw, "latency")
    if math.isnan(latency) or math.isinf(latency):
        raise InputError(f"latency is {latency} (not a finite number of milliseconds)")
    if latency <= 0:
        raise InputError(f"latency {latency:g} ms is not positive")
    spread: float | None = None
    raw = cell("spread")
    if not _empty(raw):
        spread = _number(raw, "spread")
        if not math.isfinite(spread) or spread < 0:
            what = "variance" if chosen["spread"] == _VARIANCE else "spread"
            raise InputError(f"{what} {spread:g} must be a finite number >= 0")
        if chosen["spread"] == _VARIANCE:
            spread = math.sqrt(spread)
    accuracy: float | None = None
    raw = cell("accuracy")
    if not _empty(raw):
        accuracy = _number(raw, "accuracy")
        if not math.isfinite(accuracy):
            raise InputError(f"accuracy is {accuracy}; leave the cell empty when unknown")
    return MeasuredNetwork(arch=arch, model=model, latency_ms=latency, spread_ms=spread, samples_ms=samples,
                           accuracy=accuracy, line=line)


def _validate(
    path: Path,
    rows: Iterator[tuple[int, dict[str, Any]]],
    chosen: Mapping[str, str | None],
    unit: str,
    extra: Sequence[str],
    header: Sequence[str],
    validate_arch: Callable[[str], None] | None,
) -> MeasurementRows:
    out = MeasurementRows()
    errors: list[tuple[int, str, type[NasprofError]]] = []
    first: dict[str, MeasuredNetwork] = {}
    checked: dict[str, NasprofError | None] = {}
    merged = count = 0
    for line, cells in rows:
        count += 1
        if count > MAX_ROWS:
            raise InputError(f"{path} has more than {MAX_ROWS:,} rows, more than nasprof reads; split it")
        try:
            net = _row(cells, chosen, line)
        except InputError as exc:
            errors.append((line, str(exc), InputError))
            continue
        if net.arch is not None and validate_arch is not None:
            if net.arch not in checked:
                try:
                    validate_arch(net.arch)
                    checked[net.arch] = None
                except NasprofError as exc:
                    checked[net.arch] = exc
            problem = checked[net.arch]
            if problem is not None:
                errors.append((line, str(problem), type(problem)))
                continue
        seen = first.get(net.key)
        if seen is None:
            first[net.key] = net
            out.append(net)
        elif seen.data() == net.data():
            merged += 1
        else:
            what = "model" if net.model is not None else "architecture"
            errors.append((line, f"duplicate {what} {_short(net.key)} with a different measurement "
                                 f"({unit} {seen.line}: {_fmt(seen.latency_ms)} ms, here: "
                                 f"{_fmt(net.latency_ms)} ms); keep one of them", InputError))
    if errors:
        # One problem shared by many lines (a validator's message) is said once, with its lines.
        by_message: dict[str, list[int]] = {}
        for line, msg, _ in errors:
            by_message.setdefault(msg, []).append(line)
        parts = []
        for msg, lines in list(by_message.items())[:_ERRORS_SHOWN]:
            where = ", ".join(str(n) for n in lines[:_ERRORS_SHOWN]) + (
                f" and {len(lines) - _ERRORS_SHOWN} more" if len(lines) > _ERRORS_SHOWN else "")
            parts.append(f"{unit}{'s' if len(lines) > 1 else ''} {where}: {msg}")
        shown = "; ".join(parts)
        rest = len(by_message) - _ERRORS_SHOWN
        more = f"; and {rest} other problem(s)" if rest > 0 else ""
        cls = errors[0][2]
        message = f"{path}: {len(errors)} invalid {unit}(s), nothing read: {shown}{more}"
        try:
            raise cls(message)
        except TypeError:  # an error class with another constructor
            raise InputError(message) from None
    if not out:
        raise InputError(f"{path} has a header but no rows; add one row per network")
    warnings = []
    if extra:
        warnings.append(f"{path}: column(s) ignored: {', '.join(extra)}")
    if merged:
        warnings.append(f"{path}: {merged} identical duplicate row(s) merged")
    out.warnings, out.merged, out.columns = tuple(warnings), merged, tuple(header)
    return out


def _short(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _fmt(v: float) -> str:
    return f"{v:.6g}"








