"""Accuracy estimators: one small interface for a user's model and for built-in training-free proxies.

**Proxies rank; they do not predict accuracy.** Neither built-in proxy returns an ImageNet top-1: each
returns a score whose *order* correlates (loosely, and differently per space) with trained accuracy. Use
them to steer a search, then train the short list. For a real estimate, wrap your own accuracy predictor
(or a supernet evaluation) with ``CallableProxy``.

- ``macs``: log10 of the multiply-accumulates — TinyNAS/MCUNet's observation that, under the same
  constraint, the network with more computation is usually the more accurate one. Pair it with the ``hard``
  reward (α = 0): the search then maximises MACs under the latency target, as TinyNAS does. With the ``soft``
  reward (α = β) the target only scales the reward, and the optimum is where the proxy's elasticity
  d ln(score) / d ln(latency) equals 0.07; log10(MACs) has elasticity 1/ln(MACs) ≈ 0.05 at 300 M MACs, so
  ``soft`` + ``macs`` drifts towards the networks with the most MACs per millisecond at the small end.
- ``naswot``: "Neural Architecture Search without Training" (Mellor et al., ICML 2021): the log-determinant
  of the kernel of binary ReLU activation codes over a random mini-batch, on the untrained network. Higher
  means inputs fall into more distinct linear regions. Needs torch; costs a forward pass per candidate.
"""

from __future__ import annotations

import abc
import contextlib
import math
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from nasprof.errors import InputError, MissingDependencyError, SpaceError
from nasprof.registry import Registry

if TYPE_CHECKING:  # the space package imports torch lazily; these are only for type checkers
    from nasprof.space import Arch

__all__ = [
    "AccuracyProxy", "MacsProxy", "NaswotProxy", "CallableProxy", "get_proxy", "PROXIES", "proxy_registry",
]


class AccuracyProxy(abc.ABC):
    """Scores a batch of architectures; higher is better.

    Contract: ``score_many`` returns one finite score ≥ 0 per architecture, in order (MnasNet's reward
    multiplies it, so a negative score would turn the latency penalty into a bonus). ``macs`` holds each
    architecture's MACs, already computed by the evaluator, for proxies that need them. Scores must be
    deterministic for a given architecture so that a search is reproducible from its seed.
    """

    name: ClassVar[str] = ""
    #: Largest batch worth scoring at once: a slow proxy asks for small batches so progress shows.
    max_batch: ClassVar[int] = 1 << 16
    #: False when ``score_many`` reads only ``macs``: the search may then score integer genotypes without
    #: building their architectures (``archs`` is then an empty sequence).
    needs_archs: ClassVar[bool] = True

    @abc.abstractmethod
    def score_many(self, archs: Sequence[Arch], macs: NDArray[np.int64]) -> NDArray[np.float64]:
        """One score per architecture."""

    def score(self, arch: Arch) -> float:
        """Score of one architecture (computes its MACs)."""
        macs = np.array([sum(layer.macs for layer in arch.layers())], dtype=np.int64)
        return float(self.score_many([arch], macs)[0])


class MacsProxy(AccuracyProxy):
    """log10(MACs): more computation ranks higher (TinyNAS heuristic). Costs nothing beyond the MAC count."""

    name: ClassVar[str] = "macs"
    needs_archs: ClassVar[bool] = False

    def score_many(self, archs: Sequence[Arch], macs: NDArray[np.int64]) -> NDArray[np.float64]:
        m = np.asarray(macs, dtype=np.float64)
        # A network has at least one MAC; max(.., 1) keeps log10 at >= 0 for degenerate input.
        return np.log10(np.maximum(m, 1.0))


class CallableProxy(AccuracyProxy):
    """Wraps a user's estimator: ``fn(arch) -> float``, or ``fn(archs) -> sequence`` when ``batched=True``."""

    def __init__(self, fn: Callable[..., Any], *, batched: bool = False, name: str = "custom") -> None:
        if not callable(fn):
            raise InputError(f"accuracy estimator must be callable, got {type(fn).__name__}")
        self.fn = fn
        self.batched = batched
        self.name = name  # type: ignore[misc]  # instance-level name for user proxies

    def score_many(self, archs: Sequence[Arch], macs: NDArray[np.int64]) -> NDArray[np.float64]:
        values = self.fn(list(archs)) if self.batched else [self.fn(a) for a in archs]
        out = np.asarray(values, dtype=np.float64).reshape(-1)
        if out.size != len(archs):
            raise InputError(
                f"accuracy estimator {self.name!r} returned {out.size} values for {len(archs)} archs"
            )
        return out


