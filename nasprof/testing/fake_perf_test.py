"""Stand-in for onnxruntime_perf_test, run by the fake adb device when a pushed fake runner is executed.

It accepts perf_test's flags (``-m times -r N -x T -y T -o L -e cpu -I -S seed -s -p prefix -f dim:value``),
runs the model with the *local* onnxruntime and prints the output of the real tool
(onnxruntime/test/perftest/performance_runner.cc) in one of three historical formats, chosen by the device's
``.fake/perf_test_format`` file: ``modern``, ``total`` ("Average inference time cost total:") or ``old``
("P50 Latency is 0.0587108sec"); ``no-percentiles`` is ``modern`` from a build that ignores ``-s``. The
device's ``.fake/layout`` file set to ``plain`` turns onnxruntime's NCHWc transformer off, so the phone lays
models out as onnxruntime on ARM64 does (no blocked layout); its other fusions stay this host's.
The device's ``.fake/build`` set to ``minimal`` makes it a reduced-size build: it loads only ORT-format files
and, when ``.fake/ops.config`` exists, only the operators that config lists, failing with the messages of
onnxruntime's minimal build otherwise.
The device's ``.fake/providers.json`` lists the execution providers the runner was built with besides cpu,
each with the operators it takes: ``-e xnnpack`` on a runner without it fails as perf_test does ("Xnnpack
is not supported in this build"); with it, the model still runs on this host's CPU, but profiled nodes of
those operators carry the provider's name (per node, as XNNPACK assigns them) and the rest
``CPUExecutionProvider``.
The device's ``.fake/run_ms`` adds that many milliseconds of sleep to every timed run (a simulated
phone's speed); with ``.fake/simulate`` too, the model is not run at all (onnxruntime is not even imported):
every run is that sleep alone, so a farm of fake phones costs this host almost no CPU (the scaling
benchmark measures the scheduler, not the host).
With ``-p PREFIX`` it writes a real onnxruntime profile to ``PREFIX_<timestamp>.json``, as onnxruntime
itself names it.

Device paths in the arguments are mapped into the sandbox given by ``NASPROF_FAKE_DEVICE_ROOT``; the device's
``LD_LIBRARY_PATH`` must name a directory holding ``libonnxruntime.so``, or the program fails the way
Android's linker does.
"""

from __future__ import annotations

import contextlib
import math
import os
import posixpath
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

_OPT_LEVELS = {"0": "ORT_DISABLE_ALL", "1": "ORT_ENABLE_BASIC", "2": "ORT_ENABLE_EXTENDED",
               "3": "ORT_ENABLE_ALL", "99": "ORT_ENABLE_ALL"}
_FLAGS_WITH_VALUE = set("mrtexyopSfcdi")
#: How onnxruntime names each provider: in perf_test's refusal, and in profiles.
_PROVIDERS = {"xnnpack": ("Xnnpack", "XnnpackExecutionProvider"),
              "nnapi": ("NNAPI", "NnapiExecutionProvider"), "qnn": ("QNN", "QNNExecutionProvider")}
_NUMPY_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
                "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(int8)": np.int8,
                "tensor(uint8)": np.uint8, "tensor(bool)": np.bool_}


def _device_path(p: str) -> Path:
    root = Path(os.environ["NASPROF_FAKE_DEVICE_ROOT"])
    full = posixpath.normpath(posixpath.join(os.environ.get("NASPROF_FAKE_CWD", "/"), p))
    return root / full.lstrip("/")


def _parse(argv: Sequence[str]) -> tuple[dict[str, list[str]], list[str]]:
    opts: dict[str, list[str]] = {}
    positional: list[str] = []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a.startswith("-") and len(a) == 2:
            if a[1] in _FLAGS_WITH_VALUE:
                if i + 1 >= len(argv):
                    raise SystemExit(f"option requires an argument -- '{a[1]}'")
                opts.setdefault(a[1], []).append(argv[i + 1])
                i += 2
                continue
            opts.setdefault(a[1], []).append("")
        else:
            positional.append(a)
        i += 1
    return opts, positional


def _check_linker() -> None:
    dirs = [d for d in os.environ.get("NASPROF_FAKE_LD_LIBRARY_PATH", "").split(":") if d]
    if not any((_device_path(d) / "libonnxruntime.so").is_file() for d in dirs):
        sys.stderr.write('CANNOT LINK EXECUTABLE "./onnxruntime_perf_test": library "libonnxruntime.so" '
                         "not found: needed by main executable\n")
        raise SystemExit(1)


