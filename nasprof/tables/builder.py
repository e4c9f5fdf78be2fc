"""Build a latency table: every distinct layer of a space at one resolution, measured on one device type.

The build is a queue of pending layers (distinct layers of the space, sorted by key, minus those already in
the table, optionally one shard of them and at most ``limit``), measured in a hashed order
(``measure_order``). A child process exports layers to ONNX a few
entries ahead; one worker thread per device pulls from the queue, so identical phones share the work.

Never losing an entry:
- every entry is written in its own transaction; a build killed with -9 loses at most the entry in flight;
- before measuring, a worker *claims* the key in the table (a ``claims`` row with owner, pid and a lease),
  so two builds on one table — two shards, or even the same pending set — never measure a key twice; a
  claim left by a dead process on this host is taken over at once, one from another host after its lease;
- the entry is written with ``if_absent`` (a successful entry is never overwritten by a builder), in the
  same transaction that drops the claim: every key ends up stored exactly once;
- an export or measurement failure is stored as an entry with its error, and the build goes on
  (``retry_failed=True`` measures such entries again); a device that disappears stops its worker and hands
  its layer back to the queue instead of recording a failure.
"""

from __future__ import annotations

import os
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from nasprof.devices.base import Backend, MeasureSpec
from nasprof.errors import DeviceError, DeviceUnavailableError, InputError, NasprofError, TableError
from nasprof.profiler.measurement import Measurement
from nasprof.tables.build_layers import (
    distinct_layers,
    layer_entry_fields,
    measure_order,
    memory_fields,
    parse_shard,
    resolve_space,
    select_layers,
)
from nasprof.tables.compat import check_comparable, environment_mismatch
from nasprof.tables.entry import TableEntry
from nasprof.tables.entry_flags import FLAG_REMEASURED, Quality, assess, better
from nasprof.tables.export_worker import InlineExporter, ProcessExporter
from nasprof.tables.planner import RunPlanner
from nasprof.tables.queue import LayerQueue
from nasprof.tables.store import LatencyTable

__all__ = ["build_table", "BuildProgress", "BuildReport", "TABLE_SPEC"]

#: Measurement settings for table builds. Fewer sessions and warm-ups than a one-off ``nasprof measure``:
#: a table has thousands of small layers. ``runs`` is a floor (``RunPlanner`` raises it to fill a time
#: budget), ``warmup`` a ceiling, and adaptive repetition adds sessions until the median is known to ±1%
#: (95% confidence), capped at ``max_runs`` samples.
TABLE_SPEC = MeasureSpec(threads=1, warmup=10, runs=10, sessions=2, target_rel_ci=0.01, max_runs=300)

#: How many layers the export process works ahead of the measurement with one device; each further device
#: adds one, so devices finishing together (a farm's phones run in step) each find an export ready.
EXPORT_AHEAD = 3
#: The most layers exported ahead (they wait on disk; a large farm stays fed without one per phone).
MAX_EXPORT_AHEAD = 32
#: Timed inference planned per entry (see ``RunPlanner``): with the fixed costs of an entry (two sessions,
#: warm-ups, commits) this keeps efficiency near 70-80% while a 2,000-entry table fits in about 15 minutes.
DEFAULT_TIME_PER_ENTRY_S = 0.25


@dataclass(frozen=True)
class BuildProgress:
    """Where a build stands; passed to the progress callback after every entry (and once at the start)."""

    total: int
    done: int
    failed: int
    already_done: int
    taken_by_others: int
    key: str | None
    elapsed_s: float

    @property
    def remaining(self) -> int:
        return max(self.total - self.done - self.taken_by_others, 0)

    @property
    def rate_per_min(self) -> float:
        return 60.0 * self.done / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def eta_s(self) -> float | None:
        return self.remaining * self.elapsed_s / self.done if self.done else None


