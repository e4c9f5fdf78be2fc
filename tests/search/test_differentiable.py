"""Differentiable expected costs: exact against the predictor, the MACs count and the MCU Flash estimate;
gradients, derivation, sampling, bad input and the example's λ sweep."""

from __future__ import annotations

import importlib.util
import itertools
import math
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from nasprof.errors import InputError, PredictorError  # noqa: E402
from nasprof.predictors import LutPredictor  # noqa: E402
from nasprof.search.constraints import McuArchMemory  # noqa: E402
from nasprof.search.differentiable import (  # noqa: E402
    DecisionSpace,
    ExpectedFlash,
    ExpectedLatency,
    ExpectedMacs,
    derive,
    one_hot,
    sample_arch,
)
from nasprof.search.differentiable._slots import slot_table  # noqa: E402
from nasprof.space import Arch, get_space  # noqa: E402

RES = 224
SPACES = ("mnasnet", "mobilenetv2")
ROOT = Path(__file__).resolve().parents[2]


def _predictor(space: str, resolution: int = RES, width: float = 1.0) -> LutPredictor:
    """A distinct latency per key, and every calibration term ``predict`` applies (overhead, per-network
    constant, family factors, cost per weight MB, in-network ratios on half the keys)."""
    layers = get_space(space).distinct_layers(resolution, width)
    rng = np.random.default_rng(len(layers))
    entries = {x.key: 0.1 + 0.001 * i + float(rng.uniform(0, 0.5)) for i, x in enumerate(layers)}
    return LutPredictor(
        entries,
        overhead_ms=0.05,
        offset_ms=-0.02,
        scale=1.1,
        group_factors={"mbconv": 1.3, "conv": 0.9},
        ms_per_weight_mb=0.5,
        weight_mb={x.key: x.params * 4 / 1e6 for x in layers},
        layer_ratios={x.key: float(rng.uniform(0.5, 2.0)) for x in layers[::2]},
        space=space,
        resolution=resolution,
        device="synthetic",
    )


@pytest.fixture(scope="module")
def latency() -> dict[str, ExpectedLatency]:
    return {name: ExpectedLatency(_predictor(name), name) for name in SPACES}


def _assert_close(got: float, want: float) -> None:
    assert abs(got - want) <= 1e-12 * abs(want), (got, want)


# -- exactness -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", SPACES)
def test_slots_cover_exactly_the_distinct_layers(name: str) -> None:
    space = get_space(name)
    table = slot_table(space, RES, 1.0)
    assert {x.key for x in table.layers} == {x.key for x in space.distinct_layers(RES)}
    assert [n for n, _ in DecisionSpace(name).decisions()] == [n for n, _ in space.decisions()]


@pytest.mark.parametrize(("name", "resolution", "width"), [(s, RES, 1.0) for s in SPACES]
                         + [("mobilenetv2", 160, 0.75)])
def test_one_hot_equals_predict_on_samples(name: str, resolution: int, width: float) -> None:
    p = _predictor(name, resolution, width)
    lat = ExpectedLatency(p, name, width=width)
    assert lat.resolution == resolution  # the predictor's
    for arch in get_space(name).sample(60, seed=1, resolution=resolution, width=width):
        _assert_close(float(lat(one_hot(arch))), p.predict(arch))


def _arch_with(name: str, fixed: dict[str, Any], rng: np.random.Generator) -> Arch:
    """An architecture taking the ``fixed`` decision values and random others."""
    params = {n: v[int(rng.integers(len(v)))] for n, v in get_space(name).decisions()}
    return get_space(name).from_params({**params, **fixed}, RES)


