"""Integer genotypes: sampling, variation, decode/encode and chain tables, against the architectures."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from nasprof.errors import SpaceError
from nasprof.space import get_space
from nasprof.space.genotype import Genotypes

SPACES = ["mnasnet", "mobilenetv2", "regnet"]
RES = 128


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


@pytest.mark.parametrize("name", SPACES)
def test_decode_encode_round_trip(name: str) -> None:
    space = get_space(name)
    gt = space.genotypes()
    codes = gt.sample(300, _rng())
    archs = gt.decode(codes, RES)
    assert all(a.space == name and a.resolution == RES for a in archs)
    again = gt.decode(gt.encode(archs), RES)
    assert [a.to_string() for a in again] == [a.to_string() for a in archs]
    # Decoding agrees with the named-decision inverse, digit by digit.
    digits = gt.digits(codes)
    for row, arch in zip(digits[:20], archs[:20], strict=True):
        params = space.params(arch)
        for g, group in enumerate(gt.groups):
            for d, (decision, values) in enumerate(group):
                if decision in params:
                    assert params[decision] == values[row[g, d]]


@pytest.mark.parametrize("name", SPACES)
def test_sampling_is_uniform_and_does_not_depend_on_batches(name: str) -> None:
    gt = get_space(name).genotypes()
    whole = gt.sample(1000, _rng(5))
    rng = _rng(5)
    parts = np.concatenate([gt.sample(300, rng), gt.sample(1, rng), gt.sample(699, rng)])
    np.testing.assert_array_equal(whole, parts)
    digits = gt.digits(gt.sample(20_000, _rng(1)))
    for g, group in enumerate(gt.groups):
        for d, (decision, values) in enumerate(group):
            share = np.bincount(digits[:, g, d], minlength=len(values)) / digits.shape[0]
            assert np.abs(share - 1 / len(values)).max() < 0.02, decision


@pytest.mark.parametrize("name", SPACES)
def test_mutation_changes_one_existing_decision(name: str) -> None:
    space = get_space(name)
    gt = space.genotypes()
    codes = gt.sample(400, _rng(2))
    children = gt.mutate(codes, _rng(3))
    for parent, child in zip(gt.decode(codes, RES), gt.decode(children, RES), strict=True):
        a, b = space.params(parent), space.params(child)
        changed = [k for k in a.keys() & b.keys() if a[k] != b[k]]
        assert len(changed) == 1, (parent.to_string(), child.to_string())
        if a.keys() != b.keys():  # a depth change adds or drops layers, and changes nothing else
            assert changed[0].endswith("depth")


def test_crossover_takes_whole_blocks_from_either_parent() -> None:
    gt = get_space("mnasnet").genotypes()
    a, b = gt.sample(200, _rng(4)), gt.sample(200, _rng(5))
    child = gt.crossover(a, b, _rng(6))
    assert ((child == a) | (child == b)).all()
    assert (child != a).any() and (child != b).any()


def _fake_cost(layer: object) -> float:
    """A per-layer number that differs between layers (the key's checksum), to compare sums exactly."""
    return zlib.crc32(layer.key.encode()) / 2**32  # type: ignore[attr-defined]


@pytest.mark.parametrize(("name", "res", "width"), [("mnasnet", RES, 1.0), ("mobilenetv2", RES, 1.0),
                                                     ("regnet", RES, 1.0), ("mnasnet", 160, 0.75)])
def test_chain_tables_sum_exactly_the_layers_of_each_architecture(name: str, res: int, width: float) -> None:
    space = get_space(name)
    gt = space.genotypes()
    layout = space.chain_layout(res, width)
    codes = gt.sample(250, _rng(7))
    archs = gt.decode(codes, res, width)
    np.testing.assert_array_equal(layout.macs(codes), [a.macs for a in archs])
    table = layout.table(_fake_cost, lambda layer: 1.0, constant=(0.5, 0.0))
    values = table(codes)
    expected = [0.5 + sum(_fake_cost(x) for x in a.layers()) for a in archs]
    np.testing.assert_allclose(values[0], expected, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(values[1], [len(a.layers()) for a in archs])
    assert table.complete
    assert space.chain_layout(res, width) is layout  # built once per resolution and width


def test_bad_genotypes_are_refused_with_the_expected_shape() -> None:
    gt = get_space("mnasnet").genotypes()
    good = gt.sample(3, _rng())
    with pytest.raises(SpaceError, match=r"shape \(n, 7\)"):
        gt.check(good[:, :5])
    with pytest.raises(SpaceError, match="integer array"):
        gt.check(good.astype(np.float64))
    bad = good.copy()
    bad[1, 4] = int(gt.sizes[4])
    with pytest.raises(SpaceError, match="block 4 must lie in 0..431"):
        gt.decode(bad)
    bad[1, 4] = -1
    with pytest.raises(SpaceError, match="block 4"):
        get_space("mnasnet").chain_layout(RES).macs(bad)


def test_a_space_without_named_decisions_has_no_genotypes() -> None:
    from nasprof.space.spaces.mnasnet import MnasNetSpace

    class Unnamed(MnasNetSpace):
        name = "unnamed"

        def decisions(self):  # type: ignore[no-untyped-def]
            return super(MnasNetSpace, self).decisions()

    with pytest.raises(SpaceError, match="does not name its decisions"):
        Genotypes(Unnamed())
