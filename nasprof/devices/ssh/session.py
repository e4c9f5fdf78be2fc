"""The runner's session on the board: many measurements over one ``ssh`` process and one board process.

A measurement over its own ``ssh`` call pays a process start on each side (the ``ssh`` client, the board's
shell and Python) for every table entry. A session pays them once per backend: ``BoardSession.start`` runs
``board_runner.py session`` over the device's shared connection (``SshTransport.start``) and the two
sides then talk over its stdin and stdout, the protocol documented in ``board_runner.py``: a hello line
first, then one JSON line per request (a model to store follows it as ``store_size`` raw bytes) and one
JSON line per answer. The board's process imports onnxruntime once and measures in itself, with fresh
onnxruntime sessions for every measurement as the local ``cpu`` backend does.

Every exchange has a deadline: past it the ``ssh`` process is killed and ``SessionTimeout`` raised (a hung
board never hangs nasprof). A session whose process ends — a dropped connection, a board that went down, a
runner killed there — raises ``SessionEnded`` with the exit status and the end of what the board printed on
stderr, read while waiting (so the board never blocks on a full stderr pipe). Either way the session is
closed; what the error means is the backend's to say, and its next measurement opens a new session.

The ``ssh`` process is a client of the device's master connection, which holds the session's pipes: when
that process is killed, the master drops the session as soon as it notices (the board's runner then stops
at its next onnxruntime session), so an answer already on its way may still arrive, and the backend opens a
new session for the next request (``alive`` is False).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import select
import subprocess
import time
import weakref
from collections.abc import Generator
from pathlib import Path
from typing import Any

from nasprof.devices.ssh.transport import SshResult, SshTransport

__all__ = ["BoardSession", "SessionEnded", "SessionTimeout"]

#: Bytes of the board's stderr kept for error messages.
STDERR_TAIL = 4096
#: Seconds a session whose output ended is given to report its exit status.
EXIT_WAIT_S = 5.0
#: Seconds ``close`` waits for the board's runner to end once its stdin is closed.
CLOSE_WAIT_S = 2.0


class SessionEnded(Exception):
    """The session's process ended, or did not start a session: ``result`` holds its exit status, what it
    printed on stdout (unanswered) and the end of its stderr."""

    def __init__(self, result: SshResult) -> None:
        super().__init__(result.tail())
        self.result = result


class SessionTimeout(Exception):
    """No answer before the deadline: the session's ``ssh`` process was killed."""


