"""Measurement sets written out as files (``nasprof measurements export``): CSV with a ``.meta.json``
sidecar or Parquet with its metadata inside, and that metadata (name, version, provenance) read back.

Apart from ``measurements_io`` (reading any user's file, checking every row) because this is the one file
layout nasprof itself writes: ``read_measurements_file`` reads its rows back like any file, and
``read_file_metadata`` recovers the provenance the user's files do not have.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from nasprof.errors import InputError
from nasprof.tables.measurements_io import MeasuredNetwork, require_pyarrow

__all__ = ["FILE_KIND", "meta_path", "read_file_metadata", "write_measurements_file"]

#: Key of the metadata an export writes (Parquet key-value metadata, or the CSV's ``.meta.json`` sidecar).
FILE_KIND = "nasprof.measurement_set"


def meta_path(csv_path: str | Path) -> Path:
    """The metadata sidecar of an exported CSV: ``m.csv`` -> ``m.csv.meta.json``."""
    p = Path(csv_path)
    return p.with_name(p.name + ".meta.json")


def _columns(rows: Sequence[MeasuredNetwork]) -> dict[str, list[Any]]:
    cols: dict[str, list[Any]] = {}
    if any(r.arch is not None for r in rows):
        cols["arch"] = [r.arch for r in rows]
    if any(r.model is not None for r in rows):
        cols["model"] = [r.model for r in rows]
    cols["latency_ms"] = [r.latency_ms for r in rows]
    if any(r.spread_ms is not None for r in rows):
        cols["spread_ms"] = [r.spread_ms for r in rows]
    if any(r.samples_ms for r in rows):
        cols["samples_ms"] = [list(r.samples_ms) for r in rows]
    if any(r.accuracy is not None for r in rows):
        cols["accuracy"] = [r.accuracy for r in rows]
    return cols


def write_measurements_file(path: str | Path, rows: Sequence[MeasuredNetwork],
                            metadata: Mapping[str, Any]) -> Path:
    """Write ``rows`` to ``path`` (CSV or Parquet by suffix) so ``read_measurements_file`` reads them back;
    ``metadata`` (name, version, provenance, ...) goes into the Parquet file, or a CSV's ``.meta.json``."""
    import os
    import tempfile

    from nasprof._io import atomic_write_text

    path = Path(path)
    suffix = path.suffix.lower()
    cols = _columns(rows)
    doc = json.dumps({"kind": FILE_KIND, **metadata}, indent=1, sort_keys=True, default=str)
    if suffix == ".csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(list(cols))
        for values in zip(*cols.values(), strict=True):
            writer.writerow(["" if v is None else json.dumps(v) if isinstance(v, list) else
                             repr(v) if isinstance(v, float) else v for v in values])
        atomic_write_text(meta_path(path), doc + "\n")
        return atomic_write_text(path, buf.getvalue())
    if suffix not in (".parquet", ".pq"):
        raise InputError(f"cannot write {path}: use a .csv or .parquet file name")
    pa = require_pyarrow()
    types = {"arch": pa.string(), "model": pa.string(), "latency_ms": pa.float64(), "spread_ms": pa.float64(),
             "samples_ms": pa.list_(pa.float64()), "accuracy": pa.float64()}
    table = pa.table({c: pa.array(v, type=types[c]) for c, v in cols.items()})
    table = table.replace_schema_metadata({FILE_KIND: doc})
    parent = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=parent)
    os.close(fd)
    try:
        pa.parquet.write_table(table, tmp)
        os.replace(tmp, path)
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


def read_file_metadata(path: str | Path) -> dict[str, Any]:
    """The metadata an export wrote beside (CSV) or into (Parquet) ``path``; empty when there is none."""
    path = Path(path)
    raw: Any = None
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            pa = require_pyarrow()
            meta = pa.parquet.read_schema(path).metadata or {}
            raw = meta.get(FILE_KIND.encode())
        else:
            side = meta_path(path)
            raw = side.read_text(encoding="utf-8") if side.is_file() else None
        doc = json.loads(raw) if raw else {}
    except (OSError, ValueError, UnicodeDecodeError):
        return {}
    except Exception as exc:  # pyarrow's own errors
        if type(exc).__module__.startswith("pyarrow"):
            return {}
        raise
    if not isinstance(doc, dict) or doc.pop("kind", None) != FILE_KIND:
        return {}
    return doc
