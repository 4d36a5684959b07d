"""Floating-point work of a model, and the machine's fp32 matmul peak to compare it with.

:func:`graph_flops` counts the float operations in a traced TensorFlow graph
with TF's profiler (each op's registered FLOP statistics: convolutions,
matmuls including the attention's batched matmuls, resizes and element-wise
ops), so the figure follows the model as built, never a typed constant.

:func:`measure_peak` times a large square float32 matmul: the best rate the
machine's BLAS (oneDNN/Eigen) reaches, the yardstick for "fraction of peak".
The last measured peak is kept in ``$SEGCLI_HOME/bench/peak.json`` per CPU
and thread count, so ``segcli bench`` can report fractions without
re-measuring every time.

>>> import tensorflow as tf
>>> fn = tf.function(lambda a: tf.matmul(a, a)).get_concrete_function(tf.TensorSpec((8, 8), tf.float32))
>>> graph_flops(fn.graph)
1024
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

PEAK_MATMUL_SIZE = 2048


def graph_flops(graph) -> int:
    """Total float operations TF's profiler finds in ``graph`` (a ``tf.Graph``, e.g. ``concrete_fn.graph``)."""
    from tensorflow.python.profiler import model_analyzer, option_builder
    from tensorflow.python.util import deprecation

    options = (option_builder.ProfileOptionBuilder(option_builder.ProfileOptionBuilder.float_operation())
               .with_empty_output().build())
    with deprecation.silence():  # the profiler calls a TF1 helper that warns on every use
        return int(model_analyzer.profile(graph, options=options).total_float_ops)


def model_flops_per_image(model, height: int, width: int) -> int:
    """Float operations of one ``model`` forward pass on one ``height`` x ``width`` RGB image."""
    import tensorflow as tf

    from segcli.graph_function import graph_function

    spec = tf.TensorSpec((1, height, width, 3), tf.float32)
    concrete = graph_function(lambda images: model(images, training=False)).get_concrete_function(spec)
    return graph_flops(concrete.graph)


def measure_peak(size: int = PEAK_MATMUL_SIZE, seconds: float = 3.0) -> dict:
    """Best float32 GFLOP/s of a ``size`` x ``size`` matmul over about ``seconds`` of repeats."""
    import tensorflow as tf

    from segcli.graph_function import graph_function

    a = tf.random.uniform((size, size), dtype=tf.float32)
    b = tf.random.uniform((size, size), dtype=tf.float32)
    matmul = graph_function(lambda x, y: tf.matmul(x, y))
    matmul(a, b).numpy()  # trace and warm the BLAS
    best, runs, start = float("inf"), 0, time.perf_counter()
    while runs < 3 or (time.perf_counter() - start < seconds and runs < 200):
        t0 = time.perf_counter()
        matmul(a, b).numpy()
        best = min(best, time.perf_counter() - t0)
        runs += 1
    return {"gflops_per_s": 2.0 * size ** 3 / best / 1e9, "matmul_size": size, "runs": runs}


def _peak_file() -> Path:
    from segcli.checkpoints.cache import segcli_home

    return segcli_home() / "bench" / "peak.json"


def _peak_key(env: dict) -> str:
    return f"{env.get('cpu')}|{env.get('logical_cores')}|{env.get('intra_op_threads')}"


def save_peak(peak: dict, env: dict) -> Path:
    """Remember ``peak`` for this CPU and thread count (atomic write)."""
    path = _peak_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    known = load_all_peaks()
    known[_peak_key(env)] = peak
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(known, indent=2))
    os.replace(tmp, path)
    return path


def load_all_peaks() -> dict:
    try:
        return json.loads(_peak_file().read_text())
    except (OSError, ValueError):
        return {}


def saved_peak(env: dict) -> dict | None:
    """The peak measured earlier on this CPU and thread count, or None."""
    return load_all_peaks().get(_peak_key(env))


def current_peak(env: dict, measure: bool = False) -> dict | None:
    """The fp32 matmul peak for ``env``'s CPU, with ``measured_now``: measured now and saved when ``measure``,
    else the one saved earlier (None if there is none)."""
    if measure:
        peak = measure_peak()
        save_peak(peak, env)
        return {**peak, "measured_now": True}
    saved = saved_peak(env)
    return {**saved, "measured_now": False} if saved else None
