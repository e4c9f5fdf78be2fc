"""The SQLite latency table: round trips, derived statistics, safe opening, claims. Real SQLite throughout."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from nasprof.errors import SchemaError, TableError
from nasprof.tables import TABLE_KIND, TABLE_SCHEMA_VERSION, LatencyTable, TableEntry

META = {"device": "cpu", "space": "mnasnet", "resolution": 224,
        "environment": {"backend": "cpu", "threads": 1}}


def entry(key: str, samples: tuple[float, ...] = (1.0, 2.0, 3.0, 4.0), **kw: object) -> TableEntry:
    return TableEntry(key=key, samples_ms=samples, op="mbconv", cin=16, cout=24, kernel=5, stride=2,
                      expand=3, se=0, act="relu6", skip="none", groups=1, in_c=16, in_h=112, in_w=112,
                      out_c=24, out_h=56, out_w=56, macs=1000, params=200, **kw)


@pytest.fixture
def table(tmp_path: Path) -> Iterator[LatencyTable]:
    t = LatencyTable.open(tmp_path / "t.db", create=True, metadata=META)
    yield t
    t.close()


def snapshot(path: Path) -> tuple[bytes, int]:
    return path.read_bytes(), path.stat().st_mtime_ns


def test_round_trip_keeps_samples_and_derives_statistics(table: LatencyTable) -> None:
    assert table.put(entry("a")) is True
    got = table.get("a")
    assert got is not None
    assert got.samples_ms == (1.0, 2.0, 3.0, 4.0)
    assert got.median_ms == 2.5
    assert got.p90_ms == pytest.approx(3.7)
    assert got.mad_ms == 1.0
    assert got.n == 4
    assert got.skip == "none" and got.expand == 3.0 and got.kernel == 5
    assert got.created_at and got.created_at == got.updated_at
    assert table.get("missing") is None
    assert "a" in table and len(table) == 1 and table.keys() == ["a"]


def test_metadata_is_versioned(table: LatencyTable) -> None:
    meta = table.metadata
    assert meta["kind"] == TABLE_KIND
    assert meta["schema_version"] == TABLE_SCHEMA_VERSION
    assert meta["device"] == "cpu" and meta["resolution"] == 224
    assert meta["environment"] == {"backend": "cpu", "threads": 1}
    table.update_metadata(note="x")
    assert LatencyTable.load(table.path).metadata["note"] == "x"
    with pytest.raises(TableError):
        table.update_metadata(schema_version=99)


def test_failed_entry_has_error_and_no_latency(table: LatencyTable) -> None:
    table.put(TableEntry.failed("bad", "export failed: boom", op="conv"))
    got = table.get("bad")
    assert got is not None and not got.ok
    assert got.error == "export failed: boom" and got.median_ms is None and got.samples_ms == ()
    assert table.summary() == {"entries": 1, "ok": 0, "failed": 1, "unstable": 0, "remeasured": 0}


def test_entry_validation() -> None:
    with pytest.raises(ValueError, match="disagrees"):
        TableEntry(key="a", samples_ms=(1.0, 2.0, 3.0), median_ms=5.0)
    with pytest.raises(ValueError, match="no latency"):
        TableEntry(key="a", samples_ms=(1.0,), error="x")
    with pytest.raises(ValueError, match="needs samples_ms"):
        TableEntry(key="a")
    with pytest.raises(ValueError, match="finite"):
        TableEntry(key="a", samples_ms=(1.0, float("nan")))
    with pytest.raises(ValueError, match="malformed flags"):
        TableEntry(key="a", samples_ms=(1.0,), flags=("Not OK",))
    assert TableEntry(key="a", median_ms=2.0).median_ms == 2.0  # imported from a tool without samples


def test_put_if_absent_keeps_successes_but_replaces_failures(table: LatencyTable) -> None:
    table.put(TableEntry.failed("k", "boom"))
    assert table.put(entry("k"), if_absent=True) is True  # a failure may be replaced
    assert table.put(entry("k", (9.0, 9.0)), if_absent=True) is False
    assert table.get("k").samples_ms == (1.0, 2.0, 3.0, 4.0)
    created = table.get("k").created_at
    assert table.put(entry("k", (5.0,), flags=("remeasured",))) is True  # plain put replaces
    got = table.get("k")
    assert got.samples_ms == (5.0,) and got.flags == ("remeasured",) and got.created_at == created


def test_pending_keeps_order_and_can_include_failures(table: LatencyTable) -> None:
    table.put(entry("b"))
    table.put(TableEntry.failed("c", "boom"))
    assert table.pending(["d", "b", "c", "a", "d"]) == ["d", "a"]
    assert table.pending(["d", "b", "c", "a"], include_failed=True) == ["d", "c", "a"]


def test_dataframe_columns_and_types(table: LatencyTable) -> None:
    table.put(entry("a", flags=("unstable", "remeasured")))
    table.put(TableEntry.failed("b", "boom"))
    df = LatencyTable.load(table.path).df
    assert list(df["key"]) == ["a", "b"]
    assert df.loc[0, "median_ms"] == 2.5 and df.loc[0, "samples_ms"] == [1.0, 2.0, 3.0, 4.0]
    assert df.loc[0, "flags"] == "remeasured,unstable"
    assert str(df["cin"].dtype) == "Int64" and df.loc[0, "cin"] == 16
    assert df.loc[1, "error"] == "boom" and df.loc[1, "n"] == 0
    assert df["median_ms"].isna().tolist() == [False, True]


def test_load_is_read_only(table: LatencyTable) -> None:
    table.put(entry("a"))
    ro = LatencyTable.load(table.path)
    assert ro.get("a") is not None
    with pytest.raises(TableError, match="read-only"):
        ro.put(entry("b"))


def test_reading_a_table_leaves_no_wal_files_behind(table: LatencyTable) -> None:
    path = table.path
    table.close()
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    reader = LatencyTable.load(path)
    n = len(reader)
    with pytest.raises(sqlite3.OperationalError):  # query_only: even a raw write is refused
        reader._conn.execute("DELETE FROM entries")
    reader.close()
    with LatencyTable.load(path) as again:
        assert len(again) == n
    assert not Path(f"{path}-wal").exists() and not Path(f"{path}-shm").exists()


def test_missing_file_is_not_created_without_create(tmp_path: Path) -> None:
    with pytest.raises(TableError, match="no latency table"):
        LatencyTable.open(tmp_path / "nope.db")
    assert not (tmp_path / "nope.db").exists()


def test_foreign_sqlite_database_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE users (name TEXT)")
    conn.commit()
    conn.close()
    before = snapshot(path)
    with pytest.raises(TableError, match="not a nasprof latency table"):
        LatencyTable.open(path, create=True, metadata=META)
    assert snapshot(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.db"]


def test_text_file_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_text("hello, this is not a database\n" * 50)
    before = snapshot(path)
    with pytest.raises(TableError, match="not an SQLite database"):
        LatencyTable.open(path, create=True, metadata=META)
    assert snapshot(path) == before


def test_newer_schema_is_refused_untouched(table: LatencyTable) -> None:
    table.put(entry("a"))
    path = table.path
    table.close()
    conn = sqlite3.connect(path)
    newer = json.dumps(TABLE_SCHEMA_VERSION + 1)
    conn.execute("UPDATE meta SET value = ? WHERE name = 'schema_version'", (newer,))
    conn.commit()
    conn.close()
    before = snapshot(path)
    with pytest.raises(SchemaError, match="newer"):
        LatencyTable.open(path, create=True, metadata=META)
    with pytest.raises(SchemaError):
        LatencyTable.load(path)
    assert snapshot(path) == before


def test_new_table_file_is_world_readable_like_any_file(table: LatencyTable) -> None:
    umask = os.umask(0)
    os.umask(umask)
    assert table.path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_racing_creators_share_one_table(tmp_path: Path) -> None:
    path = tmp_path / "race.db"
    tables: list[LatencyTable] = []
    errors: list[BaseException] = []

    def go(i: int) -> None:
        try:
            t = LatencyTable.open(path, create=True, metadata={**META, "who": i})
            t.put(entry(f"k{i}"))
            tables.append(t)
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=go, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert LatencyTable.load(path).keys() == ["k0", "k1", "k2", "k3"]
    assert len({t.metadata["who"] for t in tables}) == 1  # exactly one creator's metadata won
    assert [p.name for p in tmp_path.iterdir() if "creating" in p.name] == []


def test_claims_exclude_other_owners_until_released(table: LatencyTable) -> None:
    assert table.claim("k", "A") is True
    assert table.claim("k", "A") is True  # renewing one's own claim
    assert table.claim("k", "B") is False
    table.put(entry("k"), if_absent=True, release_claim="A")
    assert table.claims() == []
    assert table.claim("k", "B") is False  # done: nothing to claim
    table.put(TableEntry.failed("f", "boom"))
    assert table.claim("f", "B") is False
    assert table.claim("f", "B", retry_failed=True) is True


def test_claim_of_a_dead_process_is_taken_over(table: LatencyTable) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    pid = int(dead.stdout)
    conn = sqlite3.connect(table.path)
    conn.execute("INSERT INTO claims VALUES ('k', 'ghost', ?, ?, 9e18)", (pid, os.uname().nodename))
    conn.commit()
    conn.close()
    assert table.claim("k", "me") is True
    assert [c["owner"] for c in table.claims()] == ["me"]


def test_claim_from_another_host_waits_for_its_lease(table: LatencyTable) -> None:
    conn = sqlite3.connect(table.path)
    conn.execute("INSERT INTO claims VALUES ('live', 'far', 1, 'other-host', 9e18)")
    conn.execute("INSERT INTO claims VALUES ('old', 'far', 1, 'other-host', 1.0)")
    conn.commit()
    conn.close()
    assert table.claim("live", "me") is False
    assert table.claim("old", "me") is True


def test_put_many_is_one_transaction(table: LatencyTable) -> None:
    assert table.put_many([entry("a"), entry("b"), TableEntry.failed("c", "x")]) == 3
    assert table.keys() == ["a", "b", "c"]


V1_TABLE = Path(__file__).parent / "data" / "v1_table.db"  # written by nasprof at schema version 1


def test_a_version_1_table_is_read_as_is_and_upgraded_only_when_written(tmp_path: Path) -> None:
    """A table built before entries recorded their host and runner: reading it, or a build refusing it,
    leaves the file byte for byte; the first write adds the two columns (every old entry kept, unchanged)
    and the new version."""
    import hashlib

    db = tmp_path / "old.db"
    db.write_bytes(V1_TABLE.read_bytes())
    digest = hashlib.sha256(db.read_bytes()).hexdigest()
    with LatencyTable.load(db) as t:
        old = list(t.entries())
        assert t.schema_version == 1 and len(old) == 3
        assert all(e.measured_on == "cpu" and e.host is None and e.runner is None for e in old)
        assert t.df[["host", "runner"]].isna().all().all()
    assert hashlib.sha256(db.read_bytes()).hexdigest() == digest
    from nasprof.tables import build_table

    with pytest.raises(TableError, match="resolution 32, not 'mobilenetv2' at 64"):  # refused: untouched
        build_table("mobilenetv2", 64, "cpu", db, limit=1)
    with LatencyTable.open(db) as t:
        assert t.schema_version == 1 and list(t.entries()) == old  # opened to write, nothing written yet
    assert hashlib.sha256(db.read_bytes()).hexdigest() == digest
    with LatencyTable.open(db) as t:
        t.put(TableEntry("new", samples_ms=(1.0, 1.1), measured_on="pixel-a", host="lab-2",
                         runner="onnxruntime_perf_test sha256:0123"))
    with LatencyTable.load(db) as t:
        assert t.schema_version == TABLE_SCHEMA_VERSION == 2 and list(t.entries())[:3] == old
        new = t.get("new")
        assert new is not None and (new.host, new.runner) == ("lab-2", "onnxruntime_perf_test sha256:0123")
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    finally:
        conn.close()
