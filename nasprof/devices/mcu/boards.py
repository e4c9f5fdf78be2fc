"""Microcontroller boards as data: core, clock, SRAM and Flash.

Figures come from ST's datasheets as summarised in MCUNet (Lin et al., NeurIPS 2020) and MCUNetV2
(arXiv 2110.15352); see ../shared/REFERENCE.md "Microcontrollers". "KB" on a datasheet is 1024 bytes, so
320 KB of SRAM is 327,680 B. The H743 has 1 MB of SRAM in several banks; MCUNet uses the 512 KB AXI SRAM
as one contiguous arena, and so do we.

More boards come in as plain dicts (the ``[devices.NAME]`` tables of the devices TOML) through
``board_from_dict``; nothing here reads files.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nasprof.errors import DeviceUnavailableError, InputError
from nasprof.registry import Registry

__all__ = ["Board", "BOARDS", "get_board", "list_boards", "board_from_dict", "register_board", "KIB"]

KIB = 1024


@dataclass(frozen=True)
class Board:
    """One microcontroller board. Sizes are in bytes, the clock in MHz."""

    name: str
    core: str
    clock_mhz: float
    sram_bytes: int
    flash_bytes: int
    description: str = ""

    def __post_init__(self) -> None:
        if not self.name or self.name != self.name.lower() or " " in self.name:
            raise InputError(f"board name {self.name!r} must be lower-case without spaces (e.g. 'stm32f746')")
        if self.clock_mhz <= 0 or self.sram_bytes <= 0 or self.flash_bytes <= 0:
            raise InputError(f"board {self.name!r}: clock_mhz, sram and flash must all be > 0")

    @property
    def clock_hz(self) -> float:
        return self.clock_mhz * 1e6

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "core": self.core,
            "clock_mhz": self.clock_mhz,
            "sram_bytes": self.sram_bytes,
            "flash_bytes": self.flash_bytes,
            "description": self.description,
        }


def _b(name: str, core: str, mhz: float, sram_kb: int, flash_kb: int, description: str = "") -> Board:
    return Board(name, core, mhz, sram_kb * KIB, flash_kb * KIB, description)


#: Boards by name (``nasprof.registry.Registry``): the built-ins (REFERENCE.md "Microcontrollers") and those
#: read from the devices TOML; third-party packages add theirs through the ``nasprof.boards`` entry points.
BOARDS: Registry[Board] = Registry("board", entry_point_group="nasprof.boards", error=DeviceUnavailableError,
                                   normalize=lambda name: name.strip().lower())
for _board in (
    _b("stm32f746", "Cortex-M7", 216, 320, 1024, "STM32F746 (MCUNet's main board)"),
    _b("stm32f767", "Cortex-M7", 216, 512, 2048, "STM32F767 / F765"),
    _b("stm32f412", "Cortex-M4F", 100, 256, 1024, "STM32F412"),
    _b("stm32h743", "Cortex-M7", 480, 512, 2048, "STM32H743 (512 KB AXI SRAM of 1 MB total)"),
    _b("stm32l476", "Cortex-M4", 80, 128, 1024, "STM32L476"),
    _b("stm32f411", "Cortex-M4", 100, 128, 512, "STM32F411"),
):
    BOARDS.register(_board.name, _board)


def list_boards() -> list[str]:
    return BOARDS.names()


def get_board(name: str) -> Board:
    """The board called ``name`` (case-insensitive); unknown names get the list of known boards."""
    if not isinstance(name, str) or name.strip().lower() not in BOARDS:
        raise DeviceUnavailableError(f"unknown board {name!r}; known boards: {', '.join(list_boards())}")
    return BOARDS.get(name)


def register_board(board: Board, *, replace: bool = False) -> Board:
    """Add a board (e.g. one read from the devices TOML). A clash with a different board is an error."""
    old = BOARDS.get(board.name) if board.name in BOARDS else None
    if old is not None and old != board and not replace:
        raise InputError(f"board {board.name!r} already exists with different figures; pick another name")
    return BOARDS.register(board.name, board, replace=True)


def _size(d: Mapping[str, Any], key: str, name: str) -> int:
    """Read ``<key>_bytes`` or ``<key>_kb`` (KiB) from a TOML table."""
    if f"{key}_bytes" in d:
        value = d[f"{key}_bytes"]
        scale = 1
    elif f"{key}_kb" in d:
        value = d[f"{key}_kb"]
        scale = KIB
    else:
        raise InputError(f"board {name!r} needs {key}_kb (KiB) or {key}_bytes")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise InputError(f"board {name!r}: {key} must be a positive number, got {value!r}")
    return int(value * scale)


def board_from_dict(d: Mapping[str, Any], name: str | None = None) -> Board:
    """Build a ``Board`` from a TOML-style table.

    Accepted keys: ``name`` (or the ``name`` argument), ``core``, ``clock_mhz``, ``sram_kb`` or
    ``sram_bytes``, ``flash_kb`` or ``flash_bytes``, ``description``. A table may also start from a
    built-in board with ``base = "stm32f746"`` and override some keys (e.g. a smaller usable SRAM).
    """
    board_name = str(name or d.get("name") or "").strip().lower()
    if not board_name:
        raise InputError("a board needs a name")
    base: dict[str, Any] = {}
    if "base" in d:
        base = get_board(str(d["base"])).to_dict()
        base["sram_bytes"], base["flash_bytes"] = base.pop("sram_bytes"), base.pop("flash_bytes")
    merged = {**base, **{k: v for k, v in d.items() if k != "base"}}
    if "sram_kb" in d:
        merged.pop("sram_bytes", None)
    if "flash_kb" in d:
        merged.pop("flash_bytes", None)
    clock = merged.get("clock_mhz")
    if isinstance(clock, bool) or not isinstance(clock, (int, float)) or clock <= 0:
        raise InputError(f"board {board_name!r} needs clock_mhz > 0, got {clock!r}")
    return Board(
        name=board_name,
        core=str(merged.get("core", "Cortex-M")),
        clock_mhz=float(clock),
        sram_bytes=_size(merged, "sram", board_name),
        flash_bytes=_size(merged, "flash", board_name),
        description=str(merged.get("description", "")),
    )
