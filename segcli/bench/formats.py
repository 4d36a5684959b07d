"""``segcli bench --model M [--formats keras,onnx,tflite,openvino] [--data DIR]``: time real models.

``--model`` alone times whatever predict takes (run dir, ``.keras``, imported name, ``.onnx``, ``.tflite``,
an OpenVINO ``.xml`` or folder), opened by :func:`segcli.inference.runners.open_model`. With ``formats``
the Keras model is exported to each format in a temporary folder (segcli's exporter, parity checked) and
every format gets one row of the same table:

- ``ms_per_image`` / ``img_per_s``: median of ``iters`` calls of ``predict_logits`` on a uint8 batch of
  ``batch`` images at ``size`` (logits at 1/4 size: the network, as every backend runs it);
- ``gflops_per_image`` and ``fraction_of_peak``: FLOPs of the graph the backend executes (segcli's folded
  head: the Keras layers it skips are not counted), from TF's profiler on that graph;
- ``agreement`` (with ``formats``): share of pixels whose class (argmax of the logits resized to the image)
  equals the Keras model's, on the images of ``data`` (or synthetic ones); None for a model timed alone, which
  has nothing else to agree with;
- ``miou``: segcli's eval on ``data`` when it is a labelled folder, on the pairs eval scores for ``split``
  (:func:`segcli.inference.evaluate.select_pairs`; ``miou_split`` and ``miou_images`` say which and how many).

Alone, ``--model`` runs on the backend and precision predict would choose (:func:`open_model`'s ``auto``), and
its row's ``format`` says what the model is (:func:`model_kind`).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from segcli.errors import DataError, UsageError

KERAS = "keras"
EXPORTS = {"onnx": "m.onnx", "tflite": "m.tflite", "openvino": "ov", "savedmodel": "sm"}
#: The format column of a ``--model`` that is not an export, by the resolver's kind (resolve.KINDS).
KIND_LABELS = {"keras": "keras", "entry": "segcli weights", "preset": "preset", "hf": "hugging face",
               "keras_hub": "keras-hub"}


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
            raise UsageError(f"formats {name}: use some of {', '.join(valid)}.", value="formats")
    if not out:
        raise UsageError(f"formats: give at least one of {', '.join(valid)}.", value="formats")
    return out


def model_kind(ref) -> str:
    """What ``--model`` is, as the resolver found it: the export format of an exported file, else its kind."""
    if ref.kind == "exported":
        from segcli.export.formats import format_for_path

        return format_for_path(ref.path).name
    return KIND_LABELS[ref.kind]


def _images(data, split, size, count: int, note):
    """``(images, scored)``: ``count`` images at ``size`` to time and compare on, and ``(split, pairs)`` for mIoU:
    the pairs eval scores for ``split``, or None (no ``data``, or not a labelled folder: ``note`` says why)."""
    from segcli.export.api import read_samples, sample_images
    from segcli.inference.evaluate import select_pairs

    if data is None:
        return sample_images(count, size), None
    try:
        _, pairs, split = select_pairs(data, split)
    except DataError as exc:
        folder = Path(data)
        images = read_samples(folder / "images" if (folder / "images").is_dir() else folder, size, limit=count,
                              what="data")  # no images at all is an error, not a note
        note(f"no mIoU: {exc}")
        return images, None
    return np.stack([_resized(pair.image, size) for pair in pairs[:count]]), (split, pairs)


def _resized(path, size) -> np.ndarray:
    import cv2

    from segcli.data.image_io import read_image

    return cv2.resize(read_image(path), (int(size[1]), int(size[0])), interpolation=cv2.INTER_AREA)


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

    from segcli.graph_function import graph_function
    from segcli.bench.flops import graph_flops
    from segcli.models.segformer.graph import SegFormerGraph

    graph = SegFormerGraph(model)
    spec = tf.TensorSpec((1, int(size[0]), int(size[1]), 3), tf.uint8)
    return graph_flops(graph_function(graph.quarter_logits).get_concrete_function(spec).graph) / 1e9


def _miou(runner, data, scored, note) -> float | None:
    """eval's mIoU of ``runner`` on the ``scored`` split of ``data``; None (and a note) when it cannot be scored."""
    from segcli.classes import ClassTable
    from segcli.inference.evaluate import evaluate
    from segcli.inference.runners import OpenedModel

    if scored is None:
        return None
    classes = ClassTable.from_dicts(runner.classes) if getattr(runner, "classes", None) else \
        ClassTable.from_names([])
    opened = OpenedModel(runner, classes.complete(int(runner.num_classes)), "bench", runner.input_size)
    try:
        result = evaluate(data, opened, split=scored[0])
    except DataError as exc:  # e.g. the model's class count is not the data's
        note(f"no mIoU: {exc}")
        return None
    for line in result["notes"]:
        note(line)
    return result["miou"]


