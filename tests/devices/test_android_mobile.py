"""A minimal-build runner on a fake phone: it loads only ORT-format files and only its config's operators.

`devices check` finds out what the runner loads and records it; `measure` and `table build` then convert
models to ORT format; a missing operator is a one-line error naming it. Real parts: the adb client, the
exporter, onnxruntime's converter and its ORT-format loader (the fake runner is the local onnxruntime).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import cli_runner as runner_cli

from nasprof.cli import app
from nasprof.devices.android.adb import find_adb
from nasprof.devices.base import MeasureSpec
from nasprof.errors import DeviceUnavailableError
from nasprof.testing.fake_adb import FakeAdb

try:
    find_adb()
except DeviceUnavailableError as exc:  # pragma: no cover - adbutils is a dependency
    pytest.skip(f"no adb client binary: {exc}", allow_module_level=True)

PHONES = {"full": "MOB_FULL", "mini": "MOB_MINI"}


@pytest.fixture
def devices(devices: Path, fake: FakeAdb, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The shared devices file, with a conversion cache of the test's own and the "mini" phone's runner a
    minimal build."""
    path = devices
    monkeypatch.setenv("NASPROF_CACHE_DIR", str(tmp_path / "cache"))
    fake.set_build(PHONES["mini"], "minimal")
    return path


def cli(*argv: object) -> object:
    return runner_cli.invoke(app, [str(a) for a in argv])


def test_minimal_runner_is_detected_recorded_and_fed_ort_files(fake: FakeAdb, devices: Path,
                                                              tmp_path: Path) -> None:
    from nasprof.devices import get_device

    model = tmp_path / "m.onnx"
    assert cli("export", "mobilenet_v2", "-o", model, "--resolution", "32", "--width", "0.35").exit_code == 0
    r = cli("measure", model, "--device", "mini", "--runs", "2")
    assert r.exit_code == 2 and "loads only ORT-format models; set model_format" in r.stderr, r.output
    r = cli("devices", "check", "mini", "--json", tmp_path / "c.json")
    assert r.exit_code == 0 and "recorded model_format = 'ort'" in r.stderr, r.output
    assert 'model_format = "ort"' in devices.read_text()
    r = cli("devices", "check", "full", "--json", tmp_path / "f.json")
    assert r.exit_code == 0 and "recorded" not in r.stderr, r.output
    import json

    assert json.loads((tmp_path / "f.json").read_text())["model_formats_accepted"] == ["onnx", "ort"]
    m = get_device("mini").measure(model, MeasureSpec(warmup=1, runs=2, sessions=1))
    assert m.metadata["model_format"] == "ort" and m.metadata["ort_style"] == "fixed"
    pushed = [e for e in fake.executions(PHONES["mini"]) if "-r" in e["argv"]][-1]["argv"][-1]
    assert pushed.endswith("/model.ort")
    assert len(list((tmp_path / "cache" / "ort").glob("*.ort"))) == 1


def test_a_runner_without_an_operator_names_it(fake: FakeAdb, devices: Path, tmp_path: Path) -> None:
    fake.set_build(PHONES["mini"], "minimal", ops_config="ai.onnx;11;Conv\n")
    try:
        assert cli("devices", "check", "mini").exit_code == 0  # the format loads; an op is missing
        model = tmp_path / "m.onnx"
        cli("export", "mobilenet_v2", "-o", model, "--resolution", "32", "--width", "0.35")
        r = cli("measure", model, "--device", "mini", "--runs", "2")
        assert r.exit_code == 2 and "lacks operator" in r.stderr and "ops-config" in r.stderr, r.output
        assert "\n" not in r.stderr.strip()
    finally:
        fake.set_build(PHONES["mini"], "minimal")


