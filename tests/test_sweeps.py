"""Thread sweeps: `measure --threads 1,2` and `table build --threads 1,2` (one table per count)."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import cli_runner, make_conv_model

from nasprof.cli import app
from nasprof.tables.store import LatencyTable


def test_measure_threads_sweep(tmp_path: Path) -> None:
    model = make_conv_model(tmp_path / "m.onnx", channels=16, size=32)
    runner = cli_runner
    r = runner.invoke(app, ["measure", str(model), "--threads", "1,2", "--runs", "10", "--sessions", "2",
                            "--json", str(tmp_path / "s.json")])
    assert r.exit_code == 0, r.output
    doc = json.loads((tmp_path / "s.json").read_text())
    assert doc["kind"] == "nasprof.sweep" and doc["values"] == [1, 2]
    assert [m["metadata"]["threads"] for m in doc["measurements"]] == [1, 2]
    r = runner.invoke(app, ["measure", str(model), "--threads", "1,2", "--runs", "5"])
    assert r.exit_code == 0 and "threads sweep" in r.stdout and "speed-up over 1" in r.stdout
    for bad, message in (("0,1", "counts >= 1"), ("1,x", "comma-separated list"), ("2,2", "twice"),
                         ("1,", "comma-separated list")):
        r = runner.invoke(app, ["measure", str(model), "--threads", bad])
        assert r.exit_code == 2 and message in r.output, (bad, r.output)
    r = runner.invoke(app, ["measure", str(model), "--threads", "2", "--device", "stm32f746"])
    assert r.exit_code == 2 and "means nothing to a microcontroller" in r.output, r.output
    r = runner.invoke(app, ["measure", str(model), "--threads", "1,2", "--per-node"])
    assert r.exit_code == 2 and "one count for --per-node" in r.output


def test_table_build_threads_sweep_makes_one_table_per_count(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    argv = ["table", "build", "--space", "mobilenetv2", "--resolution", "32", "--db", str(db), "--limit", "1",
            "--threads", "1,2", "--batch", "1,2", "--runs", "3", "--sessions", "1", "--warmup", "1",
            "--time-per-entry", "0", "--target-ci", "0"]
    r = cli_runner.invoke(app, argv)
    assert r.exit_code == 0, r.output
    for n in (1, 2):
        for b in (1, 2):
            with LatencyTable.load(tmp_path / f"t.threads{n}.batch{b}.db") as t:
                assert t.metadata["measure_spec"]["threads"] == n and t.metadata["batch"] == b
                (entry,) = [e for e in t.entries() if e.ok]
    assert not db.exists()
    # A table holds one batch size: adding batch-1 entries to a batch-2 table is refused.
    argv = ["table", "build", "--space", "mobilenetv2", "--resolution", "32", "--db",
            str(tmp_path / "t.threads1.batch2.db"), "--limit", "1", "--runs", "3", "--sessions", "1"]
    r = cli_runner.invoke(app, argv)
    assert r.exit_code == 2 and "timed at batch 2, not 1" in r.output, r.output


def test_export_batch(tmp_path: Path) -> None:
    import onnxruntime as ort

    r = cli_runner.invoke(app, ["export", "mobilenet_v2", "--resolution", "64", "--batch", "4", "-o",
                                 str(tmp_path / "b.onnx")])
    assert r.exit_code == 0 and "input [4, 3, 64, 64]" in r.stdout, r.output
    s = ort.InferenceSession(str(tmp_path / "b.onnx"), providers=["CPUExecutionProvider"])
    assert s.get_inputs()[0].shape == [4, 3, 64, 64]
    r = cli_runner.invoke(app, ["export", "mobilenet_v2", "--batch", "0", "-o", str(tmp_path / "c.onnx")])
    assert r.exit_code == 2 and "--batch must be at least 1" in r.output
