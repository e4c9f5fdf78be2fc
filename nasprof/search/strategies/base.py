"""The strategy contract: ask for candidates, tell their scores (Optuna's ask-and-tell, batched)."""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from nasprof.errors import InputError

if TYPE_CHECKING:
    from nasprof.search.evaluate import Scores
    from nasprof.space import Arch
    from nasprof.space.genotype import Codes, Genotypes

__all__ = ["Strategy"]


class Strategy(abc.ABC):
    """Proposes architectures of one ``space`` and learns from their scores.

    Contract: ``ask(n)`` returns between 1 and ``n`` new architectures (a strategy may return fewer, e.g.
    evolution caps a batch so that children still see a recent population); ``tell(archs, scores)`` is called
    once per ``ask`` with the same architectures, in order. All randomness comes from ``self.rng``, seeded
    once, so the same seed and the same scores give the same sequence of proposals. Not thread-safe.
    """

    name: ClassVar[str] = ""
    #: True when the strategy also proposes integer genotypes (``ask_codes``/``tell_codes``, see
    #: ``nasprof.space.genotype``) for a space that has them; ``ask`` then decodes the same proposals, so
    #: both paths give the same candidates for the same seed and scores.
    supports_codes: ClassVar[bool] = False
    #: Set by a search that counts accuracy queries: a strategy that can (evolution) then proposes
    #: architectures it has not proposed before, since a repeat teaches nothing and costs a candidate.
    avoid_repeats: bool = False
    #: What makes two architectures "the same" for ``avoid_repeats`` (an isomorphism class: nb201's
    #: ``canonical``), or None for the architecture itself.
    repeat_key: Callable[[Arch], str] | None = None
    #: Candidates per ``ask`` in a search that counts accuracy queries, where every query is precious and
    #: a sequential strategy should see each answer soon (None: the search's batch).
    query_batch: ClassVar[int | None] = None
    #: Constructor options for a search that counts accuracy queries, unless the caller gives them.
    query_defaults: ClassVar[dict[str, Any]] = {}

    @classmethod
    def query_options(cls, max_queries: int | None) -> dict[str, Any]:
        """Constructor options for a search that counts accuracy queries, at most ``max_queries`` of them
        (None: unbounded); the caller's options win."""
        return dict(cls.query_defaults)

    def __init__(self, space: Any, *, seed: int = 0, resolution: int | None = None) -> None:
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise InputError(f"--seed must be a non-negative integer, got {seed!r}")
        self.space = space
        self.seed = int(seed)
        #: Input resolution of sampled architectures; None = the space's default. A lookup table is built
        #: for one resolution, so a search samples at the predictor's.
        self.resolution = resolution
        self.rng = np.random.default_rng(self.seed)

    @abc.abstractmethod
    def ask(self, n: int) -> list[Arch]:
        """Up to ``n`` (at least 1) new candidates."""

    def tell(self, archs: Sequence[Arch], scores: Scores) -> None:  # noqa: B027 - optional hook
        """Receive the scores of the last ``ask``. Stateless strategies ignore them."""

    def ask_codes(self, n: int) -> Codes:
        """Up to ``n`` (at least 1) new candidates as integer genotypes (``supports_codes`` strategies)."""
        raise InputError(f"strategy {self.name!r} does not propose integer genotypes")

    def tell_codes(self, codes: Codes, scores: Scores) -> None:  # noqa: B027 - optional hook
        """Receive the scores of the last ``ask_codes``."""

    @property
    def genotypes(self) -> Genotypes | None:
        """The space's integer genotypes, or None for a space without named decisions."""
        if "_genotypes" not in self.__dict__:
            from nasprof.errors import SpaceError

            factory = getattr(self.space, "genotypes", None)
            try:
                self._genotypes = factory() if factory is not None else None
            except SpaceError:
                self._genotypes = None
        return self._genotypes

    def _decode(self, codes: Codes) -> list[Arch]:
        assert self.genotypes is not None
        return self.genotypes.decode(codes, self.resolution)

    def _sample(self, n: int) -> list[Arch]:
        """``n`` random architectures; the space's sampler gets a seed drawn from our generator."""
        seed = int(self.rng.integers(2**63 - 1))
        if self.resolution is None:
            return list(self.space.sample(n, seed=seed))
        return list(self.space.sample(n, seed=seed, resolution=self.resolution))
