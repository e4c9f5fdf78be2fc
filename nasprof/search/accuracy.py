"""Real accuracy for a search: a table, a user's callable or an accuracy predictor, counted as queries.

``--accuracy SOURCE`` is one of:

- a **table** (CSV or Parquet; columns ``arch``/``arch_str``/``architecture`` and ``accuracy``/``acc``/
  ``error``/``score``) of any space: ``TableAccuracy``;
- a **callable** ``module:function`` (or ``path/to/file.py:function``) that takes a list of architecture
  strings and returns one number each: ``CallableAccuracy``;
- an **accuracy predictor** file (``nasprof predictor fit --accuracy``): ``PredictedAccuracy``;
- a proxy name (``macs``, ``naswot``), as ``--proxy`` takes.

Values are "higher is better" unless ``minimize`` (``--minimize-metric``: an error such as Darcy flow's
relative L2 error); either way they must be finite, and an accuracy lies in [0, 100] (a percentage or a
fraction) while an error is >= 0.

Every accuracy a search asks for is a **query** (``QueriedAccuracy``): training a network is what a real
search pays for, so an architecture asked twice costs one query, and so do isomorphic networks of a space
that knows its isomorphism classes (nb201's ``canonical``: the same function, computed by a relabelled
graph). ``max_queries`` bounds them and the trace of queries gives the best-so-far curve of the result.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from nasprof.errors import InputError, NasprofError, PredictorError
from nasprof.search.options import class_keys, has_classes
from nasprof.search.proxies import PROXIES, AccuracyProxy, get_proxy
from nasprof.tables.accuracy_pairs import (  # noqa: F401 - re-exported for the search API
    ACCURACY_COLUMNS,
    ARCH_COLUMNS,
    _read_frame,
    check_accuracy_values,
    normalize_keys,
    read_accuracy_pairs,
)

if TYPE_CHECKING:
    from nasprof.space import Arch

__all__ = [
    "TableAccuracy",
    "CallableAccuracy",
    "PredictedAccuracy",
    "QueriedAccuracy",
    "resolve_accuracy",
    "read_accuracy_pairs",
    "check_accuracy_values",
    "ARCH_COLUMNS",
    "ACCURACY_COLUMNS",
]

#: Column names of the architecture and of its accuracy, in order of preference (lower case).
_TABLE_SUFFIXES = (".csv", ".tsv", ".txt", ".parquet", ".pq")
_CALLABLE = re.compile(r"^(?P<module>[A-Za-z_][\w.]*|.+\.py):(?P<function>[A-Za-z_]\w*)$")
_SHOWN = 3


class TableAccuracy(AccuracyProxy):
    """Accuracies looked up in a table of (architecture, value): exactly, else by isomorphism class.

    ``values`` maps architecture strings (as the space writes them) to numbers. An architecture missing from
    the table is an ``InputError`` saying how many of the batch are missing, unless ``allow_missing``: it
    then scores NaN, which the evaluator treats as infeasible (skipped, never a query).
    """

    name: ClassVar[str] = "table"

    def __init__(
        self,
        values: Mapping[str, float],
        space: Any,
        *,
        minimize: bool = False,
        allow_missing: bool = False,
        label: str = "the accuracy table",
    ) -> None:
        if not values:
            raise InputError(f"{label} is empty")
        self.space = space
        self.label = label
        self.minimize = bool(minimize)
        self.allow_missing = bool(allow_missing)
        keys = list(values)
        arr = check_accuracy_values([values[k] for k in keys], minimize=self.minimize, where=label)
        self.values: dict[str, float] = dict(zip(keys, arr.tolist(), strict=True))
        self._classes: dict[str, tuple[str, float]] | None = None

    @classmethod
    def from_file(cls, path: str | Path, space: Any, *, minimize: bool = False,
                  allow_missing: bool = False) -> TableAccuracy:
        """Read a CSV/Parquet table; rows must name architectures of ``space`` with finite in-range values,
        and an architecture listed twice must have one value."""
        path = Path(path)
        texts, values, _ = read_accuracy_pairs(path)
        where = f"accuracy table {path}"
        bad = ~np.isfinite(values)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise InputError(f"{where}: {int(bad.sum())} accuracies are missing, infinite or not numbers "
                             f"(the first is row {i + 1}, {texts[i][:60]!r})")
        keys = normalize_keys(texts, space, where)
        out: dict[str, float] = {}
        for i, (k, v) in enumerate(zip(keys, values.tolist(), strict=True)):
            if k in out and out[k] != v:
                raise InputError(f"{where} row {i + 1}: {texts[i][:60]!r} is listed twice with different "
                                 f"values ({out[k]:g} and {v:g})")
            out[k] = v
        return cls(out, space, minimize=minimize, allow_missing=allow_missing, label=where)

    @property
    def source(self) -> str:
        return self.label

    def _class_values(self) -> dict[str, tuple[str, float]]:
        """Isomorphism class -> (the table's first network of the class, its value); empty for a space
        without classes."""
        if self._classes is None:
            from nasprof.space.parse import parse_arch

            classes: dict[str, tuple[str, float]] = {}
            canonical = getattr(getattr(self.space, "base", self.space), "canonical", None)
            if canonical is not None:
                name = str(self.space.name)
                for key, value in self.values.items():
                    classes.setdefault(str(canonical(parse_arch(key, name)).to_string()), (key, value))
            self._classes = classes
        return self._classes

    def member(self, arch: Arch) -> Arch:
        """The network the table holds for ``arch``: itself, else the table's network of its isomorphism
        class (isomorphic networks compute the same function; the table's is the one its value is for),
        else ``arch`` (missing)."""
        if str(arch.to_string()) in self.values:
            return arch
        classes = self._class_values()
        hit = classes.get(class_keys(self.space, [arch])[0]) if classes else None
        if hit is None:
            return arch
        from nasprof.space import Arch
        from nasprof.space.parse import parse_arch

        blocks = parse_arch(hit[0], str(self.space.name)).blocks
        return Arch(arch.space, arch.resolution, arch.width, blocks, arch.options)

    def lookup(self, keys: Sequence[str], archs: Sequence[Arch] | None = None) -> NDArray[np.float64]:
        """The value of each architecture string (NaN where the table has neither it nor its class)."""
        out = np.array([self.values.get(k, math.nan) for k in keys], dtype=np.float64)
        miss = np.flatnonzero(np.isnan(out))
        if miss.size and archs is not None:
            classes = self._class_values()
            if classes:
                ck = class_keys(self.space, [archs[int(i)] for i in miss])
                out[miss] = [classes.get(k, ("", math.nan))[1] for k in ck]
        return out

    def score_many(self, archs: Sequence[Arch], macs: NDArray[np.int64]) -> NDArray[np.float64]:
        keys = [str(a.to_string()) for a in archs]
        out = self.lookup(keys, archs)
        missing = np.isnan(out)
        if missing.any() and not self.allow_missing:
            first = keys[int(np.flatnonzero(missing)[0])]
            raise InputError(
                f"{self.label} has no accuracy for {int(missing.sum())} of the {len(archs)} architectures "
                f"the search proposed (e.g. {first[:80]}); it holds {len(self.values):,}: complete it, or "
                "pass --allow-missing to skip them"
            )
        return out

    def describe(self) -> dict[str, Any]:
        return {"kind": "table", "source": self.label, "rows": len(self.values), "minimize": self.minimize,
                "allow_missing": self.allow_missing}


# -- callables -----------------------------------------------------------------------------------------------
def _load_callable(text: str) -> Callable[..., Any]:
    m = _CALLABLE.match(text.strip())
    if m is None:
        raise InputError(f"--accuracy {text!r}: expected module:function or path/to/file.py:function")
    module_name, fn_name = m.group("module"), m.group("function")
    try:
        if module_name.endswith(".py"):
            path = Path(module_name)
            if not path.is_file():
                raise InputError(f"--accuracy {text}: no file {path}")
            spec = importlib.util.spec_from_file_location(f"_nasprof_accuracy_{path.stem}", path)
            if spec is None or spec.loader is None:
                raise InputError(f"--accuracy {text}: cannot load {path}")
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        else:
            module = importlib.import_module(module_name)
    except NasprofError:
        raise
    except (Exception, SystemExit) as exc:  # the user's module failing (or exiting) on import: one line
        raise InputError(f"--accuracy {text}: importing {module_name} failed: {type(exc).__name__}: {exc}"
                         ) from None
    fn = getattr(module, fn_name, None)
    if not callable(fn):
        raise InputError(f"--accuracy {text}: {module_name} has no function {fn_name}")
    return fn  # type: ignore[no-any-return]


class CallableAccuracy(AccuracyProxy):
    """A user's function: a list of architecture strings in, one number per architecture out.

    Anything it raises, and an answer of the wrong shape or length or with NaN, is an ``InputError`` naming
    the function (the search stops; nothing is written).
    """

    name: ClassVar[str] = "callable"
    max_batch: ClassVar[int] = 1024

    def __init__(self, fn: Callable[[list[str]], Any] | str, *, minimize: bool = False,
                 label: str | None = None) -> None:
        self.label = label or (fn if isinstance(fn, str) else getattr(fn, "__qualname__", "callable"))
        self.fn = _load_callable(fn) if isinstance(fn, str) else fn
        if not callable(self.fn):
            raise InputError(f"accuracy callable must be callable, got {type(self.fn).__name__}")
        self.minimize = bool(minimize)

    @property
    def source(self) -> str:
        return str(self.label)

    def score_many(self, archs: Sequence[Arch], macs: NDArray[np.int64]) -> NDArray[np.float64]:
        texts = [str(a.to_string()) for a in archs]
        try:
            answer = self.fn(texts)
        except NasprofError:
            raise
        except (Exception, SystemExit) as exc:  # the user's code (sys.exit too): one line, no traceback
            raise InputError(f"accuracy callable {self.label} raised {type(exc).__name__}: {exc}") from None
        try:
            arr = np.asarray(answer, dtype=np.float64)
        except (TypeError, ValueError):
            raise InputError(f"accuracy callable {self.label} returned {type(answer).__name__}, not numbers"
                             ) from None
        if arr.ndim != 1 or arr.size != len(texts):
            raise InputError(f"accuracy callable {self.label} returned shape {arr.shape} for {len(texts)} "
                             f"architectures; it must return one number each")
        return check_accuracy_values(arr, minimize=self.minimize, where=f"accuracy callable {self.label}")

    def describe(self) -> dict[str, Any]:
        return {"kind": "callable", "source": str(self.label), "minimize": self.minimize}


# -- accuracy predictors -------------------------------------------------------------------------------------
class PredictedAccuracy(AccuracyProxy):
    """An accuracy predictor (``nasprof.predictors.accuracy``) as an accuracy source."""

    name: ClassVar[str] = "predictor"

    def __init__(
        self, predictor: Any, space: Any, *, minimize: bool = False, label: str | None = None
    ) -> None:
        from nasprof.predictors.accuracy import AccuracyPredictor

        if isinstance(predictor, (str, Path)):
            self.label = label or str(predictor)
            self.predictor = AccuracyPredictor.load(predictor)
        else:
            self.label = label or "accuracy predictor"
            self.predictor = predictor
        self.predictor.check_space(getattr(space, "name", None), self.label)
        self.minimize = bool(minimize)

    @property
    def source(self) -> str:
        return str(self.label)

    def score_many(self, archs: Sequence[Arch], macs: NDArray[np.int64]) -> NDArray[np.float64]:
        pred = np.asarray(self.predictor.predict_many(archs), dtype=np.float64)
        # A regression can step a little outside the range it was fitted on (a ridge fit far from its data).
        return np.clip(pred, 0.0, None if self.minimize else 100.0)

    def describe(self) -> dict[str, Any]:
        return {"kind": "predictor", "source": str(self.label), "minimize": self.minimize,
                "validation": dict(self.predictor.validation)}


def _is_accuracy_predictor(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            head = f.read(4096)
        return b"nasprof.accuracy_predictor" in head or (
            path.suffix.lower() == ".json" and json.loads(path.read_text()).get("format")
            == "nasprof.accuracy_predictor")
    except (OSError, ValueError, AttributeError):
        return False


def resolve_accuracy(
    source: str | Path | AccuracyProxy | Callable[[list[str]], Any],
    space: Any,
    *,
    minimize: bool = False,
    allow_missing: bool = False,
) -> AccuracyProxy:
    """The accuracy source ``source`` names (see the module): an ``AccuracyProxy`` whose ``minimize`` says
    the direction."""
    if isinstance(source, AccuracyProxy):
        if minimize and not getattr(source, "minimize", False):
            source.minimize = True  # type: ignore[attr-defined]
        return source
    if callable(source) and not isinstance(source, (str, Path)):
        return CallableAccuracy(source, minimize=minimize)
    text = str(source).strip()
    if not text:
        raise InputError("--accuracy needs a table, module:function, predictor file or proxy name")
    path = Path(text)
    if text in PROXIES and not path.exists():
        if minimize:
            raise InputError(f"--minimize-metric applies to an accuracy table, callable or predictor; the "
                             f"{text} proxy is higher-is-better")
        return get_proxy(text)
    if path.is_file():
        if _is_accuracy_predictor(path):
            return PredictedAccuracy(path, space, minimize=minimize)
        if path.suffix.lower() == ".json":
            raise PredictorError(f"{path} is not an accuracy predictor file (fit one with `nasprof predictor "
                                 "fit --accuracy PAIRS -o acc.json`)")
        return TableAccuracy.from_file(path, space, minimize=minimize, allow_missing=allow_missing)
    if _CALLABLE.match(text) and path.suffix.lower() not in _TABLE_SUFFIXES:
        return CallableAccuracy(text, minimize=minimize)
    if path.suffix.lower() in (*_TABLE_SUFFIXES, ".json"):
        raise InputError(f"no accuracy file at {path}")
    raise InputError(f"--accuracy {text!r} is not a file, a module:function or a proxy "
                     f"({', '.join(PROXIES)})")


# -- queries -------------------------------------------------------------------------------------------------
class QueriedAccuracy(AccuracyProxy):
    """Counts and caches what ``source`` is asked: one query per distinct architecture (per isomorphism
    class where the space has ``canonical``). ``trace`` holds, for each architecture scored, the number of
    queries made once it was scored. ``max_queries`` is a guard: asking beyond it is an ``InputError`` (the
    search loop asks no more candidates than queries left).

    ``represent`` maps a batch to the networks the search scores and returns: the first network of each
    isomorphism class the search met stands for the class (for a table, the table's own network of the
    class, whose value it holds). A search of nb201 then scores one concrete network per class, with the
    latency and the accuracy of that same network.
    """

    needs_archs: ClassVar[bool] = True

    def __init__(self, source: AccuracyProxy, space: Any, max_queries: int | None = None) -> None:
        self.inner = source
        self.space = space
        self.name = source.name  # type: ignore[misc]
        self.max_batch = source.max_batch  # type: ignore[misc]
        self.minimize = bool(getattr(source, "minimize", False))
        self.max_queries = max_queries
        self.cache: dict[str, float] = {}
        self.members: dict[str, Arch] = {}
        self.queries = 0
        self.trace: list[int] = []

    def represent(self, archs: Sequence[Arch]) -> list[Arch]:
        """Each architecture's stand-in: the network that represents its class in this search."""
        if not has_classes(self.space):
            member = getattr(self.inner, "member", None)
            return [member(a) for a in archs] if member is not None else list(archs)
        keys = class_keys(self.space, archs)
        out: list[Arch] = []
        member = getattr(self.inner, "member", None)
        for a, k in zip(archs, keys, strict=True):
            m = self.members.get(k)
            if m is None:
                m = self.members[k] = member(a) if member is not None else a
            out.append(m)
        return out

    @property
    def remaining(self) -> int | None:
        return None if self.max_queries is None else max(0, self.max_queries - self.queries)

    def score_many(self, archs: Sequence[Arch], macs: NDArray[np.int64]) -> NDArray[np.float64]:
        keys = class_keys(self.space, archs)
        first: dict[str, int] = {}
        for i, k in enumerate(keys):
            if k not in self.cache and k not in first:
                first[k] = i
        new = list(first.values())
        if self.max_queries is not None and self.queries + len(new) > self.max_queries:
            raise InputError(f"{len(new)} new accuracy queries would exceed --max-queries {self.max_queries} "
                             f"({self.queries} made)")
        if new:
            values = np.asarray(self.inner.score_many([archs[i] for i in new],
                                                      np.asarray(macs)[new] if len(macs) else macs),
                                dtype=np.float64).reshape(-1)
            if values.size != len(new):
                raise InputError(f"accuracy source {self.name!r} returned {values.size} values for "
                                 f"{len(new)} architectures")
            for i, v in zip(new, values.tolist(), strict=True):
                self.cache[keys[i]] = v
        out = np.array([self.cache[k] for k in keys], dtype=np.float64)
        asked = set(new)
        for i, v in enumerate(out.tolist()):
            if i in asked and not math.isnan(v):  # a skipped (missing) architecture is not a query
                self.queries += 1
            self.trace.append(self.queries)
        return out

    def describe(self) -> dict[str, Any]:
        inner = getattr(self.inner, "describe", None)
        doc = inner() if callable(inner) else {"kind": "proxy", "source": self.name}
        return {**doc, "queries": self.queries, "max_queries": self.max_queries,
                "cached_by": "isomorphism class" if has_classes(self.space) else "architecture"}
