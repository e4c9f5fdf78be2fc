"""Several interchangeable devices sharing one list of jobs (`nasprof.devices.pool.spread`), on real CPU
backends: a device that vanishes hands its job to another, any other error stops the pool."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from nasprof.devices.base import MeasureSpec
from nasprof.devices.cpu import CpuBackend
from nasprof.devices.pool import spread
from nasprof.errors import DeviceUnavailableError, InputError, ModelError
from nasprof.profiler.measurement import Measurement

FAST = MeasureSpec(warmup=1, runs=2, sessions=1)


class _Vanishing(CpuBackend):
    """The local CPU, unplugged after ``lives`` measurements (as a phone pulled from its cable)."""

    def __init__(self, device: str, lives: int) -> None:
        super().__init__(device)
        self.lives = lives
        self.started = 0

    def measure(self, model: Path, spec: MeasureSpec) -> Measurement:
        self.started += 1
        if self.started > self.lives:
            raise DeviceUnavailableError(f"{self.device} vanished")
        return super().measure(model, spec)


def _measure(backend: CpuBackend, model: Path, report: object) -> float:
    return backend.measure(model, FAST).median_ms


def test_every_job_done_once_in_order_with_its_device(conv_model: Path) -> None:
    a, b = CpuBackend("cpu-a"), CpuBackend("cpu-b")
    seen: list[tuple[int, int]] = []
    lock = threading.Lock()

    def progress(done: int, total: int, what: str) -> None:
        with lock:
            seen.append((done, total))

    def run(backend: CpuBackend, job: tuple[int, Path], report: object) -> int:
        backend.measure(job[1], FAST)
        report(1, 1, backend.device)  # type: ignore[operator]
        return job[0]

    done = spread([a, b], [(i, conv_model) for i in range(8)], run, progress=progress)
    assert [d.result for d in done] == list(range(8))
    assert {d.device for d in done} <= {"cpu-a", "cpu-b"}
    assert sorted(seen) == [(k, 8) for k in range(1, 9)]  # one step per job, counted over both devices


def test_a_vanished_device_hands_its_job_to_another(conv_model: Path) -> None:
    gone, ok = _Vanishing("cpu-gone", lives=0), CpuBackend("cpu-ok")
    both_started = threading.Barrier(2, timeout=60)
    first: set[str] = set()

    def run(backend: CpuBackend, model: Path, report: object) -> float:
        if backend.device not in first:  # each device holds a job before either measures
            first.add(backend.device)
            both_started.wait()
        return backend.measure(model, FAST).median_ms

    done = spread([gone, ok], [conv_model] * 6, run)
    assert len(done) == 6 and all(d.result > 0 for d in done)
    assert gone.started == 1  # it took a job and vanished in it...
    assert {d.device for d in done} == {"cpu-ok"}  # ...which cpu-ok measured from the start


def test_every_device_gone_names_each_reason(conv_model: Path) -> None:
    devices = [_Vanishing("cpu-a", lives=1), _Vanishing("cpu-b", lives=0)]
    with pytest.raises(DeviceUnavailableError, match=r"with \d of 4 job\(s\) not done .*cpu-b vanished"):
        spread(devices, [conv_model] * 4, _measure)  # type: ignore[arg-type]


def test_another_error_stops_the_pool(tmp_path: Path, conv_model: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    started: list[Path] = []

    def run(backend: CpuBackend, model: Path, report: object) -> float:
        started.append(model)
        return backend.measure(model, FAST).median_ms

    with pytest.raises(ModelError):
        spread([CpuBackend("cpu-a")], [conv_model, bad, conv_model, conv_model], run)
    assert len(started) == 2  # nothing after the failure
    with pytest.raises(InputError, match="more than once"):
        spread([CpuBackend("x"), CpuBackend("x")], [conv_model], run)
