"""The ``cuda`` backend: onnxruntime's CUDA execution provider on an NVIDIA GPU of this host.

How a sample is taken, and why:

- **I/O on the device.** Inputs are copied to the GPU once per session (``OrtValue`` on ``cuda``) and bound
  with ``IOBinding``; outputs are bound to GPU buffers that onnxruntime allocates on the first run and that
  are then re-bound, so no run allocates or copies to or from the host. A sample is the GPU program, not PCIe.
- **Synchronised host timer.** ``perf_counter_ns`` brackets ``run_with_iobinding`` followed by
  ``binding.synchronize_outputs()``; onnxruntime's ``Run`` also synchronises its stream before returning.
  A sample is therefore everything a caller waits for, kernel launch overhead included (which dominates for
  small blocks: a latency table on a GPU mostly measures launches, and that is what a deployment pays).
- **Warm-up long enough for cuDNN.** ``cudnn_conv_algo_search = EXHAUSTIVE`` benchmarks every convolution
  algorithm on the first run of each session, and the GPU's clocks ramp up from idle under sustained load.
  Each session therefore warms up for at least ``CUDA_MIN_WARMUP_RUNS`` runs *and* ``CUDA_MIN_WARMUP_S``
  seconds (or ``spec.warmup`` runs if more); the number used is recorded in the metadata.
- **Per-node times** come from onnxruntime's profiler (``profile_nodes``), which on CUDA times the host-side
  kernel *launch*, not the GPU kernel (REFERENCE.md): the result's metadata says so under
  ``per_node_timing``, and the shares must not be read as GPU time.

Without onnxruntime-gpu, or without a GPU, ``available()`` says what is missing and ``measure()`` raises
``DeviceUnavailableError``.
"""

from __future__ import annotations

import contextlib
import gc
import io
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from nasprof.devices._cuda_driver import query_driver
from nasprof.devices.base import Backend, MeasureSpec, registry
from nasprof.errors import DeviceUnavailableError, InputError, ModelError
from nasprof.profiler.measurement import Measurement
from nasprof.profiler.spec import max_timed_runs

if TYPE_CHECKING:
    from nasprof.profiler.ort_runner import TimedRuns

__all__ = ["CudaBackend", "CUDA_MIN_WARMUP_RUNS", "CUDA_MIN_WARMUP_S", "PER_NODE_TIMING_NOTE"]

#: The first run autotunes every convolution (EXHAUSTIVE search); a few more let the memory arena settle.
CUDA_MIN_WARMUP_RUNS = 10
#: GPU clocks climb from idle to boost only under sustained load; one second of back-to-back runs gets there.
CUDA_MIN_WARMUP_S = 1.0
#: Bound on the time-based warm-up of tiny blocks (one second of 30 us runs would be ~33,000 runs).
CUDA_MAX_WARMUP_RUNS = 20000

_TIMED_CALL = "run_with_iobinding + synchronize_outputs (I/O bound on the GPU), host perf_counter_ns"
PER_NODE_TIMING_NOTE = (
    "host-side launch times: onnxruntime's profiler on CUDA times kernel launches, not GPU execution; "
    "per-node shares do not describe GPU time"
)
_INSTALL_HINT = "pip uninstall -y onnxruntime && pip install onnxruntime-gpu=={version}"


def _ort() -> Any:
    try:
        import onnxruntime as ort
    except ImportError:
        raise DeviceUnavailableError("onnxruntime is not installed: pip install onnxruntime-gpu") from None
    return ort


@contextlib.contextmanager
def _quiet() -> Any:
    # onnxruntime.preload_dlls prints warnings to stdout; the library must not print.
    with contextlib.redirect_stdout(io.StringIO()):
        yield


