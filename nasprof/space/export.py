"""ONNX export of networks, architectures, presets and single layers (legacy TorchScript exporter, opset 17).

Every export: deterministic random weights (``seed``), eval mode, BatchNorm folded into the convs (RepVGG
re-parameterised) *before* tracing, batch 1, input ``input``, output ``output``, node names scoped by
layer (``/blocks.3/...``). The file is written atomically and checked to contain no BatchNormalization.
The legacy exporter (``dynamo=False``) is used because it keeps module scopes in node names.
"""

from __future__ import annotations

import io
import shutil
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import onnx
import torch

from nasprof._io import atomic_write_bytes
from nasprof.errors import InputError, ModelError, SpaceError
from nasprof.space.arch import Arch
from nasprof.space.layer import Layer
from nasprof.space.network import Network
from nasprof.space.nn.common import NetworkModule, fold_bn, instantiate

__all__ = ["OPSET", "export_arch", "export_many", "export_layer", "export_network", "export_module"]

OPSET = 17
#: export_layer traces at most at this spatial size (see export_module's trace_hw).
TRACE_SIZE = 16


#: Serialises torch.onnx.export across threads (see _export_model).
_EXPORT_LOCK = threading.Lock()

def export_module(
    model: torch.nn.Module,
    input_shape: tuple[int, ...],
    path: str | Path,
    metadata: dict[str, str] | None = None,
    *,
    trace_hw: tuple[int, int] | None = None,
    output_shape: tuple[int, ...] | None = None,
) -> Path:
    """Fold BN, trace ``model`` and write ONNX to ``path`` atomically, with ``input_shape`` fixed.

    By default the trace runs on a zero tensor of ``input_shape``. With ``trace_hw`` it runs at that smaller
    spatial size with height/width marked dynamic, and the file's input and output are then pinned to
    ``input_shape``/``output_shape``: the operators of a block do not depend on the spatial size, and
    tracing runs the real convolutions, which at 112x112 costs most of an export.
    """
    fold_bn(model)
    n, c, h, w = input_shape
    dynamic = trace_hw is not None and tuple(trace_hw) != (h, w)
    if dynamic and output_shape is None:
        raise ModelError("export_module: output_shape is required when tracing at a different size")
    example = torch.zeros((n, c, *trace_hw) if dynamic else input_shape)  # type: ignore[misc]
    axes: dict[str, dict[int, str]] | None = None
    if dynamic:
        axes = {"input": {2: "height", 3: "width"}}
        if len(output_shape) == 4:  # type: ignore[arg-type]
            axes["output"] = {2: "out_height", 3: "out_width"}
    buf = io.BytesIO()
    # torch's legacy exporter keeps process-global state (GLOBALS.in_onnx_export) and so does
    # set_num_threads: two threads exporting at once corrupt each other's graphs, so exports are serialised.
    with _EXPORT_LOCK:
        threads = torch.get_num_threads()
        # One intra-op thread: the trace's convolutions are small, and on a busy machine torch's worker
        # threads spin-wait for cores (26 ms per mnasnet block with 1 thread vs 90-170 ms with 2 on 2 cores).
        torch.set_num_threads(1)
        try:
            _trace_to(buf, model, example, axes)
        finally:
            torch.set_num_threads(threads)
    proto = onnx.load_from_string(buf.getvalue())
    # A BatchNormalization fed by a Conv is one a block forgot to fold: refuse to write a graph that would
    # time it separately. A standalone one (after a sum: NAS-Bench-201's last BN) is part of the network.
    producers = {out: n.op_type for n in proto.graph.node for out in n.output}
    left = [n.name for n in proto.graph.node
            if n.op_type == "BatchNormalization" and producers.get(n.input[0]) == "Conv"]
    if left:
        raise ModelError(
            f"BatchNormalization left after folding at {', '.join(left[:3])}; this is a nasprof bug"
        )
    if dynamic:
        _pin_shape(proto.graph.input[0], input_shape)
        _pin_shape(proto.graph.output[0], output_shape)  # type: ignore[arg-type]
        del proto.graph.value_info[:]  # traced at another size: intermediate shapes are stale
    # Every intermediate shape in the file: the kernel predictor reads them instead of running shape
    # inference on each prediction (a third of predicting a graph), and viewers show them.
    proto = onnx.shape_inference.infer_shapes(proto, data_prop=True)
    for key, value in (metadata or {}).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    return atomic_write_bytes(Path(path), proto.SerializeToString())


def _trace_to(
    buf: io.BytesIO, model: torch.nn.Module, example: torch.Tensor, axes: dict[str, dict[int, str]] | None
) -> None:
    with torch.no_grad(), warnings.catch_warnings():
        # The legacy exporter warns that it is deprecated; it is the one that keeps module scopes.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (example,),
            buf,  # type: ignore[arg-type]  # torch's stub says path-only; file objects are accepted
            input_names=["input"],
            output_names=["output"],
            opset_version=OPSET,
            do_constant_folding=True,
            dynamic_axes=axes,
            dynamo=False,
        )


