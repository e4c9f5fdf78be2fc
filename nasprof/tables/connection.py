"""SQLite connections to a table file: durable writers, readers that leave no WAL files behind, and the
check that a file can be written before a build spends any device time on it."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

from nasprof.errors import SchemaError, TableError

__all__ = ["BUSY_TIMEOUT_S", "check_writable", "connect", "read_checked_meta", "reader"]

#: How long a writer waits for another process's transaction before giving up (seconds).
BUSY_TIMEOUT_S = 60.0


def connect(path: Path, *, readonly: bool) -> sqlite3.Connection:
    try:
        if readonly:
            conn = sqlite3.connect(
                f"file:{quote(str(path.resolve()))}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_S,
                isolation_level=None, check_same_thread=False,
            )
        else:
            conn = sqlite3.connect(
                str(path), timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
            # Durable commits: each entry is hours of device time amortised; an fsync per entry is cheap.
            conn.execute("PRAGMA synchronous=FULL")
        return conn
    except sqlite3.Error as exc:
        raise TableError(f"cannot open {path}: {exc}") from None


def _may_write(path: Path) -> bool:
    return os.access(path, os.W_OK)


def check_writable(conn: sqlite3.Connection, path: Path) -> None:
    """Fail at open, not at the first entry minutes later, when the table cannot be written (a read-only
    file or directory, a read-only file system)."""
    problem = ""
    if not _may_write(path):
        problem = "the file is read-only"
    elif not _may_write(path.parent if str(path.parent) else Path(".")):
        problem = "its directory is read-only (SQLite writes a journal beside it)"
    else:
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("ROLLBACK")
        except sqlite3.OperationalError as exc:
            if "readonly" in str(exc) or "read-only" in str(exc):
                problem = str(exc)
    if problem:
        conn.close()
        raise TableError(f"cannot write to the table {path}: {problem}; copy it somewhere writable")


def reader(path: Path) -> sqlite3.Connection:
    """A connection that only reads a verified nasprof table.

    Opened read-write with ``query_only`` where the file allows it: a ``mode=ro`` connection cannot
    checkpoint the WAL, so every `table show` left ``-wal``/``-shm`` files beside the table; the last
    read-write connection to close removes them, as SQLite does for writers. ``query_only`` (and the
    table's own read-only flag) keeps it from writing. Falls back to ``mode=ro`` when the file cannot be
    opened for writing."""
    try:
        conn = connect(path, readonly=False)
    except TableError:
        return connect(path, readonly=True)
    try:
        conn.execute("PRAGMA query_only=1")
        conn.execute("SELECT 1 FROM meta LIMIT 1").fetchall()  # a read-only directory fails here, not above
        return conn
    except sqlite3.Error:
        conn.close()
        return connect(path, readonly=True)


@contextlib.contextmanager
def committed(cur: sqlite3.Cursor, path: Path) -> Iterator[sqlite3.Cursor]:
    """The body of a transaction begun on ``cur``: rolled back if the body raises, committed otherwise
    (a failed commit is rolled back and becomes ``TableError`` naming ``path``)."""
    try:
        yield cur
    except BaseException:
        cur.execute("ROLLBACK")
        raise
    try:
        cur.execute("COMMIT")
    except sqlite3.OperationalError as exc:
        with contextlib.suppress(sqlite3.Error):
            cur.execute("ROLLBACK")
        raise TableError(f"could not commit to {path}: {exc}") from None


def read_checked_meta(conn: sqlite3.Connection, path: Path, *, kind: str, noun: str,
                      max_version: int) -> dict[str, Any]:
    """The ``meta`` table of a nasprof SQLite file (a latency table, a measurement store) as a dict, once its
    ``kind`` is ``kind`` and its ``schema_version`` one this nasprof reads; ``noun`` names the file in the
    errors ("latency table"). ``TableError``, or ``SchemaError`` for a newer file."""
    try:
        meta = {k: json.loads(v) for k, v in conn.execute("SELECT name, value FROM meta").fetchall()}
    except (sqlite3.DatabaseError, ValueError, TypeError) as exc:
        raise TableError(f"{path}: unreadable {noun} metadata ({exc})") from None
    if meta.get("kind") != kind:
        raise TableError(f"{path} is not a nasprof {noun} (kind {meta.get('kind')!r})")
    version = meta.get("schema_version")
    if not isinstance(version, int) or version < 1:
        raise TableError(f"{path}: malformed schema_version {version!r}")
    if version > max_version:
        raise SchemaError(f"{path} is a {noun} of schema_version {version}, newer than this nasprof reads "
                          f"({max_version}); upgrade nasprof")
    return meta
