"""`nasprof doctor`: host readiness read from /proc and /sys, and steal time recorded by `measure`."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import cli_runner, make_conv_model

from nasprof.cli import app
from nasprof.profiler.doctor import CpuTimes, cpu_times, run_checks, steal_share

STAT = "cpu  100 5 50 1000 20 3 2 10 0 0\ncpu0 50 2 25 500 10 1 1 5 0 0\nintr 12345\n"


def test_proc_stat_parsing_and_steal_share() -> None:
    t = cpu_times(STAT)
    assert t == CpuTimes(busy=100 + 5 + 50 + 3 + 2 + 10, idle=1020, steal=10)
    later = CpuTimes(busy=t.busy + 60, idle=t.idle + 40, steal=t.steal + 5)
    assert steal_share(t, later) == 0.05
    assert steal_share(None, later) is None and steal_share(t, t) is None
    assert cpu_times("nothing here") is None


def test_checks_on_this_host() -> None:
    checks = run_checks(0.05)
    names = [c.name for c in checks]
    for expected in ("cpu governor", "turbo / boost", "steal time", "load average", "busy processes",
                     "isolated cores", "thermal", "usable cores"):
        assert expected in names
    assert {c.status for c in checks} <= {"ok", "warn", "info", "unknown"}
    assert all(c.advice for c in checks if c.status == "warn")  # a warning always says what to do


def test_cli_doctor_and_measure_records_steal(tmp_path: Path) -> None:
    runner = cli_runner
    r = runner.invoke(app, ["doctor", "--window", "0.05", "--json", str(tmp_path / "d.json")])
    assert r.exit_code == 0, r.output
    doc = json.loads((tmp_path / "d.json").read_text())
    assert doc["kind"] == "nasprof.doctor" and isinstance(doc["ready"], bool) and doc["host"]["cpu_model"]
    r = runner.invoke(app, ["doctor", "--window", "0.05"])
    assert r.exit_code == 0 and "steal time" in r.stdout
    r = runner.invoke(app, ["doctor", "--window", "0"])
    assert r.exit_code == 2 and "--window" in r.output
    model = make_conv_model(tmp_path / "m.onnx")
    r = runner.invoke(app, ["measure", str(model), "--runs", "5", "--json", str(tmp_path / "m.json")])
    assert r.exit_code == 0, r.output
    steal = json.loads((tmp_path / "m.json").read_text())["metadata"]["steal_share"]
    assert steal is None or 0.0 <= steal < 1.0
