"""Open whatever ``--model`` names as something predict, eval and bench can run.

:func:`open_model` asks the one resolver (:func:`segcli.checkpoints.resolve.resolve`)
what the spec is. Keras checkpoints are built by :func:`segcli.models.load.load`
and run by :class:`~segcli.inference.predictor.Predictor` through TensorFlow;
exported files are opened by their export format's runner. Either way the
result carries exactly ``num_classes`` classes (names and colours completed
where the checkpoint does not give them) and the input size the checkpoint was
trained at, when it says.

A runner (the protocol :class:`~segcli.inference.predictor.Predictor` drives besides
Keras models) has ``predict_logits(uint8 (B, H, W, 3)) -> float32 (B, h, w, C)``,
``num_classes``, ``input_size`` ((H, W) or None) and ``classes``.

``backend`` chooses the engine for a Keras checkpoint: ``tensorflow``, ``openvino``
(converted once and cached under ``$SEGCLI_HOME/openvino``), or ``auto``
(:func:`auto_backend`: OpenVINO on CPU-only machines where it is installed, else
TensorFlow). Exported files run in their own runtime. ``precision`` is ``fp32``
or, on OpenVINO with a CPU that has AMX or AVX-512 BF16, ``bf16``; ``int8`` runs
an int8 IR made by ``segcli export --precision int8``, which checks the accuracy
budget first; ``auto`` (:func:`auto_precision`) is bf16 where OpenVINO runs on
such a CPU, else fp32 (an int8 IR stays int8).

>>> opened = open_model("segformer_test_untrained_is_refused") # doctest: +IGNORE_EXCEPTION_DETAIL
Traceback (most recent call last):
segcli.errors.PresetError: Unknown model 'segformer_test_untrained_is_refused': ...
"""

from __future__ import annotations

from dataclasses import dataclass

from segcli.checkpoints.resolve import DEFAULT_MODEL, ModelRef, resolve, spec_from_env
from segcli.classes import ClassTable
from segcli.errors import UsageError, WeightsNotFoundError

BACKENDS = ("auto", "tensorflow", "openvino", "onnxruntime")
PRECISIONS = ("auto", "fp32", "bf16", "int8")
#: The runtime that runs each exported format.
FORMAT_BACKENDS = {"onnx": "onnxruntime", "openvino": "openvino", "tflite": "tflite", "savedmodel": "tensorflow"}


@dataclass
class OpenedModel:
    """A model ready for :class:`~segcli.inference.predictor.Predictor`, with its classes and input size."""

    model: object
    classes: ClassTable
    name: str = ""
    input_size: tuple | None = None
    ref: ModelRef | None = None
    backend: str = "tensorflow"
    precision: str = "fp32"

    @property
    def engine(self) -> str:
        """What runs the model and at which precision, e.g. ``openvino bf16`` (shown by predict and eval)."""
        return f"{self.backend} {self.precision}"

    @property
    def warnings(self) -> tuple:
        """One-line warnings about running this model on this machine (from an exported file's runner)."""
        return tuple(getattr(self.model, "warnings", ()))

    def default_batch_size(self) -> int:
        """Images per network call when the user gives none: 8 for TensorFlow on a GPU, else 1.

        On a CPU, batch 1 was the fastest end to end (benchmarks/PREDICT_BATCH.md: B0 512x512 on an AVX2 EPYC,
        batch 8 at 0.65x batch 1's img/s on OpenVINO and 0.72x on TensorFlow; compare_peers.py found batch 1
        best for every OpenVINO route on three CPUs but one tie). A GPU needs batches to fill it.
        """
        if self.backend != "tensorflow":
            return 1
        import tensorflow as tf

        return 8 if tf.config.list_physical_devices("GPU") else 1

    @property
    def class_names(self) -> list[str]:
        return list(self.classes.names)

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def open_model(spec=None, backend: str = "auto", precision: str = "auto") -> OpenedModel:
    """Open the model that ``spec`` (else ``$SEGCLI_MODEL``, else the default preset) names, on ``backend``."""
    _check_choice(backend, BACKENDS, "backend")
    _check_choice(precision, PRECISIONS, "precision")
    ref = resolve(spec_from_env(spec))
    if ref.kind == "exported":
        return _open_exported(ref, backend, precision)
    if ref.kind == "preset":
        _refuse_untrained(ref)
    engine = auto_backend(precision) if backend == "auto" else backend
    precision = auto_precision(engine) if precision == "auto" else precision
    _check_engine(engine, precision, ref)
    fingerprint = None
    if engine == "openvino":
        from segcli.checkpoints.fingerprint import checkpoint_fingerprint

        fingerprint = checkpoint_fingerprint(ref)
        converted = _open_converted(ref, fingerprint, precision) if fingerprint else None
        if converted is not None:
            return converted
    loaded = _load(ref)
    model = loaded.model
    if not hasattr(model, "num_classes"):  # a plain Keras segmentation model
        model.num_classes = int(model.output_shape[-1])
    classes = _completed(loaded.classes, model.num_classes)
    if engine == "openvino" and hasattr(model, "head"):
        from segcli.export.openvino_cache import cached_runner

        # Only a checkpoint's own trained classifier makes the same model every time it loads.
        model = cached_runner(model, loaded.input_size, precision,
                              fingerprint=fingerprint if loaded.trained_classes is not None else None)
    elif precision != "fp32" or engine == "openvino":
        raise UsageError(f"precision {precision} on backend {engine}: TensorFlow runs fp32 here (its bf16 was "
                         f"measured no faster on CPU); use backend openvino.", value="precision")
    return OpenedModel(model, classes, ref.spec, loaded.input_size, ref, engine, precision)


