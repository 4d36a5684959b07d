"""The CPU segcli runs on: model name, usable cores and the vector/matrix extensions that decide precision.

Read from /proc/cpuinfo (Linux); elsewhere the ISA list is empty and bf16 is not offered.

>>> info = cpu_info()
>>> info["logical_cores"] >= 1 and isinstance(info["isa"], list)
True
>>> isinstance(has_bf16(), bool)
True
"""

from __future__ import annotations

import os
import platform
from pathlib import Path


#: CPU flags worth showing for oneDNN: the widest vector and matrix units it can use.
ISA_FLAGS = ("avx2", "fma", "avx_vnni", "avx512f", "avx512_bf16", "avx512_fp16", "avx512_vnni", "amx_bf16",
             "amx_int8", "amx_tile")


def _cpuinfo_fields() -> dict:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    fields = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key and key not in fields:
            fields[key] = value.strip()
    return fields


def usable_cores() -> int:
    """Logical CPUs this process may run on (its affinity mask on Linux)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def cpu_info() -> dict:
    """CPU model name, logical cores usable by this process and the ISA flags oneDNN cares about."""
    fields = _cpuinfo_fields()
    flags = set(fields.get("flags", "").split())
    return {
        "cpu": fields.get("model name") or platform.processor() or platform.machine(),
        "logical_cores": usable_cores(),
        "isa": [f for f in ISA_FLAGS if f in flags],
    }


def has_bf16(isa=None) -> bool:
    """True when the CPU computes bfloat16 natively (AMX or AVX-512 BF16), where bf16 inference can pay off."""
    isa = cpu_info()["isa"] if isa is None else isa
    return any(flag in isa for flag in ("amx_bf16", "avx512_bf16"))


def has_vnni(isa=None) -> bool:
    """True when the CPU has an int8 dot-product unit (AVX-VNNI, AVX-512 VNNI or AMX).

    Without one, int8 kernels multiply u8 by s8 pairs into int16 sums that can saturate (``vpmaddubsw``).

    >>> has_vnni(["avx2", "fma"]), has_vnni(["avx2", "avx512_vnni"])
    (False, True)
    """
    isa = cpu_info()["isa"] if isa is None else isa
    return any(flag in isa for flag in ("avx_vnni", "avx512_vnni", "amx_int8"))


def has_amx(isa=None) -> bool:
    """True when the CPU has AMX tiles (bf16 and int8 matrix units)."""
    isa = cpu_info()["isa"] if isa is None else isa
    return "amx_bf16" in isa or "amx_tile" in isa


#: Device files a GPU that TensorFlow can use leaves on Linux: NVIDIA's driver, ROCm's, and WSL's GPU bridge.
GPU_DEVICE_FILES = ("/dev/nvidiactl", "/dev/kfd", "/dev/dxg")


def tensorflow_gpu_ruled_out(system: str | None = None, device_files=None) -> bool:
    """True when TensorFlow surely sees no GPU here, told without importing it (about 5 s): on Linux, where
    none of the GPU drivers' device files exists. Elsewhere (macOS has GPU plugins) only TensorFlow can say.

    >>> tensorflow_gpu_ruled_out("Linux", ()), tensorflow_gpu_ruled_out("Darwin", ())
    (True, False)
    >>> tensorflow_gpu_ruled_out("Linux", ("/",))
    False
    """
    if (system or platform.system()) != "Linux":
        return False
    return not any(os.path.exists(path) for path in (GPU_DEVICE_FILES if device_files is None else device_files))


def onednn_enabled() -> bool | None:
    """Whether TensorFlow's oneDNN ops are on in this process (imports TensorFlow); ``None`` if it cannot say.

    TensorFlow decides from ``TF_ENABLE_ONEDNN_OPTS`` and, when that is unset, from the CPU's features, so
    the variable alone does not tell.
    """
    try:
        from tensorflow.python.util import _pywrap_util_port
    except ImportError:
        return None
    return bool(_pywrap_util_port.IsMklEnabled())
