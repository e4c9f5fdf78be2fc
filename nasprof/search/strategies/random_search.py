"""Random search: the baseline every strategy must beat (Li & Talwalkar, 2019)."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from nasprof.search.strategies.base import Strategy

if TYPE_CHECKING:
    from nasprof.space import Arch
    from nasprof.space.genotype import Codes

__all__ = ["RandomSearch"]


class RandomSearch(Strategy):
    """Samples the space uniformly (every decision uniform and independent); ignores scores."""

    name: ClassVar[str] = "random"
    supports_codes: ClassVar[bool] = True

    def ask(self, n: int) -> list[Arch]:
        if self.genotypes is None:
            return self._sample(max(1, n))
        return self._decode(self.ask_codes(n))

    def ask_codes(self, n: int) -> Codes:
        if self.genotypes is None:
            return super().ask_codes(n)
        return self.genotypes.sample(max(1, n), self.rng)
