"""The ``ssh`` backend: onnxruntime on a Linux board (a Raspberry Pi, a Jetson, any Linux host) over SSH.

One measurement:

1. check the model on the host (``ModelError`` before the board is touched);
2. open the device's one multiplexed connection (``SshTransport``) and, once per backend, ship the runner
   (``board_runner.py``, content-addressed) into the board's cache and ask it what the board is;
3. ship the model into ``cache_dir/models/<sha256>.onnx`` unless it is there already (a presence check,
   then ``cat >`` over the same connection: nothing is sent twice);
4. run ``[taskset -c CPUS] PYTHON board_runner_<sha>.py measure ...``: nasprof's protocol (warm-ups, fresh
   sessions, ``run_with_iobinding`` timed alone, adaptive repetition, threads) on the board, which prints
   the RAW samples (and, with ``per_node``, onnxruntime's profile events) as one JSON document;
5. parse the profile with nasprof's own parser and return a ``Measurement`` with the same metadata keys as
   the local ``cpu`` backend (``run_metadata``), plus what the board is.

Nothing is left on the board but its cache (the runner and models, named by content): the profile lives in a
temporary directory the runner removes.

**Errors.** Whatever keeps the board from measuring — unreachable, a refused or unknown host key, a dropped
connection, no Python or no onnxruntime there, a cache directory that cannot be written (a full disk) —
raises ``DeviceUnavailableError`` with one line saying what to do: the table builder then gives the layer
back and a re-run resumes; nothing half-measured is stored. A model the board's onnxruntime refuses raises
``ModelError``; a runner that crashes on a model raises ``DeviceError`` (a failed entry in a table build).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shlex
import subprocess
import time
import weakref
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar

from nasprof.devices.base import Backend, MeasureSpec, registry
from nasprof.devices.ssh.board_info import BoardInfo, board_checks, clusters
from nasprof.devices.ssh.board_runner import RUNNER_VERSION
from nasprof.devices.ssh.settings import SPEC_OPTIONS, SshSettings
from nasprof.devices.ssh.transport import SshResult, SshTransport, remote_path, remote_words
from nasprof.errors import DeviceError, DeviceUnavailableError, InputError, ModelError
from nasprof.profiler.measurement import Measurement

__all__ = ["SshBackend", "runner_file"]

_RUNNER_SOURCE = Path(__file__).with_name("board_runner.py")
#: ``MeasureSpec.options`` of the measurement itself (as the cpu backend), besides ``SPEC_OPTIONS``.
MEASURE_OPTIONS = ("int_range", "allow_spinning")
_PROVIDER = "CPUExecutionProvider"
#: The runner's name in the board's cache: this prefix and the first 16 hex digits of its sha256.
RUNNER_MODULE_PREFIX = "board_runner_"
#: Models up to this size travel with the measuring call itself (read and dropped when the board has them
#: already); larger ones are looked for first, then uploaded only when missing.
INLINE_SHIP_BYTES = 4 << 20


@lru_cache(maxsize=1)
def runner_file() -> tuple[Path, str]:
    """The runner shipped to boards and its sha256 (its cached name on the board carries the first 16)."""
    return _RUNNER_SOURCE, hashlib.sha256(_RUNNER_SOURCE.read_bytes()).hexdigest()


class _CacheMiss(Exception):
    """The runner found its model missing or not matching its sha256: ship it again."""


class SshBackend(Backend):
    """onnxruntime's CPU execution provider on a Linux board, driven over the real OpenSSH client.

    Settings: see ``SshSettings`` (``host`` is required to measure). ``MeasureSpec.options`` understood:
    ``int_range``, ``allow_spinning`` (as the ``cpu`` backend), ``cores`` and ``run_timeout_s`` (override the
    device's own for one measurement).
    """

    name: ClassVar[str] = "ssh"

    def __init__(self, device: str | None = None, **config: Any) -> None:
        super().__init__(device, **config)
        SshSettings.from_config(self.config)  # a typo fails when the device is added, not later
        self._transport: SshTransport | None = None
        self._board: BoardInfo | None = None
        #: Board paths known to be in the cache (checked or uploaded by this backend).
        self._present: set[str] = set()
        #: Stops the board's measuring server: armed by the first measurement through it, run by ``close``
        #: or at exit (before the connection closes: finalizers run newest first).
        self._stop_server: weakref.finalize | None = None

    # -- settings and connection --------------------------------------------------------------------------
    @property
    def settings(self) -> SshSettings:
        return SshSettings.from_config(self.config)

    def _settings_for(self, spec: MeasureSpec) -> SshSettings:
        extra = {k: v for k, v in spec.options.items() if k in SPEC_OPTIONS}
        return SshSettings.from_config({**self.config, **extra})

    def _require_host(self) -> SshSettings:
        s = self.settings
        if not s.host:
            raise DeviceUnavailableError(
                f"device {self.device!r} has no host: `nasprof devices add {self.device} --backend ssh "
                "--set host=user@board --force` (any destination your own `ssh` reaches, or a Host of "
                "~/.ssh/config)"
            )
        return s

    @property
    def transport(self) -> SshTransport:
        """The device's OpenSSH client and its master connection (opened on first use)."""
        if self._transport is None:
            self._transport = SshTransport(self._require_host(), self.device)
        return self._transport

    def close(self) -> None:
        """Stop the board's measuring server and end the shared connection (both also end on their own:
        the server after ``server_idle_s`` idle, the connection at exit or after ``control_persist_s``)."""
        if self._stop_server is not None:
            self._stop_server()
        self._stop_server = None
        if self._transport is not None:
            self._transport.close()
        self._transport = None
        self._board = None
        self._present.clear()

    # -- the runner and the cache -------------------------------------------------------------------------
    def _runner_path(self, s: SshSettings) -> str:
        return f"{s.cache_dir}/{RUNNER_MODULE_PREFIX}{runner_file()[1][:16]}.py"

    def _runner_words(self, s: SshSettings, *, quick: bool = False) -> list[str]:
        """``PYTHON [-S] -c BOOT CACHE_DIR``: the runner imported as a module from the cache, so the board's
        Python compiles it once (``__pycache__`` there) instead of on every call. ``quick``: without
        ``site`` (a quicker start, for a measurement handed to the measuring server)."""
        module = f"{RUNNER_MODULE_PREFIX}{runner_file()[1][:16]}"
        boot = f"import sys; sys.path[0] = sys.argv.pop(1); from {module} import main; sys.exit(main())"
        return [self._python_word(s), *(["-S"] if quick else []), "-c", shlex.quote(boot),
                remote_path(s.cache_dir)]

    def _ensure_files(self, files: list[tuple[Path, str, str]], s: SshSettings) -> bool:
        """Make sure every ``(local, board directory, name)`` is in the board's cache: one presence check
        for those not known yet, then one upload per missing file. True when something was uploaded."""
        missing = [f for f in files if f"{f[1]}/{f[2]}" not in self._present]
        if not missing:
            return False
        check = "; ".join(f"[ -f {remote_path(f'{d}/{n}')} ] && echo {i}"
                          for i, (_, d, n) in enumerate(missing))
        r = self.transport.run(f"{check}; true", doing="checking the board's cache")
        there = {int(w) for w in r.stdout.decode(errors="replace").split() if w.isdigit()}
        uploaded = False
        for i, (local, directory, name) in enumerate(missing):
            if i not in there:
                size = local.stat().st_size
                up = self.transport.upload(local, directory, name, timeout_s=60.0 + size / 1e6)
                if not up.ok:
                    raise self._cannot_store(s, name, directory, up.tail())
                uploaded = True
            self._present.add(f"{directory}/{name}")
        return uploaded

    def _cannot_store(self, s: SshSettings, name: str, directory: str, why: str) -> DeviceUnavailableError:
        return DeviceUnavailableError(
            f"cannot store {name} in {directory} on {self.device} ({s.destination}): {why}; free space on "
            "the board (`df -h`) or set cache_dir= to a writable directory there"
        )

    def _python_word(self, s: SshSettings) -> str:
        return remote_path(s.python) if "/" in s.python else shlex.quote(s.python)

    def _call_runner(self, s: SshSettings, args: list[str], *, doing: str, timeout_s: float = 120.0,
                     pin: tuple[int, ...] | None = None, ship: tuple[Path, str, str] | None = None
                     ) -> dict[str, Any]:
        """Run the shipped runner with ``args``; its JSON document, or the error it stands for. ``ship``
        (local file, board directory, name: the ``--model`` of a measurement) travels on stdin and the
        runner stores it first unless it is there: one round trip per table entry. A measurement handed to
        the board's measuring server starts its Python with ``-S`` (no site: a quicker start; it imports
        only the standard library, and falls back to a full Python by itself)."""
        words = ["exec"]
        if pin:
            words.append(remote_words("taskset", "-c", ",".join(map(str, pin))))
        words += self._runner_words(s, quick=args[0] == "measure" and s.server_idle_s > 0)
        if ship is not None:
            args = [*args, "--store-size", str(ship[0].stat().st_size)]
        words += [remote_path(a) if a.startswith("~/") else shlex.quote(a) for a in args]
        r = self.transport.run(" ".join(words), timeout_s=timeout_s, doing=doing,
                               stdin_file=ship[0] if ship is not None else None)
        if not r.ok:
            raise self._runner_failure(r, s, doing)
        try:
            doc = json.loads(r.stdout.decode(errors="replace").strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise DeviceError(f"the runner on {self.device} printed no result while {doing} ({r.tail()})"
                              ) from None
        if not isinstance(doc, dict) or doc.get("runner_version") != RUNNER_VERSION:
            raise DeviceError(f"the runner on {self.device} answered in another format while {doing}; "
                              f"clear its cache (`ssh {s.host} rm -rf {s.cache_dir}`) and run again")
        if not doc.get("ok"):
            err = doc.get("error") or {}
            kind, message = str(err.get("kind", "")), " ".join(str(err.get("message", "")).split())
            if kind == "cache":
                raise _CacheMiss(message)
            if kind == "store" and ship is not None:
                raise self._cannot_store(s, ship[2], ship[1], message)
            if kind == "no_onnxruntime":
                raise DeviceUnavailableError(self._install_hint(s, message))
            if kind in ("model", "model_run"):
                raise ModelError(f"{message} (onnxruntime on {self.device}); check that the board's "
                                 "onnxruntime supports the model's opset and operators")
            if kind == "provider":
                raise DeviceUnavailableError(f"{message} on {self.device}; reinstall onnxruntime there: "
                                             f"`{s.python} -m pip install --force-reinstall onnxruntime`")
            raise DeviceError(f"the runner on {self.device} failed while {doing}: {message}")
        return doc

    def _runner_failure(self, r: SshResult, s: SshSettings, doing: str) -> Exception:
        text = r.tail()
        if r.exit_code == 127 and "taskset" in r.stderr:
            return DeviceUnavailableError(
                f"taskset is not installed on {self.device}; install it there (`sudo apt install "
                "util-linux`) or set cores=all"
            )
        if r.exit_code in (126, 127):
            return DeviceUnavailableError(
                f"{s.python} cannot be run on {self.device} ({text}); install Python 3 there "
                "(`sudo apt install python3 python3-venv`) or set python= to the board's Python that has "
                "onnxruntime"
            )
        if "SyntaxError" in r.stderr:
            return DeviceUnavailableError(
                f"{s.python} on {self.device} is too old for nasprof's runner ({text}); it needs Python 3.8 "
                "or newer: set python= to a newer one"
            )
        if r.exit_code in (137, -9):
            return DeviceError(f"the runner on {self.device} was killed while {doing} (SIGKILL: out of "
                               f"memory?): {text}")
        if r.exit_code == 142:
            return DeviceError(f"the runner on {self.device} ran out of time while {doing} "
                               f"(run_timeout_s={s.run_timeout_s:g}); raise run_timeout_s for slow models")
        return DeviceError(f"the runner on {self.device} failed with exit status {r.exit_code} while "
                           f"{doing}: {text}")

    def _install_hint(self, s: SshSettings, message: str) -> str:
        ssh = f"ssh {shlex.quote(s.host)}"
        return (f"onnxruntime is not importable by {s.python} on {self.device} ({message}); install it "
                f"there: `{ssh} {shlex.quote(s.python)} -m pip install onnxruntime numpy`, or, where the "
                f"system Python refuses pip (Raspberry Pi OS, Debian 12), into a virtualenv: `{ssh} 'python3 "
                "-m venv ~/nasprof-venv && ~/nasprof-venv/bin/pip install onnxruntime numpy'` and `nasprof "
                f"devices add {self.device} --backend ssh ... --set python=~/nasprof-venv/bin/python "
                "--force`")

    def _board_info(self, s: SshSettings) -> BoardInfo:
        """Connect, ship the runner (once) and ask the board what it is; cached for this backend."""
        if self._board is not None:
            return self._board
        self.transport.connect()
        runner, sha = runner_file()
        directory, name = self._runner_path(s).rsplit("/", 1)
        for attempt in range(2):
            self._ensure_files([(runner, directory, name)], s)
            doc = self._call_runner(s, ["describe"], doing="reading what the board is")
            if doc.get("runner_sha256") == sha:
                break
            # A runner file that is not what its name says (edited, truncated): replace it once.
            self.transport.run(remote_words("rm", "-f") + " " + remote_path(self._runner_path(s)),
                               doing="replacing the runner")
            self._present.discard(self._runner_path(s))
            if attempt:
                raise DeviceError(f"the runner on {self.device} does not match what was shipped; check "
                                  f"{s.cache_dir} on the board")
        self._board = BoardInfo.from_describe(doc)
        return self._board

    # -- contract -------------------------------------------------------------------------------------------
    def available(self) -> tuple[bool, str]:
        try:
            s = self._require_host()
            board = self._board_info(s)
        except (DeviceError, InputError) as exc:
            return False, str(exc)
        if board.onnxruntime_error:
            return False, self._install_hint(s, board.onnxruntime_error)
        return True, ""

    def check_spec(self, spec: MeasureSpec) -> None:
        from nasprof.profiler.ort_runner import allow_spinning

        unknown = sorted(set(spec.options) - set(MEASURE_OPTIONS) - SPEC_OPTIONS)
        if unknown:
            raise InputError(f"the ssh backend does not understand option(s) {', '.join(unknown)}; it reads "
                             f"{', '.join([*MEASURE_OPTIONS, *sorted(SPEC_OPTIONS)])}")
        allow_spinning(spec)
        rng = spec.options.get("int_range", (0, 10))
        if (not isinstance(rng, (list, tuple)) or len(rng) != 2
                or not all(isinstance(v, int) and not isinstance(v, bool) for v in rng) or rng[1] <= rng[0]):
            raise InputError(f"option int_range must be [LOW, HIGH] with integers LOW < HIGH, got {rng!r}")
        self._settings_for(spec)

    def describe(self) -> dict[str, Any]:
        """What the board is: CPU model and SIMD flags, cores and their clusters, onnxruntime there. Connects
        (once per backend)."""
        s = self._require_host()
        board = self._board_info(s)
        raw = board.raw
        return {
            "backend": self.name,
            "device": self.device,
            "host": s.host,
            "board_model": board.board_model,
            "cpu_model": board.cpu_model,
            "cpu_flags": board.simd_flags(),
            "machine": raw.get("machine", ""),
            "cpu": board.topology.to_dict(),
            "clusters": clusters(board.topology, board.core_names),
            "cores": s.cores,
            "pinned_cpus": list(board.topology.select(s.cores)),
            "runtime": "onnxruntime",
            "runtime_version": raw.get("onnxruntime_version") or "not installed",
            "providers": list(raw.get("providers") or []),
            "python_version": raw.get("python_version", ""),
            "platform": raw.get("platform", ""),
            "board_runner_version": RUNNER_VERSION,
        }

    def readiness(self) -> list[Any]:
        from nasprof.profiler.doctor import Check

        s = self._require_host()
        board = self._board_info(s)
        raw = self._call_runner(s, ["readiness", "--window", "0.5"], doing="reading the board's state")
        checks = board_checks(raw, self.device)
        err = board.onnxruntime_error
        version = board.raw.get("onnxruntime_version")
        checks.append(Check(f"{self.device}: onnxruntime", "warn" if err else "ok",
                            err or f"{version} ({s.python})", self._install_hint(s, err) if err else ""))
        cpus = board.topology.select(s.cores)
        checks.append(Check(f"{self.device}: pinned cores", "info", f"cores={s.cores}: CPUs "
                            f"{','.join(map(str, cpus))} of {len(board.topology.cpus)}"))
        return checks

    # -- measuring ------------------------------------------------------------------------------------------
    def measure(self, model: Path, spec: MeasureSpec) -> Measurement:
        from nasprof.profiler.onnx_model import DEFAULT_INT_RANGE, load_model

        self._require_host()
        self.check_spec(spec)
        s = self._settings_for(spec)
        info = load_model(model, spec.input_shapes)  # a bad model fails here, before the board is touched
        raw_range = spec.options.get("int_range", DEFAULT_INT_RANGE)
        int_range = (int(raw_range[0]), int(raw_range[1]))
        t_start = time.perf_counter()
        calls0 = self.transport.calls
        board = self._board_info(s)
        if board.onnxruntime_error:
            raise DeviceUnavailableError(self._install_hint(s, board.onnxruntime_error))
        cpus = board.topology.select(s.cores)
        if spec.threads > len(cpus):
            raise InputError(
                f"--threads {spec.threads} is more than the {len(cpus)} cores selected by cores={s.cores!r} "
                f"on {self.device} (CPUs {', '.join(map(str, cpus))}); use at most {len(cpus)} threads or "
                "cores=all"
            )
        pin = cpus if set(cpus) != set(board.affinity) else None
        if pin and not board.raw.get("taskset"):
            raise DeviceUnavailableError(f"taskset is not installed on {self.device}, so cores={s.cores} "
                                         "cannot be pinned; install it there (`sudo apt install util-linux`) "
                                         "or set cores=all")
        from nasprof.profiler.ort_runner import allow_spinning
        from nasprof.profiler.spec import max_timed_runs

        request = {
            "threads": spec.threads, "warmup": spec.warmup, "runs": spec.runs, "sessions": spec.sessions,
            "per_node": spec.per_node, "per_node_runs": spec.per_node_runs, "opt_level": spec.opt_level,
            "seed": spec.seed, "target_rel_ci": spec.target_rel_ci, "max_timed_runs": max_timed_runs(spec),
            "allow_spinning": allow_spinning(spec),
            "int_range": list(int_range),
            "inputs": [{"name": i.name, "dtype": i.dtype, "shape": list(i.shape)} for i in info.inputs],
        }
        models = f"{s.cache_dir}/models"
        name = f"{info.sha256}.onnx"
        args = ["measure", "--model", f"{models}/{name}", "--sha256", info.sha256,
                "--request", json.dumps(request, separators=(",", ":")), "--timeout", f"{s.run_timeout_s:g}",
                "--server-idle", f"{s.server_idle_s:g}"]
        if s.server_idle_s > 0 and self._stop_server is None:
            stop = " ".join([*self._runner_words(s), "stop"])
            self._stop_server = weakref.finalize(self, _run_quietly, self.transport.argv(stop))
        uploaded = False
        for attempt in range(2):
            ship = None
            if f"{models}/{name}" in self._present:
                pass
            elif info.size_bytes <= INLINE_SHIP_BYTES:
                ship = (info.path, models, name)  # stored, unless there, in the measuring call itself
            else:  # a large model: ask first, never send it twice
                uploaded = self._ensure_files([(info.path, models, name)], s) or uploaded
            try:
                doc = self._call_runner(s, args, doing=f"measuring {Path(model).name}", pin=pin,
                                        timeout_s=s.run_timeout_s + 15, ship=ship)
                self._present.add(f"{models}/{name}")
                uploaded = uploaded or bool(doc.get("stored"))
                break
            except _CacheMiss as exc:
                self._present.discard(f"{models}/{name}")
                if attempt:
                    raise DeviceError(f"{self.device} keeps losing {name} from its cache ({exc}); check "
                                      f"{s.cache_dir} on the board") from None
        return self._to_measurement(doc, info, spec, s, board, pin, int_range, uploaded,
                                    wall_s=time.perf_counter() - t_start, calls=self.transport.calls - calls0)

    def _to_measurement(self, doc: dict[str, Any], info: Any, spec: MeasureSpec, s: SshSettings,
                        board: BoardInfo, pin: tuple[int, ...] | None, int_range: tuple[int, int],
                        uploaded: bool, *, wall_s: float, calls: int) -> Measurement:
        from datetime import datetime, timezone

        from nasprof.devices.cpu import host_warnings
        from nasprof.profiler.doctor import STEAL_WARN, cpu_times, steal_share
        from nasprof.profiler.ort_result import run_metadata, to_measurement
        from nasprof.profiler.ort_runner import TimedRuns, allow_spinning

        timed = TimedRuns(
            samples_ms=tuple(float(v) for v in doc["samples_ms"]),
            warmup_ms=tuple(float(v) for v in doc["warmup_ms"]),
            session_index=tuple(int(v) for v in doc["session_index"]),
            sessions=int(doc["sessions"]),
            rel_ci=float(doc["rel_ci"]),
            stopped_by=str(doc["stopped_by"]),
            timed_call=str(doc["timed_call"]),
        )
        profiled = self._profiled(doc.get("profile"), info) if spec.per_node else None
        usable = len(pin) if pin else len(board.affinity)
        started = datetime.fromtimestamp(float(doc.get("started_unix") or time.time()), timezone.utc)
        steal = steal_share(cpu_times(str(doc.get("stat_before") or "")),
                            cpu_times(str(doc.get("stat_after") or "")))
        metadata: dict[str, Any] = {
            **self.describe(),
            "runtime_version": doc.get("onnxruntime_version"),
            "onnxruntime_version": doc.get("onnxruntime_version"),
            "numpy_version": doc.get("numpy_version"),
            "board_python": board.raw.get("python"),
            "hostname": board.raw.get("hostname"),
            "cpu_count": board.raw.get("cpu_count"),
            "usable_cores": usable,
            "load_average": doc.get("load_average"),
            "timestamp_utc": started.isoformat(timespec="seconds"),
            "execution_provider": _PROVIDER,
            "inter_op_threads": 1,
            "execution_mode": "sequential",
            "allow_spinning": allow_spinning(spec),
            **run_metadata(info, spec, timed, int_range),
            "affinity": doc.get("affinity"),
            "steal_share": steal,
            "peak_rss_kib": doc.get("peak_rss_kib"),
            "board_model_path": f"{s.cache_dir}/models/{info.sha256}.onnx",
            "board_runner_sha256": runner_file()[1],
            "model_uploaded": uploaded,
            "ssh_calls": calls,
            # Where the time of this call went: the board's timed loop (sessions, warm-ups, runs) within the
            # measuring server's answer, within the runner's life on the board, within the host's wall time.
            "board_timed_s": doc.get("timed_s"),
            "board_answer_s": doc.get("answer_s"),
            "board_runner_s": doc.get("client_s"),
            "host_wall_s": round(wall_s, 6),
        }
        warnings = host_warnings({"usable_cores": usable, "load_average": doc.get("load_average")},
                                 spec.threads)
        if pin and sorted(doc.get("affinity") or []) != sorted(pin):
            warnings.append(f"the runner ran on CPUs {doc.get('affinity')} instead of the pinned "
                            f"{list(pin)}: check taskset and cgroups on the board")
        if steal is not None and steal > STEAL_WARN:
            warnings.append(f"{steal:.1%} of the board's CPU time was stolen by a hypervisor during the "
                            "timed runs: expect noise")
        metadata["host_warnings"] = warnings
        return to_measurement(self.device, self.name, timed, metadata, profiled)

    def _profiled(self, profile: Any, info: Any) -> Any:
        """The board's profile events, parsed as every backend's are (blocks from the exported graph)."""
        from nasprof.profiler.ort_profile import ProfiledPass, parse_profile

        if not isinstance(profile, dict) or not profile.get("events"):
            raise DeviceError(f"the runner on {self.device} returned no profile for the per-node pass")
        original = None
        with contextlib.suppress(Exception):  # names alone still give most blocks
            import onnx

            original = onnx.load(str(info.path), load_external_data=False)
        runs = int(profile.get("runs") or 1)
        nodes, run_ms = parse_profile(profile["events"], runs=runs, original=original)
        return ProfiledPass(nodes=tuple(nodes), run_ms=tuple(run_ms), opt_level=str(profile.get("opt_level")),
                            runs=runs)


def _run_quietly(argv: list[str]) -> None:
    with contextlib.suppress(OSError, subprocess.TimeoutExpired):
        subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=15, check=False)


registry.register("ssh", SshBackend)
