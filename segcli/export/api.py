"""``segcli export``: write a model as SavedModel, ONNX or TFLite, then check it in its own runtime.

After writing, the artefact is loaded in the runtime that will serve it
(TensorFlow for SavedModel, ONNX Runtime for ONNX, the TFLite interpreter for
TFLite) and run on sample images next to the Keras model. The report gives
the max |Δ| of the logits and the share of pixels whose class (argmax at the
input size) agrees.

- float32 artefacts fail above :data:`FLOAT_TOLERANCE` (1e-4) max |Δ|;
- quantized TFLite (float16, dynamic-range int8) fails below
  :data:`MIN_AGREEMENT` (99 %) mask agreement.

The artefact is written under a temporary name next to ``out`` and renamed
into place only when it passes; a failed export leaves nothing at ``out``.

What each format returns:

- SavedModel: signatures ``masks`` (int32 class indices at the input size),
  ``logits`` (float32 at the input size) and ``serving_default`` (masks, or
  logits with ``logits=True``); input ``images`` uint8 [N, H, W, 3].
- ONNX / TFLite: float32 ``logits`` at 1/4 of the input size from uint8
  ``images`` [N, H, W, 3]; dynamic N, H, W. Metadata (classes, input size) is
  stored in the ONNX file and next to the TFLite file (``model.tflite.json``).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from segcli.errors import SegcliError, UsageError

FORMATS = ("savedmodel", "onnx", "tflite")
SUFFIX = {"onnx": ".onnx", "tflite": ".tflite"}
FLOAT_TOLERANCE = 1e-4
MIN_AGREEMENT = 0.99
DEFAULT_SAMPLE_SIZE = (256, 256)
DEFAULT_SAMPLES = 2
EXPORT_FORMAT = "segcli-export-v1"


class ExportError(SegcliError):
    """An export was written but failed its parity check, or could not be converted."""


@dataclass
class ExportReport:
    path: str
    format: str
    quantize: str | None
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


def read_samples(folder, size, limit: int = 4) -> np.ndarray:
    """Up to ``limit`` images from ``folder``, resized to ``size`` (H, W)."""
    import cv2

    from segcli.data.image_io import read_image

    folder = Path(folder)
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp", ".webp",
                                                                      ".tif", ".tiff")) if folder.is_dir() else []
    if not files:
        raise UsageError(f"--samples {folder}: no images (.png, .jpg, ...) in that folder.")
    h, w = int(size[0]), int(size[1])
    return np.stack([cv2.resize(read_image(p), (w, h), interpolation=cv2.INTER_AREA) for p in files[:limit]])


def _model_info(spec):
    """(Loaded, classes, input_size or None) for ``--model``."""
    from segcli.checkpoints.resolve import complete_classes, read_class_file
    from segcli.models.load import load
    from segcli.models.registry import PRESETS

    loaded = load(spec)
    model = loaded.model
    if not hasattr(model, "num_classes"):
        raise UsageError(f"--model {spec}: export needs a segmentation model, not a bare backbone.")
    classes = loaded.classes
    path = Path(str(spec))
    if not classes and path.exists():
        classes = read_class_file(path if path.is_dir() else path.parent)
    shape = tuple(model.input_shape[1:3])
    size = shape if all(isinstance(s, int) for s in shape) else None
    size = size or loaded.record.get("input_size") or PRESETS.get(str(spec), {}).get("input_size")
    return loaded, complete_classes(classes, int(model.num_classes)), (tuple(int(s) for s in size) if size else None)


def _reference(model, images: np.ndarray):
    """The Keras model's own quarter- and full-resolution logits."""
    import keras

    net = keras.Model(model.input, [model.get_layer("classifier").output, model.get_layer("resize_logits").output])
    quarter, full = net(images.astype(np.float32), training=False)
    return np.asarray(quarter, np.float32), np.asarray(full, np.float32)


def _upsample(logits: np.ndarray, size) -> np.ndarray:
    import tensorflow as tf

    return tf.image.resize(logits, size, method="bilinear").numpy()


def _masks(logits: np.ndarray) -> np.ndarray:
    return (logits[..., 0] > 0).astype(np.int32) if logits.shape[-1] == 1 else logits.argmax(-1).astype(np.int32)


def _check_out(fmt: str, out: Path, overwrite: bool) -> Path:
    out = Path(out)
    if fmt in SUFFIX and out.suffix.lower() != SUFFIX[fmt]:
        raise UsageError(f"--out {out}: a {fmt} export must end with {SUFFIX[fmt]}.")
    if out.exists() and not overwrite:
        raise UsageError(f"--out {out} already exists; pass --overwrite to replace it.")
    if not out.parent.exists():
        out.parent.mkdir(parents=True)
    return out


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists():
        path.unlink()


def _measure(fmt: str, tmp: Path, images: np.ndarray, logits: bool):
    """(artefact logits, artefact full-size masks, runtime name) on ``images``."""
    size = images.shape[1:3]
    if fmt == "savedmodel":
        from segcli.export.savedmodel_format import SavedModelRunner

        runner = SavedModelRunner(tmp)
        got = runner.full_logits(images)
        masks = runner.masks(images)
        default = runner.serving_default(images)
        if ("logits" if logits else "masks") not in default:
            raise ExportError(f"{tmp}: serving_default returns {sorted(default)}, not the expected output.")
        import tensorflow as tf

        return got, masks, f"tensorflow {tf.__version__} (tf.saved_model.load)"
    from segcli.export.runtimes import open_runtime

    runner = open_runtime(tmp)
    got = runner.predict_logits(images)
    name = getattr(runner, "runtime_version", None)
    runtime = f"onnxruntime {name}" if fmt == "onnx" else runner.runtime
    return got, _masks(_upsample(got, size)), runtime


