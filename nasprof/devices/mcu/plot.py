"""Per-layer memory profile as a PNG (matplotlib, Agg backend: works without a display)."""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nasprof.errors import InputError, MissingDependencyError

__all__ = ["plot_memory_profile"]


def plot_memory_profile(report: Mapping[str, Any], path: str | Path) -> Path:
    """Draw ``report["per_layer"]`` (an ``McuReport.to_dict()``) as bars with the board's SRAM as a line.

    Written atomically: a failed write leaves no half PNG (and an existing file untouched).
    """
    # The object-oriented API with an Agg canvas: no pyplot, no global backend switch, no display needed.
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise MissingDependencyError("--plot needs matplotlib: pip install matplotlib") from None
    from nasprof._io import atomic_write_bytes

    out = Path(path)
    if out.suffix.lower() != ".png":
        raise InputError(f"--plot writes a PNG; give a path ending in .png, got {str(out)!r}")
    rows = report["per_layer"]
    kib = [r["total_bytes"] / 1024 for r in rows]
    sram_kib = report["board_spec"]["sram_bytes"] / 1024
    peak = report["sram"]["peak_index"]
    fig = Figure(figsize=(max(6.0, 0.12 * len(rows) + 2), 3.6), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    colors = ["#d62728" if i == peak else "#1f77b4" for i in range(len(rows))]
    # Some memory models (tflm) keep a persistent tail outside the per-layer rows; stack it under every bar
    # so that the tallest bar reaches the peak named in the title.
    resident = max(0.0, report["peak_sram_bytes"] / 1024 - max(kib, default=0.0))
    if resident > 0:
        ax.bar(range(len(rows)), [resident] * len(rows), color="0.8", width=0.85,
               label=f"persistent, resident all along ({resident:.1f} KiB)")
    ax.bar(range(len(rows)), kib, bottom=resident, color=colors, width=0.85, label="per layer")
    if resident > 0:
        ax.legend(fontsize=8, loc="center right")
    ax.axhline(sram_kib, color="black", linestyle="--", linewidth=1)
    # Head room above the board line so its label does not run into the frame.
    ax.set_ylim(0, max(sram_kib, resident + max(kib, default=0.0)) * 1.12)
    ax.text(0, sram_kib, f" {report['board']} SRAM {sram_kib:.0f} KiB", va="bottom", fontsize=8)
    ax.set_xlabel("layer (execution order)")
    ax.set_ylabel("SRAM in use (KiB)")
    ax.set_title(f"{Path(str(report['model'])).name}: {report['memory_model']} memory model, peak "
                 f"{report['peak_sram_bytes'] / 1024:.1f} KiB at {rows[peak]['name']}", fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return atomic_write_bytes(out, buf.getvalue())
