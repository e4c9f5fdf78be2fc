"""Devices of a Ray cluster this process attached (``--ray``): ``get_device`` looks here first.

A registry of its own so that name resolution (``resolve.py``) and the farm (``farm.py``, which resolves
names on the worker side) need not import each other."""

from __future__ import annotations

from typing import Any

__all__ = ["ATTACHED", "attached"]

#: device name -> its ``RayDevice`` (a ``Backend``).
ATTACHED: dict[str, Any] = {}


def attached(name: str) -> Any | None:
    return ATTACHED.get(name)
