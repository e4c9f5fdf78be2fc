"""The table builder with the real space, the real torch exporter and the real CPU backend.

Builds use mobilenetv2 at 32x32 (70 distinct layers, tiny models) and a few runs per entry to stay fast.
Two test doubles stand in for hardware we do not have: a device that crashes on one model, and one that
disconnects. They wrap the real CPU backend and are real ``Backend`` subclasses.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, ClassVar

import pytest

from nasprof.devices.base import Backend, MeasureSpec
from nasprof.devices.cpu import CpuBackend
from nasprof.errors import DeviceError, DeviceUnavailableError, InputError, TableError
from nasprof.profiler.measurement import Measurement
from nasprof.space import get_space
from nasprof.tables import LatencyTable, build_table
from nasprof.tables.build_layers import parse_shard, select_layers
from nasprof.tables.builder import BuildProgress
from nasprof.tables.entry_flags import assess
from nasprof.tables.planner import RunPlanner

SPACE, RES = "mobilenetv2", 32
FAST = MeasureSpec(warmup=1, runs=3, sessions=1)
# Export in-process (torch loads once per test run, not once per build); fixed runs (no time budget).
INLINE = {"export_jobs": 0, "time_per_entry_s": 0}
KEYS = sorted(layer.key for layer in get_space(SPACE).distinct_layers(RES))
NASPROF = [sys.executable, "-m", "nasprof.cli"]
BUILD_ARGS = ["table", "build", "--space", SPACE, "--resolution", str(RES), "--warmup", "1", "--runs", "3",
              "--sessions", "1", "--target-ci", "0", "--time-per-entry", "0"]


def check_exactly_once(db: Path, expected: list[str]) -> None:
    conn = sqlite3.connect(db)
    keys = [r[0] for r in conn.execute("SELECT key FROM entries ORDER BY key")]
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert conn.execute("SELECT COUNT(*) FROM claims").fetchone() == (0,)
    conn.close()
    assert keys == sorted(expected)


def test_space_has_the_expected_layers() -> None:
    assert len(KEYS) == 70 and len(set(KEYS)) == 70


def test_build_stores_full_entries_and_resumes(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    seen: list[BuildProgress] = []
    r1 = build_table(SPACE, RES, "cpu", db, limit=3, spec=FAST, time_per_entry_s=0, progress=seen.append)
    assert (r1.distinct, r1.selected, r1.already_done, r1.written, r1.failed) == (70, 70, 0, 3, 0)
    assert not r1.complete and r1.inference_s > 0 and 0 < r1.efficiency < 1
    assert [(p.done, p.total) for p in seen] == [(0, 3), (1, 3), (2, 3), (3, 3)]
    assert seen[-1].key == KEYS[2] and seen[-1].eta_s == 0
    r2 = build_table(SPACE, RES, "cpu", db, limit=2, spec=FAST, **INLINE)
    assert (r2.already_done, r2.written) == (3, 2)
    check_exactly_once(db, KEYS[:5])
    t = LatencyTable.load(db)
    e = t.get(KEYS[0])
    assert e.ok and e.n == 3 and e.measured_on == "cpu" and e.export_s > 0 and e.measure_s > 0
    import socket

    import onnxruntime

    assert (e.host, e.runner) == (socket.gethostname(), f"onnxruntime {onnxruntime.__version__}")
    layer = next(x for x in get_space(SPACE).distinct_layers(RES) if x.key == KEYS[0])
    assert (e.op, e.cin, e.cout, e.kernel, e.stride) == (layer.spec.op, layer.spec.cin, layer.spec.cout,
                                                         layer.spec.kernel, layer.spec.stride)
    assert (e.in_c, e.in_h, e.in_w) == layer.input_shape and (e.out_c, e.out_h, e.out_w) == layer.output_shape
    assert (e.macs, e.params) == (layer.macs, layer.params)
    meta = t.metadata
    assert (meta["space"], meta["resolution"], meta["device"]) == (SPACE, RES, "cpu")
    assert meta["distinct_layers"] == 70
    assert meta["environment"]["backend"] == "cpu" and meta["environment"]["threads"] == 1
    assert meta["measure_spec"]["runs"] == 3


def test_shards_are_disjoint_deterministic_and_balanced(tmp_path: Path) -> None:
    assert parse_shard("2/3") == (2, 3)
    for bad in ("0/2", "3/2", "x", "1/0"):
        with pytest.raises(Exception, match="shard"):
            parse_shard(bad)
    layers = get_space(SPACE).distinct_layers(RES)
    parts = [[x.key for x in select_layers(layers, (i, 3))] for i in (1, 2, 3)]
    assert sorted(sum(parts, [])) == KEYS and [len(p) for p in parts] == [24, 23, 23]
    assert parts[0][:2] == [KEYS[0], KEYS[3]]
    db = tmp_path / "t.db"
    r = build_table(SPACE, RES, "cpu", db, shard="2/3", limit=2, spec=FAST, **INLINE)
    assert r.selected == 23 and r.shard == (2, 3)
    check_exactly_once(db, [KEYS[1], KEYS[4]])


def test_resume_refuses_other_space_or_environment(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    build_table(SPACE, RES, "cpu", db, limit=1, spec=FAST, **INLINE)
    before = db.read_bytes()
    with pytest.raises(TableError, match="resolution"):
        build_table(SPACE, 64, "cpu", db, limit=1, spec=FAST, **INLINE)
    with pytest.raises(TableError, match="threads: 1 vs 2"):
        build_table(SPACE, RES, "cpu", db, limit=1, spec=MeasureSpec(warmup=1, runs=3, sessions=1, threads=2),
                    time_per_entry_s=0)
    assert db.read_bytes() == before
    r = build_table(SPACE, RES, "cpu", db, limit=1, force=True, **INLINE,
                    spec=MeasureSpec(warmup=1, runs=3, sessions=1, threads=2))
    assert r.written == 1


class CrashOnSecond(CpuBackend):
    """A device whose runner crashes on the second model it is given (as a phone runner sometimes does)."""

    name: ClassVar[str] = "cpu"

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.calls = 0

    def measure(self, model: Path, spec: MeasureSpec) -> Measurement:
        self.calls += 1
        if self.calls == 2:
            raise DeviceError("runner exited with signal 11")
        return super().measure(model, spec)


class Disconnects(CpuBackend):
    """A device that disappears after two measurements (USB cable pulled)."""

    name: ClassVar[str] = "cpu"

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.calls = 0

    def measure(self, model: Path, spec: MeasureSpec) -> Measurement:
        self.calls += 1
        if self.calls > 2:
            raise DeviceUnavailableError("device 'cpu' is not attached")
        return super().measure(model, spec)


def test_failing_entry_is_recorded_and_the_build_goes_on(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    r = build_table(SPACE, RES, CrashOnSecond(device="cpu"), db, limit=3, spec=FAST, remeasure=0, **INLINE)
    assert (r.written, r.failed) == (3, 1)
    t = LatencyTable.load(db)
    bad = t.get(KEYS[1])
    assert not bad.ok and bad.error == "measurement failed: DeviceError: runner exited with signal 11"
    assert bad.attempts == 1 and bad.op is not None
    assert t.get(KEYS[2]).ok
    # A re-run skips the failure; --retry-failed measures it again and counts the attempt.
    assert build_table(SPACE, RES, "cpu", db, limit=3, spec=FAST, **INLINE).written == 3
    r = build_table(SPACE, RES, "cpu", db, limit=1, spec=FAST, retry_failed=True, remeasure=0, **INLINE)
    assert r.written == 1
    fixed = LatencyTable.load(db).get(KEYS[1])
    assert fixed.ok and fixed.attempts == 2


def test_an_option_the_backend_refuses_fails_before_any_entry(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    spec = MeasureSpec(warmup=1, runs=3, sessions=1, options={"cuda_graph": True})
    with pytest.raises(InputError, match="cpu backend does not understand option.*cuda_graph"):
        build_table(SPACE, RES, "cpu", db, limit=3, spec=spec, **INLINE)
    assert not db.exists() or len(LatencyTable.load(db)) == 0  # not three "failed" entries


def test_disconnected_device_costs_no_entry(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    with pytest.raises(DeviceUnavailableError, match="not attached"):
        build_table(SPACE, RES, Disconnects(device="cpu"), db, limit=4, spec=FAST, remeasure=0, **INLINE)
    check_exactly_once(db, KEYS[:2])  # no failure recorded for the layer in flight, its claim released
    build_table(SPACE, RES, "cpu", db, limit=2, spec=FAST, **INLINE)
    check_exactly_once(db, KEYS[:4])


def test_several_devices_share_one_queue(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    devices = [CpuBackend(device="cpu-a"), CpuBackend(device="cpu-b")]
    r = build_table(SPACE, RES, devices, db, limit=6, spec=FAST, **INLINE)
    assert r.written == 6 and r.devices == ("cpu-a", "cpu-b")
    check_exactly_once(db, KEYS[:6])
    assert LatencyTable.load(db).metadata["devices"] == ["cpu-a", "cpu-b"]


class Noisy(Backend):
    """Returns prepared measurements in turn (a device whose first measurement was disturbed)."""

    name: ClassVar[str] = "noisy"

    def __init__(self, samples: list[tuple[tuple[float, ...], tuple[int, ...]]], **kw: Any) -> None:
        super().__init__(**kw)
        self.samples = list(samples)

    def available(self) -> tuple[bool, str]:
        return True, ""

    def measure(self, model: Path, spec: MeasureSpec) -> Measurement:
        s, sid = self.samples.pop(0)
        return Measurement(device=self.device, backend=self.name, samples_ms=s, session_index=sid)


def test_unstable_entry_is_remeasured_and_flagged(tmp_path: Path) -> None:
    calm = tuple(1.0 + 0.001 * (i % 5) for i in range(40))
    disturbed = tuple([1.0] * 20 + [1.3] * 20)  # two sessions 30% apart
    sid = tuple([0] * 20 + [1] * 20)
    db = tmp_path / "t.db"
    dev = Noisy([(disturbed, sid), (calm, sid), (disturbed, sid), (disturbed, sid)], device="noisy")
    r = build_table(SPACE, RES, dev, db, limit=2, spec=FAST, remeasure=1, **INLINE)
    assert (r.written, r.remeasured, r.unstable) == (2, 2, 1)
    t = LatencyTable.load(db)
    first, second = t.get(KEYS[0]), t.get(KEYS[1])
    assert first.flags == ("remeasured",) and first.samples_ms == calm and first.attempts == 2
    assert second.flags == ("remeasured", "unstable") and second.attempts == 2
    assert second.median_ms == 1.15


def test_assess_flags_by_exact_rules() -> None:
    def m(samples: tuple[float, ...], sid: tuple[int, ...] = ()) -> Measurement:
        return Measurement(device="d", backend="b", samples_ms=samples, session_index=sid)

    calm = tuple(2.0 + 0.001 * (i % 3) for i in range(60))
    assert assess(m(calm)).flags == ()
    q = assess(m((1.0, 2.0, 3.0, 4.0, 5.0)))  # MAD 1 -> robust CV 49%; CI = the whole range
    assert q.flags == ("unstable", "ci_wide") and q.median_rel_ci == pytest.approx(2.0 / 3.0)
    assert q.robust_cv == pytest.approx(1.4826 / 3.0)
    spikes = (1.0,) * 57 + (50.0,) * 3  # CV 150% from 5% spikes; the median is untouched: not unstable
    assert assess(m(spikes)).flags == ()
    assert assess(m(tuple(0.01 for _ in range(20)))).flags == ("tiny",)
    assert assess(m((1.0, 1.06) * 10, (0,) * 10 + (1,) * 10)).session_spread == 0.0
    assert "unstable" in assess(m((1.0,) * 10 + (1.06,) * 10, (0,) * 10 + (1,) * 10)).flags


def test_planner_fills_the_time_budget_from_history() -> None:
    layers = sorted(get_space(SPACE).distinct_layers(224), key=lambda x: x.key)
    base = MeasureSpec(warmup=10, runs=10, sessions=2, target_rel_ci=0.01, max_runs=300)
    planner = RunPlanner(base, budget_s=0.2)
    assert planner.plan(layers[0]) == base  # nothing known yet: the spec as given
    mb = [x for x in layers if x.spec.op == "mbconv"]
    for x in mb[:10]:
        planner.observe(x, x.macs * 1e-7)  # latency exactly linear in MACs: the fit recovers it
    target = mb[20]
    assert planner.predict_ms(target) == pytest.approx(target.macs * 1e-7, rel=1e-6)
    est_s = target.macs * 1e-10
    spec = planner.plan(target)
    assert spec.runs == max(10, min(500, math.ceil(0.1 / est_s)))
    assert spec.warmup == min(10, max(2, math.ceil(0.02 / est_s)))
    assert spec.max_runs == max(300, 4 * spec.runs) and spec.sessions == 2
    assert RunPlanner(base, budget_s=None).plan(target) == base


def _children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        out += [int(p) for p in text]
    return out


def test_kill_9_loses_at_most_the_entry_in_flight(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    proc = subprocess.Popen(NASPROF + BUILD_ARGS + ["--db", str(db), "--limit", "12"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    n = 0
    while time.monotonic() < deadline and proc.poll() is None:
        if db.exists():
            try:
                n = LatencyTable.load(db).__len__()
            except TableError:
                n = 0
            if n >= 3:
                break
        time.sleep(0.05)
    assert proc.poll() is None, "the build finished before it could be killed; raise --limit"
    children = _children(proc.pid)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    # The database is readable and holds only whole entries; the export child exits with its parent.
    t = LatencyTable.load(db)
    done = t.keys()
    # The 12 selected keys are measured in hashed order (drift must not follow the key order).
    order = sorted(KEYS[:12], key=lambda k: hashlib.sha256(k.encode()).digest())
    assert len(done) >= 3 and sorted(done) == sorted(order[: len(done)])
    assert all(e.ok and e.n == 3 for e in t.entries())
    for child in children:
        for _ in range(100):
            stat = Path(f"/proc/{child}/stat")
            if not stat.exists() or stat.read_text().split()[2] == "Z":
                break
            time.sleep(0.1)
        else:
            pytest.fail(f"export process {child} outlived its killed parent")
    r = build_table(SPACE, RES, "cpu", db, limit=12 - len(done), spec=FAST, **INLINE)
    assert r.already_done == len(done)
    check_exactly_once(db, KEYS[:12])


def test_two_builds_on_one_table_store_every_entry_once(tmp_path: Path) -> None:
    """Two processes on the SAME pending set: claims split the work, nothing is measured twice."""
    db = tmp_path / "t.db"
    keys = KEYS[:14]
    # Pre-fill the rest so both builds see exactly the 14 pending layers.
    with LatencyTable.open(db, create=True, metadata={
            "device": "cpu", "space": SPACE, "resolution": RES,
            "environment": {**CpuBackend(device="cpu").describe(), "threads": 1, "opt_level": "all"}}) as t:
        from nasprof.tables import TableEntry

        t.put_many(TableEntry(key=k, samples_ms=(1.0,)) for k in KEYS[14:])
    procs = [subprocess.Popen(NASPROF + BUILD_ARGS + ["--db", db, "--json", tmp_path / f"r{i}.json"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
             for i in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()
    reports = [json.loads((tmp_path / f"r{i}.json").read_text()) for i in range(2)]
    check_exactly_once(db, KEYS)
    assert sum(r["written"] for r in reports) == len(keys)
    for r in reports:
        # Each build either wrote a layer or found it claimed/written by the other one.
        assert r["written"] + r["taken_by_others"] + r["already_done"] == len(KEYS)
    assert all(LatencyTable.load(db).get(k).measure_s is not None for k in keys)


def test_mcu_entries_carry_memory(tmp_path: Path) -> None:
    from nasprof.devices.mcu import mcu_memory_for_layer

    layers = {x.key: x for x in get_space(SPACE).distinct_layers(RES)}
    build_table(SPACE, RES, "stm32f746", tmp_path / "mcu.db", limit=2, **INLINE)
    build_table(SPACE, RES, "cpu", tmp_path / "cpu.db", limit=2, spec=FAST, memory_board="stm32f746",
                **INLINE)
    for name in ("mcu.db", "cpu.db"):
        t = LatencyTable.load(tmp_path / name)
        for e in t.entries():
            want = mcu_memory_for_layer(layers[e.key], "stm32f746")
            assert (e.peak_sram_bytes, e.flash_bytes) == (want.peak_sram_bytes, want.flash_bytes)
            assert e.peak_sram_bytes > 0
    est = LatencyTable.load(tmp_path / "mcu.db").get(KEYS[0])
    assert est.flags == ("estimated",) and est.n == 1


class WithBrokenLayer:
    """mobilenetv2's first layers plus one whose input has the wrong channel count: its export fails."""

    name = SPACE

    def distinct_layers(self, resolution: int) -> list[Any]:
        from types import SimpleNamespace

        real = sorted(get_space(SPACE).distinct_layers(resolution), key=lambda x: x.key)[:2]
        c, h, w = real[0].input_shape
        broken = SimpleNamespace(key="aaa-broken", spec=real[0].spec, input_shape=(c + 1, h, w),
                                 output_shape=real[0].output_shape, macs=1, params=1)
        return [*real, broken]


