"""``nasprof.measure``: the Python face of ``nasprof measure``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from nasprof.profiler.measurement import Measurement

__all__ = ["measure", "measure_sweep"]


def measure(
    path: str | Path,
    device: str = "cpu",
    threads: int | None = None,
    warmup: int = 20,
    runs: int = 100,
    sessions: int = 3,
    input_shapes: Mapping[str, Sequence[int]] | Sequence[str] | None = None,
    per_node: bool = False,
    *,
    per_node_runs: int = 20,
    opt_level: str = "all",
    seed: int = 0,
    target_rel_ci: float | None = None,
    max_runs: int | None = None,
    int_range: tuple[int, int] | None = None,
    options: Mapping[str, Any] | None = None,
) -> Measurement:
    """Measure the end-to-end latency of the ONNX model at ``path`` on ``device``.

    ``input_shapes`` fixes symbolic dimensions, as a mapping (``{"input": (1, 3, 224, 224)}``) or as CLI-style
    strings (``["input=1x3x224x224"]``). ``per_node`` adds a separate profiled pass with ``per_node_runs``
    runs. ``target_rel_ci``/``max_runs`` turn on adaptive repetition (see ``MeasureSpec``). ``int_range`` is
    the ``[low, high)`` range of random integer inputs. ``threads=None`` takes the named device's ``threads``
    setting (``nasprof devices add ... --threads N``), else 1. Returns a ``Measurement`` (samples in ms).

    Raises ``ModelError``/``InputError`` for a bad model or options and ``DeviceUnavailableError`` for an
    unknown device.
    """
    from nasprof.devices import MeasureSpec, get_device
    from nasprof.profiler.onnx_model import parse_input_shapes

    if input_shapes is None:
        shapes: dict[str, tuple[int, ...]] = {}
    elif isinstance(input_shapes, str):
        shapes = parse_input_shapes([input_shapes])
    elif isinstance(input_shapes, Mapping):
        shapes = {str(k): tuple(int(d) for d in v) for k, v in input_shapes.items()}
    else:
        shapes = parse_input_shapes(list(input_shapes))
    opts = dict(options or {})
    if int_range is not None:
        opts["int_range"] = (int(int_range[0]), int(int_range[1]))
    backend = get_device(device)
    if threads is None:
        threads = _device_threads(backend.config)
    spec = MeasureSpec(
        threads=threads,
        warmup=warmup,
        runs=runs,
        sessions=sessions,
        input_shapes=shapes,
        per_node=per_node,
        per_node_runs=per_node_runs,
        opt_level=opt_level,
        seed=seed,
        target_rel_ci=target_rel_ci,
        max_runs=max_runs,
        options=opts,
    )
    return backend.measure(Path(path), spec)


def _device_threads(config: Mapping[str, Any]) -> int:
    from nasprof.errors import InputError

    value = config.get("threads", 1)
    try:
        return int(value)
    except (TypeError, ValueError):
        raise InputError(f"the device's threads setting {value!r} is not an integer; fix it with "
                         "`nasprof devices add NAME ... --threads N --force`") from None


def measure_sweep(
    path: str | Path, threads: Sequence[int], device: str = "cpu", **kwargs: Any
) -> list[Measurement]:
    """``measure`` once per thread count in ``threads`` (``measure --threads 1,2,4``), in order; the other
    keyword arguments are ``measure``'s. A sweep gives one summary per count: no per-node pass."""
    from nasprof.errors import InputError

    if kwargs.get("per_node"):
        raise InputError("a --threads sweep gives one summary per count; measure one count for --per-node")
    return [measure(path, device=device, threads=t, **kwargs) for t in threads]
