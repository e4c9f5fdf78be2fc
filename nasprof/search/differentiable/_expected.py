"""Expected latency, MACs and Flash of the architecture distribution softmax(α), differentiable in α.

E[cost] = constant + Σ_rows cost(layer of the row) · Π_k P(decision k of the row takes its choice)

over the rows of ``_slots.slot_table`` (every layer position with every joint value of the few decisions
its key depends on). The table is built once per space, resolution and width; a forward pass is a gather,
a product and a dot product over ~10^4 rows (mnasnet), so it costs well under a millisecond.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from nasprof.errors import InputError, PredictorError
from nasprof.predictors.lut.predictor import LutPredictor
from nasprof.search.differentiable._decisions import ONE_HOT_SCALE, ArchSample, DecisionSpace, as_space
from nasprof.search.differentiable._slots import slot_table
from nasprof.space import Arch, Layer, Space

__all__ = ["ExpectedCost", "ExpectedLatency", "ExpectedMacs", "ExpectedFlash"]


class ExpectedCost(torch.nn.Module):
    """E[Σ_layers cost(layer)] + ``constant`` under independent softmax(α) decisions (see module docstring).

    ``forward(alpha)`` takes the logits in any form of ``DecisionSpace.logits`` and returns a float64
    scalar (sums of ~10^4 terms need the precision; cast the result if the rest of a loss is float32).
    ``expected(probs)`` takes probabilities (or ``sample_arch``'s gates) in the padded form instead.
    """

    unit: str = ""
    _index: torch.Tensor
    _values: torch.Tensor

    def __init__(
        self,
        space: Space | str,
        cost: Callable[[Layer], float],
        *,
        constant: float = 0.0,
        resolution: int | None = None,
        width: float = 1.0,
    ) -> None:
        super().__init__()
        self.decision_space = DecisionSpace(space, resolution, width)
        ds = self.decision_space
        table = slot_table(ds.space, ds.resolution, ds.width)
        # One cost per distinct key: layers repeat across rows (the same layer at every layer count).
        by_key: dict[str, float] = {}
        for layer in table.layers:
            if layer.key not in by_key:
                by_key[layer.key] = float(cost(layer))
        values = np.array([by_key[layer.key] for layer in table.layers], dtype=np.float64)
        if not np.all(np.isfinite(values)):
            raise InputError("every layer's cost must be a finite number")
        self.keys = frozenset(by_key)
        self.constant = float(constant)
        self.register_buffer("_index", torch.from_numpy(np.array(table.index)))
        self.register_buffer("_values", torch.from_numpy(values))

    # -- the decision space, re-exported for convenience ---------------------------------------------------
    @property
    def space(self) -> Space:
        return self.decision_space.space

    @property
    def resolution(self) -> int:
        return self.decision_space.resolution

    @property
    def width(self) -> float:
        return self.decision_space.width

    def decisions(self) -> list[tuple[str, tuple[Any, ...]]]:
        """Every decision's name and choices, in α's row order (``Space.decisions()``)."""
        return self.decision_space.decisions()

    def new_alpha(self) -> torch.nn.Parameter:
        """Uniform logits in the padded ``(decisions, max_choices)`` form, as a parameter to optimise."""
        return torch.nn.Parameter(self.decision_space.zeros())

    def one_hot(self, arch: Arch, *, scale: float = ONE_HOT_SCALE) -> torch.Tensor:
        return self.decision_space.one_hot(arch, scale=scale)

    def derive(self, alpha: Any) -> Arch:
        return self.decision_space.derive(alpha)

    def sample_arch(
        self, alpha: Any, generator: torch.Generator | None = None, *, hard: bool = True, tau: float = 1.0
    ) -> ArchSample:
        return self.decision_space.sample_arch(alpha, generator, hard=hard, tau=tau)

    # -- the expectation ----------------------------------------------------------------------------------
    def forward(self, alpha: Any) -> torch.Tensor:
        return self.expected(self.decision_space.probs(alpha))

    def expected(self, probs: torch.Tensor) -> torch.Tensor:
        """E[cost] for per-decision probabilities in the padded form (rows need not be softmax outputs:
        ``sample_arch``'s hard gates give the sampled architecture's cost)."""
        shape = self.decision_space.shape
        if not isinstance(probs, torch.Tensor) or tuple(probs.shape) != shape:
            got = tuple(probs.shape) if isinstance(probs, torch.Tensor) else type(probs).__name__
            raise InputError(f"probabilities must be a {shape} tensor (padded like α), got {got}")
        flat = torch.cat([probs.to(torch.float64).reshape(-1), probs.new_ones(1, dtype=torch.float64)])
        weights = flat[self._index].prod(dim=1)
        return self.constant + (weights * self._values).sum()

    def cost(self, arch: Arch) -> float:
        """The cost of one architecture, through the same table (what ``forward(one_hot(arch))`` gives)."""
        with torch.no_grad():
            return float(self(self.one_hot(arch)))

    def extra_repr(self) -> str:
        return (f"space={self.space.name}, resolution={self.resolution}, width={self.width:g}, "
                f"rows={self._index.shape[0]}, unit={self.unit!r}")


class ExpectedLatency(ExpectedCost):
    """Expected latency (ms) under a lookup-table predictor: per layer exactly the calibrated milliseconds
    ``predictor.predict`` sums (``layer_ms``: entry minus the per-call overhead, times its in-network ratio
    and family factor, plus the cost of its weights), plus what a network pays once (the per-call overhead
    and the calibrated per-network constant). ``forward(one_hot(arch))`` equals ``predictor.predict(arch)``.

    ``space`` and ``resolution`` default to the predictor's. Every layer the space can produce must be in
    the table (build it over ``space.distinct_layers(resolution)``); a fallback predictor is not used.
    """

    unit = "ms"

    def __init__(
        self,
        predictor: LutPredictor,
        space: Space | str | None = None,
        resolution: int | None = None,
        width: float = 1.0,
    ) -> None:
        if not isinstance(predictor, LutPredictor):
            got = type(predictor).__name__
            raise InputError(f"ExpectedLatency sums lookup-table entries: pass a LutPredictor, got {got}")
        if space is None:
            if predictor.space is None:
                raise InputError("the predictor names no search space; pass space= (e.g. 'mnasnet')")
            space = predictor.space
        name = as_space(space).name
        if predictor.space and predictor.space != name:
            raise PredictorError(f"the predictor's table is for space {predictor.space!r}, not {name!r}")
        if resolution is None:
            resolution = predictor.resolution
        elif predictor.resolution and predictor.resolution != resolution:
            raise PredictorError(
                f"the predictor's table is for resolution {predictor.resolution}, not {resolution}"
            )
        missing: list[str] = []

        def layer_ms(layer: Layer) -> float:
            if layer.key not in predictor.entries:
                missing.append(layer.key)
                return 0.0
            return predictor.layer_ms(layer.key)

        super().__init__(space, layer_ms, constant=predictor.overhead_ms + predictor.offset_ms,
                         resolution=resolution, width=width)
        if missing:
            raise PredictorError(
                f"the table has no entry for {missing[0]} (and {len(missing) - 1} more layers the "
                f"{name} space can produce at {self.resolution} px); build it over "
                "space.distinct_layers(resolution) with `nasprof table build`"
            )
        self.predictor = predictor


class ExpectedMacs(ExpectedCost):
    """Expected multiply-accumulates: per layer ``Layer.macs`` (the count ``Arch.macs`` sums)."""

    unit = "MACs"

    def __init__(self, space: Space | str, resolution: int | None = None, width: float = 1.0) -> None:
        super().__init__(space, lambda layer: layer.macs, resolution=resolution, width=width)


class ExpectedFlash(ExpectedCost):
    """Expected Flash (bytes) of the int8 deployment on a microcontroller: per layer its weights, biases
    and quantisation data from the MCU estimator (``nasprof.devices.mcu.mcu_memory_for_layer``), plus the
    runtime's code once, as ``nasprof.search.McuArchMemory`` sizes an architecture for the search's
    memory constraint. ``forward(one_hot(arch))`` equals ``McuArchMemory(board, ...)(arch)[1]``.

    Layers the analytic MCU graph does not cover (the classifier head) are exported to ONNX once each, so
    the first construction per head shape takes a few seconds.
    """

    unit = "bytes"

    def __init__(
        self,
        space: Space | str,
        board: Any = "stm32f746",
        *,
        memory_model: str = "per-layer",
        runtime: str | None = None,
        resolution: int | None = None,
        width: float = 1.0,
    ) -> None:
        from nasprof.search.constraints import McuArchMemory

        sizes = McuArchMemory(board, memory_model, runtime)
        super().__init__(space, lambda layer: sizes.layer(layer)[1], constant=sizes.code_bytes,
                         resolution=resolution, width=width)
        self.board = board
        self.runtime = sizes.runtime
