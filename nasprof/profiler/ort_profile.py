"""Per-node times from onnxruntime's profiler, attributed to blocks, correct under graph fusion.

**Which graph is profiled.** The profiled pass uses the *same* optimisation level as the timed runs
(``all`` by default). On x86 the ``all`` level's NCHWc layout transformer made a MobileNetV2-0.35 model
(160 px, 1 thread) run in 0.95 ms against 1.92 ms at ``extended``: per-node shares taken at a lower level
would describe a different, twice-as-slow program, and the node sum would be ~200% of the timed latency.
So we profile the program that was timed and map its kernels back to the exported nodes instead.

**Mapping kernels back to exported nodes.** Fusion renames and merges nodes: at ``extended`` Conv+Relu
becomes ``FusedConv`` and keeps the Conv's name; at ``all`` the NCHWc transformer names a conv after its
output tensor (``/blocks.3/act/Relu_output_0_nchwc``) and inserts ``ReorderInput``/``ReorderOutput``
nodes with generated names. The profiled session also saves its optimised graph, and ``kernel_origins``
walks the *exported* graph backwards from each kernel's outputs (tensor names, minus ``_nchwc``) to the
tensors that other kernels materialise; the exported nodes met on the way are the ones the kernel stands for
(``NodeTime.covers``). Kernels are visited in topological order and an exported node belongs to the first
kernel that reaches it, so layout-conversion kernels (``ReorderOutput``) cover nothing. An NCHWc conv's
walk starts after what it fuses behind its Conv (the residual ``Add`` of its ``Sum`` input, the
``activation`` attribute), and a fusion named ``<node>/QuickGeluFusion/`` starts at ``<node>``: tensors
between NCHWc kernels are renamed, so otherwise the *next* kernel claimed them. The tests check that these
covers equal the kernel split's (``nasprof.predictors.kernel.split``) kernel for kernel on four presets.

**Block rule** (``block_of``): the torch exporter names nodes after module scopes. The block is the first
scope component, descending while the next component is the current one plus ``.<index>`` (a child of a
``Sequential``/``ModuleList``):

- ``/blocks.3/conv/Conv`` → ``blocks.3``
- ``/features/features.3/conv/conv.0/conv.0.0/Conv`` → ``features.3`` (torchvision MobileNetV2)
- ``/layer1/layer1.0/conv1/Conv`` → ``layer1.0`` (ResNet);  ``/blocks/blocks.1/blocks.1.0/conv_pw/Conv``
  → ``blocks.1.0`` (timm)
- ``/head/pool/GlobalAveragePool`` → ``head``; ``/Flatten`` (no scope) → ``(top)``
- a name that is not a scope path (``Conv_12``, ``ReorderOutput_token_4``) takes the block of the exported
  nodes it covers, else of its input/output tensors, else ``(unscoped)``.

**Windows.** Node events are assigned to runs with the session's ``model_run`` events; only the last
``runs`` runs count, so warm-up runs in the same profile never leak in. A node's time is its median over
those runs (0 in a run where it did not execute).
"""

from __future__ import annotations

import bisect
import json
import statistics
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nasprof.errors import DeviceError, ModelError
from nasprof.profiler import progress
from nasprof.profiler.measurement import NodeTime
from nasprof.profiler.spec import MeasureSpec

__all__ = [
    "block_of",
    "parse_profile",
    "load_profile",
    "kernel_origins",
    "KernelOrigin",
    "ProfiledPass",
    "profile_nodes",
    "TOP_BLOCK",
    "UNSCOPED_BLOCK",
]

TOP_BLOCK = "(top)"
UNSCOPED_BLOCK = "(unscoped)"
_KERNEL_SUFFIX = "_kernel_time"
_NCHWC_SUFFIX = "_nchwc"
#: Kernels that only convert tensor layout; they stand for no exported node.
_LAYOUT_OPS = frozenset({"ReorderInput", "ReorderOutput"})


def _strip_layout(name: str) -> str:
    return name[: -len(_NCHWC_SUFFIX)] if name.endswith(_NCHWC_SUFFIX) else name


def _scope(name: str) -> list[str] | None:
    """Module-scope components of an exported name (the last component is the op or tensor itself)."""
    if not name.startswith("/"):
        return None
    return [p for p in name.split("/") if p][:-1]


def _is_index_child(parent: str, part: str) -> bool:
    return part.startswith(parent + ".") and part[len(parent) + 1 :].isdigit()


