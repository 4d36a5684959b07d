"""Export a model to any registered format (:mod:`segcli.export.formats`), then check it in its own runtime.

After writing, the artefact is loaded in the runtime that will serve it and run on
sample images next to the Keras model. The report gives the max |Δ| of the logits
and the share of pixels whose class (argmax at the input size) agrees. Each format
says which rule applies: float32 artefacts fail above 1e-4 max |Δ|; lower
precisions (quantized TFLite, OpenVINO bf16/int8) below 99 % mask agreement.

With ``max_miou_drop`` and a ``score`` callback (``score(runner) -> mIoU`` on a
labelled set; the CLI passes segcli's own eval), the export also fails when the
artefact's mIoU is more than ``max_miou_drop`` below the float32 graph's.

The artefact is written under a temporary name next to ``out`` and renamed into
place only when it passes; a failed export leaves nothing at ``out``.

What each format returns:

- savedmodel: signatures ``masks`` (int32 class indices at the input size),
  ``logits`` (float32 at the input size) and ``serving_default`` (masks, or
  logits with ``logits=True``); input ``images`` uint8 [N, H, W, 3].
- onnx / tflite / openvino: float32 ``logits`` at 1/4 of the input size from uint8
  ``images`` [N, H, W, 3]; dynamic N, H, W. Metadata (classes, input size) is
  stored in the ONNX file, next to the TFLite file (``model.tflite.json``) and
  in the OpenVINO IR (and its folder's ``segcli.json``).
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from segcli.data.image_size import parse_image_size
from segcli.errors import UsageError
from segcli.export.formats import (FLOAT_RULE, ExportError, ExportOptions, get_format, masks_of, names)
from segcli.files import file_in_the_way

__all__ = ["ExportError", "ExportReport", "export_model", "FORMATS"]
FORMATS = names()
FLOAT_TOLERANCE = FLOAT_RULE.bound
DEFAULT_SAMPLE_SIZE = (256, 256)
DEFAULT_SAMPLES = 2
EXPORT_FORMAT = "segcli-export-v1"


@dataclass
class ExportReport:
    path: str
    format: str
    quantize: str | None
    precision: str
    runtime: str
    samples: int
    sample_shape: list
    logits_shape: list
    max_abs_diff: float
    mean_abs_diff: float
    mask_agreement: float
    passed: bool
    criterion: str
    size_bytes: int
    seconds: float
    miou_reference: float | None = None
    miou: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def sample_images(count: int, size, seed: int = 0) -> np.ndarray:
    """``count`` deterministic RGB uint8 images of ``size`` (H, W): smooth colour fields plus noise.

    >>> sample_images(2, (40, 56)).shape
    (2, 40, 56, 3)
    """
    import cv2

    h, w = int(size[0]), int(size[1])
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        low = rng.integers(0, 256, (max(2, h // 12), max(2, w // 12), 3)).astype(np.float32)
        smooth = cv2.resize(low, (w, h), interpolation=cv2.INTER_CUBIC)
        out.append(np.clip(smooth + rng.normal(0, 10, smooth.shape), 0, 255).astype(np.uint8))
    return np.stack(out)


def read_samples(folder, size, limit: int = 4, what: str = "samples") -> np.ndarray:
    """Up to ``limit`` images from ``folder`` (searched recursively), resized to ``size`` (H, W)."""
    import cv2

    from segcli.data.image_io import image_folder, is_image_name, read_image

    folder = image_folder(folder, what)
    files = sorted(p for p in folder.rglob("*") if is_image_name(p))
    if not files:
        raise UsageError(f"{what} {folder}: no images (.png, .jpg, ...) in that folder.", value=what)
    h, w = int(size[0]), int(size[1])
    return np.stack([cv2.resize(read_image(p), (w, h), interpolation=cv2.INTER_AREA) for p in files[:limit]])


def _reference(model, images: np.ndarray):
    """The Keras model's own quarter- and full-resolution logits (its unfolded head)."""
    import tensorflow as tf

    quarter = tf.cast(model.quarter_logits(images.astype(np.float32)), tf.float32)
    full = tf.image.resize(quarter, images.shape[1:3], method="bilinear")  # the model's own output resize
    return quarter.numpy(), full.numpy()


