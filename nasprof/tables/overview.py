"""What ``nasprof table show`` reports of a table: its metadata and summary, its coverage of its space,
who measured its entries, and the entries that match a filter."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nasprof.tables.entry import TableEntry

__all__ = ["TableOverview", "table_overview"]


@dataclass(frozen=True)
class TableOverview:
    """A table at a glance. ``matching``: the entries that pass the filter, by key; ``corrupt_keys``: rows
    left out because they are not valid entries (the file was changed outside nasprof)."""

    path: Path
    metadata: dict[str, Any]
    summary: dict[str, int]
    #: ``(measured, distinct)`` layers of the table's space at its resolution; None for an unknown space.
    coverage: tuple[int, int] | None
    #: Which device, on which host, with which runner measured how many entries (a farm spans several).
    measured_by: list[dict[str, Any]]
    matching: list[TableEntry]
    corrupt_keys: list[str]

    def to_dict(self, shown: Sequence[TableEntry] | None = None) -> dict[str, Any]:
        """The overview as JSON, listing ``shown`` (default: every matching entry) without raw samples."""
        cov = self.coverage
        return {"path": str(self.path), "metadata": self.metadata, "summary": self.summary,
                "measured_by": self.measured_by,
                "coverage": None if cov is None else {"measured": cov[0], "distinct": cov[1]},
                "matching": len(self.matching),
                "entries": [{k: v for k, v in e.to_row().items() if k != "samples_ms"} | {"n": e.n}
                            for e in (self.matching if shown is None else shown)]}


def table_overview(
    path: str | Path,
    *,
    op: str | None = None,
    key_contains: str | None = None,
    failed: bool = False,
    unstable: bool = False,
) -> TableOverview:
    """Read the table at ``path`` once: its overview, with the entries of ``op`` whose key contains
    ``key_contains`` (only failed ones with ``failed``, only unstable ones with ``unstable``)."""
    from nasprof.tables.store import LatencyTable
    from nasprof.tables.transfer import table_coverage

    with LatencyTable.load(path) as table:
        meta, summary, coverage = table.metadata, table.summary(), table_coverage(table)
        everything = list(table.entries(skip_corrupt=True))
        corrupt = list(table.corrupt_keys)
    rows = [e for e in everything
            if (op is None or e.op == op) and (key_contains is None or key_contains in e.key)
            and (not failed or not e.ok) and (not unstable or "unstable" in e.flags)]
    origins = Counter((e.measured_on, e.host, e.runner) for e in everything if e.measured_on)
    measured_by = [{"device": d, "host": h, "runner": r, "entries": n}
                   for (d, h, r), n in sorted(origins.items(), key=lambda x: (str(x[0]), x[1]))]
    return TableOverview(Path(path), meta, summary, coverage, measured_by, rows, corrupt)
