"""The device-backend contract: one abstract class, one spec of what to measure, one registry object.

``MeasureSpec`` (what to measure) lives in ``nasprof.profiler.spec``, below the devices, and is re-exported
here. A *backend* is a kind of hardware plus the runtime that drives it (``cpu``: onnxruntime on this host;
``cuda``; ``android``: onnxruntime_perf_test over adb; ``mcu``: an estimator). A *device* is a named,
configured backend instance (``pixel`` = android backend + serial + core mask). Backends are registered by
name in a ``BackendRegistry``; third-party ones come in through the ``nasprof.backends`` entry-point group.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from nasprof.errors import DeviceUnavailableError
from nasprof.profiler.measurement import Measurement
from nasprof.profiler.spec import MeasureSpec
from nasprof.registry import Registry

__all__ = ["MeasureSpec", "Backend", "BackendRegistry", "registry", "ENTRY_POINT_GROUP"]

ENTRY_POINT_GROUP = "nasprof.backends"


class Backend(abc.ABC):
    """A configured device that can time ONNX models.

    Contract for implementations:
    - ``name`` is the backend kind (``"cpu"``); ``device`` is the user-facing device name (``"pixel"``).
    - ``available()`` never raises: it returns ``(False, reason)`` where ``reason`` says what to install,
      attach or configure.
    - ``measure()`` returns a ``Measurement`` whose ``samples_ms`` are end-to-end latencies in milliseconds
      taken with profiling off, and whose ``metadata`` names the runtime, its version, threads and hardware.
      It raises ``ModelError`` for a bad model, ``DeviceUnavailableError`` when the device cannot be used and
      ``DeviceError`` when it fails mid-measurement. It must not leave files behind on the device.
    - Instances are not shared between threads; one measurement at a time per instance.
    """

    name: ClassVar[str] = ""

    def __init__(self, device: str | None = None, **config: Any) -> None:
        self.device = device or self.name
        self.config = dict(config)

    @abc.abstractmethod
    def available(self) -> tuple[bool, str]:
        """Return ``(True, "")`` when measuring can work here, else ``(False, what to do)``."""

    @abc.abstractmethod
    def measure(self, model: Path, spec: MeasureSpec) -> Measurement:
        """Time ``model`` as ``spec`` says."""

    def describe(self) -> dict[str, Any]:
        """What the device reports about itself (model, cores, clocks, runtime versions). Cheap to call."""
        return {"backend": self.name, "device": self.device, **self.config}

    def readiness(self) -> list[Any]:
        """Checks of the device's state before measuring (``nasprof doctor --device``), as
        ``nasprof.profiler.doctor.Check`` items. The default has none: the host's own checks cover a
        device that runs in this process."""
        return []

    def check_spec(self, spec: MeasureSpec) -> None:
        """Raise ``InputError`` for a spec this backend would refuse on every model (unknown options, say).

        Long jobs (table builds, kernel sampling) call it once up front, so a bad option is one error and
        not one failed entry per layer. The default accepts every spec."""
        return None

    def ensure_available(self) -> None:
        ok, reason = self.available()
        if not ok:
            raise DeviceUnavailableError(f"device {self.device!r} is not available: {reason}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(device={self.device!r})"


BackendFactory = Callable[..., Backend]


class BackendRegistry(Registry[BackendFactory]):
    """Backend kinds by name (``nasprof.registry.Registry``). A plugin that fails to load stays listed and
    fails on use with its reason."""

    def __init__(self, *, entry_point_group: str | None = ENTRY_POINT_GROUP) -> None:
        super().__init__("backend", entry_point_group=entry_point_group, error=DeviceUnavailableError)

    def register(self, name: str, factory: BackendFactory | None = None, *, replace: bool = False) -> Any:
        """Register ``factory`` under ``name``; usable as a class decorator when ``factory`` is omitted."""

        def deco(f: BackendFactory) -> BackendFactory:
            if not callable(f):
                raise ValueError(f"backend {name!r}: the factory must be a Backend subclass or a callable")
            return super(BackendRegistry, self).register(name, f, replace=replace)

        return deco if factory is None else deco(factory)

    def _broken(self, name: str, target: str, exc: Exception) -> None:
        self._items.setdefault(name, _broken_plugin(name, target, exc))

    def create(self, name: str, device: str | None = None, **config: Any) -> Backend:
        if name not in self:
            raise DeviceUnavailableError(
                f"unknown backend {name!r}; known backends: {', '.join(self.names())}"
            )
        return self.get(name)(device=device, **config)


def _broken_plugin(name: str, target: str, exc: Exception) -> BackendFactory:
    def factory(**_: Any) -> Backend:
        raise DeviceUnavailableError(
            f"backend plugin {name!r} ({target}) failed to load: {type(exc).__name__}: {exc}; "
            "reinstall or upgrade the package that provides it"
        )

    return factory


#: The process-wide registry; tests may build their own ``BackendRegistry``.
registry = BackendRegistry()
