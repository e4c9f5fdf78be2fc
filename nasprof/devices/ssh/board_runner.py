"""nasprof's runner on a Linux board: one standalone file, shipped over SSH and run by the board's Python.

It imports only the standard library, onnxruntime and numpy (those two lazily, so ``describe`` still answers
on a board without them), and never nasprof: the host ships this file content-addressed (its sha256 in the
file name) into the board's cache directory. Its commands print ONE JSON document on stdout each:

- ``describe``: what the board is (``/proc/cpuinfo``, CPUs and their ``cpuinfo_max_freq``, onnxruntime's
  version and providers, the Python running it);
- ``readiness --window S``: its state before measuring (governors, frequency limits, ``vcgencmd
  get_throttled``, thermal zones, load, CPU use and busy processes over ``S`` seconds);
- ``measure --model PATH --sha256 HEX --request JSON --timeout S``: nasprof's measurement protocol, the same
  as ``nasprof.profiler.ort_runner.time_sessions`` (fresh sessions, untimed warm-ups, ``run_with_iobinding``
  alone inside ``perf_counter_ns``, garbage collection paused, adaptive repetition on the 95% CI of the
  median) and, with ``per_node``, a separate profiled session whose onnxruntime profile events are returned
  as they are: the host parses them with nasprof's own profile parser. Samples come back RAW.

And ``session --idle S``: the same measurements, many over one process (onnxruntime imported once, no
process start per measurement), for as long as the host keeps its stdin open. The stream protocol:

- the runner first prints a hello line: ``{"session": true, "runner_version": N, "pid": P, "affinity":
  [...]}``;
- a request is one line of JSON, ``{"op": "measure", "model": PATH, "sha256": HEX, "request": {...},
  "timeout": S}``; with ``"store_size": N`` the model's N bytes follow that line (stored unless the cache
  has them: they are read either way, so the stream stays in step);
- each request gets one line back: the document ``measure`` prints (plus ``pid``).

The session ends at the end of its stdin (the host closed it, or the connection dropped), after ``S`` seconds
without a request, when its stdout is gone, or when a request runs past its ``timeout`` (``SIGALRM``, as
below).

Anything a library prints goes to stderr: stdout carries the document only. Errors the host must explain
(no onnxruntime, a model onnxruntime refuses, a cache file that is not what its name says) come back as
``{"ok": false, "error": {"kind": ..., "message": ...}}``; a crash exits non-zero with its traceback on
stderr. The runner exits on its own after ``--timeout`` seconds (``SIGALRM``), and at the next session
boundary when the host has gone (its stdout pipe is closed: a dropped connection), so an orphaned run does
not keep the board busy. Written for Python 3.8+ (JetPack 5 ships 3.8).
"""

from __future__ import annotations

# Only what every command needs, all cheap: a measurement handed to the server starts a Python that imports
# nothing else (the rest is imported where it is used), since that start is paid on every table entry.
import gc
import json
import math
import os
import select
import signal
import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

#: Bumped whenever the JSON documents or the session protocol change; the host refuses a runner of another
#: version. 2: the ``session`` command.
RUNNER_VERSION = 2

_CPU_DIR = "/sys/devices/system/cpu"
_OPT_LEVELS = ("disable", "basic", "extended", "all")
#: A process using this share of one core or more during the readiness window counts as busy (as the
#: host's ``nasprof doctor``).
_BUSY_PROCESS = 0.2
#: /proc/cpuinfo is sent whole up to this many characters (a 4-core board's is ~2 kB).
_CPUINFO_MAX = 65536


