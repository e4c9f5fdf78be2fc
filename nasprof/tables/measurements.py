"""Measurements from elsewhere as data: named, versioned sets of end-to-end latencies of whole networks.

A user's Raspberry Pi on a desk or a published benchmark gives one latency per network;
``import_measurements`` reads such a file (``measurements_io``), checks every row, and stores it as a new
version of a named set in one SQLite file, the measurement store, with its provenance (device, runtime,
threads, who measured it and when, the source file and its sha256). ``load_measurement_set`` gives a set
back by ``NAME``, ``NAME@vN`` or a file path (read directly, not stored).

The store file itself (where it is, its schema and its history, checked connections) is
``measurement_store``; the files a set is read from and written to are ``measurements_io``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import sqlite3
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nasprof.errors import InputError, NasprofError, SpaceError, TableError
from nasprof.tables.entry import utc_now
from nasprof.tables.measurement_store import insert_version, read_store, store_path, write_store
from nasprof.tables.measurements_export import meta_path, read_file_metadata, write_measurements_file
from nasprof.tables.measurements_io import MAX_ROWS, MeasuredNetwork, read_measurements_file

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

__all__ = [
    "MeasurementSet", "MeasurementSetInfo", "check_set_name", "export_measurement_set", "import_measurements",
    "list_measurement_sets", "load_measurement_set", "record_measurement", "record_measurements",
    "space_validator",
]

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,99}$")
_FILE_SUFFIXES = (".csv", ".tsv", ".txt", ".parquet", ".pq")
_REF_RE = re.compile(r"^(?P<name>.+)@v(?P<version>[0-9]+)$")


@dataclass(frozen=True)
class MeasurementSet:
    """A named, versioned set of measured networks and where the numbers came from.

    ``provenance`` holds strings: device, runtime, threads, measured_by, measured_at, source (the file),
    sha256 (of the file), imported_at, notes (those given). ``space`` and ``arch_options`` (e.g.
    ``{"input": "1x52x16", "outputs": 18}`` for nb201) say how to read the architecture texts. A set read
    straight from a file has version 0. ``warnings`` are what the import had to say (not stored).
    """

    name: str
    version: int
    rows: tuple[MeasuredNetwork, ...]
    provenance: Mapping[str, str] = field(default_factory=dict)
    space: str | None = None
    arch_options: Mapping[str, Any] = field(default_factory=dict)
    warnings: tuple[str, ...] = field(default=(), compare=False)

    @property
    def label(self) -> str:
        """``NAME@vN`` (or the name alone for a set read from a file)."""
        return f"{self.name}@v{self.version}" if self.version else self.name

    def __len__(self) -> int:
        return len(self.rows)

    def latencies_ms(self) -> np.ndarray:
        """The median latency of each row, in milliseconds (float64), in row order."""
        import numpy as np

        return np.array([r.latency_ms for r in self.rows], dtype=np.float64)

    def archs(self) -> list[str]:
        """The architecture text (or model path) of each row, in row order."""
        return [r.key for r in self.rows]

    def summary(self) -> dict[str, Any]:
        """Count and median/min/max of the rows' latencies (ms)."""
        lat = [r.latency_ms for r in self.rows]
        return {"count": len(lat), "median_ms": statistics.median(lat) if lat else None,
                "min_ms": min(lat, default=None), "max_ms": max(lat, default=None),
                "with_accuracy": sum(r.accuracy is not None for r in self.rows),
                "with_samples": sum(bool(r.samples_ms) for r in self.rows)}

    def to_dataframe(self) -> pd.DataFrame:
        """One row per network: arch, model, latency_ms, spread_ms, samples_ms (lists), accuracy, line."""
        import pandas as pd

        cols = ("arch", "model", "latency_ms", "spread_ms", "samples_ms", "accuracy", "line")
        return pd.DataFrame(
            [(r.arch, r.model, r.latency_ms, r.spread_ms, list(r.samples_ms), r.accuracy, r.line)
             for r in self.rows], columns=list(cols),
        ).astype({"latency_ms": "float64", "spread_ms": "float64", "accuracy": "float64", "line": "int64"})

    def to_dict(self, rows: int | None = None) -> dict[str, Any]:
        """JSON-ready: name, version, provenance, space, arch_options, summary, the (first ``rows``) rows."""
        shown = self.rows if rows is None else self.rows[:rows]
        return {"name": self.name, "version": self.version, "provenance": dict(self.provenance),
                "space": self.space, "arch_options": dict(self.arch_options), "summary": self.summary(),
                "rows": [_row_dict(r) for r in shown]}


