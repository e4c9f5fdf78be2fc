"""Turning an onnxruntime timing (and optional profiled pass) into a ``Measurement``.

Shared by every backend that drives onnxruntime in this process (cpu, cuda) or on a board (ssh), so their
results carry the same metadata keys with the same meaning and compare field by field. The model's keys
(``model_metadata``) and the plan's (``plan_metadata``) are also what the android backend's perf_test
processes record, beside what is theirs alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from nasprof.profiler.measurement import Measurement

if TYPE_CHECKING:  # the devices package imports the profiler; keep this module import-light
    from nasprof.profiler.onnx_model import ModelInfo
    from nasprof.profiler.ort_profile import ProfiledPass
    from nasprof.profiler.ort_runner import TimedRuns
    from nasprof.profiler.spec import MeasureSpec

__all__ = ["model_metadata", "plan_metadata", "run_metadata", "to_measurement"]


def model_metadata(info: ModelInfo) -> dict[str, Any]:
    """What was measured: the model file and its inputs (every backend that loads the model on the host)."""
    return {
        "model_path": str(info.path),
        "model_sha256": info.sha256,
        "model_size_bytes": info.size_bytes,
        "model_opset": info.opset,
        "model_producer": info.producer,
        "input_shapes": {i.name: list(i.shape) for i in info.inputs},
        "input_dtypes": {i.name: i.dtype for i in info.inputs},
    }


def plan_metadata(spec: MeasureSpec, rel_ci: float, stopped_by: str) -> dict[str, Any]:
    """The timing as planned (threads, optimisation level, runs, sessions, adaptive repetition) and how it
    ended: the keys every backend's timing loop shares, whatever a sample is on it."""
    return {
        "threads": spec.threads,
        "opt_level": spec.opt_level,
        "seed": spec.seed,
        "runs": spec.runs,
        "sessions_planned": spec.sessions,
        "median_rel_ci95": rel_ci,
        "stopped_by": stopped_by,
        "target_rel_ci": spec.target_rel_ci,
        "max_runs": spec.max_runs,
    }


def run_metadata(
    info: ModelInfo, spec: MeasureSpec, timed: TimedRuns, int_range: tuple[int, int]
) -> dict[str, Any]:
    """What was measured (the model and its inputs), as planned, and how the timing ended, for a timing loop
    of onnxruntime sessions fed by nasprof (``int_range``), with ``spec.warmup`` warm-ups per session."""
    return {
        **plan_metadata(spec, timed.rel_ci, timed.stopped_by),
        **model_metadata(info),
        "timed_call": timed.timed_call,
        "int_range": list(int_range),
        "warmup": spec.warmup,
        "sessions": timed.sessions,
    }


def to_measurement(
    device: str,
    backend: str,
    timed: TimedRuns,
    metadata: Mapping[str, Any],
    profiled: ProfiledPass | None = None,
) -> Measurement:
    """The ``Measurement`` of ``timed``; a profiled pass adds per-node times and its own settings."""
    meta = dict(metadata)
    if profiled is not None:
        meta.update({
            "per_node_opt_level": profiled.opt_level,
            "per_node_runs": profiled.runs,
            # Profiled runs are slower (profiler overhead per node); kept to show by how much.
            "profiled_median_ms": profiled.median_run_ms,
        })
    return Measurement(
        device=device,
        backend=backend,
        samples_ms=timed.samples_ms,
        warmup_ms=timed.warmup_ms,
        session_index=timed.session_index,
        metadata=meta,
        per_node=profiled.nodes if profiled is not None else None,
    )
