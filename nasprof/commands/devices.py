"""`nasprof devices add|remove|list|check|probe`: named devices and what they run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from nasprof.commands._common import (
    JsonOption,
    MeasureOptLevelOption,
    SetOption,
    ThreadsOption,
    _parse_options,
    _StepBar,
    check_outputs,
    console,
    emit_json,
    err_console,
    styled,
    warn,
)

devices_app = typer.Typer(help="Named devices: add, remove, list, check, probe.", no_args_is_help=True,
                          rich_markup_mode=None)


@devices_app.command("add")
def devices_add_cmd(
    name: Annotated[str, typer.Argument(help="Device name, e.g. pixel (letters, digits, - and _).")],
    backend: Annotated[str, typer.Option("--backend", "-b", help="Backend kind: cpu, cuda, android, mcu.")],
    serial: Annotated[str | None, typer.Option(help="Android: adb serial (see `adb devices`).")] = None,
    cores: Annotated[str | None, typer.Option(help="Android: big | all | hex CPU mask such as 0xf0.")] = None,
    threads: Annotated[int | None, typer.Option(help="Threads used on the device (default 1).")] = None,
    runner: Annotated[
        Path | None, typer.Option(help="Android: onnxruntime_perf_test built for the device.")
    ] = None,
    board: Annotated[str | None, typer.Option(help="mcu: board name, e.g. stm32f746.")] = None,
    device_id: Annotated[int | None, typer.Option("--device-id", help="cuda: GPU index.")] = None,
    option: SetOption = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace a device of that name, or shadow a built-in.")
    ] = False,
    project: Annotated[
        bool, typer.Option("--project", help="Write ./nasprof.toml instead of the user's devices file.")
    ] = False,
) -> None:
    """Add a named device to the devices file (./nasprof.toml if present, else the user's devices.toml)."""
    from nasprof.devices import config as devcfg
    from nasprof.devices.resolve import add_named_device

    options: dict[str, Any] = _parse_options(option)
    given = {"serial": serial, "cores": cores, "threads": threads, "board": board, "device_id": device_id,
             "runner": None if runner is None else str(runner)}
    options.update({k: v for k, v in given.items() if v is not None})
    path = Path.cwd() / devcfg.PROJECT_FILE if project else None
    written = add_named_device(name, backend, options, force=force, devices_path=path)
    err_console.print(f"added device {name} ({backend}) to {written}")


@devices_app.command("remove")
def devices_remove_cmd(name: Annotated[str, typer.Argument(help="Named device to remove.")]) -> None:
    """Remove a named device from the devices file."""
    from nasprof.devices.resolve import remove_named_device

    written = remove_named_device(name)
    err_console.print(f"removed device {name} from {written}")


@devices_app.command("list")
def devices_list_cmd(
    as_json: JsonOption = None,
) -> None:
    """List every device (named ones, then built-ins) and whether it can be used here, or why not."""
    check_outputs({"--json": as_json})
    from nasprof.devices import list_devices
    from nasprof.devices.config import devices_file

    rows = list_devices()
    path = devices_file()
    if emit_json(as_json, {"devices_file": str(path), "devices": [r.to_dict() for r in rows]}):
        return
    t = Table(title=f"devices (named devices from {path})")
    for col in ("name", "backend", "source", "available", "settings / why not"):
        t.add_column(col, overflow="fold")
    for r in rows:
        settings = ", ".join(f"{k}={v}" for k, v in r.options.items())
        t.add_row(r.name, r.backend, r.source, styled("yes", "green") if r.available else styled("no", "red"),
                  settings if r.available else " — ".join(filter(None, [settings, r.reason])))
    console.print(t)


@devices_app.command("check")
def devices_check_cmd(
    name: Annotated[str, typer.Argument(help="Device to check (see `nasprof devices list`).")],
    as_json: JsonOption = None,
    space: Annotated[
        str | None, typer.Option("--space", help="Phones: check that the runner has every operator this "
                                                 "space's table needs.")
    ] = None,
    resolution: Annotated[int | None, typer.Option(help="Input resolution for --space (default: the "
                                                        "space's).")] = None,
    width: Annotated[float, typer.Option(help="Global width multiplier for --space.")] = 1.0,
    int8: Annotated[bool, typer.Option("--int8", help="For --space: int8 (QDQ) tables, as `table build "
                                                       "--int8`.")] = False,
) -> None:
    """Connect to a device and show what it reports (model, cores, clocks, thermal state, runtimes); for a
    phone, also which model files its runner loads (a minimal onnxruntime build takes only ORT format),
    recorded in the devices file as model_format, and whether it has the execution provider configured.
    With --space, whether a minimal runner has every operator of that space."""
    check_outputs({"--json": as_json})
    from nasprof.devices import get_device
    from nasprof.errors import InputError

    backend = get_device(name)
    backend.ensure_available()
    formats = getattr(backend, "model_formats", None)
    if space is not None and not callable(formats):
        raise InputError(f"--space checks a phone's runner; {name} is a {backend.name} device, which runs "
                         "every operator of its onnxruntime")
    info = backend.describe()
    if callable(formats):
        accepted = formats()
        info.update(_record_model_format(name, backend, accepted))
        if space is not None:
            from nasprof.devices.android.ops_check import check_space_coverage

            info["space_coverage"] = check_space_coverage(backend, space, resolution=resolution, width=width,
                                                          int8=int8, formats=accepted).to_dict()
    if emit_json(as_json, info):
        return
    t = Table(title=f"{name}: available", show_header=False)
    t.add_column("key", style="bold")
    t.add_column("value", overflow="fold")
    for key, value in info.items():
        t.add_row(str(key), value if isinstance(value, str) else json.dumps(value, default=str))
    console.print(t)


def _record_model_format(name: str, backend: Any, accepted: tuple[str, ...]) -> dict[str, Any]:
    """What a runner loads, kept in the devices file so that `measure` pushes a file it can run."""
    from nasprof.devices.config import DeviceConfig, add_device, load_devices
    from nasprof.errors import DeviceError

    if not accepted:
        raise DeviceError(f"the runner of {name} loads neither an ONNX nor an ORT-format model; check that "
                          "it is onnxruntime_perf_test built for the device")
    configured = str(backend.config.get("model_format", "onnx"))
    out: dict[str, Any] = {"model_formats_accepted": list(accepted), "model_format": configured}
    if configured not in accepted:
        chosen = "onnx" if "onnx" in accepted else "ort"
        entry = load_devices().get(name)
        if entry is not None:
            add_device(DeviceConfig(name, entry.backend, {**entry.options, "model_format": chosen}),
                       path=entry.source, force=True)
            warn(f"{name}: its runner loads only {' and '.join(accepted)} models; recorded model_format = "
                 f"{chosen!r} in {entry.source}")
        out["model_format"] = chosen
    return out


@devices_app.command("probe")
def devices_probe_cmd(
    name: Annotated[str, typer.Argument(help="Device to probe (see `nasprof devices list`).")],
    opt_level: MeasureOptLevelOption = "all",
    threads: ThreadsOption = 1,
    json_path: JsonOption = None,
) -> None:
    """Run small probe graphs on a device and show the kernel rules it follows: which ops fuse, whether it
    has a blocked (NCHWc) layout and its block size, which kernels run blocked, where reorders go; with a
    mobile execution provider, which kernels it ran and which fell back to the CPU."""
    check_outputs({"--json": json_path})
    from nasprof.predictors.kernel.probe import probe_rules

    with _StepBar("probing") as bar:
        report = probe_rules(name, opt_level=opt_level, threads=threads, progress=bar)
    if json_path is not None and str(json_path) == "-":
        console.print_json(json.dumps(report.to_dict()))
        return
    t = Table(title=f"{name}: kernel rules ({len(report.observations)} probes, {report.seconds:.1f} s)",
              show_header=False)
    t.add_column("rule", style="bold")
    t.add_column("value", overflow="fold")
    for k, v in report.rules.describe().items():
        t.add_row(k, str(v))
    by_provider = report.kernels_by_provider()
    if len(by_provider) > 1 or any(p != "CPUExecutionProvider" for p in by_provider):
        # A mobile provider is configured: what it took, and what fell back to the CPU.
        for prov, ops in by_provider.items():
            t.add_row(f"kernels on {prov}", ", ".join(ops))
    console.print(t)
    if json_path is not None:
        report.save_json(json_path)
        err_console.print(f"wrote {json_path}", highlight=False)


