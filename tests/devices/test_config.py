"""The devices file: where it is, what it holds, how it is written, and every way it can be wrong."""

from __future__ import annotations

import datetime as dt
import math
import os
from pathlib import Path

import pytest
import tomllib
from conftest import cli_runner

from nasprof.cli import app
from nasprof.devices._toml import dumps, quote_string
from nasprof.devices.config import (
    DEVICES_ENV,
    DeviceConfig,
    add_device,
    devices_file,
    load_devices,
    normalize_cores,
    remove_device,
    validate_device_name,
    validate_options,
)
from nasprof.errors import InputError, SchemaError


@pytest.fixture
def dev_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "devices.toml"
    monkeypatch.setenv(DEVICES_ENV, str(path))
    return path


# -- which file ---------------------------------------------------------------------------------------------
def test_env_var_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "nasprof.toml").write_text("")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(DEVICES_ENV, str(tmp_path / "explicit.toml"))
    assert devices_file() == tmp_path / "explicit.toml"


def test_project_file_when_present_else_user_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DEVICES_ENV, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)
    assert devices_file() == tmp_path / "xdg" / "nasprof" / "devices.toml"
    (tmp_path / "nasprof.toml").write_text("")
    assert devices_file() == tmp_path / "nasprof.toml"


def test_home_config_without_xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DEVICES_ENV, raising=False)
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    assert devices_file() == tmp_path / "home" / ".config" / "nasprof" / "devices.toml"


def test_user_config_dir_is_created_on_first_add(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DEVICES_ENV, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)
    written = add_device(DeviceConfig("gpu", "cuda", {"device_id": 0}))
    assert written == tmp_path / "xdg" / "nasprof" / "devices.toml"
    assert load_devices()["gpu"].options == {"device_id": 0}


def test_missing_file_means_no_named_devices(dev_file: Path) -> None:
    assert load_devices() == {}


# -- writing and reading back -------------------------------------------------------------------------------
TRICKY = ['say "hi"', "back\\slash", "line\nbreak", "tab\there", "ctrl\x01\x7f", "ünïcødé ✓", "a]b#c=d", ""]


@pytest.mark.parametrize("text", TRICKY)
def test_strings_round_trip_through_tomllib(text: str) -> None:
    assert tomllib.loads(f"v = {quote_string(text)}\n")["v"] == text


def test_document_round_trips() -> None:
    doc = {
        "schema_version": 1,
        "a.b key": "dotted and spaced keys are quoted",
        "devices": {
            "pixel": {"backend": "android", "serial": "emulator-5554", "threads": 1, "ratio": 0.25,
                      "big": True, "cpus": [4, 5, 6, 7], "when": dt.datetime(2026, 11, 22, 16, 0)},
            "board": {"backend": "mcu", "limits": {"sram_kb": 320}},
        },
        "empty": {},
        "far": float("inf"),
    }
    assert tomllib.loads(dumps(doc, header="two\nlines")) == doc


def test_nan_round_trips() -> None:
    assert math.isnan(tomllib.loads(dumps({"x": float("nan")}))["x"])


def test_add_then_load_gives_the_same_device(dev_file: Path) -> None:
    options = {"serial": "HT7A1", "cores": "big", "threads": 1}
    add_device(DeviceConfig("pixel", "android", options))
    assert load_devices() == {"pixel": DeviceConfig("pixel", "android", options, source=dev_file)}
    doc = tomllib.loads(dev_file.read_text())
    assert doc["schema_version"] == 1
    assert doc["devices"]["pixel"]["backend"] == "android"


def test_other_sections_of_a_project_file_are_kept(dev_file: Path) -> None:
    dev_file.write_text('[tables]\ndefault_device = "pixel"\n\n[devices.old]\nbackend = "cpu"\n')
    add_device(DeviceConfig("new", "cpu", {"threads": 2}))
    doc = tomllib.loads(dev_file.read_text())
    assert doc["tables"] == {"default_device": "pixel"}
    assert set(doc["devices"]) == {"old", "new"}


