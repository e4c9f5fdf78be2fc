"""One fake Android phone: a sandbox directory, control files for tests, and a tiny command interpreter.

Layout of ``ROOT/<serial>/`` (the device's ``/``; every absolute device path maps below it, ``..`` cannot
escape)::

    data/local/tmp/                            where adb push lands
    sys/devices/system/cpu/cpuN/cpufreq/cpuinfo_max_freq
    .fake/props.json                           getprop values (model, ABI, SDK, ...)
    .fake/thermal_status                       "0" = cool; "2 2 0" = hot for two reads, then cool
    .fake/perf_test_format                     modern | total | old | no-percentiles: perf_test's output
    .fake/layout                               host | plain: "plain" runs models as onnxruntime on ARM64 lays
                                               them out (no NCHWc blocks: the transformer is off); "host"
                                               keeps this host's layout
    .fake/vanish_after                         N: the device vanishes during its (N+1)-th shell command
    .fake/vanish_on_exec                       N: it vanishes while running the (N+1)-th program (mid-run)
    .fake/vanish                               present = the device is gone (unplugged)
    .fake/commands.log                         every shell command line received, one per line
    .fake/exec.log                             JSON line per program run: argv, env, taskset mask, cwd

Tests flip these files while the server runs; the server reads them on every request.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import shutil
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from nasprof.testing._fake_shell import ShellSyntaxError, SimpleCommand, parse

__all__ = ["FakeDevice", "DeviceVanished", "ShellResult", "FAKE_RUNNER_MARKER"]

#: First bytes of a file the fake device executes as onnxruntime_perf_test (see ``write_fake_runner``).
FAKE_RUNNER_MARKER = b"#!/system/bin/sh\n# nasprof fake onnxruntime_perf_test\n"

#: A 4 + 4 big.LITTLE phone (Cortex-A55 little cluster, Cortex-A78 big cluster), frequencies in kHz.
DEFAULT_MAX_FREQS_KHZ = (1_800_000,) * 4 + (2_400_000,) * 4

DEFAULT_PROPS = {
    "ro.product.model": "Fake Pixel",
    "ro.product.manufacturer": "nasprof",
    "ro.product.cpu.abi": "arm64-v8a",
    "ro.build.version.sdk": "34",
    "ro.build.version.release": "14",
    "ro.hardware": "fake",
}


class DeviceVanished(Exception):
    """Raised inside the server when the device disappears; the server then drops the connection."""


@dataclass(frozen=True)
class ShellResult:
    stdout: bytes
    stderr: bytes
    exit_code: int


class FakeDevice:
    """State and behaviour of one serial. Thread-safe for the few counters it keeps."""

    def __init__(self, root: Path, serial: str, max_freqs_khz: tuple[int, ...] = DEFAULT_MAX_FREQS_KHZ):
        self.serial = serial
        self.root = (Path(root) / serial).resolve()
        self.control = self.root / ".fake"
        self._lock = threading.Lock()
        self._create(max_freqs_khz)

    # -- sandbox ------------------------------------------------------------------------------------------
    def _create(self, max_freqs_khz: tuple[int, ...]) -> None:
        self.control.mkdir(parents=True, exist_ok=True)
        (self.root / "data/local/tmp").mkdir(parents=True, exist_ok=True)
        cpu = self.root / "sys/devices/system/cpu"
        for i, khz in enumerate(max_freqs_khz):
            d = cpu / f"cpu{i}/cpufreq"
            d.mkdir(parents=True, exist_ok=True)
            (d / "cpuinfo_max_freq").write_text(f"{khz}\n")
        (cpu / "possible").write_text(f"0-{len(max_freqs_khz) - 1}\n")
        defaults = {
            "props.json": json.dumps({**DEFAULT_PROPS, "ro.serialno": self.serial}, indent=1),
            "thermal_status": "0",
            "perf_test_format": "modern",
            "layout": "host",
            "build": "full",
        }
        for name, text in defaults.items():
            if not (self.control / name).exists():
                (self.control / name).write_text(text + "\n")

    def host_path(self, device_path: str, cwd: str = "/") -> Path:
        """Map a device path into the sandbox; ``..`` is resolved on the device side so it cannot escape."""
        full = posixpath.normpath(posixpath.join(cwd, device_path))
        rel = full.lstrip("/")
        if rel == ".fake" or rel.startswith(".fake/"):
            return self.root / ".fake-hidden"  # tests' control files are not part of the device
        return self.root / rel if rel else self.root

    # -- control files ------------------------------------------------------------------------------------
    @property
    def present(self) -> bool:
        return not (self.control / "vanish").exists()

    def vanish(self) -> None:
        (self.control / "vanish").write_text("gone\n")

    def props(self) -> dict[str, str]:
        return json.loads((self.control / "props.json").read_text())

    def _read_thermal_status(self) -> int:
        """Next thermal status; a file holding several numbers is a schedule consumed one read at a time."""
        with self._lock:
            path = self.control / "thermal_status"
            values = path.read_text().split() or ["0"]
            if len(values) > 1:
                path.write_text(" ".join(values[1:]) + "\n")
            return int(values[0])

    def begin_command(self, line: str) -> None:
        """Log a shell command; raise ``DeviceVanished`` when the vanish counter says this one dies."""
        with self._lock:
            if not self.present:
                raise DeviceVanished(self.serial)
            with open(self.control / "commands.log", "a") as f:
                f.write(line.replace("\n", "\\n") + "\n")
            counter = self.control / "vanish_after"
            if counter.exists():
                left = int(counter.read_text().strip() or 0)
                if left <= 0:
                    counter.unlink()
                    self.vanish()
                    raise DeviceVanished(self.serial)
                counter.write_text(f"{left - 1}\n")

    def _exec_fault(self) -> float | None:
        """When ``vanish_on_exec`` says this program run is the one, the time at which to unplug (mid-run)."""
        with self._lock:
            counter = self.control / "vanish_on_exec"
            if not counter.exists():
                return None
            left = int(counter.read_text().strip() or 0)
            if left > 0:
                counter.write_text(f"{left - 1}\n")
                return None
            counter.unlink()
            return time.monotonic()  # at the first poll, 50 ms into the run

    # -- shell --------------------------------------------------------------------------------------------
    def run(self, line: str) -> ShellResult:
        """Run one command line like ``/system/bin/sh -c line`` would (within the supported subset)."""
        self.begin_command(line)
        try:
            commands = parse(line)
        except ShellSyntaxError as exc:
            return ShellResult(b"", f"/system/bin/sh: {exc}\n".encode(), 2)
        out, err = bytearray(), bytearray()
        cwd, code = "/", 0
        for cmd in commands:
            if (cmd.joined_by == "&&" and code != 0) or (cmd.joined_by == "||" and code == 0):
                continue
            if cmd.argv and cmd.argv[0] == "cd":
                target = cmd.argv[1] if len(cmd.argv) > 1 else "/"
                if self.host_path(target, cwd).is_dir():
                    cwd, code = posixpath.normpath(posixpath.join(cwd, target)), 0
                else:
                    err += f"/system/bin/sh: cd: {target}: No such file or directory\n".encode()
                    code = 2
                continue
            if cmd.argv and cmd.argv[0] == "exit":
                code = int(cmd.argv[1]) if len(cmd.argv) > 1 else code
                break
            code = self._command(cmd, cwd, out, err)
        return ShellResult(bytes(out), bytes(err), code)

    def _command(self, cmd: SimpleCommand, cwd: str, out: bytearray, err: bytearray, mask: str = "") -> int:
        if not cmd.argv:
            return 0
        name, args = cmd.argv[0], list(cmd.argv[1:])
        if "/" in name:
            return self._exec(cmd, cwd, out, err, mask)
        handler: Callable[[list[str], str, bytearray, bytearray], int] | None = getattr(
            self, "_cmd_" + name.replace("-", "_"), None
        )
        if name == "taskset":
            return self._taskset(cmd, cwd, out, err)
        if handler is None:
            err += f"/system/bin/sh: {name}: inaccessible or not found\n".encode()
            return 127
        return handler(args, cwd, out, err)

    # Builtins mimic toybox's output and exit codes closely enough for nasprof's parsers.
    def _cmd_true(self, args: list[str], cwd: str, out: bytearray, err: bytearray) -> int:
        return 0

    def _cmd_false(self, args: list[str], cwd: str, out: bytearray, err: bytearray) -> int:
        return 1

    def _cmd_echo(self, args: list[str], cwd: str, out: bytearray, err: bytearray) -> int:
        out += (" ".join(args) + "\n").encode()
        return 0

    def _cmd_cat(self, args: list[str], cwd: str, out: bytearray, err: bytearray) -> int:
        code = 0
        for a in args:
            p = self.host_path(a, cwd)
            if p.is_file():
                out += p.read_bytes()
            else:
                err += f"cat: {a}: No such file or directory\n".encode()
                code = 1
        return code

    def _cmd_ls(self, args: list[str], cwd: str, out: bytearray, err: bytearray) -> int:
        code = 0
        for a in [x for x in args if not x.startswith("-")] or ["."]:
            p = self.host_path(a, cwd)
            if p.is_dir():
                out += "".join(f"{c.name}\n" for c in sorted(p.iterdir())).encode()
            elif p.exists():
                out += f"{a}\n".encode()
            else:
                err += f"ls: {a}: No such file or directory\n".encode()
                code = 1
        return code

    def _cmd_mkdir(self, args: list[str], cwd: str, out: bytearray, err: bytearray) -> int:
        parents = "-p" in args
        code = 0
        for a in [x for x in args if x != "-p"]:
            try:
                self.host_path(a, cwd).mkdir(parents=parents, exist_ok=parents)
            except OSError as exc:
                err += f"mkdir: '{a}': {exc.strerror}\n".encode()
                code = 1
        return code

    def _cmd_rm(self, args: list[str], cwd: str, out: bytearray, err: bytearray) -> int:
        flags = "".join(a[1:] for a in args if a.startswith("-"))
        code = 0
        for a in [x for x in args if not x.startswith("-")]:
            p = self.host_path(a, cwd)
            if p == self.root:
                err += b"rm: refusing to remove '/'\n"
                code = 1
            elif p.is_dir() and not p.is_symlink():
                if "r" in flags:
                    shutil.rmtree(p)
                else:
                    err += f"rm: {a}: is a directory\n".encode()
                    code = 1
            elif p.exists():
                p.unlink()
            elif "f" not in flags:
                err += f"rm: {a}: No such file or directory\n".encode()
                code = 1
        return code

    def _cmd_chmod(self, args: list[str], cwd: str, out: bytearray, err: bytearray) -> int:
        if len(args) < 2:
            err += b"chmod: needs MODE FILE\n"
            return 1
        mode, code = args[0], 0
        for a in args[1:]:
            p = self.host_path(a, cwd)
            if not p.exists():
                err += f"chmod: {a}: No such file or directory\n".encode()
                code = 1
                continue
            current = stat.S_IMODE(p.stat().st_mode)
            if mode.isdigit():
                new = int(mode, 8)
            elif mode.endswith("+x"):
                new = current | 0o111
            elif mode.endswith("-x"):
                new = current & ~0o111
            else:
                err += f"chmod: unsupported mode {mode}\n".encode()
                return 1
            p.chmod(new)
        return code

    def _cmd_sha256sum(self, args: list[str], cwd: str, out: bytearray, err: bytearray) -> int:
        code = 0
        for a in args:
            p = self.host_path(a, cwd)
            if p.is_file():
                out += f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {a}\n".encode()
            else:
                err += f"sha256sum: {a}: No such file or directory\n".encode()
                code = 1
        return code

    def _cmd_getprop(self, args: list[str], cwd: str, out: bytearray, err: bytearray) -> int:
        props = self.props()
        if args:
            out += (props.get(args[0], "") + "\n").encode()
        else:
            out += "".join(f"[{k}]: [{v}]\n" for k, v in sorted(props.items())).encode()
        return 0

    def _cmd_dumpsys(self, args: list[str], cwd: str, out: bytearray, err: bytearray) -> int:
        if args[:1] == ["battery"]:
            # What a phone on a USB cable reports unless told otherwise (``FakeAdb.set_power``).
            power = self.control / "power"
            source = power.read_text().strip() if power.exists() else "usb"
            out += ("Current Battery Service state:\n"
                    f"  AC powered: {str(source == 'ac').lower()}\n"
                    f"  USB powered: {str(source == 'usb').lower()}\n"
                    "  Wireless powered: false\n  status: 2\n  level: 80\n  temperature: 300\n").encode()
            return 0
        if args[:1] != ["thermalservice"]:
            err += f"Can't find service: {args[0] if args else ''}\n".encode()
            return 0  # dumpsys exits 0 even for unknown services
        status = self._read_thermal_status()
        temp = 35.0 + 10 * status
        out += (
            "IsStatusOverride: false\n"
            "ThermalEventListeners:\n\tcallbacks: 0\n"
            "ThermalStatusListeners:\n\tcallbacks: 0\n"
            f"Thermal Status: {status}\n"
            "Cached temperatures:\n"
            f"\tTemperature{{mValue={temp:.1f}, mType=0, mName=CPU0, mStatus={status}}}\n"
            "HAL Ready: true\n"
        ).encode()
        return 0

    def _cmd_cmd(self, args: list[str], cwd: str, out: bytearray, err: bytearray) -> int:
        return 0  # e.g. "cmd power set-fixed-performance-mode-enabled true": accepted, no effect

    def _cmd_uname(self, args: list[str], cwd: str, out: bytearray, err: bytearray) -> int:
        out += b"aarch64\n" if "-m" in args else b"Linux\n"
        return 0

    def _taskset(self, cmd: SimpleCommand, cwd: str, out: bytearray, err: bytearray) -> int:
        args = cmd.argv[1:]
        if len(args) < 2:
            err += b"taskset: Need 2 arguments\n"
            return 1
        mask = args[0]
        try:
            bits = int(mask, 16)
        except ValueError:
            err += f"taskset: bad mask '{mask}'\n".encode()
            return 1
        n_cores = len(list((self.root / "sys/devices/system/cpu").glob("cpu[0-9]*")))
        if bits == 0 or bits >> n_cores:
            err += f"taskset: sched_setaffinity: Invalid argument (mask {mask})\n".encode()
            return 1
        return self._command(SimpleCommand(tuple(args[1:]), cmd.env), cwd, out, err, mask=mask)

    # -- programs -----------------------------------------------------------------------------------------
    def _exec(self, cmd: SimpleCommand, cwd: str, out: bytearray, err: bytearray, mask: str) -> int:
        prog = cmd.argv[0]
        path = self.host_path(prog, cwd)
        if not path.is_file():
            err += f"/system/bin/sh: {prog}: inaccessible or not found\n".encode()
            return 127
        if not path.stat().st_mode & 0o111:
            err += f"/system/bin/sh: {prog}: can't execute: Permission denied\n".encode()
            return 126
        with open(path, "rb") as f:
            head = f.read(len(FAKE_RUNNER_MARKER))
        if head != FAKE_RUNNER_MARKER:
            # What Android prints for a binary built for another ABI (or not a binary at all).
            err += f"/system/bin/sh: {prog}: not executable: 64-bit ELF file\n".encode()
            return 126
        env = dict(cmd.env)
        with open(self.control / "exec.log", "a") as f:
            f.write(json.dumps({"argv": list(cmd.argv), "env": env, "mask": mask, "cwd": cwd}) + "\n")
        host_env = {
            **os.environ,
            "NASPROF_FAKE_DEVICE_ROOT": str(self.root),
            "NASPROF_FAKE_CWD": cwd,
            "NASPROF_FAKE_LD_LIBRARY_PATH": env.get("LD_LIBRARY_PATH", ""),
            "NASPROF_FAKE_PERF_TEST_FORMAT": (self.control / "perf_test_format").read_text().strip(),
            "NASPROF_FAKE_LAYOUT": (self.control / "layout").read_text().strip(),
            "NASPROF_FAKE_BUILD": (self.control / "build").read_text().strip(),
            "NASPROF_FAKE_OPS_CONFIG": str(self.control / "ops.config")
            if (self.control / "ops.config").is_file() else "",
            "NASPROF_FAKE_RUN_MS": (self.control / "run_ms").read_text().strip()
            if (self.control / "run_ms").is_file() else "0",
            "NASPROF_FAKE_SIMULATE": "1" if (self.control / "simulate").is_file() else "",
            "NASPROF_FAKE_PROVIDERS": str(self.control / "providers.json")
            if (self.control / "providers.json").is_file() else "",
        }
        unplug_at = self._exec_fault()
        proc = subprocess.Popen(
            [sys.executable, "-m", "nasprof.testing.fake_perf_test", *cmd.argv[1:]],
            cwd=self.host_path(cwd),
            env=host_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        # Poll so that a test unplugging the phone mid-run kills the program, like a real disconnect would.
        # communicate() with a short timeout keeps draining the pipes, so a chatty program cannot block.
        deadline = time.monotonic() + 600
        while True:
            try:
                o, e = proc.communicate(timeout=0.05)
                break
            except subprocess.TimeoutExpired:
                if unplug_at is not None and time.monotonic() >= unplug_at:
                    self.vanish()
                if not self.present or time.monotonic() > deadline:
                    proc.kill()
                    proc.communicate()
                    raise DeviceVanished(self.serial) from None
        out += o
        err += e
        return proc.returncode
