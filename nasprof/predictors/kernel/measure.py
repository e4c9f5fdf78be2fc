"""Measuring kernels for the kernel predictor: one one-kernel model per sampled configuration (built by
``kernel_model.build_kernel_model``), timed end to end with one profiled pass to find the layout reorders
onnxruntime wrapped around it, and the fixed cost of a ``session.run`` call.

Several interchangeable devices (``"pixel-a,pixel-b"``, or a Ray farm's attached devices) share the kernels:
``nasprof.devices.pool.spread`` gives each free device the next kernel, and a device that vanishes gives its
kernel back to another. Each sample records the device that measured it.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nasprof.predictors.kernel.kernel_model import build_kernel_model
from nasprof.predictors.kernel.kernels import Kernel

if TYPE_CHECKING:
    from nasprof.devices.base import Backend, MeasureSpec
    from nasprof.profiler.measurement import Measurement

__all__ = ["KernelSample", "measure_kernels", "measure_overhead", "profiler_node_cost"]

Progress = Any  # progress(done, total, what)


def _empty_model(path: Path) -> Path:
    from onnx import TensorProto, helper, save

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"], name="/Relu")], "empty", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    save(model, str(path))
    return path


def measure_overhead(device: str, spec: MeasureSpec) -> float:
    """Median latency (ms) of a near-empty model: the fixed cost of one ``session.run`` call."""
    from nasprof.devices import get_device

    backend = get_device(device)
    with tempfile.TemporaryDirectory(prefix="nasprof-kern-") as tmp:
        m = backend.measure(_empty_model(Path(tmp) / "empty.onnx"), dataclasses.replace(spec, per_node=False))
    return m.median_ms


@dataclass(frozen=True)
class KernelSample:
    """What measuring one one-kernel model gave: end-to-end median and the layout reorders inside it."""

    kernel: Kernel
    e2e_ms: float
    #: Reorder kernels onnxruntime ran around the kernel (NCHWc on x86), with their profiled times (ms).
    reorders: tuple[tuple[Kernel, float], ...] = ()
    #: Profiled time of the kernel's own nodes (everything but the reorders), ms; None if not profiled.
    own_profiled_ms: float | None = None
    #: How many profiled nodes ``own_profiled_ms`` sums (each carries the profiler's own per-node cost).
    own_nodes: int = 1
    #: The device instance that measured it (one of several sharing the kernels).
    measured_on: str | None = None

    @property
    def reorder_ms(self) -> float:
        return sum(ms for _, ms in self.reorders)

    @property
    def profiled_nodes(self) -> int:
        return self.own_nodes + len(self.reorders)

    def own_ms(self, overhead_ms: float, node_cost_ms: float = 0.0) -> float:
        """The kernel's own time: the end-to-end time without the per-call overhead, times the kernel's
        share of the profiled pass. Subtracting the profiled reorders instead mixes two passes; where the
        reorders are most of the model (a pool converting a large map to NCHWc and back: 0.11 of 0.17 ms),
        the profiler's per-node cost then lands on the kernel (pools came out 1.9-3.3x their in-network time).
        ``node_cost_ms`` (the profiler's own cost per node, ``profiler_node_cost``) is taken off every node
        before the shares are formed; see ``reorder_times``.
        """
        return self.split_ms(overhead_ms, node_cost_ms)[0]

    def reorder_times(self, overhead_ms: float, node_cost_ms: float = 0.0) -> list[float]:
        """Each reorder's time (ms): the end-to-end time without the per-call overhead, times the reorder's
        share of the profiled pass, ``node_cost_ms`` taken off every node first. Why: the profiler adds
        about 2 µs to every node it times, about all a small reorder takes. Trained on raw node times, the
        reorder regressor predicted 1.10x the reorders' in-network time over 58 networks, and 78 µs for
        mobilenet_v3_small's 38 small reorders that took 24 µs; from the same measurements net of that
        cost, 0.98x and 51 µs."""
        return self.split_ms(overhead_ms, node_cost_ms)[1]

    def split_ms(self, overhead_ms: float, node_cost_ms: float = 0.0) -> tuple[float, list[float]]:
        """(the kernel's own ms, each reorder's ms): the end-to-end time without the per-call overhead,
        shared out by the profiled pass net of the profiler's cost per node (``own_ms``,
        ``reorder_times``). Without a profile, or without reorders, the reorders keep their node times
        and the kernel gets the rest. A node no longer than that cost keeps a tenth of its time: it ran,
        and a zero would hand its share to the others."""
        body = self.e2e_ms - overhead_ms
        raw = [ms for _, ms in self.reorders]
        if self.own_profiled_ms is None or not raw:
            return body - sum(raw), raw
        own = max(self.own_profiled_ms - node_cost_ms * self.own_nodes, _NODE_FLOOR * self.own_profiled_ms)
        reorders = [max(ms - node_cost_ms, _NODE_FLOOR * ms) for ms in raw]
        total = own + sum(reorders)
        if total <= 0:
            return body, reorders
        return body * own / total, [body * r / total for r in reorders]


#: Share of its profiled time a node keeps when the profiler's per-node cost is as large as the node.
_NODE_FLOOR = 0.1


def profiler_node_cost(samples: Sequence[KernelSample], overhead_ms: float) -> float:
    """The profiler's own cost per node (ms), fitted over profiled samples with different node counts
    (Σ node times = a·(end-to-end − overhead) + δ·nodes, as for whole networks); 0 when they do not tell."""
    from nasprof.predictors.calibration.in_network import profiler_node_cost as fit_cost

    done = [
        (s, s.own_profiled_ms) for s in samples if s.own_profiled_ms is not None and s.e2e_ms > overhead_ms
    ]
    return fit_cost(
        [own + s.reorder_ms for s, own in done],
        [s.e2e_ms - overhead_ms for s, _ in done],
        [s.profiled_nodes for s, _ in done],
    )


_REORDER_OPS = ("ReorderInput", "ReorderOutput")


def _reorders(m: Measurement) -> tuple[tuple[Kernel, float], ...]:
    out = []
    for node in m.per_node or ():
        if node.op_type in _REORDER_OPS:
            shape = tuple(node.output_shape[1:]) if len(node.output_shape) == 4 else ()
            if shape:
                out.append(
                    (Kernel("reorder", node.name, (), shape, shape, variant=node.op_type), node.duration_ms)
                )
    return tuple(out)


def measure_kernels(
    kernels: Sequence[Kernel],
    device: str,
    spec: MeasureSpec,
    *,
    progress: Progress | None = None,
    done_before: int = 0,
    total: int | None = None,
    left: dict[str, str] | None = None,
) -> list[KernelSample]:
    """Measure each kernel's one-kernel model end to end, plus one profiled pass to find the layout
    reorders onnxruntime wrapped around it (their time is not the kernel's). ``device`` may name several
    interchangeable devices (``"pixel-a,pixel-b"``): the kernels are spread over them, and ``left`` (if
    given) receives those that vanished on the way."""
    from nasprof.devices import get_devices
    from nasprof.devices.pool import JobProgress, spread

    backends = get_devices(device)
    spec = dataclasses.replace(spec, per_node=True, per_node_runs=min(spec.per_node_runs, 10))
    total = total or len(kernels)

    def one(backend: Backend, job: tuple[int, Kernel], report: JobProgress) -> KernelSample:
        i, k = job
        with tempfile.TemporaryDirectory(prefix="nasprof-kern-") as tmp:
            m = backend.measure(build_kernel_model(k, Path(tmp) / f"k{i}.onnx"), spec)
        reorders = _reorders(m)
        own_nodes = [n for n in m.per_node or () if n.op_type not in _REORDER_OPS]
        own = sum(n.duration_ms for n in own_nodes)
        report(1, 1, k.type)
        return KernelSample(k, m.median_ms, reorders, own if m.per_node else None, max(len(own_nodes), 1),
                            measured_on=backend.device)

    def step(done: int, _total: int, what: str) -> None:
        if progress is not None:
            progress(done_before + done, total, what)

    done = spread(backends, list(enumerate(kernels)), one, progress=step, left=left)
    return [d.result for d in done]
