"""The bad-input sweep's cases, one test each (commands added since the first pass): tracebacks, silent
acceptance and misleading messages found by hand, answered now by one line naming the cause and exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import cli_runner, make_conv_model

from nasprof.cli import app


def refused(args: list[str], message: str) -> None:
    r = cli_runner.invoke(app, args)
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert lines and lines[-1].startswith("error:"), r.stderr
    assert message in lines[-1], lines[-1]


def test_check_mobile_on_an_ort_file(tmp_path: Path) -> None:
    ort = tmp_path / "m.ort"
    ort.write_bytes(b"\x00\x00\x00\x00ORTMrest-of-flatbuffer")
    refused(["check-mobile", str(ort)], "is in the ORT format")


@pytest.mark.parametrize(("content", "message"), [
    (bytes(range(256)) * 4, "is a binary file"),
    (b"PAR1" + b"\x00" * 64, "holds Parquet data, not CSV"),
    ("key,median_ms\n\xe9\xff".encode("latin-1"), "is not UTF-8 text"),
])
def test_table_import_of_what_is_not_csv_text(tmp_path: Path, content: bytes, message: str) -> None:
    src = tmp_path / "t.csv"
    src.write_bytes(content)
    refused(["table", "import", str(src), "-o", str(tmp_path / "t.db")], message)
    assert not (tmp_path / "t.db").exists()


def _exported(tmp_path: Path, meta: dict, rows: list[dict]) -> Path:
    src = tmp_path / "t.csv"
    cols = ["key", "median_ms", "samples_ms", "error"]
    src.write_text(",".join(cols) + "\n" + "".join(",".join(str(r.get(c, "")) for c in cols) + "\n"
                                                     for r in rows))
    (tmp_path / "t.csv.meta.json").write_text(json.dumps({"kind": "nasprof.latency_table", **meta}))
    return src


GOOD_KEY = "conv-input:32x32x3-output:16x16x8-kernel:3-stride:2-act:relu"


@pytest.mark.parametrize(("meta", "rows", "message"), [
    ({"resolution": -5}, [{"key": GOOD_KEY, "median_ms": 1.0, "samples_ms": "[1.0]"}], "resolution -5"),
    ({"space": "nas"}, [{"key": GOOD_KEY, "median_ms": 1.0, "samples_ms": "[1.0]"}], "space 'nas'"),
    ({}, [{"key": "[red]conv-input:1x1x1", "median_ms": 1.0, "samples_ms": "[1.0]"}], "is not a table key"),
    ({}, [{"key": "not a key", "median_ms": 1.0, "samples_ms": "[1.0]"}], "is not a table key"),
    ({}, [{"key": GOOD_KEY, "median_ms": 1.0}], "without samples_ms"),
])
def test_table_import_refuses_bad_metadata_and_rows(tmp_path: Path, meta: dict, rows: list[dict],
                                                    message: str) -> None:
    refused(["table", "import", str(_exported(tmp_path, meta, rows)), "-o", str(tmp_path / "t.db")], message)
    assert not (tmp_path / "t.db").exists()


# Writing the hostile file computes its statistics, which overflow; reading it back must refuse it.
@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_compare_of_absurd_samples(tmp_path: Path) -> None:
    from nasprof.profiler.measurement import Measurement

    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(Measurement("cpu", "cpu", (1e308, 1e308, 1e308)).to_dict()))
    b.write_text(json.dumps(Measurement("cpu", "cpu", (1.0, 1.1, 1.2)).to_dict()))
    refused(["compare", str(a), str(b)], "is not a latency")


def test_ops_config_respects_the_samples_ceiling(tmp_path: Path) -> None:
    refused(["space", "ops-config", "mobilenetv2", "--samples", "100000000", "-o", str(tmp_path / "o.cfg")],
            "above the ceiling")


def test_empty_items_in_a_list_of_widths() -> None:
    refused(["space", "quality", "mobilenetv2", "--widths", "0.5,,", "--board", "stm32f746"], "empty item")


def test_a_predictor_with_a_negative_resolution(tmp_path: Path) -> None:
    from nasprof.predictors import LutPredictor

    lut = LutPredictor({GOOD_KEY: 1.0}, device="cpu", space="mobilenetv2", resolution=32)
    path = lut.save(tmp_path / "p.json")
    doc = json.loads(path.read_text())
    doc["body"]["resolution"] = -7
    path.write_text(json.dumps(doc))
    refused(["predictor", "show", str(path)], "resolution -7")


def test_predict_at_another_resolution_says_so(tmp_path: Path) -> None:
    from nasprof.predictors import LutPredictor
    from nasprof.space import get_space

    lut = LutPredictor({GOOD_KEY: 1.0}, device="cpu", space="mobilenetv2", resolution=32)
    path = lut.save(tmp_path / "p.json")
    arch = get_space("mobilenetv2").sample(1, seed=0, resolution=160)[0].to_string()
    refused(["predict", arch, "--predictor", str(path)], "is for 32 px, the architecture is 160 px")


@pytest.mark.parametrize("args", [
    ["export", "mobilenet_v2", "-o", "/proc/version.onnx"],
    ["count", "mobilenet_v2", "--json", "/proc/nasprof-test.json"],
])
def test_writing_under_proc_says_what_is_true(args: list[str]) -> None:
    refused(args, "does not accept new files")


def test_table_build_on_proc_version() -> None:
    refused(["table", "build", "--space", "mobilenetv2", "--resolution", "32", "--db", "/proc/version"],
            "not an SQLite database")


def test_a_directory_given_as_a_model(tmp_path: Path) -> None:
    refused(["measure", str(tmp_path)], "is a directory")


@pytest.mark.parametrize("args", [
    ["export", "mobilenet_v2", "-o", "x.onnx", "--format", "xyz"],
    ["table", "export", "t.db", "-o", "t.csv", "--format", "xyz"],
])
def test_unknown_format(args: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "t.db").write_bytes(b"")
    refused(args, "unknown --format 'xyz'")


def test_bad_value_in_the_devices_file_names_the_file(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    devices = tmp_path / "devices.toml"
    devices.write_text('schema_version = 1\n[devices.b]\nbackend = "cpu"\nthreads = -3\n')
    monkeypatch.setenv("NASPROF_DEVICES", str(devices))
    model = make_conv_model(tmp_path / "m.onnx")
    refused(["measure", str(model), "--device", "b"], f"devices file {devices}: [devices.b] threads")


def test_last_channel_names_its_flag() -> None:
    refused(["export", "mobilenet_v2", "-o", "x.onnx", "--last-channel", "-5"], "--last-channel must be")


def test_seed_out_of_range_on_int8_export(tmp_path: Path) -> None:
    model = make_conv_model(tmp_path / "m.onnx")
    refused(["export", str(model), "--int8", "-o", str(tmp_path / "q.onnx"), "--seed", str(2**40)],
            "--seed must be an integer in 0…4,294,967,295")