def _inputs(session: object, free_dims: dict[str, int], seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    feeds: dict[str, np.ndarray] = {}
    for inp in session.get_inputs():  # type: ignore[attr-defined]
        shape = [d if isinstance(d, int) else free_dims.get(str(d), 1) for d in inp.shape]
        dtype = _NUMPY_TYPES.get(inp.type, np.float32)
        feeds[inp.name] = rng.standard_normal(shape).astype(dtype)
    return feeds


def _report(fmt: str, created_s: float, first_ms: float, lat_s: list[float], stats: bool) -> str:
    total = sum(lat_s)
    n = len(lat_s)
    lines = [f"Session creation time cost: {created_s:g} s", f"First inference time cost: {int(first_ms)} ms",
             f"Total inference time cost: {total:g} s", f"Total inference requests: {n}"]
    avg_label = "Average inference time cost total" if fmt == "total" else "Average inference time cost"
    lines.append(f"{avg_label}: {total / n * 1000:g} ms")
    lines += [f"Total inference run time: {total + 4e-5:g} s",
              f"Number of inferences per second: {n / total:g}",
              "Avg CPU usage: 50 %", "Peak working set size: 31457280 bytes"]
    if stats:
        s = sorted(lat_s)
        points = [("Min", s[0]), ("Max", s[-1])] + [
            (f"P{p}", s[min(n - 1, max(0, math.ceil(q * n) - 1))])
            for p, q in (("50", 0.5), ("90", 0.9), ("95", 0.95), ("99", 0.99), ("999", 0.999))
        ]
        if fmt == "old":
            lines += [f"{name} Latency is {v:.7g}sec" for name, v in points]
        else:
            lines += [f"{name} Latency: {v:g} s" for name, v in points]
    return "\n".join(lines) + "\n"


def _minimal_build_refusal(model: Path, shown: str) -> str:
    """What a minimal onnxruntime build says about ``model``: nothing when it can run it."""
    if os.environ.get("NASPROF_FAKE_BUILD", "full") != "minimal":
        return ""
    with open(model, "rb") as f:
        is_ort = f.read(8)[4:8] == b"ORTM"
    if not is_ort:
        return (f"[ONNXRuntimeError] : 1 : FAIL : Load model from {shown} failed:ONNX format model is not "
                "supported in this build.")
    config = os.environ.get("NASPROF_FAKE_OPS_CONFIG", "")
    if not config:
        return ""
    import tempfile
    import types

    import onnxruntime

    # onnxruntime's own reader of ORT-format models. Its package __init__ imports torch (2 s in every fake
    # process); the reader needs none of it, so the package is entered without running that __init__.
    if "onnxruntime.tools" not in sys.modules:
        tools = types.ModuleType("onnxruntime.tools")
        tools.__path__ = [str(Path(onnxruntime.__file__).parent / "tools")]
        sys.modules["onnxruntime.tools"] = tools
    from onnxruntime.tools.ort_format_model.utils import create_config_from_models

    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(sys.stderr):
        create_config_from_models([model], Path(tmp) / "needed.config", enable_type_reduction=False)
        needed = _read_config((Path(tmp) / "needed.config").read_text())
    have = _read_config(Path(config).read_text())
    for (domain, opset), ops in sorted(needed.items()):
        for op in sorted(ops - have.get((domain, opset), set())):
            return (f"[ONNXRuntimeError] : 9 : NOT_IMPLEMENTED : Could not find an implementation for "
                    f"{op}({opset}) node with name '{op}_0'")
    return ""


def _read_config(text: str) -> dict[tuple[str, int], set[str]]:
    out: dict[tuple[str, int], set[str]] = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            domain, opset, ops = line.split(";")[:3]
            names = (o.split("{")[0].strip() for o in ops.split(","))
            out.setdefault((domain, int(opset)), set()).update(names)
    return out


def _label_provider(profile: Path, name: str, ops: set[str]) -> None:
    """Give the nodes a provider takes its name in the profile (they ran on this host's CPU)."""
    import json

    events = json.loads(profile.read_text())
    for e in events:
        args = e.get("args") or {}
        if e.get("cat") == "Node" and args.get("op_name") in ops:
            args["provider"] = name
    profile.write_text(json.dumps(events))


def _print_report(opts: dict[str, list[str]], created_s: float, first_ms: float, lat_s: list[float]) -> None:
    """perf_test's report in the device's dialect; percentiles with -s (always in the oldest dialect)."""
    fmt = os.environ.get("NASPROF_FAKE_PERF_TEST_FORMAT", "modern")
    stats = ("s" in opts or fmt == "old") and fmt != "no-percentiles"
    sys.stdout.write(_report(fmt, created_s, first_ms, lat_s, stats=stats))


def _simulate(opts: dict[str, list[str]]) -> int:
    """A phone whose every run takes ``run_ms`` and nothing else: perf_test's report of sleeps."""
    if "p" in opts:
        sys.stderr.write("the simulated runner writes no profile (.fake/simulate): remove it to profile\n")
        return 255
    run_s = float(os.environ.get("NASPROF_FAKE_RUN_MS", "0") or 0) / 1000.0
    lat_s = []
    for _ in range(int(opts.get("r", ["1000"])[-1])):
        t0 = time.perf_counter()
        time.sleep(run_s)
        lat_s.append(max(time.perf_counter() - t0, 1e-6))
    _print_report(opts, 0.0, run_s * 1000, lat_s)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    opts, positional = _parse(list(sys.argv[1:] if argv is None else argv))
    if not positional:
        sys.stderr.write("perftest: model path is required\n")
        return 255
    _check_linker()
    model = _device_path(positional[0])
    if not model.is_file():
        sys.stderr.write(f"[ONNXRuntimeError] : 3 : NO_SUCHFILE : Load model from {positional[0]} failed:"
                         " File doesn't exist\n")
        return 255
    refusal = _minimal_build_refusal(model, positional[0])
    if refusal:
        sys.stderr.write(refusal + "\n")
        return 255
    if os.environ.get("NASPROF_FAKE_SIMULATE") == "1":
        return _simulate(opts)  # before onnxruntime is imported: a simulated phone costs this host no runtime
    import onnxruntime as ort
    provider = opts.get("e", ["cpu"])[-1]
    built: dict[str, list[str]] = {}
    if os.environ.get("NASPROF_FAKE_PROVIDERS"):
        import json

        built = json.loads(Path(os.environ["NASPROF_FAKE_PROVIDERS"]).read_text())
    if provider != "cpu" and provider not in built:
        label = _PROVIDERS.get(provider, (provider, ""))[0]
        sys.stderr.write(f"{label} is not supported in this build\n")
        return 255
    so = ort.SessionOptions()
    so.intra_op_num_threads = int(opts.get("x", ["1"])[-1])
    so.inter_op_num_threads = int(opts.get("y", ["1"])[-1])
    so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, _OPT_LEVELS[opts.get("o", ["99"])[-1]])
    if "p" in opts:
        so.enable_profiling = True
        so.profile_file_prefix = str(_device_path(opts["p"][-1]))
    free_dims = {k: int(v) for k, _, v in (f.partition(":") for f in opts.get("f", []))}
    start = time.perf_counter()
    plain = os.environ.get("NASPROF_FAKE_LAYOUT", "host") == "plain"
    disabled = {"disabled_optimizers": ["NchwcTransformer"]} if plain else {}
    try:
        session = ort.InferenceSession(str(model), so, providers=["CPUExecutionProvider"], **disabled)
    except Exception as exc:  # onnxruntime raises several types; perf_test prints and exits -1
        sys.stderr.write(f"{exc}\n")
        return 255
    created_s = time.perf_counter() - start
    feeds = _inputs(session, free_dims, int(opts.get("S", ["0"])[-1]))
    t0 = time.perf_counter()
    session.run(None, feeds)  # perf_test's single untimed warm-up
    first_ms = (time.perf_counter() - t0) * 1000
    lat_s = []
    extra_s = float(os.environ.get("NASPROF_FAKE_RUN_MS", "0") or 0) / 1000.0
    for _ in range(int(opts.get("r", ["1000"])[-1])):
        t0 = time.perf_counter()
        session.run(None, feeds)
        if extra_s:
            time.sleep(extra_s)  # the simulated phone's own time per run
        lat_s.append(time.perf_counter() - t0)
    if "p" in opts:
        profile = session.end_profiling()
        if provider != "cpu":
            _label_provider(Path(profile), _PROVIDERS.get(provider, ("", provider))[1], set(built[provider]))
    _print_report(opts, created_s, first_ms, lat_s)
    return 0


if __name__ == "__main__":
    sys.exit(main())
