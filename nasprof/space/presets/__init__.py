"""Published networks built from the block zoo: ``get_preset("mobilenet_v2", width=0.35, resolution=144)``.

Each preset is a function ``(width, resolution, **options) -> Network`` registered by name. Channel counts
follow the reference implementations (torchvision, TF MnasNet, the papers); see each module's docstring.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nasprof.errors import SpaceError
from nasprof.space.network import Network

__all__ = ["register_preset", "get_preset", "list_presets", "resolve_model", "PresetFn"]

# Importing the preset modules registers them (their names are the registry's).
from nasprof.space.presets import (  # noqa: E402, F401 - registration side effect
    efficientnet,
    mnasnet,
    mobilenet,
    regnet,
    repvgg,
    resnet,
    shufflenet,
    squeezenet,
)
from nasprof.space.presets._registry import PresetFn, preset_registry, register_preset  # noqa: E402


def list_presets() -> list[str]:
    return preset_registry.names()


def get_preset(name: str, width: float = 1.0, resolution: int = 224, **options: Any) -> Network:
    """Build preset ``name``. ``options`` are preset-specific (e.g. ``last_channel`` for mobilenet_v2,
    ``groups`` for shufflenet_v1, ``num_classes`` for all)."""
    if name not in preset_registry:
        raise SpaceError(f"unknown preset {name!r}; known: {', '.join(preset_registry.names())}")
    if not isinstance(resolution, int) or not 16 <= resolution <= 2048:
        raise SpaceError(f"resolution must be an integer in [16, 2048], got {resolution!r}")
    if not 0.1 <= width <= 4.0:
        raise SpaceError(f"width multiplier must be in [0.1, 4.0], got {width!r}")
    try:
        net = preset_registry.get(name)(width=width, resolution=resolution, **options)
    except TypeError as exc:
        import inspect

        accepted = set(inspect.signature(preset_registry.get(name)).parameters) - {"width", "resolution"}
        unknown = sorted(set(options) - accepted)
        if unknown:
            flag = "--" + unknown[0].replace("_", "-")
            raise SpaceError(f"preset {name} has no option {unknown[0]!r} ({flag}); it takes "
                             f"{', '.join(sorted(accepted)) or 'no options'}") from None
        raise SpaceError(f"preset {name}: {exc}") from None
    info = {"preset": name, **{k: str(v) for k, v in options.items()}}
    return Network(net.name, net.resolution, net.stem, net.blocks, net.head, net.in_channels, width, info)


def resolve_model(
    text: str, resolution: int | None = None, width: float | None = None, **options: Any
) -> Network:
    """A preset name, a compact architecture string or an architecture JSON file -> ``Network``.

    For an architecture, ``resolution``/``width`` override the ones it carries.
    """
    from nasprof.space.arch import Arch

    if text in preset_registry:
        return get_preset(
            text,
            width=1.0 if width is None else width,
            resolution=224 if resolution is None else resolution,
            **options,
        )
    if text.endswith(".onnx"):
        raise SpaceError(
            f"{text} is an ONNX file, not a preset or architecture; count it with `nasprof count`"
        )
    if "|" in text:
        arch = Arch.from_string(text)
    elif text.endswith(".json") or Path(text).is_file():
        arch = Arch.from_json(Path(text))
    else:
        raise SpaceError(
            f"unknown preset {text!r}; known: {', '.join(preset_registry.names())} (or pass an "
            "architecture string SPACE:RES:WIDTH|... or a JSON file)"
        )
    if options:
        raise SpaceError(f"options {', '.join(options)} apply to presets only")
    if resolution is not None or width is not None:
        arch = Arch(
            arch.space,
            arch.resolution if resolution is None else resolution,
            arch.width if width is None else width,
            arch.blocks,
        )
    return arch.network()
