"""A phone farm over Ray: a real Ray head on 127.0.0.1 (started and stopped here by `nasprof worker`), fake
phones on loopback driven by the real adb client, and the driver writing the SQLite table alone.

Faults: a worker actor killed mid-build, the driver killed with SIGKILL and run again, a phone vanishing;
each ends with every entry stored exactly once, no claim left and `PRAGMA integrity_check` ok.
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import cli_runner

from nasprof.cli import app
from nasprof.devices.android.adb import find_adb
from nasprof.devices.base import MeasureSpec
from nasprof.errors import DeviceUnavailableError
from nasprof.testing.fake_adb import FakeAdb, write_devices_file, write_fake_runner

pytest.importorskip("ray", reason="the Ray extra is not installed: pip install 'nasprof[ray]'")
try:
    find_adb()
except DeviceUnavailableError as exc:  # pragma: no cover - adbutils is a dependency
    pytest.skip(f"no adb client binary: {exc}", allow_module_level=True)

PHONES = {"pixel-a": "FARM_A", "pixel-b": "FARM_B", "pixel-c": "FARM_C"}
SPACE_ARGS = ["--space", "mobilenetv2", "--resolution", "32", "--warmup", "1", "--runs", "2", "--sessions",
              "1", "--target-ci", "0", "--remeasure", "0", "--time-per-entry", "0"]
FAST = MeasureSpec(warmup=1, runs=2, sessions=1)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _nasprof(*args: str, env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess[str]:
    r = subprocess.run([sys.executable, "-m", "nasprof.cli", *args], env=env, capture_output=True, text=True,
                       timeout=300)
    assert not check or r.returncode == 0, r.stderr
    return r


@pytest.fixture(scope="module")
def farm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    """The worker host: three fake phones in its devices file (pixel-c's runner is another build);
    `nasprof worker --head` serves them."""
    tmp = tmp_path_factory.mktemp("farm")
    with FakeAdb(tmp / "phones", tuple(PHONES.values())) as fake:
        runner, _ = write_fake_runner(tmp / "bin")
        runner.chmod(0o755)
        other_runner, _ = write_fake_runner(tmp / "bin2")
        other_runner.write_text(other_runner.read_text() + "\n# another build\n")
        other_runner.chmod(0o755)
        devices = write_devices_file(tmp / "devices.toml", PHONES,
                                     {n: other_runner if n == "pixel-c" else runner for n in PHONES},
                                     fake.server, runs_per_sample=2, max_processes_per_session=1)
        env = {**os.environ, "NASPROF_DEVICES": str(devices)}
        port = _free_port()
        _nasprof("worker", "--head", "--devices", "pixel-a,pixel-b,pixel-c", "--port", str(port),
                 "--node-ip", "127.0.0.1", env=env)
        try:
            # The driver's own devices file knows none of the phones: they are found on the cluster.
            yield {"fake": fake, "address": f"127.0.0.1:{port}", "env": env, "devices": devices,
                   "driver_env": {**os.environ, "NASPROF_DEVICES": str(tmp / "driver-devices.toml")}}
        finally:
            import ray

            ray.shutdown()
            # `nasprof worker --stop` stops the node it started, and only it (not `ray stop`).
            from nasprof.devices.farm import _node_dir, _node_pids

            _nasprof("worker", "--stop", env=env)
            assert _node_pids(_node_dir()) == []


def _check_store(db: Path, claims_left: bool = False) -> list[str]:
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert claims_left or conn.execute("SELECT COUNT(*) FROM claims").fetchone() == (0,)
        keys = [k for (k,) in conn.execute("SELECT key FROM entries")]
    finally:
        conn.close()
    assert len(keys) == len(set(keys))
    return keys


def test_build_spreads_over_the_farm_and_survives_a_worker_killed_mid_build(
        farm: dict[str, object], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from nasprof.devices.farm import ray_devices
    from nasprof.tables import LatencyTable, build_table

    monkeypatch.setenv("NASPROF_DEVICES", str(tmp_path / "none.toml"))
    devices = ray_devices(str(farm["address"]), "pixel-a,pixel-b")
    assert [d.device for d in devices] == ["pixel-a", "pixel-b"] and devices[0].name == "android"
    db = tmp_path / "t.db"
    killed = threading.Event()
    fake = farm["fake"]
    assert isinstance(fake, FakeAdb)
    fake.set_run_time(PHONES["pixel-a"], 2000)  # pixel-a is slow: still in its first entry when killed

    def progress(p: object) -> None:
        if getattr(p, "done", 0) >= 2 and not killed.is_set():
            killed.set()
            devices[0].kill()  # pixel-a's worker dies mid-entry; the entry goes back to the queue

    try:
        report = build_table("mobilenetv2", 32, devices, db, limit=6, spec=FAST, remeasure=0,
                             time_per_entry_s=None, progress=progress)
    finally:
        fake.set_run_time(PHONES["pixel-a"], None)
        for d in devices:
            d.kill()  # free the phones' resources for the next test's actors
    assert killed.is_set() and report.written == 6 and report.failed == 0
    assert len(_check_store(db)) == 6
    table = LatencyTable.load(db)
    assert fake.executions(PHONES["pixel-a"])  # it had started measuring...
    assert {e.measured_on for e in table.entries()} == {"pixel-b"}  # ...and pixel-b stored everything
    # Each entry says where it came from: the phone, its worker's host, the runner build that timed it.
    assert {(e.host, e.runner.split(" sha256:")[0]) for e in table.entries()} == {
        (socket.gethostname(), "onnxruntime_perf_test")}  # the fake runner does not tell its version
    host = socket.gethostname()
    assert table.metadata["device_hosts"] == {"pixel-a": host, "pixel-b": host}


def test_driver_killed_with_sigkill_resumes_without_loss_or_duplicates(
        farm: dict[str, object], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "t.db"
    args = ["table", "build", *SPACE_ARGS, "--db", str(db), "--ray", str(farm["address"]), "--device"]
    env = farm["driver_env"]
    assert isinstance(env, dict)
    proc = subprocess.Popen([sys.executable, "-m", "nasprof.cli", *args, "pixel-[ab]", "--limit", "30"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 180
    before: list[str] = []
    while time.monotonic() < deadline and len(before) < 2:
        time.sleep(0.5)
        if db.exists():
            with sqlite3.connect(db) as conn:
                if conn.execute("SELECT name FROM sqlite_master WHERE name = 'entries'").fetchone():
                    before = [k for (k,) in conn.execute("SELECT key FROM entries")]
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert len(before) >= 2
    # pixel-* also matches pixel-c, whose runner is another build: refused, the store untouched.
    monkeypatch.setenv("NASPROF_DEVICES", str(env["NASPROF_DEVICES"]))
    r = cli_runner.invoke(app, [*args, "pixel-*", "--limit", "4"])
    assert r.exit_code == 2 and "runner_sha256" in r.stderr and "\n" not in r.stderr.strip(), r.output
    after_refusal = _check_store(db, claims_left=True)  # the killed driver's, untouched by the refusal
    r = cli_runner.invoke(app, [*args, "pixel-[ab]", "--limit", "3"])  # the same command again: it resumes
    assert r.exit_code == 0, r.output
    after = _check_store(db)
    assert set(before) <= set(after_refusal) <= set(after) and len(after) == len(after_refusal) + 3


def test_a_phone_vanishing_hands_its_entry_to_another(farm: dict[str, object], tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from nasprof.devices.farm import ray_devices
    from nasprof.tables import build_table

    fake = farm["fake"]
    assert isinstance(fake, FakeAdb)
    monkeypatch.setenv("NASPROF_DEVICES", str(tmp_path / "none.toml"))
    devices = ray_devices(str(farm["address"]), "pixel-a,pixel-b")
    fake.unplug_during_run(PHONES["pixel-b"], 1)  # gone in the middle of its second perf_test run
    try:
        report = build_table("mobilenetv2", 32, devices, tmp_path / "t.db", limit=4, spec=FAST, remeasure=0,
                             time_per_entry_s=None)
    finally:
        for name in ("vanish", "vanish_on_exec"):
            (fake.control(PHONES["pixel-b"]) / name).unlink(missing_ok=True)
        for d in devices:
            d.kill()
    assert report.written == 4 and report.failed == 0
    assert len(_check_store(tmp_path / "t.db")) == 4


def test_bad_farm_input_is_one_line_and_touches_nothing(farm: dict[str, object], tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    runner = cli_runner

    def build(*extra: str) -> object:
        return runner.invoke(app, ["table", "build", *SPACE_ARGS, "--db", str(db), "--limit", "1", *extra])

    r = build("--device", "pixel-*", "--ray", f"127.0.0.1:{_free_port()}")
    assert r.exit_code == 2 and "cannot reach the Ray cluster" in r.stderr, r.output
    r = build("--device", "iphone-*", "--ray", str(farm["address"]))
    assert r.exit_code == 2 and "no device on the Ray cluster matches" in r.stderr, r.output
    assert "pixel-a, pixel-b, pixel-c" in r.stderr
    assert not db.exists()


def test_kernel_samples_and_validation_spread_over_the_farm(
        farm: dict[str, object], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Kernel samples and `validate --ray` share the work between the matching phones; a phone vanishing
    mid-validation hands its networks to the other, and a phone with another runner is refused."""
    import json

    import numpy as np

    from nasprof.devices import get_device
    from nasprof.devices.farm import RayDevice, attach, attached, detach
    from nasprof.predictors import LutPredictor
    from nasprof.predictors.kernel.measure import measure_kernels
    from nasprof.predictors.kernel.sampling import sample_kernels
    from nasprof.space import get_space

    fake = farm["fake"]
    assert isinstance(fake, FakeAdb)
    monkeypatch.setenv("NASPROF_DEVICES", str(tmp_path / "none.toml"))
    devices = attach(str(farm["address"]), "pixel-a,pixel-b")
    assert isinstance(get_device("pixel-a"), RayDevice)
    kernels = sample_kernels("conv", 4, np.random.default_rng(0))
    try:
        samples = measure_kernels(kernels, "pixel-a,pixel-b", FAST)
    finally:
        detach(devices)
    assert [s.kernel for s in samples] == kernels and all(s.e2e_ms > 0 for s in samples)
    assert {s.measured_on for s in samples} == {"pixel-a", "pixel-b"}
    assert any("-p" in e["argv"] for e in fake.executions(PHONES["pixel-a"]))  # the profiled pass

    # A table's predictor for pixel-a (entries priced by MACs: what is tested is where networks are measured).
    entries = {layer.key: 0.01 + layer.macs / 1e7 for layer in get_space("mobilenetv2").distinct_layers(32)}
    pred = LutPredictor(entries, space="mobilenetv2", resolution=32, device="pixel-a")
    args = ["validate", "-p", str(pred.save(tmp_path / "p.json")), "--space", "mobilenetv2", "--samples", "4",
            "--runs", "2", "--sessions", "2", "--ray", str(farm["address"]), "--json",
            str(tmp_path / "v.json"), "--device"]
    r = cli_runner.invoke(app, [*args, "pixel-*"])
    assert r.exit_code == 2 and "runner_sha256" in r.stderr and "\n" not in r.stderr.strip(), r.output
    before = len(fake.executions(PHONES["pixel-b"]))
    fake.unplug_during_run(PHONES["pixel-b"], 1)  # gone in the middle of its second perf_test run
    try:
        r = cli_runner.invoke(app, [*args, "pixel-[ab]"])
    finally:
        for name in ("vanish", "vanish_on_exec"):
            (fake.control(PHONES["pixel-b"]) / name).unlink(missing_ok=True)
    assert r.exit_code == 0, r.output
    assert attached("pixel-a") is None and attached("pixel-b") is None  # actors freed when it ended
    rows = json.loads((tmp_path / "v.json").read_text())["rows"]
    assert len(rows) == 4 and all(row["measured_ms"] > 0 for row in rows)
    assert len(fake.executions(PHONES["pixel-b"])) > before  # pixel-b had started its share...
    assert {row["measured_on"] for row in rows} == {"pixel-a"}  # ...which pixel-a measured in full
