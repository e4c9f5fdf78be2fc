"""``nasprof measure MODEL --device <board>`` end to end through typer's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import cli_runner as runner
from mcu_models import make_residual_block

from nasprof.cli import app
from nasprof.profiler.measurement import Measurement


@pytest.fixture
def block(tmp_path: Path) -> Path:
    return make_residual_block(tmp_path / "block.onnx")


def test_measure_board_prints_fit_and_writes_json_and_plot(block: Path, tmp_path: Path) -> None:
    out_json, out_png = tmp_path / "r.json", tmp_path / "mem.png"
    res = runner.invoke(app, ["measure", str(block), "--device", "stm32f746", "--memory-model", "tinyengine",
                              "--json", str(out_json), "--plot", str(out_png)])
    assert res.exit_code == 0, res.output
    assert "peak SRAM 1,224 B at layer 2 /b/project/Conv" in res.output
    assert "ESTIMATE" in res.output and "tinyengine *" in res.output
    doc = json.loads(out_json.read_text())
    assert doc["peak_sram_bytes"] == 1224 and doc["flash_bytes"] == 33064 and doc["fits"] is True
    assert doc["board"] == "stm32f746" and doc["memory_model"] == "tinyengine" and doc["estimated"] is True
    assert [r["total_bytes"] for r in doc["per_layer"]] == [968, 968, 1224, 1224]  # extent + 200 B im2col
    assert doc["latency_ms"]["tinyengine"] == pytest.approx(8960 * 2.0 / 216e3)
    assert set(doc["latency_ms"]) == {"tflm", "cmsis-nn", "x-cube-ai", "tinyengine"}
    assert Measurement.load_json(out_json).memory["peak_sram_bytes"] == 1224  # still a Measurement file
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_measure_runtime_choice(block: Path) -> None:
    res = runner.invoke(app, ["measure", str(block), "--device", "stm32l476", "--memory-model", "per-layer",
                              "--runtime", "tflm"])
    assert res.exit_code == 0, res.output
    assert "tflm *" in res.output and "yes" in res.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--device", "stm32f999"], "stm32f746"),
        (["--device", "stm32f746", "--memory-model", "magic"], "unknown memory model 'magic'"),
        (["--device", "stm32f746", "--runtime", "tvm"], "unknown runtime 'tvm'"),
        (["--device", "stm32f746", "--plot", "mem.svg"], "PNG"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(block: Path, args: list[str], message: str) -> None:
    res = runner.invoke(app, ["measure", str(block), *args])
    assert res.exit_code == 2, res.output
    assert message in res.output and "Traceback" not in res.output


def test_unsized_operator_exit_2_or_partial(tmp_path: Path) -> None:
    path = make_residual_block(tmp_path / "odd.onnx", extra_op="Erf")
    res = runner.invoke(app, ["measure", str(path), "--device", "stm32f746"])
    assert res.exit_code == 2 and "/b/Erf (Erf)" in res.output
    out_json = tmp_path / "p.json"
    res = runner.invoke(app, ["measure", str(path), "--device", "stm32f746", "--allow-partial",
                              "--json", str(out_json)])
    assert res.exit_code == 0, res.output
    assert "partial estimate" in res.output
    doc = json.loads(out_json.read_text())
    assert doc["partial"] is True and doc["unsized_ops"] == ["/b/Erf (Erf)"]


def test_plot_needs_a_board(block: Path, tmp_path: Path) -> None:
    res = runner.invoke(app, ["measure", str(block), "--device", "cpu", "--plot", str(tmp_path / "m.png")])
    assert res.exit_code == 2 and "board device" in res.output
    assert not (tmp_path / "m.png").exists()


def test_plot_path_is_checked_before_estimating(block: Path, tmp_path: Path) -> None:
    # Found in QA: a directory as --plot ended in a traceback, a missing directory was silently created,
    # and a .svg path was refused only after the whole report had been printed.
    for target, message in (
        (tmp_path, "it is a directory; give a file name"),
        (tmp_path / "nowhere" / "m.png", f"directory {tmp_path / 'nowhere'} does not exist"),
        (tmp_path / "m.svg", "--plot writes a PNG"),
    ):
        res = runner.invoke(app, ["measure", str(block), "--device", "stm32f746", "--plot", str(target)])
        assert res.exit_code == 2, res.output
        assert res.stderr.startswith("error: ") and res.stderr.count("\n") == 1 and message in res.stderr
        assert res.stdout == ""  # refused before the estimate
    assert not (tmp_path / "nowhere").exists()


def test_plot_library_call_writes_atomically_and_creates_no_directory(block: Path, tmp_path: Path) -> None:
    import nasprof
    from nasprof.devices.mcu.plot import plot_memory_profile
    from nasprof.errors import InputError

    report = nasprof.measure(block, device="stm32f746", options={"memory_model": "tflm"}).memory
    assert report is not None
    with pytest.raises(InputError, match="does not exist"):
        plot_memory_profile(report, tmp_path / "new" / "m.png")  # used to mkdir it
    assert not (tmp_path / "new").exists()
    out = plot_memory_profile(report, tmp_path / "m.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".m.png")] == []
