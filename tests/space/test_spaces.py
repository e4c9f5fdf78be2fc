"""Search spaces: size, seeded sampling, text/JSON forms, mutation, crossover, validation, table coverage."""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pytest

from nasprof.errors import SpaceError
from nasprof.space import Arch, Mbv2Stage, MnasBlock, get_space, list_spaces

A1_LIKE = (
    "mnasnet:224:1.0|dwsep_k3_se0_none_f1.0_l1|mb6_k3_se0_id_f1.0_l2|mb3_k5_se0.25_id_f1.0_l3|"
    "mb6_k3_se0_id_f1.0_l4|mb6_k3_se0.25_id_f1.0_l2|mb6_k5_se0.25_id_f1.0_l3|mb6_k3_se0_none_f1.0_l1"
)


def test_spaces_are_listed() -> None:
    assert list_spaces() == ["mnasnet", "mobilenetv2", "nasnet", "nb201", "regnet"]
    known = "mnasnet, mobilenetv2, nasnet, nb201, regnet"
    with pytest.raises(SpaceError, match=f"unknown search space 'nas'; known: {known}"):
        get_space("nas")

REGNET = "regnet:224:1.0|d1_w24_b1_g8_se0|d2_w64_b1_g16_se0|d4_w160_b1_g16_se0.25|d12_w384_b2_g32_se0.25"


def test_regnet_size_and_stage_layers() -> None:
    # per stage: depths x 4 widths x 2 bottlenecks x 3 group widths x 2 SE ratios
    assert get_space("regnet").size() == (2 * 48) * (3 * 48) * (3 * 48) * (3 * 48)
    arch = Arch.from_string(REGNET)
    specs = arch.network().blocks
    assert len(specs) == 1 + 2 + 4 + 12
    last = specs[-1]  # width 384, bottleneck 2 -> 192, group width 32 -> 6 groups, SE on the input width
    assert (last.cin, last.cout, last.mid, last.groups, last.se, last.skip) == (384, 384, 192, 6, 0.25, "id")
    first = specs[0]  # stride 2 and a projection at every stage's first block
    assert (first.cin, first.cout, first.stride, first.skip, first.groups) == (32, 24, 2, "proj", 3)


def test_mnasnet_size_is_the_product_of_per_block_choices() -> None:
    # 4 ops x 2 kernels x 2 SE x 3 skips x 3 filter sizes = 144 per block, times the depth choices:
    # base depths 1, 2, 3, 4, 2, 3, 1 -> {1,2}, {1,2,3}, {2,3,4}, {3,4,5}, {1,2,3}, {2,3,4}, {1,2}.
    assert get_space("mnasnet").size() == 144**7 * (2 * 3 * 3 * 3 * 3 * 3 * 2) == 1_247_968_747_541_495_808


def test_mobilenetv2_size() -> None:
    per_stage = 6**2 + 6**3 + 6**4  # depth 2, 3 or 4 with 6 (kernel, expand) choices per layer
    assert get_space("mobilenetv2").size() == per_stage**5 * 6 == 53_334_230_327_543_808


@pytest.mark.parametrize("name", ["mnasnet", "mobilenetv2", "regnet", "nasnet"])
def test_sampling_is_seeded(name: str) -> None:
    space = get_space(name)
    a, b, c = space.sample(20, seed=7), space.sample(20, seed=7), space.sample(20, seed=8)
    assert a == b
    assert a != c
    assert len({x.to_string() for x in a}) == 20


@pytest.mark.parametrize("name", ["mnasnet", "mobilenetv2", "regnet", "nasnet"])
def test_string_and_json_round_trip(name: str, tmp_path: Path) -> None:
    for arch in get_space(name).sample(10, seed=1, resolution=192, width=0.75):
        assert Arch.from_string(arch.to_string()) == arch
        assert Arch.from_json(arch.to_json()) == arch
        path = tmp_path / "arch.json"
        path.write_text(arch.to_json())
        assert Arch.from_json(path) == arch
        assert json.loads(arch.to_json())["schema_version"] == 1


