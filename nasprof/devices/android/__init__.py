"""The ``android`` backend: onnxruntime_perf_test on a phone over the real adb client.

Modules: ``adb`` (the client wrapper), ``device_info`` (properties, CPU clusters, thermal status),
``runner`` (the perf_test binary and its libraries), ``perf_output`` (parsing perf_test's report),
``settings`` (the device-file keys), ``sampling`` (how many perf_test processes, when to stop), ``backend``
(``AndroidBackend``, registered as ``android``).
"""

from __future__ import annotations

from nasprof.devices.android.adb import Adb, ShellResult, find_adb, quote_command
from nasprof.devices.android.backend import AndroidBackend
from nasprof.devices.android.device_info import CpuTopology, parse_thermal_status, wait_until_cool
from nasprof.devices.android.perf_output import PerfTestOutput, parse_perf_test_output
from nasprof.devices.android.runner import RunnerFiles
from nasprof.devices.android.settings import AndroidSettings

__all__ = [
    "Adb",
    "AndroidBackend",
    "AndroidSettings",
    "CpuTopology",
    "PerfTestOutput",
    "RunnerFiles",
    "ShellResult",
    "find_adb",
    "parse_perf_test_output",
    "parse_thermal_status",
    "quote_command",
    "wait_until_cool",
]
