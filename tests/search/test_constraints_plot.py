"""Memory constraints exclude candidates; the PNG of a search is written."""

from __future__ import annotations

import math

import numpy as np
import pytest
from search_toy import ToyArch, ToySpace, toy_latency

from nasprof.errors import DeviceUnavailableError, InputError
from nasprof.search import Evaluator, MacsProxy, MemoryConstraint, RandomSearch, Reward, run_search
from nasprof.search.plot import plot_search


def _toy_memory(arch: ToyArch) -> tuple[int, int]:
    """Peak 'SRAM' = widest block, 'Flash' = total MACs (bytes) — simple and checkable by hand."""
    return max(arch.widths), sum(w * w for w in arch.widths)


def test_infeasible_candidates_are_excluded() -> None:
    limit = MemoryConstraint("toy-board", sram_bytes=16, flash_bytes=600, usage_fn=_toy_memory)
    archs = [ToyArch((8, 16)), ToyArch((24,)), ToyArch((16, 16, 16))]
    sram, flash = limit.usage(archs)
    assert sram.tolist() == [16, 24, 16] and flash.tolist() == [320, 576, 768]
    assert limit.fits(sram, flash).tolist() == [True, False, False]
    scores = Evaluator(toy_latency, MacsProxy(), Reward.preset("hard", 10.0), limit)(archs)
    assert scores.reward[0] == pytest.approx(math.log10(320))
    assert scores.reward[1] == -math.inf and scores.reward[2] == -math.inf

    res = run_search(
        RandomSearch(ToySpace(), seed=2),
        Evaluator(toy_latency, MacsProxy(), Reward.preset("hard", 10.0), limit),
        budget=200,
    )
    assert 0 < res.feasible_count < res.evaluated
    assert all(c.feasible and c.sram_bytes <= 16 and c.flash_bytes <= 600 for c in res.pareto)
    best = res.best
    assert best is not None and best.feasible
    # the best feasible toy arch under the hard reward: most MACs with widths <= 16 and <= 600 "bytes"
    assert best.macs == max(m for m, f in zip(res.scores.macs, res.scores.feasible, strict=True) if f)
    assert res.to_dict()["constraint"] == {"device": "toy-board", "sram_bytes": 16, "flash_bytes": 600}


def test_fitness_orders_infeasible_candidates_by_overflow() -> None:
    limit = MemoryConstraint("toy-board", sram_bytes=16, flash_bytes=600, usage_fn=_toy_memory)
    # SRAM overflow 24/16 - 1 = 0.5; Flash overflow 768/600 - 1 = 0.28; the second fits
    archs = [ToyArch((24,)), ToyArch((8,)), ToyArch((16, 16, 16))]
    scores = Evaluator(toy_latency, MacsProxy(), Reward.preset("hard", 10.0), limit)(archs)
    assert scores.violation.tolist() == [0.5, 0.0, pytest.approx(0.28)]
    assert scores.fitness.tolist() == [-1.5, pytest.approx(math.log10(64)), pytest.approx(-1.28)]
    assert np.argsort(-scores.fitness).tolist() == [1, 2, 0]


def test_board_limits_come_from_the_mcu_package() -> None:
    c = MemoryConstraint.for_board("stm32f746", usage_fn=_toy_memory)
    assert (c.sram_bytes, c.flash_bytes) == (320 * 1024, 1024 * 1024)
    with pytest.raises(DeviceUnavailableError, match="unknown board"):
        MemoryConstraint.for_board("stm32f999", usage_fn=_toy_memory)
    with pytest.raises(InputError, match="memory limits"):
        MemoryConstraint("x", 0, 10, usage_fn=_toy_memory)


def test_plot_writes_a_png(tmp_path) -> None:
    limit = MemoryConstraint("toy-board", sram_bytes=16, flash_bytes=600, usage_fn=_toy_memory)
    res = run_search(
        RandomSearch(ToySpace(), seed=0),
        Evaluator(toy_latency, MacsProxy(), Reward.preset("soft", 0.5), limit),
        budget=100,
    )
    out = plot_search(res, tmp_path / "front.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(InputError, match="PNG"):
        plot_search(res, tmp_path / "front.svg")


def test_mcu_arch_memory_combines_the_per_layer_figures() -> None:
    from nasprof.devices.mcu.layers import mcu_memory_for_layer
    from nasprof.devices.mcu.runtimes import get_runtime
    from nasprof.search import McuArchMemory
    from nasprof.space import get_space

    arch = get_space("mobilenetv2").sample(1, seed=0, resolution=64)[0]
    sizer = McuArchMemory("stm32h743")
    per_layer = [mcu_memory_for_layer(layer, "stm32h743") for layer in arch.layers()]
    sram, flash = sizer(arch)
    assert sram == max(m.peak_sram_bytes for m in per_layer)
    assert flash == sum(m.flash_bytes for m in per_layer) + get_runtime(sizer.runtime).code_bytes
    assert len(sizer._layers) == len({layer.key for layer in arch.layers()})  # each distinct layer sized once
