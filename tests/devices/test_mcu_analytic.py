"""The analytic graph of a search-space layer agrees byte for byte with the exported ONNX graph."""

from __future__ import annotations

from pathlib import Path

import pytest

try:
    from nasprof.space import export_arch, export_layer, get_space
except ImportError:  # pragma: no cover - the space package is still being built
    pytest.skip("nasprof.space has no export yet", allow_module_level=True)

from nasprof.devices.mcu import MEMORY_MODELS, RUNTIMES, estimate_mcu, load_graph, plan_memory  # noqa: E402
from nasprof.devices.mcu.analytic import graph_from_layer  # noqa: E402
from nasprof.devices.mcu.flash import flash_report  # noqa: E402
from nasprof.devices.mcu.layers import mcu_memory_for_layer, network_fits  # noqa: E402
from nasprof.errors import InputError  # noqa: E402


def _one_per_kind(space_name: str, resolution: int) -> list:
    """One layer for every (op, SE, skip, stride, expand == 1) combination of a space."""
    seen: dict[tuple, object] = {}
    for layer in get_space(space_name).distinct_layers(resolution):
        s = layer.spec
        seen.setdefault((s.op, s.se > 0, s.skip, s.stride, s.expand == 1), layer)
    return list(seen.values())


LAYERS = _one_per_kind("mobilenetv2", 32) + _one_per_kind("mnasnet", 32)


@pytest.mark.parametrize("layer", LAYERS, ids=lambda layer: layer.key)
def test_analytic_graph_equals_onnx_graph(layer: object, tmp_path: Path) -> None:
    analytic = graph_from_layer(layer)
    assert analytic is not None  # every layer of these spaces, the head included
    onnx_graph = load_graph(export_layer(layer, tmp_path / "layer.onnx"))
    def describe(graph: object) -> list[tuple]:
        return [(op.kind, op.macs, op.weight_elems, op.bias_elems, op.kernel, op.stride) for op in graph.ops]

    assert describe(analytic) == describe(onnx_graph)
    for mm in MEMORY_MODELS:
        a, b = plan_memory(analytic, mm), plan_memory(onnx_graph, mm)
        assert a.peak_bytes == b.peak_bytes
        assert [r.total_bytes for r in a.layers] == [r.total_bytes for r in b.layers]
    for rt in RUNTIMES.values():
        assert flash_report(analytic, rt) == flash_report(onnx_graph, rt)


def test_layer_figures_add_up_to_the_network(tmp_path: Path) -> None:
    arch = get_space("mobilenetv2").sample(1, seed=0, resolution=96)[0]
    full = estimate_mcu(export_arch(arch, tmp_path / "arch.onnx"), "stm32f746", "per-layer")
    per_layer = [mcu_memory_for_layer(layer, "stm32f746") for layer in arch.layers()]
    # a chain of blocks: the network's per-layer peak is the largest block peak, Flash is the sum + code
    assert full.peak_sram_bytes == max(x.peak_sram_bytes for x in per_layer)
    assert full.flash_bytes == sum(x.flash_bytes for x in per_layer) + RUNTIMES["tinyengine"].code_bytes
    assert full.macs == sum(x.macs for x in per_layer)
    assert network_fits("stm32f746", per_layer) == full.fits


def test_methods_agree_and_analytic_refuses_uncovered_blocks() -> None:
    layer = next(x for x in LAYERS if x.spec.op == "mbconv" and x.spec.se)
    for mm in MEMORY_MODELS:
        assert mcu_memory_for_layer(layer, memory_model=mm, method="analytic") == mcu_memory_for_layer(
            layer, memory_model=mm, method="onnx")
    bottleneck = next(x for x in get_space("regnet").distinct_layers(32) if x.spec.op == "resnet_bottleneck")
    with pytest.raises(InputError, match="no analytic memory model"):
        mcu_memory_for_layer(bottleneck, method="analytic")
    assert mcu_memory_for_layer(bottleneck).flash_bytes > 0  # auto falls back to export
    with pytest.raises(InputError, match="unknown method"):
        mcu_memory_for_layer(layer, method="guess")
