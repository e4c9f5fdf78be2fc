"""The ``ssh`` backend against a real OpenSSH server on loopback (``ssh_server.SshServer``).

Real parts throughout: OpenSSH's ``sshd`` and ``ssh`` client with a multiplexed connection, the runner shipped
to the "board" (this host, with this interpreter as the board's Python), onnxruntime there, the table
builder and SQLite. Parsers of what a board reports are tested on text. Skips with one reason where sshd
cannot run (not installed).
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import make_conv_model
from typer.testing import CliRunner

from nasprof.cli import app
from nasprof.devices.base import Backend, MeasureSpec
from nasprof.devices.ssh import (
    SshBackend,
    SshSettings,
    board_checks,
    board_runner,
    classify_ssh_failure,
    parse_cpuinfo,
)
from nasprof.devices.ssh import backend as ssh_backend
from nasprof.devices.ssh.session import BoardSession
from nasprof.devices.ssh.transport import remote_path
from nasprof.errors import DeviceError, DeviceUnavailableError, InputError
from nasprof.testing.backend_contract import BackendContract

sys.path.insert(0, str(Path(__file__).parent))
from ssh_server import SshServer, free_port, keygen, unavailable_reason  # noqa: E402

_REASON = unavailable_reason()
if _REASON is not None:  # pragma: no cover - CI installs openssh-server (.ci/run)
    pytest.skip(f"no loopback SSH server: {_REASON}", allow_module_level=True)

cli = CliRunner()
FAST = MeasureSpec(warmup=1, runs=5, sessions=2, per_node_runs=2)
#: What the CLI builds below ask for (--warmup 1 --runs 2 --sessions 1 --target-ci 0).
TINY = MeasureSpec(warmup=1, runs=2, sessions=1)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    with SshServer(tmp_path_factory.mktemp("ssh")) as srv:
        yield srv


@pytest.fixture
def boards(server: SshServer) -> Iterator[Any]:
    """``boards(**settings)`` -> an ``SshBackend`` on the loopback server; every one is closed afterwards
    (its measuring server stopped, its connection ended)."""
    made: list[SshBackend] = []

    def make(name: str = "pi", **extra: Any) -> SshBackend:
        b = SshBackend(name, **server.device_options(**extra))
        made.append(b)
        return b

    yield make
    for b in made:
        b.close()


def gone(pid: int, within_s: float = 10.0) -> bool:
    """True once process ``pid`` (on the "board": this host) has ended, waiting up to ``within_s``."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return True
        if stat[stat.rfind(")") + 2] == "Z":
            return True
        time.sleep(0.05)
    return False


def refused(args: list[str], contains: str) -> str:
    """Run the CLI; assert exit 2, a one-line error (after any progress lines), no traceback."""
    r = cli.invoke(app, args)
    assert r.exit_code == 2, r.output
    lines = r.stderr.strip().splitlines()
    assert lines and lines[-1].startswith("error:") and "Traceback" not in r.output, r.stderr
    assert not any(line.startswith("error:") for line in lines[:-1]), r.stderr
    assert contains in lines[-1], lines[-1]
    return lines[-1]


# -- parsers and settings (no connection) -------------------------------------------------------------------
PI5_CPUINFO = "".join(
    f"processor\t: {i}\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics "
    "fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp\nCPU implementer\t: 0x41\nCPU architecture: 8\n"
    "CPU variant\t: 0x4\nCPU part\t: 0xd0b\nCPU revision\t: 1\n\n" for i in range(4)
) + "Revision\t: d04170\nSerial\t\t: 1a2b\nModel\t\t: Raspberry Pi 5 Model B Rev 1.0\n"


