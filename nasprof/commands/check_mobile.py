"""`nasprof check-mobile`: which parts of a model the mobile execution providers (NNAPI, CoreML) could
take."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from nasprof.commands._common import JsonOption, check_outputs, console, emit_json


def check_mobile_cmd(
    model: Annotated[Path, typer.Argument(help="ONNX model.")],
    json_out: JsonOption = None,
) -> None:
    """Which parts of MODEL the mobile execution providers (NNAPI, CoreML) could run, with onnxruntime's
    usability checker: nodes taken, partitions, operators they lack, and onnxruntime's verdict."""
    check_outputs({"--json": json_out}, [model])
    from nasprof.space.ort_format import mobile_usability

    rows = mobile_usability(model)
    if emit_json(json_out, {"schema_version": 1, "kind": "nasprof.mobile_usability", "model": str(model),
                            "providers": [r.to_dict() for r in rows]}):
        return
    t = Table(title=f"{model.name}: mobile execution providers")
    for col in ("provider", "nodes taken", "partitions", "operators it lacks", "verdict", "why"):
        t.add_column(col, justify="right" if col in ("nodes taken", "partitions") else "left",
                     overflow="fold")
    for r in rows:
        t.add_row(r.provider, f"{r.supported_nodes}/{r.nodes}", str(r.partitions),
                  ", ".join(r.unsupported_ops) or "—", r.verdict, r.reason or "—")
    console.print(t)
