"""`nasprof table build --device pixel,pixel2` on two fake phones at once, and a phone vanishing mid-build.

Real parts throughout: the space and torch exporter, the table builder, SQLite, the adb client binary; the
phones are fake adb devices whose perf_test stand-in runs the local onnxruntime.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from conftest import cli_runner

from nasprof.devices.android.adb import find_adb
from nasprof.devices.base import MeasureSpec
from nasprof.errors import DeviceUnavailableError
from nasprof.tables import LatencyTable, build_table
from nasprof.testing.fake_adb import FakeAdb

try:
    find_adb()
except DeviceUnavailableError as exc:  # pragma: no cover - adbutils is a dependency
    pytest.skip(f"no adb client binary: {exc}", allow_module_level=True)

SPACE, RES = "mobilenetv2", 32
FAST = MeasureSpec(warmup=1, runs=2, sessions=1)  # one perf_test process of 2 runs per entry
PHONES = {"pixel": "TAB_1", "pixel2": "TAB_2", "pixel3": "TAB_3", "pixel4": "TAB_4"}


def stored(db: Path) -> list[tuple[str, str, str | None]]:
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("SELECT COUNT(*) FROM claims").fetchone() == (0,)
    finally:
        conn.close()
    table = LatencyTable.load(db)
    return sorted((e.key, e.measured_on or "", e.error) for e in table.entries())


def test_build_on_two_phones_at_once(fake: FakeAdb, devices: Path, tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    from nasprof.cli import app

    r = cli_runner.invoke(
        app,
        ["table", "build", "--space", SPACE, "--resolution", str(RES), "--db", str(db),
         "--device", "pixel,pixel2", "--limit", "4", "--warmup", "1", "--runs", "2", "--sessions", "1",
         "--target-ci", "0", "--remeasure", "0"],  # strict execution counts: no re-measurement
    )
    assert r.exit_code == 0, r.output
    rows = stored(db)
    assert len(rows) == 4 and all(err is None for _, _, err in rows)
    by_phone = {name: sum(1 for _, on, _ in rows if on == name) for name in ("pixel", "pixel2")}
    assert by_phone["pixel"] + by_phone["pixel2"] == 4 and min(by_phone.values()) >= 1  # both phones worked
    assert len(fake.executions("TAB_1")) == by_phone["pixel"]
    assert len(fake.executions("TAB_2")) == by_phone["pixel2"]
    assert LatencyTable.load(db).metadata["devices"] == ["pixel", "pixel2"]


def test_phone_vanishing_mid_build_leaves_no_entry(fake: FakeAdb, devices: Path, tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    fake.unplug_during_run("TAB_4", completed_runs=0)  # pixel4 dies during its first perf_test run
    try:
        report = build_table(SPACE, RES, "pixel3,pixel4", db, limit=5, spec=FAST, remeasure=0)
        # pixel3 was still working when pixel4's layer came back to the queue, and measured it too.
        assert (report.written, report.failed) == (5, 0)
    except DeviceUnavailableError as exc:
        # pixel3 had already finished: the build says which phone went away, and a re-run completes it.
        assert "TAB_4 disconnected while running onnxruntime_perf_test" in str(exc)
        assert len(stored(db)) == 4
        assert build_table(SPACE, RES, "pixel3", db, limit=1, spec=FAST, remeasure=0).written == 1
    rows = stored(db)
    assert len(rows) == 5
    assert all(err is None and on == "pixel3" for _, on, err in rows)  # nothing recorded for the lost run
    assert len(fake.executions("TAB_4")) == 1
