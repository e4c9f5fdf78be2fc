"""Device backends behind one interface (``Backend``) and a registry; ``get_device`` resolves a name."""

from __future__ import annotations

from nasprof.devices.base import ENTRY_POINT_GROUP, Backend, BackendRegistry, MeasureSpec, registry

__all__ = [
    "Backend", "BackendRegistry", "MeasureSpec", "registry", "ENTRY_POINT_GROUP",
    "get_device", "get_devices", "list_devices", "DeviceStatus", "DeviceConfig",
]

# Built-in backends register themselves on import. Keep these imports light: runtimes load lazily inside.
from nasprof.devices import android as _android  # noqa: E402,F401  (phones over adb; stdlib-only import)
from nasprof.devices import cpu as _cpu  # noqa: E402,F401
from nasprof.devices import cuda as _cuda  # noqa: E402,F401  (cuda and cuda:N)
from nasprof.devices import mcu as _mcu  # noqa: E402,F401  (one device per board: stm32f746, ...)
from nasprof.devices import ssh as _ssh  # noqa: E402,F401  (Linux boards over OpenSSH; stdlib-only import)

# Name resolution: devices TOML -> cuda:N -> registered names (cpu, cuda, boards, plugins); see resolve.py.
from nasprof.devices.config import DeviceConfig  # noqa: E402
from nasprof.devices.resolve import DeviceStatus, get_device, get_devices, list_devices  # noqa: E402
