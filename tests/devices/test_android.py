"""The android backend end to end: the real adb client, a fake adb server, a perf_test stand-in running the
local onnxruntime. Each test that changes a phone's state (thermal, unplugging) uses a serial of its own."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import threading
from pathlib import Path
from typing import Any

import pytest
from conftest import cli_runner, make_conv_model

from nasprof.devices.android import AndroidBackend
from nasprof.devices.android.adb import find_adb
from nasprof.devices.base import Backend, MeasureSpec, registry
from nasprof.errors import DeviceError, DeviceUnavailableError, InputError, ModelError
from nasprof.profiler.measurement import Measurement
from nasprof.testing.backend_contract import BackendContract
from nasprof.testing.fake_adb import FakeAdb, write_fake_runner

try:
    find_adb()
except DeviceUnavailableError as exc:  # pragma: no cover - adbutils is a dependency
    pytest.skip(f"no adb client binary: {exc}", allow_module_level=True)

SERIALS = ("PIXEL_1", "PIXEL_2", "SPACE_1", "FMT_1", "HOT_1", "HOT_2", "GONE_1", "CONTRACT", "BUILD_1",
           "BUILD_2", "CLI_1", "ARM_1", "DOCTOR_1")
#: 4 timed runs in one session, 2 per perf_test process: 2 samples.
SPEC = MeasureSpec(threads=1, warmup=1, runs=4, sessions=1)


@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path, _lib = write_fake_runner(tmp_path_factory.mktemp("bin"))
    path.chmod(0o755)
    return path


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return make_conv_model(tmp_path / "tiny.onnx")


def phone(fake: FakeAdb, serial: str, runner: Path | str, **config: Any) -> AndroidBackend:
    settings: dict[str, Any] = dict(serial=serial, runner=str(runner), adb_server=fake.server,
                                    runs_per_sample=2, thermal_poll_s=0.05, thermal_timeout_s=10.0)
    return AndroidBackend(device=f"phone-{serial.lower()}", **{**settings, **config})


def run_dirs(fake: FakeAdb, serial: str, remote_dir: str = "/data/local/tmp/nasprof") -> list[str]:
    d = fake.device_path(serial, remote_dir)
    return sorted(p.name for p in d.iterdir() if p.name.startswith("run-")) if d.exists() else []


def test_registered_as_android() -> None:
    assert isinstance(registry.create("android", device="pixel", serial="X"), AndroidBackend)


def test_measure(fake: FakeAdb, runner: Path, model: Path) -> None:
    backend = phone(fake, "PIXEL_1", runner)
    assert backend.available() == (True, "")
    m = backend.measure(model, MeasureSpec(runs=3, sessions=2))
    assert (m.backend, m.device) == ("android", "phone-pixel_1")
    # perf_test reports aggregates: each sample is the mean of one process (a fresh session) of <= 2 runs.
    assert m.metadata["runs_per_sample"] == [2, 1, 2, 1]
    assert m.n == 4 and m.session_index == (0, 0, 1, 1)  # two processes per requested session
    assert list(m.samples_ms) == [r["p50_ms"] for r in m.metadata["perf_test_runs"]]
    assert m.metadata["sample_statistic"] == "p50"
    assert [r["requests"] for r in m.metadata["perf_test_runs"]] == [2, 1, 2, 1]
    assert len(m.warmup_ms) == 4
    md = m.metadata
    assert (md["model"], md["abi"], md["serial"]) == ("Fake Pixel", "arm64-v8a", "PIXEL_1")
    assert (md["taskset_mask"], md["pinned_cpus"], md["threads"]) == ("f0", [4, 5, 6, 7], 1)
    assert md["cpu"]["max_freq_khz"]["7"] == 2_400_000
    assert md["runner_sha256"] == hashlib.sha256(runner.read_bytes()).hexdigest()
    assert md["runner_pushed"] == ["onnxruntime_perf_test", "libonnxruntime.so"]
    assert md["perf_test_dialect"] == "modern" and md["stopped_by"] == "runs"
    runs = fake.executions("PIXEL_1")
    assert len(runs) == 4
    for r in runs:
        argv = r["argv"]
        assert r["mask"] == "f0" and r["env"] == {"LD_LIBRARY_PATH": "/data/local/tmp/nasprof"}
        assert argv[0] == "./onnxruntime_perf_test"
        assert argv[argv.index("-x") + 1] == "1"
        assert argv[argv.index("-o") + 1] == "99"
    assert run_dirs(fake, "PIXEL_1") == []  # the model's directory is removed; the runner stays cached
    again = backend.measure(model, MeasureSpec(runs=2, sessions=1))
    assert again.metadata["runner_pushed"] == []


def test_runner_is_pushed_again_when_it_changes(fake: FakeAdb, tmp_path: Path, model: Path) -> None:
    changed, _ = write_fake_runner(tmp_path / "bin2")
    changed.write_bytes(changed.read_bytes() + b"# rebuilt\n")
    changed.chmod(0o755)
    m = phone(fake, "PIXEL_2", changed).measure(model, MeasureSpec(runs=2, sessions=1))
    assert m.metadata["runner_pushed"] == ["onnxruntime_perf_test", "libonnxruntime.so"]
    on_device = fake.device_path("PIXEL_2", "/data/local/tmp/nasprof/onnxruntime_perf_test")
    assert on_device.read_bytes() == changed.read_bytes()


def test_per_node(fake: FakeAdb, runner: Path, model: Path) -> None:
    m = phone(fake, "PIXEL_2", runner).measure(model, MeasureSpec(runs=2, sessions=1, per_node=True,
                                                                  per_node_runs=3))
    assert m.per_node
    assert {"blocks.0", "blocks.1", "head"} <= {n.block for n in m.per_node}
    assert all(n.duration_ms >= 0 and n.provider == "CPUExecutionProvider" for n in m.per_node)
    profiled = fake.executions("PIXEL_2")[-1]["argv"]
    assert "-p" in profiled and profiled[profiled.index("-r") + 1] == "3"
    assert m.metadata["per_node_runs"] == 3 and m.metadata["profiled_median_ms"] > 0
    assert run_dirs(fake, "PIXEL_2") == []


def test_per_node_blocks_without_the_optimised_graph(tmp_path: Path) -> None:
    """A phone saves no optimised graph, so kernels are attributed by name: a kernel the NCHWc transformer
    named after an unscoped tensor (``output_nchwc``: the head's pool, blocked with blocks of 8) takes the
    block of the exported node producing that tensor."""
    import onnx

    from nasprof.profiler.ort_profile import parse_profile

    model = onnx.load(str(make_conv_model(tmp_path / "tiny.onnx")))
    ran = [("/blocks.0/act/Relu_output_0_nchwc", "Conv"), ("output_nchwc", "GlobalAveragePool"),
           ("ReorderOutput", "ReorderOutput")]
    events = [{"cat": "Session", "name": "model_run", "ts": 0, "dur": 100}] + [
        {"cat": "Node", "name": f"{name}_kernel_time", "ts": 10 * i + 1, "dur": 5, "args": {"op_name": op}}
        for i, (name, op) in enumerate(ran)
    ]
    nodes, _ = parse_profile(events, original=model)
    assert [n.block for n in nodes] == ["blocks.0", "head", "(unscoped)"]
    assert parse_profile(events)[0][1].block == "(unscoped)"  # by name alone there is nothing to go on


def test_probe_a_phone_without_a_blocked_layout(fake: FakeAdb, runner: Path) -> None:
    """``nasprof devices probe`` on a phone: the probes run through the real adb client and the pulled
    profiles are read. A runner that lays models out as onnxruntime does on ARM64 has no NCHWc block, and
    then no residual-Add or HardSwish fusion into convs either."""
    import json
    import os

    from nasprof.cli import app
    from nasprof.predictors.kernel.probe import ProbeReport

    fake.set_layout("ARM_1", "plain")
    Path(os.environ["NASPROF_DEVICES"]).write_text(
        f'schema_version = 1\n[devices.arm]\nbackend = "android"\nserial = "ARM_1"\nrunner = "{runner}"\n'
        f'adb_server = "{fake.server}"\nruns_per_sample = 1\n')
    result = cli_runner.invoke(app, ["devices", "probe", "arm", "--json", "-"])
    assert result.exit_code == 0, result.output
    report = ProbeReport.from_dict(json.loads(result.stdout))
    assert report.rules.nchwc_block == 0 and not report.rules.conv_add and report.rules.unexplained == ()
    assert "HardSwish" not in report.rules.conv_acts and report.rules.device["backend"] == "android"
    assert not any(op.startswith("Reorder") for ops in report.observations.values() for op in ops)
    assert run_dirs(fake, "ARM_1") == []


@pytest.mark.parametrize("dialect", ["modern", "total", "old"])
def test_every_perf_test_dialect(fake: FakeAdb, runner: Path, model: Path, dialect: str) -> None:
    fake.set_perf_test_format("FMT_1", dialect)
    m = phone(fake, "FMT_1", runner).measure(model, MeasureSpec(runs=2, sessions=1))
    assert m.metadata["perf_test_dialect"] == dialect
    assert m.samples_ms[0] == m.metadata["perf_test_runs"][0]["p50_ms"] > 0


def test_mean_when_the_runner_prints_no_percentiles(fake: FakeAdb, runner: Path, model: Path) -> None:
    fake.set_perf_test_format("FMT_1", "no-percentiles")
    m = phone(fake, "FMT_1", runner).measure(model, MeasureSpec(runs=2, sessions=1))
    assert m.metadata["sample_statistic"] == "mean"
    assert m.samples_ms[0] == m.metadata["perf_test_runs"][0]["average_ms"] > 0


def test_symbolic_dimensions_are_fixed_with_f(fake: FakeAdb, runner: Path, tmp_path: Path) -> None:
    model = make_conv_model(tmp_path / "dyn.onnx", symbolic_batch=True)
    spec = MeasureSpec(runs=2, sessions=1, input_shapes={"input": (2, 3, 16, 16)})
    m = phone(fake, "PIXEL_2", runner).measure(model, spec)
    argv = fake.executions("PIXEL_2")[-1]["argv"]
    assert argv[argv.index("-f") + 1] == "N:2"
    assert m.metadata["input_shapes"] == {"input": [2, 3, 16, 16]}


def test_paths_with_spaces(fake: FakeAdb, runner: Path, tmp_path: Path) -> None:
    model = make_conv_model((tmp_path / "my models").mkdir() or tmp_path / "my models" / "tiny model.onnx")
    bin_dir = tmp_path / "perf test bin"
    shutil.copytree(runner.parent, bin_dir)
    remote = "/data/local/tmp/nas prof"
    m = phone(fake, "SPACE_1", bin_dir / runner.name, remote_dir=remote).measure(model, SPEC)
    assert m.n == 2
    run = fake.executions("SPACE_1")[0]
    assert run["cwd"] == remote and run["env"] == {"LD_LIBRARY_PATH": remote}
    assert run["argv"][-1].startswith(remote + "/run-") and run["argv"][-1].endswith("/model.onnx")
    assert fake.device_path("SPACE_1", remote + "/onnxruntime_perf_test").is_file()
    assert run_dirs(fake, "SPACE_1", remote) == []


def test_waits_for_the_phone_to_cool_down(fake: FakeAdb, runner: Path, model: Path) -> None:
    fake.set_thermal("HOT_1", 2, 2, 0)  # hot for two reads, then cool
    m = phone(fake, "HOT_1", runner).measure(model, MeasureSpec(runs=2, sessions=1))
    assert m.metadata["thermal_status_before_runs"] == [2]
    assert m.metadata["thermal_wait_s"] >= 0.1  # two polls of 0.05 s
    commands = fake.commands("HOT_1")
    first_run = next(i for i, c in enumerate(commands) if " taskset " in c)
    assert commands[:first_run].count("dumpsys thermalservice") == 3


def test_readiness_of_a_phone(fake: FakeAdb, runner: Path, tmp_path: Path,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    fake.set_thermal("DOCTOR_1", 2)
    checks = {c.name: c for c in phone(fake, "DOCTOR_1", runner).readiness()}
    thermal, charging = checks["phone thermal status"], checks["phone charging"]
    assert (thermal.status, thermal.value) == ("warn", "2 (moderate)")
    assert (charging.status, charging.value) == ("warn", "USB powered")
    assert checks["phone big cores"].status in ("info", "unknown")
    fake.set_thermal("DOCTOR_1", 0)
    fake.set_power("DOCTOR_1", "none")
    checks = {c.name: c for c in phone(fake, "DOCTOR_1", runner).readiness()}
    assert checks["phone thermal status"].status == checks["phone charging"].status == "ok"
    devices = tmp_path / "devices.toml"
    devices.write_text(f'[devices.doc]\nbackend = "android"\nserial = "DOCTOR_1"\nrunner = "{runner}"\n'
                       f'adb_server = "{fake.server}"\n')
    monkeypatch.setenv("NASPROF_DEVICES", str(devices))
    from nasprof.cli import app

    r = cli_runner.invoke(app, ["doctor", "--device", "doc", "--window", "0.05", "--json", "-"])
    assert r.exit_code == 0, r.output
    names = [c["name"] for c in json.loads(r.stdout)["checks"]]
    assert "steal time" in names and "phone charging" in names


def test_a_phone_that_stays_hot_is_an_error(fake: FakeAdb, runner: Path, model: Path) -> None:
    fake.set_thermal("HOT_2", 3)
    backend = phone(fake, "HOT_2", runner, thermal_timeout_s=0.2)
    with pytest.raises(DeviceUnavailableError, match=r"still throttling \(Thermal Status: 3, severe\)"):
        backend.measure(model, SPEC)
    assert fake.executions("HOT_2") == []
    assert run_dirs(fake, "HOT_2") == []


def test_phone_vanishing_mid_run(fake: FakeAdb, runner: Path, model: Path) -> None:
    fake.unplug_during_run("GONE_1", completed_runs=1)
    backend = phone(fake, "GONE_1", runner)
    gone = "GONE_1 disconnected while running onnxruntime_perf_test"
    with pytest.raises(DeviceUnavailableError, match=gone):
        backend.measure(model, SPEC)
    assert len(fake.executions("GONE_1")) == 2  # the second run was cut off
    ok, reason = backend.available()
    assert not ok and "not attached" in reason


def test_bad_model_fails_before_touching_the_phone(fake: FakeAdb, runner: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    before = len(fake.commands("PIXEL_1"))
    with pytest.raises(ModelError):
        phone(fake, "PIXEL_1", runner).measure(bad, SPEC)
    assert len(fake.commands("PIXEL_1")) == before


def test_more_threads_than_selected_cores(fake: FakeAdb, runner: Path, model: Path) -> None:
    with pytest.raises(InputError, match="--threads 3 is more than the 2 cores"):
        phone(fake, "PIXEL_1", runner, cores="0x3").measure(model, MeasureSpec(threads=3, runs=2, sessions=1))


def test_explicit_core_mask(fake: FakeAdb, runner: Path, model: Path) -> None:
    spec = MeasureSpec(threads=2, runs=2, sessions=1)
    m = phone(fake, "PIXEL_1", runner, cores="0x30").measure(model, spec)
    assert (m.metadata["taskset_mask"], m.metadata["pinned_cpus"]) == ("30", [4, 5])
    assert fake.executions("PIXEL_1")[-1]["argv"][6] == "2"  # -x 2


def test_describe(fake: FakeAdb, runner: Path) -> None:
    info = phone(fake, "PIXEL_1", runner).describe()
    assert (info["backend"], info["model"], info["abi"], info["android_sdk"]) == ("android", "Fake Pixel",
                                                                                    "arm64-v8a", "34")
    assert info["cpu"]["cpus"] == list(range(8)) and info["taskset_mask"] == "f0"
    assert info["thermal_status"] == 0
    assert info["runner_sha256"] == hashlib.sha256(runner.read_bytes()).hexdigest()
    assert "Android Debug Bridge" in info["adb_version"]


def test_big_cores_of_a_three_cluster_phone(runner: Path, tmp_path: Path) -> None:
    pixel4 = (1_785_600,) * 4 + (2_419_200,) * 3 + (2_841_600,)  # little, big, prime
    with FakeAdb(tmp_path, ["P4"], cpu_freqs_khz=pixel4) as fake:
        info = phone(fake, "P4", runner).describe()
        assert info["cpu"]["max_freq_khz"]["7"] == 2_841_600
        assert info["taskset_mask"] == "f0"  # every core faster than the little cluster
        assert phone(fake, "P4", runner, cores="0x80").describe()["taskset_mask"] == "80"


# -- bad configuration: each is one clear DeviceUnavailableError, and available() says the same -------------


def _unavailable(backend: Backend, model: Path, match: str) -> None:
    ok, reason = backend.available()
    assert not ok and match in reason
    with pytest.raises(DeviceUnavailableError, match=re.escape(match)):
        backend.measure(model, SPEC)


def test_serial_not_attached(fake: FakeAdb, runner: Path, model: Path) -> None:
    _unavailable(phone(fake, "NOT_PLUGGED", runner), model, "device serial NOT_PLUGGED is not attached")


def test_missing_runner(fake: FakeAdb, tmp_path: Path, model: Path) -> None:
    _unavailable(phone(fake, "PIXEL_1", tmp_path / "nowhere" / "perf_test"), model, "does not exist")


def test_no_runner_configured(fake: FakeAdb, model: Path) -> None:
    _unavailable(phone(fake, "PIXEL_1", ""), model, "has no runner configured")


def test_runner_not_executable_on_the_host(fake: FakeAdb, runner: Path, tmp_path: Path, model: Path) -> None:
    copy = tmp_path / "onnxruntime_perf_test"
    shutil.copy(runner, copy)
    copy.chmod(0o644)
    _unavailable(phone(fake, "PIXEL_1", copy), model, f"run: chmod +x {copy}")


def test_runner_the_phone_cannot_execute(fake: FakeAdb, tmp_path: Path, model: Path) -> None:
    _, lib = write_fake_runner(tmp_path)
    x86 = tmp_path / "onnxruntime_perf_test"
    x86.write_bytes(b"\x7fELF\x02\x01\x01 built for x86_64")  # not something this phone runs
    x86.chmod(0o755)
    with pytest.raises(DeviceUnavailableError, match="build onnxruntime_perf_test for arm64-v8a"):
        phone(fake, "PIXEL_2", x86).measure(model, SPEC)


def test_runner_without_its_library(fake: FakeAdb, runner: Path, tmp_path: Path, model: Path) -> None:
    alone = tmp_path / "onnxruntime_perf_test"
    shutil.copy(runner, alone)
    alone.chmod(0o755)
    fresh = "/data/local/tmp/nasprof-nolib"  # a remote dir where no libonnxruntime.so was pushed before
    with pytest.raises(DeviceUnavailableError, match='library "libonnxruntime.so" not found'):
        phone(fake, "PIXEL_2", alone, remote_dir=fresh).measure(model, SPEC)


def test_missing_adb_binary(runner: Path, tmp_path: Path, model: Path) -> None:
    backend = AndroidBackend("pixel", serial="X", runner=str(runner), adb=str(tmp_path / "no-adb"))
    _unavailable(backend, model, f"adb binary {tmp_path / 'no-adb'} does not exist")


def test_no_serial_configured(runner: Path, model: Path) -> None:
    _unavailable(AndroidBackend("pixel", runner=str(runner)), model, "pixel has no serial")


def test_bad_remote_dir_is_an_input_error(runner: Path) -> None:
    with pytest.raises(InputError, match="remote_dir"):
        _ = AndroidBackend("pixel", serial="X", runner=str(runner), remote_dir="/").settings


def test_options_override_runs_per_sample(fake: FakeAdb, runner: Path, model: Path) -> None:
    spec = MeasureSpec(runs=4, sessions=1, options={"runs_per_sample": 4})
    m = phone(fake, "PIXEL_1", runner).measure(model, spec)
    assert m.metadata["runs_per_sample"] == [4]


def test_fixed_performance_mode_is_set_and_reset(fake: FakeAdb, runner: Path, model: Path) -> None:
    backend = phone(fake, "PIXEL_1", runner, fixed_performance_mode=True)
    m = backend.measure(model, MeasureSpec(runs=2, sessions=1))
    assert m.metadata["fixed_performance_mode"] is True
    commands = fake.commands("PIXEL_1")
    on = commands.index("cmd power set-fixed-performance-mode-enabled true")
    run = max(i for i, c in enumerate(commands) if " taskset " in c)
    assert on < run < commands.index("cmd power set-fixed-performance-mode-enabled false")


def test_adaptive_repetition_stops_at_max_runs(fake: FakeAdb, runner: Path, model: Path) -> None:
    spec = MeasureSpec(runs=2, sessions=1, target_rel_ci=1e-9, max_runs=6)
    m = phone(fake, "PIXEL_1", runner).measure(model, spec)
    assert m.metadata["runs_per_sample"] == [2, 2, 2]
    assert m.metadata["stopped_by"] == "max_runs"
    assert m.session_index == (0, 0, 0)


def test_two_phones_at_once(fake: FakeAdb, runner: Path, model: Path) -> None:
    results: dict[str, Measurement] = {}
    errors: list[BaseException] = []

    def work(serial: str) -> None:
        try:
            results[serial] = phone(fake, serial, runner).measure(model, MeasureSpec(runs=2, sessions=1))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(s,)) for s in ("BUILD_1", "BUILD_2")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert {s: m.metadata["serial"] for s, m in results.items()} == {s: s for s in ("BUILD_1", "BUILD_2")}
    assert len(fake.executions("BUILD_1")) == len(fake.executions("BUILD_2")) == 1


# -- named devices and the CLI ------------------------------------------------------------------------------


@pytest.fixture
def devices_file(fake: FakeAdb, runner: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "devices.toml"
    path.write_text(
        "schema_version = 1\n"
        f'[devices.pixel]\nbackend = "android"\nserial = "CLI_1"\nrunner = "{runner}"\n'
        f'adb_server = "{fake.server}"\nruns_per_sample = 2\n'
        f'[devices.ghost]\nbackend = "android"\nserial = "NOT_PLUGGED"\nrunner = "{runner}"\n'
        f'adb_server = "{fake.server}"\n'
    )
    monkeypatch.setenv("NASPROF_DEVICES", str(path))
    return path


def test_named_device_from_the_devices_file(devices_file: Path) -> None:
    from nasprof.devices import get_device

    backend = get_device("pixel")
    assert isinstance(backend, AndroidBackend) and backend.device == "pixel"
    assert backend.available() == (True, "")


def test_cli_measure_on_a_fake_phone(devices_file: Path, model: Path, tmp_path: Path) -> None:
    from nasprof.cli import app

    out = tmp_path / "m.json"
    r = cli_runner.invoke(app, ["measure", str(model), "--device", "pixel", "--runs", "2", "--sessions", "1",
                                 "--json", str(out)])
    assert r.exit_code == 0, r.output
    doc = Measurement.load_json(out)
    assert (doc.device, doc.backend, doc.metadata["serial"]) == ("pixel", "android", "CLI_1")


def test_cli_error_for_a_serial_not_attached(devices_file: Path, model: Path) -> None:
    from nasprof.cli import app

    r = cli_runner.invoke(app, ["measure", str(model), "-d", "ghost", "--runs", "2", "--sessions", "1"])
    assert r.exit_code == 2
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and "NOT_PLUGGED is not attached" in lines[0]
    assert "Traceback" not in r.output


# -- the shared backend contract ----------------------------------------------------------------------------


class TestAndroidContract(BackendContract):
    """Every backend's suite, on a fake phone.

    One test is adapted: perf_test reports aggregates, so a sample is the P50 of ``runs_per_sample`` runs
    of one process (a fresh session with perf_test's single warm-up), not one run. What stays checked:
    every planned run was timed, samples are labelled by requested session, and each process has its
    warm-up.
    """

    @pytest.fixture
    def backend(self, fake: FakeAdb, runner: Path) -> Backend:
        return phone(fake, "CONTRACT", runner, runs_per_sample=5)

    def test_measure_returns_samples_in_ms(self, usable: Backend, model: Path, spec: MeasureSpec) -> None:
        import json
        import math

        m = usable.measure(model, spec)
        assert (m.backend, m.device) == (usable.name, usable.device)
        assert all(math.isfinite(v) and v > 0 for v in m.samples_ms)
        assert sum(m.metadata["runs_per_sample"]) == spec.runs * spec.sessions
        assert m.n == len(m.metadata["runs_per_sample"]) == spec.sessions  # 5 runs per process
        assert sorted(set(m.session_index)) == list(range(spec.sessions)) and len(m.warmup_ms) == m.n
        assert json.loads(json.dumps(dict(m.metadata))) == dict(m.metadata)
        assert Measurement.from_dict(json.loads(json.dumps(m.to_dict()))).samples_ms == m.samples_ms


def test_disconnect_is_a_device_error_too() -> None:
    # The builder hands an unavailable device's layer back; callers may still catch DeviceError.
    assert issubclass(DeviceUnavailableError, DeviceError)


def test_a_simulated_phone_times_its_set_run_time_and_runs_nothing(fake: FakeAdb, runner: Path,
                                                                   model: Path) -> None:
    """The scaling benchmark's phone: each timed run is the set time alone (no onnxruntime on this host)."""
    fake.set_run_time("FMT_1", 40.0, simulate=True)
    try:
        m = phone(fake, "FMT_1", runner).measure(model, MeasureSpec(runs=2, sessions=1))
        with pytest.raises(DeviceError, match="writes no profile"):
            phone(fake, "FMT_1", runner).measure(model, MeasureSpec(runs=2, sessions=1, per_node=True))
    finally:
        fake.set_run_time("FMT_1", None)
    assert 40.0 <= m.median_ms < 400.0  # a sleep: never shorter, and longer only by scheduling
    assert not (fake.control("FMT_1") / "simulate").exists()
