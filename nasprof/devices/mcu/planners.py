"""``plan_memory``: run a memory model by name (the planners import ``memory.py``'s types, so the dispatcher
lives here, above both)."""

from __future__ import annotations

from typing import Any

from nasprof.devices.mcu.graph import McuGraph
from nasprof.devices.mcu.memory import MEMORY_MODELS, MemoryPlan
from nasprof.devices.mcu.per_layer import plan_per_layer
from nasprof.devices.mcu.tflm import plan_tflm
from nasprof.devices.mcu.tinyengine import plan_tinyengine
from nasprof.errors import InputError

__all__ = ["plan_memory"]


def plan_memory(graph: McuGraph, memory_model: str, **options: Any) -> MemoryPlan:
    """Run the memory model called ``memory_model`` (one of ``MEMORY_MODELS``) on ``graph``."""
    if memory_model == "per-layer":
        return plan_per_layer(graph, **options)
    if memory_model == "tflm":
        return plan_tflm(graph, **options)
    if memory_model == "tinyengine":
        return plan_tinyengine(graph, **options)
    raise InputError(f"unknown memory model {memory_model!r}; choose one of {', '.join(MEMORY_MODELS)}")
