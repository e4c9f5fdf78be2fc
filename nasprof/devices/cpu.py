"""The ``cpu`` backend: onnxruntime's CPU execution provider, in this process, on this host.

The timing loop, the profiled pass and the model checks live in ``nasprof.profiler`` (shared with other
in-process onnxruntime backends); this module wires them together and says what the host is.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

from nasprof.devices.base import Backend, MeasureSpec, registry
from nasprof.profiler.measurement import Measurement

__all__ = ["CpuBackend"]

_PROVIDER = "CPUExecutionProvider"


class CpuBackend(Backend):
    """Times ONNX models with onnxruntime's ``CPUExecutionProvider`` in this process.

    ``MeasureSpec.options`` understood here: ``int_range`` (``(low, high)`` for integer inputs, default
    ``(0, 10)``), ``allow_spinning`` (bool, default True: onnxruntime's own default).
    """

    name: ClassVar[str] = "cpu"

    def __init__(self, device: str | None = None, **config: Any) -> None:
        super().__init__(device, **config)
        # Settings stored with a named device are checked here, by the same rules as ``--set`` on one
        # measurement, so a typo fails when the device is added, not silently ignored later.
        unknown = sorted(set(config) - set(KNOWN_OPTIONS) - {"threads"})
        if unknown:
            from nasprof.errors import InputError

            raise InputError(f"the cpu backend has no setting {', '.join(map(repr, unknown))}; it reads "
                             f"threads, {', '.join(KNOWN_OPTIONS)}")
        check_spec(MeasureSpec(options=self.device_options()))

    def device_options(self) -> dict[str, Any]:
        """The measurement options stored with the device (``allow_spinning``, ``int_range``)."""
        return {k: v for k, v in self.config.items() if k in KNOWN_OPTIONS}

    def check_spec(self, spec: MeasureSpec) -> None:
        check_spec(spec)

    def available(self) -> tuple[bool, str]:
        try:
            import onnxruntime as ort
        except ImportError:
            return False, "onnxruntime is not installed: pip install onnxruntime"
        if _PROVIDER not in ort.get_available_providers():
            return False, f"this onnxruntime build has no {_PROVIDER}; pip install onnxruntime"
        return True, ""

    def measure(self, model: Path, spec: MeasureSpec) -> Measurement:
        from nasprof.profiler.environment import host_metadata
        from nasprof.profiler.onnx_model import DEFAULT_INT_RANGE, load_model, random_inputs
        from nasprof.profiler.ort_profile import profile_nodes
        from nasprof.profiler.ort_result import run_metadata, to_measurement
        from nasprof.profiler.ort_runner import allow_spinning, time_sessions

        self.ensure_available()
        if self.device_options():  # the device's settings, overridden by the measurement's own
            spec = replace(spec, options={**self.device_options(), **spec.options})
        self.check_spec(spec)
        info = load_model(model, spec.input_shapes)
        int_range = tuple(spec.options.get("int_range", DEFAULT_INT_RANGE))
        feeds = random_inputs(info, seed=spec.seed, int_range=(int(int_range[0]), int(int_range[1])))
        from nasprof.profiler.doctor import STEAL_WARN, cpu_times, steal_share

        started = host_metadata()  # before timing: load average and timestamp describe the run's start
        from nasprof.profiler.memory import PeakMemory

        before = cpu_times()
        with PeakMemory() as peak:  # from before the first session to after the last run
            timed = time_sessions(info.path, feeds, spec, providers=[_PROVIDER])
        steal = steal_share(before, cpu_times())
        profiled = profile_nodes(info.path, feeds, spec, providers=[_PROVIDER]) if spec.per_node else None

        metadata: dict[str, Any] = {
            **started,
            **self.describe(),
            "execution_provider": _PROVIDER,
            "inter_op_threads": 1,
            "execution_mode": "sequential",
            "allow_spinning": allow_spinning(spec),
            **run_metadata(info, spec, timed, (int(int_range[0]), int(int_range[1]))),
        }
        metadata["steal_share"] = steal
        metadata["peak_memory"] = peak.report()
        metadata["host_warnings"] = host_warnings(started, spec.threads)
        if steal is not None and steal > STEAL_WARN:
            # CPU time the hypervisor handed to other guests while this one timed: the samples carry it.
            metadata["host_warnings"].append(
                f"{steal:.1%} of CPU time was stolen by the hypervisor during the timed runs (a shared VM): "
                "expect noise; repeat the measurement and quote spreads, or use a dedicated host"
            )
        return to_measurement(self.device, self.name, timed, metadata, profiled)

    def describe(self) -> dict[str, Any]:
        import onnxruntime as ort

        from nasprof.profiler.environment import cpu_model

        # The runtime version belongs to the device's identity: tables refuse to mix entries across versions.
        return {"backend": self.name, "device": self.device, "cpu_model": cpu_model(),
                "runtime": "onnxruntime", "runtime_version": ort.__version__, **self.config}


#: ``MeasureSpec.options`` this backend reads; anything else is a typo or meant for another backend.
KNOWN_OPTIONS = ("int_range", "allow_spinning")
#: Threads per usable core beyond which a request is refused: onnxruntime then spends minutes creating its
#: pool (100,000 threads never finishes) and the timings would measure the scheduler, not the model.
MAX_THREADS_PER_CORE = 16


def check_spec(spec: MeasureSpec) -> None:
    """Refuse options this backend would silently ignore and thread counts it cannot honour."""
    from nasprof.errors import InputError
    from nasprof.profiler.environment import _usable_cores

    unknown = sorted(set(spec.options) - set(KNOWN_OPTIONS))
    if unknown:
        raise InputError(f"the cpu backend does not understand option(s) {', '.join(unknown)}; "
                         f"it reads {', '.join(KNOWN_OPTIONS)}")
    from nasprof.profiler.onnx_model import DEFAULT_INT_RANGE
    from nasprof.profiler.ort_runner import allow_spinning

    allow_spinning(spec)  # a value that is not true/false is refused here, before any work
    rng = spec.options.get("int_range", DEFAULT_INT_RANGE)
    if (not isinstance(rng, (list, tuple)) or len(rng) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in rng) or rng[1] <= rng[0]):
        raise InputError(f"option int_range must be [LOW, HIGH] with integers LOW < HIGH, got {rng!r}")
    cores = _usable_cores()
    limit = MAX_THREADS_PER_CORE * cores
    if spec.threads > limit:
        raise InputError(f"--threads {spec.threads} is far above the {cores} usable cores "
                         f"(at most {limit}); use at most the number of cores")


def host_warnings(host: dict[str, Any], threads: int) -> list[str]:
    """Warnings about the host that the samples alone cannot reveal (``host`` from ``host_metadata()``)."""
    out = []
    cores = int(host.get("usable_cores") or 1)
    if threads > cores:
        out.append(f"--threads {threads} exceeds the {cores} usable cores: threads share cores and timings "
                   "depend on the scheduler")
    load = host.get("load_average")
    # The 1-minute load average counts runnable threads; at or above the core count something else was
    # competing for the CPU when the measurement started.
    if load and load[0] >= cores:
        out.append(f"host was busy when the measurement started (1-minute load {load[0]:.2f} on {cores} "
                   "usable cores); close other programs or measure on a quiet machine")
    return out


registry.register("cpu", CpuBackend)
