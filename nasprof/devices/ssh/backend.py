"""The ``ssh`` backend: onnxruntime on a Linux board (a Raspberry Pi, a Jetson, any Linux host) over SSH.

One measurement:

1. check the model on the host (``ModelError`` before the board is touched);
2. open the device's one multiplexed connection (``SshTransport``) and, once per backend, ship the runner
   (``board_runner.py``, content-addressed) into the board's cache and ask it what the board is;
3. open the backend's session once (``session.BoardSession``: ``[taskset -c CPUS] PYTHON
   board_runner_<sha>.py session``, one ``ssh`` process and one board process that imports onnxruntime
   once, kept for the next measurements) and send it the request: nasprof's protocol (warm-ups, fresh
   onnxruntime sessions, ``run_with_iobinding`` timed alone, adaptive repetition, threads), with the model's
   bytes when the board may not have it (stored in ``cache_dir/models/<sha256>.onnx`` unless it is there:
   nothing is stored twice; a model over ``INLINE_SHIP_BYTES`` is asked for first and sent only when
   missing). The board answers the RAW samples (and, with ``per_node``, onnxruntime's profile events) as
   one JSON line;
4. where sessions are off (``server_idle_s=0``, ``use_session``) or cannot start on the board, the same
   request is one ``ssh`` call of its own (``board_runner.py measure ...``), handed to the board's
   measuring server unless ``server_idle_s=0``;
5. parse the profile with nasprof's own parser and return a ``Measurement`` with the same metadata keys as
   the local ``cpu`` backend (``run_metadata``), plus what the board is (``result``).

Nothing is left on the board but its cache (the runner and models, named by content): the profile lives in a
temporary directory the runner removes.

**Errors.** Whatever keeps the board from measuring — unreachable, a refused or unknown host key, a dropped
connection, no Python or no onnxruntime there, a cache directory that cannot be written (a full disk) —
raises ``DeviceUnavailableError`` with one line saying what to do: the table builder then gives the layer
back and a re-run resumes; nothing half-measured is stored. So does a board that does not answer within
``run_timeout_s + ANSWER_MARGIN_S`` (a hung board never hangs nasprof); the next measurement opens a new
session. A model the board's onnxruntime refuses raises ``ModelError``; a runner that crashes on a model or
runs past ``run_timeout_s`` raises ``DeviceError`` (a failed entry in a table build).
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
from nasprof.devices.ssh.answers import (
    CacheMiss,
    cannot_store,
    check_answer,
    connection_lost,
    install_hint,
    runner_failure,
    session_failure,
)
from nasprof.devices.ssh.board_info import BoardInfo, board_checks, clusters
from nasprof.devices.ssh.board_runner import RUNNER_VERSION
from nasprof.devices.ssh.result import board_measurement
from nasprof.devices.ssh.session import BoardSession, SessionEnded, SessionTimeout
from nasprof.devices.ssh.settings import SPEC_OPTIONS, SshSettings
from nasprof.devices.ssh.transport import SshTransport, classify_ssh_failure, remote_path, remote_words
from nasprof.errors import DeviceError, DeviceUnavailableError, InputError
from nasprof.profiler.measurement import Measurement

__all__ = ["SshBackend", "runner_file"]

_RUNNER_SOURCE = Path(__file__).with_name("board_runner.py")
#: ``MeasureSpec.options`` of the measurement itself (as the cpu backend), besides ``SPEC_OPTIONS``.
MEASURE_OPTIONS = ("int_range", "allow_spinning")
#: The runner's name in the board's cache: this prefix and the first 16 hex digits of its sha256.
RUNNER_MODULE_PREFIX = "board_runner_"
#: Models up to this size travel with the measuring request itself (read and dropped when the board has them
#: already); larger ones are asked for first, then sent only when missing.
INLINE_SHIP_BYTES = 4 << 20
#: Seconds an answer may take beyond ``run_timeout_s`` (when the board's own alarm ends a measurement)
#: before the host gives up on the board.
ANSWER_MARGIN_S = 15.0


@lru_cache(maxsize=1)
def runner_file() -> tuple[Path, str]:
    """The runner shipped to boards and its sha256 (its cached name on the board carries the first 16)."""
    return _RUNNER_SOURCE, hashlib.sha256(_RUNNER_SOURCE.read_bytes()).hexdigest()


class SshBackend(Backend):
    """onnxruntime's CPU execution provider on a Linux board, driven over the real OpenSSH client.

    Settings: see ``SshSettings`` (``host`` is required to measure). ``MeasureSpec.options`` understood:
    ``int_range``, ``allow_spinning`` (as the ``cpu`` backend), ``cores`` and ``run_timeout_s`` (override the
    device's own for one measurement).

    Measurements go through one session on the board (``session``), opened at the first and kept until
    ``close`` or exit; ``use_session = False`` makes every measurement an ``ssh`` call of its own, as does
    ``server_idle_s=0`` (the benchmark compares the two).
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
        #: Measure through a session on the board (False: one ``ssh`` call per measurement).
        self.use_session = True
        self._session: BoardSession | None = None
        #: Why no session could start on this board (then every measurement is an ``ssh`` call of its own).
        self._session_refused: str | None = None

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

    @property
    def session(self) -> BoardSession | None:
        """The open session on the board, if any (tests and the benchmark read its counters)."""
        return self._session

    def close(self) -> None:
        """End the session and the board's measuring server, then the shared connection (all also end on
        their own: the session and the server after ``server_idle_s`` idle, the connection at exit or after
        ``control_persist_s``)."""
        if self._session is not None:
            self._session.close()
        self._session = None
        self._session_refused = None
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
                    raise cannot_store(s, self.device, name, directory, up.tail())
                uploaded = True
            self._present.add(f"{directory}/{name}")
        return uploaded

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
            raise runner_failure(r, s, self.device, doing)
        try:
            doc = json.loads(r.stdout.decode(errors="replace").strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise DeviceError(f"the runner on {self.device} printed no result while {doing} ({r.tail()})"
                              ) from None
        return check_answer(doc, s, self.device, doing, ship)

    # -- the session ----------------------------------------------------------------------------------------
    def _session_for(self, s: SshSettings, pin: tuple[int, ...] | None, doing: str) -> BoardSession | None:
        """The session pinned to ``pin``, opened when there is none (or the open one is pinned elsewhere,
        ended, or about to end on the board after ``server_idle_s`` idle); None for an ``ssh`` call per
        measurement (sessions off, or none could start on this board)."""
        if not self.use_session or s.server_idle_s <= 0 or self._session_refused is not None:
            return None
        session = self._session
        if session is not None and (session.key != pin or not session.alive()
                                    or session.idle_s() > s.server_idle_s - min(5.0, s.server_idle_s / 2)):
            session.close()
            session = self._session = None
        if session is not None:
            return session
        words = [remote_words("taskset", "-c", ",".join(map(str, pin)))] if pin else []
        words += [*self._runner_words(s), "session", "--idle", f"{s.server_idle_s:g}"]
        # No `exec`: the shell stays the runner's parent and reports a runner killed by a signal as 128+N
        # (SIGALRM past run_timeout_s: 142), where OpenSSH would report 255, as for its own failures.
        command = " ".join(words) + "; exit $?"
        timeout_s = s.connect_timeout_s + 30
        try:
            session = BoardSession.start(self.transport, command, key=pin, timeout_s=timeout_s)
        except SessionTimeout:
            raise self.transport.timed_out(f"starting the runner for {doing}", timeout_s) from None
        except SessionEnded as exc:
            if connection_lost(exc.result):
                raise DeviceUnavailableError(classify_ssh_failure(exc.result.stderr, s, self.device, doing)
                                             ) from None
            self._session_refused = exc.result.tail()  # the ssh call per measurement explains any error
            return None
        if session.hello.get("runner_version") != RUNNER_VERSION:
            session.close()
            self._session_refused = f"a session of runner version {session.hello.get('runner_version')}"
            return None
        self._session = session
        return session

    def _session_call(self, session: BoardSession, s: SshSettings, header: dict[str, Any],
                      ship: tuple[Path, str, str] | None, *, doing: str, timeout_s: float) -> dict[str, Any]:
        """One request over the session (``ship``: the model's bytes follow it); its document, or the error
        it stands for. A session that ended or timed out is dropped: the next measurement opens another."""
        try:
            doc = session.request(header, body=ship[0] if ship is not None else None, timeout_s=timeout_s)
        except SessionTimeout:
            self._session = None
            raise self.transport.timed_out(doing, timeout_s) from None
        except SessionEnded as exc:
            self._session = None
            raise session_failure(exc.result, s, self.device, doing) from None
        if not session.alive():
            self._session = None
        return check_answer(doc, s, self.device, doing, ship)

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
            return False, install_hint(s, self.device, board.onnxruntime_error)
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
        hint = install_hint(s, self.device, err) if err else ""
        checks.append(Check(f"{self.device}: onnxruntime", "warn" if err else "ok",
                            err or f"{version} ({s.python})", hint))
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
            raise DeviceUnavailableError(install_hint(s, self.device, board.onnxruntime_error))
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
        target = f"{models}/{name}"
        doing = f"measuring {Path(model).name}"
        timeout_s = s.run_timeout_s + ANSWER_MARGIN_S
        uploaded = False
        for attempt in range(2):
            session = self._session_for(s, pin, doing)
            ship = None
            if target in self._present:
                pass
            elif info.size_bytes <= INLINE_SHIP_BYTES or (session is not None and attempt):
                ship = (info.path, models, name)  # stored, unless there, by the measuring request itself
            elif session is None:  # a large model: ask first, never send it twice
                uploaded = self._ensure_files([(info.path, models, name)], s) or uploaded
            # else: a large model is asked for without its bytes first; a cache miss sends them next
            try:
                if session is not None:
                    header = {"op": "measure", "model": target, "sha256": info.sha256, "request": request,
                              "timeout": s.run_timeout_s}
                    doc = self._session_call(session, s, header, ship, doing=doing,
                                             timeout_s=timeout_s + (info.size_bytes / 1e6 if ship else 0.0))
                else:
                    doc = self._per_call_measure(s, target, info.sha256, request, pin, ship, doing)
                self._present.add(target)
                uploaded = uploaded or bool(doc.get("stored"))
                break
            except CacheMiss as exc:
                self._present.discard(target)
                if attempt:
                    raise DeviceError(f"{self.device} keeps losing {name} from its cache ({exc}); check "
                                      f"{s.cache_dir} on the board") from None
        call = {
            "board_model_path": target,
            "board_runner_sha256": runner_file()[1],
            "model_uploaded": uploaded,
            "ssh_calls": self.transport.calls - calls0,  # ssh processes started: 0 over an open session
            "board_session": session is not None,
            "host_wall_s": round(time.perf_counter() - t_start, 6),
        }
        notes = []
        if session is None and self._session_refused is not None:
            notes.append(f"no session could start on {self.device} ({self._session_refused}): every "
                         "measurement is an ssh call of its own, which adds tens of ms to each")
        return board_measurement(doc, info, spec, board, pin, int_range, device=self.device,
                                 backend=self.name, described=self.describe(), call=call, notes=notes)

    def _per_call_measure(self, s: SshSettings, target: str, sha256: str, request: dict[str, Any],
                          pin: tuple[int, ...] | None, ship: tuple[Path, str, str] | None, doing: str
                          ) -> dict[str, Any]:
        """One measurement as an ``ssh`` call of its own, handed to the board's measuring server unless
        ``server_idle_s=0``."""
        args = ["measure", "--model", target, "--sha256", sha256,
                "--request", json.dumps(request, separators=(",", ":")), "--timeout", f"{s.run_timeout_s:g}",
                "--server-idle", f"{s.server_idle_s:g}"]
        if s.server_idle_s > 0 and self._stop_server is None:
            stop = " ".join([*self._runner_words(s), "stop"])
            self._stop_server = weakref.finalize(self, _run_quietly, self.transport.argv(stop))
        return self._call_runner(s, args, doing=doing, pin=pin, timeout_s=s.run_timeout_s + ANSWER_MARGIN_S,
                                 ship=ship)

def _run_quietly(argv: list[str]) -> None:
    with contextlib.suppress(OSError, subprocess.TimeoutExpired):
        subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=15, check=False)


registry.register("ssh", SshBackend)
