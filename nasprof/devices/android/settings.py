"""Settings of an android device: the keys of its ``[devices.NAME]`` table, checked once."""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from nasprof.errors import InputError

__all__ = ["AndroidSettings", "DEFAULT_REMOTE_DIR", "EXECUTION_PROVIDERS", "SPEC_OPTIONS"]

DEFAULT_REMOTE_DIR = "/data/local/tmp/nasprof"
#: perf_test's ``-e`` values for the providers onnxruntime builds for Android, with the ./build.sh flag that
#: includes each (the hint of the error when a runner lacks one).
EXECUTION_PROVIDERS = {"cpu": "", "xnnpack": "--use_xnnpack", "nnapi": "--use_nnapi", "qnn": "--use_qnn"}
#: Settings a single measurement may override through ``MeasureSpec.options``.
SPEC_OPTIONS = frozenset(
    {"runs_per_sample", "max_processes_per_session", "execution_provider", "thermal_timeout_s",
     "thermal_poll_s", "run_timeout_s", "model_format", "ort_style", "provider_options"}
)


@dataclass(frozen=True)
class AndroidSettings:
    """The device-file keys the android backend reads (others are refused)."""

    serial: str
    runner: str | None = None
    #: Shared libraries to push with the runner; ``None`` = ``libonnxruntime.so`` beside the runner.
    libs: tuple[str, ...] | None = None
    #: ``big`` (every core faster than the slowest cluster), ``all``, or a hex mask such as ``0xf0``.
    cores: str = "big"
    adb: str | None = None
    #: adb server socket spec (``tcp:127.0.0.1:5037``); default: the client's own (ANDROID_ADB_SERVER_PORT).
    adb_server: str | None = None
    remote_dir: str = DEFAULT_REMOTE_DIR
    runs_per_sample: int = 10
    #: Cap on perf_test processes per session: more planned runs make longer processes, not more of them.
    max_processes_per_session: int = 10
    execution_provider: str = "cpu"
    #: perf_test's ``-i`` string for the provider, in its own syntax: ``"backend_type|htp"`` (qnn),
    #: ``"intra_op_num_threads|4"`` (xnnpack), ``"NNAPI_FLAG_USE_FP16 NNAPI_FLAG_CPU_DISABLED"`` (nnapi).
    #: A TOML table (``{ backend_type = "htp" }``) is written as ``key|value`` pairs, ``FLAG = true`` as
    #: ``FLAG``.
    provider_options: str = ""
    #: The operator config the (minimal) runner was built with, when known: `devices check --space`
    #: compares it with what a space needs.
    ops_config: str | None = None
    runner_version: str | None = None
    thermal_timeout_s: float = 300.0
    thermal_poll_s: float = 10.0
    run_timeout_s: float = 600.0
    #: ``cmd power set-fixed-performance-mode-enabled`` around the runs (Android 11+): steadier clocks.
    fixed_performance_mode: bool = False
    #: What the runner loads: ``onnx`` (a full build) or ``ort`` (a minimal build: models are converted to
    #: ORT format first); ``nasprof devices check`` finds it out and records it.
    model_format: str = "onnx"
    #: ORT-format optimisation style when ``model_format`` is ``ort``: fixed or runtime.
    ort_style: str = "fixed"

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> AndroidSettings:
        # A typo in the devices file (or a flag meant for another backend: --board, --device-id) fails when
        # the device is added, as the cpu and ssh backends do, instead of being ignored at every measurement.
        known = {f.name for f in fields(cls)} | {"threads"}
        unknown = sorted(set(config) - known)
        if unknown:
            raise InputError(f"the android backend has no setting {', '.join(map(repr, unknown))}; it reads "
                             f"{', '.join(sorted(known))}")

        def number(key: str, default: float, minimum: float) -> float:
            value = config.get(key, default)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < minimum:
                raise InputError(f"android device option {key} must be a number >= {minimum}, got {value!r}")
            return float(value)

        remote_dir = str(config.get("remote_dir", DEFAULT_REMOTE_DIR)).rstrip("/")
        if not remote_dir.startswith("/") or posixpath.normpath(remote_dir) in (
            "/",
            "/data",
            "/data/local/tmp",
        ):
            raise InputError(
                f"remote_dir {remote_dir!r} must be an absolute directory of its own on the device, "
                f"e.g. {DEFAULT_REMOTE_DIR}"
            )
        model_format = str(config.get("model_format", "onnx"))
        ort_style = str(config.get("ort_style", "fixed"))
        if model_format not in ("onnx", "ort"):
            raise InputError(f"android device option model_format must be onnx or ort, got {model_format!r}")
        if ort_style not in ("fixed", "runtime"):
            raise InputError(f"android device option ort_style must be fixed or runtime, got {ort_style!r}")
        provider = str(config.get("execution_provider", "cpu"))
        if provider not in EXECUTION_PROVIDERS:
            raise InputError(f"android device option execution_provider must be one of "
                             f"{', '.join(EXECUTION_PROVIDERS)}, got {provider!r}")
        libs = config.get("libs")
        if isinstance(libs, str):
            libs = [libs]
        return cls(
            serial=str(config.get("serial", "") or ""),
            runner=str(config["runner"]) if config.get("runner") else None,
            libs=tuple(str(x) for x in libs) if libs is not None else None,
            cores=str(config.get("cores", "big")),
            adb=str(config["adb"]) if config.get("adb") else None,
            adb_server=str(config["adb_server"]) if config.get("adb_server") else None,
            remote_dir=remote_dir,
            runs_per_sample=int(number("runs_per_sample", 10, 1)),
            max_processes_per_session=int(number("max_processes_per_session", 10, 1)),
            execution_provider=provider,
            provider_options=_provider_options(config.get("provider_options", "")),
            ops_config=str(config["ops_config"]) if config.get("ops_config") else None,
            runner_version=str(config["runner_version"]) if config.get("runner_version") else None,
            thermal_timeout_s=number("thermal_timeout_s", 300.0, 0.0),
            thermal_poll_s=number("thermal_poll_s", 10.0, 0.0),
            run_timeout_s=number("run_timeout_s", 600.0, 1.0),
            fixed_performance_mode=config.get("fixed_performance_mode", False) is True,
            model_format=model_format,
            ort_style=ort_style,
        )


def _provider_options(value: Any) -> str:
    """perf_test's ``-i`` argument from a string (kept as written) or a table of options."""
    if isinstance(value, Mapping):
        words = []
        for key, v in value.items():
            if v is True:
                words.append(str(key))  # an NNAPI flag
            elif v is not False:
                words.append(f"{key}|{v}")
        value = " ".join(words)
    text = str(value or "").strip()
    # perf_test splits -i on single spaces: a line break or an empty word would reach the provider garbled.
    if any(c in text for c in "\n\r\0") or "  " in text:
        raise InputError(f"android device option provider_options must be one line of perf_test's -i "
                         f"syntax ('key|value key2|value2' or NNAPI flags), got {value!r}")
    return text
