"""The runner: ``onnxruntime_perf_test`` built for Android, plus the shared libraries it links.

The runner is part of every result (nn-Meter's issue #83: the same model took 53 ms with one benchmark binary
and 78.5 ms with another), so its sha256 and version travel into ``Measurement.metadata``. On the device it is
cached in the remote directory and re-pushed only when its sha256 differs, which ``sha256sum`` (toybox,
Android 6+) tells in one round trip.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from nasprof.devices.android.adb import Adb, quote_command
from nasprof.errors import DeviceError, DeviceUnavailableError

__all__ = ["RunnerFiles", "RemoteFile", "push_runner"]

_LIB_VERSION_RE = re.compile(r"libonnxruntime\.so\.(\d+\.\d+\.\d+)$")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class RemoteFile:
    """A host file to keep on the device: its name there, its sha256 and its mode."""

    local: Path
    sha256: str
    executable: bool

    @property
    def name(self) -> str:
        return self.local.name


@dataclass(frozen=True)
class RunnerFiles:
    """The runner binary and its libraries on the host, checked and hashed."""

    runner: RemoteFile
    libraries: tuple[RemoteFile, ...]
    #: onnxruntime version of the runner: configured, or read from a ``libonnxruntime.so.X.Y.Z`` beside it.
    version: str

    @classmethod
    def from_config(
        cls,
        runner: str | Path | None,
        libraries: Sequence[str | Path] | None = None,
        version: str | None = None,
        device: str = "device",
    ) -> RunnerFiles:
        """Check the host files; ``libraries=None`` means ``libonnxruntime.so`` beside the runner, if any."""
        if not runner:
            raise DeviceUnavailableError(
                f"{device} has no runner configured: build onnxruntime_perf_test for Android (see the "
                f"README) and run `nasprof devices add {device} --backend android --serial SERIAL "
                "--runner PATH --force`"
            )
        path = Path(runner).expanduser()
        if not path.is_file():
            raise DeviceUnavailableError(
                f"runner {path} does not exist; build or download onnxruntime_perf_test "
                "for the device (see the README's Android section) and fix --runner"
            )
        if not os.access(path, os.X_OK):
            raise DeviceUnavailableError(f"runner {path} is not executable; run: chmod +x {path}")
        if libraries is None:
            sibling = path.parent / "libonnxruntime.so"
            lib_paths = [sibling] if sibling.is_file() else []
        else:
            lib_paths = [Path(p).expanduser() for p in libraries]
        for lib in lib_paths:
            if not lib.is_file():
                raise DeviceUnavailableError(
                    f"runner library {lib} does not exist; fix libs in the devices file"
                )
        if version is None:
            found = [m.group(1) for p in path.parent.iterdir() if (m := _LIB_VERSION_RE.match(p.name))]
            version = max(found, default="unknown")
        return cls(
            runner=RemoteFile(path.resolve(), _sha256(path), executable=True),
            libraries=tuple(RemoteFile(p.resolve(), _sha256(p), executable=False) for p in lib_paths),
            version=str(version),
        )

    @property
    def files(self) -> tuple[RemoteFile, ...]:
        return (self.runner, *self.libraries)

    def to_dict(self) -> dict[str, object]:
        return {
            "runner_path": str(self.runner.local),
            "runner_sha256": self.runner.sha256,
            "runner_version": self.version,
            "runner_libraries": {lib.name: lib.sha256 for lib in self.libraries},
        }


def remote_hashes(adb: Adb, paths: Sequence[str]) -> dict[str, str]:
    """sha256 of the device files that exist (missing ones are simply absent from the result)."""
    result = adb.shell(quote_command("sha256sum", *paths), doing="checking the runner on the device")
    hashes: dict[str, str] = {}
    for line in result.stdout.splitlines():
        digest, _, name = line.strip().partition("  ")
        if len(digest) == 64 and name:
            hashes[name] = digest
    return hashes


def push_runner(adb: Adb, files: RunnerFiles, remote_dir: str) -> list[str]:
    """Make ``remote_dir`` hold the runner and its libraries; return the names actually pushed."""
    mk = adb.shell(quote_command("mkdir", "-p", remote_dir), doing="creating the remote directory")
    if not mk.ok:
        raise DeviceError(f"cannot create {remote_dir} on {adb.serial}: {mk.tail()}")
    remote = {f.name: posixpath.join(remote_dir, f.name) for f in files.files}
    have = remote_hashes(adb, list(remote.values()))
    pushed = []
    for f in files.files:
        if have.get(remote[f.name]) == f.sha256:
            continue  # identical file already there
        adb.push(f.local, remote[f.name])
        pushed.append(f.name)
    executables = [remote[f.name] for f in files.files if f.executable]
    ch = adb.shell(quote_command("chmod", "755", *executables), doing="making the runner executable")
    if not ch.ok:
        raise DeviceError(f"cannot chmod the runner on {adb.serial}: {ch.tail()}")
    return pushed
