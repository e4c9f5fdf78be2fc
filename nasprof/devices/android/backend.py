"""The ``android`` backend: onnxruntime_perf_test on a phone over adb, pinned to chosen cores.

One measurement:

1. check the model on the host (``ModelError`` before touching the phone) and that the serial is attached;
2. read the CPU clusters (``cpuinfo_max_freq``) and derive the taskset mask; threads must fit in it;
3. push the runner and its libraries to ``remote_dir`` unless identical copies are there (sha256), and the
   model to a fresh ``remote_dir/run-<id>/``;
4. for every sample: wait until ``dumpsys thermalservice`` reports status 0 (bounded), then run
   ``taskset MASK ./onnxruntime_perf_test -m times -r N -x THREADS -o LEVEL -e EP -I -S SEED -s MODEL``;
5. with ``per_node``, one more run with ``-p``; the profile is pulled and parsed by ``nasprof.profiler``;
6. remove ``run-<id>/`` (the runner stays cached).

**What a sample is.** perf_test prints aggregates (mean, percentiles), never the individual runs. So each
sample in ``samples_ms`` summarises one perf_test *process* — a fresh session — over ``runs_per_sample``
timed runs (after perf_test's single warm-up, whose time lands in ``warmup_ms``): its median (perf_test's
P50, printed with ``-s``), or its mean when a runner does not print percentiles. A session of
``spec.runs`` runs is split over ``ceil(runs / runs_per_sample)`` processes, so the default (100 runs x 3
sessions, 10 runs per sample) gives 30 samples from 30 processes; at most ``max_processes_per_session``
(10) per session, so the table builder's planner, raising a tiny layer to hundreds of runs, makes longer
processes instead of paying a session creation for every ten runs. ``session_index`` names the requested
session a process belongs to, so session medians compare groups of processes (as they compare sessions of
single runs on the CPU) rather than flagging the process-to-process spread of every entry.
``metadata["samples_kind"]`` says all this, and ``metadata["perf_test_runs"]`` keeps every process's full
report (percentiles included). With ``spec.target_rel_ci`` more processes follow until the 95% CI of the
median sample is that tight, or ``spec.max_runs`` timed runs (in all) are reached.

**Errors.** A disconnect, a phone that stays hot, a runner the phone cannot execute: all raise
``DeviceUnavailableError`` — the device, not the model, is at fault, and the table builder hands the layer
back instead of storing a failed entry. A model the runner's onnxruntime rejects raises ``ModelError``.
"""

from __future__ import annotations

import contextlib
import posixpath
import shlex
import tempfile
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from nasprof.devices.android.adb import Adb, quote_command
from nasprof.devices.android.device_info import (
    CpuTopology,
    ThermalWait,
    read_props,
    read_thermal_status,
    read_topology,
    wait_until_cool,
)
from nasprof.devices.android.perf_output import PerfTestOutput, parse_perf_test_output
from nasprof.devices.android.perf_test import (
    MISSING_OP_RE,
    OPT_LEVEL,
    perf_test_command,
    provider_args,
    raise_if_provider_missing,
    run_perf_test,
)
from nasprof.devices.android.runner import RunnerFiles, push_runner
from nasprof.devices.android.sampling import sample
from nasprof.devices.android.settings import SPEC_OPTIONS, AndroidSettings
from nasprof.devices.base import Backend, MeasureSpec, registry
from nasprof.errors import DeviceError, DeviceUnavailableError, InputError, NasprofError
from nasprof.profiler.measurement import Measurement
from nasprof.profiler.ort_result import model_metadata, plan_metadata

__all__ = ["AndroidBackend"]

SAMPLES_KIND = (
    "{statistic} of runs_per_sample timed runs in one onnxruntime_perf_test process (a fresh session)"
)