def test_duplicate_needs_force(dev_file: Path) -> None:
    add_device(DeviceConfig("gpu", "cuda", {"device_id": 0}))
    before = dev_file.read_bytes()
    with pytest.raises(InputError, match="already exists.*--force"):
        add_device(DeviceConfig("gpu", "cuda", {"device_id": 1}))
    assert dev_file.read_bytes() == before
    add_device(DeviceConfig("gpu", "cuda", {"device_id": 1}), force=True)
    assert load_devices()["gpu"].options == {"device_id": 1}


def test_reserved_names_need_force(dev_file: Path) -> None:
    with pytest.raises(InputError, match="built-in"):
        add_device(DeviceConfig("cpu", "cpu", {"threads": 4}), reserved=frozenset({"cpu"}))
    add_device(DeviceConfig("cpu", "cpu", {"threads": 4}), reserved=frozenset({"cpu"}), force=True)
    assert load_devices()["cpu"].options == {"threads": 4}


def test_remove(dev_file: Path) -> None:
    add_device(DeviceConfig("a", "cpu"))
    add_device(DeviceConfig("b", "cpu"))
    remove_device("a")
    assert list(load_devices()) == ["b"]
    before = dev_file.read_bytes()
    with pytest.raises(InputError, match="no device named 'a'.*named devices there: b"):
        remove_device("a")
    assert dev_file.read_bytes() == before


# -- validation ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["", "1pixel", "my phone", "cuda:1", "a,b", "a.b", "x" * 65, "ü"])
def test_bad_names(name: str) -> None:
    with pytest.raises(InputError, match="not valid"):
        validate_device_name(name)


@pytest.mark.parametrize("name", ["pixel", "Pixel-4a", "lab_phone_2", "x" * 64])
def test_good_names(name: str) -> None:
    assert validate_device_name(name) == name


@pytest.mark.parametrize(("given", "canonical"), [("big", "big"), ("ALL", "all"), ("f0", "0xf0"),
                                                  ("0xF0", "0xf0"), (" 0x3 ", "0x3")])
def test_cores_are_normalised(given: str, canonical: str) -> None:
    assert normalize_cores(given) == canonical


@pytest.mark.parametrize("bad", ["0", "0x0", "little", "0x", "4-7", ""])
def test_bad_cores(bad: str) -> None:
    with pytest.raises(InputError, match="--cores"):
        normalize_cores(bad)


def test_threads_cannot_exceed_the_pinned_cores() -> None:
    assert validate_options({"cores": "0xf0", "threads": 4}) == {"cores": "0xf0", "threads": 4}
    with pytest.raises(InputError, match="more than the 2 cores in mask 0x30"):
        validate_options({"cores": "30", "threads": 3})


@pytest.mark.parametrize("threads", [0, -1, "2", True, 1.5])
def test_bad_threads(threads: object) -> None:
    with pytest.raises(InputError, match="--threads"):
        validate_options({"threads": threads})


