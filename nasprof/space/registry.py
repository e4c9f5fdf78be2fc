"""The search-space registry: built-in spaces register when ``nasprof.space.spaces`` is imported (which the
``nasprof.space`` package does first); third-party spaces come in through the ``nasprof.spaces``
entry-point group (an entry point names a ``Space`` subclass or instance)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nasprof.errors import SpaceError
from nasprof.registry import Registry

if TYPE_CHECKING:
    from nasprof.space.spaces.base import Space

__all__ = ["space_registry", "get_space", "list_spaces", "register_space"]

space_registry: Registry[Any] = Registry("search space", entry_point_group="nasprof.spaces", error=SpaceError)


def register_space(space: Space) -> Space:
    """Register a space instance under its ``name``."""
    return space_registry.register(space.name, space)


def get_space(name: str) -> Space:
    obj = space_registry.get(name)
    if isinstance(obj, type):  # a plugin's entry point may name the class: one instance per process
        obj = space_registry.register(name, obj(), replace=True)
    return obj  # type: ignore[no-any-return]


def list_spaces() -> list[str]:
    return space_registry.names()
