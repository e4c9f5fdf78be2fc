"""Is this host ready to measure? What pyperf's ``system show`` and androidx-benchmark check, with advice.

Each check reads Linux's own files (``/proc``, ``/sys``): no root, no subprocess. CPU use, steal time and
busy processes are sampled over a short window (0.5 s by default). A check that cannot be read here (no
cpufreq in a VM, no thermal zones in a container) says *unknown* and why, rather than guessing.

Steal time is the one that matters on shared VMs: it is CPU time the hypervisor gave to other guests while
this one wanted to run, and it is what makes timings on such hosts noisy. ``steal_share`` also brackets a
measurement (``nasprof measure`` records the share during the run and warns above ``STEAL_WARN``).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "Check", "CpuTimes", "cpu_times", "steal_share", "run_checks", "doctor_document", "STEAL_WARN",
    "DOCTOR_SCHEMA_VERSION",
]

#: History: 1 — first version.
DOCTOR_SCHEMA_VERSION = 1
#: Steal share of CPU time above which timings are noisy (a few percent, as cloud guides put it).
STEAL_WARN = 0.03
#: A process using this share of one core or more during the window counts as busy.
BUSY_PROCESS = 0.2
_CPU = Path("/sys/devices/system/cpu")


@dataclass(frozen=True)
class Check:
    """One readiness item: ``status`` is ok, warn, info or unknown; ``advice`` says what to do."""

    name: str
    status: str
    value: str
    advice: str = ""

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "status": self.status, "value": self.value, "advice": self.advice}


@dataclass(frozen=True)
class CpuTimes:
    """The aggregate ``cpu`` line of /proc/stat (clock ticks)."""

    busy: int
    idle: int
    steal: int

    @property
    def total(self) -> int:
        return self.busy + self.idle


def cpu_times(stat: str | None = None) -> CpuTimes | None:
    """Parse the ``cpu`` line of /proc/stat (``stat``: its text, for tests); None where it does not exist."""
    try:
        text = stat if stat is not None else Path("/proc/stat").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        parts = line.split()
        if parts and parts[0] == "cpu":
            v = [int(x) for x in parts[1:]] + [0] * 8
            user, nice, system, idle, iowait, irq, softirq, steal = v[:8]
            # guest time is already inside user/nice: not added again.
            busy = user + nice + system + irq + softirq + steal
            return CpuTimes(busy=busy, idle=idle + iowait, steal=steal)
    return None


def steal_share(before: CpuTimes | None, after: CpuTimes | None) -> float | None:
    """Share of CPU time stolen by the hypervisor between two readings; None when unknown."""
    if before is None or after is None:
        return None
    total = after.total - before.total
    return (after.steal - before.steal) / total if total > 0 else None


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _process_ticks() -> dict[int, tuple[str, int]]:
    """pid -> (command name, utime + stime) for every readable process."""
    out = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        stat = _read(entry / "stat")
        if not stat:
            continue
        # The command name is in parentheses and may contain spaces; fields follow the last ')'.
        name = stat[stat.find("(") + 1 : stat.rfind(")")]
        fields = stat[stat.rfind(")") + 2 :].split()
        try:
            out[int(entry.name)] = (name, int(fields[11]) + int(fields[12]))
        except (IndexError, ValueError):
            continue
    return out


def _governor_checks() -> list[Check]:
    governors = {_read(p) for p in _CPU.glob("cpu[0-9]*/cpufreq/scaling_governor")} - {None}
    if not governors:
        return [Check("cpu governor", "unknown",
                      "no cpufreq (a VM or container: the hypervisor sets the clock)",
                      "nothing to set here; expect the host's frequency scaling to add noise")]
    value = ", ".join(sorted(g for g in governors if g))
    out = [Check("cpu governor", "ok" if governors == {"performance"} else "warn", value,
                 "" if governors == {"performance"} else
                 "set the performance governor: sudo cpupower frequency-set -g performance")]
    limited = []
    for cpu in sorted(_CPU.glob("cpu[0-9]*/cpufreq")):
        cap, top = _read(cpu / "scaling_max_freq"), _read(cpu / "cpuinfo_max_freq")
        if cap and top and cap.isdigit() and top.isdigit() and int(cap) < int(top):
            limited.append(f"{cpu.parent.name} {int(cap) // 1000}/{int(top) // 1000} MHz")
    out.append(Check("frequency limits", "warn" if limited else "ok", "; ".join(limited) or "none",
                     "raise scaling_max_freq to cpuinfo_max_freq" if limited else ""))
    return out


def _turbo_check() -> Check:
    no_turbo = _read(_CPU / "intel_pstate" / "no_turbo")
    boost = _read(_CPU / "cpufreq" / "boost")
    if no_turbo is None and boost is None:
        return Check("turbo / boost", "unknown", "not exposed here", "")
    on = (no_turbo == "0") if no_turbo is not None else (boost == "1")
    return Check("turbo / boost", "warn" if on else "ok", "on" if on else "off",
                 "turbo makes the clock depend on temperature and load; disable it for stable figures"
                 if on else "")


def _isolation_check() -> Check:
    isolated = _read(_CPU / "isolated")
    if isolated is None:
        return Check("isolated cores", "unknown", "not exposed here")
    if isolated:
        return Check("isolated cores", "ok", isolated, "pin measurements there: taskset -c " + isolated)
    return Check("isolated cores", "info", "none",
                 "for the quietest figures, isolate cores (isolcpus= / nohz_full= on the kernel command "
                 "line)")


def _thermal_check() -> Check:
    temps = []
    for zone in sorted(Path("/sys/class/thermal").glob("thermal_zone*")):
        t = _read(zone / "temp")
        if t and t.lstrip("-").isdigit():
            temps.append((_read(zone / "type") or zone.name, int(t) / 1000))
    if not temps:
        return Check("thermal", "unknown", "no thermal zones exposed (a VM?)")
    hottest = max(temps, key=lambda x: x[1])
    hot = hottest[1] >= 80
    return Check("thermal", "warn" if hot else "ok", f"hottest {hottest[0]} {hottest[1]:.0f} °C",
                 "let the machine cool down: hot chips throttle" if hot else "")


def run_checks(window_s: float = 0.5) -> list[Check]:
    """Every readiness check of this host; CPU use, steal and busy processes over ``window_s`` seconds."""
    from nasprof.profiler.environment import _usable_cores

    cores = _usable_cores()
    before, procs_before = cpu_times(), _process_ticks()
    time.sleep(window_s)
    after, procs_after = cpu_times(), _process_ticks()
    checks = [*_governor_checks(), _turbo_check()]
    if before is not None and after is not None and after.total > before.total:
        total = after.total - before.total
        busy = (after.busy - before.busy) / total
        checks.append(Check("cpu busy", "warn" if busy > 0.25 else "ok",
                            f"{busy:.0%} of all CPUs during {window_s:g} s",
                            "other work is running: close it or measure elsewhere" if busy > 0.25 else ""))
        steal = steal_share(before, after) or 0.0
        stolen = steal > STEAL_WARN
        checks.append(Check("steal time", "warn" if stolen else "ok", f"{steal:.1%}",
                            "a shared VM: the hypervisor gives this guest's CPU time to others, so timings "
                            "are noisy; use a dedicated host, or repeat and quote spreads" if stolen else ""))
    else:
        checks.append(Check("steal time", "unknown", "/proc/stat not readable"))
    try:
        load = os.getloadavg()[0]
        checks.append(Check("load average", "warn" if load >= cores else "ok", f"{load:.2f} on {cores} cores",
                            "something else keeps the CPUs busy" if load >= cores else ""))
    except OSError:
        checks.append(Check("load average", "unknown", "not available"))
    ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    me = os.getpid()
    busy_procs = []
    for pid, (name, t1) in procs_after.items():
        t0 = procs_before.get(pid, (name, t1))[1]
        share = (t1 - t0) / ticks / window_s
        if pid != me and share >= BUSY_PROCESS:
            busy_procs.append((share, f"{name} (pid {pid}, {share:.0%} of a core)"))
    busy_procs.sort(reverse=True)
    checks.append(Check("busy processes", "warn" if busy_procs else "ok",
                        "; ".join(p for _, p in busy_procs[:5]) or "none",
                        "stop them while measuring" if busy_procs else ""))
    checks += [_isolation_check(), _thermal_check()]
    checks.append(Check("usable cores", "info", f"{cores} of {os.cpu_count()}", ""))
    return checks


def doctor_document(checks: list[Check], device: str | None = None, extra: dict[str, Any] | None = None
                    ) -> dict[str, Any]:
    from nasprof.profiler.environment import host_summary

    return {"schema_version": DOCTOR_SCHEMA_VERSION, "kind": "nasprof.doctor", "device": device,
            "host": host_summary(), "checks": [c.to_dict() for c in checks], **(extra or {}),
            "ready": not any(c.status == "warn" for c in checks)}
