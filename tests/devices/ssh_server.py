"""A real OpenSSH server on 127.0.0.1 that plays a Linux board, for tests and the ssh benchmark.

``SshServer`` starts ``/usr/sbin/sshd -D -e -f CONFIG -p PORT`` with a throw-away host key and an authorised
client key made by ``ssh-keygen`` in a temporary directory; ``StrictModes no`` and ``UsePAM no`` let it run
without touching the system's SSH setup. Sessions get ``HOME`` set to a directory of the server's own
(``SetEnv``), so the "board's" cache lands there and the test user's shell start-up files are not read.
The host plays the board: ``python`` is this interpreter, which has onnxruntime and numpy.

Run as root, sshd needs its privilege-separation directory (``/run/sshd``); it is created when missing. A
machine without sshd (or ssh-keygen) gets ``unavailable_reason()`` instead: the tests skip with it.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

SSHD = "/usr/sbin/sshd"


def unavailable_reason() -> str | None:
    """Why no loopback sshd can run here (None when it can)."""
    if not os.path.isfile(SSHD):
        return f"OpenSSH's server is not installed ({SSHD} is missing): apt-get install openssh-server"
    for tool in ("ssh", "ssh-keygen"):
        if shutil.which(tool) is None:
            return f"the OpenSSH client tool {tool} is not installed: apt-get install openssh-client"
    if os.geteuid() == 0 and not os.path.isdir("/run/sshd"):
        try:
            os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        except OSError as exc:
            return f"sshd run as root needs /run/sshd, which cannot be created: {exc}"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def keygen(path: Path) -> Path:
    """A fresh ed25519 key pair at ``path`` / ``path.pub`` without a passphrase."""
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "nasprof-test", "-f", str(path)],
                   check=True, capture_output=True, timeout=30)
    return path


def _children(pid: int) -> list[int]:
    """Every descendant of ``pid`` (from /proc), deepest last."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat[stat.rfind(")") + 2 :].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    out: list[int] = []
    todo = [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _kill(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


class SshServer:
    """sshd on ``127.0.0.1:port`` accepting ``client_key`` for the current user."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.home = self.root / "home"
        self.home.mkdir(exist_ok=True)
        self.user = getpass.getuser()
        self.host_key = keygen(self.root / "host_key")
        self.client_key = keygen(self.root / "client_key")
        (self.root / "authorized_keys").write_text(Path(f"{self.client_key}.pub").read_text())
        self.port = free_port()
        self.known_hosts = self.root / "known_hosts"
        self._write_known_hosts(self.known_hosts, Path(f"{self.host_key}.pub"))
        self.config = self.root / "sshd_config"
        self.config.write_text("\n".join([
            "ListenAddress 127.0.0.1",
            f"HostKey {self.host_key}",
            f"AuthorizedKeysFile {self.root / 'authorized_keys'}",
            "StrictModes no",
            "UsePAM no",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "PermitRootLogin prohibit-password",
            "PidFile none",
            "MaxSessions 50",
            "MaxStartups 50",
            f"SetEnv HOME={self.home}",
            "LogLevel ERROR",
            "",
        ]))
        self.log = self.root / "sshd.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def _write_known_hosts(self, path: Path, pub: Path) -> None:
        kind, key = pub.read_text().split()[:2]
        path.write_text(f"[127.0.0.1]:{self.port} {kind} {key}\n")

    # -- life cycle -----------------------------------------------------------------------------------------
    def start(self, timeout_s: float = 10.0) -> SshServer:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(self.config), "-p", str(self.port)],
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sshd exited with {self.proc.returncode}: {self.log.read_text()[-500:]}")
            with socket.socket() as s:
                s.settimeout(0.2)
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"sshd did not listen on port {self.port} within {timeout_s} s")

    def drop_connections(self) -> int:
        """Kill every connection's sshd process and what runs under it (the runner too), as a board that
        loses power would; the listener stays up. Returns how many processes were killed."""
        if self.proc is None:
            return 0
        pids = _children(self.proc.pid)
        _kill(pids)
        return len(pids)

    def stop_measuring_servers(self) -> None:
        """End the runner's measuring servers of this board's cache (they outlive sessions by design)."""
        for runner in self.cache.glob("board_runner_*.py"):
            subprocess.run([sys.executable, str(runner), "stop"], capture_output=True, timeout=30,
                           check=False)

    def stop(self) -> None:
        """Stop the listener and every session under it."""
        if self.proc is None:
            return
        pids = _children(self.proc.pid)
        _kill([self.proc.pid, *pids])
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
        self.proc = None

    def __enter__(self) -> SshServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self.stop_measuring_servers()

    # -- devices ---------------------------------------------------------------------------------------------
    @property
    def destination(self) -> str:
        return f"{self.user}@127.0.0.1"

    def device_options(self, **extra: Any) -> dict[str, Any]:
        """Settings of an ssh device for this server (``nasprof devices add ... --set``)."""
        return {"host": self.destination, "port": self.port, "identity": str(self.client_key),
                "known_hosts": str(self.known_hosts), "python": sys.executable, "server_idle_s": 20, **extra}

    def set_args(self, **extra: Any) -> list[str]:
        """The same settings as ``--set KEY=VALUE`` arguments."""
        out: list[str] = []
        for k, v in self.device_options(**extra).items():
            out += ["--set", f"{k}={v}"]
        return out

    @property
    def cache(self) -> Path:
        """The board's default cache directory (``~/.cache/nasprof-ssh`` under the sessions' HOME)."""
        return self.home / ".cache" / "nasprof-ssh"

    def wrong_known_hosts(self) -> Path:
        """A known_hosts file recording another key for this server (a changed host key)."""
        other = keygen(self.root / f"other_host_key_{time.monotonic_ns()}")
        path = self.root / f"known_hosts_wrong_{time.monotonic_ns()}"
        self._write_known_hosts(path, Path(f"{other}.pub"))
        return path
