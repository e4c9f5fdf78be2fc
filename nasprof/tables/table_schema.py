"""The latency table's file format: its SQL schema and version, how a new file is created, how an existing
one is recognised (``meta``: ``kind`` and ``schema_version``), and how an entry becomes a row and back.

Apart from ``store`` (the ``LatencyTable`` object: opening, reading, writing, claims) because this is what
a file *is*, read by ``store`` and by what imports and exports tables (``transfer``), and the place its
history is written down.

Schema history (``TABLE_SCHEMA_VERSION``):
  1 — meta(name, value JSON); entries (key, spec columns, raw samples JSON, statistics, MACs/params, memory,
      flags, error, attempts, measured_on, export_s/measure_s, timestamps); claims (key, owner, pid, host,
      expires_at) for builders sharing one table.
  2 — entries gain host and runner (where each entry's device was attached, what timed it: a phone farm
      spans hosts). A version-1 file is read as it is (host and runner empty) and upgraded in place by its
      first write (``LatencyTable``): two columns added, in that write's transaction.
"""

from __future__ import annotations

import json
import os
import sqlite3
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nasprof.errors import TableError
from nasprof.tables.connection import read_checked_meta
from nasprof.tables.entry import ENTRY_COLUMNS, TableEntry, utc_now

__all__ = [
    "ADDED_IN_V2", "FLOAT_COLUMNS", "INT_COLUMNS", "SCHEMA_SQL", "SPEC_SQL", "STORED_COLUMNS", "TABLE_KIND",
    "TABLE_SCHEMA_VERSION", "create_table_file", "entry_to_row", "read_meta", "row_to_entry",
]

TABLE_SCHEMA_VERSION = 2
TABLE_KIND = "nasprof.latency_table"

#: Column types of the layer spec and shape columns.
SPEC_SQL = {
    "op": "TEXT", "cin": "INTEGER", "cout": "INTEGER", "kernel": "INTEGER", "stride": "INTEGER",
    "expand": "REAL", "se": "REAL", "act": "TEXT", "skip": "TEXT", "groups": "INTEGER",
    "mid": "INTEGER", "variant": "TEXT",
    "in_c": "INTEGER", "in_h": "INTEGER", "in_w": "INTEGER", "out_c": "INTEGER", "out_h": "INTEGER",
    "out_w": "INTEGER",
}

SCHEMA_SQL = f"""
CREATE TABLE IF NOT EXISTS meta (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL              -- JSON
);
CREATE TABLE IF NOT EXISTS entries (
    key         TEXT PRIMARY KEY,
    {", ".join(f'"{c}" {t}' for c, t in SPEC_SQL.items())},
    samples_ms  TEXT NOT NULL DEFAULT '[]',   -- JSON list of floats, milliseconds, run order
    n           INTEGER NOT NULL DEFAULT 0,
    median_ms   REAL,
    p90_ms      REAL,
    mad_ms      REAL,
    cv          REAL,
    macs        INTEGER,
    params      INTEGER,
    peak_sram_bytes INTEGER,
    flash_bytes INTEGER,
    flags       TEXT NOT NULL DEFAULT '',     -- comma-separated, sorted
    error       TEXT,
    attempts    INTEGER NOT NULL DEFAULT 1,
    measured_on TEXT,
    host        TEXT,
    runner      TEXT,
    export_s    REAL,
    measure_s   REAL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    CHECK ((error IS NULL) = (median_ms IS NOT NULL))
);
CREATE INDEX IF NOT EXISTS entries_op ON entries(op);
CREATE TABLE IF NOT EXISTS claims (
    key        TEXT PRIMARY KEY,
    owner      TEXT NOT NULL,
    pid        INTEGER NOT NULL,
    host       TEXT NOT NULL,
    expires_at REAL NOT NULL
);
"""

STORED_COLUMNS = list(ENTRY_COLUMNS)  # column order used for INSERT/SELECT
#: Entry columns schema version 2 added (``LatencyTable._upgrade`` adds them to a version-1 file).
ADDED_IN_V2 = ("host", "runner")
INT_COLUMNS = [c for c, t in SPEC_SQL.items() if t == "INTEGER"] + [
    "n", "macs", "params", "peak_sram_bytes", "flash_bytes", "attempts"]
