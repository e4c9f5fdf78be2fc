"""The measurement store file: where it is, its SQLite schema and version, and the checked connections
(``read_store``, ``write_store``) through which every measurement set is read and written.

Apart from ``measurements`` (the sets: import, load, list, export, record) because this is the file under
them: it refuses a file that is not a store or is newer than this nasprof, creates one at the first write,
and holds a write in one transaction. The store is ``$NASPROF_HOME/measurements.db``, else
``$XDG_DATA_HOME/nasprof/measurements.db``, else ``~/.local/share/nasprof/measurements.db``.

Store schema history (``MEASUREMENTS_SCHEMA_VERSION``):
  1 — meta(name, value JSON: kind, schema_version); sets(name, version, provenance JSON, space,
      arch_options JSON, created_at, schema_version); rows(name, version, idx, arch, model, latency_ms,
      spread_ms, samples_ms JSON, accuracy, line).
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from nasprof.errors import TableError
from nasprof.tables.connection import check_writable, committed, connect, read_checked_meta, reader
from nasprof.tables.entry import utc_now
from nasprof.tables.measurements_io import MeasuredNetwork

__all__ = [
    "MEASUREMENTS_SCHEMA_VERSION", "STORE_KIND", "default_store", "insert_version", "read_store",
    "store_path", "write_store",
]

MEASUREMENTS_SCHEMA_VERSION = 1
STORE_KIND = "nasprof.measurement_store"

_STORE_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL                      -- JSON
);
CREATE TABLE IF NOT EXISTS sets (
    name           TEXT NOT NULL,
    version        INTEGER NOT NULL,
    provenance     TEXT NOT NULL,            -- JSON object of strings
    space          TEXT,
    arch_options   TEXT NOT NULL DEFAULT '{}',  -- JSON object
    created_at     TEXT NOT NULL,
    schema_version INTEGER NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE TABLE IF NOT EXISTS rows (
    name        TEXT NOT NULL,
    version     INTEGER NOT NULL,
    idx         INTEGER NOT NULL,
    arch        TEXT,
    model       TEXT,
    latency_ms  REAL NOT NULL,
    spread_ms   REAL,
    samples_ms  TEXT NOT NULL DEFAULT '[]',  -- JSON list of floats, milliseconds
    accuracy    REAL,
    line        INTEGER NOT NULL,
    PRIMARY KEY (name, version, idx),
    CHECK ((arch IS NULL) != (model IS NULL))
);
"""


# -- the store file ----------------------------------------------------------------------------------------
def default_store() -> Path:
    """``$NASPROF_HOME/measurements.db``, else ``$XDG_DATA_HOME/nasprof/measurements.db``, else
    ``~/.local/share/nasprof/measurements.db``."""
    home = os.environ.get("NASPROF_HOME", "").strip()
    if home:
        return Path(home).expanduser() / "measurements.db"
    xdg = os.environ.get("XDG_DATA_HOME", "").strip()
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "share"
    return base / "nasprof" / "measurements.db"


def store_path(store: str | Path | None) -> Path:
    path = default_store() if store is None else Path(store)
    if path.is_dir():
        raise TableError(f"measurement store {path} is a directory; give a file such as "
                         f"{path / 'measurements.db'}")
    return path


def _check_store(conn: sqlite3.Connection, path: Path) -> None:
    """``TableError``/``SchemaError`` unless ``conn`` is a measurement store this nasprof reads."""
    try:
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as exc:
        raise TableError(f"{path} is not a nasprof measurement store (not an SQLite database: {exc}); "
                         "give another --store") from None
    if not names:
        return  # an empty database: becomes a store at its first write
    if not {"meta", "sets", "rows"} <= names:
        raise TableError(f"{path} is an SQLite database but not a nasprof measurement store; give another "
                         "--store")
    read_checked_meta(conn, path, kind=STORE_KIND, noun="measurement store",
                      max_version=MEASUREMENTS_SCHEMA_VERSION)


@contextlib.contextmanager
def read_store(store: str | Path | None) -> Iterator[sqlite3.Connection | None]:
    """A checked read connection, or None when there is no store yet."""
    path = store_path(store)
    if not path.exists():
        parent = path.parent if str(path.parent) else Path(".")
        if store is not None and not parent.is_dir():  # a typo, not an empty store: say so
            why = "is not a directory" if parent.exists() else "does not exist"
            raise TableError(f"no measurement store at {path}: {parent} {why}; check --store")
        yield None
        return
    probe = connect(path, readonly=True)
    try:
        _check_store(probe, path)
        empty = not probe.execute("SELECT 1 FROM sqlite_master WHERE name = 'sets'").fetchone()
    finally:
        probe.close()
    if empty:
        yield None
        return
    conn = reader(path)
    try:
        yield conn
    finally:
        conn.close()


@contextlib.contextmanager
def write_store(store: str | Path | None) -> Iterator[sqlite3.Cursor]:
    """One IMMEDIATE transaction on the store (created when missing): all of it is written, or nothing."""
    path = store_path(store)
    if path.exists():
        probe = connect(path, readonly=True)  # never write into a file that is not ours
        try:
            _check_store(probe, path)
        finally:
            probe.close()
    else:
        if store is None:
            path.parent.mkdir(parents=True, exist_ok=True)
        parent = path.parent if str(path.parent) else Path(".")
        if not parent.is_dir():
            raise TableError(f"cannot create the measurement store {path}: directory {parent} does not exist")
    conn = connect(path, readonly=False)
    try:
        check_writable(conn, path)
        cur = conn.cursor()
        try:
            cur.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise TableError(f"{path} is locked by another writer ({exc}); try again") from None
        with committed(cur, path):
            for stmt in _STORE_SCHEMA.split(";"):
                if stmt.strip():
                    cur.execute(stmt)
            cur.execute("INSERT OR IGNORE INTO meta(name, value) VALUES ('kind', ?)",
                        (json.dumps(STORE_KIND),))
            cur.execute("INSERT OR IGNORE INTO meta(name, value) VALUES ('schema_version', ?)",
                        (json.dumps(MEASUREMENTS_SCHEMA_VERSION),))
            yield cur
    finally:
        conn.close()


def insert_version(cur: sqlite3.Cursor, name: str, rows: Sequence[MeasuredNetwork], prov: Mapping[str, str],
                   space: str | None, opts: Mapping[str, Any]) -> int:
    """Store ``rows`` as the next version of set ``name`` (v1 for a new name) in ``cur``'s transaction."""
    (latest,) = cur.execute("SELECT COALESCE(MAX(version), 0) FROM sets WHERE name = ?", (name,)).fetchone()
    version = int(latest) + 1
    cur.execute("INSERT INTO sets(name, version, provenance, space, arch_options, created_at, "
                "schema_version) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (name, version, json.dumps(dict(prov), sort_keys=True), space,
                 json.dumps(dict(opts), sort_keys=True), utc_now(), MEASUREMENTS_SCHEMA_VERSION))
    cur.executemany(
        "INSERT INTO rows(name, version, idx, arch, model, latency_ms, spread_ms, samples_ms, accuracy, "
        "line) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        ((name, version, i, r.arch, r.model, r.latency_ms, r.spread_ms, json.dumps(list(r.samples_ms)),
          r.accuracy, r.line) for i, r in enumerate(rows)),
    )
    return version
