"""The NASNet cell space: size, cells as one chain, tables keyed by operation, export, MCU, refusals."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from conftest import cli_runner as runner

from nasprof.cli import app
from nasprof.errors import SpaceError
from nasprof.space import Arch, count_onnx, export_arch, get_space
from nasprof.space.blocks.nasnet import OPS, parse_genotype
from nasprof.space.layer import priced_layers
from nasprof.space.spaces.nasnet import BLOCKS, NASNET_A_NORMAL, nasnet_a_arch


def test_size_is_the_lecture_formula_with_the_real_inputs_per_block() -> None:
    space = get_space("nasnet")
    m, n = len(OPS), 2
    per_cell = math.prod((2 + b) ** 2 * m * m * n for b in range(BLOCKS))
    assert space.size() == per_cell ** space.num_blocks
    # The lecture's (2*2*M*M*N)^B counts two candidate inputs for every block: a lower bound.
    assert (2 * 2 * m * m * n) ** BLOCKS < per_cell
    r = runner.invoke(app, ["space", "show", "nasnet"])
    assert r.exit_code == 0 and "(2+b)^2 * M^2 * N" in r.stdout and "1.620e+14" in r.stdout, r.output


def test_cells_chain_and_tables_price_them_by_operation() -> None:
    space = get_space("nasnet")
    keys = {layer.key for layer in space.distinct_layers(224)}
    for arch in [*space.sample(25, seed=3), nasnet_a_arch()]:
        net = arch.network()
        assert [x.key for x in arch.layers()] == [x.key for x in net.layers()]
        cells = [x for x in net.layers() if x.spec.op == "nasnet_cell"]
        assert len(cells) == 8 and cells[0].spec.mid == 0 and cells[-1].spec.skip == "none"
        for cell in cells:
            assert cell.macs == sum(p.macs for p in cell.parts) and cell.parts != (cell,)
        assert {x.key for x in priced_layers(net.layers())} <= keys
        assert not {x.key for x in cells} & keys  # no row for a whole cell: 10^14 of them per position


def test_mutation_changes_one_decision_and_crossover_mixes_cells() -> None:
    space = get_space("nasnet")
    rng = np.random.default_rng(0)
    a, b = space.sample(2, seed=5)
    for _ in range(50):
        child = space.mutate(a, rng)
        assert int((space.encode(child) != space.encode(a)).sum()) == 1
    mixed = space.crossover(a, b, rng)
    assert all(c in (x, y) for c, x, y in zip(mixed.blocks, a.blocks, b.blocks, strict=True))
    assert space.from_params(space.params(a)) == a


def test_exported_network_runs_like_torch_and_counts_agree(tmp_path: Path) -> None:
    arch = get_space("nasnet").sample(1, seed=11, resolution=64)[0]
    path = export_arch(arch, tmp_path / "n.onnx", seed=2)
    counts = count_onnx(path)
    net = arch.network()
    assert (counts.macs, counts.params) == (net.macs, net.params)
    x = np.random.default_rng(0).standard_normal(net.input_shape).astype(np.float32)
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    from nasprof.space.nn.common import fold_bn

    model = fold_bn(net.build(seed=2))
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4)


def test_mcu_planners_see_the_parallel_branches(tmp_path: Path) -> None:
    from nasprof.devices.mcu.graph import load_graph
    from nasprof.devices.mcu.planners import plan_memory

    path = export_arch(nasnet_a_arch(resolution=64), tmp_path / "a.onnx")
    graph = load_graph(path)
    assert {op.op_type for op in graph.ops} >= {"Slice", "Concat", "Add"}
    for model in ("per-layer", "tflm", "tinyengine"):
        plan = plan_memory(graph, model)
        # While a block's branch runs, the cell's other live states (its inputs, earlier blocks) occupy SRAM.
        assert max(row.other_bytes for row in plan.layers) > 0, model
        assert plan.peak_bytes >= max(row.input_bytes + row.output_bytes for row in plan.layers)


def test_lut_predictor_sums_the_operations_of_each_cell() -> None:
    from nasprof.predictors import LutPredictor

    space = get_space("nasnet")
    layers = space.distinct_layers(96)
    lut = LutPredictor({x.key: 0.001 * (i % 7 + 1) for i, x in enumerate(layers)}, space="nasnet",
                       resolution=96, device="synthetic")
    for arch in space.sample(5, seed=2, resolution=96):
        want = sum(lut.entries[x.key] for x in priced_layers(arch.layers()))
        assert lut.predict(arch) == pytest.approx(want)
        assert lut.predict(arch.to_string()) == pytest.approx(want)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0.1.sep3.id.add_3.0.sep3.id.add", "in1 = 3 points forward"),
        ("0.1.conv7.id.add", "unknown operation 'conv7'"),
        ("0.1.sep3.id.mul", "unknown combine 'mul'"),
        ("0.1.sep3.id", "malformed NASNet cell block 0"),
    ],
)
def test_bad_cells_are_refused(text: str, message: str, tmp_path: Path) -> None:
    with pytest.raises(SpaceError, match=message):
        parse_genotype(text)
    arch = nasnet_a_arch().to_string().replace(NASNET_A_NORMAL, text, 1)
    r = runner.invoke(app, ["export", arch, "-o", str(tmp_path / "x.onnx")])
    assert r.exit_code == 2 and message in r.stderr and "\n" not in r.stderr.strip(), r.output
    assert not (tmp_path / "x.onnx").exists()


def test_integer_genotypes_and_malformed_cells_are_refused() -> None:
    space = get_space("nasnet")
    assert space.sample(1, seed=0, resolution=32)[0].network().layers()[-2].input_shape[1:] == (2, 2)
    with pytest.raises(SpaceError, match="does not cover this space"):
        space.genotypes()
    r = runner.invoke(app, ["space", "quality", "nasnet", "--board", "stm32h743", "--n", "5"])
    assert r.exit_code == 2 and "integer genotypes hold at most" in r.stderr, r.output
    with pytest.raises(SpaceError, match="must have 5 blocks"):
        Arch("nasnet", 224, 1.0, (parse_genotype("0.1.sep3.id.add"),) * 5)


@pytest.mark.parametrize("strategy", ["evolution", "random"])
def test_search_runs_on_architecture_objects(strategy: str, tmp_path: Path) -> None:
    from nasprof.predictors import LutPredictor

    space = get_space("nasnet")
    lut = LutPredictor({x.key: 0.01 + x.macs / 1e8 for x in space.distinct_layers(96)}, space="nasnet",
                       resolution=96, device="synthetic")
    path = lut.save(tmp_path / "p.json")
    target = float(np.median(lut.predict_many(space.sample(50, seed=0, resolution=96))))
    r = runner.invoke(app, ["search", "--space", "nasnet", "--predictor", str(path), "--target-ms",
                            f"{target:.4f}", "--budget", "60", "--strategy", strategy,
                            "--json", str(tmp_path / "s.json")])
    assert r.exit_code == 0, r.output
    doc = json.loads((tmp_path / "s.json").read_text())
    assert doc["path"] != "genotypes" and doc["best"]["arch"].startswith("nasnet:96:")
