"""Regularized (aging) evolution with tournament selection (Real et al., AAAI 2019), batched.

The population is a queue of the last ``population_size`` evaluated architectures. A child comes from the
best of ``sample_size`` random members (a tournament). Members compare by ``Scores.fitness``: the reward,
with memory-infeasible members below every feasible one and ordered by how far they overflow (Deb's
feasibility rule). With probability ``crossover_prob`` the winner is first crossed over with the winner of
a second tournament; then it is mutated (the space's ``mutate`` changes the depth, operator, kernel or
width of one block). Each child pushes the *oldest* member out, not the worst: that ageing regularises the
search (a lucky early winner cannot dominate forever).

Batching: ``ask(n)`` returns at most ``max_batch`` children bred from the same population, so a batch of
children is scored with one ``predict_many`` call. This is the synchronous counterpart of the paper's
parallel workers; ``max_batch`` defaults to a quarter of the population so children still see a recent one.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from nasprof.errors import InputError
from nasprof.search.strategies.base import Strategy

if TYPE_CHECKING:
    from nasprof.search.evaluate import Scores
    from nasprof.space import Arch

__all__ = ["RegularizedEvolution"]


class RegularizedEvolution(Strategy):
    """Aging evolution. Until the population is full, ``ask`` returns random architectures."""

    name: ClassVar[str] = "evolution"

    def __init__(
        self,
        space: Any,
        *,
        seed: int = 0,
        resolution: int | None = None,
        population_size: int = 100,
        sample_size: int = 25,
        crossover_prob: float = 0.5,
        max_batch: int | None = None,
    ) -> None:
        super().__init__(space, seed=seed, resolution=resolution)
        if population_size < 2:
            raise InputError(f"population size must be at least 2, got {population_size}")
        if not 1 <= sample_size <= population_size:
            raise InputError(
                f"tournament size must be in [1, population size {population_size}], got {sample_size}"
            )
        if not 0.0 <= crossover_prob <= 1.0:
            raise InputError(f"crossover probability must be in [0, 1], got {crossover_prob}")
        self.population_size = population_size
        self.sample_size = sample_size
        self.crossover_prob = crossover_prob
        self.max_batch = max_batch if max_batch is not None else max(1, population_size // 4)
        if self.max_batch < 1:
            raise InputError(f"max batch must be at least 1, got {self.max_batch}")
        self._archs: deque[Arch] = deque(maxlen=population_size)
        self._fitness: deque[float] = deque(maxlen=population_size)

    @property
    def population(self) -> list[tuple[Arch, float]]:
        """The current population, oldest first, with each member's fitness (``Scores.fitness``)."""
        return list(zip(self._archs, self._fitness, strict=True))

    def ask(self, n: int) -> list[Arch]:
        missing = self.population_size - len(self._archs)
        if missing > 0:
            return self._sample(max(1, min(n, missing)))
        k = max(1, min(n, self.max_batch))
        fitness = np.fromiter(self._fitness, dtype=np.float64, count=len(self._fitness))
        first = self._tournaments(fitness, k)
        second = self._tournaments(fitness, k)
        cross = self.rng.random(k) < self.crossover_prob
        children = []
        for a, b, c in zip(first.tolist(), second.tolist(), cross.tolist(), strict=True):
            parent = self._archs[a]
            if c:
                parent = self.space.crossover(parent, self._archs[b], self.rng)
            children.append(self.space.mutate(parent, self.rng))
        return children

    def tell(self, archs: Sequence[Arch], scores: Scores) -> None:
        if len(archs) != len(scores):
            raise InputError(f"told {len(scores)} scores for {len(archs)} architectures")
        self._archs.extend(archs)  # deque(maxlen) drops the oldest: the "aging" in aging evolution
        self._fitness.extend(scores.fitness.tolist())

    def _tournaments(self, fitness: np.ndarray, k: int) -> np.ndarray:
        """Population indices of the winners of ``k`` independent tournaments.

        Each tournament draws ``sample_size`` distinct members (the smallest of one uniform key per member,
        i.e. a uniform sample without replacement) and keeps the best; all ``k`` at once in numpy, since
        ``Generator.choice(replace=False)`` per child would cost more than scoring the child.
        """
        keys = self.rng.random((k, fitness.size))
        picks = np.argpartition(keys, self.sample_size - 1, axis=1)[:, : self.sample_size]
        # argmax keeps the first pick among equals; infeasible members (fitness < 0) lose to feasible ones.
        return picks[np.arange(k), np.argmax(fitness[picks], axis=1)]
