"""The layers of a table build: which distinct layers a space has at a resolution, which of them one shard
(``--shard I/N``) takes, the order they are measured in, and the columns each one's entry gets.

Apart from ``builder`` because none of it measures anything: it decides *what* a build measures and *how an
entry describes its layer*, and tests and other writers of tables (``layer_entry_fields``) use it alone."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from nasprof.errors import InputError, NasprofError, SpaceError
from nasprof.profiler.measurement import Measurement

__all__ = [
    "distinct_layers", "layer_entry_fields", "measure_order", "memory_fields", "parse_shard", "resolve_space",
    "select_layers",
]


def parse_shard(text: str | tuple[int, int] | None) -> tuple[int, int] | None:
    """``"2/4"`` -> ``(2, 4)``: the second of four shares (1-based)."""
    if text is None or isinstance(text, tuple):
        shard = text
    else:
        try:
            i, n = (int(p) for p in str(text).split("/"))
        except ValueError:
            raise InputError(f"--shard must look like I/N (e.g. 1/4), got {text!r}") from None
        shard = (i, n)
    if shard is not None and not (shard[1] >= 1 and 1 <= shard[0] <= shard[1]):
        raise InputError(f"--shard {shard[0]}/{shard[1]}: need 1 <= I <= N")
    return shard


def measure_order(layer: Any) -> bytes:
    """A fixed pseudo-random rank of a layer (a hash of its key): the order entries are measured in.

    A shared machine's speed drifts over minutes. Measured in key order, layers of one family and input
    size would share one stretch of that drift, and every network's sum would inherit it as a bias that
    depends on which families it uses (seen here: stretches of ~100 entries 2-5% faster than the rest).
    In hashed order the drift lands on unrelated layers and largely cancels in a network's sum.
    """
    return hashlib.sha256(layer.key.encode()).digest()


def select_layers(layers: Sequence[Any], shard: tuple[int, int] | None) -> list[Any]:
    """Distinct layers sorted by key, then every N-th one starting at I-1: deterministic, balanced shards
    that do not depend on what is already measured, so shards can start at different times."""
    by_key = {layer.key: layer for layer in layers}
    ordered = [by_key[k] for k in sorted(by_key)]
    if shard is None:
        return ordered
    i, n = shard
    return ordered[i - 1 :: n]


def layer_entry_fields(layer: Any) -> dict[str, Any]:
    """The spec and shape columns of a ``nasprof.space.Layer`` (plus analytic MACs and params)."""
    spec = layer.spec
    cin, hin, win = layer.input_shape
    cout, hout, wout = layer.output_shape
    out: dict[str, Any] = {
        "in_c": cin, "in_h": hin, "in_w": win, "out_c": cout, "out_h": hout, "out_w": wout,
        "macs": int(layer.macs), "params": int(layer.params),
    }
    for name in ("op", "cin", "cout", "kernel", "stride", "expand", "se", "act", "skip", "groups", "mid",
                 "variant"):
        v = getattr(spec, name, None)
        out[name] = v if v is None or isinstance(v, (int, float, str)) else str(v)
    return out


def memory_fields(m: Measurement, layer: Any, memory_board: str | None) -> dict[str, Any]:
    """Peak SRAM and Flash of the layer (bytes): from an MCU backend's report, or, when ``memory_board``
    is asked for, from the MCU estimator. Flash excludes the runtime's code, which a network pays once."""
    if memory_board is not None:
        from nasprof.devices.mcu import mcu_memory_for_layer

        mem = mcu_memory_for_layer(layer, memory_board)
        return {"peak_sram_bytes": mem.peak_sram_bytes, "flash_bytes": mem.flash_bytes}
    rep = m.memory or {}  # the MCU backend reports memory with each estimate; others leave it None
    out: dict[str, Any] = {}
    if rep.get("peak_sram_bytes") is not None:
        out["peak_sram_bytes"] = int(rep["peak_sram_bytes"])
    if rep.get("flash_bytes") is not None:
        code = (rep.get("flash") or {}).get("code_bytes", 0)
        out["flash_bytes"] = int(rep["flash_bytes"]) - int(code)
    return out


def distinct_layers(space: Any, resolution: int) -> list[Any]:
    if not isinstance(resolution, int) or isinstance(resolution, bool) or resolution <= 0:
        raise InputError(f"--resolution must be a positive integer, got {resolution!r}")
    try:
        # The space's own rule decides which resolutions it takes (validate() of an arch at that size).
        if hasattr(space, "sample") and hasattr(space, "validate"):
            space.validate(space.sample(1, seed=0, resolution=resolution)[0])
        layers = list(space.distinct_layers(resolution))
    except NasprofError:
        raise
    except ValueError as exc:
        raise SpaceError(f"space {space.name!r} cannot take resolution {resolution}: {exc}") from None
    if not layers:
        raise SpaceError(f"space {space.name!r} has no layers at resolution {resolution}")
    return layers


def resolve_space(space: Any) -> Any:
    if isinstance(space, str):
        from nasprof.space import get_space

        return get_space(space)
    return space
