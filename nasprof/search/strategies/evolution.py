"""Regularized (aging) evolution with tournament selection (Real et al., AAAI 2019), batched.

The population is a queue of the last ``population_size`` evaluated architectures. A child comes from the
best of ``sample_size`` random members (a tournament). Members compare by ``Scores.fitness``: the reward,
with memory-infeasible members below every feasible one and ordered by how far they overflow (Deb's
feasibility rule). With probability ``crossover_prob`` the winner is first crossed over with the winner of
a second tournament; then it is mutated (the space's ``mutate`` changes the depth, operator, kernel or
width of one block). Each child pushes the *oldest* member out, not the worst: that ageing regularises the
search (a lucky early winner cannot dominate forever).

Repeats: with ``avoid_repeats`` (a search that counts accuracy queries sets it), a child equal to an
architecture already proposed is mutated again (up to ``REPEAT_TRIES`` times), and the random initial
population is drawn without repeats: a repeat costs no query but teaches nothing, and once the population
has converged most single mutations are repeats.

Surrogate screening (``screen``, set by a search given a surrogate): once the population is full, each
child asked for is the best of ``screen_factor`` bred candidates by a cheap estimate of its fitness (an
accuracy predictor, or one fitted on the queries so far, with the latency predictor's constraint), as
predictor-guided evolution (BANANAS, NPENAS) does; only the chosen children are queried.

Batching: ``ask(n)`` returns at most ``max_batch`` children bred from the same population, so a batch of
children is scored with one ``predict_many`` call. This is the synchronous counterpart of the paper's
parallel workers; ``max_batch`` defaults to a quarter of the population so children still see a recent one.

For a space with named decisions the population is an integer-genotype array (``nasprof.space.genotype``)
and a batch is bred with a few array operations: the search loop then scores children without building
architectures (``ask_codes``/``tell_codes``), and ``ask``/``tell`` decode the same children. Other spaces
(anything with ``sample``/``mutate``/``crossover``) keep a population of architecture objects.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from nasprof.errors import InputError
from nasprof.search.strategies.base import Strategy

if TYPE_CHECKING:
    from nasprof.search.evaluate import Scores
    from nasprof.space import Arch
    from nasprof.space.genotype import Codes

__all__ = ["RegularizedEvolution"]

#: Largest population: it is held as arrays, and a tournament ranks it on every ask.
MAX_POPULATION = 1_000_000
#: Further mutations of a child that repeats an earlier proposal, with ``avoid_repeats``.
REPEAT_TRIES = 20


class RegularizedEvolution(Strategy):
    """Aging evolution. Until the population is full, ``ask`` returns random architectures."""

    name: ClassVar[str] = "evolution"
    supports_codes: ClassVar[bool] = True
    @classmethod
    def query_options(cls, max_queries: int | None) -> dict[str, Any]:
        """A population of a tenth of the queries, 20 to 100, with tournaments of half of it.

        A population of 100 spends the first 100 queries on random networks (the very ones random search
        draws with the same seed), so a 100-query search is random search; 20 starts selecting after 20
        queries. A tournament of half the population picks, on average, one of its best two members: with
        a few hundred queries there are only a few generations to select in. On held-out data
        (``benchmarks/search_regret_heldout.py``: NAS-Bench-201 on a Pixel 6a) it lowered the regret at 100
        queries by 0.20 points against tournaments of a quarter, and changed nothing measurable at 300 and
        1,000; a tournament of the whole population was worse at 1,000."""
        if max_queries is None:
            return {}
        population = int(min(100, max(20, max_queries // 10)))
        return {"population_size": population, "sample_size": max(2, population // 2)}

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
        screen_factor: int = 10,
    ) -> None:
        super().__init__(space, seed=seed, resolution=resolution)
        if population_size < 2:
            raise InputError(f"population size must be at least 2, got {population_size}")
        if population_size > MAX_POPULATION:
            raise InputError(f"population size must be at most {MAX_POPULATION:,}, got {population_size:,}")
        if not 1 <= sample_size <= population_size:
            raise InputError(
                f"tournament size must be in [1, population size {population_size}], got {sample_size}"
            )
        if not 0.0 <= crossover_prob <= 1.0:
            raise InputError(f"crossover probability must be in [0, 1], got {crossover_prob}")
        self.population_size = population_size
        self.sample_size = sample_size
        self.crossover_prob = crossover_prob
        if isinstance(screen_factor, bool) or not isinstance(screen_factor, int) or screen_factor < 1:
            raise InputError(f"screen factor must be a count >= 1, got {screen_factor!r}")
        self.screen_factor = screen_factor
        #: A surrogate (``Evaluator.screen``): architectures -> estimated fitness. When set, each child of a
        #: full population is the best of ``screen_factor`` bred candidates by that estimate.
        self.screen: Any = None
        self.max_batch = max_batch if max_batch is not None else max(1, population_size // 4)
        if self.max_batch < 1:
            raise InputError(f"max batch must be at least 1, got {self.max_batch}")
        # A ring buffer: slot ``_next`` holds the oldest member once the population is full.
        self._fitness = np.zeros(population_size, dtype=np.float64)
        self._size = self._next = 0
        gt = self.genotypes
        self._codes = None if gt is None else np.zeros((population_size, gt.num_blocks), dtype=np.int32)
        self._members: list[Any] = [None] * population_size  # architecture objects (spaces without codes)
        self._pending: Codes | None = None
        self._rank_cdf: dict[int, np.ndarray] = {}
        self._seen: set[Any] = set()

    @property
    def population(self) -> list[tuple[Arch, float]]:
        """The current population, oldest first, with each member's fitness (``Scores.fitness``)."""
        order = [(self._next + j) % self.population_size for j in range(self._size)]
        if self._codes is not None:
            members = self._decode(self._codes[order]) if order else []
        else:
            members = [self._members[i] for i in order]
        return list(zip(members, self._fitness[order].tolist(), strict=True))

    # -- integer genotypes ---------------------------------------------------------------------------------
    def ask_codes(self, n: int) -> Codes:
        gt = self.genotypes
        if gt is None or self._codes is None:
            return super().ask_codes(n)
        missing = self.population_size - self._size
        if missing > 0:
            children = gt.sample(max(1, min(n, missing)), self.rng)
            return self._novel(children, lambda c: gt.sample(len(c), self.rng))
        if self.screen is not None:
            return self._screened(n)
        first, second, cross = self._select(n)
        parents = self._codes[first]
        if cross.any():
            parents[cross] = gt.crossover(parents[cross], self._codes[second[cross]], self.rng)
        return self._novel(gt.mutate(parents, self.rng), lambda c: gt.mutate(c, self.rng))

    def _screened(self, n: int) -> Codes:
        """``screen_factor`` children bred per child asked, the best by the surrogate's estimate kept."""
        gt = self.genotypes
        assert gt is not None and self._codes is not None and self.screen is not None
        k = max(1, min(n, self.max_batch))
        first, second, cross = self._select(k * self.screen_factor)
        parents = self._codes[first]
        if cross.any():
            parents[cross] = gt.crossover(parents[cross], self._codes[second[cross]], self.rng)
        children = self._novel(gt.mutate(parents, self.rng), lambda c: gt.mutate(c, self.rng), remember=False)
        estimate = np.asarray(self.screen(self._decode(children)), dtype=np.float64)
        keys = self._keys(children)
        chosen: list[int] = []
        taken: set[Any] = set()
        for i in np.argsort(-estimate, kind="stable").tolist():
            if keys[i] not in taken and (not self.avoid_repeats or keys[i] not in self._seen):
                chosen.append(i)
                taken.add(keys[i])
            if len(chosen) == k:
                break
        if not chosen:
            chosen = [int(np.argmax(estimate))]
        out = children[np.sort(np.asarray(chosen))]
        if self.avoid_repeats:
            self._seen.update(self._keys(out))
        return out

    def _novel(self, children: Codes, redraw: Any, remember: bool = True) -> Codes:
        """With ``avoid_repeats``: children that repeat an earlier proposal (or each other) redrawn by
        ``redraw`` (a further mutation, or a new sample), up to ``REPEAT_TRIES`` times; then remembered."""
        if not self.avoid_repeats:
            return children
        children = np.ascontiguousarray(children, dtype=np.int32)
        for _ in range(REPEAT_TRIES):
            keys = self._keys(children)
            batch: set[Any] = set()
            repeat = np.zeros(len(children), dtype=bool)
            for i, key in enumerate(keys):
                repeat[i] = key in self._seen or key in batch
                batch.add(key)
            if not repeat.any():
                break
            children[repeat] = redraw(children[repeat])
        if remember:
            self._seen.update(self._keys(children))
        return children

    def _keys(self, children: Codes) -> list[Any]:
        if self.repeat_key is None:
            return [row.tobytes() for row in children]
        return [self.repeat_key(a) for a in self._decode(children)]

    def tell_codes(self, codes: Codes, scores: Scores) -> None:
        if len(codes) != len(scores):
            raise InputError(f"told {len(scores)} scores for {len(codes)} genotypes")
        assert self._codes is not None
        self._push(np.asarray(codes, dtype=np.int32), scores.fitness)

    def _push(self, items: Any, fitness: np.ndarray) -> None:
        """Add members, each replacing the oldest once the population is full (the "aging")."""
        m, p = len(fitness), self.population_size
        if m > p:  # only the last p survive
            items, fitness, m = items[m - p :], fitness[m - p :], p
        fill = min(m, p - self._size)  # free slots first; the ring's oldest slot stays 0 until full
        ring = (self._next + np.arange(m - fill)) % p
        slots = np.concatenate([np.arange(self._size, self._size + fill), ring])
        self._size += fill
        self._next = int((self._next + m - fill) % p)
        self._fitness[slots] = fitness
        if self._codes is not None:
            self._codes[slots] = items
        else:
            for slot, item in zip(slots.tolist(), items, strict=True):
                self._members[slot] = item

    # -- architecture objects ------------------------------------------------------------------------------
    def ask(self, n: int) -> list[Arch]:
        if self._codes is not None:
            self._pending = self.ask_codes(n)
            return self._decode(self._pending)
        missing = self.population_size - self._size
        if missing > 0:
            return self._sample(max(1, min(n, missing)))
        first, second, cross = self._select(n)
        children = []
        for a, b, c in zip(first.tolist(), second.tolist(), cross.tolist(), strict=True):
            parent = self._members[a]
            if c:
                parent = self.space.crossover(parent, self._members[b], self.rng)
            children.append(self.space.mutate(parent, self.rng))
        return children

    def tell(self, archs: Sequence[Arch], scores: Scores) -> None:
        if len(archs) != len(scores):
            raise InputError(f"told {len(scores)} scores for {len(archs)} architectures")
        if self._codes is None:
            self._push(list(archs), scores.fitness)
            return
        pending, self._pending = self._pending, None
        if pending is None or len(pending) != len(archs):
            # Architectures that this strategy did not just propose: take them as they are.
            assert self.genotypes is not None
            pending = self.genotypes.encode(archs)
        self.tell_codes(pending, scores)

    def _select(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For up to ``max_batch`` children: each one's parent, its crossover partner, and whether it is
        crossed over (the same draws on the genotype and the object path)."""
        k = max(1, min(n, self.max_batch))
        first = self._tournaments(k)
        second = self._tournaments(k)
        return first, second, self.rng.random(k) < self.crossover_prob

    def _tournaments(self, k: int) -> np.ndarray:
        """Population indices of the winners of ``k`` independent tournaments.

        A tournament draws ``sample_size`` distinct members uniformly and keeps the best. Its winner is the
        member of fitness rank r (0 = best) exactly when the other ``sample_size - 1`` picks all rank below
        it: P(r) = C(P-1-r, S-1) / C(P, S). So each winner's rank is drawn from that distribution (one
        uniform number per tournament) instead of drawing ``sample_size`` members per tournament; ties in
        fitness go to the member that entered the population first.
        """
        size = self._size
        cdf = self._rank_cdf.get(size)
        if cdf is None:
            cdf = self._rank_cdf[size] = _winner_rank_cdf(size, self.sample_size)
        ranked = np.argsort(-self._fitness[:size], kind="stable")
        ranks = np.searchsorted(cdf, self.rng.random(k), side="right")
        return ranked[np.minimum(ranks, size - 1)]


def _winner_rank_cdf(population: int, sample: int) -> np.ndarray:
    """Cumulative P(winner has rank <= r) for a tournament of ``sample`` distinct picks of ``population``."""
    # C(P-1-r, S-1) / C(P, S) for r = 0..P-S, as a running product (no big binomials): the ratio of
    # consecutive terms is (P-S-r) / (P-1-r).
    r = np.arange(population - sample + 1, dtype=np.float64)
    first = sample / population
    ratios = np.ones_like(r)
    ratios[1:] = (population - sample - r[:-1]) / (population - 1 - r[:-1])
    pmf = first * np.cumprod(ratios)
    return np.cumsum(pmf)
