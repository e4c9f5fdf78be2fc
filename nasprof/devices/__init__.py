"""Device backends behind one interface (``Backend``) and a registry; ``get_device`` resolves a name."""

from __future__ import annotations

from nasprof.devices.base import ENTRY_POINT_GROUP, Backend, BackendRegistry, MeasureSpec, registry

__all__ = ["Backend", "BackendRegistry", "MeasureSpec", "registry", "ENTRY_POINT_GROUP", "get_device"]

# Built-in backends register themselves on import. Keep these imports light: runtimes load lazily inside.
from nasprof.devices import cpu as _cpu  # noqa: E402,F401


def get_device(name: str) -> Backend:
    """Resolve a device name (``cpu``, ``cuda:0``, a board, or a name from the devices TOML) to a backend."""
    from nasprof.errors import DeviceUnavailableError

    if name in registry:
        return registry.create(name, device=name)
    raise DeviceUnavailableError(f"unknown device {name!r}; known devices: {', '.join(registry.names())}")
