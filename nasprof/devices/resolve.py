"""From a device name to a configured ``Backend``, and the list of every device with its availability.

Resolution order of ``get_device(name)``:

1. a named device from the devices file (``nasprof devices add``; see ``nasprof.devices.config``);
2. ``cuda:N`` -> the ``cuda`` backend on GPU N;
3. a registered backend name used as a device: ``cpu``, ``cuda``, the MCU boards (``stm32f746``), plugins;
4. otherwise ``DeviceUnavailableError`` listing the known names and how to add one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nasprof.devices.attached import attached
from nasprof.devices.base import Backend, BackendRegistry, registry
from nasprof.devices.config import (
    DeviceConfig,
    add_device,
    devices_file,
    load_devices,
    remove_device,
    validate_device_name,
    validate_options,
)
from nasprof.errors import DeviceUnavailableError, InputError, NasprofError

__all__ = [
    "DeviceStatus", "get_device", "get_devices", "list_devices", "builtin_names", "add_named_device",
    "remove_named_device", "ADD_HINT",
]

_CUDA_N = re.compile(r"^cuda:(\d+)$")
ADD_HINT = "add one with `nasprof devices add NAME --backend KIND [--serial S] [--cores big] [--threads N]`"


@dataclass(frozen=True)
class DeviceStatus:
    """One row of ``nasprof devices list``."""

    name: str
    backend: str
    #: "built-in", or the path of the devices file that defines it.
    source: str
    available: bool
    #: Why it is not available (what to install, attach or configure); empty when available.
    reason: str
    options: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "backend": self.backend, "source": self.source,
                "available": self.available, "reason": self.reason, "options": dict(self.options)}


def builtin_names(reg: BackendRegistry = registry) -> frozenset[str]:
    """Names that resolve without a devices file (registered backends and boards)."""
    return frozenset(reg.names())


def _from_config(cfg: DeviceConfig, reg: BackendRegistry) -> Backend:
    if cfg.backend not in reg:
        raise DeviceUnavailableError(
            f"device {cfg.name!r} (in {cfg.source}) uses backend {cfg.backend!r}, which is not installed; "
            f"known backends: {', '.join(reg.names())}"
        )
    try:
        return reg.create(cfg.backend, device=cfg.name, **dict(cfg.options))
    except TypeError as exc:  # the backend does not take one of the configured keys
        raise InputError(f"device {cfg.name!r} (in {cfg.source}): {exc}; fix its table in the devices file"
                         ) from None


def get_device(name: str, *, reg: BackendRegistry = registry, devices_path: Path | None = None) -> Backend:
    """Resolve ``name`` to a configured backend (see the module docstring for the order).

    Raises ``DeviceUnavailableError`` for an unknown name, ``InputError`` for a malformed one or a bad devices
    file. The backend is not checked for availability here: call ``available()`` or ``ensure_available()``.
    """
    if not isinstance(name, str) or not name.strip():
        raise InputError("empty device name; use cpu, cuda, a board, or a name from `nasprof devices list`")
    name = name.strip()
    if "," in name:
        raise InputError(f"{name!r} names several devices; get_device takes one (use get_devices for a list)")
    remote = attached(name)  # a device of a Ray cluster this process attached (`--ray`)
    if remote is not None:
        return remote
    named = load_devices(devices_path)
    if name in named:
        return _from_config(named[name], reg)
    m = _CUDA_N.match(name)
    if m and "cuda" in reg:
        return reg.create("cuda", device=name, device_id=int(m.group(1)))
    if name in reg:
        # No device= here: a kind that needs configuration (mcu without a board) then explains what it needs.
        return reg.create(name)
    known = sorted({*reg.names(), "cuda:N", *named})
    path = devices_path or devices_file()
    raise DeviceUnavailableError(
        f"unknown device {name!r}; known devices: {', '.join(known)} (named devices are read from {path}); "
        + ADD_HINT
    )


def get_devices(
    names: str, *, reg: BackendRegistry = registry, devices_path: Path | None = None
) -> list[Backend]:
    """``"pixel,pixel2"`` -> one backend per name, in order. Empty items and repeats are errors."""
    parts = [p.strip() for p in str(names).split(",")]
    if not parts or any(not p for p in parts):
        raise InputError(f"device list {names!r} has an empty item; write NAME[,NAME...] e.g. pixel,pixel2")
    repeated = sorted({p for p in parts if parts.count(p) > 1})
    if repeated:
        raise InputError(f"device list {names!r} names {', '.join(repeated)} more than once")
    return [get_device(p, reg=reg, devices_path=devices_path) for p in parts]


def _status(name: str, kind: str, source: str, options: Mapping[str, Any], make: Any) -> DeviceStatus:
    """Create the backend and ask it; creation errors become the reason (``android`` without a serial)."""
    try:
        backend = make()
        kind = backend.name or kind
        ok, reason = backend.available()
    except NasprofError as exc:
        ok, reason = False, str(exc)
    except Exception as exc:  # noqa: BLE001 - a buggy plugin must not break the listing
        ok, reason = False, f"{type(exc).__name__} while checking: {exc}"
    return DeviceStatus(name=name, backend=kind, source=source, available=bool(ok),
                        reason="" if ok else str(reason), options=dict(options))


def list_devices(*, reg: BackendRegistry = registry, devices_path: Path | None = None) -> list[DeviceStatus]:
    """Every device ``get_device`` can resolve, named ones first, each with its availability and why not.

    Backend kinds that need configuration to be a device (``android`` needs a serial, ``mcu`` a board) are
    listed too; their reason says what to configure.
    """
    named = load_devices(devices_path)
    rows = [
        _status(cfg.name, cfg.backend, str(cfg.source), cfg.options,
                lambda cfg=cfg: _from_config(cfg, reg))
        for cfg in named.values()
    ]
    for name in reg.names():
        if name in named:
            continue  # shadowed by a named device of the same name
        rows.append(_status(name, name, "built-in", {}, lambda name=name: reg.create(name)))
    return rows


def add_named_device(
    name: str,
    backend: str,
    options: Mapping[str, Any] | None = None,
    *,
    force: bool = False,
    reg: BackendRegistry = registry,
    devices_path: Path | None = None,
) -> Path:
    """Check and store a named device; returns the devices file written.

    The backend must be registered, the name must not shadow a built-in (unless ``force``), and the backend
    must accept the options: it is constructed once (without connecting), so a typo fails now, not at the
    first measurement.
    """
    validate_device_name(name)
    if backend not in reg:
        raise InputError(f"unknown backend {backend!r}; known backends: {', '.join(reg.names())}")
    options = validate_options(dict(options or {}))
    cfg = DeviceConfig(name=name, backend=backend, options=options)
    _from_config(DeviceConfig(name, backend, options, source=Path("(new device)")), reg)
    return add_device(cfg, path=devices_path, force=force, reserved=builtin_names(reg))


def remove_named_device(
    name: str, *, reg: BackendRegistry = registry, devices_path: Path | None = None
) -> Path:
    """Remove a named device; a built-in name gets an explanation instead of "not found"."""
    named = load_devices(devices_path)
    if name not in named and (name in reg or _CUDA_N.match(name)):
        raise InputError(f"{name!r} is a built-in device and cannot be removed")
    return remove_device(name, path=devices_path)
