"""OpenVINO export and runtime: an IR folder (``model.xml`` + ``model.bin`` + ``segcli.json``).

The IR is segcli's own graph (:class:`~segcli.models.segformer.graph.SegFormerGraph`, folded
head included), with uint8 ``images [N, H, W, 3]`` (dynamic N, H, W) in and float32 ``logits``
at 1/4 of the input size out. ``openvino.convert_model`` converts it from a ``tf.function`` up to
the head's per-level projections; :mod:`~segcli.export.openvino_head` writes the rest of the
head in OpenVINO's own ops. segcli's metadata travels inside ``model.xml`` (``rt_info`` key ``segcli``) and, with the
parity report, in ``segcli.json``.

Precision (the ``precision`` export option, and the runner's):

- ``fp32``: float32 compute (``INFERENCE_PRECISION_HINT`` f32), parity max |Δ| <= 1e-4;
- ``bf16``: the same fp32 IR run with the bf16 hint, on CPUs that OpenVINO says have BF16
  (AMX or AVX-512 BF16); refused elsewhere. Parity: mask agreement >= 99 %;
- ``int8``: NNCF post-training quantization on calibration images, ``ModelType.TRANSFORMER`` (LayerNorm,
  GELU and Softmax stay in float, and run in bf16 on CPUs with BF16: :func:`inference_hint`), without
  SmoothQuant, with half-range weights on CPUs without VNNI (see :func:`quantize`; the metadata's
  ``int8_half_range_weights`` says which; a full-range IR run on a CPU without VNNI gets a warning in
  ``runner.warnings``). Parity: mask agreement >= 99 %, plus the caller's mIoU budget.

:mod:`segcli.export.openvino_cache` converts a Keras SegFormer once and keeps the IR and OpenVINO's compiled
blobs under ``segcli_home()/openvino/``, so a second run starts fast (:func:`blob_cache` keeps the blobs of a few
input shapes; see :data:`BLOB_SHAPES`).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np

from segcli.errors import CheckpointError, MissingDependencyError, UsageError
from segcli.export.formats import METADATA_FILE, PRECISIONS, ExportFormat, Runner, read_json

XML, BIN = "model.xml", "model.bin"
#: Folder of OpenVINO's compiled blobs inside a cached conversion (segcli.export.openvino_cache).
BLOBS = "blobs"
RT_KEY = "segcli"
INSTALL = "pip install 'openvino>=2026.4,<2027'"
#: Input shapes an OpenVinoRunner keeps a compiled model for (each compile of B0 takes about a second).
STATIC_SHAPES = 8
#: Input shapes whose compiled blobs a cached conversion keeps on disk per converted model, the most recently used
#: ones. A blob holds the weights (B0: 15 MB) and saves about half of a compile (B0: 0.4 of 0.8 s).
BLOB_SHAPES = 4
#: Calibration images NNCF uses at most (its default subset size).
CALIBRATION_LIMIT = 300


def openvino_module():
    try:
        import openvino
    except ImportError:
        raise MissingDependencyError(f"OpenVINO is not installed: {INSTALL}.") from None
    return openvino


def cpu_capabilities() -> list:
    """OpenVINO's CPU plugin capabilities, e.g. ``['BF16', 'FP32', 'INT8', ...]``."""
    return list(openvino_module().Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))


def inference_hint(precision: str, capabilities=None) -> str:
    """OpenVINO's ``INFERENCE_PRECISION_HINT`` for a segcli precision.

    An int8 IR carries its own quantization; the ops NNCF leaves in float (LayerNorm, GELU, Softmax, the head's
    upsampling) run in bf16 where the CPU has BF16, as OpenVINO itself defaults to on AMX, else in f32. With f32
    float ops int8 was slower than bf16 on both CPUs measured (B0 512x512, batch 1: AMX Xeon 30.6 against
    20.8 ms, EPYC 24.6 against 23.2); with bf16 ones it is 1.63x fp32 on both (benchmarks/NOTES.md row 22).

    >>> inference_hint("int8", ["BF16", "FP32", "INT8"]), inference_hint("int8", ["FP32", "INT8"])
    ('bf16', 'f32')
    """
    if precision == "int8":
        return "bf16" if "BF16" in (cpu_capabilities() if capabilities is None else capabilities) else "f32"
    return {"fp32": "f32", "bf16": "bf16"}[precision]


def check_precision(precision: str) -> str:
    """``precision`` if this CPU can run it; UsageError naming the value otherwise."""
    if precision not in PRECISIONS:
        raise UsageError(f"precision {precision}: use one of {', '.join(PRECISIONS)}.")
    if precision == "bf16" and "BF16" not in cpu_capabilities():
        raise UsageError("precision bf16: this CPU has neither AMX nor AVX-512 BF16 (OpenVINO reports "
                         f"{', '.join(cpu_capabilities())}); use fp32 or int8.")
    return precision


