"""Search spaces by name: ``get_space("mnasnet")``, ``list_spaces()``."""

from __future__ import annotations

from nasprof.space.registry import get_space, list_spaces, register_space
from nasprof.space.spaces.base import Space
from nasprof.space.spaces.mnasnet import MnasBlock, MnasNetSpace
from nasprof.space.spaces.mobilenetv2 import Mbv2Stage, MobileNetV2Space
from nasprof.space.spaces.nasnet import NasNetSpace
from nasprof.space.spaces.nb201 import NB201_OPS, Nb201Space
from nasprof.space.spaces.regnet import RegNetSpace, RegStage

__all__ = [
    "Space",
    "MnasBlock",
    "MnasNetSpace",
    "Mbv2Stage",
    "MobileNetV2Space",
    "NasNetSpace",
    "NB201_OPS",
    "Nb201Space",
    "RegStage",
    "RegNetSpace",
    "get_space",
    "list_spaces",
]

for _space in (MnasNetSpace(), MobileNetV2Space(), RegNetSpace(), NasNetSpace(), Nb201Space()):
    register_space(_space)
