"""The fields of a kernel predictor file read back, for files of every version: the kernel rules (probed,
or the fallback an older file's level and block imply), the kernel-split rules version, the covered
variants and the anchor kernels; a malformed or too new field is a ``PredictorError`` saying to refit or
upgrade.

Apart from ``predictor`` because this is the file format's history, not the predictor's behaviour: every
``absent in files written before ...`` lives here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from nasprof.errors import PredictorError
from nasprof.predictors.kernel.kernels import Kernel
from nasprof.predictors.kernel.rules import KernelRules
from nasprof.predictors.kernel.split import DEFAULT_NCHWC_BLOCK, SPLIT_RULES

__all__ = ["LEGACY_RULES_NOTE", "covered_of", "kernel_from_dict", "rules_of", "split_rules_of"]

#: ``KernelRules.note`` of the fallback rules given to a file written before rules were detected.
LEGACY_RULES_NOTE = "file written before kernel rules were detected on devices"


def split_rules_of(v: Any) -> int:
    """The kernel-split rules version the file was fitted with; a newer one than this nasprof is refused."""
    if not isinstance(v, int) or isinstance(v, bool) or v < 1:
        raise PredictorError(f"predictor file has split_rules {v!r}; refit it")
    if v > SPLIT_RULES:
        raise PredictorError(
            f"predictor file was fitted with kernel-split rules v{v}, newer than this nasprof's "
            f"v{SPLIT_RULES}; upgrade nasprof"
        )
    return v


def covered_of(v: Any) -> dict[str, list[str]] | None:
    """The variants each kernel type's regressor covers, or None for a file written before they were kept."""
    if v is None:  # written before covered variants were recorded
        return None
    if not isinstance(v, Mapping) or not all(isinstance(x, list) for x in v.values()):
        raise PredictorError("predictor file has a malformed 'covered' record; refit it")
    return {str(t): [str(x) for x in xs] for t, xs in v.items()}


def rules_of(body: Mapping[str, Any]) -> KernelRules:
    """The file's rules; files written before the rules were probed carry the level, whether the device
    inserted reorders and (later) its block, which the fallback rules take."""
    if "rules" in body:
        return KernelRules.from_dict(body["rules"])
    block = int(body.get("nchwc_block", DEFAULT_NCHWC_BLOCK)) if body.get("reorders", False) else 0
    return KernelRules.fallback(str(body["opt_level"]), block, note=LEGACY_RULES_NOTE)


def kernel_from_dict(d: Mapping[str, Any]) -> Kernel:
    """A stored anchor kernel (fields this nasprof does not know are dropped)."""
    tuples = ("covers", "in_shape", "out_shape", "inputs")
    fields = {f.name for f in dataclasses.fields(Kernel)}
    args: dict[str, Any] = {k: (tuple(v) if k in tuples else v) for k, v in d.items() if k in fields}
    return Kernel(**args)

