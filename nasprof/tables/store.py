"""The SQLite latency table: one file per (device type, space, resolution), safe under crashes and sharing.

Why SQLite: it is in the standard library, a table is one file to copy around, and its write-ahead log gives
atomic, durable commits with concurrent readers and serialised writers across processes. Each entry is
written in its own transaction (``synchronous=FULL``), so killing a build at any moment loses at most the
entry being measured, and the file is always readable.

Opening never damages a file that is not ours: an existing file is first opened read-only and checked for
our ``meta`` table, ``kind`` and ``schema_version`` before anything is written. A new table is built in a
temporary file and hard-linked into place, so a half-created table is never visible and two builders
racing to create the same path end up sharing one table.

The file format (schema, its version history, creation, rows) is ``nasprof.tables.table_schema``.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nasprof.errors import TableError
from nasprof.tables.connection import check_writable, committed, connect, reader
from nasprof.tables.entry import ENTRY_COLUMNS, TableEntry, utc_now
from nasprof.tables.table_schema import (
    ADDED_IN_V2,
    FLOAT_COLUMNS,
    INT_COLUMNS,
    STORED_COLUMNS,
    TABLE_SCHEMA_VERSION,
    create_table_file,
    entry_to_row,
    read_meta,
    row_to_entry,
)

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["LatencyTable"]


class LatencyTable:
    """A latency lookup table stored in one SQLite file.

    Use ``LatencyTable.open(path, create=True, metadata=...)`` to write (a build), ``LatencyTable.load(path)``
    to read. One connection per table object; methods are thread-safe (a lock serialises them), and several
    processes may write the same file at once (SQLite serialises their transactions; writers wait up to
    ``connection.BUSY_TIMEOUT_S``). Latencies are in milliseconds.
    """

    def __init__(self, path: Path, conn: sqlite3.Connection, *, readonly: bool) -> None:
        self.path = path
        self.readonly = readonly
        self._conn = conn
        self._lock = threading.RLock()
        self._meta = read_meta(conn, path)
        have = {r[1] for r in conn.execute("PRAGMA table_info(entries)")}
        #: Columns an older schema lacks: read as NULL until the first write adds them (``_upgrade``).
        self._missing = [c for c in ADDED_IN_V2 if c not in have]

    def _upgrade(self, cur: sqlite3.Cursor) -> None:
        """Version 1 -> 2, inside the first write's transaction (a command that refuses the table before
        writing leaves it as it was): add the columns, no row rewritten, and the new version."""
        have = {r[1] for r in cur.execute("PRAGMA table_info(entries)")}  # another writer may have won
        for col in self._missing:
            if col not in have:
                cur.execute(f'ALTER TABLE entries ADD COLUMN "{col}" TEXT')
        cur.execute("INSERT OR REPLACE INTO meta(name, value) VALUES ('schema_version', ?)",
                    (json.dumps(TABLE_SCHEMA_VERSION),))

    # -- opening ----------------------------------------------------------------------------------------
    @classmethod
    def open(
        cls,
        path: str | Path,
        *,
        create: bool = False,
        metadata: Mapping[str, Any] | None = None,
        readonly: bool = False,
    ) -> LatencyTable:
        """Open a table for writing (or reading with ``readonly=True``).

        With ``create=True`` a missing file becomes a new table carrying ``metadata`` (device, environment,
        space, resolution, ...). An existing file must be a nasprof table of a schema this version reads;
        otherwise ``TableError``/``SchemaError`` is raised and the file is left untouched.
        """
        path = Path(path)
        if path.is_dir():
            raise TableError(f"{path} is a directory; give a file path such as {path / 'table.db'}")
        if not path.exists():
            if not create:
                raise TableError(f"no latency table at {path}; build one with `nasprof table build`")
            if readonly:
                raise TableError("cannot create a table read-only")
            create_table_file(path, metadata or {})
        # Check read-only first so a foreign database is never written to (no WAL switch, no tables).
        probe = connect(path, readonly=True)
        try:
            read_meta(probe, path)
        finally:
            probe.close()
        conn = reader(path) if readonly else connect(path, readonly=False)
        if not readonly:
            check_writable(conn, path)
        return cls(path, conn, readonly=readonly)

    @classmethod
    def load(cls, path: str | Path) -> LatencyTable:
        """Open an existing table read-only."""
        return cls.open(path, readonly=True)

    @classmethod
    def create(cls, path: str | Path, metadata: Mapping[str, Any]) -> LatencyTable:
        """Create a new table; ``TableError`` when ``path`` already exists."""
        path = Path(path)
        if path.exists():
            raise TableError(f"{path} already exists; choose a new path or remove it first")
        return cls.open(path, create=True, metadata=metadata)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> LatencyTable:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"LatencyTable({str(self.path)!r}, device={self._meta.get('device')!r})"

    # -- metadata ---------------------------------------------------------------------------------------
    @property
    def metadata(self) -> dict[str, Any]:
        """Table-level metadata (schema_version, kind, device, environment, space, resolution, ...)."""
        return dict(self._meta)

    @property
    def device(self) -> str | None:
        return self._meta.get("device")

    @property
    def schema_version(self) -> int:
        return int(self._meta["schema_version"])

    def update_metadata(self, **values: Any) -> None:
        """Set metadata keys (JSON-serialisable values). ``kind`` and ``schema_version`` are fixed."""
        if {"kind", "schema_version"} & set(values):
            raise TableError("kind and schema_version of a table cannot be changed")
        with self._write() as cur:
            for k, v in values.items():
                cur.execute("INSERT OR REPLACE INTO meta(name, value) VALUES (?, ?)", (k, json.dumps(v)))
        self._meta.update(values)

    # -- entries ----------------------------------------------------------------------------------------
    def get(self, key: str) -> TableEntry | None:
        with self._lock:
            row = self._conn.execute(f"SELECT {self._select_cols()} FROM entries WHERE key = ?",
                                     (key,)).fetchone()
        return None if row is None else row_to_entry(row, self.path)

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return self._conn.execute("SELECT 1 FROM entries WHERE key = ?", (key,)).fetchone() is not None

    def __len__(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM entries").fetchone()[0])

    def keys(self) -> list[str]:
        with self._lock:
            return [r[0] for r in self._conn.execute("SELECT key FROM entries ORDER BY key")]

    def entries(self, *, skip_corrupt: bool = False) -> Iterator[TableEntry]:
        """All entries, sorted by key (read in one query; tables are thousands of rows, not millions).

        A row that is not a valid entry (a median that is not a number, samples that are not a JSON list of
        positive numbers: a file edited or damaged outside nasprof) raises ``TableError`` naming its key;
        with ``skip_corrupt`` it is left out and its key recorded in ``corrupt_keys``."""
        with self._lock:
            rows = self._conn.execute(f"SELECT {self._select_cols()} FROM entries ORDER BY key").fetchall()
        self.corrupt_keys: list[str] = []
        return self._checked(rows, skip_corrupt)

    def _select_cols(self) -> str:
        return ", ".join("NULL" if c in self._missing else f'"{c}"' for c in STORED_COLUMNS)

    def _checked(self, rows: list[tuple[Any, ...]], skip_corrupt: bool) -> Iterator[TableEntry]:
        for r in rows:
            try:
                yield row_to_entry(r, self.path)
            except TableError:
                if not skip_corrupt:
                    raise
                self.corrupt_keys.append(str(r[0]))

    def corrupt(self) -> list[str]:
        """Keys of the rows that are not valid entries (see ``entries``); empty for a sound table."""
        for _ in self.entries(skip_corrupt=True):
            pass
        return list(self.corrupt_keys)

    def __iter__(self) -> Iterator[TableEntry]:
        return self.entries()

    def pending(self, keys: Iterable[str], *, include_failed: bool = False) -> list[str]:
        """``keys`` (order kept, duplicates dropped) that have no entry yet (or, with ``include_failed``,
        only a failed one)."""
        with self._lock:
            # A failed entry counts as done unless the caller wants failures measured again.
            sql = "SELECT key FROM entries" + (" WHERE error IS NULL" if include_failed else "")
            done = {r[0] for r in self._conn.execute(sql)}
        seen: set[str] = set()
        out = []
        for k in keys:
            if k not in done and k not in seen:
                seen.add(k)
                out.append(k)
        return out

    def put(self, entry: TableEntry, *, if_absent: bool = False, release_claim: str | None = None) -> bool:
        """Write ``entry`` in one transaction; returns whether it was written.

        By default an existing entry with the same key is replaced (its ``created_at`` kept). With
        ``if_absent=True`` an existing *successful* entry wins and nothing is written — how builders sharing
        a table guarantee each key is stored exactly once. ``release_claim`` drops that owner's claim on the
        key in the same transaction, so a crash can never leave an entry written but still claimed.
        """
        now = utc_now()
        row = entry_to_row(entry, now)
        with self._write() as cur:
            existing = cur.execute(
                "SELECT error, created_at FROM entries WHERE key = ?", (entry.key,)
            ).fetchone()
            written = True
            if existing is not None and if_absent and existing[0] is None:
                written = False
            elif existing is not None:
                row["created_at"] = entry.created_at or existing[1]
                cols = ", ".join(f'"{c}" = :{c}' for c in STORED_COLUMNS if c != "key")
                cur.execute(f"UPDATE entries SET {cols} WHERE key = :key", row)
            else:
                cols = ", ".join(f'"{c}"' for c in STORED_COLUMNS)
                params = ", ".join(":" + c for c in STORED_COLUMNS)
                cur.execute(f"INSERT INTO entries({cols}) VALUES ({params})", row)
            if release_claim is not None:
                cur.execute("DELETE FROM claims WHERE key = ? AND owner = ?", (entry.key, release_claim))
        return written

    def put_many(self, entries: Iterable[TableEntry]) -> int:
        """Write (replace) many entries in ONE transaction — for import and merge into a new table, where
        all-or-nothing is what we want and a commit per entry would only cost time."""
        now = utc_now()
        cols = ", ".join(f'"{c}"' for c in STORED_COLUMNS)
        params = ", ".join(":" + c for c in STORED_COLUMNS)
        rows = [entry_to_row(e, now) for e in entries]
        with self._write() as cur:
            cur.executemany(f"INSERT OR REPLACE INTO entries({cols}) VALUES ({params})", rows)
        return len(rows)

    def delete(self, key: str) -> bool:
        with self._write() as cur:
            return cur.execute("DELETE FROM entries WHERE key = ?", (key,)).rowcount > 0

    # -- claims (builders sharing one table) -------------------------------------------------------------
    def claim(self, key: str, owner: str, *, lease_s: float = 900.0, retry_failed: bool = False) -> bool:
        """Reserve ``key`` for ``owner`` so no other builder measures it too; False when it is taken.

        A key is taken when it already has an entry (a failed one counts unless ``retry_failed``) or an
        unexpired claim of another owner whose process is alive. Claims of dead processes on this host are
        taken over at once (a build killed with -9 leaves its claim behind); claims from other hosts
        expire after ``lease_s``.
        """
        now = time.time()
        host, pid = socket.gethostname(), os.getpid()
        with self._write() as cur:
            row = cur.execute("SELECT error FROM entries WHERE key = ?", (key,)).fetchone()
            if row is not None and (row[0] is None or not retry_failed):
                return False
            held = cur.execute(
                "SELECT owner, pid, host, expires_at FROM claims WHERE key = ?", (key,)
            ).fetchone()
            if held is not None and held[0] != owner and held[3] > now and _alive(held[1], held[2]):
                return False
            cur.execute(
                "INSERT OR REPLACE INTO claims(key, owner, pid, host, expires_at) VALUES (?, ?, ?, ?, ?)",
                (key, owner, pid, host, now + lease_s),
            )
        return True

    def release(self, key: str, owner: str) -> None:
        with self._write() as cur:
            cur.execute("DELETE FROM claims WHERE key = ? AND owner = ?", (key, owner))

    def drop_stale_claims(self) -> int:
        """Remove claims of dead processes on this host and expired ones (a builder killed with -9 leaves its
        claims behind); returns how many. A resumed build calls it so no orphaned claim outlives it."""
        now = time.time()
        with self._write() as cur:
            rows = cur.execute("SELECT key, owner, pid, host, expires_at FROM claims").fetchall()
            stale = [(k, o) for k, o, pid, host, exp in rows if exp <= now or not _alive(pid, host)]
            cur.executemany("DELETE FROM claims WHERE key = ? AND owner = ?", stale)
        return len(stale)

    def claims(self) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._conn.execute("SELECT key, owner, pid, host, expires_at FROM claims ORDER BY key")
            return [dict(zip(("key", "owner", "pid", "host", "expires_at"), r, strict=True)) for r in rows]

    # -- summaries --------------------------------------------------------------------------------------
    def summary(self) -> dict[str, int]:
        """Counts: entries, ok, failed, unstable, remeasured."""
        with self._lock:
            n, failed = self._conn.execute(
                "SELECT COUNT(*), COALESCE(SUM(error IS NOT NULL), 0) FROM entries"
            ).fetchone()
            flag_rows = self._conn.execute("SELECT flags FROM entries WHERE flags != ''").fetchall()
        counts: dict[str, int] = {}
        for (flags,) in flag_rows:
            for f in flags.split(","):
                counts[f] = counts.get(f, 0) + 1
        return {"entries": int(n), "ok": int(n) - int(failed), "failed": int(failed),
                "unstable": counts.get("unstable", 0), "remeasured": counts.get("remeasured", 0)}

    @property
    def df(self) -> pd.DataFrame:
        """All entries as a DataFrame, one row per key (sorted): spec columns, ``samples_ms`` as lists of
        floats, ``flags`` as a comma-separated string (``df[df.flags.str.contains("unstable")]``)."""
        import pandas as pd

        rows = [{**e.to_row(), "n": e.n, "flags": ",".join(e.flags)} for e in self.entries()]
        df = pd.DataFrame(rows, columns=list(ENTRY_COLUMNS))
        # Nullable integer columns: a missing MAC count stays <NA> instead of turning the column to float.
        return df.astype({c: "Int64" for c in INT_COLUMNS} | {c: "float64" for c in FLOAT_COLUMNS})

    # -- internals --------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Cursor]:
        if self.readonly:
            raise TableError(f"{self.path} is open read-only")
        with self._lock:
            cur = self._conn.cursor()
            try:
                # IMMEDIATE takes the write lock up front: no deadlock between two readers upgrading.
                cur.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                raise TableError(f"{self.path} is locked by another writer ({exc}); try again") from None
            upgrading = bool(self._missing)
            with committed(cur, self.path):
                if upgrading:
                    self._upgrade(cur)
                yield cur
            if upgrading:
                self._missing = []
                self._meta["schema_version"] = TABLE_SCHEMA_VERSION


def _alive(pid: int, host: str) -> bool:
    if host != socket.gethostname():
        return True  # cannot tell: rely on the lease
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True