class RunnerError(Exception):
    """An error the host explains to the user: ``kind`` says which."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


# -- small helpers --------------------------------------------------------------------------------------
def _read(path: str, limit: int | None = None) -> str | None:
    try:
        with open(path, errors="replace") as f:
            return f.read() if limit is None else f.read(limit)
    except OSError:
        return None


def _int_file(path: str) -> int | None:
    text = _read(path)
    text = text.strip() if text else ""
    return int(text) if text.lstrip("-").isdigit() else None


def _cpu_list(text: str | None) -> list[int]:
    out: list[int] = []
    for part in (text or "").strip().split(","):
        if part:
            lo, _, hi = part.partition("-")
            out.extend(range(int(lo), int(hi or lo) + 1))
    return out


def _file_sha256(path: str) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _stat_cpu_line() -> str | None:
    text = _read("/proc/stat")
    for line in (text or "").splitlines():
        if line.startswith("cpu "):
            return line
    return None


def _loadavg() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def _affinity() -> list[int]:
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return list(range(os.cpu_count() or 1))


def _import_runtime() -> tuple[Any, Any]:
    try:
        import numpy as np
        import onnxruntime as ort
    except Exception as exc:  # ImportError, or a broken wheel (illegal instruction is a crash, not this)
        raise RunnerError("no_onnxruntime", f"{type(exc).__name__}: {exc}") from None
    return ort, np


# -- describe -------------------------------------------------------------------------------------------
def describe() -> dict[str, Any]:
    import platform
    import shutil

    cpus = _cpu_list(_read(f"{_CPU_DIR}/online")) or _cpu_list(_read(f"{_CPU_DIR}/possible"))
    max_freq = {}
    for c in cpus:
        f = _int_file(f"{_CPU_DIR}/cpu{c}/cpufreq/cpuinfo_max_freq")
        if f is not None:
            max_freq[str(c)] = f
    model = (_read("/proc/device-tree/model") or "").replace("\x00", "").strip()
    info: dict[str, Any] = {
        "python": sys.executable,
        "python_version": platform.python_version(),
        "machine": platform.machine(),
        "platform": platform.platform(),
        "kernel": platform.release(),
        "hostname": platform.node(),
        "cpuinfo": _read("/proc/cpuinfo", _CPUINFO_MAX) or "",
        "device_tree_model": model,
        "cpus": cpus,
        "max_freq_khz": max_freq,
        "affinity": _affinity(),
        "cpu_count": os.cpu_count(),
        "taskset": shutil.which("taskset"),
        "load_average": _loadavg(),
        "runner_sha256": _file_sha256(os.path.abspath(__file__)),
    }
    try:
        ort, np = _import_runtime()
    except RunnerError as exc:
        info["onnxruntime_error"] = str(exc)
    else:
        info["onnxruntime_version"] = ort.__version__
        info["providers"] = list(ort.get_available_providers())
        info["numpy_version"] = np.__version__
    return info


# -- readiness ------------------------------------------------------------------------------------------
def _process_ticks() -> dict[int, tuple[str, int]]:
    out: dict[int, tuple[str, int]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return out
    for name in entries:
        if not name.isdigit():
            continue
        stat = _read(f"/proc/{name}/stat")
        if not stat:
            continue
        comm = stat[stat.find("(") + 1 : stat.rfind(")")]
        fields = stat[stat.rfind(")") + 2 :].split()
        try:
            out[int(name)] = (comm, int(fields[11]) + int(fields[12]))
        except (IndexError, ValueError):
            continue
    return out


def _throttled() -> str | None:
    """``vcgencmd get_throttled`` (Raspberry Pi firmware), or None where there is no vcgencmd."""
    import shutil
    import subprocess

    exe = shutil.which("vcgencmd")
    if exe is None:
        return None
    try:
        proc = subprocess.run([exe, "get_throttled"], capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.decode(errors="replace").strip() if proc.returncode == 0 else None


def readiness(window_s: float) -> dict[str, Any]:
    cpus = _cpu_list(_read(f"{_CPU_DIR}/online")) or _cpu_list(_read(f"{_CPU_DIR}/possible"))
    freq: dict[str, dict[str, Any]] = {}
    for c in cpus:
        base = f"{_CPU_DIR}/cpu{c}/cpufreq"
        gov = _read(f"{base}/scaling_governor")
        freq[str(c)] = {
            "governor": gov.strip() if gov else None,
            "scaling_max_freq": _int_file(f"{base}/scaling_max_freq"),
            "cpuinfo_max_freq": _int_file(f"{base}/cpuinfo_max_freq"),
            "scaling_cur_freq": _int_file(f"{base}/scaling_cur_freq"),
        }
    zones = []
    try:
        names = sorted(n for n in os.listdir("/sys/class/thermal") if n.startswith("thermal_zone"))
    except OSError:
        names = []
    for n in names:
        t = _int_file(f"/sys/class/thermal/{n}/temp")
        if t is not None:
            zones.append([(_read(f"/sys/class/thermal/{n}/type") or n).strip(), t / 1000.0])
    stat_before, procs_before = _stat_cpu_line(), _process_ticks()
    time.sleep(window_s)
    stat_after, procs_after = _stat_cpu_line(), _process_ticks()
    ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    me = os.getpid()
    busy: list[tuple[float, str, int]] = []
    for pid, (comm, t1) in procs_after.items():
        t0 = procs_before.get(pid, (comm, t1))[1]
        share = (t1 - t0) / ticks / window_s
        if pid != me and share >= _BUSY_PROCESS:
            busy.append((round(share, 3), comm, pid))
    busy.sort(reverse=True)
    isolated = _read(f"{_CPU_DIR}/isolated")
    return {
        "cpus": cpus,
        "cpufreq": freq,
        "throttled": _throttled(),
        "thermal_zones": zones,
        "load_average": _loadavg(),
        "cpu_count": os.cpu_count(),
        "window_s": window_s,
        "stat_before": stat_before,
        "stat_after": stat_after,
        "busy_processes": [[comm, pid, share] for share, comm, pid in busy[:10]],
        "isolated": isolated.strip() if isolated is not None else None,
    }


# -- measuring: the same protocol as nasprof.profiler.ort_runner ------------------------------------------
def median_ci(values: list[float], confidence: float = 0.95) -> tuple[float, float]:
    """Distribution-free CI of the median from order statistics (``nasprof.profiler.stats.median_ci``)."""
    x = sorted(values)
    n = len(x)
    if n == 0:
        raise ValueError("no samples")
    log_pmf = [math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) - n * math.log(2.0)
               for i in range(n + 1)]
    cdf = []
    acc = 0.0
    for lp in log_pmf:
        acc += math.exp(lp)
        cdf.append(acc)
    best = -1
    for j in range(n // 2):
        if cdf[n - j - 1] - cdf[j] < confidence:
            break
        best = j
    if best < 0:
        return x[0], x[-1]
    return x[best], x[n - 1 - best]


def _median(values: list[float]) -> float:
    x = sorted(values)
    n = len(x)
    return x[n // 2] if n % 2 else (x[n // 2 - 1] + x[n // 2]) / 2.0


def relative_ci(samples: list[float]) -> float:
    lo, hi = median_ci(samples, 0.95)
    med = _median(samples)
    return max(med - lo, hi - med) / med if med > 0 else float("inf")


def random_inputs(np: Any, inputs: list[dict[str, Any]], seed: int, int_range: list[int]) -> dict[str, Any]:
    """The feeds of ``nasprof.profiler.onnx_model.random_inputs``: the same generator, the same draws."""
    low, high = int(int_range[0]), int(int_range[1])
    rng = np.random.default_rng(seed)
    feeds = {}
    for spec in inputs:
        name, dtype, shape = spec["name"], spec["dtype"], tuple(int(d) for d in spec["shape"])
        dt = np.dtype(dtype) if dtype != "str" else None
        if dt is None:
            feeds[name] = rng.integers(low, high, size=shape).astype(str).astype(object)
        elif dt in (np.float32, np.float64):
            feeds[name] = rng.standard_normal(shape, dtype=dt)
        elif dt.kind == "f":
            feeds[name] = rng.standard_normal(shape, dtype=np.float32).astype(dt)
        elif dt.kind == "b":
            feeds[name] = rng.integers(0, 2, size=shape).astype(bool)
        else:
            feeds[name] = rng.integers(low, high, size=shape, dtype=dt)
    return feeds


def session_options(ort: Any, req: dict[str, Any], profile_prefix: str | None = None) -> Any:
    levels = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }
    so = ort.SessionOptions()
    so.graph_optimization_level = levels[req["opt_level"]]
    so.intra_op_num_threads = int(req["threads"])
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.log_severity_level = 3
    so.add_session_config_entry("session.intra_op.allow_spinning", "1" if req["allow_spinning"] else "0")
    if profile_prefix is not None:
        so.enable_profiling = True
        so.profile_file_prefix = profile_prefix
    return so


def create_session(ort: Any, model: str, so: Any, providers: list[str]) -> Any:
    try:
        return ort.InferenceSession(model, so, providers=providers)
    except Exception as exc:
        first = " ".join(str(exc).split())[:400]
        raise RunnerError("model", f"onnxruntime cannot load the model: {first}") from None


class _Runner:
    """One session's timed call, inputs bound once (``nasprof.profiler.ort_runner._Runner``)."""

    def __init__(self, np: Any, session: Any, feeds: dict[str, Any]) -> None:
        self.session = session
        self.feeds = feeds
        self.binding = None
        if all(a.dtype != object for a in feeds.values()):
            self.binding = session.io_binding()
            for name, arr in feeds.items():
                self.binding.bind_cpu_input(name, np.ascontiguousarray(arr))
            for out in session.get_outputs():
                self.binding.bind_output(out.name)
        self.timed_call = "run_with_iobinding" if self.binding is not None else "run"

    def __call__(self) -> float:
        try:
            if self.binding is not None:
                t0 = time.perf_counter_ns()
                self.session.run_with_iobinding(self.binding)
                t1 = time.perf_counter_ns()
            else:
                t0 = time.perf_counter_ns()
                self.session.run(None, self.feeds)
                t1 = time.perf_counter_ns()
        except Exception as exc:
            first = " ".join(str(exc).split())[:400]
            raise RunnerError("model_run", f"onnxruntime failed to run the model: {first}") from None
        return (t1 - t0) / 1e6


