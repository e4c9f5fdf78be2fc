"""Moving tables around: export to CSV/Parquet, import back (validated), merge two tables, coverage.

Every writer here builds its output under a temporary name and links it into place at the end, so a failed
import or merge never leaves a half-written table, and an existing file is never overwritten.

File formats:
- CSV: a plain CSV any reader opens with its defaults (``pd.read_csv(path)``, a spreadsheet): a header and
  one row per entry; ``samples_ms`` is a JSON list, ``flags`` comma-separated. The table metadata goes to a
  sidecar ``PATH.meta.json`` beside it, which ``import_table`` reads back. (CSVs written before the sidecar
  carried it as a first line ``# nasprof.latency_table <JSON>``; they still import.)
- Parquet: the same columns (``samples_ms`` as a list of doubles); the metadata JSON is stored in the file's
  key-value metadata under ``nasprof.latency_table``.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nasprof.errors import InputError, MissingDependencyError, TableError
from nasprof.tables.compat import environment_mismatch
from nasprof.tables.entry import ENTRY_COLUMNS, TableEntry
from nasprof.tables.store import LatencyTable
from nasprof.tables.table_schema import TABLE_KIND

__all__ = [
    "export_table", "import_table", "merge_tables", "table_coverage", "MergeReport", "FORMATS", "meta_path",
]

FORMATS = ("csv", "parquet")
_META_PREFIX = f"# {TABLE_KIND} "
_INT_COLS = {"cin", "cout", "kernel", "stride", "groups", "mid", "in_c", "in_h", "in_w", "out_c", "out_h",
             "out_w", "macs", "params", "peak_sram_bytes", "flash_bytes", "attempts", "n"}
_FLOAT_COLS = {"expand", "se", "median_ms", "p90_ms", "mad_ms", "cv", "export_s", "measure_s"}


#: File suffixes that name a format: a --format that contradicts one is refused (a file called x.yaml that
#: holds CSV would mislead every later reader).
SUFFIX_FORMATS = {".csv": "csv", ".parquet": "parquet", ".yaml": "ofa", ".yml": "ofa"}


def check_suffix(path: Path, fmt: str) -> None:
    """``InputError`` when ``path``'s suffix names a format other than ``fmt``."""
    known = sorted(set(SUFFIX_FORMATS.values()))
    if fmt not in known:
        raise InputError(f"unknown --format {fmt!r}: use {', '.join(known)}")
    named = SUFFIX_FORMATS.get(path.suffix.lower())
    if named is not None and named != fmt:
        raise InputError(f"--format {fmt} contradicts the suffix of {path} (a {named} file name); "
                         f"drop --format or name the file for {fmt}")


def _format_of(path: Path, fmt: str | None) -> str:
    if fmt:
        check_suffix(path, fmt.lower())
    fmt = (fmt or path.suffix.lstrip(".")).lower()
    if fmt not in FORMATS:
        raise InputError(f"unknown table format {fmt!r} for {path}: use csv or parquet")
    return fmt


def _pyarrow() -> Any:
    try:
        import pyarrow
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        raise MissingDependencyError("parquet needs pyarrow: pip install 'nasprof[parquet]'") from None
    return pyarrow


def meta_path(csv: str | Path) -> Path:
    """The metadata sidecar of an exported CSV: ``t.csv`` -> ``t.csv.meta.json``."""
    csv = Path(csv)
    return csv.with_name(csv.name + ".meta.json")


def export_table(table: LatencyTable | str | Path, out: str | Path, fmt: str | None = None) -> Path:
    """Write every entry and the table metadata to ``out`` (csv or parquet; from the suffix by default).
    A CSV's metadata goes to its sidecar (``meta_path``)."""
    from nasprof._io import check_output

    out = Path(out)
    fmt = _format_of(out, fmt)
    source = table.path if isinstance(table, LatencyTable) else Path(table)
    check_output(out, inputs=[source])
    if fmt == "csv":
        check_output(meta_path(out), inputs=[source])
    if isinstance(table, LatencyTable):
        df, meta = table.df, table.metadata
    else:
        with LatencyTable.load(table) as t:
            df, meta = t.df, t.metadata
    if fmt == "csv":
        from nasprof._io import atomic_write_text

        df = df.assign(samples_ms=[json.dumps(list(s)) for s in df["samples_ms"]])
        doc = {"kind": TABLE_KIND, "csv": out.name, **meta}
        atomic_write_text(meta_path(out), json.dumps(doc, indent=1, sort_keys=True) + "\n")
        return atomic_write_text(out, df.to_csv(index=False))
    pa = _pyarrow()
    tbl = pa.Table.from_pandas(df, preserve_index=False)
    tbl = tbl.replace_schema_metadata({**(tbl.schema.metadata or {}), TABLE_KIND.encode(): json.dumps(meta)})
    tmp = _tmp_beside(out, ".parquet")
    try:
        pa.parquet.write_table(tbl, tmp)
        os.replace(tmp, out)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return out