def test_runner_must_exist_and_be_executable(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        validate_options({"runner": str(tmp_path / "onnxruntime_perf_test")})
    runner = tmp_path / "onnxruntime_perf_test"
    runner.write_bytes(b"\x7fELF")
    runner.chmod(0o644)
    with pytest.raises(InputError, match="chmod \\+x"):
        validate_options({"runner": str(runner)})
    runner.chmod(0o755)
    assert validate_options({"runner": str(runner)}) == {"runner": str(runner.resolve())}


# -- broken files -------------------------------------------------------------------------------------------
def test_corrupt_toml_names_file_and_line(dev_file: Path) -> None:
    dev_file.write_text('[devices.pixel]\nbackend = "android\nserial = 3\n')
    with pytest.raises(InputError) as info:
        load_devices()
    assert str(dev_file) in str(info.value)
    assert "line 2" in str(info.value)


def test_corrupt_file_is_never_overwritten(dev_file: Path) -> None:
    dev_file.write_text("devices = [[[\n")
    with pytest.raises(InputError, match="not valid TOML"):
        add_device(DeviceConfig("x", "cpu"))
    assert dev_file.read_text() == "devices = [[[\n"


def test_newer_schema_is_refused(dev_file: Path) -> None:
    dev_file.write_text("schema_version = 99\n")
    with pytest.raises(SchemaError, match="upgrade nasprof"):
        load_devices()


@pytest.mark.parametrize(("text", "match"), [
    ("devices = 3\n", "must be a table"),
    ("[devices]\npixel = 1\n", r"\[devices.pixel\] must be a table"),
    ("[devices.pixel]\nserial = 'X'\n", "needs backend"),
    ("[devices.\"my phone\"]\nbackend = 'cpu'\n", "not valid"),
])
def test_malformed_entries(dev_file: Path, text: str, match: str) -> None:
    dev_file.write_text(text)
    with pytest.raises(InputError, match=match):
        load_devices()


# -- CLI ----------------------------------------------------------------------------------------------------
def _cli(*args: str):  # noqa: ANN202
    return cli_runner.invoke(app, ["devices", *args])


def test_cli_add_list_remove(dev_file: Path) -> None:
    r = _cli("add", "gpu1", "--backend", "cuda", "--device-id", "1")
    assert r.exit_code == 0, r.output
    assert load_devices()["gpu1"] == DeviceConfig("gpu1", "cuda", {"device_id": 1}, source=dev_file)
    r = _cli("list", "--json", "-")
    assert r.exit_code == 0, r.output
    import json

    doc = json.loads(r.stdout)
    assert doc["devices_file"] == str(dev_file)
    row = doc["devices"][0]
    assert (row["name"], row["backend"], row["source"], row["options"]) == ("gpu1", "cuda", str(dev_file),
                                                                           {"device_id": 1})
    assert {"cpu", "cuda", "stm32f746"} <= {d["name"] for d in doc["devices"]}
    r = _cli("remove", "gpu1")
    assert r.exit_code == 0, r.output
    assert load_devices() == {}


def test_cli_duplicate_add_is_one_line_exit_2(dev_file: Path) -> None:
    assert _cli("add", "box", "--backend", "cpu", "--threads", "2").exit_code == 0
    r = _cli("add", "box", "--backend", "cpu", "--threads", "4")
    assert r.exit_code == 2
    assert r.stderr.strip().splitlines() == [
        f"error: device 'box' already exists in {dev_file}; pass --force to replace it, or `nasprof devices "
        "remove box` first"
    ]
    assert load_devices()["box"].options == {"threads": 2}
    assert _cli("add", "box", "--backend", "cpu", "--threads", "4", "--force").exit_code == 0
    assert load_devices()["box"].options == {"threads": 4}


def test_cli_corrupt_toml_is_one_line_exit_2(dev_file: Path) -> None:
    dev_file.write_text("[devices.pixel\nbackend = 'android'\n")
    for args in (["list"], ["add", "x", "--backend", "cpu"], ["check", "cpu"]):
        r = _cli(*args)
        assert r.exit_code == 2, args
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error: devices file {dev_file} is not valid TOML")
        assert "line 1" in lines[0]
    assert "Traceback" not in r.output


def test_cli_rejects_builtin_names_and_unknown_backends(dev_file: Path) -> None:
    r = _cli("add", "cpu", "--backend", "cpu")
    assert r.exit_code == 2 and "'cpu' is a built-in device" in r.stderr
    r = _cli("add", "x", "--backend", "tpu")
    assert r.exit_code == 2 and "unknown backend 'tpu'; known backends: " in r.stderr
    assert {"cpu", "cuda", "mcu"} <= set(r.stderr.split("known backends: ")[1].strip().split(", "))
    r = _cli("add", "x", "--backend", "cpu", "--cores", "zz")
    assert r.exit_code == 2 and "--cores 'zz' is not valid" in r.stderr
    r = _cli("remove", "cuda")
    assert r.exit_code == 2 and "'cuda' is a built-in device and cannot be removed" in r.stderr
    assert not dev_file.exists()


def test_cli_project_flag_writes_nasprof_toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DEVICES_ENV, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)
    r = _cli("add", "box", "--backend", "cpu", "--project")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "nasprof.toml").is_file()
    assert not (tmp_path / "xdg").exists()
    assert load_devices()["box"].source == tmp_path / "nasprof.toml"
    assert os.environ.get(DEVICES_ENV) is None
