"""Peak memory of a measurement: the per-block peak RSS, reset before it starts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from conftest import cli_runner, make_conv_model

from nasprof.cli import app
from nasprof.profiler.memory import PeakMemory, status_bytes


def test_peak_covers_an_allocation_inside_the_block() -> None:
    with PeakMemory() as before:
        pass
    with PeakMemory() as pm:
        block = np.ones(64 * 2**20 // 8)  # 64 MiB, touched, then freed before the block ends
        del block
    report = pm.report()
    if report["method"].startswith("VmHWM"):
        assert report["added_bytes"] >= 60 * 2**20
        # The reset makes the peak the block's own: an earlier, larger allocation does not count.
        assert before.report()["added_bytes"] < 16 * 2**20
    else:  # pragma: no cover - a kernel without clear_refs
        assert report["peak_rss_bytes"] > 0
    assert status_bytes("NoSuchField") is None


def test_measure_reports_peak_memory(tmp_path: Path) -> None:
    model = make_conv_model(tmp_path / "m.onnx", channels=64, size=64)
    r = cli_runner.invoke(app, ["measure", str(model), "--runs", "5", "--json", str(tmp_path / "m.json")])
    assert r.exit_code == 0, r.output
    assert "peak memory:" in r.stdout
    mem = json.loads((tmp_path / "m.json").read_text())["metadata"]["peak_memory"]
    assert mem["peak_rss_bytes"] > 0 and mem["method"]