class HostGone(Exception):
    """Nobody will read the result: the SSH connection dropped (or the client of the server left)."""


def _peer_gone(fd: int) -> bool:
    """True when nobody reads ``fd`` any more: a pipe or socket whose other end closed polls as an error or
    a hang-up. A terminal or a file never does."""
    try:
        poller = select.poll()
        poller.register(fd, select.POLLOUT)
        return any(ev & (select.POLLERR | select.POLLHUP) for _, ev in poller.poll(0))
    except (OSError, ValueError, AttributeError):
        return False


def time_sessions(ort: Any, np: Any, model: str, feeds: dict[str, Any], req: dict[str, Any],
                  providers: list[str], reader_fd: int) -> dict[str, Any]:
    """``nasprof.profiler.ort_runner.time_sessions``, step for step."""
    sessions, runs, warmup = int(req["sessions"]), int(req["runs"]), int(req["warmup"])
    target = req.get("target_rel_ci")
    cap = int(req["max_timed_runs"])  # nasprof.profiler.spec.max_timed_runs, computed by the host
    samples: list[float] = []
    warmups: list[float] = []
    sid: list[int] = []
    s = 0
    stopped_by = "runs"
    timed_call = "run_with_iobinding"
    gc_was_enabled = gc.isenabled()
    while True:
        if s >= sessions:
            if target is None:
                break
            if relative_ci(samples) <= target:
                stopped_by = "target"
                break
            if len(samples) >= cap:
                stopped_by = "max_runs"
                break
        if _peer_gone(reader_fd):
            raise HostGone()  # the connection dropped: stop at a session boundary
        n = min(runs, cap - len(samples)) if s >= sessions else runs
        runner = _Runner(np, create_session(ort, model, session_options(ort, req), providers), feeds)
        timed_call = runner.timed_call
        gc.disable()
        try:
            for _ in range(warmup):
                warmups.append(runner())
            for _ in range(n):
                samples.append(runner())
                sid.append(s)
        finally:
            if gc_was_enabled:
                gc.enable()
        del runner
        s += 1
    return {"samples_ms": samples, "warmup_ms": warmups, "session_index": sid, "sessions": s,
            "rel_ci": relative_ci(samples), "stopped_by": stopped_by, "timed_call": timed_call}


