"""The MCU estimator as a device: registry, Measurement, boards from dicts, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from mcu_models import make_residual_block

import nasprof
from nasprof.devices import get_device, registry
from nasprof.devices.base import BackendRegistry, MeasureSpec
from nasprof.devices.mcu import (
    BOARDS,
    McuBackend,
    UnsupportedOpsError,
    board_from_dict,
    estimate_mcu,
    get_board,
    load_graph,
    register_board_device,
)
from nasprof.errors import DeviceUnavailableError, InputError, ModelError
from nasprof.profiler.measurement import Measurement


@pytest.fixture
def block(tmp_path: Path) -> Path:
    return make_residual_block(tmp_path / "block.onnx")


def test_every_board_is_a_device() -> None:
    for name in ("stm32f746", "stm32f767", "stm32f412", "stm32h743", "stm32l476", "stm32f411"):
        assert name in registry
        dev = get_device(name)
        assert isinstance(dev, McuBackend) and dev.board.name == name and dev.available() == (True, "")
    assert get_board("STM32F746").sram_bytes == 320 * 1024 and get_board("stm32h743").clock_mhz == 480


def test_measure_returns_an_estimate(block: Path) -> None:
    m = nasprof.measure(block, device="stm32f746", options={"memory_model": "tinyengine"})
    assert m.estimated and m.backend == "mcu" and m.device == "stm32f746"
    assert m.samples_ms == (pytest.approx(8960 * 2.0 / 216e3),)
    assert m.memory is not None and m.memory["peak_sram_bytes"] == 1224
    assert m.memory["memory_model"] == "tinyengine" and m.metadata["runtime"] == "tinyengine"
    assert m.warnings[0].startswith("estimate")
    again = Measurement.from_dict(m.to_dict())  # the report survives the JSON round trip
    assert again.memory == m.memory and again.estimated


def test_runtime_option_changes_latency_and_flash(block: Path) -> None:
    m = nasprof.measure(block, device="stm32h743", options={"runtime": "cmsis-nn"})
    assert m.samples_ms[0] == pytest.approx(8960 * 4.2 / 480e3)
    assert m.memory["flash"]["quant_bytes"] == 12 * 20


def test_unknown_board_lists_known_boards() -> None:
    with pytest.raises(DeviceUnavailableError, match="known boards: stm32f411, stm32f412"):
        get_board("stm32f999")
    with pytest.raises(DeviceUnavailableError, match="stm32f746"):
        get_device("stm32f999")


def test_unknown_options_and_models(block: Path) -> None:
    with pytest.raises(InputError, match="memory model"):
        estimate_mcu(block, "stm32f746", "magic")
    with pytest.raises(InputError, match="runtime"):
        estimate_mcu(block, "stm32f746", runtime="tvm")
    with pytest.raises(InputError, match="unknown option"):
        nasprof.measure(block, device="stm32f746", options={"threads_per_core": 2})
    with pytest.raises(ModelError, match="does not exist"):
        load_graph(block.with_name("missing.onnx"))
    bad = block.with_name("bad.onnx")
    bad.write_bytes(b"not a model")
    with pytest.raises(ModelError, match="cannot read"):
        load_graph(bad)


def test_unsized_operator_is_named(tmp_path: Path) -> None:
    path = make_residual_block(tmp_path / "odd.onnx", extra_op="Erf")
    with pytest.raises(UnsupportedOpsError, match=r"/b/Erf \(Erf\)") as info:
        load_graph(path)
    assert info.value.ops == ("/b/Erf (Erf)",)
    r = estimate_mcu(path, "stm32f746", allow_partial=True)
    assert r.partial and r.to_dict()["unsized_ops"] == ["/b/Erf (Erf)"]
    assert r.plan.layers[-1].kind == "unknown" and r.plan.layers[-1].total_bytes == 512


def test_board_from_dict_and_registration() -> None:
    b = board_from_dict({"name": "my-f746", "base": "stm32f746", "sram_kb": 256})
    assert (b.sram_bytes, b.flash_bytes, b.clock_mhz, b.core) == (256 * 1024, 1024 * 1024, 216.0, "Cortex-M7")
    c = board_from_dict({"core": "Cortex-M33", "clock_mhz": 160, "sram_bytes": 100_000, "flash_kb": 512},
                        name="nrf5340")
    assert (c.sram_bytes, c.flash_bytes) == (100_000, 512 * 1024)
    with pytest.raises(InputError, match="clock_mhz"):
        board_from_dict({"name": "x", "sram_kb": 1, "flash_kb": 1})
    with pytest.raises(InputError, match="sram"):
        board_from_dict({"name": "x", "clock_mhz": 1, "flash_kb": 1})
    with pytest.raises(InputError, match="positive"):
        board_from_dict({"name": "x", "clock_mhz": 1, "sram_kb": -3, "flash_kb": 1})
    reg = BackendRegistry()
    try:
        register_board_device(c, reg)
        dev = reg.create("nrf5340")
        assert isinstance(dev, McuBackend) and dev.board == c
        # the generic backend takes a TOML-style table directly
        generic = McuBackend(device="lab-board", board={"base": "stm32f411", "name": "lab-board"})
        assert generic.board.sram_bytes == 128 * 1024
    finally:
        if "nrf5340" in BOARDS:
            BOARDS.unregister("nrf5340")


def test_devices_toml_style_tables(block: Path) -> None:
    # what nasprof.devices.resolve does with [devices.NAME] backend = "mcu" + the table's other keys
    reg = BackendRegistry()
    reg.register("mcu", McuBackend)
    by_name = reg.create("mcu", device="bench-f746", board="stm32f746", memory_model="tflm")
    assert by_name.board.name == "stm32f746"
    assert by_name.measure(block, MeasureSpec()).memory["memory_model"] == "tflm"
    inline = reg.create("mcu", device="half-f746", base="stm32f746", sram_kb=160)
    b = inline.board
    assert (b.name, b.sram_bytes, b.clock_mhz) == ("half-f746", 160 * 1024, 216.0)
    smaller = reg.create("mcu", device="x", board="stm32f746", sram_kb=10, threads=1)  # named board as base
    assert (smaller.board.name, smaller.board.sram_bytes, smaller.board.flash_bytes) == ("x", 10240, 1 << 20)
    assert smaller.measure(block, MeasureSpec()).memory["fits"] is True  # threads is ignored, 1024 B fit
    with pytest.raises(DeviceUnavailableError, match="needs a board"):
        reg.create("mcu")


def test_board_defined_in_devices_file(block: Path, tmp_path: Path) -> None:
    resolve = pytest.importorskip("nasprof.devices.resolve")
    toml = tmp_path / "devices.toml"
    toml.write_text('schema_version = 1\n\n[devices.half-f746]\nbackend = "mcu"\nbase = "stm32f746"\n'
                    'sram_kb = 160\nmemory_model = "tinyengine"\n')
    dev = resolve.get_device("half-f746", devices_path=toml)
    m = dev.measure(block, MeasureSpec())
    assert m.memory["board_spec"]["sram_bytes"] == 160 * 1024 and m.memory["memory_model"] == "tinyengine"
    assert m.memory["sram_headroom_bytes"] == 160 * 1024 - 1224


def test_symbolic_dimensions(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.ones((4, 3, 1, 1), np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["input", "w"], ["output"], name="/c/Conv")], "sym",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, "H", "W"])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", 4, "H", "W"])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "sym.onnx"
    onnx.save(model, path)
    with pytest.raises(ModelError, match="static input shapes"):
        load_graph(path)
    m = nasprof.measure(path, device="stm32f746", input_shapes=["input=1x3x10x10"])
    assert m.memory["peak_sram_bytes"] == 300 + 400  # per-layer: input + output, int8
    with pytest.raises(ModelError, match="model's inputs are input"):
        load_graph(path, input_shapes={"x": (1, 3, 4, 4)})
    # a symbolic batch alone is fine: it is 1
    assert load_graph(path, input_shapes={"input": (1, 3, 2, 2)}).size("output") == 16
