"""`nasprof doctor`: is this host (and a phone, GPU or board) ready to measure."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from nasprof.commands._common import (
    JsonOption,
    check_outputs,
    console,
    emit_json,
)


def doctor_cmd(
    device: Annotated[
        str | None,
        typer.Option("--device", "-d", help="Also check this device (a phone over adb, a CUDA GPU)."),
    ] = None,
    window: Annotated[float, typer.Option("--window", help="Seconds over which CPU use is sampled.")] = 0.5,
    json_out: JsonOption = None,
) -> None:
    """Is this host (and a device) ready to measure? CPU governor, frequency limits, turbo, load, steal
    time, busy processes, isolated cores, thermal state; for a phone its thermal status, charging and big
    cores; for a CUDA GPU other processes on it, utilisation, clocks held down, temperature and persistence
    mode (nvidia-smi). A verdict per item and what to do."""
    check_outputs({"--json": json_out})
    from nasprof.errors import InputError
    from nasprof.profiler.doctor import doctor_document, run_checks

    if not 0.05 <= window <= 10:
        raise InputError(f"--window must be between 0.05 and 10 seconds, got {window:g}")
    checks = run_checks(window)
    if device is not None and device != "cpu":
        from nasprof.devices import get_device

        checks += get_device(device).readiness()
    doc = doctor_document(checks, device)
    if emit_json(json_out, doc):
        return
    t = Table(title=f"readiness of this host{f' and {device}' if device else ''}")
    for col in ("check", "status", "value", "what to do"):
        t.add_column(col, overflow="fold")
    colour = {"ok": "green", "warn": "yellow", "unknown": "dim", "info": "cyan"}
    for c in checks:
        t.add_row(c.name, Text(c.status, style=colour.get(c.status, "")), c.value, c.advice)
    console.print(t)
    console.print("ready to measure" if doc["ready"] else
                  "not ready: fix the warnings above, or expect noisier figures", highlight=False)
