"""The preset registry: ``@register_preset("mobilenet_v2")`` on a function ``(width, resolution, **options)
-> Network``."""

from __future__ import annotations

from collections.abc import Callable

from nasprof.errors import SpaceError
from nasprof.registry import Registry
from nasprof.space.network import Network

__all__ = ["PresetFn", "preset_registry", "register_preset"]

PresetFn = Callable[..., Network]

preset_registry: Registry[PresetFn] = Registry("preset", error=SpaceError)


def register_preset(name: str) -> Callable[[PresetFn], PresetFn]:
    def deco(fn: PresetFn) -> PresetFn:
        if name in preset_registry:
            raise SpaceError(f"preset {name!r} is already registered")
        return preset_registry.register(name, fn)

    return deco
