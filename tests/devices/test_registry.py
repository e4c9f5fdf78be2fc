"""The backend registry, entry-point plugins, and name resolution (``get_device``, ``get_devices``)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, ClassVar

import pytest
from conftest import cli_runner

from nasprof.cli import app
from nasprof.devices import get_device, get_devices, list_devices, registry
from nasprof.devices.base import Backend, BackendRegistry, MeasureSpec
from nasprof.devices.config import DEVICES_ENV, DeviceConfig, add_device
from nasprof.devices.cpu import CpuBackend
from nasprof.devices.cuda import CudaBackend
from nasprof.devices.mcu import McuBackend
from nasprof.devices.resolve import add_named_device
from nasprof.errors import DeviceUnavailableError, InputError
from nasprof.profiler.measurement import Measurement


@pytest.fixture(autouse=True)
def dev_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test reads its own devices file, never the user's."""
    path = tmp_path / "devices.toml"
    monkeypatch.setenv(DEVICES_ENV, str(path))
    return path


class _Echo(Backend):
    """A tiny real backend for registry tests (not a stand-in for hardware: it measures nothing)."""

    name: ClassVar[str] = "echo"

    def available(self) -> tuple[bool, str]:
        return True, ""

    def measure(self, model: Path, spec: MeasureSpec) -> Measurement:
        return Measurement(device=self.device, backend=self.name, samples_ms=(1.0,))


# -- the registry object ------------------------------------------------------------------------------------
def test_register_create_and_unregister() -> None:
    reg = BackendRegistry(entry_point_group=None)
    reg.register("echo", _Echo)
    assert reg.names() == ["echo"] and "echo" in reg
    b = reg.create("echo", device="bench", colour="blue")
    assert isinstance(b, _Echo) and b.device == "bench" and b.config == {"colour": "blue"}
    reg.register("echo", _Echo)  # the same factory again is harmless
    reg.unregister("echo")
    assert reg.names() == []
    with pytest.raises(KeyError):
        reg.unregister("echo")


def test_register_as_decorator() -> None:
    reg = BackendRegistry(entry_point_group=None)

    @reg.register("deco")
    class Deco(_Echo):
        name: ClassVar[str] = "deco"

    assert isinstance(reg.create("deco"), Deco)


def test_duplicate_or_malformed_names_are_errors() -> None:
    reg = BackendRegistry(entry_point_group=None)
    reg.register("echo", _Echo)
    with pytest.raises(ValueError, match="already registered"):
        reg.register("echo", CpuBackend)
    for bad in ("", "Echo", "two words", "a:b"):
        with pytest.raises(ValueError, match="malformed"):
            reg.register(bad, _Echo)
    with pytest.raises(ValueError, match="callable"):
        reg.register("thing", 3)  # type: ignore[arg-type]


def test_unknown_backend_lists_known_ones() -> None:
    reg = BackendRegistry(entry_point_group=None)
    reg.register("echo", _Echo)
    with pytest.raises(DeviceUnavailableError, match="unknown backend 'tpu'; known backends: echo"):
        reg.create("tpu")


# -- entry-point plugins, found by importlib.metadata in a real dist-info directory ------------------------
def _install_plugin(site: Path, entry_points: str, module: str = "") -> None:
    dist = site / "nasprof_testplugin-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: nasprof-testplugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[nasprof.backends]\n" + entry_points)
    if module:
        (site / "nasprof_testplugin.py").write_text(textwrap.dedent(module))


PLUGIN = """
    from nasprof.devices.base import Backend
    from nasprof.profiler.measurement import Measurement

    class LabBoard(Backend):
        name = "labboard"
        def available(self):
            return False, "plug the lab board in"
        def measure(self, model, spec):
            self.ensure_available()
"""


