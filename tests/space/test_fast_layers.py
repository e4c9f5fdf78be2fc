"""The block-by-block layer path (``Space.block_layers`` / ``Arch.layers``) equals the Network path exactly,
and the caches behind it change nothing a user can see: sampling streams, strings, validation errors."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from nasprof.errors import SpaceError
from nasprof.space import Arch, Mbv2Stage, MnasBlock, get_space

#: (resolution, width) pairs: the default, and ones that change every shape and channel count.
SHAPES = [(224, 1.0), (160, 0.5), (96, 1.4), (32, 0.35)]


@pytest.mark.parametrize("name", ["mnasnet", "mobilenetv2", "regnet"])
@pytest.mark.parametrize(("resolution", "width"), SHAPES)
def test_fast_layers_equal_the_network_layers(name: str, resolution: int, width: float) -> None:
    space = get_space(name)
    for arch in space.sample(100, seed=5, resolution=resolution, width=width):
        fast = arch.layers()  # first: nothing on this Arch has built its Network yet
        slow = arch.network().layers()
        assert [x.key for x in fast] == [x.key for x in slow]
        assert all(x is y for x, y in zip(fast, slow, strict=True))  # the same shared instances
        assert arch.macs == arch.network().macs and arch.params == arch.network().params


@pytest.mark.parametrize("name", ["mnasnet", "mobilenetv2", "regnet"])
def test_block_layers_are_cached_slices_of_the_network(name: str) -> None:
    space = get_space(name)
    arch = space.sample(1, seed=2)[0]
    layers = arch.network().layers()
    stem = space.stem_layers(arch.resolution, arch.width)
    assert list(stem) == layers[: len(stem)]
    pos, shape = len(stem), stem[-1].output_shape
    for i, block in enumerate(arch.blocks):
        part = space.block_layers(i, block, shape, arch.width)
        assert part is space.block_layers(i, block, shape, arch.width)  # one cached tuple
        assert list(part) == layers[pos : pos + len(part)]
        pos, shape = pos + len(part), part[-1].output_shape
    assert list(space.head_layers(shape, arch.width)) == layers[pos:]


@pytest.mark.parametrize(
    ("name", "digest"), [("mnasnet", "cb106ec42399c134"), ("mobilenetv2", "2388a295fc89e6d0")]
)
def test_sampling_mutation_and_crossover_streams_are_unchanged(name: str, digest: str) -> None:
    """Digest of 100 samples (seed 3), each one's mutation and crossover, from before blocks were interned:
    the same seed must keep giving the same architectures."""
    space = get_space(name)
    rng = np.random.default_rng(1)
    h = hashlib.sha256()
    for a in space.sample(100, seed=3):
        m = space.mutate(a, rng)
        c = space.crossover(a, m, rng)
        h.update("\n".join([a.to_string(), m.to_string(), c.to_string(), ""]).encode())
    assert h.hexdigest()[:16] == digest


def test_interned_blocks_are_shared_between_architectures() -> None:
    space = get_space("mnasnet")
    archs = space.sample(400, seed=0)
    by_value: dict[MnasBlock, MnasBlock] = {}
    for a in archs:
        for b in a.blocks:
            assert by_value.setdefault(b, b) is b
    child = space.mutate(archs[0], np.random.default_rng(0))
    assert all(by_value.get(b, b) is b for b in child.blocks)


def test_hand_built_blocks_work_like_parsed_ones() -> None:
    """Blocks made by hand (a stage from lists, a new MnasBlock object) take the cached path too."""
    mb = get_space("mobilenetv2")
    text = "mobilenetv2:224:1.0|k3e6_k5e3|k7e6_k3e3|k3e3_k3e3|k5e6_k5e6|k3e6_k7e6|k3e6"
    parsed = Arch.from_string(text)
    by_hand = Arch(
        "mobilenetv2", 224, 1.0, tuple(Mbv2Stage([list(x) for x in s.layers]) for s in parsed.blocks)
    )
    assert by_hand == parsed and by_hand.to_string() == text
    assert [x.key for x in by_hand.layers()] == [x.key for x in parsed.network().layers()]
    assert mb.mutate(by_hand, 0).space == "mobilenetv2"
    a = get_space("mnasnet").sample(1, seed=4)[0]
    fresh = Arch("mnasnet", 224, 1.0, tuple(MnasBlock(**vars(b)) for b in a.blocks))
    assert fresh.layers() == a.layers() and fresh.to_string() == a.to_string()


def test_validation_still_names_a_bad_block_after_good_ones_were_cached() -> None:
    space = get_space("mnasnet")
    good = space.sample(1, seed=0)[0]
    bad = MnasBlock("mb6", 7, 0.0, "id", 1.0, 2)
    with pytest.raises(SpaceError, match="kernel 7 is outside the space; allowed: 3, 5"):
        Arch("mnasnet", 224, 1.0, (bad, *good.blocks[1:]))
    with pytest.raises(SpaceError, match="must be a MnasBlock, got dict"):
        Arch("mnasnet", 224, 1.0, ({"op": "mb6"}, *good.blocks[1:]))
    with pytest.raises(SpaceError, match="must be a MnasBlock, got list"):
        Arch("mnasnet", 224, 1.0, (["unhashable"], *good.blocks[1:]))
