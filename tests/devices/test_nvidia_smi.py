"""`nasprof doctor --device cuda` reads the GPU's state from nvidia-smi. No GPU here: a stand-in program
named nvidia-smi on PATH prints what the real one prints for `--query-gpu ... --format=csv,noheader,nounits`
(and refuses the R535 field name as older drivers do); the parsing and the verdicts are what is tested."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import cli_runner

from nasprof.cli import app
from nasprof.devices._nvidia_smi import gpu_checks, smi_index

_FAKE = '''#!{python}
import json, os, sys
state = json.load(open(os.environ["FAKE_SMI_STATE"]))
args = sys.argv[1:]
with open(os.environ["FAKE_SMI_STATE"] + ".log", "a") as log:
    log.write(" ".join(args) + "\\n")
query = next(a for a in args if a.startswith("--query"))
if query.startswith("--query-compute-apps"):
    print("\\n".join(state["apps"]))
    sys.exit(0)
fields = query.split("=", 1)[1].split(",")
if state.get("old_driver") and "clocks_event_reasons.active" in fields:
    print('Field "clocks_event_reasons.active" is not a valid field to query.', file=sys.stderr)
    sys.exit(2)
print(", ".join(state["gpu"][f.replace("throttle", "event")] for f in fields))
'''

IDLE = {"name": "NVIDIA H100 80GB HBM3", "temperature.gpu": "33", "utilization.gpu": "0",
        "clocks.sm": "1980", "clocks.max.sm": "1980", "persistence_mode": "Enabled",
        "clocks_event_reasons.active": "0x0000000000000001"}
SetState = Callable[..., Path]


@pytest.fixture
def smi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SetState:
    exe = tmp_path / "bin" / "nvidia-smi"
    exe.parent.mkdir()
    exe.write_text(_FAKE.format(python=sys.executable))
    exe.chmod(0o755)
    state = tmp_path / "state.json"
    monkeypatch.setenv("PATH", f"{exe.parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_SMI_STATE", str(state))

    def set_state(gpu: dict[str, str], apps: list[str], old_driver: bool = False) -> Path:
        state.write_text(json.dumps({"gpu": gpu, "apps": apps, "old_driver": old_driver}))
        return Path(str(state) + ".log")

    return set_state


def test_an_idle_gpu_is_ready(smi: SetState) -> None:
    smi(IDLE, [])
    checks = {c.name: c for c in gpu_checks("0")}
    assert checks["GPU 0"].value == "NVIDIA H100 80GB HBM3"
    assert {n: c.status for n, c in checks.items() if n != "GPU 0"} == {
        "GPU shared": "ok", "GPU utilisation": "ok", "GPU clocks": "ok", "GPU temperature": "ok",
        "GPU persistence mode": "ok"}
    assert checks["GPU clocks"].value == "SM 1980 of 1980 MHz"  # idle (bit 0x1) is not a slowdown


def test_a_shared_hot_throttled_gpu_says_what_to_do(smi: SetState) -> None:
    busy = {**IDLE, "utilization.gpu": "97", "temperature.gpu": "86", "clocks.sm": "1410",
            "persistence_mode": "Disabled", "clocks_event_reasons.active": "0x0000000000000044"}
    log = smi(busy, ["4242, python3, 30512", "77, [Not Found], [N/A]"], old_driver=True)
    checks = {c.name: c for c in gpu_checks("0")}
    shared = checks["GPU shared"]
    assert shared.status == "warn" and shared.value.startswith("2 other process(es)")
    assert "python3 (pid 4242)" in shared.value
    assert checks["GPU utilisation"].status == "warn" and checks["GPU utilisation"].value == "97%"
    clocks = checks["GPU clocks"]
    assert clocks.status == "warn" and clocks.value == (
        "SM 1410 of 1980 MHz; held down by software power cap, hardware thermal slowdown")
    assert checks["GPU temperature"].status == "warn" and "cool down" in checks["GPU temperature"].advice
    assert checks["GPU persistence mode"].status == "info" and "nvidia-smi -pm 1" in \
        checks["GPU persistence mode"].advice
    # A driver before R535 refuses the new field name: asked again with the old one.
    queries = [ln for ln in log.read_text().splitlines() if "--query-gpu" in ln]
    assert "clocks_event_reasons.active" in queries[0] and "clocks_throttle_reasons.active" in queries[1]


def test_not_reported_and_missing_nvidia_smi_read_unknown(smi: SetState, monkeypatch: pytest.MonkeyPatch,
                                                          tmp_path: Path) -> None:
    smi({**IDLE, "temperature.gpu": "[N/A]", "utilization.gpu": "[Not Supported]"}, [])
    checks = {c.name: c for c in gpu_checks("0")}
    assert checks["GPU temperature"].status == checks["GPU utilisation"].status == "unknown"
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    (only,) = gpu_checks("0")
    assert only.status == "unknown" and "install the NVIDIA driver's utilities" in only.advice


def test_cuda_visible_devices_maps_to_nvidia_smis_index(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    assert (smi_index(0), smi_index(1)) == ("2", "3")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-8a1c")
    assert smi_index(0) == "GPU-8a1c"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert smi_index(0) == "" and "CUDA sees no GPU" in gpu_checks(smi_index(0), label="0")[0].value
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert smi_index(1) == "1"


def test_doctor_device_cuda_lists_the_gpu_checks(smi: SetState, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a driver answering, cuda:1 is nvidia-smi's GPU 1; with one, the GPU is named by its UUID
    (CUDA numbers GPUs fastest first, nvidia-smi by PCI bus), and a GPU that does not exist says so."""
    from nasprof.devices import cuda
    from nasprof.devices._cuda_driver import DriverInfo, GpuInfo

    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(cuda, "query_driver", lambda: DriverInfo(error="no NVIDIA driver found"))
    log = smi({**IDLE, "name": "NVIDIA A100-SXM4-40GB, MIG 1g.5gb"}, ["No running processes found"])
    r = cli_runner.invoke(app, ["doctor", "--device", "cuda:1", "--window", "0.1", "--json", "-"])
    assert r.exit_code == 0, r.output
    checks = {c["name"]: c for c in json.loads(r.stdout)["checks"]}
    assert checks["GPU 1"]["value"] == "NVIDIA A100-SXM4-40GB, MIG 1g.5gb"  # a comma in the name
    assert checks["GPU shared"]["status"] == "ok" and checks["GPU clocks"]["status"] == "ok"
    assert " -i 1" in log.read_text()
    gpus = tuple(GpuInfo(i, "H100", 80 << 30, "9.0", 132, uuid=f"GPU-{i}abc") for i in range(2))
    monkeypatch.setattr(cuda, "query_driver", lambda: DriverInfo(error="", gpus=gpus))
    assert cuda.CudaBackend(device_id=1).readiness()[0].name == "GPU 1"
    assert log.read_text().splitlines()[-1].endswith("-i GPU-1abc")
    (missing,) = cuda.CudaBackend(device_id=5).readiness()
    assert missing.status == "unknown" and "cuda:5 does not exist" in missing.value
