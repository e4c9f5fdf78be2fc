"""Issue 39's cases that had no test of their own (the rest are in test_sweep_cases.py, test_hostile.py and
tests/test_bad_input.py), and the bugs the option fuzzer (test_fuzz_options.py) found.

Each refused case asserts exit code 2, one line on stderr naming the cause, no traceback, and its input
files byte for byte as they were.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
from conftest import cli_runner, make_conv_model

from nasprof.cli import app

GOOD_KEY = "conv-input:32x32x3-output:16x16x8-kernel:3-stride:2-act:relu"
SEED_MESSAGE = "--seed must be an integer in 0…4,294,967,295"


def _sums(paths: Sequence[Path]) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in paths if p.is_file()}


def refused(args: Sequence[object], message: str, given: Sequence[Path] = ()) -> str:
    """Run the CLI: exit 2, one line with ``message``, no traceback, ``given`` unchanged; the line."""
    before = _sums(given)
    r = cli_runner.invoke(app, [str(a) for a in args])
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.exit_code == 2, (r.exit_code, r.output)
    assert r.exception is None or isinstance(r.exception, SystemExit), r.exception
    assert "Traceback" not in r.output
    assert len(lines) == 1 and lines[0].startswith("error:"), r.stderr
    assert message in lines[0], lines[0]
    assert _sums(given) == before, "an input file changed"
    return lines[0]


@pytest.fixture
def lut(tmp_path: Path) -> Path:
    from nasprof.predictors import LutPredictor

    return LutPredictor({GOOD_KEY: 1.0}, device="cpu", space="mobilenetv2", resolution=32).save(
        tmp_path / "p.json")


# -- tracebacks: a seed outside 0…2**32-1 --------------------------------------------------------------------
@pytest.mark.parametrize("strategy", ["tpe", "cmaes", "nsga2", "rl"])
@pytest.mark.parametrize("seed", [str(2**32), "-1"])
def test_search_seed_out_of_range_for_each_strategy(strategy: str, seed: str, lut: Path) -> None:
    refused(["search", "--space", "mobilenetv2", "--predictor", lut, "--target-ms", "1", "--budget", "10",
             "--strategy", strategy, "--seed", seed], SEED_MESSAGE, [lut])


@pytest.mark.parametrize("args", [
    ["export", "mobilenet_v2", "--resolution", "32", "-o", "{tmp}/x.onnx"],
    ["space", "ops-config", "mobilenetv2", "--resolution", "32", "-o", "{tmp}/ops.config"],
    ["space", "quality", "mobilenetv2", "--board", "stm32f746", "--n", "5"],
    ["space", "edf", "--spaces", "mobilenetv2,mnasnet", "--n", "5"],
])
@pytest.mark.parametrize("seed", [str(2**32), str(2**64 + 1), "-1"])
def test_seed_out_of_range(args: list[str], seed: str, tmp_path: Path) -> None:
    refused([a.format(tmp=tmp_path) for a in args] + ["--seed", seed], SEED_MESSAGE)
    assert list(tmp_path.iterdir()) == []


# -- bad input accepted with exit 0 ------------------------------------------------------------------------
@pytest.mark.parametrize("step", ["0", "nan", "-0.1", "1", "inf"])
def test_scale_grid_step_out_of_range(step: str) -> None:
    refused(["scale", "mobilenet_v2", "--grid-step", step], "--grid-step must be")


@pytest.mark.parametrize("value", ["inf", "nan", "-1", "1e9"])
def test_time_per_entry_out_of_range(value: str, tmp_path: Path) -> None:
    refused(["table", "build", "--space", "mobilenetv2", "--resolution", "32", "--db", tmp_path / "t.db",
             "--time-per-entry", value], "--time-per-entry must be")
    assert not (tmp_path / "t.db").exists()


@pytest.mark.parametrize(("args", "message"), [
    (["scale", "mobilenet_v2", "--phi", "0,,1"], "--phi has an empty item"),
    (["scale", "mobilenet_v2", "--coefficients", "1.2,,1.1,1.15"], "--coefficients has an empty item"),
    (["space", "quality", "mobilenetv2", "--board", "stm32f746", "--resolutions", "96,,128"],
     "--resolutions has an empty item"),
    (["space", "edf", "--spaces", "mobilenetv2,,mnasnet"], "--spaces has an empty item"),
    (["space", "edf", "--spaces", "mobilenetv2,mnasnet,mobilenetv2"], "--spaces names mobilenetv2 twice"),
])
def test_lists_with_empty_or_repeated_items(args: list[str], message: str) -> None:
    refused(args, message)


# -- found by the fuzzer -----------------------------------------------------------------------------------
@pytest.mark.parametrize("coefficients", ["1,1,1e308", "1e308,1,1", "1,5,1", "0.5,1,1", "1,nan,1"])
def test_scale_coefficients_out_of_range(coefficients: str) -> None:
    """1e308 as gamma overflowed a float into a traceback (OverflowError) instead of naming the value."""
    refused(["scale", "mobilenet_v2", "--coefficients", coefficients],
            "alpha, beta, gamma must be finite and in [1, 4]")


@pytest.mark.parametrize(("args", "shown"), [
    (["count", "mobilenet_v2", "--width", "1e300"], "got 1.000e+300"),
    (["space", "sample", "mobilenetv2", "--seed", str(10**400)], "got 1.000e+400"),
    (["space", "sample", "mobilenetv2", "--n", str(2**64)], "--n 1.845e+19 is above the ceiling"),
])
def test_a_huge_value_is_shown_short(args: list[str], shown: str) -> None:
    """A value of 1e300 was printed as its three hundred digits, with thousands separators."""
    line = refused(args, shown)
    assert len(line) < 200, line


def test_space_edf_checks_every_space_before_sampling() -> None:
    """A space edf cannot sample, named last, fails at once, before the others are priced."""
    start = time.perf_counter()
    refused(["space", "edf", "--spaces", "mobilenetv2,mnasnet,nb201", "--metric", "sram", "--board",
             "stm32f746", "--n", "1000"], "space edf cannot sample 'nb201'")
    assert time.perf_counter() - start < 10


NB201 = "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|none~0|avg_pool_3x3~1|nor_conv_3x3~2|"


@pytest.mark.parametrize(("args", "message"), [
    (["count", NB201, "--cells-per-stage", "2147483648"], "nb201 option N must be at most 100"),
    (["count", NB201, "--cell-channels", "4294967295"], "nb201 option C must be at most 1,024"),
    (["count", NB201, "--outputs", "10000000"], "nb201 option outputs must be at most 100,000"),
    (["count", NB201, "--input", "3x100000000x100000000"], "is too large"),
    (["space", "sample", "nb201", "--n", "1", "--cells-per-stage", "10000000"], "must be at most 100"),
    (["space", "layers", "nb201", "--resolution", "4294967296"], "must be at most 1024"),
])
def test_nb201_options_have_a_ceiling(args: list[str], message: str) -> None:
    """--cells-per-stage 2147483648 filled the memory until the kernel killed the process; 100000 ran for
    minutes."""
    start = time.perf_counter()
    refused(args, message)
    assert time.perf_counter() - start < 5


def test_an_empty_adb_serial_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NASPROF_DEVICES", str(tmp_path / "devices.toml"))
    refused(["devices", "add", "pixel", "--backend", "android", "--serial", " "], "--serial is empty")
    assert not (tmp_path / "devices.toml").exists()


# -- wrong messages ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("args", [
    ["space", "list", "--json", "/proc/version"],
    ["count", "mobilenet_v2", "--json", "/proc/version"],
    ["export", "mobilenet_v2", "-o", "/proc/version"],
    ["space", "ops-config", "mobilenetv2", "-o", "/proc/version"],
])
def test_writing_to_proc_version_says_what_is_true(args: list[str], tmp_path: Path) -> None:
    target = Path("/proc/version")
    if not target.is_file():
        # A host without /proc (macOS, BSD): an existing file in a read-only directory stands in for it, so
        # the case runs everywhere.
        locked = tmp_path / "locked"
        locked.mkdir()
        target = locked / "version"
        target.write_text("x")
        target.chmod(0o444)
        locked.chmod(0o555)
        args = [str(target) if a == "/proc/version" else a for a in args]
    try:
        line = refused(args, "cannot write")
    finally:
        if target.parent.name == "locked":
            target.parent.chmod(0o755)
    assert str(target.parent) in line and "No such file" not in line and "does not exist" not in line


@pytest.mark.parametrize("args", [
    ["count", "{dir}"],
    ["export", "{dir}", "-o", "{tmp}/x.onnx"],
    ["check-mobile", "{dir}"],
    ["measure", "{dir}"],
    ["predict", "mobilenetv2:32:1.0|x", "--predictor", "{dir}"],
    ["table", "import", "{dir}", "-o", "{tmp}/t.db"],
])
def test_a_directory_given_as_a_file_says_so(args: list[str], tmp_path: Path) -> None:
    d = tmp_path / "model.onnx"
    d.mkdir()
    line = refused([a.format(dir=d, tmp=tmp_path) for a in args], "is a directory")
    assert "does not exist" not in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]


def test_table_import_of_an_unknown_format(tmp_path: Path) -> None:
    src = tmp_path / "t.csv"
    src.write_text("key,median_ms\n")
    refused(["table", "import", src, "-o", tmp_path / "t.db", "--format", "xyz"], "unknown --format 'xyz'",
            [src])
    assert not (tmp_path / "t.db").exists()


# -- newcomer frictions ------------------------------------------------------------------------------------
def test_help_keeps_the_extras_name() -> None:
    r = cli_runner.invoke(app, ["search", "--help"])
    assert r.exit_code == 0 and "nasprof[optuna]" in r.stdout, r.stdout


def test_root_help_lists_every_command() -> None:
    import typer

    r = cli_runner.invoke(app, ["--help"])
    assert r.exit_code == 0, r.output
    names = list(typer.main.get_command(app).commands)  # type: ignore[attr-defined]
    assert len(names) >= 15
    for name in names:
        assert f" {name} " in r.stdout or f" {name}\n" in r.stdout, f"{name} missing from nasprof --help"


def test_check_mobile_says_why_not(tmp_path: Path) -> None:
    model = make_conv_model(tmp_path / "free.onnx", symbolic_batch=True)
    r = cli_runner.invoke(app, ["check-mobile", str(model), "--json", "-"])
    assert r.exit_code == 0, r.output
    providers = json.loads(r.stdout)["providers"]
    assert providers and all(p["verdict"] == "NO" for p in providers)
    for p in providers:
        assert "free input dimension" in p["reason"] and "N" in p["reason"] and "--batch" in p["reason"], p


_MISSING = [
    ["measure", "missing.onnx"],
    ["count", "missing.onnx"],
    ["export", "missing.onnx", "--int8", "-o", "x.onnx"],
    ["check-mobile", "missing.ort"],
    ["predict", "mobilenet_v2", "--predictor", "missing.json"],
    ["validate", "--predictor", "missing.json"],
    ["search", "--space", "mobilenetv2", "--predictor", "missing.json", "--target-ms", "1"],
    ["table", "import", "missing.csv", "-o", "t.db"],
    ["table", "merge", "missing.db", "other.db", "-o", "t.db"],
]
_PROBE = """
import json, sys, time
from nasprof.cli import main
out = []
for argv in json.loads(sys.argv[1]):
    sys.argv = ["nasprof", *argv]
    t = time.perf_counter()
    try:
        main()
    except SystemExit as exc:
        code = exc.code
    heavy = sorted(m for m in ("torch", "onnxruntime", "onnx", "pandas", "sklearn", "scipy", "matplotlib")
                   if m in sys.modules)
    out.append([code, time.perf_counter() - t, heavy])
