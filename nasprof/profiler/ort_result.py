"""Turning an onnxruntime timing (and optional profiled pass) into a ``Measurement``.

Shared by every backend that drives onnxruntime in this process (cpu, cuda), so their results carry the same
metadata keys with the same meaning and compare field by field.
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

__all__ = ["run_metadata", "to_measurement"]


def run_metadata(
    info: ModelInfo, spec: MeasureSpec, timed: TimedRuns, int_range: tuple[int, int]
) -> dict[str, Any]:
    """What was measured (the model and its inputs), as planned, and how the timing ended."""
    return {
        "threads": spec.threads,
        "opt_level": spec.opt_level,
        "timed_call": timed.timed_call,
        "model_path": str(info.path),
        "model_sha256": info.sha256,
        "model_size_bytes": info.size_bytes,
        "model_opset": info.opset,
        "model_producer": info.producer,
        "input_shapes": {i.name: list(i.shape) for i in info.inputs},
        "input_dtypes": {i.name: i.dtype for i in info.inputs},
        "int_range": list(int_range),
        "seed": spec.seed,
        "warmup": spec.warmup,
        "runs": spec.runs,
        "sessions_planned": spec.sessions,
        "sessions": timed.sessions,
        "median_rel_ci95": timed.rel_ci,
        "stopped_by": timed.stopped_by,
        "target_rel_ci": spec.target_rel_ci,
        "max_runs": spec.max_runs,
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