def _check_out(fmt, out, overwrite: bool) -> Path:
    out = Path(out)
    if fmt.suffix and out.suffix.lower() != fmt.suffix:
        raise UsageError(f"out {out}: {fmt.a_title} export must end with {fmt.suffix}.")
    foreign = fmt.foreign(out) if out.exists() else None
    if foreign:  # overwrite replaces an earlier export, never a folder or file of the user's
        raise UsageError(f"out {out} {foreign}; choose a new out or move the files.")
    if out.exists() and not overwrite:
        raise UsageError(f"out {out} already exists; pass overwrite=True to replace it.")
    blocker = file_in_the_way(out.parent)
    if blocker is not None:
        raise UsageError(f"out {out}: {blocker} is a file, so nothing can be written there; choose another path.")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"out {out}: cannot write there ({exc.strerror or exc}); choose a writable path.") from None
    return out


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists():
        path.unlink()


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


class GraphRunner:
    """The float32 SegFormer graph as a runner: the reference an accuracy budget is measured against."""

    logits_stride = 4

    def __init__(self, graph, classes, input_size):
        from segcli.graph_function import graph_function

        self.num_classes, self.classes, self.input_size = graph.num_classes, classes, input_size
        self._fn = graph_function(graph.quarter_logits)

    def predict_logits(self, images) -> np.ndarray:
        return self._fn(np.asarray(images, np.uint8)).numpy()


def export_model(spec, fmt: str, out, *, logits: bool = False, quantize: str | None = None, precision: str = "fp32",
                 calib=None, max_miou_drop: float | None = None, score=None, samples=None,
                 sample_count: int = DEFAULT_SAMPLES, sample_size=None, overwrite: bool = False,
                 on_start=None) -> ExportReport:
    """Export model ``spec`` (anything ``segcli.models.load.load`` accepts) and check its parity.

    ``samples`` is a folder of images to check on; without it, the first calibration images when ``calib``
    is given, else ``sample_count`` synthetic images of ``sample_size`` (N or (H, W), at least 32; default: the
    model's input size, else 256x256). ``calib`` is a folder of calibration images (int8).
    ``score(runner) -> mIoU`` with ``max_miou_drop`` gates the accuracy.
    ``on_start()`` is called once the model is loaded, before the export work.
    """
    from segcli.models.load import load
    from segcli.models.segformer.graph import LOGITS_STRIDE, SegFormerGraph

    fmt = get_format(fmt)
    if max_miou_drop is not None and score is None:
        raise UsageError("max_miou_drop needs a scoring function on a labelled set.")
    options = ExportOptions(logits=logits, quantize=quantize, precision=str(precision).lower())
    if options.precision == "int8" and calib is None:
        raise UsageError("precision int8 needs calibration images (a folder of images like the ones to segment).")
    fmt.check(ExportOptions(logits=logits, quantize=quantize, precision=options.precision,
                            calibration=np.zeros((1, 1, 1, 3), np.uint8) if calib else None))
    fmt.require()
    sample_size = None if sample_size is None else parse_image_size(sample_size, "sample size")
    out = _check_out(fmt, out, overwrite)
    start = time.perf_counter()

    loaded = load(spec)
    if not hasattr(loaded.model, "head"):
        raise UsageError(f"model {spec}: export needs a SegFormer segmentation model, not a bare backbone.")
    if on_start:
        on_start()
    num_classes = int(loaded.model.num_classes)
    classes = loaded.classes.complete(num_classes).as_dicts() if loaded.classes else \
        _default_classes(num_classes)
    input_size = tuple(int(s) for s in loaded.input_size) if loaded.input_size else None
    graph = SegFormerGraph(loaded.model)
    size = tuple(int(s) for s in (sample_size or input_size or DEFAULT_SAMPLE_SIZE))
    if calib is not None:
        options.calibration = read_samples(calib, size, limit=300, what="calib")
    # Parity on real images when there are some: smooth synthetic ones give near-tied logits, which understate
    # how often a quantized model picks the same class (the demo model: 94.8% on synthetic, 99.8% on its data).
    images = read_samples(samples, size) if samples else options.calibration[:DEFAULT_SAMPLES] \
        if calib is not None else sample_images(int(sample_count), size)
    quarter_ref, full_ref = _reference(loaded.model, images)

    metadata = {"format": EXPORT_FORMAT, "source": str(spec), "num_classes": num_classes, "classes": classes,
                "input_size": list(input_size) if input_size else None,
                "input": "images: uint8 RGB [N, H, W, 3], values 0-255 (normalised inside)",
                "logits_stride": fmt.logits_stride if fmt.logits_stride != 4 else LOGITS_STRIDE,
                "quantize": quantize, "precision": options.precision, "licence": loaded.record.get("licence")}
    tmp = out.with_name(f".{out.stem}.tmp-{os.getpid()}{out.suffix}")
    _remove(tmp)
    try:
        fmt.write(graph, tmp, options, metadata)
        report = _parity(fmt, tmp, out, images, options, quarter_ref, full_ref)
        if max_miou_drop is not None:
            _budget(report, fmt, tmp, options, score, max_miou_drop, GraphRunner(graph, classes, input_size))
        metadata["parity"] = {k: getattr(report, k) for k in ("runtime", "max_abs_diff", "mask_agreement",
                                                                "sample_shape", "miou_reference", "miou")}
        fmt.finish(tmp, out, metadata)
    finally:
        for path in [tmp, *fmt.leftovers(tmp)]:
            _remove(path)
    report.seconds = round(time.perf_counter() - start, 2)
    return report


