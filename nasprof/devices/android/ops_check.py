"""Does a phone's runner cover a search space? (``nasprof devices check NAME --space SPACE``)

A minimal onnxruntime build carries only the operators of the config it was built with; a table build of a
space it was not built for fails layer after layer. The check answers before the build starts:

* a full build (it loads ``.onnx`` files) has every operator;
* a runner whose build config is recorded (``ops_config`` in the devices file) is compared with the
  space's config operator by operator, so every missing one is named at once;
* otherwise the runner itself is tried on the space's models (one layer per operator signature and a few
  whole networks, converted as ``table build`` would) until one fails: what it cannot run is what it
  lacks (each try is a push and a process on the phone, so it stops at the first).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nasprof.errors import DeviceError

__all__ = ["SpaceCoverage", "check_space_coverage"]


@dataclass(frozen=True)
class SpaceCoverage:
    """How a runner was found to cover a space: ``method`` is ``full build``, ``ops_config`` or ``tried``."""

    space: str
    resolution: int
    method: str
    operators: int
    models_tried: int

    def to_dict(self) -> dict[str, Any]:
        return {"space": self.space, "resolution": self.resolution, "covered_by": self.method,
                "operators_needed": self.operators, "models_tried": self.models_tried}


def check_space_coverage(
    backend: Any,
    space: str,
    *,
    resolution: int | None = None,
    width: float = 1.0,
    int8: bool = False,
    formats: tuple[str, ...] | None = None,
) -> SpaceCoverage:
    """Raise ``DeviceError`` naming what ``backend``'s runner lacks for ``space``, else say how it has it."""
    from nasprof.space.ort_format import read_ops_config, space_ops_config
    from nasprof.space.spaces import get_space

    s = backend.settings
    res = get_space(space).checked_resolution(resolution, width)
    formats = backend.model_formats() if formats is None else formats
    with tempfile.TemporaryDirectory(prefix="nasprof-coverage-") as tmp:
        needed = space_ops_config(space, Path(tmp) / "needed.config", resolution=res, width=width, int8=int8,
                                  style=s.ort_style, models_dir=tmp)
        n_ops = sum(len(v) for v in needed.ops.values())
        if "onnx" in formats:
            return SpaceCoverage(space, res, "full build", n_ops, 0)
        if s.ops_config:
            have = read_ops_config(s.ops_config)
            missing = sorted(f"{op}({opset})" for (domain, opset), ops in needed.ops.items()
                             for op in ops - have.get((domain, opset), frozenset()))
            if missing:
                raise DeviceError(
                    f"the runner of {backend.device} was built with {s.ops_config}, which lacks "
                    f"{len(missing)} operator(s) that space {space} needs at {res} px: {', '.join(missing)}; "
                    f"is it the config of another space? Rebuild with `nasprof space ops-config {space} "
                    f"--resolution {res} -o required_operators.config`"
                )
            return SpaceCoverage(space, res, "ops_config", n_ops, 0)
        tried = backend.try_models(list(needed.models), stop_at_failure=True)
    if tried and tried[-1] is not None:
        raise DeviceError(
            f"the runner of {backend.device} cannot run a {space} model at {res} px (missing "
            f"{tried[-1]}); rebuild it with `nasprof space ops-config {space} --resolution {res} -o "
            "required_operators.config` and record the config with `nasprof devices add ... --set "
            "ops_config=PATH --force`"
        )
    return SpaceCoverage(space, res, "tried", n_ops, len(tried))
