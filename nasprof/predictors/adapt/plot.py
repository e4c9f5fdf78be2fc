"""Predicted against measured, as a PNG (``validate --measurements --plot``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["scatter"]


def scatter(report: Any, path: str | Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from nasprof._io import atomic_write_bytes

    m = np.array([r["measured_ms"] for r in report.rows])
    p = np.array([r["predicted_ms"] for r in report.rows])
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.scatter(m, p, s=6, alpha=0.5)
    lo, hi = float(min(m.min(), p.min())), float(max(m.max(), p.max()))
    xs = np.linspace(lo, hi, 2)
    ax.plot(xs, xs, "k-", lw=0.8)
    ax.fill_between(xs, xs * 0.9, xs * 1.1, color="grey", alpha=0.2, label="±10%")
    s = report.summary
    ax.set_title(f"{report.measurements}: {s['within_10pct']:.0%} within ±10%, ρ {s['spearman']:.3f}")
    ax.set_xlabel("measured (ms)")
    ax.set_ylabel(f"predicted by {report.predictor_kind} predictor (ms)")
    ax.legend(loc="upper left")
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return atomic_write_bytes(Path(path), buf.getvalue())