@dataclass(frozen=True)
class BuildReport:
    """What a build did and where its time went (seconds). ``inference_s`` is the time spent inside timed
    inference (sum of all timed samples); ``efficiency`` = ``inference_s`` ÷ ``wall_s``."""

    db: str
    device: str
    space: str
    resolution: int
    shard: tuple[int, int] | None
    distinct: int
    selected: int
    already_done: int
    written: int
    failed: int
    remeasured: int
    unstable: int
    taken_by_others: int
    wall_s: float
    export_s: float
    measure_s: float
    inference_s: float
    #: Time the measuring threads waited for an export to finish (0 when the child keeps ahead).
    export_wait_s: float = 0.0
    #: Of which the wait for the first export (the child process starting and importing torch).
    first_export_wait_s: float = 0.0
    #: Time in database transactions (claims and entry commits).
    db_s: float = 0.0
    #: Setup before the first entry: enumerating the space, opening the table, importing runtimes.
    setup_s: float = 0.0
    devices: tuple[str, ...] = ()
    complete: bool = False

    @property
    def entries_per_min(self) -> float:
        return 60.0 * self.written / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def efficiency(self) -> float:
        return self.inference_s / self.wall_s if self.wall_s > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["shard"] = None if self.shard is None else list(self.shard)
        d["devices"] = list(self.devices)
        d["entries_per_min"] = self.entries_per_min
        d["efficiency"] = self.efficiency
        return d


