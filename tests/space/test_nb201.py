"""NAS-Bench-201: strings, options, counts against the exported graph, the reference's graph structure,
isomorphism classes and the CLI."""

from __future__ import annotations

import collections
from pathlib import Path

import onnx
import pytest
from conftest import cli_runner

from nasprof.cli import app
from nasprof.errors import SpaceError
from nasprof.space import Arch, count_onnx, export_arch, get_space
from nasprof.space.parse import format_options, parse_arch
from nasprof.space.spaces.nb201 import Nb201Space

BEST = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
MIXED = "|none~0|+|skip_connect~0|nor_conv_1x1~1|+|avg_pool_3x3~0|none~1|nor_conv_3x3~2|"
ZEROS = "|skip_connect~0|+|none~0|none~1|+|none~0|none~1|none~2|"


def space() -> Nb201Space:
    s = get_space("nb201")
    assert isinstance(s, Nb201Space)
    return s


def test_string_round_trip_and_options() -> None:
    a = Arch.from_string(BEST)
    assert a.to_string() == BEST and a.space == "nb201" and a.resolution == 32
    assert a.options == (("C", 16), ("N", 5), ("input", (3, 32, 32)), ("outputs", 100))
    b = parse_arch(BEST, "nb201", input="1x52x16", outputs=18)
    assert b.to_string() == BEST and b.resolution == 52 and b.option("input") == (1, 52, 16)
    assert format_options(b) == "--input 1x52x16 --outputs 18" and format_options(a) == ""
    assert Arch.from_json(b.to_json()) == b
    assert parse_arch(BEST, input=(1, 88, 88), outputs=1, C=8, N=2).options == (
        ("C", 8), ("N", 2), ("input", (1, 88, 88)), ("outputs", 1))
    assert [space().encode(a).tolist()] == space().genotypes().encode([a]).tolist()
    assert space().from_params(space().params(a)) == a


@pytest.mark.parametrize(
    ("text", "opts", "message"),
    [
        (BEST.replace("avg_pool_3x3", "max_pool_3x3"), {}, "unknown operation 'max_pool_3x3'"),
        (BEST.replace("skip_connect~2", "skip_connect~1"), {}, "must read node 2"),
        ("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|", {}, "it has 2 node(s)"),
        ("mnasnet:224:1.0|x", {}, "start and end with '|'"),
        (BEST, {"input": "3x-32x32"}, "below 1"),
        (BEST, {"input": "3x30x32"}, "multiples of 4"),
        (BEST, {"input": "3x32"}, "CxHxW"),
        (BEST, {"outputs": 0}, "--outputs"),
    ],
)
def test_bad_strings_and_options_are_refused(text: str, opts: dict, message: str) -> None:
    with pytest.raises(SpaceError, match="e.g.") as info:
        parse_arch(text, "nb201", **opts)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_options_are_refused_for_other_spaces() -> None:
    text = get_space("mobilenetv2").sample(1, seed=0)[0].to_string()
    with pytest.raises(SpaceError, match="apply to nb201"):
        parse_arch(text, input="3x32x32")


@pytest.mark.parametrize(
    ("text", "opts"),
    [(BEST, {}), (MIXED, {"input": "1x52x16", "outputs": 18}),
     (ZEROS, {"input": "1x88x88", "outputs": 1, "N": 2})],
)
def test_analytic_counts_equal_the_exported_graph(text: str, opts: dict, tmp_path: Path) -> None:
    arch = parse_arch(text, "nb201", **opts)
    assert list(arch.layers()) == arch.network().layers()
    path = export_arch(arch, tmp_path / "a.onnx")
    counts = count_onnx(path)
    assert (counts.macs, counts.params) == (arch.macs, arch.params)
    dims = [d.dim_value for d in onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, *arch.option("input")]


def test_exported_ops_follow_the_reference_structure(tmp_path: Path) -> None:
    # TinyNetwork(C=16, N=5) of MIXED: edges none(0->1) skip(0->2) conv1x1(1->2) avg(0->3) none(1->3)
    # conv3x3(2->3). Per cell: Mul x2 (the two `none`), Relu+Conv x2 (conv1x1, conv3x3), AveragePool x1; node
    # sums: node 1 has one term (sum's leading 0 leaves no node), node 2 two (1 Add), node 3 three (2 Adds).
    # 15 cells: Mul 30, Conv 30, Relu 30, AveragePool 15, Add 45.
    # Stem: Conv (BN folded). Two ResNetBasicblocks: Relu-Conv, Relu-Conv, AvgPool-Conv, one Add each.
    # lastact: BatchNormalization (after a sum: nothing to fold into) + Relu; GlobalAveragePool, Reshape,
    # Gemm.
    path = export_arch(parse_arch(MIXED, "nb201"), tmp_path / "a.onnx")
    ops = collections.Counter(n.op_type for n in onnx.load(str(path)).graph.node if n.op_type != "Constant")
    assert ops == {"Conv": 1 + 30 + 2 * 3, "Relu": 30 + 2 * 2 + 1, "Mul": 30, "AveragePool": 15 + 2,
                   "Add": 45 + 2, "BatchNormalization": 1, "GlobalAveragePool": 1, "Reshape": 1, "Gemm": 1}


def test_enumeration_and_isomorphism_classes() -> None:
    s = space()
    assert s.size() == 15_625 and int(s.genotypes().sizes.prod()) == 15_625
    archs = s.all_archs()
    assert len(set(archs)) == 15_625
    reps = {s.canonical(a) for a in archs}
    assert len(reps) == s.num_classes() == 6_466
    # Node 1 is read only through `none` edges: its operation does not change the class (NB201's rule).
    dead = "|{}~0|+|avg_pool_3x3~0|none~1|+|skip_connect~0|none~1|nor_conv_3x3~2|"
    assert s.canonical(Arch.from_string(dead.format("nor_conv_3x3"))) == s.canonical(
        Arch.from_string(dead.format("nor_conv_1x1"))
    )
    picks = s.unique(50, seed=3)
    assert len({s.canonical(a) for a in picks}) == 50


def test_cli_export_count_and_sample(tmp_path: Path) -> None:
    runner = cli_runner
    out = tmp_path / "x.onnx"
    result = runner.invoke(app, ["export", BEST, "--space", "nb201", "--input", "1x52x16", "--outputs", "18",
                                 "-o", str(out)])
    assert result.exit_code == 0, result.output
    arch = parse_arch(BEST, input="1x52x16", outputs=18)
    assert count_onnx(out).macs == arch.macs
    result = runner.invoke(app, ["count", BEST, "--input", "1x52x16", "--outputs", "18", "--json", "-"])
    assert result.exit_code == 0 and f'"macs": {arch.macs}' in result.stdout
    result = runner.invoke(app, ["space", "sample", "nb201", "--n", "2", "--unique"])
    assert result.exit_code == 0 and "|+|" in result.stdout
    result = runner.invoke(app, ["export", BEST.replace("~2", "~1"), "--space", "nb201", "-o", str(out)])
    assert result.exit_code == 2 and "must read node 2" in result.output
