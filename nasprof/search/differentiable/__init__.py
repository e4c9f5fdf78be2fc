"""Differentiable expected costs for gradient-based NAS (ProxylessNAS, DARTS, FBNet) over nasprof's models.

A gradient-based search keeps architecture logits α (one categorical per decision of the space) and adds
λ·E[latency] to its loss. ``ExpectedLatency(predictor, space)`` is that expectation under a lookup-table
predictor, exact under independent decisions, as a ``torch.nn.Module``:

    lat = ExpectedLatency(predictor, "mnasnet")
    alpha = lat.new_alpha()                      # (decisions, max choices) logits, uniform
    loss = task_loss + lam * lat(alpha)          # E[ms], differentiable in alpha
    arch = lat.derive(alpha)                     # the argmax architecture
    lat(one_hot(arch)) == predictor.predict(arch)

``ExpectedMacs`` and ``ExpectedFlash`` (a microcontroller's int8 weights) have the same form.
``sample_arch`` draws an architecture from softmax(α) with Gumbel-softmax / binary (straight-through)
gates, as ProxylessNAS samples paths. See ``_decisions`` for α's forms and ``_slots`` for how exactness is
kept when a block's input shape depends on the previous block's choices.

Importing this package imports torch; ``import nasprof.search`` does not import it.
"""

from __future__ import annotations

from typing import Any

import torch

from nasprof.errors import InputError
from nasprof.search.differentiable._decisions import ONE_HOT_SCALE, ArchSample, DecisionSpace, as_space
from nasprof.search.differentiable._expected import ExpectedCost, ExpectedFlash, ExpectedLatency, ExpectedMacs
from nasprof.search.differentiable._slots import STRUCTURES
from nasprof.space import Arch, Space

__all__ = [
    "ArchSample",
    "DecisionSpace",
    "ExpectedCost",
    "ExpectedFlash",
    "ExpectedLatency",
    "ExpectedMacs",
    "ONE_HOT_SCALE",
    "STRUCTURES",
    "derive",
    "one_hot",
    "sample_arch",
]


def one_hot(arch: Arch, *, scale: float = ONE_HOT_SCALE) -> torch.Tensor:
    """Logits (padded float64 form) that select ``arch`` exactly; see ``DecisionSpace.one_hot``."""
    if not isinstance(arch, Arch):
        raise InputError(f"one_hot expects an Arch of a search space, got {type(arch).__name__}")
    return DecisionSpace(arch.space, arch.resolution, arch.width).one_hot(arch, scale=scale)


def derive(alpha: Any, space: Space | str, *, resolution: int | None = None, width: float = 1.0) -> Arch:
    """The argmax architecture of ``alpha`` in ``space`` (at ``resolution``, the space's default if None)."""
    return DecisionSpace(as_space(space), resolution, width).derive(alpha)


def sample_arch(
    alpha: Any,
    space: Space | str,
    generator: torch.Generator | None = None,
    *,
    hard: bool = True,
    tau: float = 1.0,
    resolution: int | None = None,
    width: float = 1.0,
) -> ArchSample:
    """An architecture drawn from softmax(``alpha``) with its gates; see ``DecisionSpace.sample_arch``."""
    return DecisionSpace(as_space(space), resolution, width).sample_arch(alpha, generator, hard=hard, tau=tau)