def test_string_grammar_is_as_documented() -> None:
    arch = Arch.from_string(A1_LIKE)
    assert arch.blocks[2] == MnasBlock("mb3", 5, 0.25, "id", 1.0, 3)
    assert arch.to_string() == A1_LIKE
    layers = arch.layers()
    # stem + 16 searchable layers + head conv + classifier
    assert len(layers) == 1 + (1 + 2 + 3 + 4 + 2 + 3 + 1) + 2
    assert (
        layers[2].key
        == "mbconv-input:112x112x16-output:56x56x24-expand:6-kernel:3-stride:2-se:0-act:relu-skip:0"
    )
    assert (
        layers[3].key
        == "mbconv-input:56x56x24-output:56x56x24-expand:6-kernel:3-stride:1-se:0-act:relu-skip:1"
    )
    mbv2 = Arch.from_string("mobilenetv2:160:1.0|k3e6_k5e3|k7e6_k3e3|k3e3_k3e3|k5e6_k5e6|k3e6_k7e6|k3e6")
    assert mbv2.blocks[0] == Mbv2Stage(((3, 6), (5, 3)))
    assert mbv2.network().resolution == 160


def test_mutation_changes_exactly_one_factor_and_stays_valid() -> None:
    space = get_space("mnasnet")
    rng = np.random.default_rng(0)
    arch = space.sample(1, seed=0)[0]
    for _ in range(200):
        child = space.mutate(arch, rng)
        diffs = [(a, b) for a, b in zip(arch.blocks, child.blocks, strict=True) if a != b]
        assert len(diffs) == 1
        a, b = diffs[0]
        assert sum(asdict(a)[k] != asdict(b)[k] for k in asdict(a)) == 1
        space.validate(child)
        arch = child


def test_mobilenetv2_mutation_covers_depth_kernel_and_expand() -> None:
    space = get_space("mobilenetv2")
    rng = np.random.default_rng(1)
    arch = space.sample(1, seed=0)[0]
    kinds = set()
    for _ in range(100):
        child = space.mutate(arch, rng)
        (i,) = [i for i, (a, b) in enumerate(zip(arch.blocks, child.blocks, strict=True)) if a != b]
        a, b = arch.blocks[i], child.blocks[i]
        if a.depth != b.depth:
            kinds.add("depth")
        else:
            (j,) = [j for j in range(a.depth) if a.layers[j] != b.layers[j]]
            kinds.add("kernel" if a.layers[j][0] != b.layers[j][0] else "expand")
        arch = child
    assert kinds == {"depth", "kernel", "expand"}


def test_crossover_takes_each_block_from_a_parent() -> None:
    space = get_space("mnasnet")
    a, b = space.sample(2, seed=3)
    child = space.crossover(a, b, np.random.default_rng(0))
    assert all(c in (x, y) for c, x, y in zip(child.blocks, a.blocks, b.blocks, strict=True))
    assert child.blocks != a.blocks and child.blocks != b.blocks


def test_encode_is_a_fixed_length_index_vector() -> None:
    space = get_space("mnasnet")
    arch = Arch.from_string(A1_LIKE)
    code = space.encode(arch)
    assert code.shape == (42,)
    assert code[:6].tolist() == [1, 0, 0, 0, 1, 0]  # dwsep, k3, se0, none, f1.0, l1 (first depth choice)
    assert get_space("mobilenetv2").encode(get_space("mobilenetv2").sample(1, seed=0)[0]).shape == (21,)


@pytest.mark.parametrize(("name", "count"), [("mnasnet", 2149), ("mobilenetv2", 70), ("regnet", 649)])
def test_distinct_layers_cover_every_sampled_architecture(name: str, count: int) -> None:
    space = get_space(name)
    distinct = space.distinct_layers(224)
    keys = {layer.key for layer in distinct}
    assert len(keys) == len(distinct) == count
    for arch in space.sample(300, seed=11):
        missing = [layer.key for layer in arch.layers() if layer.key not in keys]
        assert not missing