def _open_converted(ref: ModelRef, fingerprint: str, precision: str) -> OpenedModel | None:
    """The checkpoint's OpenVINO conversion from an earlier run, opened without TensorFlow or a Keras load."""
    from segcli.export.openvino_cache import runner_for_checkpoint

    runner = runner_for_checkpoint(fingerprint, precision)
    if runner is None:
        return None
    from segcli.models.load import kept_classes

    classes = _completed(kept_classes(ref.classes, runner), runner.num_classes)
    return OpenedModel(runner, classes, ref.spec, runner.input_size, ref, "openvino", runner.precision)


def _completed(classes: ClassTable | None, num_classes: int) -> ClassTable:
    """``classes`` completed to ``num_classes`` (``class_<i>`` names where none are known)."""
    return (classes or ClassTable.from_names([])).complete(int(num_classes))


def _load(ref: ModelRef):
    from segcli.models.load import load

    try:
        return load(ref)
    except WeightsNotFoundError:
        name = ref.spec
        raise WeightsNotFoundError(
            f"Model '{name}' is not in the weights cache. Run `segcli weights fetch {name}` (needs network), or "
            f"`segcli weights import CHECKPOINT_DIR --as {name}`, or give a run directory or .keras file.") from None


def _check_engine(engine: str, precision: str, ref: ModelRef) -> None:
    """UsageError for an engine or precision that cannot run a checkpoint (before anything loads)."""
    if engine == "onnxruntime":
        raise UsageError(f"backend onnxruntime runs exported .onnx files; export {ref.spec} first "
                         f"(`segcli export --format onnx`) or use backend tensorflow or openvino.", value="backend")
    if precision == "int8":
        raise UsageError("precision int8 runs an int8 OpenVINO IR, which `segcli export --format openvino "
                         "--precision int8 --calib DIR --data DIR` makes after checking its mIoU budget; pass that "
                         "IR as the model.", value="precision")


def auto_backend(precision: str = "fp32") -> str:
    """OpenVINO on a CPU-only machine where it is installed; TensorFlow on GPUs and where OpenVINO is missing.

    Measured, not assumed (benchmarks/RESULTS.md, B0 512x512 end to end on an AMD EPYC with AVX-512 BF16):
    OpenVINO on segcli's static-shape IR is faster than segcli's folded TensorFlow graph at fp32, and
    only OpenVINO runs bf16 and int8.
    """
    if precision not in ("fp32", "auto"):
        return "openvino"
    try:
        import openvino  # noqa: F401
    except ImportError:
        return "tensorflow"
    from segcli.hardware import tensorflow_gpu_ruled_out

    if tensorflow_gpu_ruled_out():
        return "openvino"
    import tensorflow as tf

    return "tensorflow" if tf.config.list_physical_devices("GPU") else "openvino"


def auto_precision(engine: str) -> str:
    """bf16 where OpenVINO runs on a CPU with AMX or AVX-512 BF16, else fp32: what ``--precision auto`` picks.

    The rule (issue 12): a lower precision becomes the default only where it keeps >= 99.5 % mask agreement
    with fp32 on trained models. bf16 did (benchmarks/RESULTS_trained.md: the demo model and a B0 trained at
    512 px); int8 did not on the 512 px model, so it stays opt-in.
    """
    if engine != "openvino":
        return "fp32"
    from segcli.export.openvino_format import cpu_capabilities

    return "bf16" if "BF16" in cpu_capabilities() else "fp32"


def _check_choice(value: str, choices: tuple, name: str) -> None:
    if value not in choices:
        raise UsageError(f"{name} {value!r}: use one of {', '.join(choices)}.", value=name)


def _refuse_untrained(ref: ModelRef) -> None:
    preset = ref.preset
    if preset["model"] != "segmenter" or preset.get("weights_scope") != "segmenter":
        raise UsageError(f"Preset '{ref.spec}' has no trained segmentation head, so its masks would be random; "
                         f"give a run directory, a .keras file or a fine-tuned preset such as {DEFAULT_MODEL} "
                         f"(see `segcli presets`).")


def _open_exported(ref: ModelRef, backend: str, precision: str) -> OpenedModel:
    from segcli.export.formats import format_for_path

    fmt = format_for_path(ref.path)
    engine = FORMAT_BACKENDS.get(fmt.name, fmt.name)
    if backend not in ("auto", engine):
        raise UsageError(f"backend {backend}: {ref.path} is a {fmt.name} export, which runs in {engine}.",
                         value="backend")
    if precision == "auto":
        precision = auto_precision(engine)
    if precision != "fp32" and fmt.name != "openvino":
        raise UsageError(f"precision {precision}: {ref.path} is a {fmt.name} export; only OpenVINO IRs run at "
                         f"bf16 or int8 (`segcli export --format openvino --precision ...`).", value="precision")
    runner = fmt.open_runner(ref.path, None, precision=precision)
    given = ClassTable.from_dicts(runner.classes, source=str(ref.path)) if runner.classes else None
    return OpenedModel(runner, _completed(given, runner.num_classes), ref.spec, runner.input_size, ref, engine,
                       getattr(runner, "precision", "fp32"))