def convert(graph, precision: str = "fp32", calibration=None, metadata: dict | None = None):
    """An ``openvino.Model`` of ``graph``'s quarter-resolution logits (int8: quantized with ``calibration``)."""
    ov = openvino_module()
    import tensorflow as tf

    from segcli.graph_function import graph_function
    from segcli.export.openvino_head import LEVEL_NAMES, LOGITS, add_folded_tail

    @graph_function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")])
    def outputs(images):
        if graph.folded:  # TensorFlow up to the level projections; the head's tail in OpenVINO's own ops
            return dict(zip(LEVEL_NAMES, graph.level_projections(images)))
        return {LOGITS: graph.quarter_logits(images)}

    model = ov.convert_model(outputs)
    if graph.folded:
        model = add_folded_tail(model, graph.folded_head)
    if precision == "int8":
        model, halved = quantize(model, calibration)
        if metadata is not None:
            metadata["int8_half_range_weights"] = halved
    if metadata:
        model.set_rt_info(json.dumps(metadata), [RT_KEY])
    return model


def quantize(model, calibration):
    """NNCF post-training int8 quantization of ``model`` on RGB uint8 ``calibration`` images (N, H, W, 3).

    Returns the quantized model and whether its weights use half the int8 range. They do on a CPU without
    VNNI (:func:`segcli.hardware.has_vnni`): there int8 products are summed in pairs into int16, which
    saturates with full-range weights (NNCF's ``OverflowFix.ENABLE``). On an AVX2-only AMD EPYC the tiny
    trained model of the tests kept 97.0 % of fp32's masks with NNCF's default (half range in the first layer
    only) and passed the 99 % gate with half range everywhere. With VNNI the full range is kept.
    """
    if calibration is None or len(calibration) == 0:
        raise UsageError("precision int8 needs calibration images (a folder of images like the ones to segment).")
    try:
        import nncf
    except ImportError:
        raise MissingDependencyError("int8 quantization needs NNCF: pip install nncf.") from None
    import logging
    import sys

    nncf.set_log_level(logging.ERROR)
    images = [np.asarray(image[None], np.uint8) for image in calibration[:CALIBRATION_LIMIT]]
    # No SmoothQuant: its per-channel Multiply sits between each MatMul and the layout Transpose before it
    # (the Mix-FFN's depthwise conv is NCHW in the IR), and OpenVINO's CPU plugin then runs those Transposes
    # in float32 instead of folding them away (benchmarks/NOTES.md row 19, RESULTS_int8.md).
    from segcli.hardware import has_vnni

    halved = not has_vnni()
    parameters = nncf.AdvancedQuantizationParameters(
        smooth_quant_alphas=nncf.AdvancedSmoothQuantParameters(matmul=-1),
        **({"overflow_fix": nncf.OverflowFix.ENABLE} if halved else {}))
    with contextlib.redirect_stdout(sys.stderr):  # its progress bars would spoil JSON on stdout
        quantized = nncf.quantize(model, nncf.Dataset(images), model_type=nncf.ModelType.TRANSFORMER,
                                  subset_size=len(images), advanced_parameters=parameters)
    return quantized, halved


def _int8_range_warnings(xml: Path, meta: dict) -> tuple:
    """A warning when an int8 IR with full-range weights runs on a CPU without VNNI, where they saturate."""
    from segcli.hardware import has_vnni

    if meta.get("int8_half_range_weights") or has_vnni():
        return ()
    return (f"{xml}: this int8 IR has full-range weights, which suit CPUs with VNNI; this CPU has none, so its "
            f"masks may lose accuracy here; export it again on this kind of CPU.",)


def _xml(path) -> Path:
    path = Path(path)
    return path / XML if path.is_dir() else path


