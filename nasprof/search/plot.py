"""PNG plots of search results: the latency / proxy scatter with its front, a compound-scaled family, a
design-space grid's MACs CDFs and spaces' distribution functions."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from nasprof.errors import InputError
from nasprof.search.quality import EdfResult, QualityResult
from nasprof.search.runner import SearchResult
from nasprof.search.scaling import ScalingResult

__all__ = ["plot_search", "plot_scaling", "plot_quality", "plot_edf"]

#: Above this many points the background scatter is subsampled (evenly, deterministically): a PNG of a
#: million dots is slow to draw and shows nothing more.
_MAX_POINTS = 20_000


def plot_search(result: SearchResult, path: str | Path, *, title: str | None = None) -> Path:
    """Write a PNG: every evaluated candidate (grey), infeasible ones (light red x), the front (line), the
    best candidate (star) and the latency target (dashed line). Written atomically."""
    # The object-oriented API with an Agg canvas: no pyplot, no global backend switch, no display needed.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from nasprof._io import atomic_write_bytes

    path = Path(path)
    if path.suffix.lower() != ".png":
        raise InputError(f"--plot writes a PNG; give a path ending in .png, got {path}")
    s = result.scores
    step = max(1, len(s) // _MAX_POINTS)
    sub = np.arange(0, len(s), step)
    ok = sub[s.feasible[sub]]
    bad = sub[~s.feasible[sub]]

    fig = Figure(figsize=(7, 4.5), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.scatter(s.latency_ms[ok], s.accuracy[ok], s=6, c="0.65", alpha=0.5, linewidths=0, label="evaluated")
    if bad.size:
        ax.scatter(
            s.latency_ms[bad],
            s.accuracy[bad],
            s=8,
            c="#e8a0a0",
            marker="x",
            linewidths=0.6,
            label=f"infeasible ({result.constraint['device'] if result.constraint else 'memory'})",
        )
    front = result.pareto
    if front:
        ax.plot(
            [c.latency_ms for c in front],
            [c.accuracy for c in front],
            "-o",
            c="#c0392b",
            ms=4,
            lw=1.5,
            label=f"Pareto front ({len(front)})",
        )
    best = result.best
    if best is not None:
        ax.scatter(
            [best.latency_ms],
            [best.accuracy],
            s=160,
            marker="*",
            c="#f1c40f",
            edgecolors="k",
            linewidths=0.8,
            zorder=5,
            label=f"best reward ({best.reward:.4g})",
        )
    ax.axvline(
        result.reward.target_ms, ls="--", c="0.3", lw=1, label=f"target {result.reward.target_ms:g} ms"
    )
    ax.set_xlabel("predicted latency (ms)")
    ax.set_ylabel(f"accuracy proxy: {result.proxy}")
    ax.set_title(
        title or f"{result.space}: {result.strategy}, {result.evaluated} candidates, seed {result.seed}"
    )
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return atomic_write_bytes(path, buf.getvalue())


def plot_scaling(result: ScalingResult, path: str | Path) -> Path:
    """Write a PNG of a compound-scaled family: MACs against predicted latency (or resolution when there
    is no latency), each member labelled with its phi, the target dashed, members breaking a limit red."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from nasprof._io import atomic_write_bytes

    path = Path(path)
    if path.suffix.lower() != ".png":
        raise InputError(f"--plot writes a PNG; give a path ending in .png, got {path}")
    fam = result.family
    timed = all(c.latency_ms is not None for c in fam)
    x = [float(c.latency_ms) if timed and c.latency_ms is not None else float(c.resolution) for c in fam]
    y = [c.macs / 1e6 for c in fam]
    fig = Figure(figsize=(6.5, 4.2), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.plot(x, y, "-", c="0.6", lw=1)
    for c, xi, yi in zip(fam, x, y, strict=True):
        ax.scatter([xi], [yi], s=40, c="#2e86c1" if c.feasible else "#c0392b", zorder=3)
        ax.annotate(f"φ={c.phi:g}", (xi, yi), textcoords="offset points", xytext=(5, -10), fontsize=8)
    for c in result.grid:
        if c.latency_ms is not None:
            ax.scatter([c.latency_ms], [c.macs / 1e6], s=8, c="0.75", zorder=2)
    if result.target_ms is not None:
        ax.axvline(result.target_ms, ls="--", c="0.3", lw=1, label=f"target {result.target_ms:g} ms")
        ax.legend(fontsize=8, loc="lower right")
    a, b, g = result.coefficients
    ax.set_xlabel("predicted latency (ms)" if timed else "resolution (px)")
    ax.set_ylabel("MMACs")
    ax.set_title(f"{result.base}: α={a:g}, β={b:g}, γ={g:g} (red: breaks a limit)", fontsize=10)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return atomic_write_bytes(path, buf.getvalue())


def _figure(path: str | Path) -> tuple[Path, Any, Any]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = Path(path)
    if path.suffix.lower() != ".png":
        raise InputError(f"--plot writes a PNG; give a path ending in .png, got {path}")
    fig = Figure(figsize=(7, 4.5), dpi=120)
    FigureCanvasAgg(fig)
    return path, fig, fig.add_subplot()


def _save(fig: Any, path: Path) -> Path:
    from nasprof._io import atomic_write_bytes

    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return atomic_write_bytes(path, buf.getvalue())


def plot_quality(result: QualityResult, path: str | Path) -> Path:
    """TinyNAS's figure: per grid cell, the cumulative distribution of the MACs of the models that fit
    (a curve further right = more computation under the constraint); the recommended cell drawn bold."""
    path, fig, ax = _figure(path)
    for i, c in enumerate(result.cells):
        m = c.fitting_macs
        if not m.size:
            continue
        y = np.arange(1, m.size + 1) / m.size
        best = i == result.recommended
        ax.step(m / 1e6, y, where="post", lw=2.4 if best else 1.0, zorder=3 if best else 2,
                label=f"w{c.width:g} r{c.resolution} ({c.share:.0%} fit){' *' if best else ''}")
    limits = result.constraint or {}
    what = [f"{limits['device']}" if limits else "", f"≤ {result.target_ms:g} ms" if result.target_ms else ""]
    ax.set_xlabel("MMACs of the models that fit")
    ax.set_ylabel("cumulative share")
    ax.set_title(f"{result.space}: {', '.join(x for x in what if x)}; * recommended", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, ncol=2, loc="lower right")
    return _save(fig, path)


def plot_edf(result: EdfResult, path: str | Path) -> Path:
    """RegNet's figure: the empirical distribution function of a metric for each space."""
    path, fig, ax = _figure(path)
    scale = 1e6 if result.metric in ("macs", "params") else (1024.0 if result.metric == "sram" else 1.0)
    unit = {"macs": "MMACs", "params": "M parameters", "sram": "SRAM KiB", "latency": "ms"}[result.metric]
    for name, v in result.values.items():
        x = np.sort(v) / scale
        y = np.arange(1, x.size + 1) / x.size
        ax.step(x, y, where="post", label=f"{name} (median {np.median(x):.3g})")
    ks = ", ".join(f"{a}/{b} {d:.2f}" for (a, b), d in result.ks().items())
    ax.set_xlabel(unit)
    ax.set_ylabel("share of models ≤ x")
    ax.set_title(f"EDF of {result.metric}, {result.n} models per space (KS: {ks})", fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return _save(fig, path)