class BlockNamer:
    """Applies the block rule with the context of a whole graph (see the module docstring).

    Descending into ``X.N`` is right when ``X.N`` is a module with sub-modules (a block:
    ``/features/features.3/conv/...``) and wrong when it is a leaf layer of a small ``Sequential``
    (``/stem/stem.0/Conv`` is the stem's conv, not a block). One name cannot tell the two apart
    (``/blocks/blocks.0/Add`` looks like ``/stem/stem.0/Conv``), so the namer first collects every scope that
    has sub-scopes somewhere in the graph.
    """

    def __init__(self, names: Iterable[str] = ()) -> None:
        self._parents: set[tuple[str, ...]] = set()
        for name in names:
            self.add(name)

    def add(self, name: str) -> None:
        parts = _scope(_strip_layout(name))
        if parts:
            for k in range(1, len(parts)):
                self._parents.add(tuple(parts[:k]))

    def scoped(self, name: str) -> str | None:
        """The block of a scope path, or None when ``name`` is not one."""
        parts = _scope(_strip_layout(name))
        if parts is None:
            return None
        if not parts:
            return TOP_BLOCK
        block = parts[0]
        for i in range(1, len(parts)):
            has_children = i + 1 < len(parts) or tuple(parts[: i + 1]) in self._parents
            if not (_is_index_child(block, parts[i]) and has_children):
                break
            block = parts[i]
        return block

    def __call__(self, name: str) -> str:
        return self.scoped(name) or UNSCOPED_BLOCK


def block_of(name: str, context: Iterable[str] = ()) -> str:
    """The block (module scope) of an exported node or tensor name; ``(unscoped)`` if it has none.

    ``context``: other names of the same graph, which decide whether an indexed child is a block.
    """
    return BlockNamer([name, *context])(name)


@dataclass(frozen=True)
class KernelOrigin:
    """Where an executed kernel comes from in the exported graph."""

    covers: tuple[str, ...]
    block: str


def _is_layout_kernel(node: Any) -> bool:
    return node.op_type in _LAYOUT_OPS


def _fused_tail(
    kernel: Any, tensor: str, producer: Mapping[str, Any], consumers_of: Mapping[str, list[Any]]
) -> str:
    """The last exported tensor an NCHWc conv kernel computes. The kernel is named after its Conv's output,
    but it also runs the residual ``Add`` of its ``Sum`` input (input 4) and the activation in its
    ``activation`` attribute, which sit *after* that tensor. Between NCHWc kernels tensors are renamed
    (``reorder_token_N``), so without this the next kernel's backward walk claimed them (a fused
    ``HardSwish`` or residual ``Add`` was listed under the following conv)."""
    node = producer.get(tensor)
    if node is None or node.op_type != "Conv":
        return tensor
    act = next((a.s.decode() for a in kernel.attribute if a.name == "activation"), "")
    tail = ["Add"] if len(kernel.input) > 3 and kernel.input[3] else []
    tail += [act] if act else []
    for op in tail:
        users = consumers_of.get(tensor, [])
        if len(users) != 1 or users[0].op_type != op or not users[0].output:
            break
        tensor = users[0].output[0]
    return tensor


def _fusion_base_outputs(name: str, by_name: Mapping[str, Any]) -> list[str]:
    """Outputs of the exported node a fused kernel is named after: onnxruntime names fusions
    ``<node>/<Fusion>/`` (``/act/Mul/QuickGeluFusion/``), and their I/O may be renamed tensors."""
    parts = name.rstrip("/").split("/")
    for end in range(len(parts) - 1, 0, -1):
        base = "/".join(parts[:end])
        if base in by_name:
            return [t for t in by_name[base].output if t]
    return []


