"""The contract every device backend passes: one pytest suite, shared by all backends' tests.

Modelled on Optuna's ``optuna/testing/pytest_samplers.py``: the suite lives in the library, and a test module
subclasses it and supplies the backend through a fixture::

    from nasprof.testing.backend_contract import BackendContract

    class TestMyBackend(BackendContract):
        @pytest.fixture
        def backend(self):
            return MyBackend(device="lab-board")

To run it over every registered backend, parametrize the fixture with ``backend_params()`` (that is what
``tests/devices/test_contract.py`` does). Availability is decided when a test runs: tests that need a working
device skip with the backend's own reason when it is unavailable here, and an unavailable backend must still
answer ``available()`` properly and refuse ``measure()`` with ``DeviceUnavailableError``.

What the suite checks (``Backend``'s docstring is the contract):

- ``name``/``device`` are non-empty; ``available()`` never raises and gives a reason when it says no;
- ``describe()`` of a usable device names the backend and device and is JSON-serialisable;
- ``measure()`` returns a ``Measurement`` for this backend and device with positive, finite samples in ms —
  ``runs`` x ``sessions`` of them, labelled by session, unless it is an estimate — and JSON-serialisable
  metadata that survives a round trip;
- ``per_node=True`` gives per-node times attributed to the model's blocks (measuring backends);
- a missing or corrupt model raises ``ModelError``; nothing is left behind in the working directory.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import pytest

from nasprof.devices.base import Backend, BackendRegistry, MeasureSpec, registry
from nasprof.errors import DeviceUnavailableError, ModelError, NasprofError
from nasprof.profiler.measurement import Measurement, NodeTime

__all__ = ["BackendContract", "backend_params", "make_contract_model", "CONTRACT_SPEC"]

#: Small on purpose: the suite checks behaviour, not speed, and runs for every backend.
CONTRACT_SPEC = MeasureSpec(threads=1, warmup=2, runs=5, sessions=2, per_node_runs=3)


def make_contract_model(path: Path, channels: int = 8, size: int = 16) -> Path:
    """Two conv-relu blocks and a pooling head, named the way the torch exporter names module scopes."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    nodes, inits = [], []
    prev, cin = "input", 3
    for b in range(2):
        w = rng.standard_normal((channels, cin, 3, 3)).astype(np.float32)
        inits += [numpy_helper.from_array(w, f"w{b}"),
                  numpy_helper.from_array(np.zeros(channels, np.float32), f"b{b}")]
        conv, relu = f"/blocks.{b}/conv/Conv_output_0", f"/blocks.{b}/act/Relu_output_0"
        nodes.append(helper.make_node("Conv", [prev, f"w{b}", f"b{b}"], [conv], name=f"/blocks.{b}/conv/Conv",
                                      pads=[1, 1, 1, 1]))
        nodes.append(helper.make_node("Relu", [conv], [relu], name=f"/blocks.{b}/act/Relu"))
        prev, cin = relu, channels
    pool = helper.make_node("GlobalAveragePool", [prev], ["output"], name="/head/pool/GlobalAveragePool")
    nodes.append(pool)
    graph = helper.make_graph(
        nodes, "contract", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, channels, 1, 1])], inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def backend_params(reg: BackendRegistry = registry) -> list[Any]:
    """One ``pytest.param`` per backend class in ``reg`` (the first name registered for it).

    Names that build the same class (the MCU boards all build ``McuBackend``) are one backend, tested once.
    A name that cannot be built without configuration (``mcu`` needs a board) is kept with a skip mark that
    gives the reason.
    """
    params: list[Any] = []
    seen: set[type] = set()
    for name in reg.names():
        try:
            backend = reg.create(name)
        except NasprofError as exc:
            params.append(pytest.param(name, id=name, marks=pytest.mark.skip(
                reason=f"{name} needs configuration to be built: {exc}")))
            continue
        if type(backend) in seen:
            continue
        seen.add(type(backend))
        params.append(pytest.param(name, id=name))
    return params


def _json_roundtrip(value: Any) -> Any:
    return json.loads(json.dumps(value))