print(json.dumps(out))
"""


def test_a_missing_file_is_reported_at_once(tmp_path: Path) -> None:
    """Before any heavy import (torch, onnxruntime, onnx, pandas...), in well under a second."""
    proc = subprocess.run([sys.executable, "-c", _PROBE, json.dumps(_MISSING)], capture_output=True,
                          text=True, cwd=tmp_path, timeout=120)
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    errors = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(errors) == len(_MISSING) and all("does not exist" in e for e in errors), errors
    for argv, (code, seconds, heavy) in zip(_MISSING, results, strict=True):
        assert code == 2, argv
        assert heavy == [], (argv, heavy)
        assert seconds < 1.0, (argv, seconds)
    assert list(tmp_path.iterdir()) == []


# -- space edf reports its progress ------------------------------------------------------------------------
def test_space_edf_reports_progress() -> None:
    from nasprof.search.quality import space_edf

    calls: list[tuple[int, int, str]] = []
    space_edf(["mnasnet", "regnet"], "params", n=30, progress=lambda d, t, w: calls.append((d, t, w)))
    assert calls == [(0, 60, "mnasnet: layers"), (0, 60, "regnet: layers"), (0, 60, "mnasnet"),
                     (30, 60, "mnasnet"), (30, 60, "regnet"), (60, 60, "regnet")]
    calls.clear()
    space_edf(["mnasnet", "mobilenetv2"], "sram", n=25, device="stm32f746",
              progress=lambda d, t, w: calls.append((d, t, w)))
    done = [d for d, _, _ in calls]
    assert done == sorted(done) and done[-1] == 50 and len(set(done)) >= 4  # batches within each space


def test_space_edf_shows_a_progress_line_without_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    import nasprof.commands._common as common

    monkeypatch.setattr(common, "PLAIN_PROGRESS_AFTER_S", 0.0)
    r = cli_runner.invoke(app, ["space", "edf", "--spaces", "mnasnet,regnet", "--n", "20"])
    assert r.exit_code == 0, r.output
    assert "sampling: 40/40 (100%)" in r.stderr and "KS distance mnasnet / regnet" in r.stdout


# -- found by the fuzzer in files other engineers were editing -----------------------------------------------
def test_count_refuses_network_options_on_an_onnx_file(tmp_path: Path) -> None:
    model = make_conv_model(tmp_path / "m.onnx")
    refused(["count", model, "--space", "nb201", "--cells-per-stage", "3", "--input", "3x8x8"],
            "--space, --input, --cells-per-stage apply to presets and architectures, not to ONNX files",
            [model])


@pytest.mark.parametrize("args", [["--set", "foo=1"], ["--board", "x", "--device-id", "3"]])
def test_android_refuses_settings_it_does_not_read(args: list[str], tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    devices = tmp_path / "devices.toml"
    monkeypatch.setenv("NASPROF_DEVICES", str(devices))
    refused(["devices", "add", "phone", "--backend", "android", "--serial", "emulator-5554", *args],
            "the android backend has no setting")
    assert not devices.exists()


@pytest.mark.parametrize("under", ["a-file", "no-such-dir"])
def test_a_measurement_store_under_a_file_or_nowhere(under: str, tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("x")
    refused(["measurements", "list", "--store", tmp_path / under / "m.db"], "no measurement store at",
            [tmp_path / "a-file"])
