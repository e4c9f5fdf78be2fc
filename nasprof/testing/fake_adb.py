"""A fake adb server on loopback, so the real adb client binary can drive "phones" in tests and demos.

Run it as ``python -m nasprof.testing.fake_adb --port PORT --serial SERIAL [--serial SERIAL2] --root DIR``
and point the real client at it (``ANDROID_ADB_SERVER_PORT=PORT adb devices``, or
``adb -L tcp:127.0.0.1:PORT devices``, which never starts a real server if the fake one is gone).

It speaks the client side of the adb smart-socket protocol (AOSP packages/modules/adb SERVICES.TXT, SYNC.TXT):
``host:version``, ``host:devices[-l]``, ``host:features`` / ``host:host-features``,
``host-serial:<s>:features|get-state|get-serialno``, ``host:transport:<s>`` and ``host:tport:serial:<s>``
(8-byte transport id), then on the device ``shell:``, ``shell,v2,...:`` (framed stdout / stderr / exit code),
``exec:`` and ``sync:`` v1 (STAT, LIST, SEND, RECV, QUIT; no v2 feature is advertised, so clients never use
the v2 ids), and ``host:kill``. Each serial gets a sandbox ``ROOT/<serial>`` (see ``_fake_device``) in which
device commands are interpreted, never handed to the host's shell. It listens on 127.0.0.1 only and stops by
itself after ``--idle-timeout`` seconds without a connection.

``FakeAdb`` (below) starts the server as a subprocess for tests and flips its fault-injection files.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import socketserver
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from nasprof.testing._fake_device import (
    DEFAULT_MAX_FREQS_KHZ,
    FAKE_RUNNER_MARKER,
    DeviceVanished,
    FakeDevice,
)
from nasprof.testing._fake_sync import Sync, read_exact

__all__ = ["FakeAdbServer", "FakeAdb", "write_devices_file", "write_fake_runner", "main", "ADB_VERSION",
           "FEATURES"]

#: The protocol version the current adb client expects (0x29 = 41); a mismatch makes it restart the server.
ADB_VERSION = 0x29
#: shell_v2 gives framed output with the exit code. No sync v2 feature (stat_v2, ls_v2, sendrecv_v2): v1 only.
FEATURES = "shell_v2,cmd,fixed_push_mkdir"


class _Fail(Exception):
    """A request the server answers with FAIL + message."""



def _framed(payload: bytes) -> bytes:
    return f"{len(payload):04x}".encode() + payload


def _okay(sock: socket.socket, payload: bytes | None = None) -> None:
    sock.sendall(b"OKAY" + (b"" if payload is None else _framed(payload)))


def _fail(sock: socket.socket, message: str) -> None:
    sock.sendall(b"FAIL" + _framed(message.encode()))


class _TCPServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    fake: FakeAdbServer


class _Handler(socketserver.BaseRequestHandler):
    server: _TCPServer

    def handle(self) -> None:
        fake = self.server.fake
        sock: socket.socket = self.request
        fake._enter()
        try:
            device: FakeDevice | None = None
            while True:
                head = read_exact(sock, 4)
                if head is None:
                    return
                request = (read_exact(sock, int(head, 16)) or b"").decode()
                fake.log(request)
                try:
                    if device is None:
                        device = fake.host_request(sock, request)
                        if device is None:
                            return
                        continue  # the next request on this socket goes to the selected device
                    fake.device_request(sock, device, request)
                    return
                except _Fail as exc:
                    _fail(sock, str(exc))
                    return
                except DeviceVanished:
                    return  # close without a reply, as a pulled USB cable does
        except (ConnectionError, OSError, ValueError):
            return
        finally:
            fake._leave()


class FakeAdbServer:
    """The server. ``serve_forever()`` blocks; ``shutdown()`` may be called from any thread."""

    def __init__(
        self,
        root: Path,
        serials: Sequence[str],
        port: int = 0,
        idle_timeout_s: float = 300.0,
        log_path: Path | None = None,
        cpu_freqs_khz: Sequence[int] = DEFAULT_MAX_FREQS_KHZ,
    ) -> None:
        if not serials:
            raise ValueError("the fake adb server needs at least one --serial")
        self.root = Path(root)
        self.devices = {s: FakeDevice(self.root, s, tuple(cpu_freqs_khz)) for s in serials}
        self.idle_timeout_s = idle_timeout_s
        self._log_path = log_path
        self._lock = threading.Lock()
        self._active = 0
        self._last_activity = time.monotonic()
        self._server = _TCPServer(("127.0.0.1", port), _Handler)  # loopback only, never a public interface
        self._server.fake = self

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def serve_forever(self) -> None:
        threading.Thread(target=self._watch_idle, daemon=True).start()
        try:
            self._server.serve_forever(poll_interval=0.1)
        finally:
            self._server.server_close()

    def shutdown(self) -> None:
        threading.Thread(target=self._server.shutdown, daemon=True).start()

    def _watch_idle(self) -> None:
        while True:
            time.sleep(0.2)
            with self._lock:
                idle = self._active == 0 and time.monotonic() - self._last_activity > self.idle_timeout_s
            if idle:
                self._server.shutdown()
                return

    def _enter(self) -> None:
        with self._lock:
            self._active += 1
            self._last_activity = time.monotonic()

    def _leave(self) -> None:
        with self._lock:
            self._active -= 1
            self._last_activity = time.monotonic()

    def log(self, request: str) -> None:
        if self._log_path is not None:
            with self._lock, open(self._log_path, "a") as f:
                f.write(request.replace("\n", "\\n") + "\n")

    # -- host services ------------------------------------------------------------------------------------
    def _device(self, serial: str | None) -> FakeDevice:
        present = [d for d in self.devices.values() if d.present]
        if serial is None:
            if not present:
                raise _Fail("no devices/emulators found")
            if len(present) > 1:
                raise _Fail("more than one device/emulator")
            return present[0]
        device = self.devices.get(serial)
        if device is None or not device.present:
            raise _Fail(f"device '{serial}' not found")
        return device

    def _transport_id(self, device: FakeDevice) -> int:
        return list(self.devices).index(device.serial) + 1

    def host_request(self, sock: socket.socket, request: str) -> FakeDevice | None:
        """Answer a host service; return the device when the request selected a transport."""
        if request == "host:version":
            _okay(sock, f"{ADB_VERSION:04x}".encode())
        elif request == "host:kill":
            _okay(sock)
            self.shutdown()
        elif request in ("host:devices", "host:devices-l"):
            rows = []
            for d in self.devices.values():
                if not d.present:
                    continue
                if request == "host:devices":
                    rows.append(f"{d.serial}\tdevice\n")
                else:
                    p = d.props()
                    model = p.get("ro.product.model", "").replace(" ", "_")
                    rows.append(f"{d.serial:<22} device product:fake model:{model} device:fake "
                                f"transport_id:{self._transport_id(d)}\n")
            _okay(sock, "".join(rows).encode())
        elif request in ("host:features", "host:host-features"):
            _okay(sock, FEATURES.encode())
        elif request.startswith("host-serial:"):
            serial, _, what = request[len("host-serial:"):].rpartition(":")
            self._device_query(sock, self._device(serial), what)
        elif request.startswith(("host:transport:", "host:tport:serial:")):
            device = self._device(request.rpartition(":")[2] if request.startswith("host:transport:")
                                  else request[len("host:tport:serial:"):])
            return self._select(sock, device, request)
        elif request in ("host:transport-any", "host:tport:any"):
            return self._select(sock, self._device(None), request)
        else:
            raise _Fail(f"unknown host service '{request}'")
        return None

    def _select(self, sock: socket.socket, device: FakeDevice, request: str) -> FakeDevice:
        if request.startswith("host:tport:"):
            sock.sendall(b"OKAY" + struct.pack("<Q", self._transport_id(device)))
        else:
            _okay(sock)
        return device

    def _device_query(self, sock: socket.socket, device: FakeDevice, what: str) -> None:
        answers = {"features": FEATURES, "get-state": "device", "get-serialno": device.serial,
                   "get-devpath": "usb:fake"}
        if what not in answers:
            raise _Fail(f"unknown host service '{what}'")
        _okay(sock, answers[what].encode())

    # -- device services ----------------------------------------------------------------------------------
    def device_request(self, sock: socket.socket, device: FakeDevice, request: str) -> None:
        if not device.present:
            raise DeviceVanished(device.serial)
        service, _, command = request.partition(":")
        name, *args = service.split(",")
        if name == "shell" or name == "exec":
            if not command:
                raise _Fail("interactive shells are not supported by the fake device")
            _okay(sock)
            threading.Thread(target=_drain, args=(sock,), daemon=True).start()
            result = device.run(command)
            if name == "shell" and "v2" in args:
                for packet_id, data in ((1, result.stdout), (2, result.stderr)):
                    if data:
                        sock.sendall(bytes([packet_id]) + struct.pack("<I", len(data)) + data)
                sock.sendall(bytes([3]) + struct.pack("<I", 1) + bytes([result.exit_code & 0xFF]))
            else:  # v1 merges stderr into the stream and loses the exit code
                sock.sendall(result.stdout + (result.stderr if name == "shell" else b""))
        elif request == "sync:":
            _okay(sock)
            Sync(sock, device, self.log).serve()
        else:
            raise _Fail(f"unsupported device service '{request}'")


def _drain(sock: socket.socket) -> None:
    """Read and ignore what the client sends while a command runs (shell v2 stdin / close-stdin packets)."""
    with contextlib.suppress(OSError):
        while sock.recv(4096):
            pass



# ---------------------------------------------------------------------------------------------------------
# Test-side helpers
# ---------------------------------------------------------------------------------------------------------


def write_fake_runner(directory: Path, name: str = "onnxruntime_perf_test") -> tuple[Path, Path]:
    """Write a runner the fake device executes as perf_test, plus a ``libonnxruntime.so`` beside it."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    runner = directory / name
    runner.write_bytes(FAKE_RUNNER_MARKER + b"exec onnxruntime_perf_test \"$@\"\n")
    lib = directory / "libonnxruntime.so"
    lib.write_bytes(b"\x7fELF fake libonnxruntime.so for nasprof tests\n")
    return runner, lib


