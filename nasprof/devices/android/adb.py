"""A thin wrapper around the real ``adb`` client binary, bound to one serial.

nasprof drives phones through the same ``adb`` users already trust (the binary in the adbutils wheel, or
Android platform-tools on PATH) instead of re-implementing the wire protocol: every command is
``subprocess.run([adb, -s, SERIAL, ...], timeout=...)`` with an argument list, and every device-shell
command line is assembled from ``shlex.quote``-d words by ``quote_command``.

A disconnect shows up in many ways (``adb: device 'X' not found``, a shell that ends with exit status 255 and
no output, a push that fails half-way). Rather than guess from the text, a failed call asks the server whether
the serial is still attached, and raises ``DeviceUnavailableError`` saying the device went away when it is
not.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from nasprof.errors import DeviceError, DeviceUnavailableError

__all__ = ["Adb", "ShellResult", "find_adb", "quote_command"]

#: Seconds for quick housekeeping calls (devices, getprop, mkdir); perf_test runs get their own timeout.
QUICK_TIMEOUT_S = 30.0


def quote_command(*words: str | int) -> str:
    """One device-shell command with every word quoted: ``quote_command("rm", "-rf", "/a b")``."""
    return " ".join(shlex.quote(str(w)) for w in words)


def find_adb(explicit: str | Path | None = None) -> Path:
    """The adb client to use: ``explicit``, else the adbutils wheel's binary, else ``adb`` on PATH."""
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise DeviceUnavailableError(
                f"adb binary {path} does not exist; install platform-tools or `pip install adbutils`, "
                "or fix the adb path in the devices file"
            )
        return path
    try:
        import adbutils

        bundled = Path(adbutils.adb_path())
        if bundled.is_file():
            return bundled
    except Exception:  # noqa: BLE001 - adbutils missing or without a binary for this platform: try PATH
        pass
    on_path = shutil.which("adb")
    if on_path:
        return Path(on_path)
    raise DeviceUnavailableError(
        "no adb binary found: `pip install adbutils` (it ships adb) or install Android platform-tools "
        "and put adb on PATH"
    )


@dataclass(frozen=True)
class ShellResult:
    """What a device-shell command printed and its exit status (adb's shell protocol v2 carries it)."""

    stdout: str
    stderr: str
    exit_code: int

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def tail(self, lines: int = 5) -> str:
        """The last lines of stderr and stdout, for error messages."""
        text = (self.stderr.strip() + "\n" + self.stdout.strip()).strip()
        return " | ".join(text.splitlines()[-lines:]) or "(no output)"