class CudaBackend(Backend):
    """Times ONNX models on GPU ``device_id`` (``cuda``, ``cuda:N``) with onnxruntime's CUDA provider."""

    name: ClassVar[str] = "cuda"
    _dlls_preloaded: ClassVar[bool] = False

    def __init__(self, device: str | None = None, *, device_id: int | str = 0, **config: Any) -> None:
        # An int, or its decimal string (from a CLI option): never a float or bool that int() would accept.
        ok = (isinstance(device_id, int) and not isinstance(device_id, bool)) or (
            isinstance(device_id, str) and device_id.strip().isdigit())
        if not ok or int(device_id) < 0:
            raise InputError(f"CUDA device_id must be an integer >= 0, got {device_id!r}")
        gpu = int(device_id)
        super().__init__(device or ("cuda" if gpu == 0 else f"cuda:{gpu}"), device_id=gpu, **config)
        self.device_id = gpu

    # -- availability -------------------------------------------------------------------------------------
    def available(self) -> tuple[bool, str]:
        try:
            import onnxruntime as ort
        except ImportError:
            return False, "onnxruntime is not installed: pip install onnxruntime-gpu"
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            return False, (
                f"this onnxruntime {ort.__version__} has no CUDA execution provider (it is the CPU build): "
                + _INSTALL_HINT.format(version=ort.__version__)
            )
        driver = query_driver()
        if driver.error:
            return False, driver.error
        if self.device_id >= len(driver.gpus):
            return False, (f"{self.device} does not exist: this host has {len(driver.gpus)} visible GPU(s); "
                           f"use cuda:0 .. cuda:{max(len(driver.gpus) - 1, 0)}")
        return True, ""

    def readiness(self) -> list[Any]:
        """What ``nvidia-smi`` says of the GPU's state: other processes on it, utilisation, clocks held down,
        temperature, persistence mode (``nasprof doctor --device cuda``)."""
        from nasprof.devices._nvidia_smi import gpu_checks, smi_index
        from nasprof.profiler.doctor import Check

        driver = query_driver()
        if not driver.error and self.device_id >= len(driver.gpus):
            return [Check(f"GPU {self.device_id}", "unknown", f"{self.device} does not exist",
                          f"this host has {len(driver.gpus)} visible GPU(s)")]
        # By UUID when the driver tells it: CUDA numbers GPUs fastest first, nvidia-smi by PCI bus.
        uuid = driver.gpus[self.device_id].uuid if not driver.error else ""
        return gpu_checks(uuid or smi_index(self.device_id), label=str(self.device_id))

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"backend": self.name, "device": self.device, **self.config,
                               "device_id": self.device_id}
        driver = query_driver()
        if driver.error:
            out["driver"] = driver.error
        else:
            out["driver_cuda_version"] = driver.driver_cuda_version
            out["visible_gpus"] = len(driver.gpus)
            if self.device_id < len(driver.gpus):
                g = driver.gpus[self.device_id]
                out.update(gpu_name=g.name, gpu_memory_bytes=g.total_memory_bytes,
                           gpu_compute_capability=g.compute_capability, gpu_multiprocessors=g.multiprocessors)
        try:
            import onnxruntime as ort

            out["onnxruntime_version"] = ort.__version__
            out["onnxruntime_providers"] = list(ort.get_available_providers())
        except ImportError:
            out["onnxruntime_version"] = "not installed"
        return out

    # -- measuring ----------------------------------------------------------------------------------------
    def uses_cuda_graph(self, options: Mapping[str, Any] | None = None) -> bool:
        """``cuda_graph`` (device setting or ``MeasureSpec.options``): replay one captured graph per run."""
        value = {**self.config, **dict(options or {})}.get("cuda_graph", False)
        if isinstance(value, str):
            value = value.strip().lower() in ("1", "true", "yes", "on")
        return bool(value)

    def provider_options(self, options: Mapping[str, Any] | None = None) -> dict[str, str]:
        out = {
            "device_id": str(self.device_id),
            "cudnn_conv_algo_search": "EXHAUSTIVE",
            # Copies between host and device (there are none inside the timed runs) go on the compute stream,
            # so they can never overlap with, or be missed by, the synchronisation that ends a sample.
            "do_copy_in_default_stream": "1",
        }
        if self.uses_cuda_graph(options):
            # One graph launch per run instead of one launch per kernel: the sample becomes GPU execution
            # time, as in graph-captured deployments. Needs every node on the GPU and fixed I/O addresses
            # (which the IOBinding here provides).
            out["enable_cuda_graph"] = "1"
        return out

    def providers(self, options: Mapping[str, Any] | None = None) -> list[Any]:
        return [("CUDAExecutionProvider", self.provider_options(options)), "CPUExecutionProvider"]

    def _preload(self, ort: Any) -> None:
        # onnxruntime-gpu finds CUDA/cuDNN from the nvidia-* pip packages only after preload_dlls(); with
        # system-wide CUDA libraries this is a no-op.
        if not CudaBackend._dlls_preloaded and hasattr(ort, "preload_dlls"):
            with _quiet(), contextlib.suppress(Exception):
                ort.preload_dlls(cuda=True, cudnn=True, msvc=False)
            CudaBackend._dlls_preloaded = True
        # onnxruntime 1.30 warns "No registered plugin EP device found for 'CUDAExecutionProvider'" on every
        # session with provider options (harmless: the built-in CUDA EP is used) through its default logger,
        # which session options do not reach; errors still show. Only when measuring on CUDA, never at import.
        ort.set_default_logger_severity(3)

    def _session(self, model: Path, so: Any, options: Mapping[str, Any] | None = None) -> Any:
        from nasprof.profiler.ort_runner import create_session

        sess = create_session(model, so, self.providers(options))
        if "CUDAExecutionProvider" not in sess.get_providers():
            # onnxruntime falls back to the CPU when libcudart/cuBLAS/cuDNN cannot be loaded; never time that.
            raise DeviceUnavailableError(
                "onnxruntime could not start its CUDA execution provider (the CUDA runtime, cuBLAS or "
                "cuDNN 9 libraries it was built for were not found): pip install "
                "'onnxruntime-gpu[cuda,cudnn]', or put the CUDA and cuDNN libraries on LD_LIBRARY_PATH"
            )
        return sess

    def measure(self, model: Path, spec: MeasureSpec) -> Measurement:
        from nasprof.profiler.environment import host_metadata
        from nasprof.profiler.onnx_model import DEFAULT_INT_RANGE, load_model, random_inputs
        from nasprof.profiler.ort_result import run_metadata, to_measurement

        self.ensure_available()
        info = load_model(model, spec.input_shapes)
        int_range = tuple(spec.options.get("int_range", DEFAULT_INT_RANGE))
        feeds = random_inputs(info, seed=spec.seed, int_range=(int(int_range[0]), int(int_range[1])))
        ort = _ort()
        self._preload(ort)
        started = host_metadata()  # before timing: load average and timestamp describe the run's start
        timed, warmup_runs = _time_sessions(self, info.path, feeds, spec)
        # Same keys as the cpu backend where the meaning is the same, so results compare field by field.
        metadata: dict[str, Any] = {
            **started,
            **self.describe(),
            "execution_provider": "CUDAExecutionProvider",
            "provider_options": self.provider_options(spec.options),
            "cuda_graph": self.uses_cuda_graph(spec.options),
            "io_binding": "inputs and outputs on the GPU: no host copies inside a sample",
            "warmup_runs_per_session": list(warmup_runs),
            "min_warmup_s": _min_warmup_s(spec),
            **run_metadata(info, spec, timed, (int(int_range[0]), int(int_range[1]))),
        }
        profiled = None
        if spec.per_node:
            from nasprof.profiler.ort_profile import profile_nodes

            # Without the graph: a replayed graph has no nodes for the profiler to see.
            profiled = profile_nodes(info.path, feeds, spec, providers=self.providers({"cuda_graph": False}))
            metadata["per_node_timing"] = PER_NODE_TIMING_NOTE
        return to_measurement(self.device, self.name, timed, metadata, profiled)