@pytest.fixture(scope="module")
def space_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The operator config of mobilenetv2 at 32 px, as `nasprof space ops-config` writes it."""
    from nasprof.space.ort_format import space_ops_config

    return space_ops_config("mobilenetv2", tmp_path_factory.mktemp("cfg") / "ops.config", resolution=32).path


def test_a_minimal_runner_built_for_the_space_measures_its_table(fake: FakeAdb, devices: Path,
                                                                 space_config: Path, tmp_path: Path) -> None:
    from nasprof.space.spaces import get_space
    from nasprof.tables import LatencyTable

    fake.set_build(PHONES["mini"], "minimal", ops_config=space_config.read_text())
    devices.write_text(devices.read_text().replace("runs_per_sample = 2\n", "runs_per_sample = 2\n"
                                                   'model_format = "ort"\n'))
    db = tmp_path / "t.db"
    r = cli("table", "build", "--space", "mobilenetv2", "--resolution", 32, "--db", db, "--device", "mini",
            "--limit", 3, "--warmup", 1, "--runs", 2, "--sessions", 1, "--target-ci", 0, "--remeasure", 0)
    assert r.exit_code == 0, r.output
    entries = list(LatencyTable.load(db).entries())
    # The same keys a full runner's table holds for this selection, and none failed.
    expected = sorted(layer.key for layer in get_space("mobilenetv2").distinct_layers(32, 1.0))[:3]
    assert sorted(e.key for e in entries) == expected and all(e.error is None for e in entries)
    # Checked against the space: the config it was built with is recorded and covers it...
    mini = ("devices", "add", "mini", "--backend", "android", "--set", f"serial={PHONES['mini']}", "--set",
            f"runner={tmp_path / 'bin' / 'onnxruntime_perf_test'}", "--set", f"adb_server={fake.server}")
    r = cli(*mini, "--set", f"ops_config={space_config}", "--force")
    assert r.exit_code == 0, r.output
    r = cli("devices", "check", "mini", "--space", "mobilenetv2", "--resolution", 32, "--json", "-")
    assert r.exit_code == 0 and '"covered_by": "ops_config"' in r.stdout, r.output
    # ...and a config of another space is named as such, with what it lacks.
    other = tmp_path / "other.config"
    other.write_text("ai.onnx;11;Conv,Relu\n")
    cli(*mini, "--set", f"ops_config={other}", "--force")
    r = cli("devices", "check", "mini", "--space", "mobilenetv2", "--resolution", 32)
    error = r.stderr.strip().splitlines()[-1]
    assert r.exit_code == 2 and "another space" in error and "Gemm(13)" in error, r.output


def test_runner_tried_on_a_space_names_what_it_lacks(fake: FakeAdb, devices: Path,
                                                     space_config: Path) -> None:
    without_gemm = "".join(line.replace(",Gemm", "").replace("Gemm,", "") + "\n"
                           for line in space_config.read_text().splitlines())
    assert "Gemm" in space_config.read_text() and "Gemm" not in without_gemm
    fake.set_build(PHONES["mini"], "minimal", ops_config=without_gemm)
    r = cli("devices", "check", "mini", "--space", "mobilenetv2", "--resolution", 32)
    error = r.stderr.strip().splitlines()[-1]
    assert r.exit_code == 2 and "missing Gemm(13)" in error and "ops-config mobilenetv2" in error, r.output


def test_execution_provider_options_per_node_provider_and_a_runner_without_it(fake: FakeAdb, devices: Path,
                                                                            tmp_path: Path) -> None:
    from nasprof.devices import get_device

    model = tmp_path / "m.onnx"
    cli("export", "mobilenet_v2", "-o", model, "--resolution", "32", "--width", "0.35")
    r = cli("measure", model, "--device", "full", "--runs", 2, "--set", "execution_provider=xnnpack")
    assert r.exit_code == 2 and "built without the xnnpack execution provider" in r.stderr, r.output
    assert "--use_xnnpack" in r.stderr and "\n" not in r.stderr.strip()
    devices.write_text(devices.read_text().replace(
        f'serial = "{PHONES["full"]}"\n',
        f'serial = "{PHONES["full"]}"\nexecution_provider = "xnnpack"\n'
        'provider_options = { intra_op_num_threads = 2 }\n'))
    r = cli("devices", "check", "full")
    assert r.exit_code == 2 and "built without the xnnpack" in r.stderr, r.output
    fake.set_providers(PHONES["full"], {"xnnpack": ["Conv", "FusedConv"]})
    try:
        m = get_device("full").measure(model, MeasureSpec(warmup=1, runs=2, sessions=1, per_node=True,
                                                          per_node_runs=1))
    finally:
        fake.set_providers(PHONES["full"], None)
    assert m.metadata["execution_provider"] == "xnnpack"
    assert m.metadata["provider_options"] == "intra_op_num_threads|2"
    argv = fake.executions(PHONES["full"])[-1]["argv"]
    assert argv[argv.index("-i") + 1] == "intra_op_num_threads|2"
    by_op = {n.op_type: n.provider for n in m.per_node or ()}
    assert by_op.get("Conv", by_op.get("FusedConv")) == "XnnpackExecutionProvider"
    assert any(p == "CPUExecutionProvider" for p in by_op.values())  # the rest fell back to the CPU


def test_probe_report_keeps_each_kernels_provider() -> None:
    from nasprof.predictors.kernel.probe import ProbeReport
    from nasprof.predictors.kernel.rules import KernelRules

    rep = ProbeReport(KernelRules(), {"p": ("Conv", "Relu", "MaxPool")},
                      providers={"p": ("XnnpackExecutionProvider", "CPUExecutionProvider",
                                       "XnnpackExecutionProvider")})
    assert rep.kernels_by_provider() == {"CPUExecutionProvider": ["Relu"],
                                         "XnnpackExecutionProvider": ["Conv", "MaxPool"]}
    assert ProbeReport.from_dict(rep.to_dict()).providers == rep.providers
