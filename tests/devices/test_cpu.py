"""The cpu backend end to end: real onnxruntime on tiny models, exact sample bookkeeping."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import onnxruntime as ort
import pytest

import nasprof
from nasprof.devices import MeasureSpec, get_device, registry
from nasprof.devices.cpu import CpuBackend, host_warnings
from nasprof.errors import DeviceUnavailableError, ModelError
from nasprof.profiler.measurement import Measurement

FAST = {"warmup": 2, "runs": 6, "sessions": 2}


def test_registered_and_available() -> None:
    assert "cpu" in registry
    backend = get_device("cpu")
    assert isinstance(backend, CpuBackend)
    assert backend.available() == (True, "")


def test_measure_bookkeeping_and_metadata(conv_model: Path) -> None:
    m = nasprof.measure(conv_model, threads=1, seed=7, **FAST)
    assert m.device == "cpu" and m.backend == "cpu"
    assert m.n == 12 and len(m.warmup_ms) == 4
    assert m.session_index == (0,) * 6 + (1,) * 6
    assert m.per_node is None
    md = m.metadata
    assert md["model_sha256"] == hashlib.sha256(conv_model.read_bytes()).hexdigest()
    assert md["input_shapes"] == {"input": [1, 3, 16, 16]}
    assert md["onnxruntime_version"] == ort.__version__
    assert md["execution_provider"] == "CPUExecutionProvider"
    assert (md["threads"], md["inter_op_threads"], md["opt_level"], md["seed"]) == (1, 1, "all", 7)
    assert md["timed_call"] == "run_with_iobinding"
    assert md["cpu_model"] and md["hostname"] and md["timestamp_utc"].endswith("+00:00")
    for key in ("nasprof_version", "numpy_version", "python_version", "usable_cores"):
        assert md[key]
    json.dumps(md)  # metadata must be JSON-serialisable as is


def test_per_node_pass(conv_model: Path) -> None:
    m = nasprof.measure(conv_model, per_node=True, per_node_runs=4, **FAST)
    assert m.per_node is not None and len(m.per_node) >= 3
    assert {r["block"] for r in m.per_block} >= {"blocks.0", "blocks.1", "head"}
    assert m.node_coverage is not None and m.node_coverage > 0
    assert m.metadata["per_node_opt_level"] == "all" and m.metadata["per_node_runs"] == 4
    node_total = sum(n.duration_ms for n in m.per_node)
    assert sum(r["duration_ms"] for r in m.per_op_type) == pytest.approx(node_total)


def test_json_round_trip(conv_model: Path, tmp_path: Path) -> None:
    m = nasprof.measure(conv_model, per_node=True, per_node_runs=3, **FAST)
    path = m.save_json(tmp_path / "m.json")
    doc = json.loads(path.read_text())
    assert doc["schema_version"] == 1 and doc["device"] == "cpu"
    assert set(doc["latency_ms"]) >= {"median", "p90", "p99", "mean", "min", "mad", "cv"}
    back = Measurement.load_json(path)
    assert back.samples_ms == m.samples_ms and back.session_index == m.session_index
    assert back.per_node == m.per_node
    assert back.metadata == m.metadata
    assert back.to_dict() == doc


def test_adaptive_stops_at_target(conv_model: Path) -> None:
    # A ±1000% target is met by the planned samples: no extra session.
    m = get_device("cpu").measure(conv_model, MeasureSpec(**FAST, target_rel_ci=10.0, max_runs=100))
    assert m.n == 12 and m.metadata["stopped_by"] == "target"


def test_adaptive_stops_at_max_runs(conv_model: Path) -> None:
    # An unreachable target keeps adding fresh sessions of up to `runs` samples until max_runs.
    m = get_device("cpu").measure(conv_model, MeasureSpec(**FAST, target_rel_ci=1e-12, max_runs=21))
    assert m.n == 21 and m.metadata["stopped_by"] == "max_runs"
    assert m.session_index[-3:] == (3, 3, 3) and m.sessions == 4


def test_integer_inputs_run(tmp_path: Path) -> None:
    from profiler.measure_models import make_embedding_model

    model = make_embedding_model(tmp_path / "emb.onnx", rows=10)
    assert nasprof.measure(model, **FAST).n == 12
    with pytest.raises(ModelError, match="onnxruntime failed to run"):
        nasprof.measure(model, int_range=(50, 60), **FAST)  # indices out of range: a real failure


def test_symbolic_model_with_input_shapes(tmp_path: Path) -> None:
    from conftest import make_conv_model

    model = make_conv_model(tmp_path / "sym.onnx", symbolic_batch=True)
    m = nasprof.measure(model, input_shapes=["input=2x3x16x16"], **FAST)
    assert m.metadata["input_shapes"] == {"input": [2, 3, 16, 16]}


def test_unknown_device(conv_model: Path) -> None:
    with pytest.raises(DeviceUnavailableError, match="unknown device 'tpu9'.*cpu"):
        nasprof.measure(conv_model, device="tpu9")


@pytest.mark.parametrize(
    ("host", "threads", "expected"),
    [
        ({"usable_cores": 4, "load_average": [0.5, 0.4, 0.3]}, 1, []),
        ({"usable_cores": 2, "load_average": [2.5, 1.0, 0.5]}, 1,
         ["host was busy when the measurement started (1-minute load 2.50 on 2 usable cores); "
          "close other programs or measure on a quiet machine"]),
        ({"usable_cores": 2, "load_average": None}, 4,
         ["--threads 4 exceeds the 2 usable cores: threads share cores and timings depend on the scheduler"]),
    ],
)
def test_host_warnings(host: dict, threads: int, expected: list[str]) -> None:
    assert host_warnings(host, threads) == expected


def test_host_warnings_travel_with_the_result() -> None:
    m = Measurement(device="cpu", backend="cpu", samples_ms=(1.0,) * 20, metadata={"host_warnings": ["busy"]})
    assert m.warnings == ("busy",)
    assert Measurement.from_dict(m.to_dict()).warnings == ("busy",)


def test_progress_reports_reach_the_total(conv_model: Path) -> None:
    from nasprof.profiler.progress import progress_to

    seen: list[tuple[str, int, int]] = []
    with progress_to(lambda stage, done, total: seen.append((stage, done, total))):
        nasprof.measure(conv_model, per_node=True, per_node_runs=3, **FAST)
    timed = [s for s in seen if not s[0].startswith("profiled")]
    profiled = [s for s in seen if s[0].startswith("profiled")]
    assert timed[-1] == ("done", 16, 16)  # 2 sessions x (2 warm-up + 6 timed)
    assert profiled[-1] == ("profiled pass", 5, 5)  # 2 warm-up + 3 profiled runs
    assert {s[0] for s in timed} >= {"session 1/2", "session 2/2"}
