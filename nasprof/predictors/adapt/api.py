"""What ``nasprof predictor adapt`` calls: measurements in, an adapted predictor (or a plan) out."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nasprof.errors import InputError, NasprofError
from nasprof.predictors.adapt.adapt import AdaptReport, adapt, candidate_decompositions, plan

__all__ = ["adapt_from_measurements", "plan_networks", "MIN_NETWORKS"]

#: Leave-one-out needs a few networks to mean anything; two would fit a line through two points exactly.
MIN_NETWORKS = 3


def _given(options: Mapping[str, Any] | None) -> dict[str, Any]:
    return {k: v for k, v in (options or {}).items() if v is not None}


def _nb201_options(given: Mapping[str, Any], stored: Mapping[str, Any], label: str) -> dict[str, Any]:
    """The set's options, with the command line's where the set has none; a contradiction is an error."""
    from nasprof.space.spaces import get_space

    space: Any = get_space("nb201")
    mine = dict(space.normalize_options(_given(given))) if given else None
    theirs = dict(space.normalize_options(dict(stored))) if stored else None
    if mine is not None and theirs is not None:
        for key in ("input", "outputs", "C", "N"):
            if key in given and mine[key] != theirs[key]:
                shown = "x".join(map(str, theirs[key])) if key == "input" else theirs[key]
                raise InputError(f"the measurements {label} are of networks with {key} {shown}; drop the "
                                 f"option or adapt on measurements of the networks you asked for")
    return dict(theirs or mine or space.normalize_options({}))


def adapt_from_measurements(
    measurements: str | None,
    *,
    space: str | None = None,
    options: Mapping[str, Any] | None = None,
    source: str | Path | None = None,
    device: str | None = None,
    store: str | Path | None = None,
) -> AdaptReport:
    """Load the measurements (a file or a stored set), read their architectures and adapt."""
    from nasprof.space.parse import parse_arch
    from nasprof.tables.measurements import load_measurement_set

    if not measurements:
        raise InputError("--measurements FILE|NAME is required: the target device's end-to-end latencies "
                         "(columns arch, latency_ms); or --plan K to choose which networks to measure")
    mset = load_measurement_set(measurements, store=store)
    models = [r for r in mset.rows if r.arch is None]
    if models and (source is None or len(models) < len(mset.rows)):
        raise InputError(f"{mset.label} line {models[0].line}: a model file; adapting from model files needs "
                         "--from a kernel predictor and every row a model (or every row an architecture)")
    texts = [r.arch for r in mset.rows if r.arch is not None]
    space_name = space or mset.space or (
        "nb201" if texts and all(t.lstrip().startswith("|") for t in texts) else None)
    if mset.space and space and mset.space != space:
        raise InputError(f"the measurements {mset.label} are of space {mset.space!r}, not {space!r}")
    opts: dict[str, Any] = {}
    if space_name == "nb201":
        opts = _nb201_options(_given(options), mset.arch_options, mset.label)
    elif _given(options):
        raise InputError("--input/--outputs/--cell-channels/--cells-per-stage apply to nb201 networks only")
    targets: list[Any] = []
    for r in mset.rows:
        if r.model is not None:  # a graph the kernel predictor given with --from splits into kernels
            targets.append(str(r.model))
            continue
        try:
            targets.append(parse_arch(str(r.arch), space_name, **opts))
        except NasprofError as exc:
            raise InputError(f"{mset.label} line {r.line}: {exc}") from None
    if len(mset.rows) < MIN_NETWORKS:
        raise InputError(f"{mset.label} has {len(mset.rows)} measured network(s); adapting needs at least "
                         f"{MIN_NETWORKS} (use `nasprof predictor adapt --plan K` to choose which)")
    src = None
    if source is not None:
        from nasprof.predictors.base import load_predictor

        src = load_predictor(source)
    elif space_name != "nb201" or models:
        raise InputError(f"adapting {space_name or 'these'} networks needs --from: a predictor of a device "
                         "nasprof can time (e.g. `nasprof predictor fit --table cpu.db`); the structure-only "
                         "path covers nb201")
    prov = dict(mset.provenance)
    target_device = device or prov.get("device") or "target"
    learned = {"source": mset.label, "provenance": ", ".join(f"{k} {prov[k]}" for k in
                                                             ("device", "runtime", "threads", "measured_by")
                                                             if prov.get(k)),
               "sha256": prov.get("sha256", "")}
    return adapt(targets, list(mset.latencies_ms()), device=target_device, source=src, options=opts or None,
                 learned_from=learned)


def plan_networks(
    k: int,
    *,
    space: str = "nb201",
    options: Mapping[str, Any] | None = None,
    source: str | Path | None = None,
    pool: int = 5000,
    seed: int = 0,
) -> list[str]:
    """The ``k`` networks most worth measuring: NB201's class representatives (one network per
    isomorphism class) designed over every rewrite hypothesis, or ``pool`` sampled networks of another
    space designed over the source predictor's parts."""
    from nasprof.space.spaces import get_space

    sp = get_space(space)
    if space == "nb201":
        from nasprof.space.spaces.nb201 import unique_string

        opts = _nb201_options(_given(options), {}, "")
        seen: set[Any] = set()
        cands = []
        for a in sp.all_archs(**opts):  # type: ignore[attr-defined]
            key = unique_string(tuple(a.blocks))
            if key not in seen:
                seen.add(key)
                cands.append(a)
        decs = candidate_decompositions(None, opts)
    else:
        if source is None:
            raise InputError(f"planning for space {space!r} needs --from: a predictor of a device nasprof "
                             "can time, whose parts the design spreads over")
        if _given(options):
            raise InputError("--input/--outputs/--cell-channels/--cells-per-stage apply to nb201 only")
        from nasprof.predictors.base import load_predictor

        src = load_predictor(source)
        cands = sp.sample(pool, seed=seed, resolution=getattr(src, "resolution", None))
        decs = candidate_decompositions(src, None)
    return [cands[i].to_string() for i in plan(cands, k, decs)]