def kernel_origins(original: Any, optimized: Any) -> dict[str, KernelOrigin]:
    """Map each node of ``optimized`` (onnxruntime's optimised graph) to the exported nodes it stands for.

    Both arguments are ``onnx.ModelProto``. See the module docstring for the walk. A layout kernel
    (``ReorderOutput``) hands what its walk finds to the kernel that produced its input: when the NCHWc conv
    fuses a residual ``Add``, the Add's output tensor only reappears at the ReorderOutput after it.
    """
    graph = original.graph
    producer = {out: node for node in graph.node for out in node.output if out}
    order = {node.name: i for i, node in enumerate(graph.node)}
    by_name = {node.name: node for node in graph.node if node.name}
    stops = {t.name for t in graph.initializer} | {i.name for i in graph.input}
    namer = BlockNamer([*by_name, *producer])
    opt_producer = {out: k for k in optimized.graph.node for out in k.output if out}
    consumers_of: dict[str, list[Any]] = {}
    for node in graph.node:
        for t in node.input:
            consumers_of.setdefault(t, []).append(node)
    claimed: set[str] = set()
    covers: dict[str, list[str]] = {}
    for kernel in optimized.graph.node:  # saved graphs are topologically sorted
        inputs = {_strip_layout(t) for t in kernel.input}
        starts = [_strip_layout(t) for t in kernel.output]
        if _strip_layout(kernel.name) != kernel.name:  # NCHWc kernels are named after their output tensor
            starts.append(_fused_tail(kernel, _strip_layout(kernel.name), producer, consumers_of))
        elif kernel.name not in by_name:
            starts += _fusion_base_outputs(kernel.name, by_name)
        owner = kernel.name
        if _is_layout_kernel(kernel) and kernel.input and kernel.input[0] in opt_producer:
            owner = opt_producer[kernel.input[0]].name
        covered = covers.setdefault(owner, [])
        covers.setdefault(kernel.name, [])
        # A kernel that kept an exported node's name (FusedConv keeps the Conv's) covers that node.
        if kernel.name in by_name and kernel.name not in claimed:
            claimed.add(kernel.name)
            covered.append(kernel.name)
            starts += list(by_name[kernel.name].output)
        stack = [t for t in starts if t not in inputs]
        seen: set[str] = set()
        while stack:
            t = stack.pop()
            if t in seen or t in stops or t in inputs:
                continue
            seen.add(t)
            node = producer.get(t)
            if node is None:
                continue
            if node.name not in claimed:
                claimed.add(node.name)
                covered.append(node.name)
            elif node.name not in covered:
                continue  # materialised by an earlier kernel: the boundary of this one
            stack.extend(i for i in node.input if i)
    origins: dict[str, KernelOrigin] = {}
    for kernel in optimized.graph.node:
        covered = sorted(covers.get(kernel.name, []), key=lambda n: order.get(n, 0))
        block = namer.scoped(kernel.name)
        if block is None:
            candidates = [*covered, *kernel.output, *kernel.input]
            block = next((b for b in map(namer.scoped, candidates) if b not in (None, TOP_BLOCK)), None)
        origins[kernel.name] = KernelOrigin(covers=tuple(covered), block=block or UNSCOPED_BLOCK)
    # A layout conversion at the graph's edge (ReorderInput of the model input, ReorderOutput of its output)
    # has no scoped tensor at all: it belongs to the kernel it converts for.
    consumers: dict[str, str] = {}
    for k in optimized.graph.node:
        for t in k.input:
            consumers.setdefault(t, k.name)
    for kernel in optimized.graph.node:
        if not _is_layout_kernel(kernel) or origins[kernel.name].block != UNSCOPED_BLOCK:
            continue
        if kernel.op_type == "ReorderOutput" and kernel.input and kernel.input[0] in opt_producer:
            neighbour = opt_producer[kernel.input[0]].name
        else:
            neighbour = consumers.get(kernel.output[0], "") if kernel.output else ""
        if neighbour in origins:
            origins[kernel.name] = KernelOrigin(covers=(), block=origins[neighbour].block)
    return origins


