"""Every registered backend passes the shared contract (``nasprof.testing.backend_contract``).

Backends that cannot run here (no GPU, no phone attached) are still checked for a proper ``available()``
answer and for refusing to measure; their measuring tests skip with the backend's own reason.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from nasprof.devices import registry
from nasprof.devices.base import Backend, MeasureSpec
from nasprof.devices.config import DEVICES_ENV
from nasprof.profiler.measurement import Measurement
from nasprof.testing.backend_contract import CONTRACT_SPEC, BackendContract, backend_params


@pytest.fixture(autouse=True)
def _own_devices_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DEVICES_ENV, str(tmp_path / "devices.toml"))


class TestEveryRegisteredBackend(BackendContract):
    @pytest.fixture(params=backend_params())
    def backend(self, request: pytest.FixtureRequest) -> Backend:
        return registry.create(request.param)

    @pytest.fixture
    def spec(self, backend: Backend) -> MeasureSpec:
        if backend.name == "cuda":
            # The time-based warm-up exists to get real clocks to boost; tests check behaviour, not speed.
            return replace(CONTRACT_SPEC, options={"min_warmup_s": 0.0})
        return CONTRACT_SPEC


def test_every_backend_class_is_covered() -> None:
    ids = {p.id for p in backend_params()}
    assert {"cpu", "cuda", "mcu"} <= ids
    assert len([i for i in ids if i.startswith("stm32")]) == 1  # the boards are one backend, tested once


class _WrongCount(Backend):
    """Returns one sample whatever the spec asks: the contract must catch it."""

    name = "wrongcount"

    def available(self) -> tuple[bool, str]:
        return True, ""

    def measure(self, model: Path, spec: MeasureSpec) -> Measurement:
        return Measurement(device=self.device, backend=self.name, samples_ms=(1.0,))


class _SilentlyUnavailable(Backend):
    """Says no without saying why: the contract must catch it."""

    name = "silent"

    def available(self) -> tuple[bool, str]:
        return False, ""

    def measure(self, model: Path, spec: MeasureSpec) -> Measurement:
        raise RuntimeError("not a DeviceUnavailableError")


def test_the_contract_catches_broken_backends(tmp_path: Path) -> None:
    from nasprof.testing.backend_contract import make_contract_model

    suite = BackendContract()
    model = make_contract_model(tmp_path / "m.onnx")
    with pytest.raises(AssertionError):
        suite.test_measure_returns_samples_in_ms(_WrongCount(), model, CONTRACT_SPEC)
    with pytest.raises(AssertionError, match="must say what to install"):
        suite.test_available_answers_with_a_reason(_SilentlyUnavailable())
    with pytest.raises(RuntimeError):
        suite.test_unavailable_backend_refuses_to_measure(_SilentlyUnavailable(), model, CONTRACT_SPEC)
