"""What a runtime computes of an NB201-style cell: its graph rewrites as testable hypotheses.

Runtimes do not execute the exported graph as written. A converter or a mobile optimiser folds ``x * 0``
into a constant zero, merges identical parameter-free operations on the same tensor (common subexpression
elimination) and drops what no output needs (dead-code elimination). Which of these a device's runtime does
decides what a network costs there: PyTorch Mobile merges the three ``avg_pool(x)`` of a cell into one, a
LiteRT converter removes a convolution whose only consumer multiplies it by zero. nn-Meter probes such
rules by timing kernels on the device; a device timed only end to end cannot be probed, so each rule set is
a hypothesis here, and ``predictor adapt`` keeps the one whose leave-one-out error on the measured networks
is lowest.

A cell is a DAG over nodes 0..3; node j sums ``op(i -> j)(node i)`` over i < j (the NAS-Bench-201 cell).
``cell_counts`` evaluates it symbolically (value numbering) and counts the operations left to execute.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Rewrites", "REWRITES", "CELL_EDGES", "CELL_COUNT_NAMES", "cell_counts"]

#: Edges of the NAS-Bench-201 cell in the order its strings list them: (0→1), (0→2), (1→2), (0→3), ...
CELL_EDGES: tuple[tuple[int, int], ...] = ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))
#: The executed operations counted per cell, in feature order.
CELL_COUNT_NAMES: tuple[str, ...] = ("conv1x1", "conv3x3", "avg_pool", "mul_zero", "add")

_ZERO: tuple[Any, ...] = ("zero",)
_INPUT: tuple[Any, ...] = ("input",)
_CONVS = {"nor_conv_1x1": "conv1x1", "nor_conv_3x3": "conv3x3"}


@dataclass(frozen=True)
class Rewrites:
    """One hypothesis about a runtime's graph rewrites."""

    #: ``x * 0`` is a constant zero (and sums drop it); parameter-free ops of a zero are zero.
    fold_zero: bool
    #: Identical parameter-free operations (pooling, ``* 0``, sums) on the same tensor run once.
    cse: bool
    #: "none": everything in the graph runs; "output": only what the cell output needs runs;
    #: "input": also, a convolution of a constant zero is folded (it no longer depends on the input).
    dead_code: str

    @property
    def name(self) -> str:
        parts = [p for p, on in (("fold-zero", self.fold_zero), ("cse", self.cse)) if on]
        parts.append({"none": "no-dce", "output": "dce", "input": "dce+const"}[self.dead_code])
        return "+".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {"fold_zero": self.fold_zero, "cse": self.cse, "dead_code": self.dead_code}

    @classmethod
    def from_dict(cls, doc: Any) -> Rewrites:
        r = cls(bool(doc["fold_zero"]), bool(doc["cse"]), str(doc["dead_code"]))
        if r not in REWRITES:
            raise ValueError(f"unknown rewrite hypothesis {doc!r}")
        return r


#: Every hypothesis tried, the graph as written first (the tie-break prefers earlier ones).
REWRITES: tuple[Rewrites, ...] = tuple(
    Rewrites(fz, cse, dce)
    for fz in (False, True)
    for cse in (False, True)
    for dce in ("none", "output", "input")
    if fz or dce != "input"  # folding a convolution of zero needs zeros to be known first
)


def cell_counts(ops: Sequence[str], rewrites: Rewrites) -> tuple[tuple[int, ...], bool]:
    """Executed operations of one cell (``CELL_COUNT_NAMES`` order) and whether its output is a constant
    (the whole network after it can then be folded by the runtime)."""
    if len(ops) != len(CELL_EDGES):
        raise ValueError(f"a cell has {len(CELL_EDGES)} edges, got {len(ops)}")
    fz, cse = rewrites.fold_zero, rewrites.cse
    value: dict[int, tuple[Any, ...]] = {0: _INPUT}
    for j in (1, 2, 3):
        terms: list[tuple[Any, ...]] = []
        for e, (i, jj) in enumerate(CELL_EDGES):
            if jj != j:
                continue
            op, v = ops[e], value[i]
            # Without CSE each edge's result is its own value (tagged by the edge).
            tag = None if cse else e
            if op == "none":
                terms.append(_ZERO if fz else ("mul_zero", v, tag))
            elif op == "skip_connect":
                terms.append(v)
            elif op == "avg_pool_3x3":
                terms.append(_ZERO if fz and v == _ZERO else ("avg_pool", v, tag))
            elif op in _CONVS:
                folded = fz and v == _ZERO and rewrites.dead_code == "input"
                terms.append(_ZERO if folded else (_CONVS[op], v, e))  # weights differ: never merged
            else:
                raise ValueError(f"unknown cell operation {op!r}")
        if fz:
            terms = [t for t in terms if t != _ZERO]
        if not terms:
            value[j] = _ZERO
        elif len(terms) == 1:
            value[j] = terms[0]
        else:
            key = tuple(sorted(terms, key=repr)) if cse else tuple(terms)
            value[j] = ("add", key, None if cse else j)
    counts = dict.fromkeys(CELL_COUNT_NAMES, 0)
    seen: set[tuple[Any, ...]] = set()

    def visit(v: tuple[Any, ...]) -> None:
        if v in seen or v[0] in ("input", "zero"):
            return
        seen.add(v)
        if v[0] == "add":
            counts["add"] += len(v[1]) - 1
            for t in v[1]:
                visit(t)
        else:
            counts[v[0]] += 1
            visit(v[1])

    roots = [value[3]] if rewrites.dead_code != "none" else [value[1], value[2], value[3]]
    for root in roots:
        visit(root)
    constant = fz and not _depends_on_input(value[3])
    return tuple(counts[n] for n in CELL_COUNT_NAMES), constant


def _depends_on_input(v: tuple[Any, ...]) -> bool:
    if v[0] == "input":
        return True
    if v[0] == "zero":
        return False
    if v[0] == "add":
        return any(_depends_on_input(t) for t in v[1])
    return _depends_on_input(v[1])
