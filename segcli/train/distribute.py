"""Which tf.distribute strategy a run uses, and which process is the chief (the one that writes the run)."""

from __future__ import annotations

import json
import os

from segcli.errors import UsageError
from segcli.train.settings import SettingError


def tf_config() -> dict:
    text = os.environ.get("TF_CONFIG", "")
    if not text:
        return {}
    try:
        return json.loads(text)
    except ValueError:
        raise UsageError(f"TF_CONFIG is not valid JSON: {text[:80]!r}.") from None


def is_chief(tf_config: dict) -> bool:
    """The chief writes the run directory: task "chief", or worker 0 when the cluster has no chief."""
    task = tf_config.get("task") or {}
    if not task:
        return True
    if task.get("type") == "chief":
        return True
    return task.get("type") == "worker" and int(task.get("index", 0)) == 0 and "chief" not in tf_config.get("cluster", {})


def make_strategy(name: str):
    import tensorflow as tf

    config = tf_config()
    cluster = config.get("cluster", {})
    n_workers = len(cluster.get("worker", [])) + len(cluster.get("chief", []))
    if name == "multiworker" or (name == "auto" and n_workers > 1):
        if not config:
            raise SettingError("`strategy` multiworker needs TF_CONFIG (cluster and task) in the environment; see "
                               "the README section on scale-out.")
        # before anything else touches the TF runtime: collective ops are configured at startup
        return tf.distribute.MultiWorkerMirroredStrategy(), "multiworker"
    gpus = tf.config.list_logical_devices("GPU")
    if name == "auto":
        name = "mirrored" if len(gpus) > 1 else "default"
    if name == "mirrored":
        if gpus:
            return tf.distribute.MirroredStrategy(), "mirrored"
        cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices=cpus, cross_device_ops=tf.distribute.ReductionToOneDevice()), \
            "mirrored"
    return tf.distribute.get_strategy(), "default"