@pytest.mark.parametrize("name", SPACES)
def test_one_hot_equals_predict_for_every_key(name: str, latency: dict[str, ExpectedLatency]) -> None:
    """Every distinct key of the space sits in at least one architecture checked here: one is built from
    the decisions of the first table row holding a key no earlier architecture held."""
    lat, table = latency[name], slot_table(get_space(name), RES, 1.0)
    p, m, rng = lat.predictor, table.max_choices, np.random.default_rng(0)
    covered: set[str] = set()
    checked = 0
    for row, layer in zip(table.index, table.layers, strict=True):
        if layer.key in covered:
            continue
        fixed = {table.names[i // m]: table.choices[i // m][i % m] for i in row if i != table.pad}
        arch = _arch_with(name, fixed, rng)
        keys = [x.key for x in arch.layers()]
        assert layer.key in keys
        covered.update(keys)
        _assert_close(float(lat(one_hot(arch))), p.predict(arch))
        checked += 1
    assert covered == {x.key for x in get_space(name).distinct_layers(RES)}
    assert checked < len(covered) / 3  # each architecture brings several new keys


# Decisions left free (random logits), the others one-hot: they couple blocks (filters -> next block's
# input; the last filters -> the head) and depths (layer counts, a depth with its deeper layers' choices).
FREE = {
    "mnasnet": ("b2.filters", "b3.skip", "b3.layers", "b3.op", "b6.filters"),
    "mobilenetv2": ("s1.depth", "s1.l3.kernel", "s1.l2.expand", "s1.l0.kernel", "s5.l0.expand"),
}


@pytest.mark.parametrize("name", SPACES)
def test_expectation_is_exact_over_the_joint_of_free_decisions(
    name: str, latency: dict[str, ExpectedLatency]
) -> None:
    lat, space = latency[name], get_space(name)
    base = space.sample(1, seed=5, resolution=RES)[0]
    names = [n for n, _ in lat.decisions()]
    choices = dict(lat.decisions())
    free = FREE[name]
    # Every other decision one-hot, inactive ones (layers past a depth) included: a free depth uses them.
    fixed = {n: v for n, v in _all_params(space, base).items() if n not in free}
    alpha = lat.new_alpha().detach()
    for n, v in fixed.items():
        alpha[names.index(n), choices[n].index(v)] = 1e3
    rng = np.random.default_rng(1)
    for n in free:
        alpha[names.index(n), : len(choices[n])] = torch.from_numpy(rng.normal(0, 1.5, len(choices[n])))
    probs = lat.decision_space.probs(alpha)
    want = 0.0
    for combo in itertools.product(*(range(len(choices[n])) for n in free)):
        pick = {n: choices[n][c] for n, c in zip(free, combo, strict=True)}
        weight = math.prod(float(probs[names.index(n), c]) for n, c in zip(free, combo, strict=True))
        want += weight * lat.predictor.predict(space.from_params({**fixed, **pick}, RES))
    _assert_close(float(lat(alpha)), want)


def _all_params(space: Any, arch: Arch) -> dict[str, Any]:
    """Every decision's value, inactive ones (layers past a depth) set to the first choice."""
    return {**{n: v[0] for n, v in space.decisions()}, **space.params(arch)}


def test_macs_and_flash_equal_the_architectures_own() -> None:
    for name in SPACES:
        space = get_space(name)
        macs, flash = ExpectedMacs(name), ExpectedFlash(name, "stm32f746")
        sizes = McuArchMemory("stm32f746")
        for arch in space.sample(15, seed=2, resolution=RES):
            alpha = one_hot(arch)
            assert float(macs(alpha)) == arch.macs
            assert float(flash(alpha)) == sizes(arch)[1]
        # The expectation lies between the extremes of the space's architectures.
        with torch.no_grad():
            assert 0 < float(macs(macs.new_alpha())) < max(a.macs for a in space.sample(50, seed=3))


# -- gradients -----------------------------------------------------------------------------------------------
def test_gradcheck_padded_and_list_forms(latency: dict[str, ExpectedLatency]) -> None:
    gen = torch.Generator().manual_seed(0)
    lat = latency["mnasnet"]
    alpha = (0.5 * torch.randn(lat.decision_space.shape, generator=gen, dtype=torch.float64)).requires_grad_()
    assert torch.autograd.gradcheck(lat, (alpha,), eps=1e-6, atol=1e-7, rtol=1e-6)
    lat = latency["mobilenetv2"]
    rows = tuple(0.5 * torch.randn(len(c), generator=gen, dtype=torch.float64).requires_grad_()
                 for _, c in lat.decisions())
    assert torch.autograd.gradcheck(lambda *r: lat(list(r)), rows, eps=1e-6, atol=1e-7, rtol=1e-6)
    macs = ExpectedMacs("mobilenetv2")

    def scaled(*r: Any) -> Any:  # MACs reach 1e8: compare relative to the scale of the output
        return macs(list(r)) / 1e8

    assert torch.autograd.gradcheck(scaled, rows, eps=1e-6, atol=1e-7, rtol=1e-6)


def test_gradient_points_to_faster_choices(latency: dict[str, ExpectedLatency]) -> None:
    """dE/dα_c = p_c · (E[LAT | c] − E[LAT]): the gradient ranks a decision's choices by their latency."""
    lat = latency["mnasnet"]
    alpha = lat.new_alpha()
    lat(alpha).backward()
    assert alpha.grad is not None
    d = [n for n, _ in lat.decisions()].index("b3.filters")
    conditional = []
    for c in range(3):
        a = lat.new_alpha().detach()
        a[d, c] = 1e3
        conditional.append(float(lat(a)))
    with torch.no_grad():
        mean = float(lat(lat.new_alpha()))
    np.testing.assert_allclose(alpha.grad[d, :3].numpy(), (np.array(conditional) - mean) / 3, rtol=1e-9)


# -- derivation and sampling ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", SPACES)
def test_derive_inverts_one_hot(name: str, latency: dict[str, ExpectedLatency]) -> None:
    for arch in get_space(name).sample(20, seed=4, resolution=RES):
        assert latency[name].derive(one_hot(arch)) == arch
        assert derive(one_hot(arch), name, resolution=RES) == arch


def test_sampling_follows_softmax_and_gates_give_the_sampled_cost(
    latency: dict[str, ExpectedLatency],
) -> None:
    lat = latency["mobilenetv2"]
    gen = torch.Generator().manual_seed(11)
    alpha = torch.randn(lat.decision_space.shape, generator=gen, dtype=torch.float64)
    n = 1500
    counts = torch.zeros(lat.decision_space.shape, dtype=torch.float64)
    first = [lat.sample_arch(alpha, torch.Generator().manual_seed(3)).arch for _ in range(2)]
    assert first[0] == first[1]  # seeded: repeatable
    for _ in range(n):
        s = lat.sample_arch(alpha, gen)
        counts[torch.arange(len(s.indices)), torch.tensor(s.indices)] += 1
    probs = lat.decision_space.probs(alpha)
    assert float((counts / n - probs).abs().max()) < 0.05  # 4 standard errors at n = 1500
    # Hard gates are exactly one-hot: the expected cost of the gates is the sampled architecture's.
    a = alpha.clone().requires_grad_()
    s = sample_arch(a, "mobilenetv2", torch.Generator().manual_seed(5))
    assert set(s.gates.detach().unique().tolist()) <= {0.0, 1.0}
    cost = lat.expected(s.gates)
    _assert_close(float(cost.detach()), lat.predictor.predict(s.arch))
    cost.backward()
    assert a.grad is not None and bool(a.grad.abs().sum() > 0)  # straight-through gradient
    soft = lat.sample_arch(alpha, torch.Generator().manual_seed(5), hard=False, tau=0.5)
    assert soft.arch == s.arch  # the same noise: the same draw, soft gates around it
    assert torch.allclose(soft.gates.sum(dim=1), torch.ones(len(s.indices), dtype=torch.float64))


# -- bad input -----------------------------------------------------------------------------------------------
def _one_line_error(exc_type: type[Exception], fn: Any, match: str) -> None:
    with pytest.raises(exc_type, match=match) as info:
        fn()
    assert "\n" not in str(info.value)


def test_bad_alpha_is_refused_with_what_is_expected(latency: dict[str, ExpectedLatency]) -> None:
    lat, other = latency["mnasnet"], latency["mobilenetv2"]
    good = lat.new_alpha().detach()
    _one_line_error(InputError, lambda: lat(torch.zeros(42, 3)), r"shape \(42, 3\); mnasnet α is a \(42, 4\)")
    _one_line_error(InputError, lambda: lat(other.new_alpha()), "shape of α for the mobilenetv2 space")
    rows = [torch.zeros(len(c)) for _, c in other.decisions()]
    _one_line_error(InputError, lambda: lat(rows), "holds 48 rows.*mobilenetv2")
    rows = [torch.zeros(len(c)) for _, c in lat.decisions()]
    rows[3] = torch.zeros(2)
    _one_line_error(InputError, lambda: lat(rows), r"row 3 \(b0.skip\) has shape \(2,\).*3 logits")
    _one_line_error(InputError, lambda: lat({"s0.depth": torch.zeros(3)}), "unknown decision 's0.depth'")
    for bad in (math.nan, math.inf, -math.inf):
        alpha = good.clone()
        alpha[7, 1] = bad
        _one_line_error(InputError, lambda a=alpha: lat(a), r"row 7 \(b1.kernel\) holds a non-finite logit")
    _one_line_error(InputError, lambda: lat("mb6"), "α is a str")
    padded = good.clone()
    padded[1, 3] = math.nan  # b0.kernel has 2 choices: columns 2 and 3 are padding, ignored
    assert math.isfinite(float(lat(padded)))
    _one_line_error(InputError, lambda: lat.expected(torch.zeros(3)), r"must be a \(42, 4\) tensor")


def test_bad_architectures_and_settings_are_refused(latency: dict[str, ExpectedLatency]) -> None:
    lat = latency["mnasnet"]
    mbv2 = get_space("mobilenetv2").sample(1, seed=0)[0]
    _one_line_error(InputError, lambda: lat.one_hot(mbv2), "from space 'mobilenetv2'")
    small = get_space("mnasnet").sample(1, seed=0, resolution=160)[0]
    _one_line_error(InputError, lambda: lat.one_hot(small), "resolution 160.*for resolution 224")
    arch = get_space("mnasnet").sample(1, seed=0)[0]
    _one_line_error(InputError, lambda: one_hot(arch, scale=math.inf), "scale must be a finite number > 0")
    _one_line_error(InputError, lambda: lat.sample_arch(lat.new_alpha(), tau=0.0), "tau must be")
    _one_line_error(PredictorError, lambda: ExpectedLatency(latency["mobilenetv2"].predictor, "mnasnet"),
                    "table is for space 'mobilenetv2', not 'mnasnet'")
    _one_line_error(PredictorError, lambda: ExpectedLatency(lat.predictor, resolution=160),
                    "resolution 224, not 160")
    partial = LutPredictor(dict(list(lat.predictor.entries.items())[:100]), space="mnasnet", resolution=RES,
                           device="synthetic")
    _one_line_error(PredictorError, lambda: ExpectedLatency(partial), "no entry for .* more layers.*build it")
    _one_line_error(InputError, lambda: ExpectedLatency(object()), "pass a LutPredictor")  # type: ignore[arg-type]


# -- packaging and the example -------------------------------------------------------------------------------
def test_import_nasprof_search_leaves_torch_alone() -> None:
    code = "import sys, nasprof.search; assert 'torch' not in sys.modules, 'torch was imported'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def _example() -> Any:
    path = ROOT / "examples" / "supernet_expected_latency.py"
    spec = importlib.util.spec_from_file_location("supernet_expected_latency", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is created
    spec.loader.exec_module(module)
    return module


def test_example_latency_falls_as_lambda_grows() -> None:
    rows: Sequence[Any] = _example().search(lambdas=(0.0, 1.0, 3.0), steps=40)
    ms = [r.predicted_ms for r in rows]
    assert all(b <= a for a, b in zip(ms, ms[1:], strict=False)), ms
    assert ms[-1] < 0.5 * ms[0]
