"""Random search: the baseline every strategy must beat (Li & Talwalkar, 2019)."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from nasprof.search.strategies.base import Strategy

if TYPE_CHECKING:
    from nasprof.space import Arch

__all__ = ["RandomSearch"]


class RandomSearch(Strategy):
    """Samples the space uniformly (as the space's ``sample`` defines it); ignores scores."""

    name: ClassVar[str] = "random"

    def ask(self, n: int) -> list[Arch]:
        return self._sample(max(1, n))
