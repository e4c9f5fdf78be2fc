"""What a Linux board is and whether it is ready: parsers of what the board runner reports.

The runner sends raw facts (``/proc/cpuinfo`` as text, each CPU's ``cpuinfo_max_freq``, governors, thermal
zones, ``vcgencmd get_throttled``); everything here is a pure function of them, so it is tested on text.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nasprof.devices.android.device_info import CpuTopology

__all__ = ["BoardInfo", "parse_cpuinfo", "arm_core_name", "clusters", "board_checks", "parse_throttled",
           "THROTTLED_BITS"]

#: ARM's ``CPU part`` numbers (implementer 0x41) of the cores found on Linux boards.
_ARM_PARTS = {
    0xD03: "Cortex-A53", 0xD04: "Cortex-A35", 0xD05: "Cortex-A55", 0xD07: "Cortex-A57",
    0xD08: "Cortex-A72", 0xD09: "Cortex-A73", 0xD0A: "Cortex-A75", 0xD0B: "Cortex-A76",
    0xD0C: "Neoverse-N1", 0xD0D: "Cortex-A77", 0xD40: "Neoverse-V1", 0xD41: "Cortex-A78",
    0xD42: "Cortex-A78AE", 0xD44: "Cortex-X1", 0xD46: "Cortex-A510", 0xD47: "Cortex-A710",
    0xD48: "Cortex-X2", 0xD49: "Neoverse-N2", 0xD4D: "Cortex-A715", 0xD4E: "Cortex-X3",
    0xD80: "Cortex-A520", 0xD81: "Cortex-A720", 0xD82: "Cortex-X4", 0xC07: "Cortex-A7",
    0xC09: "Cortex-A9", 0xC0F: "Cortex-A15",
}
#: Bits of ``vcgencmd get_throttled`` (Raspberry Pi firmware): now (0-3) and since boot (16-19).
THROTTLED_BITS = {
    0: "under-voltage", 1: "ARM frequency capped", 2: "throttled", 3: "soft temperature limit",
    16: "under-voltage has occurred", 17: "frequency capping has occurred", 18: "throttling has occurred",
    19: "soft temperature limit has occurred",
}


def arm_core_name(implementer: str, part: str) -> str | None:
    """``("0x41", "0xd0b")`` -> ``"Cortex-A76"``; None for other implementers or unknown parts."""
    try:
        if int(implementer, 16) != 0x41:
            return None
        return _ARM_PARTS.get(int(part, 16))
    except ValueError:
        return None


def parse_cpuinfo(text: str) -> dict[str, Any]:
    """``/proc/cpuinfo`` -> the CPU model (x86 ``model name``; ARM cores by ``CPU part``, ``4x Cortex-A76``),
    its flags (x86 ``flags``, ARM ``Features``), the board model (``Model``/``Hardware``) and each CPU's core
    name where known."""
    blocks: list[dict[str, str]] = [{}]
    for line in text.splitlines():
        if not line.strip():
            blocks.append({})
            continue
        key, sep, value = line.partition(":")
        if sep:
            blocks[-1].setdefault(key.strip(), value.strip())
    per_cpu: dict[int, str] = {}
    model = ""
    flags: list[str] = []
    board = ""
    for b in blocks:
        if "processor" in b and b["processor"].isdigit():
            name = b.get("model name") or arm_core_name(b.get("CPU implementer", ""), b.get("CPU part", ""))
            if name:
                per_cpu[int(b["processor"])] = name
            if not flags:
                flags = (b.get("flags") or b.get("Features") or "").split()
        model = model or b.get("model name", "")
        board = board or b.get("Model", "") or b.get("Hardware", "")
    if per_cpu and not model:
        counts: dict[str, int] = {}
        for name in per_cpu.values():
            counts[name] = counts.get(name, 0) + 1
        model = " + ".join(f"{n}x {name}" for name, n in counts.items())
    if not model:
        model = next((b.get("Processor") or b.get("cpu model") for b in blocks
                      if b.get("Processor") or b.get("cpu model")), "") or board or "unknown"
    return {"cpu_model": model, "flags": sorted(set(flags)), "board_model": board, "cores": per_cpu}


def clusters(topology: CpuTopology, cores: Mapping[int, str]) -> list[dict[str, Any]]:
    """CPUs grouped by ``cpuinfo_max_freq`` (big/LITTLE), fastest first, with their core names."""
    groups: dict[int, list[int]] = {}
    for c in topology.cpus:
        groups.setdefault(topology.max_freq_khz.get(c, 0), []).append(c)
    out = []
    for freq in sorted(groups, reverse=True):
        cpus = groups[freq]
        names = sorted({cores[c] for c in cpus if c in cores})
        out.append({"cpus": cpus, "max_freq_mhz": freq // 1000 if freq else None, "core": ", ".join(names)})
    return out


@dataclass(frozen=True)
class BoardInfo:
    """The runner's ``describe`` document, parsed."""

    raw: Mapping[str, Any]
    topology: CpuTopology
    cpu_model: str
    cpu_flags: tuple[str, ...]
    board_model: str
    core_names: Mapping[int, str]

    @classmethod
    def from_describe(cls, doc: Mapping[str, Any]) -> BoardInfo:
        cpu = parse_cpuinfo(str(doc.get("cpuinfo", "")))
        cpus = tuple(int(c) for c in doc.get("cpus") or range(int(doc.get("cpu_count") or 1)))
        freqs = {int(k): int(v) for k, v in (doc.get("max_freq_khz") or {}).items()}
        return cls(raw=dict(doc), topology=CpuTopology(cpus=cpus, max_freq_khz=freqs),
                   cpu_model=str(cpu["cpu_model"]), cpu_flags=tuple(cpu["flags"]),
                   board_model=str(doc.get("device_tree_model") or cpu["board_model"] or ""),
                   core_names=dict(cpu["cores"]))

    @property
    def onnxruntime_error(self) -> str | None:
        err = self.raw.get("onnxruntime_error")
        return str(err) if err else None

    @property
    def affinity(self) -> tuple[int, ...]:
        return tuple(int(c) for c in self.raw.get("affinity") or self.topology.cpus)

    def simd_flags(self) -> list[str]:
        from nasprof.profiler.environment import SIMD_FLAGS

        return sorted(f for f in SIMD_FLAGS if f in self.cpu_flags)