class OpenVinoRunner(Runner):
    """An OpenVINO IR on the CPU plugin, at ``precision`` (default: the precision it was exported for)."""

    def __init__(self, path, threads: int | None = None, precision: str | None = None, cache_dir=None,
                 model=None):
        ov = openvino_module()
        xml = _xml(path)
        core = ov.Core()
        if model is None:
            if not xml.is_file():
                raise CheckpointError(f"{path}: no {XML} there; export with format openvino first.")
            try:
                model = core.read_model(str(xml))
            except RuntimeError as exc:
                raise CheckpointError(f"{xml}: OpenVINO cannot read it ({str(exc).splitlines()[0]}).") from None
        meta = json.loads(model.get_rt_info([RT_KEY]).astype(str)) if model.has_rt_info([RT_KEY]) else {}
        meta = {**meta, **read_json(xml.parent / METADATA_FILE)}
        last = model.outputs[0].get_partial_shape()[-1]
        self._init_meta(meta, last.get_length() if last.is_static else None)
        exported = meta.get("precision") or "fp32"
        if precision == "int8" and exported != "int8":
            raise UsageError(f"precision int8: {xml} is a {exported} IR; export it with precision int8 and "
                             f"calibration images.")
        self.precision = check_precision(precision if precision and exported != "int8" else exported)
        self.warnings = _int8_range_warnings(xml, meta) if self.precision == "int8" else ()
        self._config = {"INFERENCE_PRECISION_HINT": inference_hint(self.precision), "PERFORMANCE_HINT": "LATENCY"}
        if threads:
            self._config["INFERENCE_NUM_THREADS"] = int(threads)
        self._blobs, self._since = (Path(cache_dir) if cache_dir else None), time.time()
        self._core, self._model = core, model
        self._requests: dict[tuple, object] = {}
        self.runtime = f"openvino {ov.get_version().split('-')[0]} (CPU, {self.precision})"

    def request_for(self, shape: tuple):
        """An infer request of the model compiled for this exact input shape (the last STATIC_SHAPES kept).

        OpenVINO's CPU plugin is much faster on static shapes (B0 512x512: 64 against 114 ms/img at fp32,
        42 against 74 at bf16, measured here), so each batch shape gets its own compiled model.
        """
        request = self._requests.get(shape)
        if request is None:
            model = self._model
            if model.inputs[0].get_partial_shape().is_dynamic:
                model = model.clone()
                model.reshape(list(shape))
            if len(self._requests) >= STATIC_SHAPES:
                self._requests.pop(next(iter(self._requests)))
            config = {**self._config, **blob_cache(self._blobs, shape, self._since)}
            request = self._requests[shape] = self._core.compile_model(model, "CPU", config).create_infer_request()
        return request

    def predict_logits(self, images) -> np.ndarray:
        images = self._check(images)
        request = self.request_for(tuple(images.shape))
        request.infer({0: images}, share_inputs=True)
        return np.array(request.get_output_tensor(0).data, dtype=np.float32, copy=True)


def blob_cache(blobs: Path | None, shape: tuple, since: float = 0.0) -> dict:
    """OpenVINO's ``CACHE_DIR`` for the compiled blob of input ``shape``: its own folder below ``blobs``.

    OpenVINO keys a blob by the model it compiles, which is the IR reshaped to one static shape, so every
    shape writes a blob of its own, weights included (``CACHE_MODE`` ``OPTIMIZE_SIZE`` leaves them out, but a
    reshaped model then compiles as slowly as without a cache). One folder per shape makes them countable:
    at most :data:`BLOB_SHAPES` stay. A new shape replaces the least recently used ones not used since
    ``since`` (the runner's start); when all were, it is compiled without a blob, so that a run over more
    sizes keeps hitting its first ones instead of replacing them all in turn. A folder that cannot be
    written is read if it exists and otherwise left out (OpenVINO fails where it cannot create one).
    """
    if blobs is None:
        return {}
    folder = blobs / "x".join(str(int(n)) for n in shape)
    if folder.is_dir():
        with contextlib.suppress(OSError):
            os.utime(folder)  # most recently used
        return {"CACHE_DIR": str(folder)}
    try:
        blobs.mkdir(exist_ok=True)  # not its parents: a conversion deleted meanwhile stays deleted
        kept = sorted((f for f in blobs.iterdir() if f.is_dir()), key=_mtime)
        unused = [f for f in kept if _mtime(f) < since]
        excess = len(kept) + 1 - BLOB_SHAPES
        if excess > len(unused):
            return {}
        for old in unused[:max(excess, 0)]:
            shutil.rmtree(old, ignore_errors=True)
        folder.mkdir(exist_ok=True)
    except OSError:
        return {}
    return {"CACHE_DIR": str(folder)}


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:  # deleted meanwhile by another run
        return 0.0


class OpenVinoFormat(ExportFormat):
    name, title, folder_file, order = "openvino", "OpenVINO", XML, 40
    writes = (XML, BIN)

    def require(self) -> None:
        openvino_module()

    def check(self, options) -> None:
        if options.logits or options.quantize:
            super().check(type(options)(logits=options.logits, quantize=options.quantize))
        check_precision(options.precision)
        if options.precision == "int8" and (options.calibration is None or not len(options.calibration)):
            raise UsageError("precision int8 needs calibration images (a folder of images like the ones to "
                             "segment).")

    def matches(self, path: Path) -> bool:
        return path.suffix.lower() == ".xml" or (path / XML).is_file()

    def write(self, graph, path, options, metadata) -> None:
        ov = openvino_module()
        model = convert(graph, options.precision, options.calibration, metadata)
        Path(path).mkdir(parents=True, exist_ok=True)
        ov.save_model(model, str(Path(path) / XML), compress_to_fp16=False)

    def open_runner(self, path, threads=None, precision=None, **kwargs):
        return OpenVinoRunner(path, threads, precision)


FORMAT = OpenVinoFormat()
