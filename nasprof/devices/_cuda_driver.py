"""What the NVIDIA driver says about the GPUs, read through ``libcuda`` with ctypes.

onnxruntime does not tell whether a GPU is present until a session silently falls back to the CPU, and
torch is too heavy to import for a yes/no answer, so availability and ``describe()`` ask the driver API
directly. Only read-only queries are made; no context is created.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from functools import lru_cache

__all__ = ["GpuInfo", "DriverInfo", "query_driver"]

# cuDeviceGetAttribute ids (cuda.h: CUdevice_attribute)
_ATTR_CC_MAJOR = 75
_ATTR_CC_MINOR = 76
_ATTR_SM_COUNT = 16


@dataclass(frozen=True)
class GpuInfo:
    index: int
    name: str
    total_memory_bytes: int
    compute_capability: str
    multiprocessors: int
    #: nvidia-smi's name for it (``GPU-xxxxxxxx-...``): the same card whatever the two tools' orders.
    uuid: str = ""


@dataclass(frozen=True)
class DriverInfo:
    """``error`` is empty when the driver answered; ``gpus`` is then the list of visible GPUs."""

    error: str
    driver_cuda_version: str = ""  # the newest CUDA version the driver supports (13.0)
    gpus: tuple[GpuInfo, ...] = ()


def _load() -> ctypes.CDLL:
    last: OSError | None = None
    for lib in ("libcuda.so.1", "libcuda.so", "nvcuda.dll"):
        try:
            return ctypes.CDLL(lib)
        except OSError as exc:
            last = exc
    raise OSError(str(last))


def _uuid(cuda: ctypes.CDLL, dev: ctypes.c_int) -> str:
    """The GPU's UUID as nvidia-smi prints it; empty when the driver does not say."""
    raw = ctypes.create_string_buffer(16)  # CUuuid: 16 bytes
    if cuda.cuDeviceGetUuid(raw, dev) != 0:
        return ""
    h = raw.raw.hex()
    return f"GPU-{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


@lru_cache(maxsize=1)
def query_driver() -> DriverInfo:
    """Ask the CUDA driver for its version and GPUs. Never raises; cached for the process."""
    try:
        cuda = _load()
    except OSError:
        return DriverInfo(error="no NVIDIA driver found (libcuda.so.1 cannot be loaded): run on a machine "
                                "with an NVIDIA GPU and its driver installed")
    rc = cuda.cuInit(0)
    if rc != 0:
        # 100 = CUDA_ERROR_NO_DEVICE (also when CUDA_VISIBLE_DEVICES hides every GPU)
        what = "no CUDA GPU is visible" if rc == 100 else f"the CUDA driver failed to initialise (error {rc})"
        return DriverInfo(error=f"{what}: check nvidia-smi and CUDA_VISIBLE_DEVICES")
    version = ctypes.c_int(0)
    cuda.cuDriverGetVersion(ctypes.byref(version))
    count = ctypes.c_int(0)
    cuda.cuDeviceGetCount(ctypes.byref(count))
    gpus = []
    for i in range(count.value):
        dev = ctypes.c_int(0)
        if cuda.cuDeviceGet(ctypes.byref(dev), i) != 0:
            continue
        name = ctypes.create_string_buffer(256)
        cuda.cuDeviceGetName(name, 256, dev)
        mem = ctypes.c_size_t(0)
        cuda.cuDeviceTotalMem_v2(ctypes.byref(mem), dev)
        attrs = {}
        for key, attr in (("major", _ATTR_CC_MAJOR), ("minor", _ATTR_CC_MINOR), ("sms", _ATTR_SM_COUNT)):
            v = ctypes.c_int(0)
            cuda.cuDeviceGetAttribute(ctypes.byref(v), attr, dev)
            attrs[key] = v.value
        gpus.append(GpuInfo(index=i, name=name.value.decode(errors="replace"), total_memory_bytes=mem.value,
                            compute_capability=f"{attrs['major']}.{attrs['minor']}",
                            multiprocessors=attrs["sms"], uuid=_uuid(cuda, dev)))
    ver = int(version.value)
    return DriverInfo(error="", driver_cuda_version=f"{ver // 1000}.{(ver % 1000) // 10}", gpus=tuple(gpus))
