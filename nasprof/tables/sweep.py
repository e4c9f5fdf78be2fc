"""Tables over a sweep of settings: one table per thread count and batch size (``table build --threads
1,2,4 --batch 1,8``), on local devices or the devices of a Ray cluster, freed when the build ends."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nasprof.devices.base import MeasureSpec
from nasprof.tables.builder import BuildReport, build_table

__all__ = ["SweepTarget", "sweep_targets", "build_sweep", "BuildInterrupted"]


@dataclass(frozen=True)
class SweepTarget:
    threads: int
    batch: int
    db: Path


class BuildInterrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM) during a build: ``db`` holds what was finished; the same call resumes."""

    def __init__(self, db: Path) -> None:
        super().__init__(str(db))
        self.db = db


def sweep_targets(db: Path, threads: Sequence[int], batches: Sequence[int]) -> list[SweepTarget]:
    """One table per (threads, batch): ``DB`` itself for a single setting, else ``DB.threadsN.batchB.db``
    with only the swept settings in the name."""

    def name(n: int, b: int) -> Path:
        parts = ([f"threads{n}"] if len(threads) > 1 else []) + ([f"batch{b}"] if len(batches) > 1 else [])
        return db if not parts else db.with_name(".".join([db.stem, *parts]) + db.suffix)

    return [SweepTarget(n, b, name(n, b)) for n in threads for b in batches]


def build_sweep(
    space: Any,
    resolution: int,
    device: str,
    targets: Sequence[SweepTarget],
    spec: MeasureSpec,
    *,
    ray_address: str | None = None,
    bar: Callable[[], AbstractContextManager[Any]] | None = None,
    **options: Any,
) -> list[BuildReport]:
    """``build_table`` for every target (``spec`` with the target's thread count), in order. With
    ``ray_address`` the devices are those the cluster serves under ``device`` (a name or pattern), and
    their actors are freed at the end whatever happens. ``bar()`` gives a progress context per table."""
    import dataclasses
    from contextlib import nullcontext

    devices: Any = device
    if ray_address is not None:
        from nasprof.devices.farm import ray_devices

        devices = ray_devices(ray_address, device)
    reports = []
    try:
        for t in targets:
            try:
                with bar() if bar is not None else nullcontext() as progress:
                    reports.append(build_table(space, resolution, devices, t.db,
                                               spec=dataclasses.replace(spec, threads=t.threads),
                                               progress=progress, batch=t.batch, **options))
            except KeyboardInterrupt:
                raise BuildInterrupted(t.db) from None
    finally:
        if ray_address is not None:  # the phones are free for the cluster's next job at once
            for d in devices:
                d.kill()
    return reports