@dataclass(frozen=True)
class MeasurementSetInfo:
    """One stored version of a set, without its rows (``list_measurement_sets``)."""

    name: str
    version: int
    count: int
    created_at: str
    provenance: Mapping[str, str]
    space: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "count": self.count,
                "created_at": self.created_at, "provenance": dict(self.provenance), "space": self.space}


def _row_dict(r: MeasuredNetwork) -> dict[str, Any]:
    d: dict[str, Any] = {"arch": r.arch} if r.arch is not None else {"model": r.model}
    d.update(latency_ms=r.latency_ms, spread_ms=r.spread_ms, samples_ms=list(r.samples_ms),
             accuracy=r.accuracy, line=r.line)
    return d


# -- names -------------------------------------------------------------------------------------------------
def check_set_name(name: str) -> str:
    """``name`` when it can name a measurement set; ``InputError`` saying what a name may hold otherwise."""
    if not isinstance(name, str) or not _NAME_RE.match(name) or name.lower().endswith(_FILE_SUFFIXES):
        raise InputError(f"invalid measurement set name {name!r}: use letters, digits and . _ + - (up to "
                         "100, starting with a letter or digit, no file suffix), e.g. rpi4-nb201")
    return name


def _parse_ref(ref: str, version: int | None) -> tuple[str, int | None]:
    m = _REF_RE.match(ref)
    if m is None:
        return check_set_name(ref), version
    named = int(m["version"])
    if version is not None and version != named:
        raise InputError(f"{ref} names version {named} but version={version} was asked; give one of them")
    return check_set_name(m["name"]), named


# -- import ------------------------------------------------------------------------------------------------
def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _measured_at(text: str | None) -> str | None:
    if text is None:
        return None
    try:
        datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InputError(f"measured_at {text!r} is not an ISO 8601 date or time; write e.g. 2024-05-01 or "
                         "2024-05-01T14:30") from None
    return text.strip()


def _provenance(device: str, runtime: str | None, threads: int | None, measured_by: str | None,
                measured_at: str | None, notes: str | None) -> dict[str, str]:
    if not isinstance(device, str) or not device.strip():
        raise InputError("a measurement set needs the device it was measured on (device=, --device), e.g. "
                         "rpi4 or 'Pixel 7, big core'")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise InputError(f"threads must be a count >= 1, got {threads!r}")
    prov = {"device": device.strip()}
    for key, value in (("runtime", runtime), ("threads", threads), ("measured_by", measured_by),
                       ("measured_at", _measured_at(measured_at)), ("notes", notes)):
        if value is not None and str(value).strip():
            prov[key] = str(value).strip()
    return prov


def _arch_options(arch_options: Mapping[str, Any] | None) -> dict[str, Any]:
    opts = dict(arch_options or {})
    try:
        json.dumps(opts)
    except (TypeError, ValueError) as exc:
        raise InputError(f"arch_options must be JSON-serialisable: {exc}") from None
    return opts


