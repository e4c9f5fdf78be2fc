"""Microcontroller estimator: peak SRAM, Flash and latency of int8 models on STM32-class boards.

Importing this package registers one device per built-in board (``stm32f746``, ...) and the generic ``mcu``
backend. It is cheap: onnx loads only when a model is read.

Library entry points: ``estimate_mcu(model, board, memory_model, runtime)`` → ``McuReport``;
``fits(board, peak_sram_bytes, flash_bytes)`` (TinyNAS's hard constraint); ``mcu_memory_for_layer`` (table
entries); boards as data (``get_board``, ``list_boards``, ``board_from_dict``, ``register_board_device``).
"""

from __future__ import annotations

from typing import Any

from nasprof.devices.mcu.backend import McuBackend, register_board_device
from nasprof.devices.mcu.boards import BOARDS, Board, board_from_dict, get_board, list_boards, register_board
from nasprof.devices.mcu.graph import McuGraph, McuOp, McuTensor, UnsupportedOpsError, load_graph
from nasprof.devices.mcu.memory import MEMORY_MODELS, LayerMemory, MemoryPlan
from nasprof.devices.mcu.planners import plan_memory
from nasprof.devices.mcu.report import McuReport, estimate_mcu, fits
from nasprof.devices.mcu.runtimes import RUNTIMES, Runtime, get_runtime

__all__ = [
    "McuBackend", "register_board_device",
    "Board", "BOARDS", "board_from_dict", "get_board", "list_boards", "register_board",
    "McuGraph", "McuOp", "McuTensor", "UnsupportedOpsError", "load_graph",
    "MEMORY_MODELS", "LayerMemory", "MemoryPlan", "plan_memory",
    "McuReport", "estimate_mcu", "fits",
    "RUNTIMES", "Runtime", "get_runtime",
    "mcu_memory_for_layer",
]


def __getattr__(name: str) -> Any:
    # Lazy: the layer helpers may export blocks with torch; importing this package must stay cheap.
    if name == "mcu_memory_for_layer":
        from nasprof.devices.mcu.layers import mcu_memory_for_layer

        return mcu_memory_for_layer
    raise AttributeError(f"module 'nasprof.devices.mcu' has no attribute {name!r}")
