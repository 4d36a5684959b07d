"""What machine a benchmark ran on: CPU model, cores, vector extensions, TF/Keras versions and threads.

>>> sorted(environment())[:3]
['cpu', 'device', 'inter_op_threads']
"""

from __future__ import annotations

import platform
import sys

from segcli.hardware import ISA_FLAGS, cpu_info, onednn_enabled  # noqa: F401  (bench reports them)


def framework_info() -> dict:
    """TensorFlow and Keras versions, oneDNN switch and thread pools (imports TensorFlow)."""
    import keras
    import tensorflow as tf

    from segcli.tf_allocator import allocator_name

    onednn = onednn_enabled()
    return {
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "device": ", ".join(sorted({d.device_type for d in tf.config.list_logical_devices()})) or "CPU",
        "onednn": onednn,
        "tf_allocator": allocator_name(onednn=bool(onednn)),
        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
    }


#: framework_info()'s keys, all None: what a run that never loaded TensorFlow reports.
NO_TENSORFLOW = dict.fromkeys(("tensorflow", "keras", "device", "onednn", "tf_allocator", "intra_op_threads",
                               "inter_op_threads"))


def environment(load_tensorflow: bool = True) -> dict:
    """Everything above in one dict, as ``segcli bench`` prints it; without ``load_tensorflow``, the framework
    fields are None unless TensorFlow is already imported (a model that ran on OpenVINO never needed it).
    """
    framework = framework_info() if load_tensorflow or "tensorflow" in sys.modules else NO_TENSORFLOW
    return {**cpu_info(), **framework, "python": platform.python_version()}
