"""Search spaces, the block zoo, presets, MAC/parameter counting and ONNX export.

Importing this package is cheap (no torch): blocks, layers, architectures and spaces are pure Python.
``export_arch``/``export_layer`` import torch on first use; ``count_onnx`` imports onnx.
"""

from __future__ import annotations

import importlib
from typing import Any

from nasprof.space.arch import Arch
from nasprof.space.blocks import (
    BlockFamily,
    BlockSpec,
    get_family,
    list_blocks,
    make_divisible,
    register_block,
)
from nasprof.space.layer import Layer
from nasprof.space.network import Network
from nasprof.space.spaces import Mbv2Stage, MnasBlock, Space, get_space, list_spaces

_LAZY: dict[str, str] = {
    "export_arch": "nasprof.space.export",
    "export_many": "nasprof.space.export",
    "export_layer": "nasprof.space.export",
    "export_network": "nasprof.space.export",
    "ExportResult": "nasprof.space.export",
    "count_onnx": "nasprof.space.counting",
    "count_network": "nasprof.space.counting",
    "LayerCount": "nasprof.space.counting",
    "ModelCount": "nasprof.space.counting",
    "get_preset": "nasprof.space.presets",
    "list_presets": "nasprof.space.presets",
    "resolve_model": "nasprof.space.presets",
}

__all__ = [
    "Arch",
    "BlockFamily",
    "BlockSpec",
    "Layer",
    "MnasBlock",
    "Mbv2Stage",
    "Network",
    "Space",
    "get_family",
    "get_space",
    "list_blocks",
    "list_spaces",
    "make_divisible",
    "register_block",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'nasprof.space' has no attribute {name!r}")