class AndroidBackend(Backend):
    """onnxruntime_perf_test on an Android phone, driven by the real adb client.

    Configuration keys: see ``AndroidSettings`` (``serial`` and ``runner`` are required).
    """

    name: ClassVar[str] = "android"

    def __init__(self, device: str | None = None, **config: Any) -> None:
        super().__init__(device, **config)
        AndroidSettings.from_config(self.config)  # bad settings fail when the device is named, not later
        self._topology: CpuTopology | None = None

    @property
    def settings(self) -> AndroidSettings:
        return AndroidSettings.from_config(self.config)

    def _settings_for(self, spec: MeasureSpec) -> AndroidSettings:
        """Device settings, with the per-measurement ones ``spec.options`` may override (``--set K=V``)."""
        extra = {k: v for k, v in spec.options.items() if k in SPEC_OPTIONS}
        return AndroidSettings.from_config({**self.config, **extra})

    def _adb(self) -> Adb:
        s = self.settings
        if not s.serial:
            raise DeviceUnavailableError(
                f"{self.device} has no serial: `nasprof devices add {self.device} --backend android --serial "
                "SERIAL --runner PATH --force` (see `adb devices` for the serial)"
            )
        return Adb(s.serial, s.adb, s.adb_server)

    def readiness(self) -> list[Any]:
        from nasprof.devices.android.device_info import phone_checks

        self.ensure_available()
        return phone_checks(self._adb())

    # -- contract -----------------------------------------------------------------------------------------
    def available(self) -> tuple[bool, str]:
        try:
            s = self.settings
            adb = self._adb()  # serial configured, adb binary found
            RunnerFiles.from_config(s.runner, s.libs, s.runner_version, device=self.device)
            adb.require_attached()
        except NasprofError as exc:
            return False, str(exc)
        return True, ""

    def describe(self) -> dict[str, Any]:
        """Model, ABI, Android version, CPU clusters and mask, thermal status, runner; raises when the
        device cannot be reached."""
        s = self.settings
        adb = self._adb()
        adb.require_attached()
        props = read_props(adb)
        topology = self._read_topology(adb)
        thermal = read_thermal_status(adb)
        out: dict[str, Any] = {
            "backend": self.name,
            "device": self.device,
            "serial": s.serial,
            **self._prop_fields(props),
            "cpu": topology.to_dict(),
            "cores": s.cores,
            "taskset_mask": CpuTopology.mask(topology.select(s.cores)),
            # Settings that change the latency itself, so that tables built with different ones differ.
            "execution_provider": s.execution_provider,
            "provider_options": s.provider_options,
            "fixed_performance_mode": s.fixed_performance_mode,
            "thermal_status": thermal,
            "adb_path": str(adb.adb_path),
            "adb_version": adb.version(),
        }
        try:
            runner = RunnerFiles.from_config(s.runner, s.libs, s.runner_version, device=self.device)
            out.update(runner.to_dict())
        except DeviceUnavailableError as exc:
            out["runner_error"] = str(exc)
        return out

    def model_formats(self) -> tuple[str, ...]:
        """The model files the runner loads (``onnx``, ``ort`` or both), found by running it once on a tiny
        model of each format: a full build loads both, a minimal build only ORT-format files. A runner
        built without the configured execution provider raises ``DeviceUnavailableError``."""
        from nasprof.space import BlockSpec, Layer, export_layer
        from nasprof.space.ort_format import convert_to_ort

        with tempfile.TemporaryDirectory(prefix="nasprof-format-") as tmp:
            tiny = Layer(BlockSpec("conv", 3, 8, kernel=3), (3, 8, 8))
            onnx_file = export_layer(tiny, Path(tmp) / "p.onnx")
            files = [onnx_file, convert_to_ort(onnx_file, Path(tmp) / "p.ort")]
            tried = self.try_models(files)
        # A missing operator means the file itself was loaded: the format is accepted.
        return tuple(p.suffix[1:] for p, missing in zip(files, tried, strict=True) if missing != "unloadable")

    def try_models(self, models: list[Path], *, stop_at_failure: bool = False) -> list[str | None]:
        """Run the runner once on each model file: ``None`` when it ran, ``"Op(opset)"`` for the first
        operator a minimal build lacks, ``"unloadable"`` when the file was refused (wrong format); with
        ``stop_at_failure``, the models after the first failure are not tried."""
        s = self.settings
        runner = RunnerFiles.from_config(s.runner, s.libs, s.runner_version, device=self.device)
        adb = self._adb()
        adb.require_attached()
        push_runner(adb, runner, s.remote_dir)
        run_dir = posixpath.join(s.remote_dir, f"probe-{uuid.uuid4().hex[:12]}")
        out: list[str | None] = []
        try:
            mk = adb.shell(quote_command("mkdir", "-p", run_dir), doing="creating the probe directory")
            if not mk.ok:
                raise DeviceError(f"cannot create {run_dir} on {adb.serial}: {mk.tail()}")
            for i, path in enumerate(models):
                remote = posixpath.join(run_dir, f"m{i}{path.suffix}")
                adb.push(path, remote)
                args = ["-m", "times", "-r", "1", "-x", "1", *provider_args(s)]
                run = f"LD_LIBRARY_PATH={shlex.quote(s.remote_dir)} " + quote_command(
                    f"./{runner.runner.name}", *args, "-I", remote)
                r = adb.shell(f"{quote_command('cd', s.remote_dir)} && {run}", timeout_s=s.run_timeout_s,
                              doing=f"trying the runner on {path.name}")
                text = r.stderr + r.stdout
                raise_if_provider_missing(adb, s, text, self.device)
                missing = MISSING_OP_RE.search(text)
                out.append(None if r.ok else f"{missing.group(1)}({missing.group(2)})" if missing
                           else "unloadable")
                if stop_at_failure and out[-1] is not None:
                    break
        finally:
            self._cleanup(adb, run_dir)
        return out

    @staticmethod
    def _prop_fields(props: Mapping[str, str]) -> dict[str, str]:
        keys = {
            "model": "ro.product.model",
            "manufacturer": "ro.product.manufacturer",
            "abi": "ro.product.cpu.abi",
            "android_sdk": "ro.build.version.sdk",
            "android_release": "ro.build.version.release",
            "hardware": "ro.hardware",
        }
        return {k: props.get(p, "") for k, p in keys.items()}

    def _read_topology(self, adb: Adb) -> CpuTopology:
        if self._topology is None:
            self._topology = read_topology(adb)
        return self._topology

    # -- measuring ----------------------------------------------------------------------------------------
    def measure(self, model: Path, spec: MeasureSpec) -> Measurement:
        from nasprof.profiler import progress
        from nasprof.profiler.environment import utc_timestamp
        from nasprof.profiler.onnx_model import load_model

        s = self._settings_for(spec)
        info = load_model(model, spec.input_shapes)  # a bad model fails here, before the phone is touched
        runner = RunnerFiles.from_config(s.runner, s.libs, s.runner_version, device=self.device)
        adb = self._adb()
        adb.require_attached()
        props = read_props(adb)
        topology = self._read_topology(adb)
        cpus = topology.select(s.cores)
        if spec.threads > len(cpus):
            raise InputError(
                f"--threads {spec.threads} is more than the {len(cpus)} cores selected by cores={s.cores!r} "
                f"on {self.device} (CPUs {', '.join(map(str, cpus))}); use at most {len(cpus)} threads "
                "or cores=all"
            )
        mask = CpuTopology.mask(cpus)
        started = utc_timestamp()
        local_model = info.path
        if s.model_format == "ort":  # a minimal build loads ORT-format files only: convert (once per content)
            from nasprof.space.ort_format import cached_ort

            local_model = cached_ort(info.path, opt_level=spec.opt_level, style=s.ort_style)
        pushed = push_runner(adb, runner, s.remote_dir)
        run_dir = posixpath.join(s.remote_dir, f"run-{uuid.uuid4().hex[:12]}")
        remote_model = posixpath.join(run_dir, f"model.{s.model_format}")

        per_node = None
        profiled_ms: list[float] = []
        try:
            mk = adb.shell(quote_command("mkdir", "-p", run_dir), doing="creating the run directory")
            if not mk.ok:
                raise DeviceError(f"cannot create {run_dir} on {adb.serial}: {mk.tail()}")
            adb.push(local_model, remote_model)
            if s.fixed_performance_mode:
                self._performance_mode(adb, True)

            def run(runs: int) -> tuple[ThermalWait, PerfTestOutput]:
                wait = self._wait_cool(adb, s)
                return wait, self._perf_test(adb, s, runner, mask, spec, info, remote_model, runs)

            timed = sample(run, spec, s.runs_per_sample, s.max_processes_per_session)
            if spec.per_node:
                wait = self._wait_cool(adb, s)
                per_node, profiled_ms = self._profile(adb, s, runner, mask, spec, info, remote_model, run_dir)
                timed.waits.append(wait)
                progress.report("profiled run", 1, 1)
        finally:
            if s.fixed_performance_mode:
                with contextlib.suppress(NasprofError):
                    self._performance_mode(adb, False)
            self._cleanup(adb, run_dir)
        outputs, waits, plan = timed.outputs, timed.waits, timed.plan
        # The per-process median resists the scheduler spikes that inflate a mean of a few runs (on a busy
        # host one preempted run moved a 10-run mean by 2x while the P50 stayed put); all or none use it.
        medians = [o.median_ms or 0.0 for o in outputs]
        use_median = all(v > 0 for v in medians)
        samples = medians if use_median else [o.average_ms for o in outputs]
        statistic = "median (perf_test P50)" if use_median else "mean"

        # The model's and the plan's keys are the ones every backend records (ort_result); the rest is the
        # phone's, the runner's, and what a sample is here.
        metadata: dict[str, Any] = {
            **plan_metadata(spec, timed.rel_ci, timed.stopped_by),
            **model_metadata(info),
            "backend": self.name,
            "device": self.device,
            "serial": s.serial,
            **self._prop_fields(props),
            "cpu": topology.to_dict(),
            "cores": s.cores,
            "pinned_cpus": list(cpus),
            "taskset_mask": mask,
            "execution_provider": s.execution_provider,
            "provider_options": s.provider_options,
            "model_format": s.model_format,
            "ort_style": s.ort_style if s.model_format == "ort" else None,
            "perf_test_opt_level": OPT_LEVEL[spec.opt_level],
            "per_node_opt_level": spec.opt_level if spec.per_node else None,
            **runner.to_dict(),
            "runner_pushed": pushed,
            "fixed_performance_mode": s.fixed_performance_mode,
            "remote_dir": s.remote_dir,
            "adb_path": str(adb.adb_path),
            "samples_kind": SAMPLES_KIND.format(statistic=statistic),
            "sample_statistic": "p50" if use_median else "mean",
            "session_index_means": "the requested session a perf_test process belongs to (each process is "
            "itself a fresh onnxruntime session)",
            "runs_per_sample": plan,
            # perf_test always does exactly one untimed warm-up per process; spec.warmup cannot change that.
            "warmup_runs_per_sample": 1,
            "warmup_requested": spec.warmup,
            "perf_test_dialect": outputs[0].dialect,
            "perf_test_runs": [o.to_dict() for o in outputs],
            "thermal_status_before_runs": [w.initial_status for w in waits],
            "thermal_wait_s": round(sum(w.waited_s for w in waits), 3),
            "timestamp_utc": started,
        }
        if spec.per_node:
            metadata.update(
                {
                    "per_node_runs": spec.per_node_runs,
                    "profiled_median_ms": sorted(profiled_ms)[len(profiled_ms) // 2],
                }
            )
        return Measurement(
            device=self.device,
            backend=self.name,
            samples_ms=tuple(samples),
            warmup_ms=tuple(o.first_inference_ms for o in outputs if o.first_inference_ms is not None),
            session_index=tuple(timed.session),
            metadata=metadata,
            per_node=per_node,
        )

    def _wait_cool(self, adb: Adb, s: AndroidSettings) -> ThermalWait:
        return wait_until_cool(
            lambda: read_thermal_status(adb),
            s.thermal_timeout_s,
            s.thermal_poll_s,
            device=f"{self.device} ({adb.serial})",
        )

    def _perf_test(
        self,
        adb: Adb,
        s: AndroidSettings,
        runner: RunnerFiles,
        mask: str,
        spec: MeasureSpec,
        info: Any,
        remote_model: str,
        runs: int,
    ) -> PerfTestOutput:
        command = perf_test_command(s, runner, mask, spec, info, remote_model, runs)
        result = run_perf_test(adb, s, command, self.device)
        return parse_perf_test_output(result.stdout)

    def _profile(
        self,
        adb: Adb,
        s: AndroidSettings,
        runner: RunnerFiles,
        mask: str,
        spec: MeasureSpec,
        info: Any,
        remote_model: str,
        run_dir: str,
    ) -> tuple[Any, list[float]]:
        """One profiled perf_test process; onnxruntime names the file ``<prefix>_<timestamp>.json``."""
        from nasprof.profiler.ort_profile import load_profile, parse_profile

        prefix = posixpath.join(run_dir, "profile")
        command = perf_test_command(s, runner, mask, spec, info, remote_model, spec.per_node_runs,
                                    profile_prefix=prefix)
        run_perf_test(adb, s, command, self.device)
        listing = adb.shell(quote_command("ls", run_dir), doing="listing the profile")
        names = sorted(
            n for n in listing.stdout.split("\n") if n.startswith("profile") and n.endswith(".json")
        )
        if not names:
            raise DeviceError(
                f"onnxruntime_perf_test -p wrote no profile in {run_dir} on {adb.serial}; "
                "the runner may be built without profiling support"
            )
        with tempfile.TemporaryDirectory(prefix="nasprof-android-") as tmp:
            local = Path(tmp) / "profile.json"
            adb.pull(posixpath.join(run_dir, names[-1]), local)
            events = load_profile(local)
        original = None
        with contextlib.suppress(Exception):  # names alone still give most blocks
            import onnx

            original = onnx.load(str(info.path), load_external_data=False)
        nodes, run_ms = parse_profile(events, runs=spec.per_node_runs, original=original)
        return tuple(nodes), run_ms

    @staticmethod
    def _performance_mode(adb: Adb, enabled: bool) -> None:
        cmd = quote_command("cmd", "power", "set-fixed-performance-mode-enabled", str(enabled).lower())
        result = adb.shell(cmd, doing="setting the fixed performance mode")
        if not result.ok:
            raise DeviceError(
                f"{adb.serial} refused the fixed performance mode ({result.tail(1)}); it needs "
                "Android 11+: set fixed_performance_mode = false in the devices file"
            )

    @staticmethod
    def _cleanup(adb: Adb, run_dir: str) -> None:
        # Best effort: after a disconnect the directory cannot be removed; the original error matters more.
        with contextlib.suppress(NasprofError):
            adb.shell(quote_command("rm", "-rf", run_dir), doing="cleaning up")


registry.register("android", AndroidBackend)