@dataclass
class _Tally:
    """Mutable counters shared by the workers (guarded by ``lock``)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    done: int = 0
    written: int = 0
    failed: int = 0
    remeasured: int = 0
    unstable: int = 0
    taken: int = 0
    export_s: float = 0.0
    measure_s: float = 0.0
    inference_s: float = 0.0
    export_wait_s: float = 0.0
    first_export_wait_s: float | None = None
    db_s: float = 0.0

    def add(self, **seconds: float) -> None:
        with self.lock:
            for k, v in seconds.items():
                setattr(self, k, getattr(self, k) + v)


def _resolve_devices(device: str | Backend | Sequence[str | Backend]) -> list[Backend]:
    from nasprof.devices import get_device

    items: list[str | Backend]
    if isinstance(device, str):
        items = [d.strip() for d in device.split(",") if d.strip()]
    elif isinstance(device, Backend):
        items = [device]
    else:
        items = list(device)
    if not items:
        raise InputError("--device needs at least one device name")
    backends = [d if isinstance(d, Backend) else get_device(d) for d in items]
    if len({b.device for b in backends}) != len(backends):
        raise InputError("each device may appear once in --device")
    return backends


def _open_table(
    db: Path, space: Any, resolution: int, backends: list[Backend], spec: MeasureSpec, distinct: int,
    force: bool, time_per_entry_s: float | None, precision: str = "fp32", batch: int = 1,
) -> tuple[LatencyTable, dict[str, dict[str, Any]]]:
    envs = check_comparable(backends, spec, force=force)
    meta = {
        "device": backends[0].device,
        "devices": [b.device for b in backends],
        "backend": backends[0].name,
        "environment": envs[0],
        "space": space.name,
        "resolution": resolution,
        "distinct_layers": distinct,
        "measure_spec": {k: v for k, v in asdict(spec).items() if k not in ("input_shapes", "options")},
        "time_per_entry_s": time_per_entry_s,
        # fp32 or int8 (QDQ, statically quantised): one table holds one precision.
        "precision": precision,
        # Images per inference: every entry was exported and timed with this batch.
        "batch": batch,
    }
    table = LatencyTable.open(db, create=True, metadata=meta)
    old = table.metadata
    try:
        if old.get("precision", "fp32") != precision:
            raise TableError(f"{db} holds {old.get('precision', 'fp32')} entries, not {precision}; one table "
                             "holds one precision: use another --db")
        if old.get("batch", 1) != batch:
            raise TableError(f"{db} holds entries timed at batch {old.get('batch', 1)}, not {batch}; one "
                             "table holds one batch size: use another --db")
        if old.get("space") not in (None, space.name) or old.get("resolution") not in (None, resolution):
            raise TableError(
                f"{db} holds space {old.get('space')!r} at resolution {old.get('resolution')}, not "
                f"{space.name!r} at {resolution}; use another --db"
            )
        diff = environment_mismatch(old.get("environment", {}), envs[0])
        if diff and not force:
            raise TableError(
                f"{db} was measured on {old.get('device')!r} in another environment ({'; '.join(diff)}); "
                "use another --db, or --force to add to it anyway"
            )
        corrupt = table.corrupt()
        if corrupt:  # never extend a table that fails validation: what it holds cannot be trusted
            raise TableError(
                f"{db} has {len(corrupt)} corrupt row(s) (e.g. {corrupt[0]!r}): it was changed outside "
                "nasprof; restore it from a copy or build into a new table"
            )
        # The first write (a schema-1 table is upgraded by it), once nothing above refused the table.
        table.drop_stale_claims()  # left by a builder killed with -9: this run resumes its work
        # Which host each device was attached to (a phone farm spans hosts), over every run of the build.
        origins = {b.device: entry_origin(b, env) for b, env in zip(backends, envs, strict=True)}
        hosts = {name: o["host"] for name, o in origins.items()}
        table.update_metadata(device_hosts={**(old.get("device_hosts") or {}), **hosts})
    except NasprofError:
        table.close()
        raise
    return table, origins


def entry_origin(backend: Backend, env: dict[str, Any]) -> dict[str, Any]:
    """What every entry a device measures records of where it came from: the device, the host it is attached
    to, and the program that timed it (the runner build on a phone, the runtime in this process)."""
    sha = env.get("runner_sha256")
    if sha:
        known = env.get("runner_version") not in (None, "", "unknown")
        version = f" {env['runner_version']}" if known else ""
        runner = f"onnxruntime_perf_test{version} sha256:{str(sha)[:16]}"
    elif env.get("estimate"):
        runner = f"nasprof estimator ({env.get('runtime') or backend.name})"
    else:
        runtime = env.get("runtime_version") or env.get("onnxruntime_version")
        runner = f"{env.get('runtime') or 'onnxruntime'} {runtime}" if runtime else backend.name
    return {"measured_on": backend.device, "host": str(env.get("host") or socket.gethostname()),
            "runner": runner}


def build_table(
    space: Any,
    resolution: int,
    device: str | Backend | Sequence[str | Backend],
    db: str | Path,
    *,
    limit: int | None = None,
    shard: str | tuple[int, int] | None = None,
    spec: MeasureSpec | None = None,
    retry_failed: bool = False,
    remeasure: int = 1,
    force: bool = False,
    export_jobs: int = 1,
    time_per_entry_s: float | None = DEFAULT_TIME_PER_ENTRY_S,
    memory_board: str | None = None,
    progress: Callable[[BuildProgress], None] | None = None,
    int8: bool = False,
    batch: int = 1,
) -> BuildReport:
    """Measure every pending distinct layer of ``space`` at ``resolution`` on ``device`` into ``db``.

    ``space`` is a name or a ``Space``; ``device`` a name (``"pixel,pixel2"`` for several identical
    devices), a ``Backend`` or a list of them. Re-running resumes: finished entries are skipped.
    ``limit`` caps how many pending entries this run measures; ``shard="I/N"`` takes every N-th layer of
    the sorted key list, starting at the I-th. Entries flagged unstable are measured up to ``remeasure``
    more times and the more trustworthy measurement is kept. ``time_per_entry_s`` plans each entry's runs
    so it spends about that long in timed inference (``spec.runs`` is then the floor; None or 0 keeps
    ``spec.runs`` for every entry). ``export_jobs=0`` exports in the measuring thread instead of a child
    process. Entries carry peak SRAM / Flash bytes when the device is an MCU board, or for
    ``memory_board`` (an MCU board name) when asked. ``int8``: every layer is statically quantised to int8
    (QDQ, ``nasprof.space.quantize``) before it is measured, and the table records ``precision: int8``;
    ``batch``: images per inference (exports carry it; the table records it).
    Returns a ``BuildReport``; raises
    ``SpaceError``/``InputError`` for bad arguments and ``TableError``/``SchemaError`` for a db that is
    not a compatible table (left untouched)."""
    t_start = time.perf_counter()
    spec = spec or TABLE_SPEC
    if limit is not None and limit < 0:
        raise InputError(f"--limit must be >= 0, got {limit}")
    if remeasure < 0:
        raise InputError(f"--remeasure must be >= 0, got {remeasure}")
    shard_t = parse_shard(shard)
    if memory_board is not None:
        from nasprof.devices.mcu import get_board

        get_board(memory_board)  # unknown board: fail before measuring anything
    space = resolve_space(space)
    all_layers = distinct_layers(space, resolution)
    backends = _resolve_devices(device)
    for b in backends:
        b.ensure_available()
        b.check_spec(spec)  # a refused option fails here, not once per entry
    selected = select_layers(all_layers, shard_t)
    distinct = len({layer.key for layer in all_layers})
    if isinstance(batch, bool) or not isinstance(batch, int) or not 1 <= batch <= 1024:
        raise InputError(f"--batch must be an integer in [1, 1024], got {batch!r}")
    table, origins = _open_table(Path(db), space, resolution, backends, spec, distinct, force,
                                 time_per_entry_s, "int8" if int8 else "fp32", batch)
    try:
        pending_keys = set(table.pending([x.key for x in selected], include_failed=retry_failed))
        todo = [x for x in selected if x.key in pending_keys]
        already = len(selected) - len(todo)
        if limit is not None:
            todo = todo[:limit]
        todo.sort(key=measure_order)
        tally = _Tally()
        with tempfile.TemporaryDirectory(prefix="nasprof-build-") as tmp:
            workdir = Path(tmp)
            exporter: Any = (
                ProcessExporter(workdir / "export.log", int8, batch) if export_jobs > 0 and todo
                else InlineExporter(int8, batch)
            )
            ahead = min(EXPORT_AHEAD + len(backends) - 1, MAX_EXPORT_AHEAD) if export_jobs > 0 else 1
            queue = LayerQueue(todo, exporter, workdir, ahead)

            def emit(key: str | None) -> None:
                if progress is not None:
                    progress(BuildProgress(total=len(todo), done=tally.done, failed=tally.failed,
                                           already_done=already, taken_by_others=tally.taken, key=key,
                                           elapsed_s=time.perf_counter() - t_start))

            setup_s = time.perf_counter() - t_start
            emit(None)
            errors: list[BaseException] = []
            ctx = _BuildContext(table, queue, exporter, RunPlanner(spec, time_per_entry_s), tally, emit,
                                retry_failed, remeasure, memory_board, origins)
            try:
                if len(backends) == 1:
                    _work(ctx, backends[0], errors)
                else:
                    threads = [threading.Thread(target=_work, args=(ctx, b, errors), daemon=True,
                                                name=f"nasprof-build-{b.device}") for b in backends]
                    for t in threads:
                        t.start()
                    for t in threads:
                        t.join()
            finally:
                exporter.close()
            # A vanished device matters only if work is left; any other error always surfaces.
            fatal = [e for e in errors if not isinstance(e, DeviceUnavailableError) or queue.has_work()]
            if fatal:
                raise fatal[0]
        report = BuildReport(
            db=str(db), device=backends[0].device, space=space.name, resolution=resolution, shard=shard_t,
            distinct=distinct, selected=len(selected), already_done=already, written=tally.written,
            failed=tally.failed, remeasured=tally.remeasured, unstable=tally.unstable,
            taken_by_others=tally.taken, wall_s=time.perf_counter() - t_start, export_s=tally.export_s,
            measure_s=tally.measure_s, inference_s=tally.inference_s, export_wait_s=tally.export_wait_s,
            db_s=tally.db_s, setup_s=setup_s, first_export_wait_s=tally.first_export_wait_s or 0.0,
            devices=tuple(b.device for b in backends),
            complete=not table.pending([x.key for x in selected]),
        )
    finally:
        table.close()
    return report


@dataclass
class _BuildContext:
    table: LatencyTable
    queue: LayerQueue
    exporter: Any
    planner: RunPlanner
    tally: _Tally
    emit: Callable[[str | None], None]
    retry_failed: bool
    remeasure: int
    memory_board: str | None
    #: Per device: measured_on, host, runner (``entry_origin``), stored with each entry it measures.
    origins: dict[str, dict[str, Any]]


def _work(ctx: _BuildContext, backend: Backend, errors: list[BaseException]) -> None:
    """One device's loop: take a layer, claim it, measure it, store it; until the queue is empty."""
    owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    while True:
        item = ctx.queue.get()
        if item is None:
            return
        layer, ticket = item
        t0 = time.perf_counter()
        try:
            claimed = ctx.table.claim(layer.key, owner, retry_failed=ctx.retry_failed)
        except BaseException:
            ctx.queue.put_back(layer)  # settle it, or the other devices would wait for it forever
            raise
        ctx.tally.add(db_s=time.perf_counter() - t0)
        if not claimed:
            # Another builder has it (or wrote it meanwhile): drop our export and move on.
            res = ctx.exporter.result(ticket)
            res.path.unlink(missing_ok=True)
            with ctx.tally.lock:
                ctx.tally.taken += 1
            ctx.queue.done()
            ctx.emit(layer.key)
            continue
        try:
            entry = _measure_entry(ctx, backend, layer, ticket)
        except DeviceUnavailableError as exc:
            # The device is gone: that is no fault of the layer; give it back for another device or a re-run.
            ctx.table.release(layer.key, owner)
            ctx.queue.put_back(layer)
            errors.append(exc)
            return
        except BaseException as exc:
            ctx.table.release(layer.key, owner)
            ctx.queue.put_back(layer)  # not stored: left for a re-run, and no other device waits on it
            errors.append(exc)
            raise
        t0 = time.perf_counter()
        try:
            written = ctx.table.put(entry, if_absent=True, release_claim=owner)
        finally:
            ctx.queue.done()
        ctx.tally.add(db_s=time.perf_counter() - t0)
        with ctx.tally.lock:
            ctx.tally.done += 1
            ctx.tally.written += int(written)
            ctx.tally.failed += int(not entry.ok)
            ctx.tally.remeasured += int(FLAG_REMEASURED in entry.flags)
            ctx.tally.unstable += int("unstable" in entry.flags)
        ctx.emit(layer.key)


