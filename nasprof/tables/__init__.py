"""Latency lookup tables: the SQLite store, the table builder, and (in ``predictors``) latency predictors.

Names resolve lazily so ``import nasprof.tables`` stays cheap (no pandas, torch or onnxruntime until used).
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY: dict[str, str] = {
    "LatencyTable": "nasprof.tables.store",
    "TABLE_SCHEMA_VERSION": "nasprof.tables.table_schema",
    "TABLE_KIND": "nasprof.tables.table_schema",
    "TableEntry": "nasprof.tables.entry",
    "build_table": "nasprof.tables.builder",
    "BuildProgress": "nasprof.tables.builder",
    "BuildReport": "nasprof.tables.builder",
    "layer_entry_fields": "nasprof.tables.build_layers",
    "export_table": "nasprof.tables.transfer",
    "import_table": "nasprof.tables.transfer",
    "merge_tables": "nasprof.tables.transfer",
    "table_coverage": "nasprof.tables.transfer",
    "table_overview": "nasprof.tables.overview",
    "TableOverview": "nasprof.tables.overview",
    "MeasuredNetwork": "nasprof.tables.measurements_io",
    "MeasurementSet": "nasprof.tables.measurements",
    "read_measurements_file": "nasprof.tables.measurements_io",
    "import_measurements": "nasprof.tables.measurements",
    "load_measurement_set": "nasprof.tables.measurements",
    "list_measurement_sets": "nasprof.tables.measurements",
    "export_measurement_set": "nasprof.tables.measurements",
    "record_measurement": "nasprof.tables.measurements",
    "record_measurements": "nasprof.tables.measurements",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'nasprof.tables' has no attribute {name!r}")
