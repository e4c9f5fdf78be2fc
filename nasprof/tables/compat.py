"""When are two tables (or a table and a device) measuring the same thing?

One table holds one device *type* in one environment: identical phones may share a build, but a table must
not mix a Pixel 4 with a Pixel 6, onnxruntime 1.17 with 1.18, or 1 thread with 4. The environment is the
device's self-description (``Backend.describe()``) plus the measurement settings that change latency.
Keys that vary between identical devices or between runs (serial, hostname, load, timestamps) are ignored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from nasprof.devices.base import Backend, MeasureSpec

__all__ = ["check_comparable", "environment_of", "environment_mismatch", "IGNORED_ENVIRONMENT_KEYS"]

#: Differ between identical devices, hosts or runs, without changing what a latency means.
IGNORED_ENVIRONMENT_KEYS = frozenset({
    "device", "serial", "device_serial", "hostname", "host", "pid", "timestamp", "timestamp_utc",
    "load_average", "executable", "nasprof_version", "python_version", "platform", "numpy_version",
    "onnx_version", "battery", "temperature",
    # Android: volatile state and host-side paths; the runner's identity is its sha256, which stays checked.
    "thermal_status", "adb_path", "adb_version", "runner_path",
})

#: MeasureSpec fields that change the latency itself (not just its precision).
LATENCY_SETTINGS = ("threads", "opt_level")


def environment_of(backend: Backend, spec: MeasureSpec) -> dict[str, Any]:
    """The environment a table built with ``backend`` and ``spec`` records."""
    env = {k: v for k, v in backend.describe().items() if _jsonable(v)}
    env["backend"] = backend.name
    for k in LATENCY_SETTINGS:
        env[k] = getattr(spec, k)
    return env


def environment_mismatch(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    """Human-readable differences between two environments (empty when compatible)."""
    out = []
    for k in sorted((set(a) | set(b)) - IGNORED_ENVIRONMENT_KEYS):
        if a.get(k) != b.get(k):
            out.append(f"{k}: {a.get(k)!r} vs {b.get(k)!r}")
    return out


def _jsonable(v: Any) -> bool:
    import json

    try:
        json.dumps(v)
    except (TypeError, ValueError):
        return False
    return True


def check_comparable(backends: Sequence[Backend], spec: MeasureSpec, *, force: bool | None = False,
                     what: str = "one table holds one device type") -> list[dict[str, Any]]:
    """The environments of ``backends``; ``InputError`` naming the first difference when two devices are
    not the same model, runner and settings (pyperf's rule: do not merge what is not comparable), unless
    ``force``. ``force=None``: the caller has no --force, so the message offers none."""
    from nasprof.errors import InputError

    envs = [environment_of(b, spec) for b in backends]
    for b, env in zip(backends[1:], envs[1:], strict=True):
        diff = environment_mismatch(envs[0], env)
        if diff and not force:
            hint = "" if force is None else " (--force mixes them anyway)"
            raise InputError(
                f"devices {backends[0].device!r} and {b.device!r} differ ({'; '.join(diff)}); {what}{hint}"
            )
    return envs
