"""Thread sweeps: `measure --threads 1,2` and `table build --threads 1,2` (one table per count)."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import make_conv_model
from typer.testing import CliRunner

from nasprof.cli import app
from nasprof.tables.store import LatencyTable


def test_measure_threads_sweep(tmp_path: Path) -> None:
    model = make_conv_model(tmp_path / "m.onnx", channels=16, size=32)
    runner = CliRunner()
    r = runner.invoke(app, ["measure", str(model), "--threads", "1,2", "--runs", "10", "--sessions", "2",
                            "--json", str(tmp_path / "s.json")])
    assert r.exit_code == 0, r.output
    doc = json.loads((tmp_path / "s.json").read_text())
    assert doc["kind"] == "nasprof.sweep" and doc["values"] == [1, 2]
    assert [m["metadata"]["threads"] for m in doc["measurements"]] == [1, 2]
    r = runner.invoke(app, ["measure", str(model), "--threads", "1,2", "--runs", "5"])
    assert r.exit_code == 0 and "threads sweep" in r.stdout and "speed-up over 1" in r.stdout
    for bad, message in (("0,1", "counts >= 1"), ("1,x", "comma-separated list"), ("2,2", "twice")):
        r = runner.invoke(app, ["measure", str(model), "--threads", bad])
        assert r.exit_code == 2 and message in r.output, (bad, r.output)
    r = runner.invoke(app, ["measure", str(model), "--threads", "1,2", "--per-node"])
    assert r.exit_code == 2 and "one count for --per-node" in r.output


def test_table_build_threads_sweep_makes_one_table_per_count(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    r = CliRunner().invoke(app, ["table", "build", "--space", "mobilenetv2", "--resolution", "32", "--db",
                                 str(db), "--limit", "1", "--threads", "1,2", "--runs", "3", "--sessions", "1",
                                 "--warmup", "1", "--time-per-entry", "0", "--target-ci", "0"])
    assert r.exit_code == 0, r.output
    for n in (1, 2):
        with LatencyTable.load(tmp_path / f"t.threads{n}.db") as t:
            assert t.metadata["measure_spec"]["threads"] == n
    assert not db.exists()
