"""Memory models, Flash and latency of the MCU estimator on graphs whose numbers are checked by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from mcu_models import make_residual_block

from nasprof.devices.mcu import estimate_mcu, fits, get_board, load_graph, plan_memory
from nasprof.devices.mcu.graph import McuOp, graph_from_ops
from nasprof.devices.mcu.memory import Buffer, place_first_fit
from nasprof.devices.mcu.tflm import cmsis_nn_scratch_bytes
from nasprof.devices.mcu.tinyengine import tinyengine_buffers


@pytest.fixture(scope="module")
def block(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_residual_block(tmp_path_factory.mktemp("mcu") / "block.onnx")


@pytest.fixture(scope="module")
def mbv2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """MobileNetV2-1.0 @ 224 from the space engineer's preset (BN folded, ReLU6 as Clip)."""
    from nasprof.space import export_arch, get_preset

    preset = get_preset("mobilenet_v2", width=1.0, resolution=224)
    return export_arch(preset, tmp_path_factory.mktemp("mcu") / "mbv2.onnx")


# ---- graph ----------------------------------------------------------------------------------------
def test_graph_fuses_activation_and_counts_macs(block: Path) -> None:
    g = load_graph(block)
    assert [op.kind for op in g.ops] == ["conv", "depthwise", "conv", "add"]
    assert g.ops[0].fused == ("/b/expand/Relu",)
    assert [op.macs for op in g.ops] == [2048, 4608, 2048, 256]
    assert g.size("input") == 256 and g.size("c0") == 512


# ---- per-layer (MCUNet) ---------------------------------------------------------------------------
def test_per_layer_exact_bytes(block: Path) -> None:
    g = load_graph(block)
    plan = plan_memory(g, "per-layer")
    # expand: 256 in + 512 out; dw in place: 512 + residual input 256; project: 512 + 256 + 256; add: 3 x 256
    assert [r.total_bytes for r in plan.layers] == [768, 768, 1024, 768]
    assert plan.peak_bytes == 1024 and plan.peak_layer == "/b/project/Conv"
    assert [r.other_bytes for r in plan.layers] == [0, 256, 256, 0]
    not_in_place = plan_memory(g, "per-layer", inplace_depthwise=False)
    assert not_in_place.layers[1].total_bytes == 512 + 512 + 256
    assert not_in_place.peak_bytes == 1280


def test_mobilenet_v2_per_layer_matches_mcunetv2(mbv2: Path) -> None:
    g = load_graph(mbv2)
    plan = plan_memory(g, "per-layer")
    assert plan.peak_bytes == 1_404_928  # 1372 KiB: block 2's 1x1 expand, 112*112*16 + 112*112*96
    peak = plan.layers[plan.peak_index]
    assert (peak.kind, peak.input_bytes, peak.output_bytes) == ("conv", 112 * 112 * 16, 112 * 112 * 96)
    without = plan_memory(g, "per-layer", inplace_depthwise=False)
    assert without.peak_bytes == 1_505_280 == 1470 * 1024  # the next depthwise: 112*112*96 + 56*56*96
    assert without.layers[without.peak_index].kind == "depthwise"


# ---- tflm -----------------------------------------------------------------------------------------
def test_tflm_exact_bytes(block: Path) -> None:
    plan = plan_memory(load_graph(block), "tflm")
    offsets = {b.name: b.offset for b in plan.buffers}
    # largest first: c0 at 0, c1 (alive with c0 at op 1) above it, the input above both, then the small ones
    assert offsets == {"c0": 0, "c1": 512, "input": 1024, "c2": 0, "output": 256}
    assert plan.activation_bytes == 1280
    # tail: 11 tensors x 12 B + 4 ops x 40 B + 20 conv output channels x 8 B
    assert plan.persistent_bytes == 11 * 12 + 4 * 40 + 20 * 8
    assert plan.peak_bytes == 1280 + 452


def test_tflm_alignment_and_no_overlap(mbv2: Path) -> None:
    plan = plan_memory(load_graph(mbv2), "tflm")
    bufs = plan.buffers
    assert all(b.offset % 16 == 0 and b.size % 16 == 0 for b in bufs)
    for i, a in enumerate(bufs):
        for b in bufs[i + 1:]:
            if a.overlaps_in_time(b):
                assert a.offset + a.size <= b.offset or b.offset + b.size <= a.offset, (a, b)
    assert plan.activation_bytes == max(b.offset + b.size for b in bufs)
    assert max(r.total_bytes for r in plan.layers) == plan.activation_bytes


def test_greedy_planner_properties_on_random_lifetimes() -> None:
    rng = np.random.default_rng(1)
    for _ in range(50):
        bufs = []
        for k in range(int(rng.integers(2, 15))):
            first = int(rng.integers(0, 10))
            last = first + int(rng.integers(0, 5))
            bufs.append(Buffer(f"t{k}", int(rng.integers(1, 40)) * 16, first, last))
        placed = place_first_fit(bufs, order=lambda b: -b.size)
        for i, a in enumerate(placed):
            assert a.offset >= 0
            for b in placed[i + 1:]:
                if a.overlaps_in_time(b):
                    assert a.offset + a.size <= b.offset or b.offset + b.size <= a.offset
        # never worse than stacking everything; never better than the busiest moment
        busiest = max(sum(b.size for b in bufs if b.first <= t <= b.last) for t in range(15))
        head = max(b.offset + b.size for b in placed)
        assert busiest <= head <= sum(b.size for b in bufs)


