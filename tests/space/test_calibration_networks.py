"""Random block-zoo networks (the kernel predictor's varied calibration set): valid, varied, reproducible,
and exported graphs count what the analytic model counts."""

from __future__ import annotations

from pathlib import Path

from nasprof.space import count_network, count_onnx, export_arch
from nasprof.space.calibration_networks import ZOO_FAMILIES, sample_zoo


def test_zoo_networks_are_valid_varied_and_reproducible() -> None:
    nets = sample_zoo(40, seed=3)
    assert len(nets) == 40
    assert {n.resolution for n in nets} == {160, 192, 224}
    ops = {b.op for n in nets for b in n.blocks}
    assert set(ZOO_FAMILIES) <= ops  # every family appears within 40 draws
    for n in nets:
        assert n.stem[0].cin == 3 and n.head[-1].cout == 1000
        shape = n.layers()[-1].output_shape
        assert tuple(shape) == (1000, 1, 1)
    assert [n.specs() for n in sample_zoo(40, seed=3)] == [n.specs() for n in nets]
    assert [n.specs() for n in sample_zoo(5, seed=4)] != [n.specs() for n in nets[:5]]


def test_exported_zoo_network_counts_match_the_analytic_counts(tmp_path: Path) -> None:
    for i, net in enumerate(sample_zoo(2, seed=11)):
        path = export_arch(net, tmp_path / f"z{i}.onnx")
        graph, analytic = count_onnx(path), count_network(net)
        assert (graph.macs, graph.params) == (analytic.macs, analytic.params)
