"""The real OpenSSH client, one multiplexed connection per device.

nasprof never speaks SSH itself: every call is ``subprocess.run([ssh, ...], timeout=...)`` with an argument
list, so the user's ``~/.ssh/config`` (port, user, identity, ``ProxyJump``), agent and ``known_hosts`` apply
as they do for their own ``ssh``. The first call opens a master connection (``ControlMaster=auto``) whose
socket lives in a private temporary directory (mode 0700); every later call of the same device rides on it,
so a table build pays one handshake, not one per entry. ``ControlPersist`` keeps it up between calls and
``close()`` (also run at exit) ends it. ``start`` runs a long-lived board command (the runner's session,
``session.py``) over the same connection with its stdin and stdout as pipes.

Always ``BatchMode=yes`` (never a password or passphrase prompt: a prompt would hang a build) and
``StrictHostKeyChecking=yes`` (an unknown or changed host key is refused, never silently accepted).
``ServerAliveInterval`` notices a board that vanished without closing the connection (power cut) within
about 15 s.

Remote command lines are built from ``shlex.quote``-d words (``remote_words``); a path under ``~/`` becomes
``"$HOME"/'rest'`` so the board's shell expands the home directory and nothing else.

OpenSSH exits with 255 for its own failures and with the remote command's status otherwise (the runner never
exits with 255). A 255 raises ``DeviceUnavailableError`` whose one-line message says what happened (unknown
or changed host key, key refused, host unreachable, connection dropped) and what to do; the table builder
then hands the layer back instead of storing a failed entry.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from nasprof.devices.ssh.settings import SshSettings
from nasprof.errors import DeviceUnavailableError

__all__ = ["SshResult", "SshTransport", "classify_ssh_failure", "remote_path", "remote_words", "store_script"]

#: Seconds for housekeeping calls (presence checks, mkdir, describe).
QUICK_TIMEOUT_S = 60.0
#: OpenSSH's exit status for its own errors (connection, authentication, host key).
SSH_FAILED = 255

_PID_RE = re.compile(r"pid=(\d+)")


def remote_path(path: str) -> str:
    """One shell word for a board path: ``~/x y`` -> ``"$HOME"/'x y'``; others are ``shlex.quote``-d."""
    if path == "~":
        return '"$HOME"'
    if path.startswith("~/"):
        return '"$HOME"/' + shlex.quote(path[2:])
    return shlex.quote(path)


def remote_words(*words: str | int) -> str:
    """A board command line with every word quoted (``remote_words("rm", "-f", "/a b")``)."""
    return " ".join(shlex.quote(str(w)) for w in words)


@dataclass(frozen=True)
class SshResult:
    """What a remote command printed and its exit status."""

    stdout: bytes
    stderr: str
    exit_code: int

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def tail(self, lines: int = 3) -> str:
        """The last lines of stderr (then stdout), on one line, for error messages."""
        text = (self.stderr.strip() + "\n" + self.stdout.decode(errors="replace").strip()).strip()
        kept = [line.strip() for line in text.splitlines() if line.strip()][-lines:]
        return " | ".join(kept) or "(no output)"


def _ssh_hint(s: SshSettings) -> str:
    words = ["ssh"]
    if s.ssh_config:
        words += ["-F", s.ssh_config]
    if s.port:
        words += ["-p", str(s.port)]
    if s.identity:
        words += ["-i", s.identity]
    if s.known_hosts:
        words += ["-o", f"UserKnownHostsFile={s.known_hosts}"]
    return " ".join(shlex.quote(w) for w in [*words, s.host])


def classify_ssh_failure(stderr: str, s: SshSettings, device: str, doing: str) -> str:
    """The one-line message for an OpenSSH failure (exit 255), from what ssh printed on stderr."""
    text = " ".join(stderr.split())
    low = text.lower()
    where = f"{device} ({s.destination})"
    hostname = s.host.rpartition("@")[2]
    known = s.known_hosts or "~/.ssh/known_hosts"
    known_word = shlex.quote(s.known_hosts) if s.known_hosts else known
    scan = f"ssh-keyscan {f'-p {s.port} ' if s.port else ''}{shlex.quote(hostname)} >> {known_word}"
    if "identification has changed" in low or "has changed and you have requested strict" in low:
        return (f"the host key of {where} has CHANGED since it was recorded in {known}; nasprof refuses to "
                f"connect (a reinstalled board, or someone in the middle): if the board was reinstalled, "
                f"remove the old key with `ssh-keygen -f {known_word} -R {shlex.quote(hostname)}` "
                "and add the new one after checking its fingerprint")
    if "host key is known" in low or "host key verification failed" in low:
        return (f"the host key of {where} is not known ({known}), and nasprof never accepts an unknown "
                f"key silently; check the board's fingerprint (`ssh-keygen -lf "
                f"/etc/ssh/ssh_host_ed25519_key.pub` on it) and add it once: `{scan}`, or connect once by "
                f"hand: `{_ssh_hint(s)}`")
    if "permission denied" in low or "too many authentication failures" in low:
        return (f"{where} refused the key ({_last_clause(text)}); install your public key on the board with "
                f"`ssh-copy-id {shlex.quote(s.host)}`{' (with -p ' + str(s.port) + ')' if s.port else ''}, "
                "or set identity=PATH for this device; a key with a passphrase needs ssh-agent (nasprof "
                "never prompts)")
    if "could not resolve hostname" in low or "name or service not known" in low:
        return (f"cannot resolve {hostname!r} for {device}: check the name (`ping {hostname}`), use the "
                "board's IP address, or add a Host entry to ~/.ssh/config")
    unreachable = ("connection refused", "timed out", "no route to host", "network is unreachable",
                   "host is down", "connection closed by", "kex_exchange_identification")
    if any(k in low for k in unreachable) and doing == "connecting":
        return (f"cannot reach {where} ({_last_clause(text)}); is the board on, on the network, with its SSH "
                f"server running? check with `{_ssh_hint(s)} true`")
    if any(k in low for k in ("connection refused", "no route to host", "network is unreachable")):
        return (f"cannot reach {where} while {doing} ({_last_clause(text)}); nothing was recorded — is the "
                f"board up? check with `{_ssh_hint(s)} true`, then run again (a table build resumes)")
    detail = f" ({_last_clause(text)})" if text else ""
    return (f"lost the connection to {where} while {doing}{detail}; nothing was recorded — check that the "
            f"board is up (`{_ssh_hint(s)} true`) and run again (a table build resumes where it stopped)")


def _last_clause(text: str) -> str:
    """The last sentence ssh printed (``Connection refused``), without its ``ssh: connect to host`` lead."""
    lines = [line.strip() for line in re.split(r"[\r\n]+|(?<=\.) (?=[A-Z])", text) if line.strip()]
    last = lines[-1] if lines else text
    return last.rstrip(".")[:200]


class SshTransport:
    """The OpenSSH client bound to one device's settings, with its own master connection.

    Not thread-safe; one instance per backend (one per device), as backends themselves are used.
    """

    def __init__(self, settings: SshSettings, device: str) -> None:
        if not settings.host:
            raise DeviceUnavailableError(f"device {device!r} has no host set")
        self.settings = settings
        self.device = device
        self._dir: str | None = None
        self._finalizer: weakref.finalize | None = None
        #: Calls made and files uploaded (tests and the benchmark read them).
        self.calls = 0
        self.uploads = 0

    # -- the command line ---------------------------------------------------------------------------------
    def _ssh(self) -> str:
        exe = shutil.which(self.settings.ssh)
        if exe is None:
            raise DeviceUnavailableError(
                f"no OpenSSH client ({self.settings.ssh!r} is not on PATH): install it (`apt install "
                "openssh-client`), or set ssh=PATH for this device"
            )
        return exe

    def _control_dir(self) -> str:
        if self._dir is None:
            # A short private path: unix sockets are limited to ~104 bytes, and %C is 40 characters.
            base = "/tmp" if os.path.isdir("/tmp") else None
            self._dir = tempfile.mkdtemp(prefix="nasprof-ssh-", dir=base)
            os.chmod(self._dir, 0o700)
            self._finalizer = weakref.finalize(self, _close_master, self._base_args(), self.settings.host,
                                               self._dir)
        return self._dir

    def _base_args(self) -> list[str]:
        s = self.settings
        args = [self._ssh()]
        if s.ssh_config:
            args += ["-F", s.ssh_config]
        args += [
            "-T",
            "-o", "BatchMode=yes",
            "-o", "StrictHostKeyChecking=yes",
            "-o", f"ConnectTimeout={max(1, int(s.connect_timeout_s))}",
            "-o", "ServerAliveInterval=5",
            "-o", "ServerAliveCountMax=3",
            "-o", "ControlMaster=auto",
            "-o", f"ControlPath={self._dir}/%C",
            "-o", f"ControlPersist={s.control_persist_s}",
        ]
        if s.port:
            args += ["-p", str(s.port)]
        if s.identity:
            args += ["-i", s.identity, "-o", "IdentitiesOnly=yes"]
        if s.known_hosts:
            args += ["-o", f"UserKnownHostsFile={s.known_hosts}"]
        return args

    def argv(self, command: str) -> list[str]:
        """The full ``ssh`` argument list that runs ``command`` (one shell command line) on the board."""
        self._control_dir()
        return [*self._base_args(), "--", self.settings.host, command]

    # -- calls --------------------------------------------------------------------------------------------
    def run(
        self,
        command: str,
        *,
        timeout_s: float = QUICK_TIMEOUT_S,
        doing: str = "running a command",
        stdin_file: Path | None = None,
    ) -> SshResult:
        """Run one board command line (built with ``remote_words``/``remote_path``); its exit status is
        returned, except that an OpenSSH failure raises ``DeviceUnavailableError``."""
        argv = self.argv(command)
        self.calls += 1
        try:
            if stdin_file is not None:
                with open(stdin_file, "rb") as f:
                    proc = subprocess.run(argv, stdin=f, capture_output=True, timeout=timeout_s, check=False)
            else:
                proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout_s,
                                      check=False)
        except subprocess.TimeoutExpired:
            raise self.timed_out(doing, timeout_s) from None
        except OSError as exc:
            raise DeviceUnavailableError(f"cannot run the OpenSSH client: {exc}") from None
        stderr = proc.stderr.decode(errors="replace")
        if proc.returncode == SSH_FAILED:
            raise DeviceUnavailableError(classify_ssh_failure(stderr, self.settings, self.device, doing))
        return SshResult(proc.stdout, stderr, proc.returncode)

    def timed_out(self, doing: str, timeout_s: float) -> DeviceUnavailableError:
        """The error for a board that did not answer within ``timeout_s``."""
        return DeviceUnavailableError(
            f"{self.device} ({self.settings.destination}) did not finish {doing} within {timeout_s:g} s; "
            "nothing was recorded — the board may be hung or overloaded (check `nasprof doctor --device "
            f"{self.device}`); for a model that really takes that long, raise run_timeout_s"
        )

    def start(self, command: str) -> subprocess.Popen[bytes]:
        """Start one board command line with pipes to its stdin, stdout and stderr, over the shared
        connection, and return at once (the caller owns the process: ``session.BoardSession``)."""
        argv = self.argv(command)
        self.calls += 1
        try:
            return subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE)
        except OSError as exc:
            raise DeviceUnavailableError(f"cannot run the OpenSSH client: {exc}") from None

    def connect(self) -> None:
        """Open (or reuse) the master connection; raises ``DeviceUnavailableError`` saying why it cannot."""
        self.run("true", doing="connecting", timeout_s=self.settings.connect_timeout_s + 30)

    def upload(self, local: Path, directory: str, name: str, timeout_s: float) -> SshResult:
        """Copy ``local`` to ``directory/name`` on the board over the shared connection (``cat >``); exit
        status ``STORE_FAILED`` when the board cannot store it (see ``store_script``)."""
        self.uploads += 1
        script = store_script(directory, name, Path(local).stat().st_size)
        return self.run(script, timeout_s=timeout_s, doing=f"uploading {Path(local).name}", stdin_file=local)

    def master_pid(self) -> int | None:
        """The master connection's process id (``ssh -O check``), or None when none runs."""
        if self._dir is None:
            return None
        try:
            proc = subprocess.run([*self._base_args(), "-O", "check", "--", self.settings.host],
                                  stdin=subprocess.DEVNULL, capture_output=True, timeout=10, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return None
        m = _PID_RE.search(proc.stderr.decode(errors="replace"))
        return int(m.group(1)) if m else None

    def close(self) -> None:
        """End the master connection and remove the private directory (also done at exit)."""
        if self._finalizer is not None:
            self._finalizer()
        self._dir = None
        self._finalizer = None


def store_script(directory: str, name: str, size: int) -> str:
    """A board command that stores its stdin as ``directory/name``: under a temporary name first, so the
    final name appears only once every byte arrived (a dropped connection may leave a stray ``.part`` file,
    never a truncated file under the final name). Exits non-zero when it cannot (a full disk, no
    permission), after reading its stdin to the end."""
    tmp = f"{directory}/.{name}.part-{os.getpid()}"
    d, t, final = remote_path(directory), remote_path(tmp), remote_path(f"{directory}/{name}")
    return (f"umask 077 && mkdir -p {d} && cat > {t} && n=$(wc -c < {t}) && [ \"$n\" -eq {size} ] "
            f"&& mv -f {t} {final} || {{ rm -f {t}; cat > /dev/null; exit 1; }}")


def _close_master(base: Sequence[str], host: str, directory: str) -> None:
    with contextlib.suppress(OSError, subprocess.TimeoutExpired):
        subprocess.run([*base, "-O", "exit", "--", host], stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=10, check=False)
    shutil.rmtree(directory, ignore_errors=True)
