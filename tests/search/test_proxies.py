"""Accuracy proxies: the MACs heuristic, NASWOT on real torch modules, user callables."""

from __future__ import annotations

import math

import numpy as np
import pytest
from search_toy import ToyArch

from nasprof.errors import InputError, SpaceError
from nasprof.search import CallableProxy, MacsProxy, get_proxy, naswot_score


def test_macs_proxy_is_log10_of_macs() -> None:
    scores = MacsProxy().score_many([ToyArch((8,))] * 3, np.array([1000, 300_000_000, 0]))
    np.testing.assert_allclose(scores, [3.0, math.log10(3e8), 0.0], rtol=1e-15)
    assert MacsProxy().score(ToyArch((8, 16))) == pytest.approx(math.log10(64 + 256))


def test_callable_proxy_single_and_batched() -> None:
    archs = [ToyArch((8,)), ToyArch((8, 16))]
    per_arch = CallableProxy(lambda a: len(a.widths) / 10)
    np.testing.assert_array_equal(per_arch.score_many(archs, np.zeros(2, np.int64)), [0.1, 0.2])
    batched = CallableProxy(lambda xs: [1.0] * len(xs), batched=True, name="ones")
    assert batched.score_many(archs, np.zeros(2, np.int64)).tolist() == [1.0, 1.0]
    with pytest.raises(InputError, match="returned 1 values for 2"):
        CallableProxy(lambda xs: [1.0], batched=True).score_many(archs, np.zeros(2, np.int64))
    with pytest.raises(InputError, match="unknown accuracy proxy 'flops'"):
        get_proxy("flops")


def test_naswot_kernel_by_hand() -> None:
    torch = pytest.importorskip("torch")
    # A lone ReLU on 2 inputs of 3x8x8: K = [[192, a], [a, 192]] with a = units where the two inputs agree.
    score = naswot_score(torch.nn.Sequential(torch.nn.ReLU()), batch_size=2, resolution=8, seed=5)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(5)
        x = torch.randn(2, 3, 8, 8)
    codes = (x.reshape(2, -1) > 0).numpy()
    agree = int((codes[0] == codes[1]).sum())
    assert score == pytest.approx(math.log(192.0**2 - agree**2), rel=1e-12)
    # same seed, same score; the caller's RNG state is untouched
    torch.manual_seed(123)
    before = torch.rand(1).item()
    torch.manual_seed(123)
    again = naswot_score(torch.nn.Sequential(torch.nn.ReLU()), batch_size=2, resolution=8, seed=5)
    assert again == score and torch.rand(1).item() == before


def test_naswot_needs_relu_like_activations() -> None:
    torch = pytest.importorskip("torch")
    with pytest.raises(SpaceError, match="ReLU-like"):
        naswot_score(torch.nn.Conv2d(3, 4, 3), batch_size=2, resolution=8)