FLOAT_COLUMNS = ["expand", "se", "median_ms", "p90_ms", "mad_ms", "cv", "export_s", "measure_s"]


# -- module helpers -----------------------------------------------------------------------------------------
def read_meta(conn: sqlite3.Connection, path: Path) -> dict[str, Any]:
    from nasprof._io import sqlite_header_problem

    problem = sqlite_header_problem(path)
    if problem is not None:
        raise TableError(f"{path} is not a nasprof latency table ({problem}); choose another path")
    try:
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as exc:
        raise TableError(f"{path} is not a nasprof latency table (not an SQLite database: {exc})") from None
    if not {"meta", "entries"} <= names:
        raise TableError(
            f"{path} is an SQLite database but not a nasprof latency table (no meta/entries tables); "
            "choose another path"
        )
    return read_checked_meta(conn, path, kind=TABLE_KIND, noun="latency table",
                             max_version=TABLE_SCHEMA_VERSION)


def create_table_file(path: Path, metadata: Mapping[str, Any]) -> None:
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise TableError(f"cannot create {path}: directory {parent} does not exist")
    meta = {k: v for k, v in metadata.items() if k not in ("kind", "schema_version")}
    meta.update({"kind": TABLE_KIND, "schema_version": TABLE_SCHEMA_VERSION})
    meta.setdefault("created_at", utc_now())
    try:
        from nasprof._version import __version__

        meta.setdefault("nasprof_version", __version__)
    except ImportError:  # pragma: no cover - the package always has a version
        pass
    try:
        encoded = {k: json.dumps(v) for k, v in meta.items()}
    except (TypeError, ValueError) as exc:
        raise TableError(f"table metadata must be JSON-serialisable: {exc}") from None
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".creating", dir=parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a table is meant to be shared like any file
    try:
        conn = sqlite3.connect(tmp, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=WAL")  # persistent: stored in the file header
            conn.executescript("BEGIN;" + SCHEMA_SQL + "COMMIT;")
            conn.executemany("INSERT INTO meta(name, value) VALUES (?, ?)", list(encoded.items()))
        finally:
            conn.close()
        try:
            # link() fails if the path exists: creation is atomic even with two builders racing.
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process created it first; the caller validates what is there
        except OSError:
            if not path.exists():  # filesystems without hard links
                os.replace(tmp, path)
    finally:
        for suffix in ("", "-wal", "-shm"):
            Path(tmp + suffix).unlink(missing_ok=True)


def entry_to_row(e: TableEntry, now: str) -> dict[str, Any]:
    row = {c: getattr(e, c) for c in ENTRY_COLUMNS if c not in ("samples_ms", "flags", "n")}
    row["samples_ms"] = json.dumps(list(e.samples_ms))
    row["flags"] = ",".join(e.flags)
    row["n"] = e.n
    row["created_at"] = e.created_at or now
    row["updated_at"] = e.updated_at or now
    return row


def row_to_entry(row: tuple[Any, ...], path: Path | None = None) -> TableEntry:
    d = dict(zip(STORED_COLUMNS, row, strict=True))
    d.pop("n")
    try:
        samples = json.loads(d["samples_ms"])
        if not isinstance(samples, list):
            raise ValueError(f"samples_ms is not a list: {d['samples_ms']!r}")
        d["samples_ms"] = tuple(samples)
        d["flags"] = tuple(f for f in str(d["flags"] or "").split(",") if f)
        for col in FLOAT_COLUMNS:
            if d.get(col) is not None and not isinstance(d[col], (int, float)):
                raise ValueError(f"{col} is {d[col]!r}, not a number")
        # Statistics are derived: with samples present TableEntry recomputes them (and checks the median).
        if d["samples_ms"]:
            d.update(p90_ms=None, mad_ms=None, cv=None)
        return TableEntry(**d)
    except (TypeError, ValueError) as exc:  # json.JSONDecodeError is a ValueError
        where = f"{path}: " if path is not None else ""
        raise TableError(
            f"{where}entry {d.get('key')!r} is corrupt ({exc}): the file was changed outside nasprof; "
            "restore it from a copy or build the table again"
        ) from None
