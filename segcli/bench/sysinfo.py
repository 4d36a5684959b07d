"""What machine a benchmark ran on: CPU model, cores, vector extensions, TF/Keras versions and threads.

>>> info = cpu_info()
>>> info["logical_cores"] >= 1 and isinstance(info["isa"], list)
True
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

#: CPU flags worth showing for oneDNN: the widest vector and matrix units it can use.
ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_fp16", "avx512_vnni", "amx_bf16", "amx_tile")


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


def cpu_info() -> dict:
    """CPU model name, logical cores usable by this process and the ISA flags oneDNN cares about."""
    fields = _cpuinfo_fields()
    flags = set(fields.get("flags", "").split())
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return {
        "cpu": fields.get("model name") or platform.processor() or platform.machine(),
        "logical_cores": cores,
        "isa": [f for f in ISA_FLAGS if f in flags],
    }


def framework_info() -> dict:
    """TensorFlow and Keras versions, oneDNN switch and thread pools (imports TensorFlow)."""
    import keras
    import tensorflow as tf

    return {
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "device": ", ".join(sorted({d.device_type for d in tf.config.list_logical_devices()})) or "CPU",
        "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "1") != "0",
        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
    }


def environment() -> dict:
    """Everything above in one dict, as ``segcli bench`` prints it."""
    return {**cpu_info(), **framework_info(), "python": platform.python_version()}