def _default_classes(num_classes: int) -> list:
    from segcli.classes import ClassTable

    return ClassTable.from_names([]).complete(num_classes).as_dicts()


def _parity(fmt, tmp: Path, out: Path, images, options, quarter_ref, full_ref) -> ExportReport:
    """The artefact against the Keras model on ``images``; ExportError when the format's rule fails."""
    got, masks, runtime = fmt.measure(tmp, images, options)
    ref = full_ref if fmt.logits_stride == 1 else quarter_ref
    if got.shape != ref.shape:
        raise ExportError(f"{out}: the exported model returns logits of shape {got.shape}, the Keras model "
                          f"{ref.shape}.")
    diff = np.abs(got - ref)
    agreement = float((masks == masks_of(full_ref)).mean())
    rule = fmt.rule(options)
    report = ExportReport(str(out), fmt.name, options.quantize, options.precision, runtime, len(images),
                          list(images.shape), list(got.shape), float(diff.max()), float(diff.mean()), agreement,
                          rule.passed(float(diff.max()), agreement), str(rule), _size(tmp), 0.0)
    if not report.passed:
        raise ExportError(f"{out}: parity check failed ({rule}): max |Δ| {report.max_abs_diff:.3g}, mask "
                          f"agreement {agreement:.2%}; nothing was written.")
    return report


def _budget(report: ExportReport, fmt, tmp: Path, options, score, max_drop: float, reference) -> None:
    """mIoU of the artefact and of the float32 graph on the caller's labelled set; ExportError past the budget."""
    runner = fmt.open_runner(tmp, options.threads, precision=options.precision)
    report.miou_reference, report.miou = float(score(reference)), float(score(runner))
    drop = report.miou_reference - report.miou
    report.criterion += f"; mIoU drop <= {max_drop:g}"
    if drop > max_drop:
        report.passed = False
        raise ExportError(f"{report.path}: mIoU {report.miou:.4f} is {drop:.4f} below the float32 model's "
                          f"{report.miou_reference:.4f}, more than the budget of {max_drop:g}; nothing was written.")
