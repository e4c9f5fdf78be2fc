"""A search space as independent categorical decisions: the rows of the architecture logits α.

α holds one row of logits per decision of ``Space.decisions()``, in that order (mnasnet: ``b0.op``,
``b0.kernel``, ..., ``b6.layers``; mobilenetv2: ``s0.depth``, ``s0.l0.kernel``, ``s0.l0.expand``, ...).
Three forms are accepted, all turned into one padded ``(decisions, max_choices)`` float64 tensor:

* that padded 2-D tensor itself: row d holds decision d's logits in its first ``len(choices)`` columns;
  the columns past them are padding and ignored (any value, even NaN);
* a list (or tuple) of 1-D tensors, one per decision, each as long as its decision's choices;
* a dict from decision name to such a 1-D tensor.

The probabilities are softmax(α) per decision. Decisions that an architecture does not use (mobilenetv2's
layers past the chosen depth) keep their rows; they weigh nothing, because every layer they describe is
weighted by the probability of existing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch

from nasprof.errors import InputError
from nasprof.space import Arch, Space, get_space, list_spaces

__all__ = ["ArchSample", "DecisionSpace", "as_space"]

#: Default logit of a chosen value in ``one_hot``: exp(-1000) underflows to exactly 0 in float32 and
#: float64 alike, so softmax gives exactly 1.0 and 0.0 and expected costs equal the architecture's own.
ONE_HOT_SCALE = 1e3


def as_space(space: Space | str) -> Space:
    if isinstance(space, Space):
        return space
    if isinstance(space, str):
        return get_space(space)
    raise InputError(f"expected a search space or its name (e.g. 'mnasnet'), got {type(space).__name__}")


class ArchSample(NamedTuple):
    """One architecture drawn from α: the ``Arch``, its gates and its choice indices.

    ``gates`` has α's padded shape. With ``hard=True`` its values are exactly one-hot (the sampled path;
    ProxylessNAS's binary gates) and its gradient is the Gumbel-softmax one (straight-through); with
    ``hard=False`` it is the Gumbel-softmax relaxation itself. ``ExpectedCost.expected(gates)`` is then
    the cost of the sampled architecture with a gradient to α.
    """

    arch: Arch
    gates: torch.Tensor
    indices: tuple[int, ...]


class DecisionSpace:
    """The decisions of ``space`` at one resolution and width, and α's forms, checks and conversions."""

    def __init__(self, space: Space | str, resolution: int | None = None, width: float = 1.0) -> None:
        self.space = as_space(space)
        self.resolution = self.space.checked_resolution(resolution, width)
        self.width = float(width)
        decisions = self.space.decisions()
        self.names = tuple(name for name, _ in decisions)
        self.choices = tuple(tuple(values) for _, values in decisions)
        self.counts = np.array([len(c) for c in self.choices], dtype=np.int64)
        self.max_choices = int(self.counts.max())
        self.mask = np.arange(self.max_choices)[None, :] < self.counts[:, None]
        self._position = {name: d for d, name in enumerate(self.names)}

    @property
    def shape(self) -> tuple[int, int]:
        """The padded α shape: (number of decisions, most choices of any decision)."""
        return len(self.names), self.max_choices

    def decisions(self) -> list[tuple[str, tuple[Any, ...]]]:
        """Every decision's name and choices, in α's row order."""
        return list(zip(self.names, self.choices, strict=True))

    def zeros(self, *, dtype: torch.dtype = torch.float64, requires_grad: bool = False) -> torch.Tensor:
        """Uniform logits in the padded form (a fresh leaf tensor to optimise)."""
        return torch.zeros(self.shape, dtype=dtype, requires_grad=requires_grad)

    # -- checks -------------------------------------------------------------------------------------------
    def _expected_forms(self) -> str:
        n, m = self.shape
        return (f"{self.space.name} α is a ({n}, {m}) tensor of logits (one row per decision, padded), a "
                f"list of {n} 1-D tensors or a dict by decision name (see decisions())")

    def _hint(self, n: int, m: int | None = None) -> str:
        """' (that is the shape of α for <space>)' when another space's α has that shape."""
        for name in list_spaces():
            if name == self.space.name:
                continue
            other = get_space(name).decisions()
            if len(other) == n and (m is None or max(len(v) for _, v in other) == m):
                return f"; that is the shape of α for the {name} space"
        return ""

    def logits(self, alpha: Any) -> torch.Tensor:
        """α checked and padded: a float64 ``(decisions, max_choices)`` tensor, padding at -inf."""
        n, m = self.shape
        if isinstance(alpha, Mapping):
            names = set(map(str, alpha))
            unknown, missing = sorted(names - set(self.names)), sorted(set(self.names) - names)
            if unknown or missing:
                what = f"unknown decision {unknown[0]!r}" if unknown else f"missing decision {missing[0]!r}"
                raise InputError(f"α by name has {what}; {self._expected_forms()}")
            alpha = [alpha[name] for name in self.names]
        if isinstance(alpha, torch.Tensor):
            if alpha.dim() != 2 or tuple(alpha.shape) != (n, m):
                got = tuple(alpha.shape)
                hint = self._hint(*got) if len(got) == 2 else ""
                raise InputError(f"α has shape {got}; {self._expected_forms()}{hint}")
            padded = alpha.to(torch.float64)
        elif isinstance(alpha, Sequence) and not isinstance(alpha, (str, bytes)):
            if len(alpha) != n:
                hint = self._hint(len(alpha))
                raise InputError(f"α holds {len(alpha)} rows; {self._expected_forms()}{hint}")
            rows = []
            for d, row in enumerate(alpha):
                t = row if isinstance(row, torch.Tensor) else torch.as_tensor(row)
                if t.dim() != 1 or t.shape[0] != self.counts[d]:
                    raise InputError(
                        f"α row {d} ({self.names[d]}) has shape {tuple(t.shape)}; that decision takes a 1-D "
                        f"tensor of {self.counts[d]} logits, one per choice of {self.choices[d]}"
                    )
                rows.append(torch.nn.functional.pad(t.to(torch.float64), (0, m - int(self.counts[d]))))
            padded = torch.stack(rows)
        else:
            raise InputError(f"α is a {type(alpha).__name__}; {self._expected_forms()}")
        mask = torch.from_numpy(self.mask).to(padded.device)
        finite = torch.isfinite(padded) | ~mask
        if not bool(finite.all()):
            d = int((~finite).any(dim=1).nonzero()[0, 0])
            raise InputError(
                f"α row {d} ({self.names[d]}) holds a non-finite logit; logits must be finite (a large "
                f"finite value such as {ONE_HOT_SCALE:g} selects a choice, as one_hot does)"
            )
        return torch.where(mask, padded, torch.tensor(-math.inf, dtype=torch.float64, device=padded.device))

    def probs(self, alpha: Any) -> torch.Tensor:
        """softmax(α) per decision, padded with zeros: a float64 ``(decisions, max_choices)`` tensor."""
        return torch.softmax(self.logits(alpha), dim=1)

    def _check_arch(self, arch: Arch) -> None:
        if not isinstance(arch, Arch):
            raise InputError(f"expected an Arch of the {self.space.name} space, got {type(arch).__name__}")
        if arch.space != self.space.name:
            raise InputError(f"the architecture is from space {arch.space!r}; these logits are for "
                             f"{self.space.name!r}")
        if (arch.resolution, float(arch.width)) != (self.resolution, self.width):
            raise InputError(
                f"the architecture is at resolution {arch.resolution}, width {arch.width:g}; these logits "
                f"are for resolution {self.resolution}, width {self.width:g}"
            )

    # -- conversions --------------------------------------------------------------------------------------
    def one_hot(self, arch: Arch, *, scale: float = ONE_HOT_SCALE) -> torch.Tensor:
        """Padded float64 logits that select ``arch``: ``scale`` on each of its choices, 0 elsewhere.

        With ``scale`` >= 750 softmax rounds every other choice to exactly 0 (float32 and float64), so an
        expected cost of these logits is the architecture's own cost. Decisions ``arch`` does not use
        (layers past a stage's depth) stay uniform: they weigh nothing.
        """
        self._check_arch(arch)
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(scale) or (
            scale <= 0
        ):
            raise InputError(f"one_hot scale must be a finite number > 0 (750 or more for exact "
                             f"probabilities), got {scale!r}")
        out = self.zeros()
        for name, value in self.space.params(arch).items():
            d = self._position[name]
            out[d, self.choices[d].index(value)] = float(scale)
        return out

    def _build(self, indices: Sequence[int]) -> Arch:
        def ask(name: str, values: tuple[Any, ...]) -> Any:
            return values[indices[self._position[name]]]

        return self.space.build(ask, self.resolution, self.width)

    def derive(self, alpha: Any) -> Arch:
        """The most likely architecture: the argmax choice of every decision (the first one on ties)."""
        with torch.no_grad():
            indices = self.logits(alpha).argmax(dim=1).tolist()
        return self._build(indices)

    def sample_arch(
        self,
        alpha: Any,
        generator: torch.Generator | None = None,
        *,
        hard: bool = True,
        tau: float = 1.0,
    ) -> ArchSample:
        """An architecture drawn from softmax(α), one choice per decision (the Gumbel-max trick), with its
        Gumbel-softmax gates at temperature ``tau`` (see ``ArchSample``). Seed ``generator`` for
        repeatable draws."""
        if isinstance(tau, bool) or not isinstance(tau, (int, float)) or not math.isfinite(tau) or tau <= 0:
            raise InputError(f"Gumbel-softmax temperature tau must be a finite number > 0, got {tau!r}")
        logits = self.logits(alpha)
        device = generator.device if generator is not None else torch.device("cpu")
        u = torch.rand(self.shape, generator=generator, dtype=torch.float64, device=device)
        # -log(-log U), U kept off 0 and 1 so that the noise stays finite.
        tiny = torch.finfo(torch.float64).tiny
        noise = -torch.log(-torch.log(u.clamp(tiny, 1.0 - 1e-16))).to(logits.device)
        perturbed = logits + noise
        indices = perturbed.argmax(dim=1)
        soft = torch.softmax(perturbed / tau, dim=1)
        gates = soft
        if hard:
            one = torch.zeros_like(soft).scatter_(1, indices[:, None], 1.0)
            # one + (soft - soft) is exactly one-hot forward, with soft's gradient (straight-through).
            gates = one + (soft - soft.detach())
        picked = tuple(indices.tolist())
        return ArchSample(self._build(picked), gates, picked)