def import_measurements(
    path: str | Path,
    name: str,
    *,
    device: str,
    runtime: str | None = None,
    threads: int | None = None,
    measured_by: str | None = None,
    measured_at: str | None = None,
    notes: str | None = None,
    space: str | None = None,
    arch_options: Mapping[str, Any] | None = None,
    validate_arch: Callable[[str], None] | None = None,
    store: str | Path | None = None,
    force: bool = False,
    arch_column: str | None = None,
    latency_column: str | None = None,
) -> MeasurementSet:
    """Read ``path`` (CSV or Parquet, see ``read_measurements_file``) and store it as the next version of
    set ``name`` (v1 for a new name), in one transaction: a bad row stores nothing.

    The same file content (sha256) already imported under ``name`` is refused unless ``force``.
    ``validate_arch`` checks each architecture text (``space_validator(space, arch_options)`` checks them
    against a search space); without it the texts are stored as given.
    """
    check_set_name(name)
    path = Path(path)
    prov = _provenance(device, runtime, threads, measured_by, measured_at, notes)
    opts = _arch_options(arch_options)
    store_file = store_path(store)
    if path.exists() and store_file.exists() and _same(path, store_file):
        raise InputError(f"{path} is the measurement store itself; import a CSV or Parquet file")
    rows = read_measurements_file(path, validate_arch=validate_arch, arch_column=arch_column,
                                  latency_column=latency_column)
    digest = _sha256(path)
    prov.update(source=str(path.resolve()), sha256=digest, imported_at=utc_now())
    with contextlib.suppress(ImportError):
        from nasprof._version import __version__

        prov["nasprof_version"] = __version__
    with write_store(store) as cur:
        for version, raw in cur.execute(
                "SELECT version, provenance FROM sets WHERE name = ? ORDER BY version", (name,)).fetchall():
            if json.loads(raw).get("sha256") == digest and not force:
                raise InputError(f"{path} is already imported as {name}@v{version} (same content, sha256 "
                                 f"{digest[:12]}); nothing stored; pass --force (force=True) to store it "
                                 "again")
        version = insert_version(cur, name, rows, prov, space, opts)
    return MeasurementSet(name=name, version=version, rows=tuple(rows), provenance=prov, space=space,
                          arch_options=opts, warnings=rows.warnings)


def _same(a: Path, b: Path) -> bool:
    from nasprof._io import same_file

    return same_file(a, b)


# -- reading back ------------------------------------------------------------------------------------------
def _looks_like_file(ref: str) -> bool:
    return "/" in ref or os.sep in ref or ref.lower().endswith(_FILE_SUFFIXES)


def load_measurement_set(
    name_or_path: str | Path, version: int | None = None, store: str | Path | None = None
) -> MeasurementSet:
    """A set by ``NAME`` (its latest version), ``NAME@vN`` or ``version=N`` from the store; or a CSV/Parquet
    file read directly (validated, not stored; provenance from an export's metadata when present)."""
    ref = str(name_or_path)
    if isinstance(name_or_path, Path) or Path(ref).is_file() or _looks_like_file(ref):
        path = Path(ref)
        if not path.is_file() and not path.exists():
            raise InputError(f"no file at {path}, and it is not a measurement set name")
        if version is not None:
            raise InputError(f"version= applies to a stored set, not to the file {path}")
        return _from_file(path)
    name, version = _parse_ref(ref, version)
    with read_store(store) as conn:
        if conn is None:
            raise InputError(f"no measurement set {name}: the store {store_path(store)} is empty; import "
                             "one with `nasprof measurements import FILE --name NAME --device DEV`")
        if version is None:
            row = conn.execute("SELECT MAX(version) FROM sets WHERE name = ?", (name,)).fetchone()
            version = row[0] if row else None
            if version is None:
                raise InputError(f"no measurement set {name} in {store_path(store)}{_known(conn)}")
        head = conn.execute("SELECT provenance, space, arch_options FROM sets WHERE name = ? AND version = ?",
                            (name, version)).fetchone()
        if head is None:
            have = [v for (v,) in conn.execute("SELECT version FROM sets WHERE name = ? ORDER BY version",
                                               (name,))]
            if not have:
                raise InputError(f"no measurement set {name} in {store_path(store)}{_known(conn)}")
            raise InputError(f"{name} has no version {version}; it has "
                             + ", ".join(f"v{v}" for v in have))
        rows = conn.execute("SELECT arch, model, latency_ms, spread_ms, samples_ms, accuracy, line FROM rows "
                            "WHERE name = ? AND version = ? ORDER BY idx", (name, version)).fetchall()
    try:
        nets = tuple(MeasuredNetwork(arch=a, model=m, latency_ms=lat, spread_ms=sp,
                                     samples_ms=tuple(json.loads(s)), accuracy=acc, line=line)
                     for a, m, lat, sp, s, acc, line in rows)
        provenance = {str(k): str(v) for k, v in json.loads(head[0]).items()}
        opts = json.loads(head[2])
    except (ValueError, TypeError) as exc:
        raise TableError(f"{store_path(store)}: set {name}@v{version} is corrupt ({exc}); the store was "
                         "changed outside nasprof") from None
    return MeasurementSet(name=name, version=int(version), rows=nets, provenance=provenance, space=head[1],
                          arch_options=opts)