class Adb:
    """The adb client bound to one serial. ``server`` is an adb socket spec (``tcp:127.0.0.1:5037``).

    With ``server=None`` the client's own defaults apply (``ANDROID_ADB_SERVER_PORT``, port 5037, and it
    starts a server when none runs). A ``tcp:127.0.0.1:PORT`` spec is never auto-started by the client.
    """

    def __init__(self, serial: str, adb_path: str | Path | None = None, server: str | None = None) -> None:
        if not serial:
            raise DeviceUnavailableError("no serial configured: pass --serial (see `adb devices`)")
        self.serial = serial
        self.adb_path = find_adb(adb_path)
        self.server = server

    def _command(self, *args: str, serial: bool = True) -> list[str]:
        cmd = [str(self.adb_path)]
        if self.server:
            cmd += ["-L", self.server]
        if serial:
            cmd += ["-s", self.serial]
        return cmd + list(args)

    def _run(
        self, args: Sequence[str], timeout_s: float, serial: bool = True
    ) -> subprocess.CompletedProcess[bytes]:
        try:
            return subprocess.run(
                self._command(*args, serial=serial),
                capture_output=True,
                stdin=subprocess.DEVNULL,
                timeout=timeout_s,
                check=False,
            )
        except FileNotFoundError:
            raise DeviceUnavailableError(
                f"adb binary {self.adb_path} has disappeared; reinstall adbutils or platform-tools"
            ) from None
        except PermissionError:
            raise DeviceUnavailableError(
                f"adb binary {self.adb_path} is not executable; run: chmod +x {self.adb_path}"
            ) from None
        except subprocess.TimeoutExpired:
            raise DeviceError(
                f"`adb {args[0]}` on {self.serial} did not finish within {timeout_s:g} s; "
                "the device or the adb "
                f"server is hung: check `adb -s {self.serial} shell true`, or replug the device"
            ) from None

    # -- server-level -------------------------------------------------------------------------------------
    def version(self) -> str:
        proc = self._run(["version"], QUICK_TIMEOUT_S, serial=False)
        lines = proc.stdout.decode(errors="replace").splitlines()
        return " / ".join(line.strip() for line in lines[:2]) if proc.returncode == 0 else "unknown"

    def devices(self) -> dict[str, str]:
        """Attached serials and their states (``device``, ``unauthorized``, ``offline``)."""
        proc = self._run(["devices"], QUICK_TIMEOUT_S, serial=False)
        if proc.returncode != 0:
            msg = " ".join(proc.stderr.decode(errors="replace").split())
            raise DeviceUnavailableError(
                f"cannot reach the adb server ({msg or 'no output'}); check that adb works: `adb devices`"
            )
        out: dict[str, str] = {}
        for line in proc.stdout.decode(errors="replace").splitlines()[1:]:
            parts = line.split()
            if len(parts) >= 2:
                out[parts[0]] = parts[1]
        return out

    def require_attached(self) -> None:
        """Raise ``DeviceUnavailableError`` unless the serial is attached and authorised."""
        devices = self.devices()
        state = devices.get(self.serial)
        if state == "device":
            return
        if state == "unauthorized":
            raise DeviceUnavailableError(
                f"device {self.serial} is attached but unauthorized: unlock it and "
                "accept the USB debugging prompt"
            )
        if state is not None:
            raise DeviceUnavailableError(f"device {self.serial} is {state}; replug it or run `adb reconnect`")
        attached = ", ".join(sorted(devices)) or "none"
        raise DeviceUnavailableError(
            f"device serial {self.serial} is not attached (adb devices lists: {attached}); plug it in "
            "and enable USB debugging, or fix the serial with `nasprof devices add NAME --backend android "
            "--serial SERIAL "
            "--force`"
        )

    def check_still_attached(self, doing: str) -> None:
        """After a failed call: raise ``DeviceUnavailableError`` when the device is gone, else return.

        Unavailable rather than a plain ``DeviceError``: the table builder hands the layer back to the queue
        for that error instead of storing a failed entry, so a pulled cable never leaves a bogus entry.
        """
        try:
            state = self.devices().get(self.serial)
        except DeviceUnavailableError:
            state = None
        if state != "device":
            raise DeviceUnavailableError(
                f"device {self.serial} disconnected while {doing}; nothing was recorded — reconnect it "
                "(check the cable, `adb devices`) and run again"
            )

    # -- device-level -------------------------------------------------------------------------------------
    def shell(
        self, command: str, timeout_s: float = QUICK_TIMEOUT_S, doing: str = "running a command"
    ) -> ShellResult:
        """Run one device-shell command line (build it with ``quote_command``); the exit status is returned,
        except that a vanished device raises ``DeviceUnavailableError``."""
        proc = self._run(["shell", command], timeout_s)
        result = ShellResult(
            proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace"), proc.returncode
        )
        if not result.ok:
            self.check_still_attached(doing)
        return result

    def push(self, local: Path, remote: str, timeout_s: float = 300.0) -> None:
        proc = self._run(["push", str(local), remote], timeout_s)
        if proc.returncode != 0:
            self.check_still_attached(f"pushing {Path(local).name}")
            msg = " ".join(proc.stderr.decode(errors="replace").split())
            raise DeviceError(
                f"adb push {local} -> {remote} failed: {msg}; check free space on the device "
                "(`adb shell df /data`)"
            )

    def pull(self, remote: str, local: Path, timeout_s: float = 300.0) -> None:
        proc = self._run(["pull", remote, str(local)], timeout_s)
        if proc.returncode != 0:
            self.check_still_attached(f"pulling {remote}")
            msg = " ".join(proc.stderr.decode(errors="replace").split())
            raise DeviceError(f"adb pull {remote} failed: {msg}")