def profile_pass(ort: Any, np: Any, model: str, feeds: dict[str, Any], req: dict[str, Any],
                 providers: list[str]) -> dict[str, Any]:
    """A separate profiled session (``spec.warmup`` + ``per_node_runs`` runs) at the timed runs' level; its
    profile events (model runs and kernels of the counted runs only), the file deleted afterwards."""
    import shutil
    import tempfile

    runs = int(req["per_node_runs"])
    tmp = tempfile.mkdtemp(prefix="nasprof-prof-")
    try:
        so = session_options(ort, req, profile_prefix=os.path.join(tmp, "ort"))
        session = create_session(ort, model, so, providers)
        runner = _Runner(np, session, feeds)
        for _ in range(int(req["warmup"]) + runs):
            runner()
        path = session.end_profiling()
        with open(path) as f:
            events = json.load(f)
        del runner, session
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    windows = sorted((e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"),
                     key=lambda e: int(e["ts"]))[-runs:]
    first = int(windows[0]["ts"]) if windows else 0
    kept = list(windows) + [
        e for e in events
        if e.get("cat") == "Node" and str(e.get("name", "")).endswith("_kernel_time")
        and int(e["ts"]) >= first
    ]
    return {"events": kept, "runs": runs, "opt_level": req["opt_level"]}


#: Models whose content was checked by this process: path -> (mtime, size, sha256). A measuring server
#: hashes a cached model once, not on every measurement of it.
_VERIFIED: dict[str, tuple[int, int, str]] = {}


def _verified_sha256(path: str) -> str:
    st = os.stat(path)
    known = _VERIFIED.get(path)
    if known is not None and known[:2] == (st.st_mtime_ns, st.st_size):
        return known[2]
    sha = _file_sha256(path)
    _VERIFIED[path] = (st.st_mtime_ns, st.st_size, sha)
    return sha


def measure(model: str, sha256: str, req: dict[str, Any], reader_fd: int) -> dict[str, Any]:
    ort, np = _import_runtime()
    if not os.path.isfile(model):
        raise RunnerError("cache", f"{model} is not in the cache")
    if _verified_sha256(model) != sha256:
        _VERIFIED.pop(model, None)
        try:  # noqa: SIM105 - contextlib is not imported on the quick path
            os.remove(model)  # a corrupted cache file: the host sends it again
        except OSError:
            pass
        raise RunnerError("cache", f"{model} does not match its sha256 (a truncated upload?); removed")
    providers = ["CPUExecutionProvider"]
    if providers[0] not in ort.get_available_providers():
        raise RunnerError("provider", f"this onnxruntime {ort.__version__} has no CPUExecutionProvider")
    if req["opt_level"] not in _OPT_LEVELS:
        raise RunnerError("request", f"unknown opt_level {req['opt_level']!r}")
    feeds = random_inputs(np, req["inputs"], int(req["seed"]), req["int_range"])
    started = time.time()
    load = _loadavg()
    stat_before = _stat_cpu_line()
    t0 = time.perf_counter()
    timed = time_sessions(ort, np, model, feeds, req, providers, reader_fd)
    timed_s = time.perf_counter() - t0
    stat_after = _stat_cpu_line()
    profile = profile_pass(ort, np, model, feeds, req, providers) if req.get("per_node") else None
    import platform

    try:
        import resource

        peak_rss_kib = int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    except (ImportError, OSError):
        peak_rss_kib = None
    return {
        **timed,
        "profile": profile,
        "onnxruntime_version": ort.__version__,
        "numpy_version": np.__version__,
        "python_version": platform.python_version(),
        "affinity": _affinity(),
        "load_average": load,
        "stat_before": stat_before,
        "stat_after": stat_after,
        "started_unix": started,
        "timed_s": timed_s,
        "peak_rss_kib": peak_rss_kib,
    }


# -- the measuring server: onnxruntime imported once per board, not once per measurement --------------
#
# Importing numpy and onnxruntime takes 0.1 s on a desktop and several times that on a small board: paid on
# every table entry it would dominate a build of small layers. So ``measure --server-idle S`` hands its
# request to a server process of the same Python, pinned to the same CPUs (it inherits the client's
# affinity, set by taskset), listening on an abstract unix socket named after the user, the runner, the
# Python and the CPUs; the client starts it when none listens, and it exits after ``S`` idle seconds (or
# ``stop``). It serves one request at a time and only its own user (SO_PEERCRED). Every measurement still
# creates fresh sessions, as the local cpu backend does in its one process; the client itself imports only
# the standard library.
_SERVER_PREFIX = "nasprof-ssh"


def _server_scope() -> str:
    """Servers are named after the cache they run from: ``stop`` ends those of this cache only."""
    import zlib

    here = os.path.dirname(os.path.abspath(__file__))
    return f"{_SERVER_PREFIX}-{os.getuid()}-{zlib.crc32(here.encode()):08x}-"


def _server_name(affinity: list[int]) -> str:
    """Named after this runner (its file name carries its sha256), the Python running it and its CPUs."""
    import zlib

    key = f"{RUNNER_VERSION}|{os.path.basename(__file__)}|{sys.executable}|{affinity}"
    return _server_scope() + f"{zlib.crc32(key.encode()):08x}{zlib.adler32(key.encode()):08x}"


def _connect(name: str) -> Any:
    import socket

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect("\0" + name)
    except OSError:
        sock.close()
        return None
    return sock


def _answer(request: dict[str, Any], reader_fd: int) -> dict[str, Any]:
    """The JSON document of one measurement request (errors included)."""
    t0 = time.perf_counter()
    timeout = float(request.get("timeout") or 0)
    if timeout > 0:
        signal.alarm(int(math.ceil(timeout)))  # SIGALRM's default action ends the process
    try:
        doc = measure(request["model"], request["sha256"], request["request"], reader_fd)
        doc["ok"] = True
        doc["answer_s"] = time.perf_counter() - t0
    except RunnerError as exc:
        doc = {"ok": False, "error": {"kind": exc.kind, "message": str(exc)}}
    finally:
        signal.alarm(0)
    doc["runner_version"] = RUNNER_VERSION
    return doc


def serve(name: str, idle_s: float) -> int:
    """Answer measurement requests on the abstract socket ``name`` until ``idle_s`` pass without one."""
    import socket
    import struct

    try:
        _import_runtime()
    except RunnerError:
        return 4  # the client then measures in its own process, and explains the error
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind("\0" + name)
    except OSError:
        return 0  # another server took the name first: the client uses that one
    sock.listen(8)
    sock.settimeout(idle_s)
    uid = os.getuid()
    while True:
        try:
            conn, _ = sock.accept()
        except socket.timeout:  # noqa: UP041 - Python 3.8/3.9: not yet TimeoutError
            break
        with conn:
            creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
            if struct.unpack("3i", creds)[1] != uid:
                continue
            conn.settimeout(30)
            data = b""
            try:
                while not data.endswith(b"\n"):
                    chunk = conn.recv(1 << 16)
                    if not chunk:
                        break
                    data += chunk
                request = json.loads(data.decode())
            except (OSError, ValueError):
                continue
            if request.get("stop"):
                try:  # noqa: SIM105 - contextlib is not imported on the quick path
                    conn.sendall(b"{}\n")
                except OSError:
                    pass
                break
            conn.settimeout(None)
            try:
                doc = _answer(request, conn.fileno())
            except HostGone:
                continue
            except Exception as exc:  # a bug or a malformed request must not end the server for the next
                doc = {"ok": False, "error": {"kind": "crash", "message": f"{type(exc).__name__}: {exc}"},
                       "runner_version": RUNNER_VERSION}
            try:  # noqa: SIM105 - contextlib is not imported on the quick path
                conn.sendall(json.dumps(doc).encode() + b"\n")
            except OSError:
                pass
    sock.close()
    return 0


def via_server(request: dict[str, Any], idle_s: float, out_fd: int) -> dict[str, Any]:
    """Hand ``request`` to the server (started when none listens) and relay its answer; measure in this
    process when no server can be started (no onnxruntime: the error is then this process's own)."""
    name = _server_name(_affinity())
    sock = _connect(name)
    if sock is None:
        import subprocess

        proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "serve", "--name", name,
                                 "--idle", f"{idle_s:g}"], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 60
        while sock is None and proc.poll() in (None, 0) and time.monotonic() < deadline:
            time.sleep(0.01)
            sock = _connect(name)
    if sock is None:
        raise _NoServer()
    with sock:
        sock.sendall(json.dumps(request).encode() + b"\n")
        poller = select.poll()
        poller.register(sock.fileno(), select.POLLIN)
        data = b""
        while True:
            if _peer_gone(out_fd):
                raise HostGone()  # closing the socket tells the server to stop at a session boundary
            if not poller.poll(500):
                continue
            chunk = sock.recv(1 << 20)
            if not chunk:
                break
            data += chunk
    try:
        doc = json.loads(data.decode())
    except ValueError:
        raise RunnerError("crash", "the measuring server ended without an answer (onnxruntime crashed on "
                          "this model, or it ran past --timeout)") from None
    return dict(doc)


