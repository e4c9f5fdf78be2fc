"""`nasprof measurements` through typer's CliRunner: import/show/list/export, and every bad input is one line,
exit code 2, and leaves the store as it was."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import cli_runner

from nasprof.cli import app

A1 = "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|none~0|avg_pool_3x3~1|nor_conv_3x3~2|"
A2 = "|skip_connect~0|+|nor_conv_1x1~0|none~1|+|nor_conv_3x3~0|skip_connect~1|none~2|"


def invoke(*args: str):  # noqa: ANN201
    return cli_runner.invoke(app, ["measurements", *args])


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NASPROF_HOME", str(tmp_path / "home"))  # never the user's own store
    return tmp_path / "store.db"


@pytest.fixture
def good(tmp_path: Path) -> Path:
    f = tmp_path / "pi.csv"
    f.write_text(f"arch,latency_ms,spread_ms,accuracy,comment\n{A1},12.5,0.5,0.91,x\n{A2},10,,0.9,y\n")
    return f


def _import(src: Path, store: Path, *extra: str):  # noqa: ANN202
    return invoke("import", str(src), "--name", "pi", "--device", "rpi4", "--store", str(store), *extra)


def test_import_show_list_export(tmp_path: Path, store: Path, good: Path) -> None:
    r = _import(good, store, "--runtime", "tflite 2.14", "--threads", "4", "--measured-at", "2024-05-01")
    assert r.exit_code == 0, r.stderr
    assert "imported 2 networks" in r.stderr and "pi@v1" in r.stderr and "ignored: comment" in r.stderr
    r = invoke("show", "pi", "--store", str(store))
    assert r.exit_code == 0, r.stderr
    for word in ("pi@v1", "rpi4", "tflite 2.14", "sha256", "median", "11.25 ms", "12.50 ms", "first 2 of 2"):
        assert word in r.stdout
    r = invoke("show", "pi@v1", "--store", str(store), "--json", "-", "--rows", "1")
    doc = json.loads(r.stdout)
    assert doc["version"] == 1 and doc["summary"]["count"] == 2 and len(doc["rows"]) == 1
    assert doc["provenance"]["threads"] == "4"
    r = invoke("list", "--store", str(store))
    assert r.exit_code == 0 and "pi@v1" in r.stdout and "rpi4" in r.stdout
    out = tmp_path / "out.csv"
    r = invoke("export", "pi", "-o", str(out), "--store", str(store))
    assert r.exit_code == 0, r.stderr
    assert out.read_text().splitlines()[0] == "arch,latency_ms,spread_ms,accuracy"
    assert not (tmp_path / "home").exists()


def test_reimport_with_force_makes_v2(store: Path, good: Path) -> None:
    assert _import(good, store).exit_code == 0
    r = _import(good, store, "--force", "--json", "-")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["version"] == 2


def _bad_files(tmp_path: Path) -> dict[str, Path]:
    files = {
        "negative": f"arch,latency_ms\n{A1},1\n{A2},-2\n",
        "nan": f"arch,latency_ms\n{A1},nan\n",
        "conflict": f"arch,latency_ms\n{A1},1\n{A1},2\n",
        "columns": f"arch,time\n{A1},1\n",
        "empty": "",
        "accuracy": f"arch,latency_ms,acc\n{A1},1,nan\n",
    }
    out = {}
    for name, text in files.items():
        out[name] = tmp_path / f"{name}.csv"
        out[name].write_text(text)
    out["binary"] = tmp_path / "binary.csv"
    out["binary"].write_bytes(bytes(range(256)) * 4)
    out["parquet"] = tmp_path / "pq.csv"
    out["parquet"].write_bytes(b"PAR1" + b"\x00" * 64 + b"PAR1")
    out["missing"] = tmp_path / "missing.csv"
    return out


@pytest.mark.parametrize(
    ("file", "extra", "message"),
    [
        ("negative", [], "line 3: latency -2 ms is not positive"),
        ("nan", [], "line 2: latency is nan"),
        ("conflict", [], "line 3: duplicate architecture"),
        ("columns", [], "no latency column"),
        ("empty", [], "is empty"),
        ("accuracy", [], "line 2: accuracy is nan"),
        ("binary", [], "is a binary file, not a CSV"),
        ("parquet", [], "holds Parquet data but is named .csv; rename it to .parquet"),
        ("missing", [], "does not exist"),
        ("good", [], "already imported as pi@v1"),
        ("good", ["--measured-at", "last tuesday"], "is not an ISO 8601 date"),
        ("good", ["--threads", "0"], "--threads must be at least 1"),
        ("good", ["--input", "1x52x16"], "give --space too"),
        ("good", ["--space", "nb201", "--input", "52x16"], "malformed --input '52x16'"),
        ("good", ["--json", "/nonexistent-dir/m.json"], "directory /nonexistent-dir does not exist"),
    ],
)
def test_bad_import_is_one_line_exit_2_store_unchanged(
    tmp_path: Path, store: Path, good: Path, file: str, extra: list[str], message: str
) -> None:
    assert _import(good, store).exit_code == 0
    before = store.read_bytes()
    src = good if file == "good" else _bad_files(tmp_path)[file]
    r = _import(src, store, *extra)
    assert r.exit_code == 2, r.output
    assert r.stderr.startswith("error: ") and r.stderr.count("\n") == 1, r.stderr
    assert message in r.stderr
    assert "Traceback" not in r.output
    assert store.read_bytes() == before


def test_bad_name_and_foreign_store(tmp_path: Path, store: Path, good: Path) -> None:
    r = invoke("import", str(good), "--name", "a/b", "--device", "d", "--store", str(store))
    assert r.exit_code == 2 and "invalid measurement set name 'a/b'" in r.stderr
    foreign = tmp_path / "notes.db"
    foreign.write_text("hello\n")
    r = invoke("import", str(good), "--name", "pi", "--device", "d", "--store", str(foreign))
    assert r.exit_code == 2 and "not a nasprof measurement store" in r.stderr
    assert foreign.read_text() == "hello\n" and not store.exists()


def test_space_check_names_the_line(store: Path, tmp_path: Path) -> None:
    pytest.importorskip("nasprof.space.parse")
    f = tmp_path / "s.csv"
    f.write_text(f"arch,latency_ms\n{A1},1\n|nor_conv_3x3~0|,2\n")
    r = _import(f, store, "--space", "nb201", "--input", "1x52x16", "--outputs", "18")
    assert r.exit_code == 2 and r.stderr.count("\n") == 1
    assert "line 3:" in r.stderr and not store.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["show", "nope"], "no measurement set nope"),
        (["show", "pi@v9"], "pi has no version 9; it has v1"),
        (["show", "pi", "--rows", "-1"], "--rows must be at least 0"),
        (["export", "pi", "-o", "out.json"], "name a .csv or .parquet file"),
        (["export", "nope", "-o", "out.csv"], "no measurement set nope"),
    ],
)
def test_bad_show_and_export(tmp_path: Path, store: Path, good: Path, args: list[str], message: str,
                             monkeypatch: pytest.MonkeyPatch) -> None:
    assert _import(good, store).exit_code == 0
    before = store.read_bytes()
    monkeypatch.chdir(tmp_path)
    r = invoke(*args, "--store", str(store))
    assert r.exit_code == 2, r.output
    assert r.stderr.startswith("error: ") and r.stderr.count("\n") == 1 and message in r.stderr
    assert store.read_bytes() == before and not (tmp_path / "out.json").exists()


def test_export_never_overwrites_the_store(store: Path, good: Path) -> None:
    assert _import(good, store).exit_code == 0
    before = store.read_bytes()
    r = invoke("export", "pi", "-o", str(store), "--store", str(store))
    assert r.exit_code == 2 and store.read_bytes() == before


def test_measure_record_appends_to_a_set(conv_model: Path, store: Path, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NASPROF_HOME", str(tmp_path))
    fast = ["--warmup", "1", "--runs", "3", "--sessions", "1"]
    r = cli_runner.invoke(app, ["measure", str(conv_model), *fast, "--record", "mine"])
    assert r.exit_code == 0, r.stderr
    assert "recorded in mine@v1" in r.stderr
    r = invoke("show", "mine", "--json", "-")
    doc = json.loads(r.stdout)
    assert doc["rows"][0]["model"] == str(conv_model) and len(doc["rows"][0]["samples_ms"]) == 3
    assert doc["provenance"]["device"] == "cpu"
    r = cli_runner.invoke(app, ["measure", str(conv_model), *fast, "--record", "a/b"])
    assert r.exit_code == 2 and "invalid measurement set name" in r.stderr and "median" not in r.stdout
