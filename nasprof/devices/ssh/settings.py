"""Settings of an ssh device: the keys of its ``[devices.NAME]`` table, checked once.

Only what OpenSSH cannot know lives here (which board, where its cache is, which Python runs the runner,
which cores to pin). Port, user, identity file and jump hosts come from the user's own ``~/.ssh/config``;
``port``, ``identity``, ``ssh_config`` and ``known_hosts`` override it for one device (tests use them).
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nasprof.errors import InputError

__all__ = ["SshSettings", "DEFAULT_CACHE_DIR", "KNOWN_KEYS", "SPEC_OPTIONS"]

DEFAULT_CACHE_DIR = "~/.cache/nasprof-ssh"
#: Keys of the devices file this backend reads (``threads`` is read by ``nasprof measure``).
KNOWN_KEYS = frozenset({
    "host", "port", "identity", "ssh_config", "known_hosts", "cache_dir", "python", "cores", "threads",
    "connect_timeout_s", "run_timeout_s", "control_persist_s", "ssh", "server_idle_s",
})
#: Settings one measurement may override through ``MeasureSpec.options`` (``--set K=V`` of ``measure``).
SPEC_OPTIONS = frozenset({"cores", "run_timeout_s"})
#: ``[user@]host``: an SSH destination or a ``Host`` alias of ~/.ssh/config, never an option (``-oX``).
_HOST_RE = re.compile(r"^(?:[A-Za-z0-9._+-]+@)?[A-Za-z0-9_.:%\[\]-]+$")


@dataclass(frozen=True)
class SshSettings:
    """The device-file keys the ssh backend reads."""

    #: ``user@pi5.local``, ``pi5.local`` or an alias of ~/.ssh/config; empty when not configured yet.
    host: str = ""
    port: int | None = None
    identity: str | None = None
    ssh_config: str | None = None
    known_hosts: str | None = None
    #: Where models and the runner are cached on the board: absolute, or under ``~/``.
    cache_dir: str = DEFAULT_CACHE_DIR
    #: The board's Python that has onnxruntime and numpy (``python3``, ``~/venv/bin/python``).
    python: str = "python3"
    #: ``big`` (every core faster than the slowest cluster), ``all``, or a hexadecimal mask (``0xf0``).
    cores: str = "big"
    connect_timeout_s: float = 10.0
    run_timeout_s: float = 600.0
    #: Seconds the shared connection outlives its last use (nasprof closes it on exit anyway).
    control_persist_s: int = 120
    #: The OpenSSH client binary (``ssh`` on PATH by default).
    ssh: str = "ssh"
    #: Seconds the board's session (one runner, onnxruntime imported once; see ``session``) waits for the
    #: next measurement; 0 measures every model with an ssh call and a process of its own (and pays ssh's,
    #: Python's and onnxruntime's start each time).
    server_idle_s: float = 60.0

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> SshSettings:
        unknown = sorted(set(config) - KNOWN_KEYS)
        if unknown:
            raise InputError(f"the ssh backend has no setting {', '.join(map(repr, unknown))}; it reads "
                             f"{', '.join(sorted(KNOWN_KEYS))}")

        def number(key: str, default: float, minimum: float) -> float:
            value = config.get(key, default)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= minimum:
                raise InputError(f"ssh device setting {key} must be a number >= {minimum}, got {value!r}")
            return float(value)

        host = str(config.get("host", "") or "").strip()
        if host and (host.startswith("-") or not _HOST_RE.match(host)):
            raise InputError(f"ssh device setting host={host!r} is not an SSH destination; write user@host, "
                             "host, or a Host alias of ~/.ssh/config")
        port = config.get("port")
        if port is not None and (isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536):
            raise InputError(f"ssh device setting port must be an integer 1-65535, got {port!r}")
        paths: dict[str, str | None] = {}
        for key in ("identity", "ssh_config", "known_hosts"):
            value = config.get(key)
            if value in (None, ""):
                paths[key] = None
                continue
            path = Path(str(value)).expanduser()
            if key != "known_hosts" and not path.is_file():
                raise InputError(f"ssh device setting {key}={value!r}: {path} does not exist")
            paths[key] = str(path.resolve())
        return cls(
            host=host,
            port=port,
            identity=paths["identity"],
            ssh_config=paths["ssh_config"],
            known_hosts=paths["known_hosts"],
            cache_dir=_cache_dir(config.get("cache_dir", DEFAULT_CACHE_DIR)),
            python=_python(config.get("python", "python3")),
            cores=str(config.get("cores", "big")),
            connect_timeout_s=number("connect_timeout_s", 10.0, 1.0),
            run_timeout_s=number("run_timeout_s", 600.0, 1.0),
            control_persist_s=int(number("control_persist_s", 120, 1)),
            ssh=str(config.get("ssh", "ssh") or "ssh"),
            server_idle_s=number("server_idle_s", 60.0, 0.0),
        )

    @property
    def destination(self) -> str:
        """How messages name the board: ``user@host`` plus the port when one is set."""
        return f"{self.host}:{self.port}" if self.port else self.host


def _cache_dir(value: Any) -> str:
    text = str(value or "").strip().rstrip("/")
    rest = text[2:] if text.startswith("~/") else text
    if not (text.startswith("/") or text.startswith("~/")) or any(c in text for c in "\n\r\0"):
        raise InputError(f"ssh device setting cache_dir={value!r} must be an absolute path or one under ~/, "
                         f"e.g. {DEFAULT_CACHE_DIR}")
    norm = posixpath.normpath(text if text.startswith("/") else "/" + rest)
    if norm in ("/", "/home", "/tmp", "/root") or ".." in rest.split("/"):
        raise InputError(f"ssh device setting cache_dir={value!r} must be a directory of its own, "
                         f"e.g. {DEFAULT_CACHE_DIR}")
    return text


def _python(value: Any) -> str:
    text = str(value or "").strip()
    if not text or any(c in text for c in "\n\r\0 \t") or text.startswith("-"):
        raise InputError(f"ssh device setting python={value!r} must be a program name or path on the board, "
                         "e.g. python3 or ~/venv/bin/python")
    return text
