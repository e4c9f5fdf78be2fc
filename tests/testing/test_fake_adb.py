"""The fake adb server, driven by the REAL adb client binary (the one in the adbutils wheel)."""

from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from nasprof.devices.android.adb import find_adb
from nasprof.errors import DeviceUnavailableError
from nasprof.testing._fake_shell import ShellSyntaxError, parse
from nasprof.testing.fake_adb import FakeAdb

try:
    ADB = str(find_adb())
except DeviceUnavailableError as exc:  # pragma: no cover - adbutils is a dependency
    pytest.skip(f"no adb client binary: {exc}", allow_module_level=True)

SERIALS = ("PHONE_A", "PHONE_B", "GONE_1", "GONE_2")


@pytest.fixture(scope="module")
def fake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeAdb]:
    with FakeAdb(tmp_path_factory.mktemp("fakeadb"), SERIALS) as server:
        yield server


def adb(fake: FakeAdb, *args: str) -> subprocess.CompletedProcess[str]:
    # -L tcp:127.0.0.1:PORT: the client never starts a real adb server in its place.
    return subprocess.run([ADB, "-L", fake.server, *args], capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL, check=False)


def test_devices_lists_every_serial(fake: FakeAdb) -> None:
    out = adb(fake, "devices")
    assert out.returncode == 0
    rows = [line.split("\t") for line in out.stdout.splitlines()[1:] if line]
    assert rows == [[s, "device"] for s in SERIALS]
    long = adb(fake, "devices", "-l").stdout
    assert "model:Fake_Pixel" in long and "transport_id:2" in long


def test_client_port_variable_reaches_the_server(fake: FakeAdb) -> None:
    env = {**os.environ, "ANDROID_ADB_SERVER_PORT": str(fake.port)}
    out = subprocess.run([ADB, "devices"], capture_output=True, text=True, timeout=60, env=env, check=False)
    assert out.returncode == 0 and "PHONE_A\tdevice" in out.stdout


def test_shell_v2_separates_streams_and_returns_exit_code(fake: FakeAdb) -> None:
    out = adb(fake, "-s", "PHONE_A", "shell", "echo hi; cat /nope; exit 3")
    assert out.returncode == 3
    assert out.stdout == "hi\n"
    assert out.stderr == "cat: /nope: No such file or directory\n"


def test_requests_the_real_client_sends(fake: FakeAdb) -> None:
    adb(fake, "-s", "PHONE_B", "shell", "true")
    log = fake.requests()
    assert "host:version" in log
    assert "host-serial:PHONE_B:features" in log
    assert "host:tport:serial:PHONE_B" in log
    assert "shell,v2,TERM=xterm,raw:true" in log


def test_quoted_words_stay_single_arguments(fake: FakeAdb) -> None:
    hostile = "x; rm -rf / && echo pwned"
    out = adb(fake, "-s", "PHONE_A", "shell", f"echo {shlex.quote(hostile)}")
    assert (out.returncode, out.stdout) == (0, hostile + "\n")


def test_mkdir_and_ls_with_a_space(fake: FakeAdb) -> None:
    d = "/data/local/tmp/with space/sub"
    out = adb(fake, "-s", "PHONE_A", "shell", f"mkdir -p {shlex.quote(d)} && ls /data/local/tmp")
    assert out.returncode == 0
    assert "with space" in out.stdout.splitlines()
    assert fake.device_path("PHONE_A", d).is_dir()


def test_push_pull_roundtrip_keeps_bytes_and_mode(fake: FakeAdb, tmp_path: Path) -> None:
    local = tmp_path / "big file.bin"
    payload = os.urandom(200_000)  # > 3 sync DATA chunks of 64 KiB
    local.write_bytes(payload)
    local.chmod(0o755)
    remote = "/data/local/tmp/dir with space/big file.bin"
    assert adb(fake, "-s", "PHONE_A", "push", str(local), remote).returncode == 0
    on_device = fake.device_path("PHONE_A", remote)
    assert on_device.read_bytes() == payload
    assert on_device.stat().st_mode & 0o777 == 0o755
    back = tmp_path / "back.bin"
    assert adb(fake, "-s", "PHONE_A", "pull", remote, str(back)).returncode == 0
    assert back.read_bytes() == payload
    log = fake.requests()
    assert f"sync SEND {remote},{0o100755}" in log  # v1 SEND: no v2 feature is advertised
    assert f"sync STAT {remote}" in log