def parse_throttled(text: str | None) -> int | None:
    """``throttled=0x50005`` -> ``0x50005``; None when absent or unreadable."""
    if not text or "=" not in text:
        return None
    try:
        return int(text.split("=", 1)[1].strip(), 16)
    except ValueError:
        return None


def board_checks(raw: Mapping[str, Any], device: str) -> list[Any]:
    """``nasprof doctor --device`` items from the runner's ``readiness`` document, as
    ``nasprof.profiler.doctor.Check``; what the board does not expose reads *unknown*."""
    from nasprof.profiler.doctor import STEAL_WARN, Check, cpu_times, steal_share

    p = f"{device}:"
    checks: list[Any] = []
    freq: Mapping[str, Mapping[str, Any]] = raw.get("cpufreq") or {}
    governors = {str(f.get("governor")) for f in freq.values() if f.get("governor")}
    if not governors:
        checks.append(Check(f"{p} cpu governor", "unknown", "no cpufreq exposed"))
    else:
        ok = governors == {"performance"}
        checks.append(Check(f"{p} cpu governor", "ok" if ok else "warn", ", ".join(sorted(governors)),
                            "" if ok else "on the board: echo performance | sudo tee "
                            "/sys/devices/system/cpu/cpu*/cpufreq/scaling_governor"))
    limited = []
    for cpu, f in sorted(freq.items(), key=lambda kv: int(kv[0])):
        cap, top = f.get("scaling_max_freq"), f.get("cpuinfo_max_freq")
        if isinstance(cap, int) and isinstance(top, int) and cap < top:
            limited.append(f"cpu{cpu} {cap // 1000}/{top // 1000} MHz")
    if any(isinstance(f.get("cpuinfo_max_freq"), int) for f in freq.values()):
        checks.append(Check(f"{p} frequency limits", "warn" if limited else "ok",
                            "; ".join(limited) or "none",
                            "raise scaling_max_freq to cpuinfo_max_freq on the board" if limited else ""))
    zones = [(str(z[0]), float(z[1])) for z in raw.get("thermal_zones") or []]
    hottest = max(zones, key=lambda z: z[1]) if zones else None
    throttled = parse_throttled(raw.get("throttled"))
    if throttled is not None:
        now = [THROTTLED_BITS[b] for b in range(4) if throttled >> b & 1]
        past = [THROTTLED_BITS[b] for b in range(16, 20) if throttled >> b & 1]
        status = "warn" if now else ("info" if past else "ok")
        value = f"{raw.get('throttled')}: " + ("; ".join(now + past) or "never throttled since boot")
        advice = ("use the official power supply and a heatsink or fan; wait until it cools" if now else
                  "it throttled earlier since boot: figures from then may be low" if past else "")
        checks.append(Check(f"{p} throttling", status, value, advice))
    elif hottest is not None:
        hot = hottest[1] >= 80
        checks.append(Check(f"{p} throttling", "warn" if hot else "ok",
                            f"no vcgencmd; hottest zone {hottest[0]} {hottest[1]:.0f} °C",
                            "let the board cool down (a heatsink or fan): hot chips throttle" if hot else ""))
    else:
        checks.append(Check(f"{p} throttling", "unknown", "no vcgencmd and no thermal zones exposed"))
    if hottest is not None:
        hot = hottest[1] >= 80
        checks.append(Check(f"{p} thermal", "warn" if hot else "ok",
                            f"hottest {hottest[0]} {hottest[1]:.0f} °C",
                            "let the board cool down: hot chips throttle" if hot else ""))
    cores = int(raw.get("cpu_count") or len(raw.get("cpus") or []) or 1)
    before, after = cpu_times(str(raw.get("stat_before") or "")), cpu_times(str(raw.get("stat_after") or ""))
    if before is not None and after is not None and after.total > before.total:
        busy = (after.busy - before.busy) / (after.total - before.total)
        window = float(raw.get("window_s") or 0.5)
        checks.append(Check(f"{p} cpu busy", "warn" if busy > 0.25 else "ok",
                            f"{busy:.0%} of all CPUs during {window:g} s",
                            "other work runs on the board: stop it while measuring" if busy > 0.25 else ""))
        steal = steal_share(before, after) or 0.0
        if steal > STEAL_WARN:
            checks.append(Check(f"{p} steal time", "warn", f"{steal:.1%}", "the board is a VM whose "
                                "hypervisor gives its CPU time to others: expect noise"))
    load = raw.get("load_average")
    if load:
        high = float(load[0]) >= cores
        checks.append(Check(f"{p} load average", "warn" if high else "ok",
                            f"{float(load[0]):.2f} on {cores} cores",
                            "something else keeps the board's CPUs busy" if high else ""))
    else:
        checks.append(Check(f"{p} load average", "unknown", "not available"))
    busy_procs = [f"{b[0]} (pid {b[1]}, {float(b[2]):.0%} of a core)"
                  for b in raw.get("busy_processes") or []]
    checks.append(Check(f"{p} busy processes", "warn" if busy_procs else "ok",
                        "; ".join(busy_procs[:5]) or "none",
                        "stop them on the board while measuring" if busy_procs else ""))
    isolated = raw.get("isolated")
    if isolated:
        checks.append(Check(f"{p} isolated cores", "ok", str(isolated),
                            f"pin the measurements there: --set cores=<mask of {isolated}>"))
    return checks