def write_devices_file(path: Path, phones: Mapping[str, str], runner: Path | Mapping[str, Path], server: str,
                       **settings: Any) -> Path:
    """A devices file naming the fake ``phones`` (name -> serial) behind ``server``, each running ``runner``
    (one for all, or one per name), with the same android ``settings`` (``runs_per_sample=2``, ...)."""
    def value(v: Any) -> str:
        return json.dumps(str(v) if isinstance(v, Path) else v)  # a JSON scalar is a TOML scalar here

    blocks = []
    for name, serial in phones.items():
        own = runner[name] if isinstance(runner, Mapping) else runner
        items = {"backend": "android", "serial": serial, "runner": own, "adb_server": server, **settings}
        blocks.append(f"[devices.{name}]\n" + "".join(f"{k} = {value(v)}\n" for k, v in items.items()))
    Path(path).write_text("schema_version = 1\n" + "".join(blocks))
    return Path(path)


class FakeAdb:
    """A fake adb server in a subprocess, with switches for the faults tests inject.

    Use as a context manager; leaving it stops the server (its process only, by pid).
    """

    def __init__(
        self,
        root: Path,
        serials: Sequence[str] = ("FAKE0001",),
        idle_timeout_s: float = 120.0,
        cpu_freqs_khz: Sequence[int] | None = None,
    ) -> None:
        self.root = Path(root)
        self.serials = tuple(serials)
        self.idle_timeout_s = idle_timeout_s
        self.cpu_freqs_khz = tuple(cpu_freqs_khz) if cpu_freqs_khz else None
        self.log_path = self.root / "requests.log"
        self.proc: subprocess.Popen[str] | None = None
        self.port = 0

    def start(self) -> FakeAdb:
        self.root.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "nasprof.testing.fake_adb", "--port", "0", "--root", str(self.root),
               "--idle-timeout", str(self.idle_timeout_s), "--log", str(self.log_path)]
        for s in self.serials:
            cmd += ["--serial", s]
        if self.cpu_freqs_khz:
            cmd += ["--cpu-freqs", ",".join(map(str, self.cpu_freqs_khz))]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # "fake adb server listening on 127.0.0.1:PORT ..."
        if "listening on" not in line:
            self.stop()
            raise RuntimeError(f"fake adb server did not start: {line!r}")
        self.port = int(line.split("127.0.0.1:")[1].split()[0])
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()

    def __enter__(self) -> FakeAdb:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def server(self) -> str:
        """Socket spec for ``adb -L``: a remote-looking address, so the client never spawns a real server."""
        return f"tcp:127.0.0.1:{self.port}"

    def control(self, serial: str) -> Path:
        return self.root / serial / ".fake"

    def device_path(self, serial: str, device_path: str) -> Path:
        return self.root / serial / device_path.lstrip("/")

    def set_thermal(self, serial: str, *statuses: int) -> None:
        """Thermal status for the next reads (the last one sticks): ``set_thermal(s, 2, 2, 0)``."""
        (self.control(serial) / "thermal_status").write_text(" ".join(map(str, statuses)) + "\n")

    def set_power(self, serial: str, source: str) -> None:
        """What ``dumpsys battery`` says powers the phone: ``usb`` (the default), ``ac`` or ``none``."""
        (self.control(serial) / "power").write_text(source + "\n")

    def set_perf_test_format(self, serial: str, fmt: str) -> None:
        (self.control(serial) / "perf_test_format").write_text(fmt + "\n")

    def set_layout(self, serial: str, layout: str) -> None:
        """``plain``: the phone's runner lays models out as onnxruntime does on ARM64 (no NCHWc blocks);
        ``host``: as this host's onnxruntime does."""
        if layout not in ("host", "plain"):
            raise ValueError(f"layout must be 'host' or 'plain', got {layout!r}")
        (self.control(serial) / "layout").write_text(layout + "\n")

    def set_build(self, serial: str, build: str, ops_config: str | None = None) -> None:
        """``full``: the runner loads .onnx and .ort files with every operator; ``minimal``: a reduced-size
        build that loads only ORT-format files and, with ``ops_config`` (a reduced-build config's text),
        only those operators."""
        if build not in ("full", "minimal"):
            raise ValueError(f"build must be 'full' or 'minimal', got {build!r}")
        (self.control(serial) / "build").write_text(build + "\n")
        cfg = self.control(serial) / "ops.config"
        if ops_config is None:
            cfg.unlink(missing_ok=True)
        else:
            cfg.write_text(ops_config)

    def set_providers(self, serial: str, providers: dict[str, list[str]] | None) -> None:
        """Execution providers the runner was built with besides cpu, each with the operators it takes
        (``{"xnnpack": ["Conv", "MaxPool"]}``); those nodes are labelled with the provider in profiles, the
        rest fall back to the CPU. ``None``: a CPU-only runner."""
        path = self.control(serial) / "providers.json"
        if providers is None:
            path.unlink(missing_ok=True)
        else:
            path.write_text(json.dumps(providers))

    def set_run_time(self, serial: str, ms: float | None, *, simulate: bool = False) -> None:
        """Every timed run of the runner also sleeps ``ms``: a phone whose speed, not this host's, sets how
        long a measurement takes (the farm's scaling benchmark). With ``simulate`` the model is not run at
        all (each run is the sleep alone; no profiles). ``None``: no added time, the model runs."""
        path, sim = self.control(serial) / "run_ms", self.control(serial) / "simulate"
        if ms is None:
            path.unlink(missing_ok=True)
            sim.unlink(missing_ok=True)
            return
        path.write_text(f"{float(ms)}\n")
        if simulate:
            sim.write_text("1\n")
        else:
            sim.unlink(missing_ok=True)

    def unplug(self, serial: str) -> None:
        (self.control(serial) / "vanish").write_text("gone\n")

    def unplug_after(self, serial: str, commands: int) -> None:
        """The device vanishes during shell command number ``commands + 1`` from now."""
        (self.control(serial) / "vanish_after").write_text(f"{commands}\n")

    def unplug_during_run(self, serial: str, completed_runs: int = 0) -> None:
        """The device vanishes while running a program, after ``completed_runs`` runs finished normally."""
        (self.control(serial) / "vanish_on_exec").write_text(f"{completed_runs}\n")

    def commands(self, serial: str) -> list[str]:
        p = self.control(serial) / "commands.log"
        return p.read_text().splitlines() if p.exists() else []

    def executions(self, serial: str) -> list[dict[str, object]]:
        p = self.control(serial) / "exec.log"
        return [json.loads(line) for line in p.read_text().splitlines()] if p.exists() else []

    def requests(self) -> list[str]:
        return self.log_path.read_text().splitlines() if self.log_path.exists() else []


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nasprof.testing.fake_adb",
                                     description="A fake adb server on 127.0.0.1 for tests and demos.")
    parser.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0 = any free port)")
    parser.add_argument("--serial", action="append", required=True, help="a fake device; repeat for several")
    parser.add_argument("--root", type=Path, required=True, help="directory holding one sandbox per serial")
    parser.add_argument("--idle-timeout", type=float, default=300.0, help="stop after this many idle seconds")
    parser.add_argument("--log", type=Path, default=None, help="append every request received to this file")
    parser.add_argument("--cpu-freqs", default=",".join(map(str, DEFAULT_MAX_FREQS_KHZ)),
                        help="cpuinfo_max_freq of each core in kHz, comma-separated (default: a 4+4 phone)")
    args = parser.parse_args(argv)
    try:
        freqs = [int(f) for f in args.cpu_freqs.split(",")]
    except ValueError:
        parser.error(f"--cpu-freqs must be integers in kHz separated by commas, got {args.cpu_freqs!r}")
    server = FakeAdbServer(args.root, args.serial, args.port, args.idle_timeout, args.log, freqs)
    print(f"fake adb server listening on 127.0.0.1:{server.port} serials={','.join(args.serial)} "
          f"root={args.root}", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
