"""Running onnxruntime_perf_test on a phone: its command line (a flag for each setting, symbolic dimensions
fixed, pinned with taskset) and what its failures mean (each raised as the error that says what to do:
a runner that cannot load or execute, a provider or operator the build lacks, a model it rejects).

Apart from ``backend`` (one measurement: the phone's state, pushing, sampling, metadata) because this is the
runner's own interface, the same for every process a measurement or a probe starts.
"""

from __future__ import annotations

import re
import shlex
from typing import Any

from nasprof.devices.android.adb import Adb, ShellResult, quote_command
from nasprof.devices.android.device_info import read_props
from nasprof.devices.android.runner import RunnerFiles
from nasprof.devices.android.settings import EXECUTION_PROVIDERS, AndroidSettings
from nasprof.devices.base import MeasureSpec
from nasprof.errors import DeviceError, DeviceUnavailableError, ModelError

__all__ = [
    "MISSING_OP_RE", "OPT_LEVEL", "perf_test_command", "provider_args", "raise_if_provider_missing",
    "run_perf_test",
]

#: MeasureSpec.opt_level -> perf_test's -o value.
OPT_LEVEL = {"disable": "0", "basic": "1", "extended": "2", "all": "99"}
#: onnxruntime's message for an operator a (minimal) build has no kernel for.
MISSING_OP_RE = re.compile(r"Could not find an implementation for (\w+)\((\d+)\)")
#: perf_test's message for ``-e X`` when the runner was built without X ("NNAPI is not supported in this
#: build", "WebGPU execution provider is not supported in this build"); "ONNX format model is …" is not one.
_EP_MISSING_RE = re.compile(r"\b(\w+)(?: execution provider)? is not supported in this build", re.I)


def provider_args(s: AndroidSettings) -> list[str | int]:
    """perf_test's execution provider (``-e``) and its options (``-i``), as every run passes them."""
    return ["-e", s.execution_provider, *(["-i", s.provider_options] if s.provider_options else [])]


def raise_if_provider_missing(adb: Adb, s: AndroidSettings, text: str, device: str) -> None:
    """``DeviceUnavailableError`` when perf_test's ``text`` says the runner lacks the configured provider."""
    m = _EP_MISSING_RE.search(text)
    if m is None or m.group(1).lower() == "model":
        return
    flag = EXECUTION_PROVIDERS.get(s.execution_provider) or f"--use_{s.execution_provider}"
    raise DeviceUnavailableError(
        f"the runner of {device} ({adb.serial}) was built without the {s.execution_provider} "
        f"execution provider ({m.group(0)}); rebuild onnxruntime_perf_test with ./build.sh --android "
        f"{flag} ..., or set execution_provider = \"cpu\" for {device}"
    )


def perf_test_command(
    s: AndroidSettings,
    runner: RunnerFiles,
    mask: str,
    spec: MeasureSpec,
    info: Any,
    remote_model: str,
    runs: int,
    profile_prefix: str | None = None,
) -> str:
    """The device-shell line that runs perf_test ``runs`` times on ``remote_model``, pinned to ``mask``
    (``-p profile_prefix``: one profiled run)."""
    args: list[str | int] = [
        "-m",
        "times",
        "-r",
        runs,
        "-x",
        spec.threads,
        "-o",
        OPT_LEVEL[spec.opt_level],
        *provider_args(s),
        "-I",
        "-S",
        spec.seed,
        "-s",
    ]
    # Symbolic dimensions (a dynamic batch "N") are fixed with -f, from the shapes load_model resolved.
    for inp in info.inputs:
        for declared, value in zip(inp.declared, inp.shape, strict=True):
            if isinstance(declared, str):
                args += ["-f", f"{declared}:{value}"]
    if profile_prefix is not None:
        args += ["-p", profile_prefix]
    # The assignment's value is quoted, never the NAME= part: a quoted 'A=b' is a command name in sh.
    run = f"LD_LIBRARY_PATH={shlex.quote(s.remote_dir)} " + quote_command(
        "taskset", mask, f"./{runner.runner.name}", *args, remote_model
    )
    return f"{quote_command('cd', s.remote_dir)} && {run}"


def run_perf_test(adb: Adb, s: AndroidSettings, command: str, device: str) -> ShellResult:
    """Run ``command``; a failure raises the error that says what is wrong and what to do."""
    result = adb.shell(command, timeout_s=s.run_timeout_s, doing="running onnxruntime_perf_test")
    if result.ok:
        return result
    text = result.stderr + result.stdout
    if "CANNOT LINK EXECUTABLE" in text:
        raise DeviceUnavailableError(
            f"the runner cannot load its libraries on {adb.serial} ({result.tail(2)}); put "
            "libonnxruntime.so beside the runner or list it in libs in the devices file"
        )
    if result.exit_code in (126, 127):
        abi = read_props(adb).get("ro.product.cpu.abi") or "the device's ABI"
        raise DeviceUnavailableError(
            f"the runner cannot be executed on {adb.serial} ({result.tail(2)}); build "
            f"onnxruntime_perf_test for {abi} (./build.sh --android --android_abi {abi} ...) and point "
            "--runner at it"
        )
    raise_if_provider_missing(adb, s, text, device)
    missing = MISSING_OP_RE.search(text)
    if missing:
        raise ModelError(
            f"the runner on {adb.serial} lacks operator {missing.group(1)} (opset "
            f"{missing.group(2)}): it is a minimal build without it; rebuild it with an operator "
            "config that covers the models "
            "(`nasprof space ops-config SPACE -o required_operators.config`, then onnxruntime's "
            "./build.sh --minimal_build --include_ops_by_config required_operators.config)"
        )
    if "ONNX format model is not supported" in text:
        raise ModelError(
            f"the runner on {adb.serial} is a minimal build that loads only ORT-format models; set "
            f"model_format = \"ort\" for {device} (`nasprof devices check {device}` finds and "
            "records it)"
        )
    if "ONNXRuntimeError" in text or "Load model" in text:
        raise ModelError(
            f"onnxruntime_perf_test could not run the model on {adb.serial}: {result.tail(3)}; "
            "check that the runner's onnxruntime version supports the model's opset and ops"
        )
    raise DeviceError(
        f"onnxruntime_perf_test failed on {adb.serial} with exit status {result.exit_code}: "
        f"{result.tail(3)}"
    )
