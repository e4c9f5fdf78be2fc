"""`nasprof measure` through typer's CliRunner: output, JSON, and one test per bad input (exit code 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import cli_runner, make_conv_model
from profiler.measure_models import make_invalid_model, truncate

from nasprof.cli import app

FAST = ["--warmup", "1", "--runs", "5", "--sessions", "2"]


def _run(*args: str):  # noqa: ANN202
    return cli_runner.invoke(app, ["measure", *args])


def test_measure_prints_table_and_writes_json(conv_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.json"
    r = _run(str(conv_model), *FAST, "--json", str(out))
    assert r.exit_code == 0, r.output
    for word in ("median", "p99", "MAD", "CV", "session medians", "10 (2 sessions)"):
        assert word in r.stdout
    doc = json.loads(out.read_text())
    assert doc["schema_version"] == 1 and doc["device"] == "cpu"
    assert len(doc["samples_ms"]) == 10
    assert set(doc["latency_ms"]) >= {"median", "p90", "p99", "mean", "min", "mad", "cv"}
    assert doc["metadata"]["threads"] == 1
    assert "per_node" not in doc


def test_measure_per_node(conv_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.json"
    r = _run(str(conv_model), *FAST, "--per-node", "--per-node-runs", "3", "--json", str(out))
    assert r.exit_code == 0, r.output
    for word in ("per op type", "per block", "blocks.1", "coverage"):
        assert word in r.stdout
    doc = json.loads(out.read_text())
    assert {"per_node", "per_op_type", "per_block", "node_coverage"} <= set(doc)
    assert sum(b["nodes"] for b in doc["per_block"]) == len(doc["per_node"])


def test_input_shape_option(tmp_path: Path) -> None:
    model = make_conv_model(tmp_path / "sym.onnx", symbolic_batch=True)
    r = _run(str(model), *FAST, "--input-shape", "input=2x3x16x16", "--json", str(tmp_path / "m.json"))
    assert r.exit_code == 0, r.output
    doc = json.loads((tmp_path / "m.json").read_text())
    assert doc["metadata"]["input_shapes"] == {"input": [2, 3, 16, 16]}


def _bad_models(tmp_path: Path) -> dict[str, Path]:
    good = make_conv_model(tmp_path / "good.onnx")
    text = tmp_path / "notes.onnx"
    text.write_text("not a model\n")
    return {
        "missing": tmp_path / "missing.onnx",
        "not_onnx": text,
        "truncated": truncate(good, tmp_path / "cut.onnx"),
        "checker": make_invalid_model(tmp_path / "bad.onnx"),
        "symbolic": make_conv_model(tmp_path / "sym.onnx", symbolic_batch=True),
        "good": good,
    }


@pytest.mark.parametrize(
    ("model", "extra", "message"),
    [
        ("missing", [], "does not exist"),
        ("not_onnx", [], "is not an ONNX model"),
        ("truncated", [], "is truncated or corrupt"),
        ("checker", [], "fails onnx's checker"),
        ("symbolic", [], "has symbolic dimensions (Nx3x16x16); fix them with --input-shape input=1x3x16x16"),
        ("good", ["--input-shape", "image=1x3x16x16"], "names 'image', but the model's inputs are 'input'"),
        ("good", ["--input-shape", "input=1x3xsixteen"], "malformed --input-shape 'input=1x3xsixteen'"),
        ("good", ["--device", "tpu9"], "unknown device 'tpu9'"),
        ("good", ["--runs", "0"], "--runs must be at least 1"),
        ("good", ["--int-range", "10"], "malformed --int-range '10'"),
        ("good", ["--json", "/nonexistent-dir/m.json"], "directory /nonexistent-dir does not exist"),
        # Found in QA: each of these used to time the model, hang, or end in a traceback.
        ("good", ["--json", "/dev/null/m.json"], "/dev/null is not a directory"),
        ("good", ["--threads", "100000"], "--threads 100000 is far above the"),
        ("good", ["--seed", "-1"], "--seed must be an integer in 0…4,294,967,295, got -1"),
        ("good", ["--target-ci", "nan"], "--target-ci must be a finite number"),
        ("good", ["--target-ci", "0.01", "--max-runs", "0"], "--max-runs must be at least 1, got 0"),
        ("good", ["--set", "alow_spinning=false"], "does not understand option(s) alow_spinning"),
        ("good", ["--memory-model", "tflm"], "does not understand option(s) memory_model"),
        ("good", ["--set", "allow_spinning=no"], "option allow_spinning must be true or false, got 'no'"),
        ("good", ["--per-node", "--top", "-1"], "--top must be at least 1, got -1"),
        ("good", ["--set", "m.json"], "malformed --set 'm.json': write KEY=VALUE"),
    ],
)
def test_bad_input_is_one_line_exit_2(tmp_path: Path, model: str, extra: list[str], message: str) -> None:
    path = _bad_models(tmp_path)[model]
    out = tmp_path / "never.json"
    json_args = [] if "--json" in extra else ["--json", str(out)]
    r = _run(str(path), *FAST, *extra, *json_args)
    assert r.exit_code == 2, r.output
    assert r.stderr.startswith("error: ") and r.stderr.count("\n") == 1  # exactly one line
    assert message in r.stderr
    assert "Traceback" not in r.output
    assert not out.exists()


def test_backend_option_and_int_range_reach_the_backend(conv_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.json"
    r = _run(str(conv_model), *FAST, "--set", "allow_spinning=false", "--int-range", "2:5",
             "--json", str(out))
    assert r.exit_code == 0, r.output
    md = json.loads(out.read_text())["metadata"]
    assert md["allow_spinning"] is False and md["int_range"] == [2, 5]


def test_json_to_a_directory_is_refused_before_timing(conv_model: Path, tmp_path: Path) -> None:
    # Used to time the model, then fail in os.replace with a traceback.
    r = _run(str(conv_model), *FAST, "--json", str(tmp_path))
    assert r.exit_code == 2, r.output
    assert r.stderr == f"error: cannot write --json {tmp_path}: it is a directory; give a file name\n"
    assert "median" not in r.stdout  # refused before any timing


def test_named_device_threads_are_the_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`devices add box --backend cpu --threads 2` means 2 threads unless --threads says otherwise."""
    monkeypatch.setenv("NASPROF_DEVICES", str(tmp_path / "devices.toml"))
    added = cli_runner.invoke(app, ["devices", "add", "box", "--backend", "cpu", "--threads", "2"])
    assert added.exit_code == 0, added.output
    model = make_conv_model(tmp_path / "m.onnx")
    common = ["--device", "box", "--runs", "3", "--sessions", "1", "--warmup", "1"]
    assert _run(str(model), *common, "--json", str(tmp_path / "a.json")).exit_code == 0
    assert _run(str(model), *common, "--threads", "1", "--json", str(tmp_path / "b.json")).exit_code == 0
    assert json.loads((tmp_path / "a.json").read_text())["metadata"]["threads"] == 2
    assert json.loads((tmp_path / "b.json").read_text())["metadata"]["threads"] == 1


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["measure", "m.onnx", "--runs", "abc"], "Invalid value for '--runs'"),
        (["measure"], "Missing argument"),
        (["no-such-command"], "No such command"),
    ],
)
def test_usage_errors_are_one_line_with_exit_2(args: list[str], needle: str) -> None:
    """The installed entry point (not typer's test runner) turns click's usage errors into one line."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "nasprof.cli", *args], capture_output=True, text=True)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0]
    assert "--help" in lines[0] and "Traceback" not in proc.stderr
