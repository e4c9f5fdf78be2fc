"""(architecture, accuracy) pairs as data: reading a CSV/Parquet table of them, checking the values, and
writing each architecture the way its space does. Shared by the accuracy predictor (``predictors/accuracy``)
and the search's accuracy sources (``search/accuracy.py``), so neither imports the other."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from nasprof.errors import InputError, MissingDependencyError

__all__ = ["ARCH_COLUMNS", "ACCURACY_COLUMNS", "check_accuracy_values", "read_accuracy_pairs",
           "normalize_keys"]

ARCH_COLUMNS = ("arch", "arch_str", "architecture")
ACCURACY_COLUMNS = ("accuracy", "acc", "error", "score")


def check_accuracy_values(values: Any, *, minimize: bool, where: str) -> NDArray[np.float64]:
    """``values`` as a float array, or ``InputError`` saying which value is NaN or out of range: an accuracy
    must lie in [0, 100] (a percentage or a fraction), an error (``minimize``) must be >= 0."""
    try:
        arr = np.asarray(values, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise InputError(f"{where}: accuracies must be numbers") from None
    bad = ~np.isfinite(arr)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(f"{where}: {int(bad.sum())} accuracies are not finite numbers (the first, #{i + 1}, "
                         f"is {arr[i]:g})")
    low = arr < 0
    high = np.zeros_like(low) if minimize else arr > 100
    out = low | high
    if out.any():
        i = int(np.flatnonzero(out)[0])
        rule = "an error must be >= 0" if minimize else "an accuracy lies in [0, 100]"
        raise InputError(f"{where}: {int(out.sum())} values are out of range ({rule}; the first, #{i + 1}, "
                         f"is {arr[i]:g})" + ("" if minimize else "; for an error give --minimize-metric"))
    return arr


# -- tables --------------------------------------------------------------------------------------------------
def _read_frame(path: Path) -> Any:
    import pandas as pd

    if path.is_dir():
        raise InputError(f"{path} is a directory; give a CSV or Parquet file of architecture, accuracy")
    if not path.is_file():
        raise InputError(f"no accuracy table at {path}")
    head = path.read_bytes()[:4]
    try:
        if head == b"PAR1":
            return pd.read_parquet(path)
        return pd.read_csv(path, sep=None if path.suffix.lower() == ".tsv" else ",", engine="python",
                           skipinitialspace=True)
    except ImportError:
        raise MissingDependencyError("reading Parquet needs pyarrow: pip install 'nasprof[parquet]'"
                                     ) from None
    except Exception as exc:  # pandas raises many kinds for a malformed file
        raise InputError(f"cannot read the accuracy table {path}: {type(exc).__name__}: {exc}") from None


def read_accuracy_pairs(path: str | Path) -> tuple[list[str], NDArray[np.float64], str]:
    """The (architecture text, value) rows of a CSV/Parquet file and the value column's name. Values are
    checked to be numbers (not their range); a missing column or an empty table is an ``InputError``."""
    path = Path(path)
    frame = _read_frame(path)
    columns = {str(c).strip().lower(): c for c in frame.columns}
    arch_col = next((columns[c] for c in ARCH_COLUMNS if c in columns), None)
    acc_col = next((columns[c] for c in ACCURACY_COLUMNS if c in columns), None)
    if arch_col is None or acc_col is None:
        need = "an architecture column (" + "/".join(ARCH_COLUMNS) + ")" if arch_col is None else \
            "an accuracy column (" + "/".join(ACCURACY_COLUMNS) + ")"
        raise InputError(f"{path} needs {need}; it has {', '.join(map(str, frame.columns)) or 'no columns'}")
    if not len(frame):
        raise InputError(f"{path} has no rows")
    archs = [str(a).strip() if a is not None else "" for a in frame[arch_col].tolist()]
    empty = [i for i, a in enumerate(archs) if not a or a.lower() == "nan"]
    if empty:
        raise InputError(f"{path}: {len(empty)} rows have no architecture (the first is row {empty[0] + 1})")
    import pandas as pd

    values = pd.to_numeric(frame[acc_col], errors="coerce").to_numpy(dtype=np.float64)
    return archs, values, str(acc_col)


def _normalizer(space: Any) -> Callable[[str], str]:
    """Text -> the string the space formats the architecture as (``SpaceError`` when it is not one)."""
    from nasprof.space.parse import parse_arch

    name = str(space.name)
    return lambda text: str(parse_arch(text, name).to_string())


def normalize_keys(texts: Sequence[str], space: Any, where: str) -> list[str]:
    """Each text as the space writes it; ``InputError`` naming the row of the first that is not one of its
    architectures."""
    from nasprof.errors import SpaceError

    norm = _normalizer(space)
    out: list[str] = []
    cache: dict[str, str] = {}
    for i, text in enumerate(texts):
        key = cache.get(text)
        if key is None:
            try:
                key = cache[text] = norm(text)
            except SpaceError as exc:
                raise InputError(f"{where} row {i + 1}: not a {space.name} architecture ({exc})") from None
        out.append(key)
    return out
