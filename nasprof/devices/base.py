"""The device-backend contract: one abstract class, one spec of what to measure, one registry object.

``MeasureSpec`` (what to measure) lives in ``nasprof.profiler.spec``, below the devices, and is re-exported
here. A *backend* is a kind of hardware plus the runtime that drives it (``cpu``: onnxruntime on this host;
``cuda``; ``android``: onnxruntime_perf_test over adb; ``mcu``: an estimator). A *device* is a named,
configured backend instance (``pixel`` = android backend + serial + core mask). Backends are registered by
name in a ``BackendRegistry``; third-party ones come in through the ``nasprof.backends`` entry-point group.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

from nasprof.errors import DeviceUnavailableError
from nasprof.profiler.measurement import Measurement
from nasprof.profiler.spec import MeasureSpec

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


class BackendRegistry:
    """Backend kinds by name. A duplicate or malformed name is an error, never a silent overwrite."""

    def __init__(self, *, entry_point_group: str | None = ENTRY_POINT_GROUP) -> None:
        self._factories: dict[str, BackendFactory] = {}
        #: Plugins whose entry point failed to load: name -> why. They stay listed, and fail on use.
        self.load_errors: dict[str, str] = {}
        self._group = entry_point_group
        self._entry_points_loaded = entry_point_group is None

    def register(self, name: str, factory: BackendFactory | None = None) -> Any:
        """Register ``factory`` under ``name``; usable as a class decorator when ``factory`` is omitted."""

        def deco(f: BackendFactory) -> BackendFactory:
            if not callable(f):
                raise ValueError(f"backend {name!r}: the factory must be a Backend subclass or a callable")
            if not name or not name.replace("_", "").replace("-", "").isalnum() or name != name.lower():
                raise ValueError(f"malformed backend name {name!r}: use lower-case letters, digits, - and _")
            if name in self._factories and self._factories[name] is not f:
                raise ValueError(f"backend {name!r} is already registered")
            self._factories[name] = f
            return f

        return deco if factory is None else deco(factory)

    def _load_entry_points(self) -> None:
        if self._entry_points_loaded or self._group is None:  # None: a registry without plugins (tests)
            return
        self._entry_points_loaded = True
        from importlib.metadata import entry_points

        for ep in entry_points(group=self._group):
            if ep.name in self._factories:
                continue  # built-ins win over a plugin of the same name
            try:
                self.register(ep.name, ep.load())
            except Exception as exc:  # a broken plugin must not break nasprof
                self.load_errors[ep.name] = f"{type(exc).__name__}: {exc}"
                self._factories.setdefault(ep.name, _broken_plugin(ep.name, ep.value, exc))

    def unregister(self, name: str) -> None:
        """Remove ``name`` (tests; a plugin replacing a built-in on purpose). Unknown names are an error."""
        if name not in self._factories:
            raise KeyError(f"backend {name!r} is not registered")
        del self._factories[name]
        self.load_errors.pop(name, None)

    def names(self) -> list[str]:
        self._load_entry_points()
        return sorted(self._factories)

    def __contains__(self, name: object) -> bool:
        self._load_entry_points()
        return name in self._factories

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def create(self, name: str, device: str | None = None, **config: Any) -> Backend:
        self._load_entry_points()
        try:
            factory = self._factories[name]
        except KeyError:
            raise DeviceUnavailableError(
                f"unknown backend {name!r}; known backends: {', '.join(self.names())}"
            ) from None
        return factory(device=device, **config)


def _broken_plugin(name: str, target: str, exc: Exception) -> BackendFactory:
    def factory(**_: Any) -> Backend:
        raise DeviceUnavailableError(
            f"backend plugin {name!r} ({target}) failed to load: {type(exc).__name__}: {exc}; "
            "reinstall or upgrade the package that provides it"
        )

    return factory


#: The process-wide registry; tests may build their own ``BackendRegistry``.
registry = BackendRegistry()
