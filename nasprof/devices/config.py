"""Named devices: the ``[devices.NAME]`` tables of a TOML file.

Which file (the first that applies):

1. ``$NASPROF_DEVICES`` — an explicit path (tests and CI use it);
2. ``./nasprof.toml`` in the working directory, when it exists — a project's own devices;
3. ``$XDG_CONFIG_HOME/nasprof/devices.toml``, else ``~/.config/nasprof/devices.toml`` — the user's devices.

The file looks like this (``nasprof devices add`` writes it; editing by hand is fine)::

    schema_version = 1

    [devices.pixel]
    backend = "android"
    serial = "HT7A1234"
    cores = "big"
    threads = 1

Every key other than ``backend`` is passed to the backend as configuration. Nothing is read at import time.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nasprof.errors import InputError, MissingDependencyError, SchemaError

__all__ = [
    "DEVICES_ENV",
    "DEVICES_SCHEMA_VERSION",
    "DeviceConfig",
    "devices_file",
    "user_devices_file",
    "load_devices",
    "add_device",
    "remove_device",
    "validate_device_name",
    "normalize_cores",
    "validate_options",
]

DEVICES_ENV = "NASPROF_DEVICES"
PROJECT_FILE = "nasprof.toml"
#: History: 1 — ``[devices.NAME]`` tables with ``backend`` and backend-specific keys.
DEVICES_SCHEMA_VERSION = 1

# Letters first, then letters, digits, - and _: no ':' (cuda:N), ',' (device lists) or '.' (TOML dotted keys).
_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
_MASK_RE = re.compile(r"^(?:0x)?([0-9a-f]+)$")
_HEADER = (
    "nasprof devices: written by `nasprof devices add/remove` (comments are not kept).\n"
    "Each [devices.NAME] table names a backend; its other keys configure it."
)


@dataclass(frozen=True)
class DeviceConfig:
    """A named device: a backend kind plus its configuration (``serial``, ``cores``, ``threads``, ...)."""

    name: str
    backend: str
    options: Mapping[str, Any] = field(default_factory=dict)
    #: The file the device was read from (``None`` when built in code).
    source: Path | None = None

    def to_table(self) -> dict[str, Any]:
        return {"backend": self.backend, **dict(self.options)}


def devices_file() -> Path:
    """The devices file in effect (it need not exist yet); see the module docstring for the order."""
    env = os.environ.get(DEVICES_ENV, "").strip()
    if env:
        return Path(env).expanduser()
    project = Path.cwd() / PROJECT_FILE
    if project.is_file():
        return project
    return user_devices_file()


def user_devices_file() -> Path:
    """``$XDG_CONFIG_HOME/nasprof/devices.toml``, else ``~/.config/nasprof/devices.toml``."""
    xdg = os.environ.get("XDG_CONFIG_HOME", "").strip()
    base = Path(xdg).expanduser() if xdg else Path.home() / ".config"
    return base / "nasprof" / "devices.toml"


def _toml_loads(text: str) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        try:
            import tomli as tomllib
        except ImportError:
            raise MissingDependencyError("reading the devices file on Python 3.10 needs tomli: "
                                         "pip install tomli") from None
    return tomllib.loads(text)


def _read_document(path: Path) -> dict[str, Any]:
    """The whole TOML document at ``path`` (``{}`` when the file does not exist)."""
    if not path.exists():
        return {}
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read devices file {path}: {exc}") from None
    try:
        doc = _toml_loads(text)
    except ValueError as exc:  # tomllib.TOMLDecodeError is a ValueError; its message names line and column
        raise InputError(f"devices file {path} is not valid TOML: {exc}; fix that line or delete the file"
                         ) from None
    version = doc.get("schema_version", DEVICES_SCHEMA_VERSION)
    if not isinstance(version, int) or isinstance(version, bool) or version > DEVICES_SCHEMA_VERSION:
        raise SchemaError(f"devices file {path} has schema_version {version!r}; this nasprof understands "
                          f"{DEVICES_SCHEMA_VERSION}: upgrade nasprof")
    return doc


def _parse_devices(path: Path, doc: Mapping[str, Any]) -> dict[str, DeviceConfig]:
    table = doc.get("devices", {})
    if not isinstance(table, Mapping):
        raise InputError(f"devices file {path}: 'devices' must be a table of [devices.NAME] tables")
    out: dict[str, DeviceConfig] = {}
    for name, entry in table.items():
        if not isinstance(entry, Mapping):
            raise InputError(f"devices file {path}: [devices.{name}] must be a table with a backend key")
        backend = entry.get("backend")
        if not isinstance(backend, str) or not backend:
            raise InputError(f"devices file {path}: [devices.{name}] needs backend = \"KIND\" "
                             "(cpu, cuda, android, mcu, ...)")
        if not _NAME_RE.match(name):
            raise InputError(f"devices file {path}: device name {name!r} is not valid; use letters, digits, "
                             "- and _, starting with a letter")
        options = {k: v for k, v in entry.items() if k != "backend"}
        try:  # a bad value in the file is the file's, not a command-line flag's: say which file and key
            validate_options({k: v for k, v in options.items() if k in ("threads", "cores")})
        except InputError as exc:
            msg = str(exc).replace("--threads", "threads").replace("--cores", "cores")
            raise InputError(f"devices file {path}: [devices.{name}] {msg}; edit the file or "
                             f"`nasprof devices add {name} ... --force`") from None
        out[name] = DeviceConfig(name=name, backend=backend, options=options, source=path)
    return out


def load_devices(path: Path | None = None) -> dict[str, DeviceConfig]:
    """Named devices from ``path`` (default: ``devices_file()``); ``{}`` when the file does not exist.

    Raises ``InputError`` naming the file and line when the TOML is malformed.
    """
    path = devices_file() if path is None else Path(path)
    return _parse_devices(path, _read_document(path))


def validate_device_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise InputError(f"device name {name!r} is not valid: use 1-64 letters, digits, - and _, "
                         "starting with a letter (e.g. pixel, lab-phone_2)")
    return name


def normalize_cores(value: str) -> str:
    """``big`` | ``all`` | a hexadecimal CPU mask (``f0`` or ``0xf0``) -> canonical form (``0xf0``)."""
    v = str(value).strip().lower()
    if v in ("big", "all"):
        return v
    m = _MASK_RE.match(v)
    if not m or int(m.group(1), 16) == 0:
        raise InputError(f"--cores {value!r} is not valid: use big, all, or a non-zero hexadecimal CPU mask "
                         "such as 0xf0 (CPUs 4-7)")
    return hex(int(m.group(1), 16))


def validate_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """Check the options every backend shares the meaning of; other keys pass through unchanged."""
    out = dict(options)
    if "serial" in out and not str(out["serial"]).strip():
        raise InputError("--serial is empty; give the device's adb serial (see `adb devices`), or leave "
                         "--serial out when one phone is attached")
    if "threads" in out:
        threads = out["threads"]
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise InputError(f"--threads must be an integer >= 1, got {threads!r}")
    if "cores" in out:
        out["cores"] = normalize_cores(out["cores"])
        if out["cores"].startswith("0x") and "threads" in out:
            n_cores = bin(int(out["cores"], 16)).count("1")
            # More threads than pinned cores makes threads share a core, which is what pinning avoids.
            if out["threads"] > n_cores:
                raise InputError(f"--threads {out['threads']} is more than the {n_cores} cores in mask "
                                 f"{out['cores']}; use at most {n_cores} threads or a wider mask")
    if "runner" in out:
        runner = Path(str(out["runner"])).expanduser()
        if not runner.is_file():
            raise InputError(f"runner {runner} does not exist; build or download onnxruntime_perf_test "
                             "for the device (see the README's Android section) and pass its path")
        if not os.access(runner, os.X_OK):
            raise InputError(f"runner {runner} is not executable; run: chmod +x {runner}")
        out["runner"] = str(runner.resolve())
    return out


def _write(path: Path, doc: Mapping[str, Any]) -> Path:
    from nasprof._io import atomic_write_text
    from nasprof.devices._toml import dumps

    # Only the user's config directory is created on demand; an explicit or project path must already exist,
    # so that a typo in $NASPROF_DEVICES does not silently create a directory tree.
    if path == user_devices_file():
        path.parent.mkdir(parents=True, exist_ok=True)
    rest = {k: v for k, v in doc.items() if k != "schema_version"}
    body = {"schema_version": DEVICES_SCHEMA_VERSION, **rest}
    return atomic_write_text(path, dumps(body, header=_HEADER))


def add_device(
    config: DeviceConfig,
    *,
    path: Path | None = None,
    force: bool = False,
    reserved: frozenset[str] = frozenset(),
) -> Path:
    """Add (or with ``force`` replace) ``config`` in the devices file and return the file's path.

    ``reserved`` holds names that must not be shadowed without ``force`` (built-ins such as ``cpu``).
    Raises ``InputError`` for a bad name, bad options, or a name that exists already.
    """
    path = devices_file() if path is None else Path(path)
    name = validate_device_name(config.name)
    if name in reserved and not force:
        raise InputError(f"{name!r} is a built-in device; pick another name, or pass --force to shadow it")
    options = validate_options(config.options)
    doc = _read_document(path)
    _parse_devices(path, doc)  # refuse to rewrite a file whose existing entries are malformed
    devices = dict(doc.get("devices", {}))
    if name in devices and not force:
        raise InputError(f"device {name!r} already exists in {path}; pass --force to replace it, or "
                         f"`nasprof devices remove {name}` first")
    devices[name] = DeviceConfig(name, config.backend, options).to_table()
    return _write(path, {**doc, "devices": devices})


def remove_device(name: str, *, path: Path | None = None) -> Path:
    """Remove ``name`` from the devices file; ``InputError`` when it is not there."""
    path = devices_file() if path is None else Path(path)
    doc = _read_document(path)
    _parse_devices(path, doc)  # a malformed file is reported, not half rewritten
    devices = dict(doc.get("devices", {}))
    if name not in devices:
        known = ", ".join(sorted(devices)) or "none"
        raise InputError(f"no device named {name!r} in {path} (named devices there: {known})")
    del devices[name]
    return _write(path, {**doc, "devices": devices})
