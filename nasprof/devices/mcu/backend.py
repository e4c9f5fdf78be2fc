"""``McuBackend``: the microcontroller "device" — an estimator, not a measurement.

Every built-in board is registered under its own name (``nasprof measure m.onnx --device stm32f746``), and the
generic ``mcu`` backend takes a ``board=`` (a name, a ``Board`` or a TOML-style dict), which is how a board
defined in the devices TOML becomes a device. The returned ``Measurement`` has ``estimated=True``, one
sample (the estimated latency of the report's runtime) and the full report in ``memory``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nasprof.devices.base import Backend, BackendRegistry, MeasureSpec, registry
from nasprof.devices.mcu.boards import BOARDS, Board, board_from_dict, get_board, register_board
from nasprof.errors import DeviceUnavailableError, InputError
from nasprof.profiler.measurement import Measurement

__all__ = ["McuBackend", "register_board_device"]


_BOARD_KEYS = frozenset({"base", "core", "clock_mhz", "sram_kb", "sram_bytes", "flash_kb", "flash_bytes",
                         "description"})


def _resolve_board(board: Board | Mapping[str, Any] | str | None, device: str | None) -> Board:
    if isinstance(board, Board):
        return board
    if isinstance(board, Mapping):
        return board_from_dict(board, name=str(board.get("name") or device or ""))
    if isinstance(board, str):
        return get_board(board)
    if device:
        return get_board(device)
    raise DeviceUnavailableError(f"the mcu backend needs a board; known boards: {', '.join(sorted(BOARDS))}")


class McuBackend(Backend):
    """Estimates peak SRAM, Flash and latency of an int8 deployment on a microcontroller board.

    Options (constructor ``**config`` or ``MeasureSpec.options``, the latter winning): ``memory_model``
    (per-layer | tflm | tinyengine, default per-layer), ``runtime`` (tflm | cmsis-nn | x-cube-ai | tinyengine,
    default: the memory model's runtime), ``allow_partial`` (estimate past operators it cannot size).
    """

    name = "mcu"
    #: Generic options that mean nothing to an estimate (no inputs are run, no threads are used).
    _IGNORED = frozenset({"int_range", "threads"})

    def __init__(self, device: str | None = None, board: Board | Mapping[str, Any] | str | None = None,
                 **config: Any) -> None:
        # A devices-TOML table may describe its board inline (base, sram_kb, clock_mhz, ...) next to options;
        # with board = NAME too, the named board is the base and the inline figures override it.
        inline = {k: config.pop(k) for k in list(config) if k in _BOARD_KEYS}
        if inline:
            if isinstance(board, str):
                inline = {"base": board, **inline}
            elif board is not None:
                raise InputError(f"device {device!r}: board figures ({', '.join(sorted(inline))}) can only "
                                 "override a board given by name")
            board = {"name": device or "", **inline}
        self.board = _resolve_board(board, device)
        super().__init__(device=device or self.board.name, **config)

    def available(self) -> tuple[bool, str]:
        return True, ""  # nothing to attach: the estimate runs on this host

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "device": self.device, "estimate": True, **self.board.to_dict(),
                **self.config}

    def measure(self, model: Path, spec: MeasureSpec) -> Measurement:
        from nasprof.devices.mcu.report import estimate_mcu

        opts = {k: v for k, v in {**self.config, **dict(spec.options)}.items() if k not in self._IGNORED}
        unknown = set(opts) - {"memory_model", "runtime", "allow_partial"}
        if unknown:
            raise InputError(f"unknown option(s) for a microcontroller: {', '.join(sorted(unknown))}; "
                             "use memory_model, runtime, allow_partial")
        report = estimate_mcu(
            model,
            self.board,
            memory_model=str(opts.get("memory_model") or "per-layer"),
            runtime=opts.get("runtime") or None,
            allow_partial=bool(opts.get("allow_partial", False)),
            input_shapes=spec.input_shapes or None,
        )
        return Measurement(
            device=self.device,
            backend=self.name,
            samples_ms=(report.estimated_latency_ms,),
            metadata={
                "board": self.board.name,
                "core": self.board.core,
                "clock_mhz": self.board.clock_mhz,
                "memory_model": report.memory_model,
                "runtime": report.runtime,
                "estimate": "MACs x cycles-per-MAC / clock; memory from a model of the runtime, not measured",
            },
            estimated=True,
            memory=report.to_dict(),
        )


def _board_factory(board_name: str) -> Any:
    def factory(device: str | None = None, **config: Any) -> McuBackend:
        return McuBackend(device=device or board_name, board=config.pop("board", board_name), **config)

    factory.__name__ = f"mcu_{board_name}"
    return factory


def register_board_device(board: Board, reg: BackendRegistry = registry) -> Board:
    """Add ``board`` and register a device of the same name (boards from the devices TOML)."""
    register_board(board)
    if board.name not in reg:
        reg.register(board.name, _board_factory(board.name))
    return board


registry.register("mcu", McuBackend)
for _name in sorted(BOARDS):
    registry.register(_name, _board_factory(_name))