def test_cmsis_scratch_sizes() -> None:
    shapes = {"x": (3, 8, 8), "y": (8, 4, 4), "z": (8, 4, 4), "w": (8, 4, 4)}
    conv3 = McuOp("c", "Conv", "conv", ("x",), ("y",), kernel=(3, 3), stride=(2, 2), pads=(1, 1, 1, 1))
    dw5 = McuOp("d", "Conv", "depthwise", ("y",), ("z",), kernel=(5, 5), pads=(2, 2, 2, 2), groups=8)
    dw3 = McuOp("e", "Conv", "depthwise", ("z",), ("w",), kernel=(3, 3), pads=(1, 1, 1, 1), groups=8)
    g = graph_from_ops([conv3, dw5, dw3], shapes, ["x"], ["w"])
    assert cmsis_nn_scratch_bytes(g, conv3) == 2 * 3 * 9 * 2  # arm_convolve_s8: two int16 im2col columns
    assert cmsis_nn_scratch_bytes(g, dw5) == 8 * 25 * 2  # arm_depthwise_conv_s8_opt
    assert cmsis_nn_scratch_bytes(g, dw3) == 0  # arm_depthwise_conv_3x3_s8
    plan = plan_memory(g, "tflm")
    assert [r.scratch_bytes for r in plan.layers] == [108, 400, 0]
    assert {b.name: b.size for b in plan.buffers}["c#scratch"] == 112  # rounded up to 16


# ---- tinyengine -----------------------------------------------------------------------------------
def test_tinyengine_exact_bytes(block: Path) -> None:
    g = load_graph(block)
    plan = plan_memory(g, "tinyengine")
    # dw writes over c0, so c0 and c1 are one 512 B buffer alive from op 0 to op 2
    assert {b.name: (b.offset, b.size, b.first, b.last) for b in plan.buffers} == {
        "c0": (0, 512, 0, 2), "input": (512, 256, 0, 3), "c2": (768, 256, 2, 3), "output": (0, 256, 3, 3)}
    assert plan.activation_bytes == 1024
    # static buffers: the in-place dw needs 2*(8+2)*(8+2) = 200 B, the largest im2col; no kernel buffer
    assert [tinyengine_buffers(g, op, op.kind == "depthwise") for op in g.ops] == [(16, 0), (200, 0), (32, 0),
                                                                                   (0, 0)]
    assert plan.static_scratch_bytes == 200
    assert plan.peak_bytes == 1224
    assert plan.layers[1].in_place


def test_tinyengine_stride2_inplace_quarter(mbv2: Path) -> None:
    g = load_graph(mbv2)
    plan = plan_memory(g, "tinyengine")
    shrunk = [b for b in plan.buffers if b.shrink_after is not None]
    assert shrunk and all(b.shrunk_size == -(-b.size // 4) for b in shrunk)
    assert plan.peak_bytes < plan_memory(g, "tflm").peak_bytes


# ---- flash, latency, fit --------------------------------------------------------------------------
def test_flash_and_latency_exact(block: Path) -> None:
    r = estimate_mcu(block, "stm32f746", "tinyengine")
    assert r.flash.weight_bytes == 32 + 72 + 32
    assert r.flash.bias_bytes == 4 * 20
    assert r.flash.quant_bytes == 4 * 20
    assert r.flash.code_bytes == 32 * 1024
    assert r.flash_bytes == 136 + 80 + 80 + 32768
    assert r.macs == 8960
    assert r.latency_ms["tinyengine"] == pytest.approx(8960 * 2.0 / 216e6 * 1e3)
    assert r.latency_ms["tflm"] == pytest.approx(8960 * 46.0 / 216e6 * 1e3)
    assert r.fits and r.sram_headroom_bytes == 320 * 1024 - 1224
    tflm = estimate_mcu(block, "stm32f746", "tflm")
    assert tflm.runtime == "cmsis-nn" and tflm.flash.quant_bytes == 12 * 20


def test_fits_constraint() -> None:
    f746 = get_board("stm32f746")
    assert fits(f746, 320 * 1024, 1024 * 1024)
    assert not fits("stm32f746", 320 * 1024 + 1, 10)
    assert not fits("stm32f746", 10, 1024 * 1024 + 1)


def test_mobilenet_v2_does_not_fit_f746(mbv2: Path) -> None:
    r = estimate_mcu(mbv2, "stm32f746")
    d = r.to_dict()
    assert not d["fits"] and not d["fits_sram"] and not d["fits_flash"]
    assert d["peak_sram_bytes"] == 1_404_928 and d["sram_headroom_bytes"] == 320 * 1024 - 1_404_928
    assert d["macs"] == r.macs and 295e6 < r.macs < 305e6  # published: 300 M
    assert set(d["latency_ms"]) == {"tflm", "cmsis-nn", "x-cube-ai", "tinyengine"}
    assert len(d["per_layer"]) == len(load_graph(mbv2).ops)
