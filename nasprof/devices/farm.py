"""Devices on a Ray cluster: phones attached to other hosts, measured as if they were local.

A host with phones joins the cluster advertising one custom resource per device it serves
(``nasprof-device:NAME``, see ``worker_resources``; ``nasprof worker`` starts the Ray node). The driver — the
host running ``table build --ray`` — finds the devices matching a pattern (``farm_devices``) and gets one
``RayDevice`` per device (``ray_devices``): a ``Backend`` whose calls run in a Ray actor pinned to that
device's resource, so the actor lives on the host the phone is attached to and measures with that host's
own devices file (serial, runner). Everything above the backend is unchanged: the table builder's worker
threads drive the actors, and the driver alone writes the SQLite store. Model files travel as bytes,
measurements come back as ``Measurement.to_dict()``; nasprof errors raised on the worker are re-raised on
the driver as the same class, and a dead actor or node is ``DeviceUnavailableError``, so the builder gives
the entry back to the queue.

Ray is optional (``pip install 'nasprof[ray]'``); nothing here imports it until a Ray path is used.
"""

from __future__ import annotations

import contextlib
import fnmatch
import logging
import os
import socket
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from nasprof import errors
from nasprof.devices.attached import ATTACHED, attached  # noqa: F401 - attached is re-exported
from nasprof.devices.base import Backend, MeasureSpec
from nasprof.errors import DeviceUnavailableError, InputError, MissingDependencyError, NasprofError
from nasprof.profiler.measurement import Measurement

__all__ = ["RESOURCE_PREFIX", "RayDevice", "attach", "attached", "connect", "detach", "farm_devices",
           "ray_devices", "require_ray", "start_worker", "stop_worker", "worker_resources"]

#: Custom Ray resource a worker node advertises for each device it serves.
RESOURCE_PREFIX = "nasprof-device:"
_CONNECT_TIMEOUT_S = 5.0


def require_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise MissingDependencyError(
            "--ray needs Ray: pip install 'nasprof[ray]' (without --ray, devices attached to this host work "
            "as before)"
        ) from None
    return ray


def worker_resources(devices: Sequence[str]) -> dict[str, float]:
    """The custom resources a node serving ``devices`` advertises (one unit each: one job per phone)."""
    return {f"{RESOURCE_PREFIX}{d}": 1.0 for d in devices}


def connect(address: str) -> None:
    """Join the Ray cluster at ``address`` (``HOST:PORT`` or ``auto``) as a driver; a one-line
    ``DeviceUnavailableError`` when it cannot be reached."""
    ray = require_ray()
    if ray.is_initialized():
        if address in ("auto", ray.get_runtime_context().gcs_address):
            return
        ray.shutdown()  # connected to another cluster: leave it for this one
    if address != "auto":
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise InputError(f"--ray {address!r} is not HOST:PORT or auto (e.g. --ray 10.0.0.5:6379)")
        try:
            with socket.create_connection((host, int(port)), timeout=_CONNECT_TIMEOUT_S):
                pass
        except OSError as exc:
            raise DeviceUnavailableError(
                f"cannot reach the Ray cluster at {address} ({exc.strerror or exc}); start its head with "
                "`nasprof worker --head --devices NAME,...` (or `ray start --head`) and check the address"
            ) from None
    try:
        ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False)
    except Exception as exc:  # Ray raises ConnectionError, RuntimeError, ValueError... with long messages
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DeviceUnavailableError(f"cannot join the Ray cluster at {address}: {first}") from None


def farm_devices(pattern: str) -> list[str]:
    """Devices the cluster advertises that match ``pattern`` (comma-separated names or globs: ``pixel-*``)."""
    ray = require_ray()
    resources = ray.cluster_resources()
    served = sorted(k[len(RESOURCE_PREFIX):] for k in resources if k.startswith(RESOURCE_PREFIX))
    patterns = [p.strip() for p in pattern.split(",") if p.strip()]
    if not patterns:
        raise InputError("--device needs at least one device name or pattern")
    names = sorted({d for d in served for p in patterns if fnmatch.fnmatchcase(d, p)})
    if not names:
        raise InputError(
            f"no device on the Ray cluster matches {pattern!r}; it serves "
            f"{', '.join(served) if served else 'none'} (a host joins with `nasprof worker --ray ADDRESS "
            "--devices NAME,...`)"
        )
    return names


