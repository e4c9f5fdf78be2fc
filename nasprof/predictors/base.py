"""The predictor contract and its file format.

A predictor file is one JSON document::

    {"schema_version": 1, "format": "nasprof.predictor", "kind": "lut" | "kernel",
     "device": "cpu", "measure_spec": {...}, "features": [...], "training_error": {...},
     "environment": {"python": ..., "numpy": ..., "onnxruntime": ..., ...}, "created_utc": ...,
     "body": {...kind-specific...}}

Nothing is unpickled: a file can only ever yield numbers and strings. ``load_predictor`` checks the
version, the kind and (when asked) the device before building the object, so a stale or foreign file fails
with a message instead of predicting nonsense.
"""

from __future__ import annotations

import abc
import json
import math
import platform
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from nasprof.errors import PredictorError, SchemaError

__all__ = [
    "PREDICTOR_SCHEMA_VERSION",
    "Prediction",
    "PredictionPart",
    "Predictor",
    "load_predictor",
    "environment",
    "error_summary",
]

#: History: 1 — first version (lut: key -> median_ms + overhead_ms; kernel: per-type JSON forests).
#: 2 — kernel files may carry ``body.calibration`` (per-kernel-group factors fitted on sampled networks) and
#: the ``memory`` kernel type. Version 1 files still load (as uncalibrated); an older nasprof refuses a
#: version 2 file instead of silently dropping its calibration.
#: 3 — lut files may carry per-family factors and a cost per MB of weights (``group_factors``,
#: ``ms_per_weight_mb``, ``weight_mb``); version 1-2 lut files load with their single ``scale``.
PREDICTOR_SCHEMA_VERSION = 3
FORMAT = "nasprof.predictor"


@dataclass(frozen=True)
class PredictionPart:
    """One summand of a prediction: a table entry (LUT) or a kernel (regression)."""

    name: str
    kind: str
    latency_ms: float
    #: "table", "regression", "fallback" (a LUT key predicted by the fallback predictor) or "missing".
    source: str = "table"


@dataclass(frozen=True)
class Prediction:
    """A predicted latency with its breakdown. ``missing`` lists what could not be predicted (0 ms used)."""

    latency_ms: float
    parts: tuple[PredictionPart, ...] = ()
    overhead_ms: float = 0.0
    missing: tuple[str, ...] = ()
    fallback: tuple[str, ...] = ()
    #: Share of the graph's exported nodes / MACs the predicted parts stand for (kernel predictor; 1.0
    #: when complete). A partial prediction is that much of the graph, not an estimate of all of it.
    covered_node_share: float | None = None
    covered_macs_share: float | None = None

    @property
    def complete(self) -> bool:
        return not self.missing

    def to_dict(self) -> dict[str, Any]:
        return {
            "latency_ms": self.latency_ms,
            "overhead_ms": self.overhead_ms,
            "complete": self.complete,
            "missing": list(self.missing),
            "fallback": list(self.fallback),
            **({} if self.covered_node_share is None else {"covered_node_share": self.covered_node_share,
                                                            "covered_macs_share": self.covered_macs_share}),
            "parts": [
                {"name": p.name, "kind": p.kind, "latency_ms": p.latency_ms, "source": p.source}
                for p in self.parts
            ],
        }


