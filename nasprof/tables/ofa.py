"""A lookup table in OFA/ProxylessNAS's YAML layout, for the estimators of once-for-all and ProxylessNAS.

Those estimators look a layer up by a key built from its type and shapes (``h x w x c``, height first) and
read its ``mean`` in milliseconds. Two styles:

* ``proxyless`` (``ProxylessNASLatencyTable``): ``Conv-input:224x224x3-output:112x112x32`` (the 3x3 stem),
  ``expanded_conv-input:112x112x16-output:56x56x24-expand:6-kernel:3-stride:2-idskip:0`` (expand = the ratio),
  ``Conv_1-...`` (the 1x1 feature-mix conv) and ``Logits-input:7x7x1280-output:1000`` (pool + classifier);
* ``mbv3`` (``MBv3LatencyTable``): ``expanded_conv-...-expand:<mid channels>-kernel:..-stride:..-idskip:..
  -se:0|1-hs:0|1`` and the same ``Conv``/``Conv_1``; its head is three entries (``AvgPool2D``, ``Conv_2``,
  ``Logits``) that nasprof measures as one layer, so a head with a hidden layer is not exported.

``auto`` picks ``mbv3`` when the table has a squeeze-excite or hard-swish MBConv, else ``proxyless``. Layers
with no counterpart there (depthwise-separable convs, pooled shortcuts, other blocks) are listed, not guessed.
Values are nasprof's measurements of each layer alone (each includes one call's overhead, as OFA's do):
``mean`` (what the estimators read), ``median``, ``std`` and ``count`` of the raw samples.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nasprof.errors import InputError
from nasprof.tables.entry import TableEntry

__all__ = ["OfaExport", "ofa_key", "ofa_style", "export_ofa", "OFA_STYLES"]

OFA_STYLES = ("auto", "proxyless", "mbv3")


def _shape(h: Any, w: Any, c: Any) -> str:
    return f"{h}x{w}x{c}"


def ofa_style(entries: Iterable[TableEntry]) -> str:
    """``mbv3`` when some MBConv has squeeze-excite or hard-swish, else ``proxyless``."""
    for e in entries:
        if e.op == "mbconv" and ((e.se or 0) > 0 or e.act == "hswish" or e.variant == "v3"):
            return "mbv3"
    return "proxyless"


def ofa_key(e: TableEntry, style: str) -> tuple[str | None, str]:
    """(the OFA key of entry ``e``, "") or (None, why it has no counterpart)."""
    if None in (e.in_h, e.in_w, e.in_c, e.out_h, e.out_w, e.out_c):
        return None, "no shapes recorded"
    io = f"input:{_shape(e.in_h, e.in_w, e.in_c)}-output:{_shape(e.out_h, e.out_w, e.out_c)}"
    plain = (e.skip in (None, "none")) and not e.se and (e.groups in (None, 1))
    if e.op == "conv":
        if e.in_c == 3 and e.kernel == 3 and e.stride == 2 and plain:
            return f"Conv-{io}", ""
        if e.kernel == 1 and e.stride == 1 and plain:
            return f"Conv_1-{io}", ""
        return None, "a conv that is neither the 3x3 stem nor the 1x1 feature mix"
    if e.op == "mbconv":
        if e.skip not in (None, "none", "id"):
            return None, f"a {e.skip} shortcut (OFA knows identity or none)"
        idskip = 1 if e.skip == "id" else 0
        k, s = e.kernel, e.stride
        if style == "proxyless":
            expand = e.expand or 1.0
            if (e.se or 0) > 0 or e.act == "hswish" or e.variant or expand != int(expand):
                return None, "squeeze-excite, hard-swish or a fractional expand ratio (use --style mbv3)"
            return f"expanded_conv-{io}-expand:{int(expand)}-kernel:{k}-stride:{s}-idskip:{idskip}", ""
        mid = e.mid or round((e.in_c or 0) * (e.expand or 1.0))
        se, hs = int((e.se or 0) > 0), int(e.act == "hswish")
        return f"expanded_conv-{io}-expand:{mid}-kernel:{k}-stride:{s}-idskip:{idskip}-se:{se}-hs:{hs}", ""
    if e.op == "head":
        if e.mid:
            return None, "a head with a hidden layer (OFA splits it into AvgPool2D, Conv_2 and Logits)"
        if style == "mbv3":
            return None, "OFA's MobileNetV3 tables time the pooling apart from the classifier"
        return f"Logits-input:{_shape(e.in_h, e.in_w, e.in_c)}-output:{e.out_c}", ""
    return None, f"no {e.op} layers in OFA's tables"


@dataclass(frozen=True)
class OfaExport:
    path: Path
    style: str
    written: int
    #: (nasprof key, why it was left out) for every measured entry with no OFA counterpart.
    skipped: tuple[tuple[str, str], ...]


def export_ofa(entries: Iterable[TableEntry], out: str | Path, style: str = "auto") -> OfaExport:
    """Write the measured entries that map onto OFA's keys as its YAML; list the others."""
    import yaml

    from nasprof._io import atomic_write_text

    if style not in OFA_STYLES:
        raise InputError(f"unknown OFA style {style!r}: use one of {', '.join(OFA_STYLES)}")
    good = [e for e in entries if e.ok and e.samples_ms]
    if style == "auto":
        style = ofa_style(good)
    doc: dict[str, dict[str, float | int]] = {}
    skipped: list[tuple[str, str]] = []
    for e in good:
        key, why = ofa_key(e, style)
        if key is None:
            skipped.append((e.key, why))
            continue
        samples = list(e.samples_ms)
        doc[key] = {
            "mean": float(statistics.fmean(samples)),
            "median": float(statistics.median(samples)),
            "std": float(statistics.pstdev(samples)),
            "count": len(samples),
        }
    if not doc:
        raise InputError("no entry of this table maps onto OFA's layer keys (MBConv, the 3x3 stem conv, "
                         "the 1x1 feature mix, the classifier); nothing to write")
    header = [f"# nasprof latency table in OFA/ProxylessNAS's {style} layout; values in ms.",
              f"# {len(skipped)} measured layer(s) have no OFA counterpart and are left out:"]
    header += [f"#   {k}  ({why})" for k, why in skipped]
    text = "\n".join(header) + "\n" + yaml.safe_dump(doc, sort_keys=True, default_flow_style=False)
    path = atomic_write_text(Path(out), text)
    return OfaExport(path, style, len(doc), tuple(skipped))