def test_cpuinfo_names_cores_flags_and_board() -> None:
    pi = parse_cpuinfo(PI5_CPUINFO)
    assert pi["cpu_model"] == "4x Cortex-A76" and pi["board_model"] == "Raspberry Pi 5 Model B Rev 1.0"
    assert {"asimd", "asimddp"} <= set(pi["flags"]) and pi["cores"] == {0: "Cortex-A76", 1: "Cortex-A76",
                                                                        2: "Cortex-A76", 3: "Cortex-A76"}
    # big.LITTLE (RK3588: 4x A55 + 4x A76) and x86.
    rk = PI5_CPUINFO.replace("0xd0b", "0xd05", 2)
    assert parse_cpuinfo(rk)["cpu_model"] == "2x Cortex-A55 + 2x Cortex-A76"
    x86 = parse_cpuinfo("processor\t: 0\nmodel name\t: AMD EPYC 7B13\nflags\t\t: fpu sse4_2 avx2 fma\n")
    assert x86["cpu_model"] == "AMD EPYC 7B13" and "avx2" in x86["flags"]


def test_readiness_reads_throttling_governors_and_load() -> None:
    raw = {"cpus": [0, 1], "cpu_count": 2, "window_s": 0.5, "load_average": [3.5, 1, 1],
           "cpufreq": {"0": {"governor": "ondemand", "scaling_max_freq": 1500000,
                             "cpuinfo_max_freq": 2400000},
                       "1": {"governor": "performance", "scaling_max_freq": 2400000,
                             "cpuinfo_max_freq": 2400000}},
           "throttled": "throttled=0x50005", "thermal_zones": [["cpu-thermal", 85.2]],
           "stat_before": "cpu  100 0 100 800 0 0 0 0", "stat_after": "cpu  200 0 200 800 0 0 0 0",
           "busy_processes": [["stress", 42, 1.0]]}
    checks = {c.name.split(": ", 1)[1]: c for c in board_checks(raw, "pi")}
    assert checks["throttling"].status == "warn" and "under-voltage" in checks["throttling"].value
    assert "throttled" in checks["throttling"].value and "has occurred" in checks["throttling"].value
    governor = checks["cpu governor"]
    assert governor.status == "warn" and "cpufreq/scaling_governor" in governor.advice
    assert checks["frequency limits"].value == "cpu0 1500/2400 MHz"
    assert checks["thermal"].status == "warn" and checks["cpu busy"].status == "warn"
    assert checks["load average"].status == "warn" and "stress (pid 42" in checks["busy processes"].value
    quiet = board_checks({"cpus": [0], "throttled": "throttled=0x0", "cpufreq": {}}, "pi")
    assert {c.name: c.status for c in quiet}["pi: throttling"] == "ok"
    assert {c.name: c.status for c in quiet}["pi: cpu governor"] == "unknown"


def test_ssh_failures_read_as_one_line_with_what_to_do() -> None:
    s = SshSettings.from_config({"host": "pi@pi5.local", "port": 2222})
    cases = {
        "No ED25519 host key is known for [pi5.local]:2222 and you have requested strict checking.\r\n"
        "Host key verification failed.\r\n": "ssh-keyscan -p 2222 pi5.local >> ~/.ssh/known_hosts",
        "@@@ WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED! @@@\nHost key verification failed.": "CHANGED",
        "pi@pi5.local: Permission denied (publickey).": "ssh-copy-id pi@pi5.local",
        "ssh: connect to host pi5.local port 2222: Connection refused": "cannot reach",
        "ssh: Could not resolve hostname pi5.local: Name or service not known": "cannot resolve",
        "": "lost the connection",
    }
    for stderr, expected in cases.items():
        msg = classify_ssh_failure(stderr, s, "pi", "connecting" if "refused" in stderr else "measuring x")
        assert expected in msg and "\n" not in msg, (stderr, msg)
    assert remote_path("~/.cache/a b") == "\"$HOME\"/'.cache/a b'" and remote_path("/x;rm") == "'/x;rm'"


