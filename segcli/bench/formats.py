"""``segcli bench --model M [--formats keras,onnx,tflite,openvino] [--data DIR]``: time real models.

``--model`` alone times whatever predict takes (run dir, ``.keras``, imported name, ``.onnx``, ``.tflite``,
an OpenVINO ``.xml`` or folder), opened by :func:`segcli.inference.runners.open_model`. With ``formats``
the Keras model is exported to each format in a temporary folder (segcli's exporter, parity checked) and
every format gets one row of the same table:

- ``ms_per_image`` / ``img_per_s``: median of ``iters`` calls of ``predict_logits`` on a uint8 batch of
  ``batch`` images at ``size`` (logits at 1/4 size: the network, as every backend runs it);
- ``gflops_per_image`` and ``fraction_of_peak``: FLOPs of the graph the backend executes (segcli's folded
  head: the Keras layers it skips are not counted), from TF's profiler on that graph;
- ``agreement``: share of pixels whose class (argmax of the logits resized to the image) equals the Keras
  model's, on the images of ``data`` (or synthetic ones);
- ``miou``: segcli's eval on ``data`` when it is a labelled folder.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from segcli.errors import DataError, UsageError

KERAS = "keras"
EXPORTS = {"onnx": "m.onnx", "tflite": "m.tflite", "openvino": "ov", "savedmodel": "sm"}


def parse_formats(value) -> list:
    """``"keras,onnx"`` -> ``["keras", "onnx"]``; unknown names fail with the list.

    >>> parse_formats("keras, openvino")
    ['keras', 'openvino']
    """
    from segcli.export.formats import names

    valid = (KERAS, *names())
    out = [p.strip().lower() for p in str(value).split(",") if p.strip()]
    for name in out:
        if name not in valid:
            raise UsageError(f"formats {name}: use some of {', '.join(valid)}.")
    if not out:
        raise UsageError(f"formats: give at least one of {', '.join(valid)}.")
    return out


def _images(data, size, count: int) -> np.ndarray:
    from segcli.export.api import read_samples, sample_images

    if data is None:
        return sample_images(count, size)
    folder = Path(data)
    return read_samples(folder / "images" if (folder / "images").is_dir() else folder, size, limit=count,
                        what="data")


def _masks(logits: np.ndarray, size) -> np.ndarray:
    from segcli.export.formats import masks_of, upsample

    return masks_of(upsample(logits, size))


def time_runner(runner, images: np.ndarray, warmup: int, iters: int) -> float:
    """Median seconds per call of ``runner.predict_logits(images)``."""
    for _ in range(max(1, warmup)):
        runner.predict_logits(images)
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        runner.predict_logits(images)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def folded_flops(model, size) -> float:
    """GFLOP per image of segcli's folded graph at ``size`` (what Keras, ONNX, TFLite and OpenVINO run)."""
    import tensorflow as tf

    from segcli.bench.flops import graph_flops
    from segcli.models.segformer.graph import SegFormerGraph

    graph = SegFormerGraph(model)
    spec = tf.TensorSpec((1, int(size[0]), int(size[1]), 3), tf.uint8)
    return graph_flops(tf.function(graph.quarter_logits).get_concrete_function(spec).graph) / 1e9


def _miou(runner, data) -> float | None:
    from segcli.classes import ClassTable
    from segcli.inference.evaluate import evaluate
    from segcli.inference.runners import OpenedModel

    if data is None or not any(Path(data).rglob("*")):
        return None
    classes = ClassTable.from_dicts(runner.classes) if getattr(runner, "classes", None) else \
        ClassTable.from_names([])
    opened = OpenedModel(runner, classes.complete(int(runner.num_classes)), "bench", runner.input_size)
    try:
        return float(evaluate(data, opened, split="all")["miou"])
    except (UsageError, DataError):
        return None  # images without labels: no mIoU


def bench_model(spec, formats=None, data=None, size=(512, 512), batch: int = 1, warmup: int = 1, iters: int = 5,
                precision: str = "fp32", peak: float | None = None, samples: int = 4, on_row=None,
                backend: str = "auto") -> list:
    """One row per format (or one row for ``spec`` itself without ``formats``); see the module docstring."""
    from segcli.export.api import export_model
    from segcli.inference.runners import open_model

    # --formats exports the Keras model itself; alone, the model runs where predict would run it
    opened = open_model(spec, "tensorflow") if formats else open_model(spec, backend, precision)
    images = _images(data, size, max(samples, batch))
    batch_images = images[:batch] if len(images) >= batch else np.resize(images, (batch, *images.shape[1:]))
    keras_model = opened.model if hasattr(opened.model, "head") else None
    if formats and keras_model is None:
        raise UsageError(f"model {spec}: formats need a Keras model to export; this is an exported file.")
    gflops = folded_flops(keras_model, size) if keras_model is not None else None
    reference = _reference_runner(keras_model, opened) if keras_model is not None else opened.model
    ref_masks = _masks(reference.predict_logits(images), size)
    rows = []
    with tempfile.TemporaryDirectory(prefix="segcli-bench-") as tmp:
        for name in formats or [KERAS if keras_model is not None else "exported"]:
            if on_row:
                on_row(name)
            if name == KERAS:
                runner = reference
            elif name == "exported":
                runner = opened.model
            else:
                out = Path(tmp) / EXPORTS[name]
                export_model(spec, name, out, precision=precision if name == "openvino" else "fp32",
                             calib=data if precision == "int8" and name == "openvino" else None,
                             sample_size=size)
                from segcli.export.formats import open_runner

                runner = open_runner(out)
            seconds = time_runner(runner, batch_images, warmup, iters)
            agreement = float((_masks(runner.predict_logits(images), size) == ref_masks).mean())
            rows.append(_row(name, runner, size, batch, seconds, gflops, peak, agreement, _miou(runner, data)))
    return rows


def _reference_runner(model, opened):
    """segcli's float32 folded graph in TensorFlow, as a runner."""
    from segcli.export.api import GraphRunner
    from segcli.models.segformer.graph import SegFormerGraph

    runner = GraphRunner(SegFormerGraph(model), opened.classes.as_dicts(), opened.input_size)
    runner.runtime = "tensorflow (segcli folded graph)"
    return runner


def _row(name, runner, size, batch, seconds, gflops, peak, agreement, miou) -> dict:
    from segcli.bench.sysinfo import environment

    ms = 1000 * seconds / batch
    achieved = gflops * 1000 / ms if gflops else None
    return {"format": name, "runtime": getattr(runner, "runtime", "") or name,
            "precision": getattr(runner, "precision", "fp32"), "isa": ",".join(environment()["isa"]),
            "image_size": list(size), "batch_size": batch, "ms_per_image": round(ms, 2),
            "img_per_s": round(1000 / ms, 3), "gflops_per_image": round(gflops, 3) if gflops else None,
            "fraction_of_peak": round(achieved / peak, 4) if achieved and peak else None,
            "mask_agreement": round(agreement, 6), "miou": round(miou, 4) if miou is not None else None}