class _DeviceWorker:
    """The Ray actor: one device of the host it runs on, as that host's devices file configures it."""

    def __init__(self, device: str) -> None:
        from nasprof.devices.resolve import get_device

        self.device = device
        self.backend: Any = None
        self.error: NasprofError | None = None
        try:  # an actor whose constructor raises is only "dead" to the driver: keep the reason to tell it
            self.backend = get_device(device)
        except NasprofError as exc:
            self.error = exc

    def call(self, method: str, *args: Any) -> dict[str, Any]:
        """Run one backend call; nasprof errors come back as data, so the driver re-raises their class."""
        try:
            return {"ok": getattr(self, f"_{method}")(*args)}
        except NasprofError as exc:
            return {"error": type(exc).__name__, "message": str(exc)}

    def _identity(self) -> dict[str, Any]:
        if self.error is not None:
            raise self.error
        return {"host": socket.gethostname(), "pid": os.getpid(), "backend": self.backend.name}

    def _available(self) -> tuple[bool, str]:
        return self.backend.available()

    def _describe(self) -> dict[str, Any]:
        return self.backend.describe()

    def _check_spec(self, spec: MeasureSpec) -> None:
        self.backend.check_spec(spec)

    def _model_formats(self) -> tuple[str, ...]:
        formats = getattr(self.backend, "model_formats", None)
        return tuple(formats()) if callable(formats) else ("onnx",)

    def _measure(self, model: bytes, suffix: str, spec: MeasureSpec) -> dict[str, Any]:
        with tempfile.TemporaryDirectory(prefix="nasprof-farm-") as tmp:
            path = Path(tmp) / f"model{suffix}"
            path.write_bytes(model)
            return self.backend.measure(path, spec).to_dict()


class RayDevice(Backend):
    """A device served by a Ray worker node; ``name`` is the kind of the backend behind it."""

    name: ClassVar[str] = "ray"

    def __init__(self, device: str, actor: Any, identity: dict[str, Any]) -> None:
        super().__init__(device)
        self._actor = actor
        #: Where the device is attached: host name and worker pid (recorded with every measurement).
        self.identity = identity

    def _call(self, method: str, *args: Any) -> Any:
        ray = require_ray()
        try:
            reply = ray.get(self._actor.call.remote(method, *args))
        except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError,
                ray.exceptions.ObjectLostError) as exc:
            raise DeviceUnavailableError(
                f"the Ray worker of {self.device} on {self.identity.get('host', '?')} died "
                f"({type(exc).__name__}); another device takes what it was measuring, if there is one; "
                "restart that host's `nasprof worker` to bring it back"
            ) from None
        if "error" in reply:
            cls = getattr(errors, str(reply["error"]), None)
            if not (isinstance(cls, type) and issubclass(cls, NasprofError)):
                cls = errors.DeviceError
            raise cls(f"{self.device} (on {self.identity.get('host', '?')}): {reply['message']}")
        return reply["ok"]

    def available(self) -> tuple[bool, str]:
        try:
            ok, reason = self._call("available")
        except NasprofError as exc:
            return False, str(exc)
        return bool(ok), str(reason)

    def describe(self) -> dict[str, Any]:
        return {**self._call("describe"), "host": self.identity.get("host")}

    def check_spec(self, spec: MeasureSpec) -> None:
        self._call("check_spec", spec)

    def model_formats(self) -> tuple[str, ...]:
        return tuple(self._call("model_formats"))

    def measure(self, model: Path, spec: MeasureSpec) -> Measurement:
        try:
            data = Path(model).read_bytes()
        except OSError as exc:
            raise errors.ModelError(f"cannot read model {model}: {exc.strerror or exc}") from None
        d = self._call("measure", data, Path(model).suffix, spec)
        d["metadata"] = {**d.get("metadata", {}), "ray_host": self.identity.get("host"),
                         "ray_worker_pid": self.identity.get("pid")}
        return Measurement.from_dict(d)

    def kill(self) -> None:
        """Stop the actor, freeing the phone's resource for the cluster's next job (also how tests make a
        worker die mid-entry)."""
        ray = require_ray()
        with contextlib.suppress(Exception):
            ray.kill(self._actor, no_restart=True)


#: Devices attached with ``attach``: ``get_device`` returns these before the local devices file.


def attach(address: str, pattern: str) -> list[RayDevice]:
    """``ray_devices``, and make ``nasprof.devices.get_device(NAME)`` return them for the rest of this
    process: the way ``validate --ray`` and ``predictor fit --ray`` measure on a device of the cluster
    without knowing about Ray."""
    devices = ray_devices(address, pattern)
    ATTACHED.update({d.device: d for d in devices})
    return devices


def detach(devices: Sequence[RayDevice]) -> None:
    """Stop ``devices``' actors (their phones' resources are then free for the cluster's next job) and
    forget them."""
    for d in devices:
        d.kill()
        if ATTACHED.get(d.device) is d:
            del ATTACHED[d.device]