def test_failed_export_is_recorded_and_the_build_goes_on(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    r = build_table(WithBrokenLayer(), RES, "cpu", db, spec=FAST, **INLINE)
    assert (r.written, r.failed, r.complete) == (3, 1, True)
    t = LatencyTable.load(db)
    bad = t.get("aaa-broken")
    assert not bad.ok and bad.error.startswith("export failed: RuntimeError: ")
    assert bad.in_c == bad.cin + 1 and bad.measure_s is None  # spec columns are stored with the failure
    assert [e.ok for e in t.entries()] == [False, True, True]


def test_export_child_crash_fails_one_layer_and_restarts(tmp_path: Path) -> None:
    from nasprof.tables.export_worker import ProcessExporter

    layers = sorted(get_space(SPACE).distinct_layers(RES), key=lambda x: x.key)[:3]
    ex = ProcessExporter(tmp_path / "export.log")
    try:
        tickets = [ex.submit(x, tmp_path / f"{i}.onnx") for i, x in enumerate(layers)]
        assert ex._proc is not None
        # Killed while still importing torch, so no layer is answered yet (as torch might die on a huge one).
        os.kill(ex._proc.pid, signal.SIGKILL)
        results = [ex.result(t) for t in tickets]
    finally:
        ex.close()
    # The oldest unanswered layer is blamed; a fresh child exports the others.
    assert results[0].error is not None and results[0].error.startswith("export process died")
    assert [r.error for r in results[1:]] == [None, None]
    assert all(r.path.stat().st_size > 0 for r in results[1:]) and not results[0].path.exists()
