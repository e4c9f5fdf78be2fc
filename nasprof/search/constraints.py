"""Hard memory constraints: a candidate must fit a microcontroller's SRAM (activations) and Flash (weights).

MnasNet's reward has no memory term; an architecture that does not fit a board cannot be deployed at any
latency, so it is not penalised but excluded: the evaluator gives it reward -inf (see ``rewards``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from nasprof.errors import InputError

if TYPE_CHECKING:
    from nasprof.space import Arch

__all__ = ["MemoryConstraint", "MemoryUsageFn", "McuArchMemory"]

#: arch -> (peak SRAM bytes, Flash bytes) of its int8 deployment.
MemoryUsageFn = Callable[["Arch"], tuple[int, int]]


@dataclass(frozen=True, eq=False)
class MemoryConstraint:
    """Limits in bytes and the estimator that sizes a candidate. Usage is cached per architecture string."""

    name: str
    sram_bytes: int
    flash_bytes: int
    usage_fn: MemoryUsageFn
    _cache: dict[str, tuple[int, int]] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.sram_bytes <= 0 or self.flash_bytes <= 0:
            raise InputError(
                f"memory limits must be > 0 bytes, got SRAM {self.sram_bytes}, Flash {self.flash_bytes}"
            )

    @classmethod
    def for_board(cls, board: str, usage_fn: MemoryUsageFn | None = None) -> MemoryConstraint:
        """The SRAM/Flash of a board known to ``nasprof.devices.mcu`` (e.g. ``stm32f746``); by default
        candidates are sized with ``McuArchMemory`` (the MCU estimator, per layer)."""
        from nasprof.devices.mcu.boards import get_board

        b = get_board(board)
        usage = usage_fn if usage_fn is not None else McuArchMemory(b.name)
        return cls(name=b.name, sram_bytes=b.sram_bytes, flash_bytes=b.flash_bytes, usage_fn=usage)

    @classmethod
    def for_device(cls, name: str) -> MemoryConstraint:
        """The memory of a microcontroller device: a named device from the devices TOML whose backend is
        ``mcu`` (its board figures, memory model and runtime), or a board name. Other kinds are an error."""
        from nasprof.devices import get_device
        from nasprof.devices.mcu.backend import McuBackend
        from nasprof.devices.mcu.boards import BOARDS
        from nasprof.errors import DeviceUnavailableError

        try:
            backend = get_device(name)
        except DeviceUnavailableError:
            if name.strip().lower() in BOARDS:  # a board known as data only (registered without a device)
                return cls.for_board(name)
            raise
        if not isinstance(backend, McuBackend):
            raise InputError(
                f"--board {name} is a {backend.name} device; a memory constraint needs a microcontroller "
                "board (e.g. stm32f746) or a device added with --backend mcu"
            )
        b = backend.board
        usage = McuArchMemory(
            b, str(backend.config.get("memory_model") or "per-layer"), backend.config.get("runtime") or None
        )
        return cls(
            name=str(backend.device), sram_bytes=b.sram_bytes, flash_bytes=b.flash_bytes, usage_fn=usage
        )

    def usage(self, archs: Sequence[Arch]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """Peak SRAM and Flash, in bytes, of each architecture."""
        sram = np.empty(len(archs), dtype=np.int64)
        flash = np.empty(len(archs), dtype=np.int64)
        for i, arch in enumerate(archs):
            key = arch.to_string()
            hit = self._cache.get(key)
            if hit is None:
                used_sram, used_flash = self.usage_fn(arch)
                hit = self._cache[key] = (int(used_sram), int(used_flash))
            sram[i], flash[i] = hit
        return sram, flash

    def fits(self, sram: NDArray[np.int64], flash: NDArray[np.int64]) -> NDArray[np.bool_]:
        return (np.asarray(sram) <= self.sram_bytes) & (np.asarray(flash) <= self.flash_bytes)

    def violation(self, sram: NDArray[np.int64], flash: NDArray[np.int64]) -> NDArray[np.float64]:
        """Relative overuse of the tighter memory: 0 when it fits, 0.5 when 50% too big."""
        over = np.maximum(np.asarray(sram) / self.sram_bytes, np.asarray(flash) / self.flash_bytes) - 1.0
        return np.maximum(over, 0.0)

    def to_dict(self) -> dict[str, Any]:
        return {"device": self.name, "sram_bytes": self.sram_bytes, "flash_bytes": self.flash_bytes}


class McuArchMemory:
    """Peak SRAM and Flash of an architecture from the MCU estimator's per-layer figures, cached per layer.

    ``board`` is a board name or a ``nasprof.devices.mcu.Board``. Each distinct layer is exported once and
    sized by ``nasprof.devices.mcu.mcu_memory_for_layer`` (the same estimator as ``nasprof measure --device
    <board>``); an architecture's peak SRAM is the largest layer peak and its Flash the layers' sum plus the
    runtime's code, as ``nasprof.devices.mcu.network_fits`` sums them. The first architectures of a search
    pay for the exports; after that every candidate is a handful of dictionary look-ups, because a space
    has few distinct layers.
    """

    def __init__(self, board: Any, memory_model: str = "per-layer", runtime: str | None = None) -> None:
        from nasprof.devices.mcu.runtimes import DEFAULT_RUNTIME, get_runtime

        if memory_model not in DEFAULT_RUNTIME:
            raise InputError(
                f"unknown memory model {memory_model!r}: use one of {', '.join(DEFAULT_RUNTIME)}"
            )
        self.board = board
        self.memory_model = memory_model
        self.runtime = runtime or DEFAULT_RUNTIME[memory_model]
        self.code_bytes = get_runtime(self.runtime).code_bytes
        self._layers: dict[str, tuple[int, int]] = {}

    def layer(self, layer: Any) -> tuple[int, int]:
        """(peak SRAM, Flash without code) of one layer, in bytes."""
        hit = self._layers.get(layer.key)
        if hit is None:
            from nasprof.devices.mcu.layers import mcu_memory_for_layer

            m = mcu_memory_for_layer(layer, self.board, self.memory_model, self.runtime)
            hit = self._layers[layer.key] = (m.peak_sram_bytes, m.flash_bytes)
        return hit

    def __call__(self, arch: Arch) -> tuple[int, int]:
        sizes = [self.layer(layer) for layer in arch.layers()]
        return max(s for s, _ in sizes), sum(f for _, f in sizes) + self.code_bytes