def _min_warmup_s(spec: MeasureSpec) -> float:
    """``spec.options["min_warmup_s"]`` overrides the time-based warm-up (tests use 0 to stay fast)."""
    value = float(spec.options.get("min_warmup_s", CUDA_MIN_WARMUP_S))
    if value < 0:
        raise InputError(f"min_warmup_s must be >= 0, got {value}")
    return value


class _DeviceRunner:
    """One session with its inputs and outputs bound on the GPU."""

    def __init__(self, ort: Any, session: Any, feeds: Mapping[str, Any], device_id: int) -> None:
        self.session = session
        self.binding = session.io_binding()
        # Keep the device copies alive: the binding holds only their addresses.
        self.inputs = {n: ort.OrtValue.ortvalue_from_numpy(a, "cuda", device_id) for n, a in feeds.items()}
        for name, value in self.inputs.items():
            self.binding.bind_ortvalue_input(name, value)
        for out in session.get_outputs():
            self.binding.bind_output(out.name, "cuda", device_id)
        self.binding.synchronize_inputs()
        # The first run allocates the outputs on the GPU and autotunes cuDNN; kept as the first warm-up ...
        self.first_run_ms = self.run()
        names = [o.name for o in session.get_outputs()]
        self.outputs = dict(zip(names, self.binding.get_outputs(), strict=True))
        self.binding.clear_binding_outputs()
        for name, value in self.outputs.items():  # ... and later runs write into those same buffers
            self.binding.bind_ortvalue_output(name, value)

    def run(self) -> float:
        t0 = time.perf_counter_ns()
        self.session.run_with_iobinding(self.binding)
        self.binding.synchronize_outputs()
        return (time.perf_counter_ns() - t0) / 1e6