def bench_model(spec, formats=None, data=None, size=(512, 512), batch: int = 1, warmup: int = 1, iters: int = 5,
                precision: str = "auto", peak=None, samples: int = 4, on_row=None,
                backend: str = "auto", split: str = "auto", on_note=None) -> list:
    """One row per format (or one row for ``spec`` itself without ``formats``); see the module docstring.

    ``on_row(name)`` is called as each row starts, ``on_note(line)`` once per distinct note (why there is no mIoU,
    eval's notes on the data). ``peak``: the fp32 GFLOP/s, or a function that returns it (called for rows with
    FLOPs only).
    """
    from segcli.bench.bench import check_counts
    from segcli.export.api import export_model
    from segcli.inference.runners import auto_precision, open_model

    check_counts(warmup, iters)
    note = _once(on_note)
    # --formats exports the Keras model itself; alone, the model runs where predict would run it
    opened = open_model(spec, "tensorflow") if formats else open_model(spec, backend, precision)
    images, scored = _images(data, split, size, max(samples, batch), note)
    batch_images = images[:batch] if len(images) >= batch else np.resize(images, (batch, *images.shape[1:]))
    keras_model = opened.model if hasattr(opened.model, "head") else None
    if formats and keras_model is None:
        raise UsageError(f"model {spec}: formats need a Keras model to export; this is an exported file.")
    gflops = folded_flops(keras_model, size) if keras_model is not None else None
    reference = _reference_runner(keras_model, opened) if keras_model is not None else opened.model
    ref_masks = _masks(reference.predict_logits(images), size) if formats else None
    ov_precision = auto_precision("openvino") if precision == "auto" else precision
    rows = []
    with tempfile.TemporaryDirectory(prefix="segcli-bench-") as tmp:
        for name in formats or [model_kind(opened.ref)]:
            if on_row:
                on_row(name)
            if not formats or name == KERAS:
                runner = reference
            else:
                out = Path(tmp) / EXPORTS[name]
                export_model(spec, name, out, precision=ov_precision if name == "openvino" else "fp32",
                             calib=data if ov_precision == "int8" and name == "openvino" else None,
                             sample_size=size)
                from segcli.export.formats import open_runner

                runner = open_runner(out)
            seconds = time_runner(runner, batch_images, warmup, iters)
            agreement = float((_masks(runner.predict_logits(images), size) == ref_masks).mean()) if formats else None
            rows.append(_row(name, runner, size, batch, seconds, gflops, peak, agreement,
                             _miou(runner, data, scored, note), scored))
    return rows


def _once(on_note):
    """``on_note`` that passes each distinct line once (every format meets the same data)."""
    seen = set()

    def note(line: str) -> None:
        if on_note and line not in seen:
            seen.add(line)
            on_note(line)

    return note


def _reference_runner(model, opened):
    """segcli's float32 folded graph in TensorFlow, as a runner."""
    from segcli.export.api import GraphRunner
    from segcli.models.segformer.graph import SegFormerGraph

    runner = GraphRunner(SegFormerGraph(model), opened.classes.as_dicts(), opened.input_size)
    runner.runtime = "tensorflow (segcli folded graph)"
    return runner


def _row(name, runner, size, batch, seconds, gflops, peak, agreement, miou, scored) -> dict:
    from segcli.hardware import cpu_info

    ms = 1000 * seconds / batch
    achieved = gflops * 1000 / ms if gflops else None
    peak = peak() if callable(peak) and achieved else peak
    return {"format": name, "runtime": getattr(runner, "runtime", "") or name,
            "precision": getattr(runner, "precision", "fp32"), "isa": ",".join(cpu_info()["isa"]),
            "image_size": list(size), "batch_size": batch, "ms_per_image": round(ms, 2),
            "img_per_s": round(1000 / ms, 3), "gflops_per_image": round(gflops, 3) if gflops else None,
            "fraction_of_peak": round(achieved / peak, 4) if achieved and peak else None,
            "mask_agreement": round(agreement, 6) if agreement is not None else None,
            "miou": round(miou, 6) if miou is not None else None,
            "miou_split": scored[0] if miou is not None else None,
            "miou_images": len(scored[1]) if miou is not None else None}