def _pin_shape(value_info: onnx.ValueInfoProto, shape: tuple[int, ...]) -> None:
    dims = value_info.type.tensor_type.shape.dim
    if len(dims) != len(shape):
        raise ModelError(
            f"cannot pin {value_info.name} of rank {len(dims)} to {shape}; this is a nasprof bug"
        )
    for dim, size in zip(dims, shape, strict=True):
        dim.Clear()
        dim.dim_value = int(size)


def _check_batch(batch: int) -> int:
    if isinstance(batch, bool) or not isinstance(batch, int) or not 1 <= batch <= 1024:
        raise SpaceError(f"batch must be an integer in [1, 1024], got {batch!r}")
    return batch


def export_network(net: Network, path: str | Path, seed: int = 0, batch: int = 1) -> Path:
    """``net`` to ONNX with a fixed input of ``batch`` images (the batch dimension is part of the file)."""
    model = net.build(seed=seed)
    meta = {
        "nasprof.name": net.name,
        "nasprof.resolution": str(net.resolution),
        **({"nasprof.image_width": str(net.image_width)} if net.image_width else {}),
        "nasprof.width": str(net.width),
        "nasprof.batch": str(_check_batch(batch)),
    }
    meta.update({f"nasprof.{k}": v for k, v in net.info.items()})
    return export_module(model, (batch, *net.input_shape[1:]), path, meta)


def export_arch(
    arch_or_preset: Arch | Network | str,
    path: str | Path,
    *,
    resolution: int | None = None,
    width: float | None = None,
    seed: int = 0,
    batch: int = 1,
    **preset_options: Any,
) -> Path:
    """Export an ``Arch``, a ``Network`` (e.g. a preset) or a name/string that ``resolve_model`` accepts
    (preset name, compact architecture string, architecture JSON file) to ONNX at ``path``."""
    if isinstance(arch_or_preset, (Arch, Network)):
        if resolution is not None or width is not None or preset_options:
            raise SpaceError(
                "resolution/width options apply to preset names; an Arch or Network carries its own"
            )
        net = arch_or_preset.network()
    else:
        from nasprof.space.presets import resolve_model

        net = resolve_model(arch_or_preset, resolution=resolution, width=width, **preset_options)
    return export_network(net, path, seed=seed, batch=batch)


#: Free space ``export_many`` keeps beyond its estimate (other writers share the disk).
_DISK_MARGIN = 1.2


def export_many(
    items: Sequence[Arch | Network], directory: str | Path, prefix: str = "arch", *, seed: int = 0
) -> list[Path]:
    """Export every architecture/network to ``directory/{prefix}{i}.onnx``, in order.

    Interleaved measurement needs all files at once (every round visits every network), and one mobile
    network at 224 is 10-25 MB, so 1,000 samples can take tens of GB of a temporary directory. After each
    file the remaining ones are estimated at the largest file so far; if the disk cannot hold them (with a
    20% margin) this raises ``InputError`` *before* minutes of measuring, naming the space needed."""
    directory = Path(directory)
    out: list[Path] = []
    largest = 0
    for i, item in enumerate(items):
        path = export_arch(item, directory / f"{prefix}{i}.onnx", seed=seed)
        out.append(path)
        largest = max(largest, path.stat().st_size)
        left = len(items) - i - 1
        if not left:
            break
        free = shutil.disk_usage(directory).free
        if largest * left * _DISK_MARGIN > free:
            raise InputError(
                f"exporting {len(items)} networks to {directory} needs about {_gb(largest * len(items))} "
                f"(files of up to {_gb(largest)}), and only {_gb(free + sum(p.stat().st_size for p in out))} "
                "is free there: set TMPDIR to a larger disk, or use fewer networks"
            )
    return out


def _gb(n_bytes: float) -> str:
    return f"{n_bytes / 1e9:.1f} GB" if n_bytes >= 1e8 else f"{n_bytes / 1e6:.0f} MB"


def export_layer(layer: Layer, path: str | Path, seed: int = 0, batch: int = 1) -> Path:
    """One block at its input shape, scoped ``/blocks.0/...`` (what the table builder measures).

    Traced at no more than ``TRACE_SIZE`` x ``TRACE_SIZE`` and pinned to the layer's shapes (3-5x faster for
    early, high-resolution layers; the graph is the same)."""
    model = instantiate(lambda: NetworkModule([], [layer.spec.build()], []), seed)
    c, h, w = layer.input_shape
    oc, oh, ow = layer.output_shape
    n = _check_batch(batch)
    out = (n, oc) if layer.spec.op == "head" else (n, oc, oh, ow)
    meta = {"nasprof.key": layer.key, "nasprof.batch": str(n)}
    trace_hw = (min(h, TRACE_SIZE), min(w, TRACE_SIZE))
    if any(getattr(m, "needs_static_trace", False) for m in model.modules()):
        trace_hw = (h, w)  # shape-reading ops (channel shuffle) would otherwise become dynamic
    return export_module(model, (n, c, h, w), path, meta, trace_hw=trace_hw, output_shape=out)
