"""Export layers to ONNX ahead of the measurement, in a child process.

Why a child process: exporting one block with torch takes 50-200 ms, a large share of a table build if done
between measurements. A thread would overlap it but hold the GIL while the timing loop needs it, adding
waits to timed samples; a child process overlaps it cleanly. Why not ``ProcessPoolExecutor``: its workers
hold both ends of their queue and linger when the parent is killed with -9, whereas this child reads
requests from its stdin and exits at end-of-file, so it dies with the build.

Protocol: one JSON request per line on the child's stdin (``{"id", "layer": Layer.to_dict(), "path"}``);
one JSON reply per line on a private pipe (``{"id", "ok", "export_s", "error"}``), in request order. The
child's stdout and stderr go to a log file so torch's chatter never corrupts replies or the progress bar.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

__all__ = ["ExportResult", "InlineExporter", "ProcessExporter"]


class ExportResult:
    """Outcome of exporting one layer: ``path`` and ``export_s`` on success, else ``error``."""

    __slots__ = ("path", "export_s", "error")

    def __init__(self, path: Path, export_s: float, error: str | None) -> None:
        self.path, self.export_s, self.error = path, export_s, error


class InlineExporter:
    """Exports in the calling thread when asked (no prefetch): simplest, used with ``export_jobs=0``."""

    def __init__(self, int8: bool = False, batch: int = 1) -> None:
        self.int8, self.batch = int8, batch
        self._pending: dict[int, tuple[Any, Path]] = {}
        self._next = 0
        self._lock = threading.Lock()

    def submit(self, layer: Any, path: Path) -> int:
        with self._lock:
            self._next += 1
            self._pending[self._next] = (layer, path)
            return self._next

    def result(self, ticket: int) -> ExportResult:
        with self._lock:
            layer, path = self._pending.pop(ticket)
        return _export(layer, path, self.int8, self.batch)

    def close(self) -> None:
        self._pending.clear()


class ProcessExporter:
    """Exports in one child process, replies in order; ``result(ticket)`` blocks until that one is done."""

    def __init__(self, log_path: Path, int8: bool = False, batch: int = 1) -> None:
        self._log_path = log_path
        self.int8, self.batch = int8, batch
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._replies: Any = None
        self._sent: OrderedDict[int, tuple[dict[str, Any], Path]] = OrderedDict()
        self._done: dict[int, ExportResult] = {}
        self._next = 0

    def _start(self) -> None:
        r, w = os.pipe()
        log = open(self._log_path, "ab")  # noqa: SIM115 - handed to the child, closed below
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "nasprof.tables.export_worker", str(w)],
                stdin=subprocess.PIPE, stdout=log, stderr=log, pass_fds=(w,),
                # One thread: the measurement owns the other cores.
                env={**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"},
            )
        finally:
            os.close(w)
            log.close()
        self._replies = os.fdopen(r, "rb")
        # Re-send what a crashed predecessor had not answered (in order).
        for ticket, (req, _) in self._sent.items():
            self._write({**req, "id": ticket})

    def _write(self, req: dict[str, Any]) -> None:
        assert self._proc is not None and self._proc.stdin is not None
        self._proc.stdin.write((json.dumps(req) + "\n").encode())
        self._proc.stdin.flush()

    def submit(self, layer: Any, path: Path) -> int:
        with self._lock:
            if self._proc is None:
                self._start()
            self._next += 1
            try:
                req = {"layer": layer.to_dict(), "path": str(path), "int8": self.int8, "batch": self.batch}
            except Exception as exc:  # recorded with the entry like any export failure
                error = f"export failed: cannot serialise layer: {exc}"
                self._done[self._next] = ExportResult(path, 0.0, error)
                return self._next
            self._sent[self._next] = (req, path)
            self._write({**req, "id": self._next})
            return self._next

    def result(self, ticket: int) -> ExportResult:
        with self._lock:
            while ticket not in self._done:
                if ticket not in self._sent:
                    raise KeyError(f"unknown export ticket {ticket}")  # a caller bug, not a layer's fault
                self._read_one()
            return self._done.pop(ticket)

    def _read_one(self) -> None:
        line = self._replies.readline() if self._replies is not None else b""
        if not line:
            # The child died (crash in the exporter): blame the oldest unanswered layer, restart for the rest.
            first, (_, path) = next(iter(self._sent.items()))
            del self._sent[first]
            self._done[first] = ExportResult(path, 0.0, f"export process died ({self._log_tail()})")
            self._reap()
            if self._sent:
                self._start()
            return
        reply = json.loads(line)
        ticket = int(reply["id"])
        _, path = self._sent.pop(ticket)
        self._done[ticket] = ExportResult(path, float(reply.get("export_s", 0.0)), reply.get("error"))

    def _log_tail(self) -> str:
        try:
            text = self._log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "no log"
        return " | ".join(text[-3:]) or "no output"

    def _reap(self) -> None:
        if self._proc is not None:
            if self._proc.stdin is not None:
                self._proc.stdin.close()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None
        if self._replies is not None:
            self._replies.close()
            self._replies = None

    def close(self) -> None:
        with self._lock:
            self._sent.clear()
            self._reap()


def _export(layer: Any, path: Path, int8: bool = False, batch: int = 1) -> ExportResult:
    import warnings

    from nasprof.space import export_layer

    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer warnings would break the progress bar
            export_layer(layer, path, batch=batch)
    except Exception as exc:  # any export failure is recorded with the entry, the build goes on
        return ExportResult(path, time.perf_counter() - t0, f"export failed: {type(exc).__name__}: {exc}")
    if int8:
        from nasprof.space.quantize import quantize_int8

        try:  # quantised in place: the float file is only a step on the way
            quantize_int8(path, path)
        except Exception as exc:
            return ExportResult(path, time.perf_counter() - t0, f"int8 quantisation failed: {exc}")
    return ExportResult(path, time.perf_counter() - t0, None)


def _serve(reply_fd: int) -> None:
    """Child main loop: export each requested layer, reply on ``reply_fd``; exit at end of stdin."""
    from nasprof.space import Layer

    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # export will fail with a clear message per layer
        pass
    with os.fdopen(reply_fd, "w") as out:
        for line in sys.stdin:
            req = json.loads(line)
            try:
                layer = Layer.from_dict(req["layer"])
            except Exception as exc:
                res = ExportResult(Path(req["path"]), 0.0, f"export failed: bad layer: {exc}")
            else:
                res = _export(layer, Path(req["path"]), bool(req.get("int8", False)),
                              int(req.get("batch", 1)))
            out.write(json.dumps({"id": req["id"], "export_s": res.export_s, "error": res.error}) + "\n")
            out.flush()


if __name__ == "__main__":
    _serve(int(sys.argv[1]))