def load_profile(path: str | Path) -> list[dict[str, Any]]:
    """Read an onnxruntime profile (Chrome trace JSON: a list of events, or ``{"traceEvents": [...]}``)."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise DeviceError(f"cannot read onnxruntime profile {path}: {exc}") from None
    events = data.get("traceEvents", []) if isinstance(data, dict) else data
    if not isinstance(events, list):
        raise DeviceError(f"onnxruntime profile {path} is not a list of trace events")
    return events


def _output_shape(args: Mapping[str, Any]) -> tuple[int, ...]:
    shapes = args.get("output_type_shape") or []
    if shapes and isinstance(shapes[0], dict):
        dims: Any = next(iter(shapes[0].values()), [])
        if isinstance(dims, list):
            return tuple(int(d) for d in dims)
    return ()


def parse_profile(
    events: Iterable[Mapping[str, Any]],
    runs: int | None = None,
    origins: Mapping[str, KernelOrigin] | None = None,
    original: Any = None,
) -> tuple[list[NodeTime], list[float]]:
    """Per-node median times (ms) over the last ``runs`` ``model_run`` windows, and those runs' durations.

    ``origins`` (from ``kernel_origins``) supplies ``covers`` and the block of renamed kernels. Without
    them (a phone saves no optimised graph), ``original`` (the exported ``onnx.ModelProto``) still gives a
    kernel the NCHWc transformer named after an unscoped tensor (``output_nchwc``, a blocked pool at the
    graph's end with blocks of 8) the block of the exported node that produces that tensor.
    """
    events = list(events)
    windows = sorted(
        (int(e["ts"]), int(e["ts"]) + int(e["dur"]))
        for e in events
        if e.get("cat") == "Session" and e.get("name") == "model_run"
    )
    if not windows:
        raise DeviceError("the onnxruntime profile has no model_run events; was the session run at all?")
    if runs is not None:
        windows = windows[-runs:]
    starts = [w[0] for w in windows]
    per_run: list[dict[str, float]] = [{} for _ in windows]
    first_seen: dict[str, tuple[int, int]] = {}
    info: dict[str, Mapping[str, Any]] = {}
    for e in events:
        if e.get("cat") != "Node":
            continue
        raw = str(e.get("name", ""))
        if not raw.endswith(_KERNEL_SUFFIX):  # _fence_before / _fence_after of older versions
            continue
        ts, dur = int(e["ts"]), float(e["dur"])
        w = bisect.bisect_right(starts, ts) - 1
        if w < 0 or ts > windows[w][1]:
            continue  # a warm-up run, outside the counted windows
        args = e.get("args", {}) or {}
        name = raw[: -len(_KERNEL_SUFFIX)] or f"{args.get('op_name', 'node')}#{args.get('node_index', '?')}"
        per_run[w][name] = per_run[w].get(name, 0.0) + dur
        first_seen.setdefault(name, (w, ts))
        info.setdefault(name, args)
    # Order kernels as they executed in the first counted run that ran them.
    names = sorted(first_seen, key=lambda n: first_seen[n])
    namer = BlockNamer(names)
    producers: dict[str, str] = {}
    if original is not None:
        producers = {t: n.name for n in original.graph.node for t in n.output if t and n.name}
        namer = BlockNamer([*names, *producers.values()])
    nodes = []
    for name in names:
        args = info[name]
        med_us = statistics.median(run.get(name, 0.0) for run in per_run)
        origin = (origins or {}).get(name)
        block = origin.block if origin else namer(name)
        if block == UNSCOPED_BLOCK and _strip_layout(name) in producers:
            block = namer(producers[_strip_layout(name)])
        nodes.append(
            NodeTime(
                name=name,
                op_type=str(args.get("op_name", "")),
                block=block,
                duration_ms=med_us / 1000.0,
                provider=str(args.get("provider", "")),
                covers=origin.covers if origin else (),
                output_shape=_output_shape(args),
            )
        )
    run_ms = [(b - a) / 1000.0 for a, b in windows]
    return nodes, run_ms


@dataclass(frozen=True)
class ProfiledPass:
    """Result of the separate profiled session."""

    nodes: tuple[NodeTime, ...]
    #: End-to-end time of each counted profiled run (``model_run`` events), ms.
    run_ms: tuple[float, ...]
    opt_level: str
    runs: int

    @property
    def median_run_ms(self) -> float:
        return float(np.median(self.run_ms))


def profile_nodes(
    model: Path,
    feeds: Mapping[str, np.ndarray],
    spec: MeasureSpec,
    providers: Sequence[Any] = ("CPUExecutionProvider",),
) -> ProfiledPass:
    """Run a separate profiled session (``spec.warmup`` warm-ups, then ``spec.per_node_runs`` runs) at the
    timed runs' optimisation level and return per-node medians. The profile file is deleted afterwards."""
    import onnx

    from nasprof.profiler.ort_runner import _run_checked, _Runner, create_session, session_options

    total = spec.warmup + spec.per_node_runs
    with tempfile.TemporaryDirectory(prefix="nasprof-prof-") as tmp:
        optimized_path = str(Path(tmp) / "optimized.onnx")
        so = session_options(spec, profile_prefix=str(Path(tmp) / "ort"), optimized_model_path=optimized_path)
        progress.report("profiled pass", 0, total)
        try:
            session = create_session(model, so, providers)
        except ModelError:
            # Saving the optimised graph can fail where running works (protobuf's 2 GB limit): profile
            # without it; kernels then get blocks from their names only and no ``covers``.
            so = session_options(spec, profile_prefix=str(Path(tmp) / "ort"))
            session = create_session(model, so, providers)
        runner = _Runner(session, feeds)
        for i in range(total):
            _run_checked(runner, model)
            if i % 10 == 9:
                progress.report("profiled pass", i + 1, total)
        profile_path = session.end_profiling()
        events = load_profile(profile_path)
        origins: dict[str, KernelOrigin] = {}
        try:
            original = onnx.load(str(model), load_external_data=False)
            optimized = onnx.load(optimized_path, load_external_data=False)
            origins = kernel_origins(original, optimized)
        except Exception:  # covers are a bonus: names alone still give blocks
            origins = {}
        del runner, session
    nodes, run_ms = parse_profile(events, runs=spec.per_node_runs, origins=origins)
    progress.report("profiled pass", total, total)
    return ProfiledPass(nodes=tuple(nodes), run_ms=tuple(run_ms), opt_level=spec.opt_level,
                        runs=spec.per_node_runs)
