"""The onnxruntime timing loop: fresh sessions, untimed warm-ups, timed runs, optional adaptive repetition.

Shared by every backend that runs onnxruntime in this process (``cpu`` here; ``cuda`` passes other
providers). Choices, and why:

- **Profiling is off** in the timed sessions: onnxruntime's profiler adds ~7-25 us per node.
- **Fresh sessions** (``spec.sessions``): allocation, thread placement and code alignment vary between
  sessions; a single session hides that variance, several expose it (and the stability rules compare them).
- **Only ``run_with_iobinding`` is inside the timer.** Inputs are bound once before timing, so converting
  numpy arrays to ``OrtValue`` on every call is not timed; outputs are allocated by onnxruntime as in normal
  use. Measured here on a 5-node model: ``session.run`` 11.9 us vs IOBinding 10.0 us per call, i.e. 2 us of
  pure Python-binding overhead that would otherwise inflate every small table entry.
- **Threads:** ``intra_op_num_threads = spec.threads``, ``inter_op_num_threads = 1``, sequential execution:
  the setting deployments use for single-image latency, and the only one that is reproducible.
- **Spinning:** onnxruntime's default (``session.intra_op.allow_spinning = 1``) is kept: worker threads
  spin between kernels instead of sleeping, which is what deployed onnxruntime does and gives the lowest
  latency. It does not matter at 1 thread (no pool); set ``MeasureSpec.options["allow_spinning"] = False``
  on a shared host with several threads. The value used is recorded in the metadata.
- **Garbage collection is paused** while timing (as ``timeit`` does), so a collection of unrelated Python
  objects never lands inside a sample.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nasprof.errors import InputError, ModelError
from nasprof.profiler import progress
from nasprof.profiler.spec import MeasureSpec, max_timed_runs
from nasprof.profiler.stats import median_ci

__all__ = [
    "TimedRuns",
    "OPT_LEVEL_NAMES",
    "session_options",
    "create_session",
    "time_sessions",
    "relative_ci",
]

OPT_LEVEL_NAMES = ("disable", "basic", "extended", "all")


@dataclass(frozen=True)
class TimedRuns:
    """Raw result of the timing loop. ``session_index[i]`` is the session of ``samples_ms[i]``."""

    samples_ms: tuple[float, ...]
    warmup_ms: tuple[float, ...]
    session_index: tuple[int, ...]
    sessions: int
    #: Half-width of the 95% CI of the median relative to the median, after the last sample.
    rel_ci: float
    #: Why sampling stopped: "runs" (plan done), "target" (CI reached), "max_runs" (cap hit first).
    stopped_by: str
    timed_call: str


def _ort() -> Any:
    try:
        import onnxruntime as ort
    except ImportError:
        from nasprof.errors import MissingDependencyError

        raise MissingDependencyError("onnxruntime is not installed: pip install onnxruntime") from None
    return ort


def session_options(
    spec: MeasureSpec,
    *,
    opt_level: str | None = None,
    profile_prefix: str | None = None,
    optimized_model_path: str | None = None,
) -> Any:
    ort = _ort()
    level = opt_level or spec.opt_level
    levels = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }
    so = ort.SessionOptions()
    so.graph_optimization_level = levels[level]
    so.intra_op_num_threads = spec.threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # Warnings only (e.g. "serialising an NCHWc-optimised model is hardware specific"): they are expected
    # and would otherwise interleave with the progress bar.
    so.log_severity_level = 3
    so.add_session_config_entry("session.intra_op.allow_spinning", "1" if allow_spinning(spec) else "0")
    if profile_prefix is not None:
        so.enable_profiling = True
        so.profile_file_prefix = profile_prefix
    if optimized_model_path is not None:
        so.optimized_model_filepath = optimized_model_path
    return so


def allow_spinning(spec: MeasureSpec) -> bool:
    value = spec.options.get("allow_spinning", True)
    if not isinstance(value, bool):  # bool("no") is True: a string would silently mean the opposite
        raise InputError(f"option allow_spinning must be true or false, got {value!r}")
    return value


def create_session(model: Path, so: Any, providers: Sequence[Any]) -> Any:
    ort = _ort()
    try:
        return ort.InferenceSession(str(model), so, providers=list(providers))
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph/NotImplemented types
        first = " ".join(str(exc).split())[:400]
        raise ModelError(f"onnxruntime cannot load {model}: {first}; the model uses an operator or opset "
                         "this onnxruntime does not support, or is invalid") from None


class _Runner:
    """One session's timed call, with inputs bound once."""

    def __init__(self, session: Any, feeds: Mapping[str, np.ndarray]) -> None:
        self.session = session
        self.feeds = dict(feeds)
        # IOBinding cannot take numpy object (string) arrays; such models fall back to session.run.
        self.binding = None
        if all(a.dtype != object for a in self.feeds.values()):
            self.binding = session.io_binding()
            for name, arr in self.feeds.items():
                self.binding.bind_cpu_input(name, np.ascontiguousarray(arr))
            for out in session.get_outputs():
                self.binding.bind_output(out.name)
        self.timed_call = "run_with_iobinding" if self.binding is not None else "run"

    def __call__(self) -> float:
        """One run; returns its wall time in ms (perf_counter_ns around the call only)."""
        if self.binding is not None:
            t0 = time.perf_counter_ns()
            self.session.run_with_iobinding(self.binding)
            t1 = time.perf_counter_ns()
        else:
            t0 = time.perf_counter_ns()
            self.session.run(None, self.feeds)
            t1 = time.perf_counter_ns()
        return (t1 - t0) / 1e6


