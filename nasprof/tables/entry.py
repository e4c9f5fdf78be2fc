"""One row of a latency table: a distinct layer configuration and what measuring it gave.

An entry either holds a latency (raw samples in ms plus statistics derived from them) or an error (the
export or the measurement failed; no latency). Statistics are recomputed from the raw samples on
construction, so a stored median can never disagree with the samples it came from.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields, replace
from datetime import datetime, timezone
from typing import Any

from nasprof.profiler.stats import SampleStats

__all__ = ["TableEntry", "SPEC_COLUMNS", "ENTRY_COLUMNS", "utc_now"]

#: Block-spec and shape columns, in table order. Shapes are (C, H, W) of the layer's input and output.
#: ``skip`` is the shortcut kind (none, id, pool, proj), ``se`` the squeeze-excite ratio (0 = none), ``mid``
#: an explicit hidden width (0 = derived) and ``variant`` a block family's flavour, as in ``BlockSpec``.
SPEC_COLUMNS: tuple[str, ...] = (
    "op", "cin", "cout", "kernel", "stride", "expand", "se", "act", "skip", "groups", "mid", "variant",
    "in_c", "in_h", "in_w", "out_c", "out_h", "out_w",
)
_INT_SPEC = {"cin", "cout", "kernel", "stride", "groups", "mid", "in_c", "in_h", "in_w", "out_c", "out_h",
             "out_w"}
_FLOAT_SPEC = {"expand", "se"}
_STR_SPEC = {"op", "act", "skip", "variant"}

_FLAG_RE = re.compile(r"^[a-z][a-z0-9_]*$")


def utc_now() -> str:
    """A sortable UTC timestamp (ISO 8601, milliseconds); string order is time order."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class TableEntry:
    """The latency of one layer configuration on the table's device.

    ``samples_ms`` are the timed end-to-end runs in milliseconds; ``median_ms``/``p90_ms``/``mad_ms``/``cv``
    are derived from them. An entry imported from a tool that kept no samples may carry ``median_ms`` alone.
    A failed entry has ``error`` set and no latency. ``flags`` mark quality issues (``unstable``,
    ``remeasured``, ``ci_wide``, ``tiny``, ``estimated``). ``measured_on`` names the device instance (phone
    serial, board) that produced the samples; ``export_s``/``measure_s`` record where the build's time went.
    """

    key: str
    samples_ms: tuple[float, ...] = ()
    median_ms: float | None = None
    p90_ms: float | None = None
    mad_ms: float | None = None
    cv: float | None = None
    macs: int | None = None
    params: int | None = None
    op: str | None = None
    cin: int | None = None
    cout: int | None = None
    kernel: int | None = None
    stride: int | None = None
    expand: float | None = None
    se: float | None = None
    act: str | None = None
    skip: str | None = None
    groups: int | None = None
    mid: int | None = None
    variant: str | None = None
    in_c: int | None = None
    in_h: int | None = None
    in_w: int | None = None
    out_c: int | None = None
    out_h: int | None = None
    out_w: int | None = None
    flags: tuple[str, ...] = ()
    error: str | None = None
    attempts: int = 1
    measured_on: str | None = None
    #: The host the device was attached to, and the program that timed it (``perf_test sha256:…`` on a
    #: phone, ``onnxruntime 1.x`` in this process): a farm's entries say where each came from.
    host: str | None = None
    runner: str | None = None
    peak_sram_bytes: int | None = None
    flash_bytes: int | None = None
    export_s: float | None = None
    measure_s: float | None = None
    created_at: str | None = None
    updated_at: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.key, str) or not self.key.strip():
            raise ValueError("an entry needs a non-empty key")
        # Kept to 1 ns (the timer's resolution): exact round trips through JSON/CSV at half the digits.
        samples = tuple(round(float(v), 6) for v in self.samples_ms)
        if any(not math.isfinite(v) or v <= 0 for v in samples):
            raise ValueError(f"{self.key}: samples_ms must be finite and > 0")
        set_ = object.__setattr__
        set_(self, "samples_ms", samples)
        for name in SPEC_COLUMNS:
            set_(self, name, _coerce_spec(name, getattr(self, name)))
        for name in ("macs", "params", "peak_sram_bytes", "flash_bytes"):
            v = getattr(self, name)
            if v is not None:
                if int(v) != v or v < 0:
                    raise ValueError(f"{self.key}: {name} must be a non-negative integer, got {v!r}")
                set_(self, name, int(v))
        flags = tuple(sorted(set(self.flags)))
        bad = [f for f in flags if not _FLAG_RE.match(f)]
        if bad:
            raise ValueError(f"{self.key}: malformed flags {bad}: use lower-case words like 'unstable'")
        set_(self, "flags", flags)
        if int(self.attempts) < 1:
            raise ValueError(f"{self.key}: attempts must be >= 1")
        set_(self, "attempts", int(self.attempts))
        if self.error is not None:
            if samples or self.median_ms is not None:
                raise ValueError(f"{self.key}: a failed entry (error set) carries no latency")
            if not str(self.error).strip():
                raise ValueError(f"{self.key}: error must say what failed")
            set_(self, "error", str(self.error))
            return
        if samples:
            st = SampleStats(samples)
            if self.median_ms is not None and not math.isclose(self.median_ms, st.median, rel_tol=1e-9):
                raise ValueError(
                    f"{self.key}: median_ms {self.median_ms} disagrees with its samples (median {st.median})"
                )
            set_(self, "median_ms", st.median)
            set_(self, "p90_ms", st.p90)
            set_(self, "mad_ms", st.mad)
            set_(self, "cv", st.cv)
        elif self.median_ms is None:
            raise ValueError(f"{self.key}: an entry needs samples_ms, median_ms or an error")
        for name in ("median_ms", "p90_ms", "mad_ms", "cv"):
            v = getattr(self, name)
            if v is not None and (not math.isfinite(float(v)) or float(v) < 0):
                raise ValueError(f"{self.key}: {name} must be finite and >= 0, got {v!r}")
        if self.median_ms is not None and self.median_ms <= 0:
            raise ValueError(f"{self.key}: median_ms must be > 0")

    # -- views ------------------------------------------------------------------------------------------
    @property
    def ok(self) -> bool:
        """True when the entry holds a latency (not an error)."""
        return self.error is None

    @property
    def n(self) -> int:
        """Number of raw samples."""
        return len(self.samples_ms)

    @property
    def spec(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in SPEC_COLUMNS}

    def with_flags(self, *extra: str) -> TableEntry:
        return replace(self, flags=tuple(self.flags) + extra)

    def to_row(self) -> dict[str, Any]:
        """Field name -> value, with tuples as lists (JSON- and DataFrame-friendly)."""
        row = {f.name: getattr(self, f.name) for f in fields(self)}
        row["samples_ms"] = list(self.samples_ms)
        row["flags"] = list(self.flags)
        return row

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> TableEntry:
        """Build from a mapping with any subset of the fields; unknown keys are an error (typo guard)."""
        known = {f.name for f in fields(cls)}
        unknown = set(row) - known - {"n"}
        if unknown:
            raise ValueError(f"unknown entry fields: {', '.join(sorted(unknown))}")
        kw = {k: v for k, v in row.items() if k in known}
        kw["samples_ms"] = tuple(kw.get("samples_ms") or ())
        kw["flags"] = tuple(kw.get("flags") or ())
        return cls(**kw)

    @classmethod
    def failed(cls, key: str, error: str, **fields_: Any) -> TableEntry:
        """A recorded failure: the build goes on, and ``--retry-failed`` can measure it again later."""
        return cls(key=key, error=error, **fields_)


def _coerce_spec(name: str, v: Any) -> Any:
    if v is None:
        return None
    if name in _STR_SPEC:
        return str(v) or None  # "" (a default variant) and missing are the same, also after a CSV trip
    if name in _INT_SPEC:
        if isinstance(v, bool):
            return int(v)
        f = float(v)
        if not f.is_integer():
            raise ValueError(f"spec column {name} must be an integer, got {v!r}")
        return int(f)
    if name in _FLOAT_SPEC:
        return float(v)
    raise AssertionError(name)


#: Every stored column, in table order (``n`` is derived but stored for SQL queries).
ENTRY_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(TableEntry)) + ("n",)


def merge_flags(*groups: Iterable[str]) -> tuple[str, ...]:
    out: set[str] = set()
    for g in groups:
        out.update(g)
    return tuple(sorted(out))