def _run_error(model: Path, exc: Exception) -> ModelError:
    return ModelError(f"onnxruntime failed to run {model} on CUDA: {' '.join(str(exc).split())[:400]}; "
                      "check --input-shape, or measure it on the cpu device to see whether the model runs")


def _checked(runner: _DeviceRunner, model: Path) -> float:
    try:
        return runner.run()
    except Exception as exc:  # onnxruntime's own error types
        raise _run_error(model, exc) from None


def _time_sessions(
    backend: CudaBackend, model: Path, feeds: Mapping[str, Any], spec: MeasureSpec
) -> tuple[TimedRuns, tuple[int, ...]]:
    """Fresh sessions, each warmed up (runs and seconds) and then timed; adaptive repetition as on the CPU.

    Returns the timed runs and the number of warm-up runs each session took.
    """
    from nasprof.profiler import progress
    from nasprof.profiler.ort_runner import TimedRuns, relative_ci, session_options

    ort = _ort()
    min_warmup_s = _min_warmup_s(spec)
    min_runs = max(spec.warmup, CUDA_MIN_WARMUP_RUNS)
    adaptive = spec.target_rel_ci is not None
    cap = max_timed_runs(spec)
    samples: list[float] = []
    warmups: list[float] = []
    sid: list[int] = []
    warmup_runs: list[int] = []
    stopped_by = "runs"
    s = 0
    while True:
        if s >= spec.sessions:
            if not adaptive:
                break
            if relative_ci(samples) <= spec.target_rel_ci:  # type: ignore[operator]
                stopped_by = "target"
                break
            if len(samples) >= cap:
                stopped_by = "max_runs"
                break
        runs = spec.runs if s < spec.sessions else min(spec.runs, cap - len(samples))
        progress.report(f"session {s + 1}", len(samples), cap)
        sess = backend._session(model, session_options(spec), spec.options)
        try:
            runner = _DeviceRunner(ort, sess, feeds, backend.device_id)
        except DeviceUnavailableError:
            raise
        except Exception as exc:
            raise _run_error(model, exc) from None
        warmups.append(runner.first_run_ms)
        gc_was_enabled = gc.isenabled()
        gc.disable()  # a collection of unrelated objects must not land inside a sample
        try:
            start, n = time.perf_counter(), 0
            while n < CUDA_MAX_WARMUP_RUNS and (n < min_runs or time.perf_counter() - start < min_warmup_s):
                warmups.append(_checked(runner, model))
                n += 1
            warmup_runs.append(n + 1)  # + the first, allocating run
            for i in range(runs):
                samples.append(_checked(runner, model))
                sid.append(s)
                if i % 10 == 9:
                    progress.report(f"session {s + 1}", len(samples), cap)
        finally:
            if gc_was_enabled:
                gc.enable()
        del runner, sess
        s += 1
    progress.report("timed runs done", len(samples), len(samples))
    timed = TimedRuns(samples_ms=tuple(samples), warmup_ms=tuple(warmups), session_index=tuple(sid),
                      sessions=s, rel_ci=relative_ci(samples), stopped_by=stopped_by, timed_call=_TIMED_CALL)
    return timed, tuple(warmup_runs)


registry.register("cuda", CudaBackend)