def export_model(spec, fmt: str, out, *, logits: bool = False, quantize: str | None = None, samples=None,
                 sample_count: int = DEFAULT_SAMPLES, sample_size=None, overwrite: bool = False) -> ExportReport:
    """Export model ``spec`` (anything ``segcli.models.load.load`` accepts) and check its parity.

    ``samples`` is a folder of images to check on; without it, ``sample_count``
    synthetic images of ``sample_size`` (default: the model's input size, else
    256x256) are used.
    """
    fmt = str(fmt).lower()
    if fmt not in FORMATS:
        raise UsageError(f"--format {fmt}: use one of {', '.join(FORMATS)}.")
    if quantize is not None and fmt != "tflite":
        raise UsageError(f"--quantize {quantize}: only TFLite exports can be quantized.")
    if quantize is not None and quantize not in ("float16", "int8"):
        raise UsageError(f"--quantize {quantize}: use float16 or int8 (dynamic range).")
    if logits and fmt != "savedmodel":
        raise UsageError(f"--logits applies to SavedModel; {fmt} exports always return logits at 1/4 resolution.")
    if fmt == "onnx":
        from segcli.export.onnx_format import require

        require()
    out = _check_out(fmt, out, overwrite)
    start = time.perf_counter()

    from segcli.export.graph import LOGITS_STRIDE, SegFormerGraph

    loaded, classes, input_size = _model_info(spec)
    graph = SegFormerGraph(loaded.model)
    size = tuple(int(s) for s in (sample_size or input_size or DEFAULT_SAMPLE_SIZE))
    images = read_samples(samples, size) if samples else sample_images(int(sample_count), size)
    quarter_ref, full_ref = _reference(loaded.model, images)

    metadata = {"format": EXPORT_FORMAT, "source": str(spec), "num_classes": int(loaded.model.num_classes),
                "classes": classes, "input_size": list(input_size) if input_size else None,
                "input": "images: uint8 RGB [N, H, W, 3], values 0-255 (normalised inside)",
                "logits_stride": LOGITS_STRIDE if fmt != "savedmodel" else 1,
                "quantize": quantize, "licence": loaded.record.get("licence")}
    tmp = out.with_name(f".{out.stem}.tmp-{os.getpid()}{out.suffix}")
    _remove(tmp)
    try:
        _write(fmt, graph, tmp, logits, quantize, metadata)
        got, masks, runtime = _measure(fmt, tmp, images, logits)
        ref = full_ref if fmt == "savedmodel" else quarter_ref
        if got.shape != ref.shape:
            raise ExportError(f"{out}: the exported model returns logits of shape {got.shape}, the Keras model "
                              f"{ref.shape}.")
        diff = np.abs(got - ref)
        agreement = float((masks == _masks(full_ref)).mean())
        if quantize:
            passed, criterion = agreement >= MIN_AGREEMENT, f"mask agreement >= {MIN_AGREEMENT:.0%}"
        else:
            passed, criterion = float(diff.max()) <= FLOAT_TOLERANCE, f"max |Δ| <= {FLOAT_TOLERANCE:g}"
        report = ExportReport(str(out), fmt, quantize, runtime, len(images), list(images.shape), list(got.shape),
                              float(diff.max()), float(diff.mean()), agreement, passed, criterion,
                              _size(tmp), 0.0)
        if not passed:
            raise ExportError(f"{out}: parity check failed ({criterion}): max |Δ| {report.max_abs_diff:.3g}, mask "
                              f"agreement {agreement:.2%}; nothing was written.")
        metadata["parity"] = {k: getattr(report, k) for k in ("runtime", "max_abs_diff", "mask_agreement",
                                                                "sample_shape")}
        _finish(fmt, tmp, out, metadata)
    finally:
        _remove(tmp)
        if fmt == "tflite":
            _remove(Path(f"{tmp}.json"))
    report.seconds = round(time.perf_counter() - start, 2)
    return report


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def _write(fmt, graph, tmp: Path, logits, quantize, metadata) -> None:
    if fmt == "savedmodel":
        from segcli.export import savedmodel_format as export_savedmodel

        export_savedmodel.write(graph, tmp, logits=logits)
    elif fmt == "onnx":
        from segcli.export import onnx_format as export_onnx

        export_onnx.write(graph, tmp, metadata)
    else:
        from segcli.export import tflite_format as export_tflite

        try:
            export_tflite.write(graph, tmp, quantize)
        except Exception as exc:  # the converter raises ConverterError and others
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ExportError(f"TFLite conversion failed ({first}).") from None


def _finish(fmt: str, tmp: Path, out: Path, metadata: dict) -> None:
    """Put the checked artefact (and its metadata) in place: write new, then rename over the old."""
    from segcli.export.runtimes import sidecar_path

    if fmt == "savedmodel":
        (tmp / "segcli.json").write_text(json.dumps(metadata, indent=2) + "\n")
    if fmt == "tflite":
        side_tmp = Path(f"{tmp}.json")
        side_tmp.write_text(json.dumps(metadata, indent=2) + "\n")
        os.replace(side_tmp, sidecar_path(out))
    if out.is_dir():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        out.rename(old)
        tmp.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)