def test_pull_of_a_missing_file_fails(fake: FakeAdb, tmp_path: Path) -> None:
    out = adb(fake, "-s", "PHONE_A", "pull", "/data/local/tmp/absent", str(tmp_path / "x"))
    assert out.returncode == 1
    assert "does not exist" in out.stderr


def test_unknown_serial_is_refused(fake: FakeAdb) -> None:
    out = adb(fake, "-s", "NOT_THERE", "shell", "true")
    assert out.returncode == 1
    assert "device 'NOT_THERE' not found" in out.stderr


def test_sandbox_cannot_be_escaped(fake: FakeAdb) -> None:
    (fake.root / "host-secret.txt").write_text("secret\n")  # beside the device's sandbox, on the host
    out = adb(fake, "-s", "PHONE_A", "shell", "cat /../host-secret.txt ../../host-secret.txt")
    assert out.returncode == 1 and out.stdout == ""


def test_unsupported_syntax_is_a_shell_error(fake: FakeAdb) -> None:
    out = adb(fake, "-s", "PHONE_A", "shell", "ls | cat")
    assert out.returncode == 2
    assert "not supported" in out.stderr


def test_properties_cpu_files_and_thermal_schedule(fake: FakeAdb) -> None:
    assert adb(fake, "-s", "PHONE_B", "shell", "getprop ro.product.cpu.abi").stdout == "arm64-v8a\n"
    freq = adb(fake, "-s", "PHONE_B", "shell", "cat /sys/devices/system/cpu/cpu7/cpufreq/cpuinfo_max_freq")
    assert freq.stdout == "2400000\n"
    fake.set_thermal("PHONE_B", 2, 0)
    first = adb(fake, "-s", "PHONE_B", "shell", "dumpsys thermalservice").stdout
    second = adb(fake, "-s", "PHONE_B", "shell", "dumpsys thermalservice").stdout
    assert "Thermal Status: 2" in first and "Thermal Status: 0" in second


def test_unplugged_device_disappears(fake: FakeAdb) -> None:
    fake.unplug("GONE_1")
    assert "GONE_1" not in adb(fake, "devices").stdout
    out = adb(fake, "-s", "GONE_1", "shell", "true")
    assert out.returncode == 1 and "not found" in out.stderr


def test_device_vanishing_mid_command(fake: FakeAdb) -> None:
    fake.unplug_after("GONE_2", 1)
    assert adb(fake, "-s", "GONE_2", "shell", "echo one").stdout == "one\n"
    out = adb(fake, "-s", "GONE_2", "shell", "echo two")
    # The client sees the connection drop without an exit status: 255 and no output.
    assert (out.returncode, out.stdout) == (255, "")
    assert "GONE_2" not in adb(fake, "devices").stdout


def test_server_stops_when_idle(tmp_path: Path) -> None:
    server = FakeAdb(tmp_path, ["IDLE"], idle_timeout_s=0.3).start()
    try:
        assert server.proc is not None
        assert server.proc.wait(timeout=20) == 0
    finally:
        server.stop()


def test_kill_server_stops_it(tmp_path: Path) -> None:
    with FakeAdb(tmp_path, ["K"]) as server:
        adb(server, "kill-server")
        assert server.proc is not None
        assert server.proc.wait(timeout=20) == 0
        assert "host:kill" in server.requests()


@pytest.mark.parametrize(
    "line, argv",
    [
        ("echo 'a b' \"c d\" e\\ f ''", ("echo", "a b", "c d", "e f", "")),
        ("echo ';'", ("echo", ";")),
        ("'A=b' x", ("A=b", "x")),  # a quoted NAME=value is a command name, not an assignment
    ],
)
def test_fake_shell_quoting(line: str, argv: tuple[str, ...]) -> None:
    assert parse(line)[0].argv == argv


def test_fake_shell_assignments_and_operators() -> None:
    cmds = parse("cd /x && A='1 2' B=3 run -v || echo no ; echo end")
    assert [c.joined_by for c in cmds] == ["", "&&", "||", ";"]
    assert cmds[1].env == (("A", "1 2"), ("B", "3")) and cmds[1].argv == ("run", "-v")


@pytest.mark.parametrize("line", ["a | b", "echo $HOME", "a > f", "a &&", "&& a", "echo 'x"])
def test_fake_shell_rejects_what_it_does_not_implement(line: str) -> None:
    with pytest.raises(ShellSyntaxError):
        parse(line)