def _run_checked(runner: _Runner, model: Path) -> float:
    try:
        return runner()
    except Exception as exc:
        first = " ".join(str(exc).split())[:400]
        raise ModelError(f"onnxruntime failed to run {model}: {first}; check --input-shape (and the integer "
                         "input range if the model indexes with its inputs)") from None


def relative_ci(samples: Sequence[float]) -> float:
    """Half-width of the 95% order-statistic CI of the median, relative to the median."""
    lo, hi = median_ci(samples, 0.95)
    med = float(np.median(samples))
    return max(med - lo, hi - med) / med if med > 0 else float("inf")


def time_sessions(
    model: Path,
    feeds: Mapping[str, np.ndarray],
    spec: MeasureSpec,
    providers: Sequence[Any] = ("CPUExecutionProvider",),
) -> TimedRuns:
    """Time ``model`` in ``spec.sessions`` fresh sessions (``spec.warmup`` untimed + ``spec.runs`` timed runs
    each). With ``spec.target_rel_ci`` set, keep adding fresh sessions of up to ``spec.runs`` runs until the
    95% CI of the median is within ±target of it, or ``max_timed_runs(spec)`` samples are taken."""
    target = spec.target_rel_ci
    if target is not None and target <= 0:
        raise InputError(f"target_rel_ci must be > 0, got {target}")
    cap = max_timed_runs(spec)
    samples: list[float] = []
    warmups: list[float] = []
    sid: list[int] = []
    total_units = spec.sessions * (spec.warmup + spec.runs)
    done = 0
    s = 0
    stopped_by = "runs"
    timed_call = "run_with_iobinding"
    gc_was_enabled = gc.isenabled()
    while True:
        if s >= spec.sessions:  # the plan is done; adaptive repetition decides whether to go on
            if target is None:
                break
            if relative_ci(samples) <= target:
                stopped_by = "target"
                break
            if len(samples) >= cap:
                stopped_by = "max_runs"
                break
        runs = min(spec.runs, cap - len(samples)) if s >= spec.sessions else spec.runs
        if s >= spec.sessions:
            total_units += spec.warmup + runs
        stage = f"session {s + 1}/{spec.sessions}" if s < spec.sessions else f"extra session {s + 1}"
        progress.report(stage, done, total_units)
        runner = _Runner(create_session(model, session_options(spec), providers), feeds)
        timed_call = runner.timed_call
        gc.disable()
        try:
            for _ in range(spec.warmup):
                warmups.append(_run_checked(runner, model))
            done += spec.warmup
            progress.report(stage, done, total_units)
            for i in range(runs):
                samples.append(_run_checked(runner, model))
                sid.append(s)
                # Report every 10 runs: progress callbacks must not perturb the samples noticeably.
                if i % 10 == 9:
                    progress.report(stage, done + i + 1, total_units)
            done += runs
        finally:
            if gc_was_enabled:
                gc.enable()
        del runner
        s += 1
    progress.report("done", done, total_units)
    return TimedRuns(
        samples_ms=tuple(samples),
        warmup_ms=tuple(warmups),
        session_index=tuple(sid),
        sessions=s,
        rel_ci=relative_ci(samples),
        stopped_by=stopped_by,
        timed_call=timed_call,
    )
