"""The table builder's queue: pending layers, exported ahead of the devices that measure them."""

from __future__ import annotations

import hashlib
import threading
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["LayerQueue"]


class LayerQueue:
    """Pending layers with exports submitted ``ahead`` of the workers that take them.

    A worker's item stays *in flight* until it calls ``done`` or ``put_back``; ``get`` returns None only when
    nothing is pending and nothing is in flight, so a layer handed back by a device that vanished is taken
    by a device still working, even one that found the queue empty a moment before.
    """

    def __init__(self, layers: Sequence[Any], exporter: Any, workdir: Path, ahead: int) -> None:
        self._todo = deque(layers)
        self._ready: deque[tuple[Any, int]] = deque()
        self._exporter, self._workdir, self._ahead = exporter, workdir, ahead
        self._lock = threading.Condition()
        self._in_flight = 0

    def _fill(self) -> None:
        while len(self._ready) < self._ahead and self._todo:
            layer = self._todo.popleft()
            name = hashlib.sha1(layer.key.encode()).hexdigest()[:20] + ".onnx"
            self._ready.append((layer, self._exporter.submit(layer, self._workdir / name)))

    def get(self) -> tuple[Any, int] | None:
        with self._lock:
            while True:
                self._fill()
                if self._ready:
                    item = self._ready.popleft()
                    self._fill()
                    self._in_flight += 1
                    return item
                if self._in_flight == 0:
                    return None
                self._lock.wait()  # another device's layer may come back

    def done(self) -> None:
        with self._lock:
            self._in_flight -= 1
            self._lock.notify_all()

    def has_work(self) -> bool:
        with self._lock:
            return bool(self._todo or self._ready)

    def put_back(self, layer: Any) -> None:
        with self._lock:
            self._todo.appendleft(layer)
            self._in_flight -= 1
            self._lock.notify_all()