def _measure_entry(ctx: _BuildContext, backend: Backend, layer: Any, ticket: int) -> TableEntry:
    fields_ = layer_entry_fields(layer)
    prev = ctx.table.get(layer.key) if ctx.retry_failed else None
    attempts0 = prev.attempts if prev is not None else 0
    t0 = time.perf_counter()
    res = ctx.exporter.result(ticket)
    waited = time.perf_counter() - t0
    ctx.tally.add(export_s=res.export_s, export_wait_s=waited)
    with ctx.tally.lock:
        if ctx.tally.first_export_wait_s is None:
            ctx.tally.first_export_wait_s = waited
    try:
        if res.error is not None:
            return TableEntry.failed(layer.key, res.error, attempts=attempts0 + 1, export_s=res.export_s,
                                     **ctx.origins[backend.device], **fields_)
        spec = ctx.planner.plan(layer)
        best: tuple[Measurement, Quality] | None = None
        attempts = 0
        t0 = time.perf_counter()
        for _ in range(1 + ctx.remeasure):
            attempts += 1
            try:
                m = backend.measure(res.path, spec)
            except DeviceUnavailableError:
                raise
            except (DeviceError, NasprofError, RuntimeError, ValueError, OSError) as exc:
                # A runtime error on this model (unsupported op, crash in the runner): record and go on.
                return TableEntry.failed(
                    layer.key, f"measurement failed: {type(exc).__name__}: {' '.join(str(exc).split())}",
                    attempts=attempts0 + attempts, **ctx.origins[backend.device], export_s=res.export_s,
                    measure_s=time.perf_counter() - t0, **fields_,
                )
            ctx.tally.add(inference_s=sum(m.samples_ms) / 1000.0)
            q = assess(m, spec.target_rel_ci)
            best = (m, q) if best is None else better(best, (m, q))
            if not q.unstable:
                break
        measure_s = time.perf_counter() - t0
        ctx.tally.add(measure_s=measure_s)
        assert best is not None
        m, q = best
        ctx.planner.observe(layer, m.median_ms)
        flags = q.flags + ((FLAG_REMEASURED,) if attempts > 1 else ())
        return TableEntry(
            key=layer.key, samples_ms=m.samples_ms, flags=flags, attempts=attempts0 + attempts,
            **ctx.origins[backend.device], export_s=res.export_s, measure_s=measure_s,
            **fields_, **memory_fields(m, layer, ctx.memory_board),
        )
    finally:
        res.path.unlink(missing_ok=True)
