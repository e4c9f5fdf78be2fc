"""The search loop: ask a strategy, score the batch, tell the strategy; then the front and the best.

``run_search`` is what ``nasprof search`` calls; a script can call it too, or drive a ``Strategy`` and an
``Evaluator`` itself (see the README's "search" section).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, overload

import numpy as np
from numpy.typing import NDArray

from nasprof.errors import InputError, SpaceError
from nasprof.search.accuracy import QueriedAccuracy
from nasprof.search.confidence import LatencyBound
from nasprof.search.evaluate import Evaluator, Scores
from nasprof.search.pareto import pareto_front
from nasprof.search.rewards import Reward
from nasprof.search.strategies.base import Strategy

if TYPE_CHECKING:
    from nasprof.space.genotype import ChainLayout, Codes

__all__ = ["Candidate", "DecodedArchs", "SearchResult", "run_search", "SEARCH_SCHEMA_VERSION"]

#: History: 1 — first version (evaluated, per_second, reward, pareto, best, top, seed, ...);
#: 2 — ``path``: ``genotypes`` (scored as integer genotypes) or ``architectures``; later in 2, keys present
#: only when used: ``accuracy`` (the source and its queries), ``curve`` (best so far against queries),
#: ``latency_bound`` (the confidence constraint; each candidate then has ``latency_interval_ms``),
#: ``options`` (nb201's network options) and ``regret`` (against ``--truth``); later in 2, ``loop_seconds``
#: (the ask-score-tell loop) beside ``seconds``, which ``search`` makes the whole search's wall time; later in
#: 2, ``surrogate`` (what screened evolution's children).
SEARCH_SCHEMA_VERSION = 2

#: Candidates per ``ask``: big enough that numpy and ``predict_many`` amortise their per-call cost.
DEFAULT_BATCH = 256
#: Candidates per ``ask_codes`` at least, on the integer-genotype path: a batch there costs ~100 µs of
#: Python whatever its size. A strategy still caps its own batch (evolution: ``max_batch``).
CODES_BATCH = 1 << 15


@dataclass(frozen=True)
class Candidate:
    """One evaluated architecture. ``reward`` is -inf when it breaks a memory constraint."""

    arch: str
    latency_ms: float
    accuracy: float
    reward: float
    macs: int
    feasible: bool = True
    sram_bytes: int | None = None
    flash_bytes: int | None = None
    #: (low, high) of the true latency by the predictor's error, when the search bounds it.
    latency_interval_ms: tuple[float, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "arch": self.arch,
            "latency_ms": self.latency_ms,
            "accuracy": self.accuracy,
            # JSON has no -inf; an infeasible candidate's reward is written as null.
            "reward": self.reward if math.isfinite(self.reward) else None,
            "macs": self.macs,
            "feasible": self.feasible,
        }
        if self.sram_bytes is not None:
            d["sram_bytes"] = self.sram_bytes
            d["flash_bytes"] = self.flash_bytes
        if self.latency_interval_ms is not None:
            d["latency_interval_ms"] = list(self.latency_interval_ms)
        return d


class DecodedArchs(Sequence[str]):
    """Architecture strings of a batch of integer genotypes, decoded when read (and remembered)."""

    def __init__(self, layout: ChainLayout, codes: Codes) -> None:
        self.layout = layout
        self.codes = codes
        self._strings: dict[int, str] = {}

    def __len__(self) -> int:
        return int(self.codes.shape[0])

    @overload
    def __getitem__(self, i: int) -> str: ...

    @overload
    def __getitem__(self, i: slice) -> list[str]: ...

    def __getitem__(self, i: int | slice) -> str | list[str]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        j = range(len(self))[i]  # IndexError and negative indices as for a tuple
        s = self._strings.get(j)
        if s is None:
            arch = self.layout.genotypes.decode(self.codes[j], self.layout.resolution, self.layout.width)[0]
            s = self._strings[j] = arch.to_string()
        return s

    def __iter__(self) -> Iterator[str]:
        return (self[j] for j in range(len(self)))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, DecodedArchs) and other.layout is self.layout:
            return bool(np.array_equal(self.codes, other.codes))
        return isinstance(other, Sequence) and list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]


@dataclass(frozen=True, eq=False)
class SearchResult:
    """Everything a search evaluated, in order, plus its Pareto front and best candidate.

    Two runs with the same space, predictor, proxy, strategy, budget and seed give equal results except
    for ``seconds`` and ``loop_seconds`` (wall times).
    """

    space: str
    strategy: str
    proxy: str
    seed: int
    budget: int
    reward: Reward
    #: Architecture strings in evaluation order (a ``DecodedArchs`` on the integer-genotype path: built on
    #: demand, since a million-candidate search shows a handful).
    archs: Sequence[str]
    scores: Scores
    #: Wall time of the whole search: ``run_search``'s loop; for ``search``, from its call to its return
    #: (loading the predictor and the accuracy source, building and resuming the strategy, saving its state).
    seconds: float
    constraint: dict[str, Any] | None = None
    #: For each candidate, the accuracy queries made once it was scored (None: queries were not counted).
    queries: NDArray[np.int64] | None = None
    #: The accuracy source (``describe()``), with its queries, when it is not a built-in proxy.
    accuracy_source: dict[str, Any] | None = None
    #: The latency bound candidates had to meet (``--confidence``), or None.
    latency_bound: LatencyBound | None = None
    #: nb201's network options of the searched architectures, or None.
    options: dict[str, Any] | None = None
    #: Regret against the truth (``nasprof.search.regret``), when known.
    regret: dict[str, Any] | None = None
    #: Wall time of the ask-score-tell loop alone (proposing, scoring, learning).
    loop_seconds: float | None = None
    #: What screened the children between true queries (``online`` or the accuracy predictor file), or None.
    surrogate: str | None = None

    @property
    def minimize(self) -> bool:
        """Whether the accuracy is an error (lower is better)."""
        return bool(self.reward.minimize)

    @property
    def evaluated(self) -> int:
        return len(self.archs)

    @property
    def path(self) -> str:
        """``genotypes`` when the search scored integer genotypes, ``architectures`` when it built objects."""
        return "genotypes" if isinstance(self.archs, DecodedArchs) else "architectures"

    @property
    def per_second(self) -> float:
        """Candidates evaluated per second of ``seconds`` (the whole search's wall time)."""
        return self.evaluated / self.seconds if self.seconds > 0 else math.inf

    def candidate(self, i: int) -> Candidate:
        s = self.scores
        interval = None
        if self.latency_bound is not None:
            lat = float(s.latency_ms[i])
            interval = (float(self.latency_bound.lower(lat)), float(self.latency_bound.upper(lat)))
        return Candidate(
            arch=self.archs[i],
            latency_ms=float(s.latency_ms[i]),
            accuracy=float(s.accuracy[i]),
            reward=float(s.reward[i]),
            macs=int(s.macs[i]),
            feasible=bool(s.feasible[i]),
            sram_bytes=None if s.sram_bytes is None else int(s.sram_bytes[i]),
            flash_bytes=None if s.flash_bytes is None else int(s.flash_bytes[i]),
            latency_interval_ms=interval,
        )

    @property
    def feasible_count(self) -> int:
        return int(self.scores.feasible.sum())

    @property
    def pareto(self) -> list[Candidate]:
        """Feasible non-dominated candidates (min latency, max accuracy), fastest first."""
        idx = pareto_front(self.scores.latency_ms, self.scores.maximised, self.scores.feasible)
        return [self.candidate(int(i)) for i in idx]

    @property
    def best(self) -> Candidate | None:
        """The feasible candidate with the highest reward (the earliest on ties); None if none is feasible."""
        if not self.scores.feasible.any():
            return None
        return self.candidate(int(np.argmax(self.scores.reward)))

    def best_within(self, queries: int) -> Candidate | None:
        """The best feasible candidate among those scored by the time ``queries`` accuracy queries were made
        (what a search stopped at that many queries would have returned)."""
        if self.queries is None:
            raise InputError("this search did not count accuracy queries")
        upto = int(np.searchsorted(self.queries, queries, side="right"))
        feasible = self.scores.feasible[:upto]
        if not feasible.any():
            return None
        return self.candidate(int(np.argmax(np.where(feasible, self.scores.reward[:upto], -np.inf))))

    @property
    def curve(self) -> list[dict[str, Any]]:
        """The best feasible candidate so far against the accuracy queries made: one point per query count at
        which the best changed, then the last count."""
        if self.queries is None or not len(self.queries):
            return []
        s = self.scores
        out: list[dict[str, Any]] = []
        best_reward, best_i = -np.inf, -1
        for i in range(len(self.queries)):
            if s.feasible[i] and s.reward[i] > best_reward:
                best_reward, best_i = float(s.reward[i]), i
                point = {"queries": int(self.queries[i]), "reward": best_reward,
                         "accuracy": float(s.accuracy[i]), "latency_ms": float(s.latency_ms[i]),
                         "arch": self.archs[i]}
                if out and out[-1]["queries"] == point["queries"]:
                    out[-1] = point
                else:
                    out.append(point)
        last = int(self.queries[-1])
        if best_i >= 0 and out[-1]["queries"] != last:
            out.append({**out[-1], "queries": last})
        return out

    def top(self, k: int = 10) -> list[Candidate]:
        """The ``k`` best feasible candidates by reward, each network once.

        Distinct strings can build the same network (a filter multiplier rounded to the same width, an
        identity skip that the shapes rule out), so candidates equal in latency, accuracy and MACs count once.
        """
        s = self.scores
        order = np.argsort(-s.reward, kind="stable")
        out: list[Candidate] = []
        seen: set[tuple[float, float, int]] = set()
        for i in order:
            if len(out) >= k or not s.feasible[i]:
                break
            sig = (float(s.latency_ms[i]), float(s.accuracy[i]), int(s.macs[i]))
            if sig not in seen:
                seen.add(sig)
                out.append(self.candidate(int(i)))
        return out

    def to_dict(self, top: int = 10) -> dict[str, Any]:
        best = self.best
        doc: dict[str, Any] = {
            "schema_version": SEARCH_SCHEMA_VERSION,
            "space": self.space,
            "strategy": self.strategy,
            "proxy": self.proxy,
            "seed": self.seed,
            "budget": self.budget,
            "evaluated": self.evaluated,
            "feasible": self.feasible_count,
            "seconds": self.seconds,
            "per_second": self.per_second,
            "loop_seconds": self.loop_seconds,
            "path": self.path,
            "reward": self.reward.to_dict(),
            "constraint": self.constraint,
            "best": None if best is None else best.to_dict(),
            "top": [c.to_dict() for c in self.top(top)],
            "pareto": [c.to_dict() for c in self.pareto],
        }
        if self.options is not None:
            doc["options"] = {k: list(v) if isinstance(v, tuple) else v for k, v in self.options.items()}
        if self.accuracy_source is not None:
            doc["accuracy"] = self.accuracy_source
        if self.queries is not None:
            doc["curve"] = self.curve
        if self.latency_bound is not None:
            doc["latency_bound"] = self.latency_bound.to_dict()
        if self.regret is not None:
            doc["regret"] = self.regret
        if self.surrogate is not None:
            doc["surrogate"] = self.surrogate
        return doc


def run_search(
    strategy: Strategy,
    evaluator: Evaluator,
    budget: int,
    *,
    batch_size: int = DEFAULT_BATCH,
    space_name: str | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    max_queries: int | None = None,
) -> SearchResult:
    """Evaluate ``budget`` candidates from ``strategy``; ``on_progress(done, budget)`` after each batch.

    With ``max_queries`` (the evaluator's accuracy source must then be a ``QueriedAccuracy``), the search
    also stops once that many accuracy queries were made: no batch asks for more candidates than queries
    are left, so the bound is exact.
    """
    if isinstance(budget, bool) or not isinstance(budget, (int, np.integer)) or budget < 1:
        raise InputError(f"--budget must be a positive number of candidates, got {budget!r}")
    if batch_size < 1:
        raise InputError(f"batch size must be at least 1, got {batch_size}")
    counter = evaluator.proxy if isinstance(evaluator.proxy, QueriedAccuracy) else None
    if max_queries is not None:
        if isinstance(max_queries, bool) or not isinstance(max_queries, (int, np.integer)) or max_queries < 1:
            raise InputError(
                f"--max-queries must be a positive number of accuracy queries, got {max_queries!r}"
            )
        if counter is None:
            raise InputError("max_queries needs the evaluator's accuracy source wrapped in QueriedAccuracy")
        counter.max_queries = int(max_queries)
    layout = None if counter is not None else _codes_layout(strategy, evaluator)
    archs: Sequence[str]
    parts: list[Scores] = []
    traced = len(counter.trace) if counter is not None else 0
    start = time.perf_counter()
    if layout is not None:
        archs = _run_codes(strategy, evaluator, layout, budget, max(batch_size, CODES_BATCH), parts,
                           on_progress)
    else:
        archs = _run_archs(strategy, evaluator, budget, batch_size, parts, on_progress, counter)
    seconds = time.perf_counter() - start
    queries = None
    if counter is not None:
        queries = np.asarray(counter.trace[traced:], dtype=np.int64)
    constraint = evaluator.constraint.to_dict() if evaluator.constraint is not None else None
    return SearchResult(
        space=space_name or str(getattr(strategy.space, "name", "?")),
        strategy=strategy.name,
        proxy=evaluator.proxy.name,
        seed=strategy.seed,
        budget=int(budget),
        reward=evaluator.reward,
        archs=archs,
        scores=Scores.concat(parts),
        seconds=seconds,
        loop_seconds=seconds,
        constraint=constraint,
        queries=queries,
        latency_bound=evaluator.latency_bound,
    )


def _codes_layout(strategy: Strategy, evaluator: Evaluator) -> ChainLayout | None:
    """The space's ``ChainLayout`` when this search can run on integer genotypes, else None."""
    if not (strategy.supports_codes and evaluator.scores_codes) or strategy.genotypes is None:
        return None
    try:
        layout: ChainLayout = strategy.space.chain_layout(strategy.resolution)
    except SpaceError:  # blocks that do not chain (nb201's cell edges): score architectures
        return None
    return layout


def _run_codes(
    strategy: Strategy,
    evaluator: Evaluator,
    layout: ChainLayout,
    budget: int,
    batch_size: int,
    parts: list[Scores],
    on_progress: Callable[[int, int], None] | None,
) -> DecodedArchs:
    chunks: list[Codes] = []
    done = 0
    while done < budget:
        codes = strategy.ask_codes(min(batch_size, budget - done))[: budget - done]
        if not len(codes):
            raise InputError(f"strategy {strategy.name!r} proposed no candidates")
        scores = evaluator.score_codes(codes, layout)
        strategy.tell_codes(codes, scores)
        chunks.append(codes)
        parts.append(scores)
        done += len(codes)
        if on_progress is not None:
            on_progress(done, budget)
    return DecodedArchs(layout, np.concatenate(chunks))


def _run_archs(
    strategy: Strategy,
    evaluator: Evaluator,
    budget: int,
    batch_size: int,
    parts: list[Scores],
    on_progress: Callable[[int, int], None] | None,
    counter: QueriedAccuracy | None = None,
) -> tuple[str, ...]:
    archs: list[str] = []
    while len(archs) < budget:
        n = min(batch_size, budget - len(archs))
        left = None if counter is None else counter.remaining
        if left is not None:
            if left <= 0:
                break
            n = min(n, left)  # each candidate costs at most one query
        batch = strategy.ask(n)
        if not batch:
            raise InputError(f"strategy {strategy.name!r} proposed no candidates")
        batch = batch[:n]
        scored = evaluator.represent(batch) if counter is not None else batch
        scores = evaluator(scored)
        strategy.tell(batch, scores)
        archs.extend(a.to_string() for a in scored)
        parts.append(scores)
        if on_progress is not None:
            if counter is not None and counter.max_queries is not None:
                on_progress(counter.queries, counter.max_queries)
            else:
                on_progress(len(archs), budget)
    return tuple(archs)