class NaswotProxy(AccuracyProxy):
    """NASWOT score log|K_H| of the untrained network on ``batch_size`` random inputs.

    K_H[i, j] counts the ReLU-like units on which inputs i and j agree (both active or both inactive), summed
    over every activation module (ReLU, ReLU6, Hardswish). The network is built with the given ``seed`` and
    fed random N(0, 1) images at ``resolution``: the blocks are fully convolutional, so a 32x32 input (the
    CIFAR size of the paper) ranks the same structures ~50x cheaper than 224x224. Batch-norm uses batch
    statistics, as in the paper. A degenerate network (two inputs with identical codes, so K_H is singular)
    scores 0.
    Scores are cached per architecture string. Torch runs with ``threads`` intra-op threads meanwhile.
    """

    name: ClassVar[str] = "naswot"
    max_batch: ClassVar[int] = 4  # ~0.1-0.5 s per candidate: keep the progress bar moving

    def __init__(
        self, *, batch_size: int = 16, resolution: int = 32, seed: int = 0, threads: int = 1
    ) -> None:
        if batch_size < 2:
            raise InputError(f"naswot needs a batch of at least 2 inputs, got {batch_size}")
        if resolution < 8:
            raise InputError(f"naswot resolution must be at least 8 pixels, got {resolution}")
        self.batch_size = batch_size
        self.resolution = resolution
        self.seed = seed
        if threads < 1:
            raise InputError(f"naswot threads must be at least 1, got {threads}")
        self.threads = threads
        self._cache: dict[str, float] = {}

    def score_many(self, archs: Sequence[Arch], macs: NDArray[np.int64]) -> NDArray[np.float64]:
        return np.array([self._score_cached(a) for a in archs], dtype=np.float64)

    def _score_cached(self, arch: Arch) -> float:
        key = arch.to_string()
        if key not in self._cache:
            with _torch_threads(self.threads):
                self._cache[key] = naswot_score(
                    build_torch_module(arch, self.seed),
                    batch_size=self.batch_size,
                    resolution=self.resolution,
                    seed=self.seed,
                )
        return self._cache[key]


@contextlib.contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    """Run torch with ``n`` intra-op threads, then restore the caller's setting.

    One thread by default: these forward passes are small, and on a loaded machine two threads were 15x
    slower than one (1.27 s vs 0.08 s per mnasnet candidate at 32x32 on a 2-core host shared with others).
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def build_torch_module(arch: Any, seed: int = 0) -> Any:
    """The untrained torch module of an ``Arch`` or ``Network``, with weights drawn from ``seed``."""
    network = arch.network() if hasattr(arch, "network") else arch
    if not hasattr(network, "build"):
        raise SpaceError(
            f"cannot build a torch model from {type(arch).__name__}: it has no network()/build()"
        )
    try:
        return network.build(seed=seed)
    except ImportError as exc:
        raise MissingDependencyError(f"the naswot proxy needs torch: pip install torch ({exc})") from exc


def naswot_score(module: Any, *, batch_size: int = 16, resolution: int = 32, seed: int = 0) -> float:
    """log-determinant of the NASWOT kernel of ``module`` (an untrained torch module taking NCHW images)."""
    try:
        import torch
    except ImportError as exc:
        raise MissingDependencyError("the naswot proxy needs torch: pip install torch") from exc

    act_types = (torch.nn.ReLU, torch.nn.ReLU6, torch.nn.Hardswish)
    kernel = torch.zeros(batch_size, batch_size, dtype=torch.float64)

    def hook(_mod: Any, _inp: Any, out: Any) -> None:
        flat = out.detach().reshape(out.shape[0], -1)
        signs = (flat > 0).to(torch.float32) * 2.0 - 1.0  # +1 active, -1 inactive
        # signs @ signs.T = agreements - disagreements = 2 * agreements - N, so one product gives
        # K_H = N - Hamming distance. Sums of +-1 are exact in float32 below 2^24 units per layer.
        kernel.add_(((signs @ signs.T).to(torch.float64) + flat.shape[1]) / 2.0)

    handles = [m.register_forward_hook(hook) for m in module.modules() if isinstance(m, act_types)]
    if not handles:
        raise SpaceError("naswot needs ReLU-like activations (ReLU, ReLU6, Hardswish); the network has none")
    # fork_rng: a search must not change the caller's global torch RNG state.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        x = torch.randn(batch_size, 3, resolution, resolution)
        module.train()  # batch statistics, as in the paper: untrained running stats are meaningless
        try:
            with torch.no_grad():
                module(x)
        finally:
            for h in handles:
                h.remove()
    sign, logdet = torch.linalg.slogdet(kernel)
    value = float(logdet)
    if float(sign) <= 0 or not math.isfinite(value):
        return 0.0
    return max(value, 0.0)


#: Built-in proxies by name; third-party ones through the ``nasprof.proxies`` entry-point group (a
#: zero-argument callable returning an ``AccuracyProxy``).
proxy_registry: Registry[Callable[[], AccuracyProxy]] = Registry(
    "accuracy proxy", entry_point_group="nasprof.proxies", error=InputError
)
proxy_registry.register("macs", MacsProxy)
proxy_registry.register("naswot", NaswotProxy)

#: The registry under its older name.
PROXIES = proxy_registry


def get_proxy(name: str) -> AccuracyProxy:
    """A proxy by name: ``macs``, ``naswot`` or a plugin's."""
    return proxy_registry.get(name)()
