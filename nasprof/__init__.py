"""nasprof — hardware profiling and latency tables for hardware-aware neural architecture search.

Importing ``nasprof`` is cheap: submodules (and torch, onnxruntime) load on first use, so a search loop that
only queries a predictor never pays for the exporter.
"""

from __future__ import annotations

import importlib
from typing import Any

from nasprof._version import __version__
from nasprof.errors import (
    DeviceError,
    DeviceUnavailableError,
    InputError,
    MissingDependencyError,
    ModelError,
    NasprofError,
    PredictorError,
    SchemaError,
    SpaceError,
    TableError,
)

# name -> module that defines it; resolved lazily by __getattr__.
_LAZY: dict[str, str] = {
    "Measurement": "nasprof.profiler.measurement",
    "NodeTime": "nasprof.profiler.measurement",
    "MeasureSpec": "nasprof.profiler.spec",
    "Backend": "nasprof.devices.base",
    "get_device": "nasprof.devices",
    "get_devices": "nasprof.devices",
    "list_devices": "nasprof.devices",
    "measure": "nasprof.devices.api",
    "Arch": "nasprof.space",
    "get_space": "nasprof.space",
    "get_preset": "nasprof.space",
    "export_arch": "nasprof.space",
    "export_layer": "nasprof.space",
    "count_onnx": "nasprof.space",
    "Predictor": "nasprof.predictors",
    "LutPredictor": "nasprof.predictors",
    "KernelPredictor": "nasprof.predictors",
    "LatencyTable": "nasprof.tables.store",
    "TableEntry": "nasprof.tables.entry",
    "build_table": "nasprof.tables.builder",
    "estimate_mcu": "nasprof.devices.mcu",
    "Reward": "nasprof.search.rewards",
    "pareto_front": "nasprof.search.pareto",
}

__all__ = [
    "__version__",
    "NasprofError",
    "InputError",
    "ModelError",
    "DeviceError",
    "DeviceUnavailableError",
    "SpaceError",
    "TableError",
    "PredictorError",
    "SchemaError",
    "MissingDependencyError",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'nasprof' has no attribute {name!r}")
