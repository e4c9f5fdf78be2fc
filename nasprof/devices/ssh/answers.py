"""What the board's answers mean: the runner's documents and exit statuses as nasprof's errors.

Each error is one line saying what to do: ``DeviceUnavailableError`` for whatever keeps the board from
measuring (the table builder gives the layer back and a re-run resumes), ``ModelError`` for a model the
board's onnxruntime refuses, ``DeviceError`` for a runner that failed on one model (a failed entry), and
``CacheMiss`` (the backend's own) for a cached model to send again.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from nasprof.devices.ssh.board_runner import RUNNER_VERSION
from nasprof.devices.ssh.settings import SshSettings
from nasprof.devices.ssh.transport import SSH_FAILED, SshResult, classify_ssh_failure
from nasprof.errors import DeviceError, DeviceUnavailableError, ModelError

__all__ = ["CacheMiss", "cannot_store", "check_answer", "connection_lost", "install_hint", "runner_failure",
           "session_failure"]


class CacheMiss(Exception):
    """The runner found its model missing or not matching its sha256: send it again."""


def check_answer(doc: Any, s: SshSettings, device: str, doing: str, ship: tuple[Path, str, str] | None
                 ) -> dict[str, Any]:
    """The runner's document when it reports success; the error it stands for otherwise. ``ship``: the
    model (local file, board directory, name) the request carried, if any."""
    if not isinstance(doc, dict) or doc.get("runner_version") != RUNNER_VERSION:
        raise DeviceError(f"the runner on {device} answered in another format while {doing}; "
                          f"clear its cache (`ssh {s.host} rm -rf {s.cache_dir}`) and run again")
    if not doc.get("ok"):
        err = doc.get("error") or {}
        kind, message = str(err.get("kind", "")), " ".join(str(err.get("message", "")).split())
        if kind == "cache":
            raise CacheMiss(message)
        if kind == "store" and ship is not None:
            raise cannot_store(s, device, ship[2], ship[1], message)
        if kind == "no_onnxruntime":
            raise DeviceUnavailableError(install_hint(s, device, message))
        if kind in ("model", "model_run"):
            raise ModelError(f"{message} (onnxruntime on {device}); check that the board's "
                             "onnxruntime supports the model's opset and operators")
        if kind == "provider":
            raise DeviceUnavailableError(f"{message} on {device}; reinstall onnxruntime there: "
                                         f"`{s.python} -m pip install --force-reinstall onnxruntime`")
        raise DeviceError(f"the runner on {device} failed while {doing}: {message}")
    return doc


def connection_lost(r: SshResult) -> bool:
    """OpenSSH's own failure (255), or the local ``ssh`` process killed by a signal."""
    return r.exit_code == SSH_FAILED or r.exit_code < 0


def session_failure(r: SshResult, s: SshSettings, device: str, doing: str) -> Exception:
    """The error for a session whose process ended: the connection's, or the runner's on the board."""
    if connection_lost(r):
        return DeviceUnavailableError(classify_ssh_failure(r.stderr, s, device, doing))
    return runner_failure(r, s, device, doing)


def runner_failure(r: SshResult, s: SshSettings, device: str, doing: str) -> Exception:
    """The error for a runner that exited with a non-zero status (its shell's: 128+N for a signal)."""
    text = r.tail()
    if r.exit_code == 127 and "taskset" in r.stderr:
        return DeviceUnavailableError(
            f"taskset is not installed on {device}; install it there (`sudo apt install "
            "util-linux`) or set cores=all"
        )
    if r.exit_code in (126, 127):
        return DeviceUnavailableError(
            f"{s.python} cannot be run on {device} ({text}); install Python 3 there "
            "(`sudo apt install python3 python3-venv`) or set python= to the board's Python that has "
            "onnxruntime"
        )
    if "SyntaxError" in r.stderr:
        return DeviceUnavailableError(
            f"{s.python} on {device} is too old for nasprof's runner ({text}); it needs Python 3.8 "
            "or newer: set python= to a newer one"
        )
    if r.exit_code in (137, -9):
        return DeviceError(f"the runner on {device} was killed while {doing} (SIGKILL: out of "
                           f"memory?): {text}")
    if r.exit_code == 142:
        return DeviceError(f"the runner on {device} ran out of time while {doing} "
                           f"(run_timeout_s={s.run_timeout_s:g}); raise run_timeout_s for slow models")
    return DeviceError(f"the runner on {device} failed with exit status {r.exit_code} while "
                       f"{doing}: {text}")


def install_hint(s: SshSettings, device: str, message: str) -> str:
    """What to run to give the board's Python onnxruntime (``message``: why it cannot import it)."""
    ssh = f"ssh {shlex.quote(s.host)}"
    return (f"onnxruntime is not importable by {s.python} on {device} ({message}); install it "
            f"there: `{ssh} {shlex.quote(s.python)} -m pip install onnxruntime numpy`, or, where the "
            f"system Python refuses pip (Raspberry Pi OS, Debian 12), into a virtualenv: `{ssh} 'python3 "
            "-m venv ~/nasprof-venv && ~/nasprof-venv/bin/pip install onnxruntime numpy'` and `nasprof "
            f"devices add {device} --backend ssh ... --set python=~/nasprof-venv/bin/python "
            "--force`")


def cannot_store(s: SshSettings, device: str, name: str, directory: str, why: str) -> DeviceUnavailableError:
    """The error for a file the board cannot store in its cache (a full disk, no permission)."""
    return DeviceUnavailableError(
        f"cannot store {name} in {directory} on {device} ({s.destination}): {why}; free space on "
        "the board (`df -h`) or set cache_dir= to a writable directory there"
    )