def test_plugin_is_found_through_its_entry_point(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _install_plugin(tmp_path, "labboard = nasprof_testplugin:LabBoard\n", PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    reg = BackendRegistry()
    assert "labboard" in reg.names()
    board = reg.create("labboard", device="bench-1")
    assert type(board).__name__ == "LabBoard" and board.device == "bench-1"
    assert board.available() == (False, "plug the lab board in")
    assert reg.load_errors == {}


def test_broken_plugin_fails_only_when_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _install_plugin(tmp_path, "ghost = nasprof_no_such_module:Ghost\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    reg = BackendRegistry()
    assert "ghost" in reg.names()
    assert reg.load_errors["ghost"].startswith("ModuleNotFoundError")
    with pytest.raises(DeviceUnavailableError, match=r"'ghost' \(nasprof_no_such_module:Ghost\) failed"):
        reg.create("ghost")
    rows = {r.name: r for r in list_devices(reg=reg)}
    assert rows["ghost"].available is False and "failed to load" in rows["ghost"].reason


def test_builtin_wins_over_a_plugin_of_the_same_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _install_plugin(tmp_path, "echo = nasprof_no_such_module:Echo\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    reg = BackendRegistry()
    reg.register("echo", _Echo)
    assert isinstance(reg.create("echo"), _Echo)
    assert "echo" not in reg.load_errors


# -- get_device ---------------------------------------------------------------------------------------------
def test_builtin_names_resolve() -> None:
    assert isinstance(get_device("cpu"), CpuBackend)
    gpu = get_device("cuda")
    assert isinstance(gpu, CudaBackend) and gpu.device == "cuda" and gpu.device_id == 0
    gpu2 = get_device("cuda:2")
    assert isinstance(gpu2, CudaBackend) and gpu2.device == "cuda:2" and gpu2.device_id == 2
    board = get_device("stm32f746")
    assert isinstance(board, McuBackend) and board.board.sram_bytes == 320 * 1024


def test_named_devices_come_from_the_file_and_shadow_builtins() -> None:
    add_device(DeviceConfig("box", "cpu", {"threads": 2}))
    add_device(DeviceConfig("cuda", "cuda", {"device_id": 3}), force=True)
    box = get_device("box")
    assert isinstance(box, CpuBackend) and box.device == "box" and box.config == {"threads": 2}
    assert get_device("cuda").device_id == 3


def test_named_mcu_board_from_the_file() -> None:
    add_device(DeviceConfig("tiny", "mcu", {"board": "stm32f411"}))
    dev = get_device("tiny")
    assert isinstance(dev, McuBackend) and dev.device == "tiny" and dev.board.flash_bytes == 512 * 1024


def test_unknown_name_lists_known_devices_and_how_to_add(dev_file: Path) -> None:
    add_device(DeviceConfig("box", "cpu"))
    with pytest.raises(DeviceUnavailableError) as info:
        get_device("pixel")
    msg = str(info.value)
    assert msg.startswith("unknown device 'pixel'; known devices: ")
    assert "box" in msg and "cpu" in msg and "cuda:N" in msg and "stm32f746" in msg
    assert str(dev_file) in msg and "nasprof devices add NAME --backend KIND" in msg


@pytest.mark.parametrize(("name", "match"), [("", "empty device name"), ("  ", "empty device name"),
                                             ("a,b", "names several devices")])
def test_malformed_names(name: str, match: str) -> None:
    with pytest.raises(InputError, match=match):
        get_device(name)


def test_named_device_with_an_uninstalled_backend(dev_file: Path) -> None:
    dev_file.write_text('[devices.tpu0]\nbackend = "tpu"\n')
    with pytest.raises(DeviceUnavailableError, match=f"'tpu0' \\(in {dev_file}\\) uses backend 'tpu'"):
        get_device("tpu0")


def test_named_device_with_a_setting_its_backend_rejects(dev_file: Path) -> None:
    dev_file.write_text('[devices.g]\nbackend = "cuda"\ndevice_id = "first"\n')
    with pytest.raises(InputError, match="device_id must be an integer"):
        get_device("g")


def test_add_named_device_builds_the_backend_first(dev_file: Path) -> None:
    with pytest.raises(InputError, match="device_id must be an integer"):
        add_named_device("g", "cuda", {"device_id": -1})
    with pytest.raises(DeviceUnavailableError, match="unknown board 'stm99'"):
        add_named_device("b", "mcu", {"board": "stm99"})
    assert not dev_file.exists()


def test_get_devices_keeps_order_and_rejects_repeats() -> None:
    add_device(DeviceConfig("p1", "cpu"))
    add_device(DeviceConfig("p2", "cpu"))
    assert [b.device for b in get_devices("p2, p1,cpu")] == ["p2", "p1", "cpu"]
    with pytest.raises(InputError, match="names p1 more than once"):
        get_devices("p1,p2,p1")
    with pytest.raises(InputError, match="empty item"):
        get_devices("p1,,p2")
    with pytest.raises(DeviceUnavailableError, match="unknown device 'p3'"):
        get_devices("p1,p3")


def test_list_devices_reports_availability_and_why() -> None:
    add_device(DeviceConfig("box", "cpu", {"threads": 2}))
    rows = list_devices()
    assert rows[0].name == "box" and rows[0].options == {"threads": 2} and rows[0].available
    by_name = {r.name: r for r in rows}
    assert by_name["cpu"].available and by_name["cpu"].source == "built-in" and by_name["cpu"].reason == ""
    assert by_name["stm32f746"].backend == "mcu" and by_name["stm32f746"].available
    assert not by_name["mcu"].available and "needs a board" in by_name["mcu"].reason
    cuda_ok, cuda_reason = CudaBackend().available()
    assert (by_name["cuda"].available, by_name["cuda"].reason) == (cuda_ok, cuda_reason)
    assert set(by_name) >= set(registry.names())


# -- CLI: unknown device ------------------------------------------------------------------------------------
UNKNOWN = [["devices", "check", "nope"], ["measure", "model.onnx", "--device", "nope"]]


@pytest.mark.parametrize("args", UNKNOWN)
def test_cli_unknown_device_is_one_line_exit_2(args: list[str], tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from nasprof.testing.backend_contract import make_contract_model

    monkeypatch.chdir(tmp_path)
    make_contract_model(tmp_path / "model.onnx")
    r = cli_runner.invoke(app, args)
    assert r.exit_code == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: unknown device 'nope'; known devices: ")
    assert "Traceback" not in r.output


def test_cli_check_shows_what_the_device_reports() -> None:
    r = cli_runner.invoke(app, ["devices", "check", "stm32f746", "--json", "-"])
    assert r.exit_code == 0, r.output
    import json

    info: dict[str, Any] = json.loads(r.stdout)
    assert (info["backend"], info["device"], info["sram_bytes"]) == ("mcu", "stm32f746", 327680)


def test_cli_check_of_an_unavailable_device_says_why() -> None:
    ok, reason = CudaBackend().available()
    if ok:
        pytest.skip("a CUDA GPU is available here")
    r = cli_runner.invoke(app, ["devices", "check", "cuda"])
    assert r.exit_code == 2
    assert r.stderr.strip() == f"error: device 'cuda' is not available: {' '.join(reason.split())}"


def test_importing_devices_stays_cheap() -> None:
    code = ("import sys, nasprof.devices; "
            "print(sorted(m for m in ('torch', 'onnxruntime', 'onnx') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"