def test_settings_are_checked_when_the_device_is_added(tmp_path: Path) -> None:
    for bad, contains in [({"host": "-oProxyCommand=touch /tmp/x"}, "not an SSH destination"),
                          ({"host": "pi", "port": 0}, "port"),
                          ({"host": "pi", "cache_dir": "rel"}, "absolute"),
                          ({"host": "pi", "cache_dir": "/home/"}, "of its own"),
                          ({"host": "pi", "hots": 1}, "hots"),
                          ({"host": "pi", "identity": str(tmp_path / "missing")}, "does not exist")]:
        with pytest.raises(InputError, match=contains):
            SshBackend("pi", **bad)
    ok, reason = SshBackend("pi").available()
    assert not ok and "--set host=user@board" in reason


def test_runner_mirrors_nasprof_statistics_and_inputs() -> None:
    """The standalone runner's copies of median_ci and random_inputs agree with nasprof's own."""
    from nasprof.profiler.onnx_model import InputSpec, random_inputs
    from nasprof.profiler.stats import median_ci

    rng = np.random.default_rng(1)
    for n in (1, 2, 7, 30, 201):
        x = list(rng.lognormal(size=n))
        assert board_runner.median_ci(x) == median_ci(x)
    specs = (InputSpec("x", "float32", (1, 3, 4, 4), (1, 3, 4, 4)), InputSpec("i", "int64", (2, 3), (2, 3)),
             InputSpec("b", "bool", (5,), (5,)))
    ours = random_inputs(specs, seed=3, int_range=(0, 7))
    theirs = board_runner.random_inputs(np, [{"name": s.name, "dtype": s.dtype, "shape": list(s.shape)}
                                             for s in specs], 3, [0, 7])
    assert all(np.array_equal(ours[k], theirs[k]) and ours[k].dtype == theirs[k].dtype for k in ours)
    # Standalone: the standard library, onnxruntime and numpy only; Python 3.8 syntax (JetPack 5).
    import ast

    tree = ast.parse(Path(board_runner.__file__).read_text(), feature_version=(3, 8))
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module and node.level == 0}
    assert imported - set(sys.stdlib_module_names) == {"numpy", "onnxruntime"}


# -- the shared contract, over a real SSH connection --------------------------------------------------------
@pytest.fixture(scope="module")
def contract_board(server: SshServer) -> Iterator[SshBackend]:
    b = SshBackend("contract", **server.device_options())
    yield b
    b.close()


class TestSshContract(BackendContract):
    @pytest.fixture
    def backend(self, contract_board: SshBackend) -> Backend:
        return contract_board


