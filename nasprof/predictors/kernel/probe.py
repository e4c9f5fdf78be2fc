"""Detect a device's ``KernelRules`` by running small probe graphs on it with profiling on.

Each probe is a graph of two or three convolutions around one question: does this activation fuse into the
conv before it, does a pool of 24 channels run in the blocked layout, does a residual Add fold into a conv?
(The graphs are ``probe_graphs``.)
The device runs it once with onnxruntime's profiler on; the executed kernels, in order, are the observation
(``ReorderInput``/``ReorderOutput`` kept, everything else one token). This works the same on every backend
that profiles per node: in-process onnxruntime (cpu, cuda) and ``onnxruntime_perf_test -p`` on a phone.

The rules are then *fitted to the observations with the split itself*: for each rule, every candidate value
is tried and the one whose split reproduces the most probes of its family wins (ties go to the hand-written
fallback value). What the final rules still fail to reproduce is kept in ``KernelRules.unexplained``, so a
device that behaves in a way the split cannot express says so instead of being silently mispredicted.
nn-Meter detects fusion from timings (T1 + T2 − T12 > ½·min); the profile shows it directly.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nasprof.errors import DeviceError, PredictorError
from nasprof.predictors.kernel.probe_graphs import (
    POOL_WIDTHS,
    phase_one_probes,
    phase_two_probes,
    probe_graph,
)
from nasprof.predictors.kernel.rules import ACTIVATIONS, KernelRules

__all__ = [
    "PROBE_SCHEMA_VERSION", "ProbeReport", "observed_signature", "probe_rules", "rules_from_observations",
]

PROBE_SCHEMA_VERSION = 1
_BLOCKS = (0, 8, 16, 32, 64, 4)
_ALIGNS = (1, 2, 4, 8, 16, 32, 64)

Progress = Callable[[int, int, str], None]


# -- signatures ---------------------------------------------------------------------------------------
def observed_signature(op_types: Iterable[str]) -> tuple[int, int, int]:
    """(ReorderInput count, ReorderOutput count, other kernels): what a probe is judged by. Counts, not
    order: independent branches may run in any order. A ``HardSigmoid`` directly followed by ``Mul`` counts
    once: onnxruntime inlines an unfused ``HardSwish`` as that pair, and the split counts one kernel."""
    ri = ro = other = 0
    prev = ""
    for op in op_types:
        if op == "Mul" and prev == "HardSigmoid":
            prev = ""
            continue
        if op == "ReorderInput":
            ri += 1
        elif op == "ReorderOutput":
            ro += 1
        else:
            other += 1
        prev = op
    return ri, ro, other


def split_signature(model: Any, rules: KernelRules) -> tuple[int, int, int]:
    """The same counts for the kernels the split predicts under ``rules``."""
    from nasprof.predictors.kernel.split import split_kernels

    kernels = [k for k in split_kernels(model, rules) if k.type != "free"]
    ri = sum(k.type == "reorder" and k.variant == "ReorderInput" for k in kernels)
    ro = sum(k.type == "reorder" and k.variant == "ReorderOutput" for k in kernels)
    return ri, ro, len(kernels) - ri - ro


def _show_signature(sig: tuple[int, int, int]) -> str:
    return f"{sig[2]} kernel(s) + {sig[0]} ReorderInput + {sig[1]} ReorderOutput"


# -- fitting the rules --------------------------------------------------------------------------------
def _fit(
    rules: KernelRules,
    name: str,
    candidates: Sequence[Any],
    probes: Sequence[str],
    seen: Mapping[str, tuple[int, int, int]],
    graphs: dict[str, Any],
) -> KernelRules:
    """``rules`` with ``name`` set to the candidate whose split reproduces the most ``probes``."""
    probes = [p for p in probes if p in seen]
    if not probes:
        return rules
    best, best_hits = rules, -1
    for value in candidates:
        trial = rules.replace(**{name: value})
        hits = sum(split_signature(_graph(p, graphs), trial) == seen[p] for p in probes)
        if hits > best_hits:
            best, best_hits = trial, hits
    return best


def _graph(name: str, graphs: dict[str, Any]) -> Any:
    if name not in graphs:
        graphs[name] = probe_graph(name)
    return graphs[name]


def rules_from_observations(
    observed: Mapping[str, Sequence[str]], opt_level: str = "all", device: Mapping[str, Any] | None = None
) -> KernelRules:
    """The rules that reproduce ``observed`` (probe name -> executed op types, in order) best."""
    seen = {p: observed_signature(ops) for p, ops in observed.items()}
    graphs: dict[str, Any] = {}
    missing = [p for p in phase_one_probes() if p not in seen]
    if missing:
        raise PredictorError(f"the probe observations lack {len(missing)} probe(s), e.g. {missing[0]}")
    fallback = KernelRules.fallback(opt_level)
    rules = KernelRules(opt_level=opt_level, source="probed", device=dict(device or {}))
    pools = [f"pool:{c}" for c in POOL_WIDTHS]
    rules = _fit(rules, "nchwc_block", _BLOCKS, pools, seen, graphs)
    # Fusions: one probe per activation, decided independently.
    conv_acts: set[str] = set()
    gemm_acts: set[str] = set()
    for act in ACTIVATIONS:
        for family, chosen in (("conv_act", conv_acts), ("gemm_act", gemm_acts)):
            field_name = "conv_acts" if family == "conv_act" else "gemm_acts"
            base = getattr(rules, field_name) - {act}
            default = act in getattr(fallback, field_name)
            options = [base | {act}, base] if default else [base, base | {act}]
            fitted = _fit(rules, field_name, options, [f"{family}:{act}"], seen, graphs)
            if act in getattr(fitted, field_name):
                chosen.add(act)
    rules = rules.replace(conv_acts=frozenset(conv_acts), gemm_acts=frozenset(gemm_acts))
    rules = _fit(rules, "silu", [fallback.silu, not fallback.silu], ["silu"], seen, graphs)
    rules = _fit(rules, "conv_add", [fallback.conv_add, not fallback.conv_add], ["conv_add"], seen, graphs)
    relu = frozenset({"Relu"})
    rules = _fit(rules, "conv_add_acts", [relu, frozenset()] if rules.conv_add else [frozenset(), relu],
                 ["conv_add_act:Relu"], seen, graphs)
    b = rules.nchwc_block
    if b:
        two = phase_two_probes(b)
        fam = {f: [p for p in two if p.startswith(f + ":")] for f in
               ("dwconv", "conv", "concat", "group", "avgpool_ceil_pad", "residual_plain",
                "standalone_bn")}
        rules = _fit(rules, "dwconv_align", _prefer(4, _ALIGNS), fam["dwconv"], seen, graphs)
        rules = _fit(rules, "conv_align", _prefer(4, _ALIGNS), fam["conv"], seen, graphs)
        rules = _fit(rules, "concat_align", _prefer(b, _ALIGNS), fam["concat"], seen, graphs)
        rules = _fit(rules, "group_align", _prefer(b, _ALIGNS), fam["group"], seen, graphs)
        rules = _fit(rules, "avgpool_ceil_pad_blocked", [False, True], fam["avgpool_ceil_pad"], seen, graphs)
        rules = _fit(rules, "residual_needs_blocked", [True, False], fam["residual_plain"], seen, graphs)
        rules = _fit(rules, "bn_as_conv", [False, True], fam["standalone_bn"], seen, graphs)
    unexplained = []
    for p in [*phase_one_probes(), *phase_two_probes(b)]:
        if p not in seen:
            unexplained.append(f"{p}: not observed")
            continue
        expected = split_signature(_graph(p, graphs), rules)
        if expected != seen[p]:
            unexplained.append(f"{p}: split {_show_signature(expected)}, device {_show_signature(seen[p])}")
    return rules.replace(unexplained=tuple(unexplained))


def _prefer(first: int, values: Sequence[int]) -> list[int]:
    return [first, *[v for v in values if v != first]]


# -- running the probes -------------------------------------------------------------------------------
@dataclass(frozen=True)
class ProbeReport:
    """Detected rules and the evidence: every probe's executed kernels, in order."""

    rules: KernelRules
    #: probe name -> op types of the kernels the device ran, in execution order.
    observations: Mapping[str, tuple[str, ...]]
    seconds: float = 0.0
    host: Mapping[str, Any] = field(default_factory=dict)
    #: probe name -> the execution provider of each kernel in ``observations`` (empty when not profiled).
    providers: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def kernels_by_provider(self) -> dict[str, list[str]]:
        """Op types each execution provider ran over all probes: with a mobile provider configured, what
        it takes and what falls back to ``CPUExecutionProvider``."""
        seen: dict[str, set[str]] = {}
        for name, provs in self.providers.items():
            for op, prov in zip(self.observations.get(name, ()), provs, strict=False):
                if prov:
                    seen.setdefault(prov, set()).add(op)
        return {prov: sorted(ops) for prov, ops in sorted(seen.items())}

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": PROBE_SCHEMA_VERSION,
            "kind": "nasprof.kernel_rules_probe",
            "rules": self.rules.to_dict(),
            "observations": {k: list(v) for k, v in self.observations.items()},
            "seconds": self.seconds,
            "host": dict(self.host),
            "providers": {k: list(v) for k, v in self.providers.items()},
            "kernels_by_provider": self.kernels_by_provider(),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ProbeReport:
        if not isinstance(d, Mapping) or d.get("kind") != "nasprof.kernel_rules_probe":
            raise PredictorError("not a nasprof probe report (kind nasprof.kernel_rules_probe)")
        if d.get("schema_version") != PROBE_SCHEMA_VERSION:
            raise PredictorError(
                f"probe report of schema {d.get('schema_version')!r}; this nasprof reads "
                f"{PROBE_SCHEMA_VERSION}"
            )
        obs = d.get("observations")
        if not isinstance(obs, Mapping) or not all(isinstance(v, list) for v in obs.values()):
            raise PredictorError("probe report: observations must map probe names to lists of op types")
        return cls(
            rules=KernelRules.from_dict(d["rules"]),
            observations={str(k): tuple(str(x) for x in v) for k, v in obs.items()},
            seconds=float(d.get("seconds", 0.0)),
            host=dict(d.get("host") or {}),
            providers={str(k): tuple(str(x) for x in v) for k, v in (d.get("providers") or {}).items()
                       if isinstance(v, list)},
        )

    def save_json(self, path: str | Path) -> Path:
        from nasprof._io import atomic_write_text

        path = Path(path)
        atomic_write_text(path, json.dumps(self.to_dict(), indent=1) + "\n")
        return path

    @classmethod
    def load_json(cls, path: str | Path) -> ProbeReport:
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except (OSError, ValueError) as exc:
            raise PredictorError(f"cannot read probe report {path}: {exc}") from None


