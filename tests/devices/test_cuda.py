"""The ``cuda`` backend. Tests that need a GPU and onnxruntime-gpu skip elsewhere, with the reason."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from nasprof.devices import get_device
from nasprof.devices._cuda_driver import DriverInfo, query_driver
from nasprof.devices.base import MeasureSpec
from nasprof.devices.cuda import CUDA_MIN_WARMUP_RUNS, PER_NODE_TIMING_NOTE, CudaBackend
from nasprof.errors import DeviceUnavailableError, InputError
from nasprof.testing.backend_contract import make_contract_model

FAST = MeasureSpec(warmup=2, runs=5, sessions=2, per_node_runs=3, options={"min_warmup_s": 0.0})


def _gpu_or_skip() -> CudaBackend:
    backend = CudaBackend()
    ok, reason = backend.available()
    if not ok:
        pytest.skip(f"needs a CUDA GPU and onnxruntime-gpu: {reason}")
    return backend


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return make_contract_model(tmp_path / "m.onnx")


# -- everywhere ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [-1, "first", 1.5, True, None])
def test_device_id_must_be_a_non_negative_integer(bad: object) -> None:
    with pytest.raises(InputError, match="device_id must be an integer >= 0"):
        CudaBackend(device_id=bad)  # type: ignore[arg-type]


def test_names_and_ids() -> None:
    assert (CudaBackend().device, CudaBackend().device_id) == ("cuda", 0)
    assert (CudaBackend(device_id=1).device, CudaBackend(device_id="1").device_id) == ("cuda:1", 1)
    assert get_device("cuda:3").device_id == 3


def test_provider_options_autotune_and_bind_the_gpu() -> None:
    b = CudaBackend(device_id=2)
    assert b.provider_options() == {"device_id": "2", "cudnn_conv_algo_search": "EXHAUSTIVE",
                                    "do_copy_in_default_stream": "1"}
    assert b.providers() == [("CUDAExecutionProvider", b.provider_options()), "CPUExecutionProvider"]


@pytest.mark.parametrize(("config", "options", "graph"), [
    ({}, {}, False), ({}, {"cuda_graph": True}, True), ({"cuda_graph": "yes"}, {}, True),
    ({"cuda_graph": True}, {"cuda_graph": "false"}, False),
])
def test_cuda_graph_setting(config: dict, options: dict, graph: bool) -> None:
    b = CudaBackend(**config)
    assert b.uses_cuda_graph(options) is graph
    assert ("enable_cuda_graph" in b.provider_options(options)) is graph


def test_driver_query_never_raises() -> None:
    info = query_driver()
    assert isinstance(info, DriverInfo)
    if info.error:
        assert info.gpus == () and ("NVIDIA" in info.error or "CUDA" in info.error)
    else:
        assert info.driver_cuda_version.count(".") == 1 and all(g.total_memory_bytes > 0 for g in info.gpus)


def test_without_onnxruntime_gpu_the_error_says_what_to_install(model: Path) -> None:
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("onnxruntime-gpu is installed here")
    ok, reason = CudaBackend().available()
    assert not ok
    v = ort.__version__
    assert reason == (f"this onnxruntime {v} has no CUDA execution provider (it is the CPU build): "
                      f"pip uninstall -y onnxruntime && pip install onnxruntime-gpu=={v}")
    with pytest.raises(DeviceUnavailableError, match="pip install onnxruntime-gpu"):
        CudaBackend().measure(model, FAST)


def test_negative_min_warmup_is_refused(model: Path) -> None:
    from nasprof.devices.cuda import _min_warmup_s

    with pytest.raises(InputError, match="min_warmup_s must be >= 0"):
        _min_warmup_s(replace(FAST, options={"min_warmup_s": -1}))


# -- on a GPU -----------------------------------------------------------------------------------------------
@pytest.mark.cuda
def test_gpu_that_does_not_exist() -> None:
    _gpu_or_skip()
    n = len(query_driver().gpus)
    ok, reason = CudaBackend(device_id=n).available()
    assert not ok and reason.startswith(f"cuda:{n} does not exist: this host has {n} visible GPU(s)")


@pytest.mark.cuda
def test_measure_on_the_gpu(model: Path) -> None:
    backend = _gpu_or_skip()
    m = backend.measure(model, FAST)
    assert (m.backend, m.device, m.n, m.sessions) == ("cuda", "cuda", 10, 2)
    md = m.metadata
    assert md["execution_provider"] == "CUDAExecutionProvider"
    assert md["gpu_name"] == query_driver().gpus[0].name
    assert md["provider_options"]["cudnn_conv_algo_search"] == "EXHAUSTIVE"
    # With no time-based part, each session warms up max(warmup, 10) runs after the allocating first run.
    assert md["warmup_runs_per_session"] == [CUDA_MIN_WARMUP_RUNS + 1] * 2
    assert len(m.warmup_ms) == 2 * (CUDA_MIN_WARMUP_RUNS + 1)
    assert "per_node_timing" not in md and md["cuda_graph"] is False


@pytest.mark.cuda
def test_measure_with_a_cuda_graph(model: Path) -> None:
    backend = _gpu_or_skip()
    m = backend.measure(model, replace(FAST, options={"min_warmup_s": 0.0, "cuda_graph": True}))
    assert m.n == 10 and m.metadata["cuda_graph"] is True
    assert m.metadata["provider_options"]["enable_cuda_graph"] == "1"


@pytest.mark.cuda
@pytest.mark.parametrize("graph", [False, True])
def test_io_stays_on_the_gpu_and_outputs_are_right(model: Path, graph: bool) -> None:
    import onnxruntime as ort

    from nasprof.devices.cuda import _DeviceRunner
    from nasprof.profiler.onnx_model import load_model, random_inputs
    from nasprof.profiler.ort_runner import create_session, session_options

    backend = _gpu_or_skip()
    feeds = random_inputs(load_model(model))
    sess = backend._session(model, session_options(FAST), {"cuda_graph": graph})
    runner = _DeviceRunner(ort, sess, feeds, backend.device_id)
    pointers = {n: v.data_ptr() for n, v in runner.outputs.items()}
    for _ in range(3):
        runner.run()
    assert all(v.device_name() == "cuda" for v in [*runner.inputs.values(), *runner.outputs.values()])
    # Later runs write into the buffers bound after the first run: no allocation, no copy to the host.
    after = dict(zip(runner.outputs, runner.binding.get_outputs(), strict=True))
    assert {n: v.data_ptr() for n, v in after.items()} == pointers
    cpu = create_session(model, session_options(FAST), ["CPUExecutionProvider"]).run(None, feeds)[0]
    np.testing.assert_allclose(runner.outputs["output"].numpy(), cpu, rtol=1e-2, atol=1e-3)


@pytest.mark.cuda
def test_per_node_says_times_are_launches(model: Path) -> None:
    backend = _gpu_or_skip()
    m = backend.measure(model, replace(FAST, per_node=True))
    assert m.metadata["per_node_timing"] == PER_NODE_TIMING_NOTE
    assert m.per_node and {"blocks.0", "blocks.1"} <= {n.block for n in m.per_node}
    assert "CUDAExecutionProvider" in {n.provider for n in m.per_node}


def test_probe_reads_the_gpus_kernel_rules() -> None:
    """On a GPU the probes run on the CUDA provider: no NCHWc layout there, and the rules record the GPU."""
    _gpu_or_skip()
    from nasprof.predictors.kernel.probe import probe_rules

    report = probe_rules("cuda")
    assert report.rules.nchwc_block == 0 and report.rules.device["backend"] == "cuda"
    assert len(report.observations) >= 20
