"""A minimal-build runner on a fake phone: it loads only ORT-format files and only its config's operators.

`devices check` finds out what the runner loads and records it; `measure` and `table build` then convert
models to ORT format; a missing operator is a one-line error naming it. Real parts: the adb client, the
exporter, onnxruntime's converter and its ORT-format loader (the fake runner is the local onnxruntime).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nasprof.cli import app
from nasprof.devices.android.adb import find_adb
from nasprof.devices.base import MeasureSpec
from nasprof.errors import DeviceUnavailableError
from nasprof.testing.fake_adb import FakeAdb, write_fake_runner

try:
    find_adb()
except DeviceUnavailableError as exc:  # pragma: no cover - adbutils is a dependency
    pytest.skip(f"no adb client binary: {exc}", allow_module_level=True)

PHONES = {"full": "MOB_FULL", "mini": "MOB_MINI"}
runner_cli = CliRunner()


@pytest.fixture(scope="module")
def fake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeAdb]:
    with FakeAdb(tmp_path_factory.mktemp("phones"), tuple(PHONES.values())) as server:
        yield server


@pytest.fixture
def devices(fake: FakeAdb, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    runner, _ = write_fake_runner(tmp_path / "bin")
    runner.chmod(0o755)
    path = tmp_path / "devices.toml"
    path.write_text("schema_version = 1\n" + "".join(
        f'[devices.{name}]\nbackend = "android"\nserial = "{serial}"\nrunner = "{runner}"\n'
        f'adb_server = "{fake.server}"\nruns_per_sample = 2\n'
        for name, serial in PHONES.items()
    ))
    monkeypatch.setenv("NASPROF_DEVICES", str(path))
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