def stop_servers() -> int:
    """Stop this user's measuring servers of this cache (``/proc/net/unix`` lists abstract sockets as
    ``@name``)."""
    prefix = "@" + _server_scope()
    names = set()
    for line in (_read("/proc/net/unix") or "").splitlines():
        word = line.split()[-1] if line.split() else ""
        if word.startswith(prefix):
            names.add(word[1:])
    stopped = 0
    for name in sorted(names):
        sock = _connect(name)
        if sock is None:
            continue
        with sock:
            sock.settimeout(5)
            try:
                sock.sendall(b'{"stop": true}\n')
                sock.recv(16)
                stopped += 1
            except OSError:
                pass
    return stopped


class _NoServer(Exception):
    """No measuring server could be started (no onnxruntime for it): measure in this process."""


def store(path: str, size: int, read: Any) -> bool:
    """Store the next ``size`` bytes of ``read`` (``read(n)``: up to ``n`` bytes, ``b""`` at the end) as
    ``path`` unless it is there already (then they are read and dropped); a temporary name first, so a
    truncated transfer never appears under the final name. Exactly ``size`` bytes are read whatever happens
    (in a session the next request follows them). True when it was written; ``RunnerError("store")`` when the
    board cannot store it (a full disk, no permission)."""

    def chunks() -> Any:
        left = size
        while left > 0:
            chunk = read(min(left, 1 << 20))
            if not chunk:
                return
            left -= len(chunk)
            yield chunk

    stream = chunks()
    if os.path.isfile(path):
        for _ in stream:
            pass
        return False
    tmp = f"{path}.part-{os.getpid()}"
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        written = 0
        with os.fdopen(fd, "wb") as f:
            for chunk in stream:
                f.write(chunk)
                written += len(chunk)
        if written != size:
            raise RunnerError("cache", f"{os.path.basename(path)} arrived truncated ({written} of {size} "
                              "bytes)")
        os.replace(tmp, path)
    except OSError as exc:
        for _ in stream:  # the rest of the model, so that a session stays in step with the host
            pass
        raise RunnerError("store", f"{exc.strerror or exc}: {exc.filename or path}") from None
    finally:
        if os.path.exists(tmp):
            try:  # noqa: SIM105 - contextlib is not imported on the quick path
                os.remove(tmp)
            except OSError:
                pass
    return True


