"""The block zoo: one module per family, each registering itself with ``@register_block``."""

from nasprof.space.blocks import (  # noqa: F401 - imported for their registration side effect
    acnet,
    conv,
    dwsep,
    fire,
    mbconv,
    nasnet,
    nb201,
    repvgg,
    resnet,
    resnext,
    shuffle,
    shuffle_v2,
    stem_head,
)
from nasprof.space.blocks.base import (
    ACTIVATIONS,
    SKIPS,
    BlockFamily,
    BlockRegistry,
    BlockSpec,
    block_registry,
    get_family,
    list_blocks,
    make_divisible,
    register_block,
)

__all__ = [
    "ACTIVATIONS",
    "SKIPS",
    "BlockFamily",
    "BlockRegistry",
    "BlockSpec",
    "block_registry",
    "get_family",
    "list_blocks",
    "make_divisible",
    "register_block",
]
