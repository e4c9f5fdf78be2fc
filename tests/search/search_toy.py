"""A tiny space with the ``Space``/``Arch`` shape, for testing strategies without torch or the real space.

Each arch is a tuple of block widths (depth 1..4, widths from WIDTHS); a layer's MACs is its width squared.
The CLI tests use the real spaces and a real LutPredictor; this only isolates the strategy logic.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

WIDTHS = (8, 16, 24, 32)


@dataclass(frozen=True)
class ToyLayer:
    width: int

    @property
    def macs(self) -> int:
        return self.width * self.width


@dataclass(frozen=True)
class ToyArch:
    widths: tuple[int, ...]

    def layers(self) -> list[ToyLayer]:
        return [ToyLayer(w) for w in self.widths]

    def to_string(self) -> str:
        return "-".join(map(str, self.widths))


class ToySpace:
    name = "toy"

    def sample(self, n: int, seed: int = 0) -> list[ToyArch]:
        rng = np.random.default_rng(seed)
        return [self._random(rng) for _ in range(n)]

    def _random(self, rng: np.random.Generator) -> ToyArch:
        depth = int(rng.integers(1, 5))
        return ToyArch(tuple(int(rng.choice(WIDTHS)) for _ in range(depth)))

    def mutate(self, arch: ToyArch, rng: np.random.Generator) -> ToyArch:
        w = list(arch.widths)
        if rng.random() < 0.3 and len(w) < 4:
            w.append(int(rng.choice(WIDTHS)))
        elif rng.random() < 0.3 and len(w) > 1:
            w.pop()
        else:
            w[int(rng.integers(len(w)))] = int(rng.choice(WIDTHS))
        return ToyArch(tuple(w))

    def crossover(self, a: ToyArch, b: ToyArch, rng: np.random.Generator) -> ToyArch:
        cut = int(rng.integers(0, len(a.widths) + 1))
        return ToyArch((a.widths[:cut] + b.widths[cut:])[:4] or a.widths)


def toy_latency(archs: Sequence[ToyArch]) -> np.ndarray:
    """0.1 ms per block plus 1 µs per MAC: a latency that is not proportional to MACs."""
    return np.array([0.1 * len(a.widths) + 1e-3 * sum(w * w for w in a.widths) for a in archs])