def test_distinct_layers_follow_width_and_resolution() -> None:
    space = get_space("mobilenetv2")
    layers = space.distinct_layers(160, width=0.5)
    assert layers[0].input_shape == (3, 160, 160)
    for arch in space.sample(50, seed=2, resolution=160, width=0.5):
        assert {x.key for x in arch.layers()} <= {x.key for x in layers}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("mnasnet", "malformed architecture string"),
        ("mnasnet:224|mb6_k3_se0_id_f1.0_l2", "expected SPACE:RESOLUTION:WIDTH"),
        ("mnasnet:abc:1.0|mb6_k3_se0_id_f1.0_l2", "resolution must be an integer"),
        ("nas:224:1.0|mb6_k3_se0_id_f1.0_l2", "unknown search space 'nas'"),
        ("mnasnet:224:1.0|mb6_k3", "malformed mnasnet block 0"),
        ("mnasnet:224:1.0|mb6_k3_se0_id_f1.0_l2", "have 7 blocks, got 1"),
        (A1_LIKE.replace("mb3_k5", "mb3_k7"), "block 2: kernel 7 is outside the space; allowed: 3, 5"),
        (A1_LIKE.replace("_l4", "_l9"), "block 3: layers 9 is outside the space; allowed: 3, 4, 5"),
        (A1_LIKE.replace("f1.0_l3|mb6_k3", "f0.5_l3|mb6_k3"), "filters 0.5 is outside the space"),
        ("mobilenetv2:224:1.0|k3e6|k3e6_k3e6|k3e6_k3e6|k3e6_k3e6|k3e6_k3e6|k3e6", "depth 1 is outside"),
        (
            "mobilenetv2:224:1.0|k3e5_k3e6|k3e6_k3e6|k3e6_k3e6|k3e6_k3e6|k3e6_k3e6|k3e6",
            "layer k3e5 is outside",
        ),
        (
            "mobilenetv2:224:1.0|3x6|k3e6_k3e6|k3e6_k3e6|k3e6_k3e6|k3e6_k3e6|k3e6",
            "malformed mobilenetv2 stage 0",
        ),
        (REGNET.replace("d4_w160", "d5_w160"), "stage 2: depth 5 is outside the space; allowed: 2, 4, 7"),
        (REGNET.replace("g16_se0|", "g12_se0|"), "group 12 is outside the space; allowed: 8, 16, 32"),
        (REGNET.replace("d1_w24", "d1w24"), "malformed regnet stage 0"),
        (A1_LIKE.replace(":224:", ":8:"), "resolution must be an integer in [32, 1024]"),
    ],
)
def test_bad_architecture_strings_raise_space_error(text: str, message: str) -> None:
    with pytest.raises(SpaceError) as info:
        Arch.from_string(text)
    assert message in str(info.value)


def test_bad_architecture_json_raises_space_error(tmp_path: Path) -> None:
    good = json.loads(Arch.from_string(A1_LIKE).to_json())
    with pytest.raises(SpaceError, match="malformed architecture JSON"):
        Arch.from_json("{not json")
    with pytest.raises(SpaceError, match="schema_version"):
        Arch.from_json(dict(good, schema_version=99))
    with pytest.raises(SpaceError, match="lacks blocks"):
        Arch.from_json({k: v for k, v in good.items() if k != "blocks"})
    bad = dict(good, blocks=[dict(good["blocks"][0], se=0.5), *good["blocks"][1:]])
    with pytest.raises(SpaceError, match="se 0.5 is outside the space"):
        Arch.from_json(bad)
    with pytest.raises(SpaceError, match="does not exist"):
        Arch.from_json(tmp_path / "missing.json")


def test_arch_with_a_foreign_block_is_rejected() -> None:
    arch = Arch.from_string(A1_LIKE)
    with pytest.raises(SpaceError, match="outside the space"):
        replace(arch, blocks=(replace(arch.blocks[0], op="transformer"), *arch.blocks[1:]))


@pytest.mark.parametrize("name", ["mnasnet", "mobilenetv2", "regnet", "nasnet"])
def test_out_of_range_resolution_width_and_seed_are_refused(name: str) -> None:
    # Found in QA: resolution 0 silently meant the default (`resolution or default`), width 0 gave a table of
    # 8-channel layers, and a negative seed ended in numpy's bare ValueError.
    space = get_space(name)
    with pytest.raises(SpaceError, match="resolution must be an integer in \\[32, 1024\\], got 0"):
        space.sample(1, seed=0, resolution=0)
    with pytest.raises(SpaceError, match="resolution must be an integer in \\[32, 1024\\], got 0"):
        space.distinct_layers(0)
    with pytest.raises(SpaceError, match="width multiplier must be in \\[0.1, 4.0\\], got 0"):
        space.distinct_layers(224, width=0)
    with pytest.raises(SpaceError, match="seed must be a non-negative integer, got -1"):
        space.sample(1, seed=-1)
    assert space.sample(1, seed=0)[0].resolution == space.default_resolution  # None still means the default
