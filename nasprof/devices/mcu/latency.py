"""Latency *estimate*: MACs × cycles-per-MAC of a runtime ÷ the board's clock.

Nothing here is measured. The cycles-per-MAC figures (``runtimes``) fold memory stalls, requantisation and
the non-MAC ops into one average taken over whole MobileNet-like networks, so per-layer values are only
indicative; element-wise ops and pooling are charged one "MAC" per output (or input) element.
"""

from __future__ import annotations

from nasprof.devices.mcu.boards import Board
from nasprof.devices.mcu.graph import McuGraph
from nasprof.devices.mcu.runtimes import RUNTIMES, Runtime

__all__ = ["layer_latency_ms", "latency_ms", "latency_by_runtime_ms"]


def layer_latency_ms(macs: int, board: Board, runtime: Runtime) -> float:
    return macs * runtime.cycles_per_mac / board.clock_hz * 1e3


def latency_ms(graph: McuGraph, board: Board, runtime: Runtime) -> float:
    return layer_latency_ms(graph.macs, board, runtime)


def latency_by_runtime_ms(graph: McuGraph, board: Board) -> dict[str, float]:
    """``{runtime name: estimated ms}`` for every known runtime."""
    return {name: latency_ms(graph, board, rt) for name, rt in RUNTIMES.items()}