class Predictor(abc.ABC):
    """Predicts the end-to-end latency (ms) of a network on one device.

    Contract: ``predict`` returns milliseconds for one target (an ``Arch``, an arch string, or an ONNX path
    for predictors that read graphs) and raises ``PredictorError`` when it cannot predict all of it;
    ``explain`` returns the breakdown and never raises for missing parts (it lists them); ``predict_many``
    is the fast path for search. Instances are immutable after construction and safe to share between
    threads.
    """

    kind: ClassVar[str] = ""
    _kinds: ClassVar[dict[str, type[Predictor]]] = {}
    #: How ``validate --calibrate N`` calibrates it: "space" (on N architectures of its own space, measured
    #: in the same rounds: a lookup table), "networks" (on its own calibration networks: the kernel
    #: predictor) or "" (it is not calibrated that way).
    calibrates_on: ClassVar[str] = ""
    #: Whether it reads a network as an architecture (True) or as an exported ONNX graph (False).
    reads_architectures: ClassVar[bool] = True

    def __init__(
        self,
        *,
        device: str,
        measure_spec: Mapping[str, Any] | None = None,
        training_error: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        self.device = device
        self.measure_spec = dict(measure_spec or {})
        self.training_error = dict(training_error or {})
        self.metadata = dict(metadata or {})

    @property
    def fitted_devices(self) -> list[str]:
        """Every device instance whose measurements it learned from (several phones of one model in a farm;
        ``device`` is the first)."""
        extra = self.metadata.get("devices")
        names = [str(d) for d in extra] if isinstance(extra, list) else []
        return [self.device, *(d for d in names if d != self.device)]

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        if cls.kind:
            if cls.kind in Predictor._kinds:
                raise ValueError(f"predictor kind {cls.kind!r} is already registered")
            Predictor._kinds[cls.kind] = cls

    # -- prediction -------------------------------------------------------------------------------------
    @abc.abstractmethod
    def explain(self, target: Any) -> Prediction:
        """Predict ``target`` with its breakdown; missing parts are listed, not raised."""

    def predict(self, target: Any) -> float:
        """Latency of ``target`` in milliseconds; ``PredictorError`` if any part cannot be predicted."""
        p = self.explain(target)
        self._check_complete(p)
        return p.latency_ms

    def _check_complete(self, p: Prediction, where: str = "") -> None:
        """``PredictorError`` listing what ``p`` could not predict (``where`` prefixes the message)."""
        if not p.missing:
            return
        shown = ", ".join(p.missing[:5]) + (" ..." if len(p.missing) > 5 else "")
        share = ""
        if p.covered_node_share is not None:
            left_nodes, left_macs = 1 - p.covered_node_share, 1 - (p.covered_macs_share or 0.0)
            share = f" ({left_nodes:.0%} of the graph's nodes, {left_macs:.0%} of its MACs)"
        raise PredictorError(
            f"{where}{self.kind} predictor cannot predict {len(p.missing)} part(s){share}: {shown}"
        )

    def predict_many(self, targets: Iterable[Any]) -> np.ndarray:
        """Latencies (ms) of many targets; subclasses vectorise this."""
        return np.array([self.predict(t) for t in targets], dtype=np.float64)

    # -- files ------------------------------------------------------------------------------------------
    @property
    @abc.abstractmethod
    def features(self) -> list[str]:
        """Names of the inputs the predictor uses (table keys' fields, or kernel features)."""

    @abc.abstractmethod
    def _body(self) -> dict[str, Any]:
        """The kind-specific part of the file."""

    @classmethod
    @abc.abstractmethod
    def _from_body(cls, body: Mapping[str, Any], header: Mapping[str, Any]) -> Predictor:
        """Rebuild from ``_body()`` output and the common header."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": PREDICTOR_SCHEMA_VERSION,
            "format": FORMAT,
            "kind": self.kind,
            "device": self.device,
            "measure_spec": self.measure_spec,
            "features": self.features,
            "training_error": self.training_error,
            "metadata": self.metadata,
            "environment": environment(),
            "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "body": self._body(),
        }

    def save(self, path: str | Path) -> Path:
        """Write the predictor atomically as JSON (never pickle)."""
        from nasprof._io import atomic_write_text

        doc = self.to_dict()
        return atomic_write_text(Path(path), json.dumps(doc, allow_nan=False, separators=(",", ":")) + "\n")

    @classmethod
    def load(cls, path: str | Path, device: str | None = None) -> Predictor:
        """Load any predictor file; ``device`` (if given) must match the device it was fitted for."""
        p = load_predictor(path, device=device)
        if cls is not Predictor and not isinstance(p, cls):
            raise PredictorError(f"{path} holds a {p.kind!r} predictor, not a {cls.kind!r} one")
        return p

    def describe(self) -> dict[str, Any]:
        """What ``nasprof predictor show`` prints: the header fields, plus ``details`` (label -> text: the
        kind's own summary) and ``warnings`` (what the user should know before trusting it)."""
        d = self.to_dict()
        d.pop("body")
        d.pop("created_utc")
        d.pop("environment")
        d["details"] = self.details()
        d["warnings"] = self.warnings()
        return d

    def details(self) -> dict[str, str]:
        """The kind's summary for people, label -> text (entries, overhead, calibration, rules)."""
        return {}

    def calibration_summary(self) -> str:
        """The calibration in one phrase ("" when uncalibrated)."""
        return ""

    def warnings(self) -> list[str]:
        """Reasons to refit or distrust this file, one line each (none by default)."""
        return []

    def compatibility(self) -> list[str]:
        """Why this file may not fit the host it runs on (rules detected elsewhere), one line each."""
        return []

    def with_fallback(self, fallback: Predictor) -> Predictor:
        """A copy that predicts what it lacks with ``fallback`` (lookup tables only)."""
        from nasprof.errors import InputError

        raise InputError(f"--fallback applies to lookup-table predictors, not to a {self.kind} predictor")

    def part_group(self, part: PredictionPart) -> str:
        """How ``predict`` groups a prediction's parts in its summary (by where each came from)."""
        return part.source


def load_predictor(path: str | Path, device: str | None = None) -> Predictor:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PredictorError(
            f"predictor file {path} does not exist; fit one with `nasprof predictor fit`"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PredictorError(f"cannot read predictor file {path}: {exc}") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PredictorError(
            f"predictor file {path} is corrupt (not JSON: {exc.msg} at line {exc.lineno})"
        ) from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise PredictorError(f'{path} is not a nasprof predictor file (no "format": "{FORMAT}")')
    version = doc.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise PredictorError(
            f"predictor file {path} is corrupt: schema_version {version!r} is not an integer"
        )
    if version > PREDICTOR_SCHEMA_VERSION:
        raise SchemaError(
            f"predictor file {path} has schema_version {version}, newer than this nasprof understands "
            f"({PREDICTOR_SCHEMA_VERSION}); upgrade nasprof or refit the predictor"
        )
    kind = doc.get("kind")
    if kind not in Predictor._kinds:
        raise PredictorError(
            f"predictor file {path} has unknown kind {kind!r}; known: {sorted(Predictor._kinds)}"
        )
    if device is not None and doc.get("device") != device:
        raise PredictorError(
            f"predictor {path} was fitted for device {doc.get('device')!r}, not {device!r}; "
            f"fit one for {device!r} or pass --device {doc.get('device')}"
        )
    body = doc.get("body")
    if not isinstance(body, dict):
        raise PredictorError(f"predictor file {path} is corrupt: no body")
    _check_header(path, doc)
    try:
        return Predictor._kinds[kind]._from_body(body, doc)
    except PredictorError:
        raise
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise PredictorError(f"predictor file {path} is corrupt: {type(exc).__name__}: {exc}") from None


def _check_header(path: Path, doc: Mapping[str, Any]) -> None:
    """The common header's fields have the types a predictor needs (a hand-edited ``"device": 42`` is
    refused here instead of predicting for a device nobody can name)."""
    device = doc.get("device")
    if not isinstance(device, str) or not device.strip():
        raise PredictorError(f"predictor file {path} is corrupt: device {device!r} is not a device name")
    for key in ("measure_spec", "training_error", "metadata"):
        if doc.get(key) is not None and not isinstance(doc[key], dict):
            raise PredictorError(f"predictor file {path} is corrupt: {key} must be an object")
    features = doc.get("features", [])
    if not isinstance(features, list) or not all(isinstance(f, str) for f in features):
        raise PredictorError(f"predictor file {path} is corrupt: features must be a list of names")


def environment() -> dict[str, str]:
    """Library versions and host, recorded in every file so a mismatch can be explained later."""
    from importlib.metadata import PackageNotFoundError, version

    env = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
    }
    for pkg in ("nasprof", "numpy", "scikit-learn", "onnxruntime", "onnx"):
        try:
            env[pkg] = version(pkg)
        except PackageNotFoundError:
            env[pkg] = "not installed"
    return env


def error_summary(
    predicted: Sequence[float] | np.ndarray, measured: Sequence[float] | np.ndarray
) -> dict[str, float]:
    """RMSE (ms), RMSPE and the shares within ±5% / ±10% — used for training error and validation."""
    p = np.asarray(predicted, np.float64)
    m = np.asarray(measured, np.float64)
    if p.shape != m.shape or p.size == 0:
        raise PredictorError("need as many predictions as measurements, at least one")
    rel = (p - m) / m
    # A bound hit exactly (1.1 ms vs 1.0 ms) counts as within it despite float rounding (0.10000000000000009).
    tol = 1e-9
    return {
        "n": int(p.size),
        "rmse_ms": float(math.sqrt(np.mean((p - m) ** 2))),
        "rmspe": float(math.sqrt(np.mean(rel**2))),
        "mape": float(np.mean(np.abs(rel))),
        "within_5pct": float(np.mean(np.abs(rel) <= 0.05 + tol)),
        "within_10pct": float(np.mean(np.abs(rel) <= 0.10 + tol)),
    }