class BackendContract:
    """The shared suite. Subclasses provide the ``backend`` fixture; ``spec`` may be overridden too."""

    @pytest.fixture
    def backend(self) -> Backend:
        raise NotImplementedError("subclasses provide the backend fixture")

    @pytest.fixture
    def spec(self) -> MeasureSpec:
        return CONTRACT_SPEC

    @pytest.fixture
    def model(self, tmp_path: Path) -> Path:
        return make_contract_model(tmp_path / "contract.onnx")

    @pytest.fixture
    def usable(self, backend: Backend) -> Backend:
        ok, reason = backend.available()
        if not ok:
            pytest.skip(f"{backend.device} is not available here: {reason}")
        return backend

    # -- every backend, available or not ---------------------------------------------------------------
    def test_has_name_and_device(self, backend: Backend) -> None:
        assert isinstance(backend.name, str) and backend.name
        assert isinstance(backend.device, str) and backend.device

    def test_available_answers_with_a_reason(self, backend: Backend) -> None:
        result = backend.available()
        assert isinstance(result, tuple) and len(result) == 2
        ok, reason = result
        assert isinstance(ok, bool) and isinstance(reason, str)
        if not ok:
            assert reason.strip(), "an unavailable backend must say what to install, attach or configure"

    def test_unavailable_backend_refuses_to_measure(self, backend: Backend, model: Path, spec: MeasureSpec
                                                    ) -> None:
        ok, _ = backend.available()
        if ok:
            pytest.skip(f"{backend.device} is available here")
        with pytest.raises(DeviceUnavailableError):
            backend.measure(model, spec)

    # -- backends that work here -----------------------------------------------------------------------
    def test_describe_names_itself_and_is_json(self, usable: Backend) -> None:
        # Only asked of a reachable device: describe() may need to connect (an Android phone over adb).
        info = usable.describe()
        assert info["backend"] == usable.name
        assert info["device"] == usable.device
        assert _json_roundtrip(info) == info

    def test_measure_returns_samples_in_ms(self, usable: Backend, model: Path, spec: MeasureSpec) -> None:
        m = usable.measure(model, spec)
        assert isinstance(m, Measurement)
        assert m.backend == usable.name
        assert m.device == usable.device
        assert all(math.isfinite(v) and v > 0 for v in m.samples_ms)
        if not m.estimated:
            assert m.n == spec.runs * spec.sessions
            assert sorted(set(m.session_index)) == list(range(spec.sessions))
            assert len(m.warmup_ms) >= spec.warmup * spec.sessions
        assert _json_roundtrip(dict(m.metadata)) == dict(m.metadata)
        again = Measurement.from_dict(_json_roundtrip(m.to_dict()))
        assert again.samples_ms == m.samples_ms
        assert again.median_ms == m.median_ms

    def test_per_node_times_name_the_blocks(self, usable: Backend, model: Path, spec: MeasureSpec) -> None:
        from dataclasses import replace

        m = usable.measure(model, replace(spec, per_node=True))
        if m.estimated:
            pytest.skip(f"{usable.name} estimates; it does not time nodes")
        assert m.per_node, "per_node=True must give per-node times on a measuring backend"
        assert all(isinstance(n, NodeTime) and n.name and n.duration_ms >= 0 for n in m.per_node)
        assert {"blocks.0", "blocks.1"} <= {n.block for n in m.per_node}

    def test_missing_model_is_a_model_error(self, usable: Backend, tmp_path: Path, spec: MeasureSpec) -> None:
        with pytest.raises(ModelError):
            usable.measure(tmp_path / "missing.onnx", spec)

    def test_corrupt_model_is_a_model_error(self, usable: Backend, tmp_path: Path, spec: MeasureSpec) -> None:
        bad = tmp_path / "bad.onnx"
        bad.write_bytes(b"\x08\x07 this is not a protobuf")
        with pytest.raises(ModelError):
            usable.measure(bad, spec)

    def test_leaves_no_files_behind(self, usable: Backend, model: Path, spec: MeasureSpec, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
        from dataclasses import replace

        work = tmp_path / "cwd"
        work.mkdir()
        monkeypatch.chdir(work)  # onnxruntime writes profiles relative to the working directory
        before = sorted(os.listdir(model.parent))
        usable.measure(model, replace(spec, per_node=True))
        assert os.listdir(work) == []
        assert sorted(os.listdir(model.parent)) == before
