"""One estimate for one model on one board: peak SRAM, Flash, fit, per-layer profile, latency per runtime."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nasprof.devices.mcu.boards import Board, get_board
from nasprof.devices.mcu.flash import FlashReport, flash_report
from nasprof.devices.mcu.graph import McuGraph, load_graph
from nasprof.devices.mcu.latency import latency_by_runtime_ms, layer_latency_ms
from nasprof.devices.mcu.memory import MEMORY_MODELS, MemoryPlan
from nasprof.devices.mcu.planners import plan_memory
from nasprof.devices.mcu.runtimes import DEFAULT_RUNTIME, get_runtime
from nasprof.errors import InputError

__all__ = ["McuReport", "estimate_mcu", "fits", "MCU_REPORT_SCHEMA_VERSION"]

#: History: 1 — first version.
MCU_REPORT_SCHEMA_VERSION = 1


def fits(board: Board | str, peak_sram_bytes: int, flash_bytes: int) -> bool:
    """TinyNAS's hard constraint: peak SRAM ≤ the board's SRAM and Flash ≤ the board's Flash."""
    b = get_board(board) if isinstance(board, str) else board
    return peak_sram_bytes <= b.sram_bytes and flash_bytes <= b.flash_bytes


@dataclass(frozen=True)
class McuReport:
    """What ``nasprof measure MODEL --device <board>`` shows. Sizes in bytes, times in ms (estimates)."""

    model: str
    board: Board
    runtime: str
    plan: MemoryPlan
    flash: FlashReport
    latency_ms: dict[str, float]
    macs: int
    unsized_ops: tuple[str, ...] = ()

    @property
    def memory_model(self) -> str:
        return self.plan.memory_model

    @property
    def peak_sram_bytes(self) -> int:
        return self.plan.peak_bytes

    @property
    def flash_bytes(self) -> int:
        return self.flash.total_bytes

    @property
    def sram_headroom_bytes(self) -> int:
        return self.board.sram_bytes - self.peak_sram_bytes

    @property
    def flash_headroom_bytes(self) -> int:
        return self.board.flash_bytes - self.flash_bytes

    @property
    def fits_sram(self) -> bool:
        return self.sram_headroom_bytes >= 0

    @property
    def fits_flash(self) -> bool:
        return self.flash_headroom_bytes >= 0

    @property
    def fits(self) -> bool:
        return self.fits_sram and self.fits_flash

    @property
    def partial(self) -> bool:
        return bool(self.unsized_ops)

    @property
    def estimated_latency_ms(self) -> float:
        """Latency of the report's own runtime."""
        return self.latency_ms[self.runtime]

    def to_dict(self) -> dict[str, Any]:
        rt = get_runtime(self.runtime)
        per_layer = [
            {**row.to_dict(), "latency_ms": layer_latency_ms(row.macs, self.board, rt)}
            for row in self.plan.layers
        ]
        return {
            "schema_version": MCU_REPORT_SCHEMA_VERSION,
            "kind": "nasprof.mcu_estimate",
            "estimate": True,
            "model": self.model,
            "board": self.board.name,
            "board_spec": self.board.to_dict(),
            "memory_model": self.memory_model,
            "runtime": self.runtime,
            "peak_sram_bytes": self.peak_sram_bytes,
            "peak_layer": self.plan.peak_layer,
            "flash_bytes": self.flash_bytes,
            "fits": self.fits,
            "fits_sram": self.fits_sram,
            "fits_flash": self.fits_flash,
            "sram_headroom_bytes": self.sram_headroom_bytes,
            "flash_headroom_bytes": self.flash_headroom_bytes,
            "sram": {k: v for k, v in self.plan.to_dict().items() if k != "per_layer"},
            "flash": self.flash.to_dict(),
            "macs": self.macs,
            "latency_ms": dict(self.latency_ms),
            "partial": self.partial,
            "unsized_ops": list(self.unsized_ops),
            "per_layer": per_layer,
        }


def estimate_mcu(
    model: str | Path | McuGraph,
    board: Board | str,
    memory_model: str = "per-layer",
    runtime: str | None = None,
    *,
    allow_partial: bool = False,
    input_shapes: Mapping[str, Sequence[int]] | None = None,
) -> McuReport:
    """Estimate peak SRAM, Flash and latency of an ONNX model (path) or an ``McuGraph`` on ``board``.

    ``runtime`` picks the Flash format/code size and the headline latency; by default the runtime the memory
    model describes (per-layer and tinyengine: TinyEngine; tflm: TFLM + CMSIS-NN). Latency is estimated for
    every runtime.
    """
    if memory_model not in MEMORY_MODELS:
        raise InputError(f"unknown memory model {memory_model!r}; choose one of {', '.join(MEMORY_MODELS)}")
    b = get_board(board) if isinstance(board, str) else board
    rt = get_runtime(runtime or DEFAULT_RUNTIME[memory_model])
    graph = (model if isinstance(model, McuGraph)
             else load_graph(model, allow_partial=allow_partial, input_shapes=input_shapes))
    name = graph.name if isinstance(model, McuGraph) else str(model)
    plan = plan_memory(graph, memory_model)
    return McuReport(
        model=name,
        board=b,
        runtime=rt.name,
        plan=plan,
        flash=flash_report(graph, rt),
        latency_ms=latency_by_runtime_ms(graph, b),
        macs=graph.macs,
        unsized_ops=graph.unsized,
    )