def probe_rules(
    device: str = "cpu",
    *,
    opt_level: str = "all",
    threads: int = 1,
    progress: Progress | None = None,
) -> ProbeReport:
    """Run the probes on ``device`` (a name of ``nasprof devices list``) at ``opt_level`` and fit the
    rules to what it executed. Two rounds: pools and fusions, then layout probes sized to the block the
    first round found. About 2 s on the local CPU."""
    from nasprof.devices import MeasureSpec, get_device

    started = time.perf_counter()
    backend = get_device(device)
    backend.ensure_available()
    spec = MeasureSpec(threads=threads, warmup=1, runs=1, sessions=1, per_node=True, per_node_runs=1,
                       opt_level=opt_level)
    backend.check_spec(spec)
    observed: dict[str, tuple[str, ...]] = {}
    providers: dict[str, tuple[str, ...]] = {}

    def run(names: Sequence[str], done_before: int, total: int) -> None:
        import onnx

        with tempfile.TemporaryDirectory(prefix="nasprof-probe-") as tmp:
            for i, name in enumerate(names):
                path = Path(tmp) / f"probe{i}.onnx"
                onnx.save(probe_graph(name), str(path))
                m = backend.measure(path, spec)
                if not m.per_node:
                    raise DeviceError(
                        f"device {device!r} returned no per-node profile for a probe: its backend cannot "
                        "show which kernels ran, so its rules cannot be detected"
                    )
                observed[name] = tuple(n.op_type for n in m.per_node)
                providers[name] = tuple(n.provider for n in m.per_node)
                if progress is not None:
                    progress(done_before + i + 1, total, name)

    first = phase_one_probes()
    run(first, 0, len(first) + len(phase_two_probes(16)))
    info = _device_identity(backend)
    rough = rules_from_observations(observed, opt_level, info)
    second = phase_two_probes(rough.nchwc_block)
    run(second, len(first), len(first) + len(second))
    rules = rules_from_observations(observed, opt_level, info)
    return ProbeReport(rules, observed, seconds=time.perf_counter() - started, host=info, providers=providers)


def _device_identity(backend: Any) -> dict[str, Any]:
    """What identifies the device the rules belong to: the backend's own description, plus this host's
    CPU flags where the device is this host's CPU."""
    from nasprof.profiler.environment import cpu_flags

    info = backend.describe()
    keep = ("backend", "device", "cpu_model", "runtime", "runtime_version", "execution_provider", "gpu_name",
            "model", "abi", "soc", "runner_sha256")
    out: dict[str, Any] = {k: info[k] for k in keep if isinstance(info.get(k), (str, int, float, bool))}
    if out.get("backend") == "cpu":
        out["cpu_flags"] = cpu_flags()
    return out
