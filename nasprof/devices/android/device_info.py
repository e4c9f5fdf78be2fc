"""What a phone says about itself: properties, CPU clusters, thermal status — and waiting for it to cool.

Parsers are pure functions over command output, so they are tested on text; the ``read_*`` helpers run the
commands through ``Adb``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from nasprof.devices.android.adb import Adb, quote_command
from nasprof.errors import DeviceError, DeviceUnavailableError, InputError

__all__ = [
    "CpuTopology",
    "ThermalWait",
    "parse_cpu_list",
    "parse_getprop",
    "parse_thermal_status",
    "read_props",
    "read_topology",
    "read_thermal_status",
    "wait_until_cool",
    "parse_battery",
    "phone_checks",
]

_CPU_DIR = "/sys/devices/system/cpu"


def _max_freq_path(cpu: int) -> str:
    return f"{_CPU_DIR}/cpu{cpu}/cpufreq/cpuinfo_max_freq"


_PROP_RE = re.compile(r"^\[(?P<key>[^\]]+)\]: \[(?P<value>.*)\]\s*$")
_THERMAL_RE = re.compile(r"Thermal Status:\s*(\d+)")
#: Names of Android's thermal statuses (android.os.PowerManager THERMAL_STATUS_*).
THERMAL_NAMES = {
    0: "none",
    1: "light",
    2: "moderate",
    3: "severe",
    4: "critical",
    5: "emergency",
    6: "shutdown",
}


def parse_getprop(text: str) -> dict[str, str]:
    """``[ro.product.model]: [Pixel 7]`` lines -> ``{"ro.product.model": "Pixel 7"}``."""
    return {m["key"]: m["value"] for m in map(_PROP_RE.match, text.splitlines()) if m}


def parse_cpu_list(text: str) -> list[int]:
    """``0-3,6`` (the kernel's cpu list format) -> ``[0, 1, 2, 3, 6]``."""
    out: list[int] = []
    for part in text.strip().split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        out.extend(range(int(lo), int(hi or lo) + 1))
    return out


def parse_thermal_status(text: str) -> int | None:
    """The ``Thermal Status: N`` of ``dumpsys thermalservice`` (Android 10+); None when absent."""
    m = _THERMAL_RE.search(text)
    return int(m.group(1)) if m else None


@dataclass(frozen=True)
class CpuTopology:
    """CPU ids and their ``cpuinfo_max_freq`` in kHz (a core without cpufreq, e.g. offline, is missing)."""

    cpus: tuple[int, ...]
    max_freq_khz: Mapping[int, int] = field(default_factory=dict)

    def select(self, cores: str) -> tuple[int, ...]:
        """CPUs for a core choice: ``big`` (every core faster than the slowest cluster; all cores when they
        are equal or unknown), ``all``, or a hexadecimal mask (``0xf0``/``f0``)."""
        choice = str(cores).strip().lower()
        if choice == "all":
            return self.cpus
        if choice == "big":
            known = {c: f for c, f in self.max_freq_khz.items() if c in self.cpus}
            if not known or len(set(known.values())) == 1:
                return self.cpus
            slowest = min(known.values())
            return tuple(c for c in self.cpus if known.get(c, slowest) > slowest)
        try:
            bits = int(choice, 16)
        except ValueError:
            raise InputError(
                f"cores {cores!r} is not valid: use big, all, or a hexadecimal CPU mask such as 0xf0"
            ) from None
        chosen = tuple(c for c in self.cpus if bits >> c & 1)
        if not chosen or bits >> (max(self.cpus) + 1):
            raise InputError(
                f"cores mask {cores!r} names CPUs this device does not have (it has CPUs "
                f"{self.cpus[0]}-{self.cpus[-1]}); pick a mask within them"
            )
        return chosen

    @staticmethod
    def mask(cpus: tuple[int, ...]) -> str:
        """taskset's hexadecimal mask for ``cpus`` (no ``0x``): ``(4, 5, 6, 7)`` -> ``f0``."""
        return f"{sum(1 << c for c in cpus):x}"

    def to_dict(self) -> dict[str, object]:
        return {
            "cpus": list(self.cpus),
            "max_freq_khz": {str(c): f for c, f in sorted(self.max_freq_khz.items())},
        }


def read_props(adb: Adb) -> dict[str, str]:
    result = adb.shell("getprop", doing="reading device properties")
    if not result.ok:
        raise DeviceError(f"getprop failed on {adb.serial}: {result.tail()}")
    return parse_getprop(result.stdout)


def read_topology(adb: Adb) -> CpuTopology:
    """CPU ids from ``/sys/devices/system/cpu/possible`` and each core's ``cpuinfo_max_freq``."""
    possible = adb.shell(quote_command("cat", f"{_CPU_DIR}/possible"), doing="reading the CPU list")
    if not possible.ok:
        raise DeviceError(f"cannot read {_CPU_DIR}/possible on {adb.serial}: {possible.tail()}")
    try:
        cpus = tuple(parse_cpu_list(possible.stdout))
    except ValueError:
        raise DeviceError(
            f"unexpected {_CPU_DIR}/possible on {adb.serial}: {possible.stdout.strip()!r}"
        ) from None
    # One round trip: "echo cpuN; cat .../cpuN/.../cpuinfo_max_freq" for every core. A core without cpufreq
    # only makes its cat fail (stderr), and the marker lines keep the answers aligned.
    parts = [f"{quote_command('echo', f'cpu{c}')}; {quote_command('cat', _max_freq_path(c))}" for c in cpus]
    result = adb.shell("; ".join(parts), doing="reading CPU frequencies")
    freqs: dict[int, int] = {}
    current: int | None = None
    for line in result.stdout.splitlines():
        line = line.strip()
        if line.startswith("cpu") and line[3:].isdigit():
            current = int(line[3:])
        elif line.isdigit() and current is not None:
            freqs[current] = int(line)
    return CpuTopology(cpus=cpus, max_freq_khz=freqs)


def read_thermal_status(adb: Adb) -> int | None:
    result = adb.shell(quote_command("dumpsys", "thermalservice"), doing="reading the thermal status")
    return parse_thermal_status(result.stdout) if result.ok else None


@dataclass(frozen=True)
class ThermalWait:
    """What happened while checking the thermal status before a run."""

    initial_status: int | None
    final_status: int | None
    waited_s: float
    polls: int


def wait_until_cool(
    read_status: Callable[[], int | None],
    timeout_s: float,
    poll_s: float,
    *,
    device: str = "device",
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> ThermalWait:
    """Poll until the thermal status is 0 (or unknown); ``DeviceUnavailableError`` when it is still > 0 after
    ``timeout_s`` (the device, not the model, is the problem). Like androidx benchmark, any status above 0
    counts as throttled."""
    start = clock()
    first = status = read_status()
    polls = 1
    while status is not None and status > 0:
        waited = clock() - start
        if waited >= timeout_s:
            raise DeviceUnavailableError(
                f"{device} is still throttling (Thermal Status: {status}, {THERMAL_NAMES.get(status, '?')}) "
                f"after waiting {waited:.0f} s; let it cool down (screen off, out of the sun, unplugged from "
                "a hot charger) or raise thermal_timeout_s in the devices file"
            )
        sleep(min(poll_s, max(0.0, timeout_s - waited)))
        status = read_status()
        polls += 1
    return ThermalWait(initial_status=first, final_status=status, waited_s=clock() - start, polls=polls)


def parse_battery(text: str) -> dict[str, str]:
    """``dumpsys battery`` (``  AC powered: false`` lines) -> ``{"AC powered": "false", ...}``."""
    out = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition(":")
        if sep and key and not key.startswith("Current Battery Service"):
            out[key.strip()] = value.strip()
    return out


def phone_checks(adb: Adb) -> list[Any]:
    """What androidx-benchmark checks before it measures: thermal status, charging, the big cores' clocks.

    Each item is a ``nasprof.profiler.doctor.Check``; what the phone does not report reads *unknown*."""
    from nasprof.profiler.doctor import Check

    checks = []
    status = read_thermal_status(adb)
    if status is None:
        checks.append(Check("phone thermal status", "unknown", "dumpsys thermalservice gave no status"))
    else:
        name = THERMAL_NAMES.get(status, str(status))
        checks.append(Check("phone thermal status", "ok" if status == 0 else "warn", f"{status} ({name})",
                            "" if status == 0 else "let the phone cool down: it throttles its clocks"))
    battery = adb.shell(quote_command("dumpsys", "battery"), doing="reading the battery state")
    fields = parse_battery(battery.stdout) if battery.ok else {}
    powered = [k for k in ("AC powered", "USB powered", "Wireless powered") if fields.get(k) == "true"]
    if not fields:
        checks.append(Check("phone charging", "unknown", "dumpsys battery gave nothing"))
    else:
        checks.append(Check("phone charging", "warn" if powered else "ok",
                            ", ".join(powered) or "not charging",
                            "charging heats the phone and changes its clocks; unplug it, or disable charging "
                            "(e.g. `dumpsys battery unplug`) while measuring" if powered else ""))
    try:
        topo = read_topology(adb)
    except DeviceError as exc:
        checks.append(Check("phone big cores", "unknown", str(exc)))
    else:
        big = [c for c in topo.select("big") if c in topo.max_freq_khz]
        value = ", ".join(f"cpu{c} {topo.max_freq_khz[c] // 1000} MHz" for c in big) or "no cpufreq readable"
        # Runs are pinned to these cores by default (--set cores=big): listed so a report shows which.
        checks.append(Check("phone big cores", "info" if big else "unknown", value))
    return checks
