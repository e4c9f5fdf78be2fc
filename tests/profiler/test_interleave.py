"""Interleaved rounds: real measurements on the local CPU, the MCU estimator, and exact merge/split sums."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import make_conv_model

from nasprof.devices import MeasureSpec, get_device
from nasprof.profiler.interleave import half_medians, measure_interleaved, merge_rounds
from nasprof.profiler.measurement import Measurement

SPEC = MeasureSpec(warmup=1, runs=4, sessions=3)


class RecordingBackend:
    """The real CPU backend, with the order of its calls written down."""

    def __init__(self, device: str = "cpu") -> None:
        self.inner = get_device(device)
        self.calls: list[tuple[str, int]] = []

    def measure(self, path: Path, spec: MeasureSpec) -> Measurement:
        self.calls.append((Path(path).name, spec.sessions))
        return self.inner.measure(path, spec)


def test_rounds_interleave_models_and_merge_into_sessions(tmp_path: Path) -> None:
    paths = [make_conv_model(tmp_path / f"m{i}.onnx", channels=4 + 4 * i) for i in range(3)]
    backend = RecordingBackend()
    seen: list[tuple[int, int]] = []
    ms = measure_interleaved(backend, paths, SPEC, seed=1, progress=lambda d, t, _: seen.append((d, t)))
    # One fresh session per model per round; every model measured once before any model a second time.
    assert all(sessions == 1 for _, sessions in backend.calls) and len(backend.calls) == 9
    for r in range(3):
        names = sorted(name for name, _ in backend.calls[3 * r : 3 * r + 3])
        assert names == ["m0.onnx", "m1.onnx", "m2.onnx"]
    assert seen[-1] == (9, 9)
    for m in ms:
        assert m.sessions == 3 and m.n == 3 * SPEC.runs and m.metadata["rounds"] == 3
        assert m.session_index == (0,) * 4 + (1,) * 4 + (2,) * 4
    # Results come back in the order of ``paths``: the widest model is the slowest.
    assert ms[2].median_ms > ms[0].median_ms


def test_an_estimate_is_computed_once(tmp_path: Path) -> None:
    path = make_conv_model(tmp_path / "m.onnx")
    backend = RecordingBackend("stm32f746")
    (m,) = measure_interleaved(backend, [path], SPEC)
    assert len(backend.calls) == 1 and m.estimated and m.metadata["rounds"] == 1


def _m(samples: list[float], **kw: Any) -> Measurement:
    return Measurement(device="cpu", backend="cpu", samples_ms=tuple(samples), metadata={"x": 1}, **kw)


def test_merge_and_halves_are_exact() -> None:
    merged = merge_rounds([_m([1.0, 3.0]), _m([2.0, 4.0]), _m([5.0, 7.0]), _m([6.0, 8.0])])
    assert merged.samples_ms == (1.0, 3.0, 2.0, 4.0, 5.0, 7.0, 6.0, 8.0)
    assert merged.session_index == (0, 0, 1, 1, 2, 2, 3, 3)
    assert merged.metadata == {"x": 1, "rounds": 4}
    # Even rounds: 1, 3, 5, 7 -> median 4; odd rounds: 2, 4, 6, 8 -> median 5.
    assert half_medians(merged) == (4.0, 5.0)
    assert half_medians(_m([1.0, 2.0])) is None
    with pytest.raises(ValueError):
        merge_rounds([])
    with pytest.raises(ValueError, match="rounds"):
        measure_interleaved(RecordingBackend(), [], SPEC, rounds=0)
