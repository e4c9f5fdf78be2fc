"""What a lookup table's keys say without the table: the layer family (the key's prefix)."""

from __future__ import annotations

__all__ = ["key_family"]


def key_family(key: str) -> str:
    """The layer family a table key belongs to: its prefix (``mbconv-input:...`` -> ``mbconv``)."""
    return key.split("-input:", 1)[0]