def _read_sidecar(src: Path) -> Any:
    side = meta_path(src)
    try:
        meta = json.loads(side.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(
            f"{src} is not an exported nasprof table: its metadata {side.name} is not beside it (an export "
            "writes both; copy them together)"
        ) from None
    except (OSError, ValueError) as exc:
        raise InputError(f"{side}: unreadable table metadata ({exc})") from None
    if not isinstance(meta, dict) or meta.pop("kind", TABLE_KIND) != TABLE_KIND:
        raise InputError(f"{side} is not the metadata of a nasprof latency table")
    meta.pop("csv", None)
    return meta


def _read_rows(src: Path, fmt: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    import pandas as pd

    if not src.is_file():
        raise InputError(f"no file at {src}" if not src.exists() else f"{src} is not a regular file")
    if fmt == "csv":
        with open(src, "rb") as fb:
            head = fb.read(4096)
        if head.startswith(b"PAR1"):
            raise InputError(f"{src} holds Parquet data, not CSV: rename it .parquet (or pass --format "
                             "parquet)")
        if b"\0" in head:
            raise InputError(f"{src} is a binary file, not a CSV table exported by `nasprof table export`")
        try:
            head.decode("utf-8")
        except UnicodeDecodeError as exc:
            if len(head) < 4096 or exc.start < len(head) - 4:  # not a character cut at the 4 KiB boundary
                raise InputError(f"{src} is not UTF-8 text (byte {exc.start}); a CSV table is exported as "
                                 "UTF-8 by `nasprof table export`") from None
        with open(src, encoding="utf-8") as f:
            first = f.readline()
            if first.startswith(_META_PREFIX):  # written before the sidecar: the metadata is the first line
                try:
                    meta = json.loads(first[len(_META_PREFIX):])
                except ValueError as exc:
                    raise InputError(f"{src}: unreadable metadata line ({exc})") from None
            else:
                meta = _read_sidecar(src)
                f.seek(0)
            try:
                df = pd.read_csv(f, dtype=str, keep_default_na=False)
            except UnicodeDecodeError as exc:
                raise InputError(f"{src} is not UTF-8 text (byte {exc.start}); a CSV table is exported as "
                                 "UTF-8 by `nasprof table export`") from None
            except (ValueError, pd.errors.ParserError) as exc:
                raise InputError(f"{src}: malformed CSV ({exc})") from None
    else:
        pa = _pyarrow()
        try:
            tbl = pa.parquet.read_table(src)
        except (OSError, pa.ArrowException) as exc:
            raise InputError(f"{src} is not a readable parquet file ({exc})") from None
        raw = (tbl.schema.metadata or {}).get(TABLE_KIND.encode())
        if raw is None:
            raise InputError(f"{src} carries no nasprof table metadata; export with `nasprof table export`")
        meta = json.loads(raw)
        df = tbl.to_pandas()
    if not isinstance(meta, dict):
        raise InputError(f"{src}: table metadata must be a JSON object")
    if "key" not in df.columns:
        raise InputError(f"{src}: no 'key' column")
    unknown = set(df.columns) - set(ENTRY_COLUMNS)
    if unknown:
        raise InputError(f"{src}: unknown columns {', '.join(sorted(unknown))}")
    return meta, df.to_dict("records")


def _cell(col: str, v: Any) -> Any:
    """One CSV/Parquet cell as the entry field wants it (empty / NaN -> None)."""
    if v is None or (isinstance(v, float) and math.isnan(v)) or (isinstance(v, str) and v == ""):
        return None if col not in ("samples_ms", "flags") else ()
    if col == "samples_ms":
        return tuple(json.loads(v)) if isinstance(v, str) else tuple(float(x) for x in v)
    if col == "flags":
        return tuple(f for f in str(v).split(",") if f)
    if col in _INT_COLS:
        f = float(v)
        if not f.is_integer():
            raise ValueError(f"{col} must be an integer, got {v!r}")
        return int(f)
    if col in _FLOAT_COLS:
        return float(v)
    return str(v)


#: A table key: ``family-input:HxWxC-output:HxWxC`` then ``-label:value`` fields of plain characters.
_KEY_RE = re.compile(r"^[a-z][a-z0-9_]*-input:\d+x\d+x\d+-output:\d+x\d+x\d+(-[a-z_]+:[A-Za-z0-9_.+,]+)*$")


def _filled(value: Any) -> bool:
    """A cell that holds something (not None, NaN, or an empty string)."""
    if value is None:
        return False
    if isinstance(value, float):
        return value == value
    return bool(str(value).strip())


def _has_samples(value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, str):
        return value.strip() not in ("", "[]")
    try:
        return len(value) > 0
    except TypeError:
        return True


def _check_import_meta(src: Path, meta: Mapping[str, Any]) -> None:
    """The metadata an imported table is used by: a known space (or none) and a positive resolution."""
    space = meta.get("space")
    if space is not None:
        from nasprof.space.registry import list_spaces

        if not isinstance(space, str) or space not in list_spaces():
            raise InputError(f"{src}: metadata names space {space!r}, which this nasprof does not know "
                             f"(known: {', '.join(list_spaces())})")
    res = meta.get("resolution")
    if res is not None and (isinstance(res, bool) or not isinstance(res, int) or not 1 <= res <= 4096):
        raise InputError(f"{src}: metadata resolution {res!r} is not a positive number of pixels")


def _entries_from_rows(src: Path, rows: Iterable[dict[str, Any]]) -> list[TableEntry]:
    out: list[TableEntry] = []
    seen: set[str] = set()
    for i, row in enumerate(rows, start=1):
        key = str(row.get("key", ""))
        if not _KEY_RE.match(key):
            shown = key if len(key) <= 80 else key[:77] + "..."
            raise InputError(f"{src}: row {i}: {shown!r} is not a table key (FAMILY-input:HxWxC-output:HxWxC"
                             "-label:value...)")
        failed = _filled(row.get("error"))
        if not failed and not _has_samples(row.get("samples_ms")):
            raise InputError(f"{src}: row {i} ({key}): a measured entry without samples_ms; nasprof keeps "
                             "raw samples with every entry (export it again with `nasprof table export`)")
        try:
            fields_ = {c: _cell(c, v) for c, v in row.items()}
            n = fields_.pop("n", None)
            if fields_.get("samples_ms"):
                # Statistics are recomputed from the samples; the median must agree (checked by TableEntry).
                fields_.update(p90_ms=None, mad_ms=None, cv=None)
            entry = TableEntry.from_row(fields_)
            if n is not None and entry.samples_ms and n != entry.n:
                raise ValueError(f"n = {n} but {entry.n} samples")
        except (ValueError, TypeError) as exc:
            raise InputError(f"{src}: row {i} ({row.get('key', '?')}): {exc}") from None
        if entry.key in seen:
            raise InputError(f"{src}: row {i}: duplicate key {entry.key}")
        seen.add(entry.key)
        out.append(entry)
    return out


def _tmp_beside(path: Path, suffix: str) -> str:
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise InputError(f"cannot write {path}: directory {parent} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=parent)
    os.close(fd)
    return tmp


def _write_new_table(out: Path, meta: Mapping[str, Any], entries: list[TableEntry]) -> None:
    """Create ``out`` with ``entries`` atomically; refuse to overwrite an existing file."""
    if out.exists():
        raise TableError(f"{out} already exists; choose a new output path")
    tmp = _tmp_beside(out, ".db")
    os.unlink(tmp)  # LatencyTable.create wants a fresh path
    try:
        with LatencyTable.create(tmp, meta) as t:
            t.put_many(entries)
        try:
            os.link(tmp, out)
        except FileExistsError:
            raise TableError(f"{out} already exists; choose a new output path") from None
    finally:
        for suffix in ("", "-wal", "-shm"):
            Path(tmp + suffix).unlink(missing_ok=True)


def import_table(src: str | Path, out: str | Path, fmt: str | None = None) -> int:
    """Read an exported table (csv/parquet) into a new SQLite table at ``out``; returns the entry count.

    Every row is validated (types, statistics agreeing with the samples, unique keys); the first bad row
    raises ``InputError`` naming it and nothing is written.
    """
    src, out = Path(src), Path(out)
    meta, rows = _read_rows(src, _format_of(src, fmt))
    if meta.get("kind") not in (None, TABLE_KIND):
        raise InputError(f"{src}: metadata kind {meta.get('kind')!r} is not a latency table")
    from nasprof.tables.table_schema import TABLE_SCHEMA_VERSION

    version = meta.get("schema_version", TABLE_SCHEMA_VERSION)
    if isinstance(version, int) and version > TABLE_SCHEMA_VERSION:
        from nasprof.errors import SchemaError

        raise SchemaError(f"{src} was exported from table schema_version {version}, newer than this nasprof "
                          f"reads ({TABLE_SCHEMA_VERSION}); upgrade nasprof")
    _check_import_meta(src, meta)
    entries = _entries_from_rows(src, rows)
    meta = {k: v for k, v in meta.items() if k not in ("kind", "schema_version")}
    meta["imported_from"] = str(src)
    _write_new_table(out, meta, entries)
    return len(entries)


@dataclass(frozen=True)
class MergeReport:
    """What a merge kept: entries written, keys only in A / only in B / in both, and how conflicts went."""

    out: str
    entries: int
    only_a: int
    only_b: int
    both: int
    from_b_in_conflicts: int
    forced_differences: tuple[str, ...] = ()


def _prefer(a: TableEntry, b: TableEntry) -> TableEntry:
    """A success beats a failure; then more samples; then the newer entry (A on a tie)."""
    ka = (a.ok, a.n, a.updated_at or "")
    kb = (b.ok, b.n, b.updated_at or "")
    return b if kb > ka else a


def merge_tables(a: str | Path, b: str | Path, out: str | Path, *, force: bool = False) -> MergeReport:
    """Merge two tables of the same device, environment, space and resolution into a new table ``out``.

    Differences in device, environment, space or resolution raise ``TableError`` unless ``force``; a
    forced merge records them in the output's metadata (``forced_differences``).
    """
    with LatencyTable.load(a) as ta, LatencyTable.load(b) as tb:
        ma, mb = ta.metadata, tb.metadata
        diffs = [f"{k}: {ma.get(k)!r} vs {mb.get(k)!r}" for k in ("device", "space", "resolution")
                 if ma.get(k) != mb.get(k)]
        diffs += environment_mismatch(ma.get("environment", {}), mb.get("environment", {}))
        if diffs and not force:
            raise TableError(f"refusing to merge tables measured differently ({'; '.join(diffs)}); "
                             "pass --force to merge anyway")
        ea = {e.key: e for e in ta.entries()}
        eb = {e.key: e for e in tb.entries()}
    both = ea.keys() & eb.keys()
    merged = {**eb, **ea}
    took_b = 0
    for k in both:
        merged[k] = _prefer(ea[k], eb[k])
        took_b += merged[k] is eb[k]
    meta = {k: v for k, v in ma.items() if k not in ("kind", "schema_version", "created_at")}
    meta["merged_from"] = [str(a), str(b)]
    if diffs:
        meta["forced_differences"] = diffs
    _write_new_table(Path(out), meta, [merged[k] for k in sorted(merged)])
    return MergeReport(out=str(out), entries=len(merged), only_a=len(ea.keys() - eb.keys()),
                       only_b=len(eb.keys() - ea.keys()), both=len(both), from_b_in_conflicts=took_b,
                       forced_differences=tuple(diffs))


def table_coverage(table: LatencyTable) -> tuple[int, int] | None:
    """``(measured, distinct)``: successful entries among the distinct layers of the table's space at its
    resolution; None when the table does not name a known space."""
    meta = table.metadata
    space, res = meta.get("space"), meta.get("resolution")
    if not space or not isinstance(res, int):
        return None
    from nasprof.errors import NasprofError

    try:
        from nasprof.space import get_space

        keys = {layer.key for layer in get_space(space).distinct_layers(res)}
    except (ImportError, NasprofError, ValueError, LookupError):
        return None  # a summary must not fail because the space changed or is unknown here
    ok = {e.key for e in table.entries(skip_corrupt=True) if e.ok}
    return len(ok & keys), len(keys)