# -- shipping, caching, fidelity ----------------------------------------------------------------------------
def test_model_is_shipped_once_and_cached_by_content(boards: Any, server: SshServer, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    model = make_conv_model(tmp_path / "m.onnx", channels=6)
    first = boards("pi-cache")
    m1 = first.measure(model, FAST)
    cached = server.cache / "models" / f"{m1.metadata['model_sha256']}.onnx"
    assert m1.metadata["model_uploaded"] and cached.read_bytes() == model.read_bytes()
    assert list(server.cache.glob("board_runner_*.py")) and not list(server.cache.rglob("*.part-*"))
    mtime, uploads = cached.stat().st_mtime_ns, first.transport.uploads
    m2 = first.measure(model, FAST)
    assert not m2.metadata["model_uploaded"] and first.transport.uploads == uploads
    # Known to be there: the request alone, over the open session (no ssh process started).
    assert m2.metadata["ssh_calls"] == 0 and m2.metadata["board_session"]
    # Another process (a new connection) finds it there too: the copy that travelled with its measuring
    # call is read and dropped, the cached file is not written again.
    second = boards("pi-cache2")
    again = second.measure(model, FAST)
    assert not again.metadata["model_uploaded"] and cached.stat().st_mtime_ns == mtime
    # A model too large to travel with the request is asked for first, and not sent at all.
    monkeypatch.setattr(ssh_backend, "INLINE_SHIP_BYTES", 0)
    third = boards("pi-cache3")
    third.measure(model, FAST)
    assert third.transport.uploads == 0 and cached.stat().st_mtime_ns == mtime
    per_call = boards("pi-cache4")  # the same, one ssh call per measurement
    per_call.use_session = False
    assert not per_call.measure(model, FAST).metadata["board_session"]
    assert per_call.transport.uploads == 0 and cached.stat().st_mtime_ns == mtime
    # A cached file that is not what its name says (edited, truncated) is replaced, not measured.
    cached.write_bytes(b"garbage")
    healed = first.measure(model, FAST)
    assert healed.metadata["model_uploaded"] and cached.read_bytes() == model.read_bytes()
    # One master connection per device, its ControlPath in a private directory.
    pid = first.transport.master_pid()
    assert pid is not None and pid != second.transport.master_pid()


# -- the session: one ssh process and one board process per backend ---------------------------------------
def test_many_measurements_over_one_session(boards: Any, tmp_path: Path) -> None:
    b = boards("pi-session")
    b.measure(make_conv_model(tmp_path / "first.onnx"), FAST)  # connects, ships the runner, opens the session
    session = b.session
    assert session is not None and session.requests == 1
    calls = b.transport.calls
    models = [make_conv_model(tmp_path / f"m{c}.onnx", channels=c, size=12) for c in range(2, 8)]  # new here
    runs = [b.measure(m, FAST) for m in [*models, *models]]
    # Twelve measurements, six models shipped in the stream: not one more ssh process, one board process
    # (onnxruntime imported once), every model stored.
    assert b.transport.calls == calls and b.session is session and session.requests == 13
    assert {m.metadata["board_pid"] for m in runs} == {session.board_pid}
    assert all(m.metadata["ssh_calls"] == 0 and m.metadata["board_session"] and m.n == 10 for m in runs)
    assert [m.metadata["model_uploaded"] for m in runs] == [True] * 6 + [False] * 6
    # close() ends the board's process and the ssh one; the next measurement opens a new session.
    b.close()
    assert gone(session.board_pid) and not session.alive()
    again = b.measure(models[0], FAST)
    assert again.metadata["board_pid"] not in (None, session.board_pid)
    # A session left idle for server_idle_s ends on the board; the next measurement opens another.
    idle = boards("pi-idle", server_idle_s=1)
    first = idle.measure(models[0], FAST).metadata["board_pid"]
    assert gone(first, within_s=5)
    assert idle.measure(models[0], FAST).metadata["board_pid"] != first
    # Sessions off (server_idle_s=0): an ssh call and a fresh Python per measurement, the same results.
    fresh = boards("pi-fresh", server_idle_s=0)
    fresh.measure(models[0], FAST)
    m = fresh.measure(models[0], FAST)
    assert fresh.session is None and not m.metadata["board_session"] and m.metadata["ssh_calls"] == 1


def test_a_board_that_cannot_start_a_session_measures_call_by_call(boards: Any, tmp_path: Path) -> None:
    no_session = tmp_path / "python-without-session"
    # The board's Python refuses the runner's session (an old runner, a wrapper): call by call instead.
    no_session.write_text(f'#!/bin/sh\ncase "$*" in *" session --idle "*) exit 3;; esac\n'
                          f'exec {sys.executable} "$@"\n')
    no_session.chmod(0o755)
    b = boards("pi-no-session", python=str(no_session))
    model = make_conv_model(tmp_path / "m.onnx")
    b.measure(model, FAST)
    m = b.measure(model, FAST)
    assert b.session is None and not m.metadata["board_session"] and m.metadata["ssh_calls"] == 1
    assert m.n == 10
    assert any("no session could start" in w for w in m.metadata["host_warnings"])


def test_answers_and_models_larger_than_a_pipe_buffer(boards: Any, server: SshServer, tmp_path: Path) -> None:
    b = boards("pi-large")
    b.measure(make_conv_model(tmp_path / "small.onnx"), FAST)
    session = b.session
    assert session is not None
    sent, received = session.sent_bytes, session.received_bytes
    model = make_conv_model(tmp_path / "wide.onnx", channels=96, size=8)  # ~330 kB of weights
    m = b.measure(model, MeasureSpec(warmup=1, runs=2, sessions=1, per_node=True, per_node_runs=100))
    # Several pipe buffers (64 KiB) each way: the model in, onnxruntime's profile events out.
    assert session.sent_bytes - sent > model.stat().st_size > 4 * 65536
    assert session.received_bytes - received > 4 * 65536
    assert (server.cache / "models" / f"{m.metadata['model_sha256']}.onnx").read_bytes() == model.read_bytes()
    assert {"blocks.0", "blocks.1"} <= {n.block for n in m.per_node or ()} and b.session is session


def test_killing_the_session_ssh_process_mid_measurement(boards: Any, tmp_path: Path) -> None:
    model = make_conv_model(tmp_path / "m.onnx", channels=16, size=32)
    b = boards("pi-kill")
    b.measure(model, FAST)
    session = b.session
    assert session is not None
    timer = threading.Timer(0.4, os.kill, (session.ssh_pid, signal.SIGKILL))
    timer.start()
    t0 = time.perf_counter()
    try:
        with pytest.raises(DeviceUnavailableError, match="lost the connection") as info:
            b.measure(model, MeasureSpec(warmup=1, runs=1000, sessions=100))  # seconds, not 0.4 s
    finally:
        timer.join()
    assert "\n" not in str(info.value) and "nothing was recorded" in str(info.value)
    assert time.perf_counter() - t0 < 10 and b.session is None
    assert gone(session.board_pid)  # the orphaned measurement stops at its next session boundary
    m = b.measure(model, FAST)  # the next measurement opens a new session
    assert m.n == 10 and m.metadata["ssh_calls"] == 1 and m.metadata["board_pid"] != session.board_pid


def test_a_board_that_stops_answering_times_out(boards: Any, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    model = make_conv_model(tmp_path / "m.onnx", channels=16, size=32)
    # The board's own alarm: a measurement past run_timeout_s ends there, read as "ran out of time" (a
    # failed entry in a table build), and the next measurement opens a new session.
    slow = boards("pi-slow", run_timeout_s=1)
    slow.measure(model, FAST)
    with pytest.raises(DeviceError, match=r"ran out of time .*run_timeout_s=1\b"):
        slow.measure(model, MeasureSpec(warmup=1, runs=1000, sessions=100))
    assert slow.measure(model, FAST).n == 10
    # A board that stops answering at all (its runner frozen): the host gives up after run_timeout_s and a
    # margin (shortened here), with one line; nothing hangs.
    hung = boards("pi-hung", run_timeout_s=2)
    hung.measure(model, FAST)
    assert hung.session is not None and hung.session.board_pid is not None
    pid = hung.session.board_pid
    monkeypatch.setattr(ssh_backend, "ANSWER_MARGIN_S", 0.5)
    os.kill(pid, signal.SIGSTOP)
    t0 = time.perf_counter()
    try:
        with pytest.raises(DeviceUnavailableError, match="did not finish measuring m.onnx within 2.5 s"
                           ) as info:
            hung.measure(model, FAST)
    finally:
        os.kill(pid, signal.SIGKILL)
    assert time.perf_counter() - t0 < 6 and "\n" not in str(info.value) and "nothing was recorded" in str(
        info.value)
    assert hung.measure(model, FAST).metadata["board_pid"] != pid


def test_latency_matches_the_local_cpu_backend(boards: Any, tmp_path: Path) -> None:
    """Same model, same protocol: loopback SSH and the local cpu backend agree within noise (interleaved;
    a loose 2x bound: the host is shared and noisy)."""
    from nasprof.devices import get_device

    model = make_conv_model(tmp_path / "wide.onnx", channels=32, size=32, blocks=3)
    spec = MeasureSpec(warmup=5, runs=30, sessions=2)
    ssh, cpu = boards("pi-fidelity"), get_device("cpu")
    medians: dict[str, list[float]] = {"ssh": [], "cpu": []}
    for _ in range(2):
        medians["ssh"].append(ssh.measure(model, spec).median_ms)
        medians["cpu"].append(cpu.measure(model, spec).median_ms)
    ratio = float(np.median(medians["ssh"]) / np.median(medians["cpu"]))
    assert 0.5 < ratio < 2.0, medians


def test_pinned_cores_and_threads(boards: Any, tmp_path: Path) -> None:
    model = make_conv_model(tmp_path / "m.onnx")
    pinned = boards("pi-pin", cores="0x1")
    m = pinned.measure(model, FAST)
    assert m.metadata["affinity"] == [0] and m.metadata["usable_cores"] == 1
    with pytest.raises(InputError, match="more than the 1 cores"):
        pinned.measure(model, replace(FAST, threads=2))
    with pytest.raises(InputError, match="does not understand"):
        pinned.measure(model, replace(FAST, options={"runs_per_sample": 3}))


def test_adaptive_repetition_stops_as_the_cpu_backend_does(boards: Any, tmp_path: Path) -> None:
    from nasprof.devices import get_device

    model = make_conv_model(tmp_path / "m.onnx")
    spec = MeasureSpec(warmup=1, runs=5, sessions=2, target_rel_ci=1e-9, max_runs=23)
    board, local = boards("pi-adaptive").measure(model, spec), get_device("cpu").measure(model, spec)
    for m in (board, local):
        assert m.n == 23 and m.metadata["stopped_by"] == "max_runs" and m.metadata["sessions"] == 5
    assert board.session_index == local.session_index


def test_describe_and_readiness_over_ssh(boards: Any) -> None:
    b = boards("pi-info")
    info = b.describe()
    import onnxruntime

    assert info["runtime_version"] == onnxruntime.__version__ and info["host"].endswith("127.0.0.1")
    assert info["cpu_model"] and info["clusters"] and info["pinned_cpus"]
    names = {c.name for c in b.readiness()}
    assert {"pi-info: throttling", "pi-info: load average", "pi-info: onnxruntime"} <= names


# -- commands, end to end -----------------------------------------------------------------------------------
def test_commands_on_a_board(server: SshServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NASPROF_DEVICES", str(tmp_path / "devices.toml"))
    r = cli.invoke(app, ["devices", "add", "pi5", "--backend", "ssh", *server.set_args()])
    assert r.exit_code == 0, r.output
    r = cli.invoke(app, ["devices", "check", "pi5", "--json", "-"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["backend"] == "ssh"
    r = cli.invoke(app, ["doctor", "--device", "pi5", "--window", "0.05", "--json", "-"])
    assert r.exit_code == 0, r.output
    assert "pi5: throttling" in {c["name"] for c in json.loads(r.stdout)["checks"]}
    model = make_conv_model(tmp_path / "m.onnx")
    for out in ("a.json", "b.json"):
        r = cli.invoke(app, ["measure", str(model), "--device", "pi5", "--per-node", "--warmup", "2",
                             "--runs", "10", "--sessions", "2", "--json", str(tmp_path / out)])
        assert r.exit_code == 0, r.output
    doc = json.loads((tmp_path / "a.json").read_text())
    assert doc["backend"] == "ssh" and doc["n"] == 20 and {"blocks.0", "blocks.1"} <= {
        n["block"] for n in doc["per_node"]}
    r = cli.invoke(app, ["compare", str(tmp_path / "a.json"), str(tmp_path / "b.json")])
    assert r.exit_code == 0, r.output


def test_table_build_shared_by_two_boards_then_validate(server: SshServer, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from nasprof.predictors.lut.predictor import LutPredictor
    from nasprof.space import get_space
    from nasprof.tables import LatencyTable, build_table

    monkeypatch.setenv("NASPROF_DEVICES", str(tmp_path / "devices.toml"))
    for name in ("pi-a", "pi-b"):
        r = cli.invoke(app, ["devices", "add", name, "--backend", "ssh", *server.set_args()])
        assert r.exit_code == 0, r.output
    db = tmp_path / "t.db"
    # As `table build --device pi-a,pi-b` (export in this process: the CLI's export child would import torch
    # once more; the CLI itself builds on a board in the reboot test below).
    report = build_table("mobilenetv2", 32, "pi-a,pi-b", db, limit=6, spec=TINY, remeasure=0, export_jobs=0)
    assert report.devices == ("pi-a", "pi-b") and report.written == 6
    entries = list(LatencyTable.load(db).entries())
    assert len(entries) == 6 and all(e.ok for e in entries)
    assert {e.measured_on for e in entries} <= {"pi-a", "pi-b"} and all(e.host for e in entries)
    # validate on the board: sampled networks measured end to end there (entries priced by MACs).
    prices = {layer.key: 0.01 + layer.macs / 1e7 for layer in get_space("mobilenetv2").distinct_layers(32)}
    pred = LutPredictor(prices, space="mobilenetv2", resolution=32, device="pi-a").save(tmp_path / "p.json")
    r = cli.invoke(app, ["validate", "-p", str(pred), "--space", "mobilenetv2", "--samples", "2", "--runs",
                         "2", "--sessions", "2", "--device", "pi-a", "--json", str(tmp_path / "v.json")])
    assert r.exit_code == 0, r.output
    rows = json.loads((tmp_path / "v.json").read_text())["rows"]
    assert len(rows) == 2 and all(row["measured_ms"] > 0 for row in rows)


# -- a connection that drops ---------------------------------------------------------------------------
def test_connection_dropped_mid_measurement(boards: Any, server: SshServer, tmp_path: Path) -> None:
    model = make_conv_model(tmp_path / "m.onnx", channels=16, size=32)
    b = boards("pi-drop")
    b.measure(model, FAST)  # connected, runner and model shipped, measuring server up
    timer = threading.Timer(0.4, server.drop_connections)
    timer.start()
    t0 = time.perf_counter()
    try:
        with pytest.raises(DeviceUnavailableError, match="lost the connection") as info:
            b.measure(model, MeasureSpec(warmup=1, runs=1000, sessions=100))  # seconds, not 0.4 s
    finally:
        timer.join()
    assert "\n" not in str(info.value) and "nothing was recorded" in str(info.value)
    assert time.perf_counter() - t0 < 10
    assert b.measure(model, FAST).n == 10  # the next call opens a new connection


@pytest.mark.parametrize("failure", ["board down", "ssh killed"])
def test_failure_mid_build_loses_nothing_and_resumes(server: SshServer, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch, failure: str) -> None:
    from nasprof.tables import LatencyTable, build_table

    monkeypatch.setenv("NASPROF_DEVICES", str(tmp_path / "devices.toml"))
    assert cli.invoke(app, ["devices", "add", "pi", "--backend", "ssh", *server.set_args()]).exit_code == 0
    real_request = BoardSession.request
    measured = [0]

    def request(self: BoardSession, header: dict[str, Any], **kw: Any) -> Any:
        measured[0] += 1
        if measured[0] == 3 and failure == "board down":  # sshd and every session killed before the entry
            server.stop()
        elif measured[0] == 3:
            # The session's ssh process killed on this host while the board measures the third entry (made
            # long here). The connection's master holds the session's pipes and drops them once it sees its
            # client gone: an answer already on its way may still arrive, one still being measured does not.
            header = {**header, "request": {**header["request"], "runs": 100_000}}
            threading.Timer(0.3, os.kill, (self.ssh_pid, signal.SIGKILL)).start()
        return real_request(self, header, **kw)

    monkeypatch.setattr(BoardSession, "request", request)
    db = tmp_path / "t.db"

    build = ["table", "build", "--space", "mobilenetv2", "--resolution", "32", "--db", str(db), "--device",
             "pi", "--limit", "5", "--warmup", "1", "--runs", "2", "--sessions", "1", "--target-ci", "0",
             "--remeasure", "0"]
    try:
        refused(build, "nothing was recorded")
    finally:
        if server.proc is None:
            server.start()
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("SELECT COUNT(*) FROM claims").fetchone() == (0,)
    finally:
        conn.close()
    entries = list(LatencyTable.load(db).entries())
    assert len(entries) == 2 and all(e.ok for e in entries)  # nothing half-written, no failed entry
    assert measured[0] == 3  # two entries, then the one that failed, over one session
    monkeypatch.setattr(BoardSession, "request", real_request)
    report = build_table("mobilenetv2", 32, "pi", db, limit=3, spec=TINY, remeasure=0, export_jobs=0)
    assert (report.written, report.failed, report.already_done) == (3, 0, 2)
    entries = list(LatencyTable.load(db).entries())
    assert len(entries) == 5 and all(e.ok for e in entries)


# -- bad input: one line, exit 2, nothing lost -----------------------------------------------------------
def test_refusals_say_what_to_do(server: SshServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NASPROF_DEVICES", str(tmp_path / "devices.toml"))
    model = make_conv_model(tmp_path / "m.onnx")
    empty = tmp_path / "known_hosts_empty"
    empty.write_text("")
    no_ort = tmp_path / "python-without-onnxruntime"
    no_ort.write_text(f"#!/bin/sh\nexec {sys.executable} -S \"$@\"\n")  # -S: no site-packages
    no_ort.chmod(0o755)
    devices = {
        "unreachable": server.set_args(port=free_port()),
        "refused-key": server.set_args(identity=str(keygen(tmp_path / "stranger"))),
        "unknown-key": server.set_args(known_hosts=str(empty)),
        "changed-key": server.set_args(known_hosts=str(server.wrong_known_hosts())),
        "no-ort": server.set_args(python=str(no_ort)),
        "disk-full": server.set_args(cache_dir="/proc/nasprof-cache"),
        # The runner can be stored there, models cannot (their directory's name is taken by a file).
        "models-unwritable": server.set_args(cache_dir=str(tmp_path / "board-cache")),
        "ok": server.set_args(),
    }
    (tmp_path / "board-cache").mkdir()
    (tmp_path / "board-cache" / "models").write_text("not a directory")
    for name, settings in devices.items():
        assert cli.invoke(app, ["devices", "add", name, "--backend", "ssh", *settings]).exit_code == 0
    measure = ["measure", str(model), "--runs", "2", "--sessions", "1", "--device"]
    refused([*measure, "unreachable"], "cannot reach")
    refused([*measure, "refused-key"], "ssh-copy-id")
    err = refused([*measure, "unknown-key"], "never accepts an unknown key")
    assert f"ssh-keyscan -p {server.port} 127.0.0.1 >> {empty}" in err and empty.read_text() == ""
    refused([*measure, "changed-key"], "has CHANGED")
    refused([*measure, "no-ort"], "-m pip install onnxruntime numpy")
    refused([*measure, "disk-full"], "free space on the board")
    refused(["doctor", "--device", "unknown-key"], "never accepts an unknown key")
    # A table build on a full board: refused before any entry; the table keeps what it had.
    from nasprof.tables import LatencyTable, build_table

    db = tmp_path / "t.db"
    report = build_table("mobilenetv2", 32, "ok", db, limit=1, spec=TINY, remeasure=0, export_jobs=0)
    assert report.written == 1
    for device in ("disk-full", "models-unwritable"):
        refused(["table", "build", "--space", "mobilenetv2", "--resolution", "32", "--db", str(db), "--limit",
                 "1", "--device", device], "free space on the board")
    assert [e.ok for e in LatencyTable.load(db).entries()] == [True]
