"""One family of errors for the whole library.

The library raises these with messages that say what to do next; only ``nasprof.cli`` turns them into a
one-line message and exit code 2. Nothing in the library prints or exits.
"""

from __future__ import annotations

__all__ = [
    "NasprofError",
    "InputError",
    "ModelError",
    "DeviceError",
    "DeviceUnavailableError",
    "SpaceError",
    "TableError",
    "PredictorError",
    "SchemaError",
    "StateError",
    "MissingDependencyError",
]


class NasprofError(Exception):
    """Base class of every error nasprof raises on purpose."""


class InputError(NasprofError, ValueError):
    """A user-supplied value (option, shape, path) is malformed or out of range."""


class ModelError(NasprofError):
    """An ONNX model is missing, unreadable, invalid, or cannot be run as asked."""


class DeviceError(NasprofError):
    """A device failed while measuring (disconnected, runner crashed, bad output)."""


class DeviceUnavailableError(DeviceError):
    """A device is unknown or cannot be used here (missing runtime, GPU, serial, binary)."""


class SpaceError(NasprofError, ValueError):
    """An architecture, block or search-space choice is invalid or inconsistent."""


class TableError(NasprofError):
    """A latency table cannot be read, written or merged."""


class PredictorError(NasprofError):
    """A predictor file is corrupt or does not fit the request (device, space, operators)."""


class SchemaError(NasprofError):
    """A stored file carries a schema version this nasprof does not understand."""


class StateError(InputError):
    """A saved strategy state (``--strategy-state``) is unreadable, corrupt, or belongs to another search;
    or a strategy's state is not fit to be saved (a non-finite weight)."""


class MissingDependencyError(NasprofError, ImportError):
    """An optional dependency needed for a feature is not installed."""