class BoardSession:
    """One ``board_runner.py session`` over ``ssh``: ``request`` sends one request and returns its answer.

    Opened by ``start`` (which waits for the hello line), ended by ``close`` and at exit (a finalizer closes
    its stdin: the board's runner sees the end of its input and exits). Not thread-safe: one per backend.
    ``key`` is the caller's (the CPUs the session is pinned to). Counters, read by tests and the benchmark:
    ``requests``, ``sent_bytes``, ``received_bytes``; ``board_pid`` is the runner's process id on the
    board, ``ssh_pid`` the local ``ssh`` client's.
    """

    def __init__(self, proc: subprocess.Popen[bytes], key: Any) -> None:
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        self._proc = proc
        self._fds = (proc.stdin.fileno(), proc.stdout.fileno(), proc.stderr.fileno())
        for fd in self._fds:
            os.set_blocking(fd, False)
        self._finalizer = weakref.finalize(self, _end, proc)
        self._stdout = bytearray()
        self._scanned = 0  # bytes of _stdout known to hold no newline
        self._stderr = bytearray()
        self._stderr_open = True
        self.key = key
        self.hello: dict[str, Any] = {}
        self.board_pid: int | None = None
        self.requests = 0
        self.sent_bytes = 0
        self.received_bytes = 0
        self.last_used = time.monotonic()

    @classmethod
    def start(cls, transport: SshTransport, command: str, *, key: Any, timeout_s: float) -> BoardSession:
        """Run ``command`` (a board command line starting ``board_runner.py session``) and wait for its hello
        line; ``SessionEnded`` when it ends first or prints something else, ``SessionTimeout`` past
        ``timeout_s``."""
        session = cls(transport.start(command), key)
        hello = session._exchange(None, time.monotonic() + timeout_s)
        if not hello.get("session") or not isinstance(hello.get("pid"), int):
            session.close(kill=True)
            text = hello.get("unparsable") or json.dumps(hello)
            raise SessionEnded(SshResult(str(text).encode(), "the runner did not start a session", 1))
        session.hello = hello
        session.board_pid = int(hello["pid"])
        return session

    @property
    def ssh_pid(self) -> int:
        return self._proc.pid

    def alive(self) -> bool:
        """True while the session can take a request (not closed, its ``ssh`` process running)."""
        return self._finalizer.alive and self._proc.poll() is None

    def idle_s(self) -> float:
        """Seconds since the last answer (or the start)."""
        return time.monotonic() - self.last_used

    def request(self, header: dict[str, Any], *, body: Path | None = None, timeout_s: float
                ) -> dict[str, Any]:
        """Send ``header`` (one JSON line) and, when ``body`` is given, that file's bytes after it (its size
        as ``store_size``); return the answer line parsed. A line that is not a JSON object comes back as
        ``{"unparsable": TEXT}`` and closes the session (out of step). ``SessionEnded``, or
        ``SessionTimeout`` past ``timeout_s``, otherwise; the session is closed then, as it is after any
        other exception (an interrupt, a body that cannot be read) left the stream half-written."""
        size = Path(body).stat().st_size if body is not None else 0
        if body is not None:
            header = {**header, "store_size": size}
        chunks = _chunks(json.dumps(header, separators=(",", ":")).encode() + b"\n", body, size)
        self.requests += 1
        try:
            return self._exchange(chunks, time.monotonic() + timeout_s)
        except (SessionEnded, SessionTimeout):
            raise
        except BaseException:
            self.close(kill=True)
            raise
        finally:
            chunks.close()
            self.last_used = time.monotonic()

    def close(self, *, kill: bool = False) -> None:
        """End the session: close its stdin (the runner exits), or with ``kill`` kill its ``ssh`` process."""
        if kill and self._proc.poll() is None:
            with contextlib.suppress(OSError):
                self._proc.kill()
        self._finalizer()

    # -- the exchange ---------------------------------------------------------------------------------------
    def _exchange(self, chunks: Generator[bytes, None, None] | None, deadline: float) -> dict[str, Any]:
        """Write ``chunks`` to the board while reading its stdout (and stderr) until one line arrived."""
        if not self._finalizer.alive:
            raise SessionEnded(SshResult(b"", "the session was closed", -1))
        fin, fout, ferr = self._fds
        poller = select.poll()
        poller.register(fout, select.POLLIN)
        if self._stderr_open:
            poller.register(ferr, select.POLLIN)
        pending = memoryview(next(chunks, b"") if chunks is not None else b"")
        writing = bool(pending)  # True until the last byte of the request is written
        if writing:
            poller.register(fin, select.POLLOUT)
        while True:
            end = self._stdout.find(b"\n", self._scanned)
            if end >= 0:
                line = bytes(self._stdout[:end])
                del self._stdout[: end + 1]
                self._scanned = 0
                self.received_bytes += end + 1
                return self._parse(line, out_of_step=writing)
            self._scanned = len(self._stdout)
            left = deadline - time.monotonic()
            if left <= 0:
                self.close(kill=True)
                raise SessionTimeout()
            for fd, events in poller.poll(max(1, math.ceil(left * 1000))):
                if fd == fout:
                    data = _read(fd)
                    if data == b"":
                        raise self._ended()
                    self._stdout += data or b""
                elif fd == ferr:
                    data = _read(fd)
                    if data == b"":
                        poller.unregister(ferr)
                        self._stderr_open = False
                    elif data:
                        self._stderr = (self._stderr + data)[-STDERR_TAIL:]
                elif fd == fin and writing:
                    if events & (select.POLLERR | select.POLLHUP):  # gone: its output ends next
                        poller.unregister(fin)
                        writing = False
                        continue
                    try:
                        n = os.write(fin, pending)
                    except BlockingIOError:
                        continue
                    except OSError:
                        poller.unregister(fin)
                        writing = False
                        continue
                    self.sent_bytes += n
                    pending = pending[n:]
                    if not pending:
                        assert chunks is not None
                        pending = memoryview(next(chunks, b""))
                        if not pending:
                            poller.unregister(fin)
                            writing = False

    def _parse(self, line: bytes, *, out_of_step: bool) -> dict[str, Any]:
        try:
            doc = json.loads(line)
        except ValueError:
            doc = None
        if not isinstance(doc, dict) or out_of_step:  # an answer before the whole request was sent, too
            self.close(kill=True)
            return {"unparsable": line[-200:].decode(errors="replace")}
        return doc

    def _ended(self) -> SessionEnded:
        """The board's output ended: the exit status and the rest of stderr; the session closed."""
        proc = self._proc
        try:
            code = proc.wait(timeout=EXIT_WAIT_S)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(OSError):
                proc.kill()
            code = proc.wait()
        while self._stderr_open:
            data = _read(self._fds[2])
            if not data:
                break
            self._stderr = (self._stderr + data)[-STDERR_TAIL:]
        result = SshResult(bytes(self._stdout), self._stderr.decode(errors="replace"), code)
        self.close()
        return SessionEnded(result)


def _read(fd: int) -> bytes | None:
    """What is there to read (``b""`` at the end, None when nothing is there yet)."""
    try:
        return os.read(fd, 1 << 20)
    except BlockingIOError:
        return None
    except OSError:
        return b""


def _chunks(line: bytes, body: Path | None, size: int) -> Generator[bytes, None, None]:
    """``line``, then exactly the first ``size`` bytes of ``body`` (the board reads that many)."""
    yield line
    if body is not None:
        left = size
        with open(body, "rb") as f:
            while left > 0:
                chunk = f.read(min(left, 1 << 16))
                if not chunk:
                    raise OSError(f"{body} shrank while it was sent to the board")
                left -= len(chunk)
                yield chunk


def _end(proc: subprocess.Popen[bytes]) -> None:
    """Close the session's stdin, give the runner ``CLOSE_WAIT_S`` to end, then kill what is left."""
    with contextlib.suppress(OSError):
        if proc.stdin is not None:
            proc.stdin.close()
    try:
        proc.wait(timeout=CLOSE_WAIT_S)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(OSError):
            proc.kill()
        proc.wait()
    for f in (proc.stdout, proc.stderr):
        with contextlib.suppress(OSError):
            if f is not None:
                f.close()