def _known(conn: sqlite3.Connection) -> str:
    names = [n for (n,) in conn.execute("SELECT DISTINCT name FROM sets ORDER BY name LIMIT 11")]
    if not names:
        return ""
    return "; it has " + ", ".join(names[:10]) + (" ..." if len(names) > 10 else "")


def _from_file(path: Path) -> MeasurementSet:
    rows = read_measurements_file(path)
    meta = read_file_metadata(path)
    prov = {str(k): str(v) for k, v in (meta.get("provenance") or {}).items()}
    if prov:  # an export: its provenance as stored, and the file it was read from now
        prov.update(file=str(path.resolve()), file_sha256=_sha256(path))
    else:
        prov.update(source=str(path.resolve()), sha256=_sha256(path))
    opts = meta.get("arch_options") if isinstance(meta.get("arch_options"), dict) else {}
    space = meta.get("space") if isinstance(meta.get("space"), str) else None
    return MeasurementSet(name=path.stem, version=0, rows=tuple(rows), provenance=prov, space=space,
                          arch_options=opts or {}, warnings=rows.warnings)


def list_measurement_sets(store: str | Path | None = None) -> list[MeasurementSetInfo]:
    """Every stored version of every set, by name then version."""
    with read_store(store) as conn:
        if conn is None:
            return []
        rows = conn.execute(
            "SELECT s.name, s.version, s.created_at, s.provenance, s.space, "
            "(SELECT COUNT(*) FROM rows r WHERE r.name = s.name AND r.version = s.version) "
            "FROM sets s ORDER BY s.name, s.version").fetchall()
    return [MeasurementSetInfo(name=n, version=int(v), count=int(c), created_at=at, space=sp,
                               provenance={str(k): str(x) for k, x in json.loads(p).items()})
            for n, v, at, p, sp, c in rows]


def export_measurement_set(
    name: str, path: str | Path, version: int | None = None, store: str | Path | None = None
) -> Path:
    """Write a stored set to ``path``: CSV (provenance in ``PATH.meta.json`` beside it) or Parquet
    (provenance inside), by suffix. ``read_measurements_file`` reads the rows back as they were."""
    from nasprof._io import check_output

    path = Path(path)
    if path.suffix.lower() not in (".csv", ".parquet", ".pq"):
        raise InputError(f"cannot export to {path}: name a .csv or .parquet file")
    store_file = store_path(store)
    check_output(path, inputs=[store_file], label="export")
    if path.suffix.lower() == ".csv":
        check_output(meta_path(path), inputs=[store_file], label="export")
    set_name, version = _parse_ref(str(name), version)
    ms = load_measurement_set(set_name, version, store)
    meta = {"name": ms.name, "version": ms.version, "provenance": dict(ms.provenance), "space": ms.space,
            "arch_options": dict(ms.arch_options)}
    return write_measurements_file(path, ms.rows, meta)


def record_measurement(
    name: str,
    arch_or_model: str | Path,
    samples_ms: Sequence[float],
    metadata: Mapping[str, Any],
    store: str | Path | None = None,
) -> MeasurementSet:
    """Append one network measured by nasprof (``measure``'s samples) to set ``name`` as a new version: the
    latest version's rows plus this one (replacing an earlier row of the same network). ``metadata`` gives
    the provenance (device required; runtime/backend, threads, measured_by, measured_at, notes). A set
    measured on another device is refused: record into another name."""
    samples = tuple(float(v) for v in samples_ms)
    if not samples:
        raise InputError("record_measurement needs at least one sample")
    spread = statistics.stdev(samples) if len(samples) > 1 else None
    return record_measurements(name, [(arch_or_model, statistics.median(samples), spread, samples)], metadata,
                               store=store)