def ray_devices(address: str, pattern: str) -> list[RayDevice]:
    """Connect to the cluster at ``address`` and start one actor per device matching ``pattern`` on the node
    that serves it; each comes back as a ``RayDevice`` whose ``name`` is the remote backend's kind."""
    ray = require_ray()
    connect(address)
    names = farm_devices(pattern)
    remote_cls = ray.remote(num_cpus=0, max_restarts=0, max_concurrency=1)(_DeviceWorker)
    actors = {n: remote_cls.options(resources={f"{RESOURCE_PREFIX}{n}": 1.0}).remote(n) for n in names}
    out = []
    for name, actor in actors.items():
        try:
            reply = ray.get(actor.call.remote("identity"))
        except ray.exceptions.RayActorError as exc:
            raise DeviceUnavailableError(f"the Ray worker serving {name} died while starting "
                                         f"({type(exc).__name__})") from None
        if "error" in reply:  # e.g. the name is not in that host's devices file
            raise DeviceUnavailableError(f"the Ray worker serving {name}: {reply['message']}")
        identity = reply["ok"]
        kind = type(f"RayDevice_{identity['backend']}", (RayDevice,), {"name": identity["backend"]})
        out.append(kind(name, actor, identity))
    return out


def _ray_cli(*args: str, timeout_s: float = 120.0) -> str:
    """Run Ray's own command line (``ray start``/``ray stop``) from this interpreter's installation."""
    import subprocess
    import sys

    require_ray()
    try:
        proc = subprocess.run([sys.executable, "-m", "ray.scripts.scripts", *args], capture_output=True,
                              text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        raise DeviceUnavailableError(f"`ray {args[0]}` did not finish in {timeout_s:.0f} s") from None
    if proc.returncode != 0:
        lines = [ln for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()]
        why = next((ln for ln in reversed(lines) if "rror" in ln), lines[-1] if lines else "no output")
        raise DeviceUnavailableError(f"`ray {args[0]}` failed: {why.strip()}")
    return proc.stdout


def start_worker(devices: Sequence[str], *, address: str | None = None, port: int = 6379,
                 node_ip: str | None = None) -> str:
    """Make this host a Ray node serving ``devices`` (names of this host's devices file, each checked
    available first): it joins the cluster at ``address``, or starts its head when ``address`` is None.
    Returns the cluster's address."""
    import json

    from nasprof.devices.resolve import get_device

    names = [d.strip() for d in devices if d.strip()]
    if not names:
        raise InputError("--devices needs at least one device name of this host's devices file")
    if len(set(names)) != len(names):
        raise InputError("each device may appear once in --devices")
    for name in names:
        get_device(name).ensure_available()  # fail here, not when the first job reaches the phone
    args = ["start", "--resources", json.dumps(worker_resources(names)), "--disable-usage-stats"]
    if address is None and not node_ip:
        # A head for this host alone by default: loopback. Ray has no authentication, so reaching it from
        # other hosts is a choice the user makes (--node-ip on a private network, or an SSH tunnel).
        node_ip = "127.0.0.1"
    if node_ip:
        args += ["--node-ip-address", node_ip]
    temp = _node_dir()
    args += ["--temp-dir", str(temp)]
    if address is None:
        args += ["--head", "--port", str(port), "--include-dashboard", "false"]
    else:
        host, _, p = address.rpartition(":")
        if not host or not p.isdigit():
            raise InputError(f"--ray {address!r} is not HOST:PORT (the head's address)")
        args += ["--address", address]
    _ray_cli(*args)
    if address is not None:
        return address
    return f"{node_ip or socket.gethostbyname(socket.gethostname())}:{port}"


def _node_dir() -> Path:
    """Ray's temporary directory for the node nasprof starts: its processes carry it on their command line,
    which is how ``stop_worker`` finds them and only them. Short: Ray's socket paths must fit 107 bytes."""
    return Path(tempfile.gettempdir()) / f"nasprof-ray-{os.getuid()}"


def _node_pids(directory: Path) -> list[int]:
    """Processes whose command line names ``directory`` (the node's raylet, GCS, workers...)."""
    pids = []
    needle = str(directory).encode()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            if needle in (proc / "cmdline").read_bytes():
                pids.append(int(proc.name))
        except OSError:
            continue  # gone, or not ours to read
    return pids


def stop_worker(grace_s: float = 10.0) -> int:
    """Stop the Ray node ``nasprof worker`` started on this host, and only it (``ray stop`` would stop every
    Ray node of the host, other users' included). Returns how many processes were stopped."""
    import signal
    import time

    pids = _node_pids(_node_dir())
    if not pids:
        raise InputError("no Ray node started by `nasprof worker` runs on this host; nothing to stop")
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and _node_pids(_node_dir()):
        time.sleep(0.2)
    for pid in _node_pids(_node_dir()):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    return len(pids)