# -- the session: many measurements over one process and one SSH channel ------------------------------------
class _Input:
    """Stdin read straight from its descriptor (nothing hides in a buffer that ``poll`` cannot see)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buf = bytearray()

    def _fill(self, wait_s: float | None) -> bool:
        """Read what is there (waiting up to ``wait_s``, or for ever); False at the end or after the wait."""
        if wait_s is not None:
            poller = select.poll()
            poller.register(self.fd, select.POLLIN)
            if not poller.poll(max(1, int(wait_s * 1000))):
                return False
        chunk = os.read(self.fd, 1 << 20)
        self.buf += chunk
        return bool(chunk)

    def line(self, wait_s: float) -> bytes | None:
        """The next line; None at the end of the stream or after ``wait_s`` seconds without a byte."""
        while b"\n" not in self.buf:
            if not self._fill(wait_s):
                return None
        end = self.buf.index(b"\n")
        out = bytes(self.buf[:end])
        del self.buf[: end + 1]
        return out

    def read(self, n: int) -> bytes:
        """Up to ``n`` bytes (``b""`` at the end of the stream)."""
        if not self.buf and not self._fill(None):
            return b""
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out


def _send(fd: int, doc: dict[str, Any]) -> bool:
    """Write ``doc`` as one line; False when nobody reads ``fd`` any more."""
    data = memoryview(json.dumps(doc).encode() + b"\n")
    try:
        while data:
            data = data[os.write(fd, data):]
    except OSError:
        return False
    return True


def session(idle_s: float, out_fd: int) -> int:
    """Answer the requests on stdin, one answer line each on ``out_fd`` (the protocol: see the top), until
    stdin ends or ``idle_s`` seconds pass without a request."""
    inp = _Input(0)
    if not _send(out_fd, {"session": True, "runner_version": RUNNER_VERSION, "pid": os.getpid(),
                          "affinity": _affinity()}):
        return 3
    while True:
        line = inp.line(idle_s)
        if line is None:
            return 0
        t0 = time.perf_counter()
        try:
            request = json.loads(line.decode())
            if not isinstance(request, dict) or request.get("op") != "measure":
                raise ValueError("not a measure request")
        except ValueError as exc:  # out of step with the host: end here (it opens a new session)
            _send(out_fd, {"ok": False, "error": {"kind": "request", "message": f"bad request: {exc}"},
                           "runner_version": RUNNER_VERSION})
            return 2
        stored = False
        in_step = request.get("store_size") is None  # False until the model's bytes are read
        request["model"] = os.path.expanduser(str(request.get("model", "")))  # ~/ as the shell would
        try:
            if not in_step:
                try:
                    stored = store(str(request["model"]), int(request["store_size"]), inp.read)
                except RunnerError:
                    in_step = True  # store reads the model to its end (or the stream's) before it raises
                    raise
                in_step = True
            doc = _answer(request, out_fd)
        except RunnerError as exc:
            doc = {"ok": False, "error": {"kind": exc.kind, "message": str(exc)}}
        except HostGone:
            return 3
        except Exception as exc:  # a bug or a malformed request: answered, and the session goes on
            doc = {"ok": False, "error": {"kind": "crash", "message": f"{type(exc).__name__}: {exc}"}}
        doc.update(stored=stored, client_s=time.perf_counter() - t0, pid=os.getpid(),
                   runner_version=RUNNER_VERSION)
        if not _send(out_fd, doc) or not in_step:
            return 3


# -- entry point ----------------------------------------------------------------------------------------
_USAGE = """usage: board_runner.py describe | readiness [--window S] | stop
       board_runner.py measure --model PATH --sha256 HEX --request JSON [--timeout S] [--server-idle S]
                               [--store-size N]
       board_runner.py session [--idle S]
       board_runner.py serve --name NAME [--idle S]"""


def _options(args: list[str], allowed: tuple[str, ...]) -> dict[str, str]:
    """``--key value`` pairs (argparse costs a measurable share of the start of a tiny Python)."""
    if len(args) % 2 or any(not a.startswith("--") or a[2:].replace("-", "_") not in allowed
                            for a in args[::2]):
        raise SystemExit(f"board_runner: bad arguments {args!r}\n{_USAGE}")
    return {k[2:].replace("-", "_"): v for k, v in zip(args[::2], args[1::2])}  # noqa: B905 - Python 3.8


def main(argv: list[str] | None = None) -> int:
    t0 = time.perf_counter()
    argv = sys.argv[1:] if argv is None else argv
    command = argv[0] if argv else ""
    if command in ("-h", "--help", ""):
        print(_USAGE)
        return 0 if command else 2
    if command == "serve":
        opts = _options(argv[1:], ("name", "idle"))
        return serve(opts["name"], float(opts.get("idle", 60)))
    allowed = {"describe": (), "stop": (), "readiness": ("window",), "session": ("idle",),
               "measure": ("model", "sha256", "request", "timeout", "server_idle", "store_size")}
    opts = _options(argv[1:], allowed.get(command, ()))
    if command not in allowed:
        raise SystemExit(f"board_runner: unknown command {command!r}\n{_USAGE}")
    # Whatever onnxruntime or numpy print goes to stderr: stdout carries the one JSON document.
    sys.stdout.flush()
    out_fd = os.dup(1)
    os.dup2(2, 1)
    if command == "session":
        return session(max(1.0, float(opts.get("idle", 60))), out_fd)
    try:
        if command == "describe":
            doc = describe()
        elif command == "readiness":
            doc = readiness(max(0.05, min(float(opts.get("window", 0.5)), 10.0)))
        elif command == "stop":
            doc = {"stopped": stop_servers()}
        else:
            stored = (store(opts["model"], int(opts["store_size"]), sys.stdin.buffer.read)
                      if "store_size" in opts else False)
            request = {"model": opts["model"], "sha256": opts["sha256"],
                       "request": json.loads(opts["request"]), "timeout": float(opts.get("timeout", 0))}
            idle = float(opts.get("server_idle", 0))
            try:
                if idle <= 0:
                    raise _NoServer()
                doc = via_server(request, idle, out_fd)
            except _NoServer:
                if sys.flags.no_site:  # started with -S for a quick start: measure in a Python with its site
                    os.dup2(out_fd, 1)
                    args = [a for i, a in enumerate(argv) if a != "--store-size" and (i == 0 or argv[i - 1]
                                                                                      != "--store-size")]
                    os.execv(sys.executable, [sys.executable, os.path.abspath(__file__), *args,
                                              "--server-idle", "0"])
                doc = _answer(request, out_fd)
            doc["stored"] = stored
            doc["client_s"] = time.perf_counter() - t0  # from the runner's first line to its answer
        doc.setdefault("ok", True)
    except HostGone:
        return 3
    except RunnerError as exc:
        doc = {"ok": False, "error": {"kind": exc.kind, "message": str(exc)}}
    doc["runner_version"] = RUNNER_VERSION
    with os.fdopen(out_fd, "w") as out:
        out.write(json.dumps(doc))
        out.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
