"""Load and validate an ONNX model before any timing, and make its random inputs.

Every way a model file can be wrong is caught here and turned into a ``ModelError`` / ``InputError`` whose
message says what to do, so that a backend never fails half-way through a measurement on a bad file.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nasprof.errors import InputError, ModelError

__all__ = [
    "InputSpec",
    "ModelInfo",
    "load_model",
    "parse_input_shape",
    "parse_input_shapes",
    "random_inputs",
    "file_sha256",
    "DEFAULT_INT_RANGE",
]

#: Integer inputs (token ids, indices) get values in [low, high); small enough to be a valid index for
#: almost any embedding or gather, which is what a real input would be.
DEFAULT_INT_RANGE: tuple[int, int] = (0, 10)

_SHAPE_RE = re.compile(r"^\s*([^=\s][^=]*?)\s*=\s*(\d+(?:\s*[x,]\s*\d+)*)\s*$")

# onnx TensorProto element type -> numpy dtype name (None: cannot be fed from Python here).
_NUMPY_DTYPES: dict[int, str | None] = {
    1: "float32", 2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32", 7: "int64", 8: "str",
    9: "bool", 10: "float16", 11: "float64", 12: "uint32", 13: "uint64", 16: None,  # bfloat16
}


@dataclass(frozen=True)
class InputSpec:
    """One graph input with its resolved, fully static shape."""

    name: str
    dtype: str  # numpy dtype name ("float32", "int64", "bool", "str")
    shape: tuple[int, ...]
    #: The declared dims as the model states them (ints, or symbol names such as "N").
    declared: tuple[int | str, ...]


@dataclass(frozen=True)
class ModelInfo:
    """A validated ONNX model: where it is, what it is, and the inputs it will be fed."""

    path: Path
    sha256: str
    size_bytes: int
    inputs: tuple[InputSpec, ...]
    output_names: tuple[str, ...]
    opset: int
    ir_version: int
    producer: str
    n_nodes: int

    @property
    def input_shapes(self) -> dict[str, tuple[int, ...]]:
        return {i.name: i.shape for i in self.inputs}


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def parse_input_shape(text: str) -> tuple[str, tuple[int, ...]]:
    """Parse ``NAME=1x3x224x224`` (``,`` also separates dims) into ``("NAME", (1, 3, 224, 224))``."""
    m = _SHAPE_RE.match(text)
    if not m:
        raise InputError(
            f"malformed --input-shape {text!r}: write NAME=DIMS with positive integer dims, "
            "e.g. input=1x3x224x224"
        )
    dims = tuple(int(d) for d in re.split(r"\s*[x,]\s*", m.group(2)))
    if any(d < 1 for d in dims):
        raise InputError(f"malformed --input-shape {text!r}: every dimension must be at least 1")
    return m.group(1), dims


def parse_input_shapes(texts: list[str] | tuple[str, ...] | None) -> dict[str, tuple[int, ...]]:
    out: dict[str, tuple[int, ...]] = {}
    for t in texts or ():
        name, dims = parse_input_shape(t)
        if name in out:
            raise InputError(f"--input-shape names input {name!r} twice; give each input once")
        out[name] = dims
    return out


def _read_proto(path: Path) -> Any:
    import onnx
    from google.protobuf.message import DecodeError

    if not path.exists():
        raise ModelError(f"model file {path} does not exist; check the path")
    if not path.is_file():
        raise ModelError(f"{path} is not a file; pass the path of an .onnx model")
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(2)
    # A serialised ModelProto starts with field 1 (ir_version, varint): tag byte 0x08. Exporters (torch,
    # tf2onnx, onnx.save) all write it first, so anything else is some other kind of file.
    if size == 0 or head[:1] != b"\x08":
        raise ModelError(f"{path} is not an ONNX model (it is not a serialised onnx ModelProto); "
                         "export the network with torch.onnx.export or pass the right file")
    try:
        # load_external_data=False: a model with external weights is validated by path below, without
        # pulling gigabytes into memory twice.
        model = onnx.load(str(path), load_external_data=False)
    except DecodeError:
        raise ModelError(f"{path} is truncated or corrupt (protobuf could not be parsed, {size} bytes); "
                         "re-export or re-copy the file") from None
    except Exception as exc:  # onnx raises assorted types for unreadable files
        raise ModelError(f"{path} cannot be read as ONNX: {exc}; re-export the model") from None
    if not model.HasField("graph") or len(model.graph.node) == 0:
        raise ModelError(f"{path} is not a usable ONNX model (it has no graph nodes); pass an exported model")
    return model


def _check(path: Path, model: Any) -> None:
    import onnx

    try:
        # By path, so models with external data (> 2 GB) are checked too.
        onnx.checker.check_model(str(path))
    except onnx.checker.ValidationError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"{path} fails onnx's checker: {first}; fix the exporter or the graph") from None
    except Exception as exc:
        raise ModelError(f"{path} fails onnx's checker: {exc}; fix the exporter or the graph") from None


def _declared_dims(value_info: Any) -> tuple[int | str, ...]:
    dims: list[int | str] = []
    for d in value_info.type.tensor_type.shape.dim:
        if d.HasField("dim_value") and d.dim_value > 0:
            dims.append(int(d.dim_value))
        else:
            dims.append(d.dim_param or "?")
    return tuple(dims)


def _resolve_inputs(
    path: Path, model: Any, overrides: Mapping[str, tuple[int, ...]]
) -> tuple[InputSpec, ...]:
    initializers = {t.name for t in model.graph.initializer}
    # IR < 4 lists initializers among the inputs; those are weights, not feeds.
    graph_inputs = [vi for vi in model.graph.input if vi.name not in initializers]
    names = [vi.name for vi in graph_inputs]
    unknown = sorted(set(overrides) - set(names))
    if unknown:
        raise InputError(
            f"--input-shape names {', '.join(repr(u) for u in unknown)}, but the model's inputs are "
            f"{', '.join(repr(n) for n in names)}"
        )
    specs = []
    for vi in graph_inputs:
        if not vi.type.HasField("tensor_type"):
            raise ModelError(f"input {vi.name!r} of {path} is not a tensor; only tensor inputs can be fed")
        elem = vi.type.tensor_type.elem_type
        dtype = _NUMPY_DTYPES.get(elem)
        if dtype is None:
            raise ModelError(f"input {vi.name!r} of {path} has element type {elem}, which numpy cannot feed; "
                             "cast it to float32 in the exported model")
        declared = _declared_dims(vi)
        shown = "x".join(str(d) for d in declared) or "scalar"
        if vi.name in overrides:
            shape = overrides[vi.name]
            if len(shape) != len(declared):
                given_text = "x".join(map(str, shape))
                raise InputError(f"--input-shape {vi.name}={given_text} has {len(shape)} dims, "
                                 f"but input {vi.name!r} has {len(declared)} ({shown})")
            for i, (given, decl) in enumerate(zip(shape, declared, strict=True)):
                if isinstance(decl, int) and decl != given:
                    raise InputError(f"--input-shape {vi.name}: dim {i} is fixed to {decl} in the model "
                                     f"({shown}), got {given}")
        else:
            if any(not isinstance(d, int) for d in declared):
                example = "x".join(str(d) if isinstance(d, int) else "1" for d in declared)
                raise InputError(f"input {vi.name!r} has symbolic dimensions ({shown}); "
                                 f"fix them with --input-shape {vi.name}={example}")
            shape = tuple(int(d) for d in declared)
        specs.append(InputSpec(name=vi.name, dtype=dtype, shape=tuple(shape), declared=declared))
    return tuple(specs)


def load_model(path: str | Path, input_shapes: Mapping[str, tuple[int, ...]] | None = None) -> ModelInfo:
    """Validate ``path`` (exists, is ONNX, complete, passes onnx's checker) and resolve its input shapes.

    Raises ``ModelError`` for a bad file and ``InputError`` for missing or wrong ``input_shapes``.
    """
    path = Path(path).expanduser()
    model = _read_proto(path)
    _check(path, model)
    inputs = _resolve_inputs(path, model, dict(input_shapes or {}))
    opset = next((int(o.version) for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    return ModelInfo(
        path=path.resolve(),
        sha256=file_sha256(path),
        size_bytes=path.stat().st_size,
        inputs=inputs,
        output_names=tuple(o.name for o in model.graph.output),
        opset=opset,
        ir_version=int(model.ir_version),
        producer=f"{model.producer_name} {model.producer_version}".strip(),
        n_nodes=len(model.graph.node),
    )


#: Share of the memory available now that a model's random inputs may take: the session, its arena and the
#: outputs need the rest (a model whose inputs alone fill memory would fail or swap mid-measurement).
INPUT_MEMORY_SHARE = 0.25


def _available_bytes() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def check_input_memory(specs: tuple[InputSpec, ...] | list[InputSpec]) -> int:
    """The bytes the random inputs of ``specs`` take; refused with their size when they exceed
    ``INPUT_MEMORY_SHARE`` of the memory available now."""
    total = 0
    for spec in specs:
        n = 1
        for d in spec.shape:
            n *= int(d)
        size = 8 if spec.dtype == "str" else np.dtype(spec.dtype).itemsize
        total += n * size
    avail = _available_bytes()
    if avail is not None and total > INPUT_MEMORY_SHARE * avail:
        shapes = ", ".join(f"{s.name} {'x'.join(map(str, s.shape))} {s.dtype}" for s in specs)
        raise InputError(
            f"the model's inputs alone take {total / 2**30:.1f} GiB ({shapes}), more than a quarter of the "
            f"{avail / 2**30:.1f} GiB available; fix the input shapes to what the model runs at"
        )
    return total


def random_inputs(
    info: ModelInfo | tuple[InputSpec, ...],
    seed: int = 0,
    int_range: tuple[int, int] = DEFAULT_INT_RANGE,
) -> dict[str, np.ndarray]:
    """Seeded random feeds for every input: standard normal floats, integers in ``[low, high)``, coin-flip
    booleans, short strings. Latency of dense CNNs does not depend on values, but integer inputs must be valid
    indices or the model fails, hence the small default range."""
    low, high = int_range
    if high <= low:
        raise InputError(f"integer input range [{low}, {high}) is empty; give LOW < HIGH")
    specs = info.inputs if isinstance(info, ModelInfo) else info
    check_input_memory(specs)
    rng = np.random.default_rng(seed)
    feeds: dict[str, np.ndarray] = {}
    for spec in specs:
        dt = np.dtype(spec.dtype) if spec.dtype != "str" else None
        if dt is None:
            feeds[spec.name] = rng.integers(low, high, size=spec.shape).astype(str).astype(object)
        elif dt in (np.float32, np.float64):  # drawn in the input's own type: no float64 detour
            feeds[spec.name] = rng.standard_normal(spec.shape, dtype=dt)
        elif dt.kind == "f":
            feeds[spec.name] = rng.standard_normal(spec.shape, dtype=np.float32).astype(dt)
        elif dt.kind == "b":
            feeds[spec.name] = rng.integers(0, 2, size=spec.shape).astype(bool)
        else:
            info_i = np.iinfo(dt)
            if low < info_i.min or high - 1 > info_i.max:
                raise InputError(f"integer input range [{low}, {high}) does not fit input {spec.name!r} "
                                 f"of type {spec.dtype}")
            feeds[spec.name] = rng.integers(low, high, size=spec.shape, dtype=dt)
    return feeds