def record_measurements(
    name: str,
    networks: Sequence[tuple[str | Path, float, float | None, Sequence[float]]],
    metadata: Mapping[str, Any],
    store: str | Path | None = None,
) -> MeasurementSet:
    """Append several networks measured by nasprof (a ``validate`` run: each ``(arch or model, median ms,
    spread ms or None, raw samples or ())``) to set ``name`` as ONE new version, in one transaction."""
    check_set_name(name)
    if not networks:
        raise InputError("nothing to record: no measured networks")
    threads = metadata.get("threads")
    prov = _provenance(str(metadata.get("device") or ""), metadata.get("runtime") or metadata.get("backend"),
                       int(threads) if isinstance(threads, (int, float)) and not isinstance(threads, bool)
                       else None,
                       metadata.get("measured_by") or "nasprof measure",
                       metadata.get("measured_at") or utc_now(), metadata.get("notes"))
    new: list[MeasuredNetwork] = []
    for arch_or_model, median_ms, spread, samples in networks:
        key = str(arch_or_model)
        is_model = isinstance(arch_or_model, Path) or key.lower().endswith(".onnx") or Path(key).is_file()
        new.append(MeasuredNetwork(arch=None if is_model else key, model=key if is_model else None,
                                   latency_ms=float(median_ms), spread_ms=spread,
                                   samples_ms=tuple(float(v) for v in samples), line=0))
    with write_store(store) as cur:
        latest = cur.execute("SELECT version, provenance, space, arch_options FROM sets WHERE name = ? "
                             "ORDER BY version DESC LIMIT 1", (name,)).fetchone()
        previous: list[MeasuredNetwork] = []
        space, opts = None, {}
        if latest is not None:
            old = json.loads(latest[1])
            if old.get("device") != prov["device"]:
                raise InputError(f"{name} was measured on {old.get('device')!r}, this on {prov['device']!r}; "
                                 "record into another set name")
            space, opts = latest[2], json.loads(latest[3])
            previous = [MeasuredNetwork(arch=a, model=m, latency_ms=lat, spread_ms=sp,
                                        samples_ms=tuple(json.loads(s)), accuracy=acc, line=line)
                        for a, m, lat, sp, s, acc, line in cur.execute(
                            "SELECT arch, model, latency_ms, spread_ms, samples_ms, accuracy, line FROM rows "
                            "WHERE name = ? AND version = ? ORDER BY idx", (name, latest[0]))]
        keys = {n.key for n in new}
        rows = [r for r in previous if r.key not in keys] + new
        if len(rows) > MAX_ROWS:
            raise InputError(f"{name} would hold more than {MAX_ROWS:,} rows; record into another set name")
        prov.update(source=str(metadata.get("source") or "nasprof measure"), imported_at=utc_now())
        version = insert_version(cur, name, rows, prov, space, opts)
    return MeasurementSet(name=name, version=version, rows=tuple(rows), provenance=prov, space=space,
                          arch_options=opts)


# -- architecture checks ----------------------------------------------------------------------------------
def space_validator(space: str, arch_options: Mapping[str, Any] | None = None) -> Callable[[str], None]:
    """A ``validate_arch`` that parses each text as an architecture of ``space`` (``nasprof.space.parse``),
    with ``arch_options`` (nb201: ``input="CxHxW"``, ``outputs=N``) passed on; ``SpaceError`` when it is
    not."""
    try:
        from nasprof.space.parse import parse_arch
    except ImportError:
        raise InputError(f"checking architectures of space {space!r} needs nasprof.space.parse, which this "
                         "nasprof lacks; import without --space") from None
    opts = dict(arch_options or {})

    def validate(text: str) -> None:
        try:
            parse_arch(text, space, **opts)
        except NasprofError:
            raise
        except (ValueError, TypeError, KeyError) as exc:  # a parser's own slip: still the user's text
            raise SpaceError(f"not an architecture of {space}: {exc}") from None

    return validate
