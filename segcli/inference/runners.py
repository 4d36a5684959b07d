"""Open whatever ``--model`` names as something predict, eval and bench can run.

:func:`open_model` asks the one resolver (:func:`segcli.checkpoints.resolve.resolve`)
what the spec is. Keras checkpoints are built by :func:`segcli.models.load.load`
and run by :class:`~segcli.inference.predictor.Segmenter` through TensorFlow;
exported files are opened by their export format's runner. Either way the
result carries exactly ``num_classes`` classes (names and colours completed
where the checkpoint does not give them) and the input size the checkpoint was
trained at, when it says.

A runner (the protocol :class:`~segcli.inference.predictor.Segmenter` drives besides
Keras models) has ``predict_logits(uint8 (B, H, W, 3)) -> float32 (B, h, w, C)``,
``num_classes``, ``input_size`` ((H, W) or None) and ``classes``.

>>> opened = open_model("segformer_test_untrained_is_refused") # doctest: +IGNORE_EXCEPTION_DETAIL
Traceback (most recent call last):
segcli.errors.CheckpointError: Unknown model 'segformer_test_untrained_is_refused': ...
"""

from __future__ import annotations

from dataclasses import dataclass

from segcli.checkpoints.resolve import DEFAULT_MODEL, ModelRef, resolve, spec_from_env
from segcli.classes import ClassTable
from segcli.errors import UsageError, WeightsNotFoundError


@dataclass
class OpenedModel:
    """A model ready for :class:`~segcli.inference.predictor.Segmenter`, with its classes and input size."""

    model: object
    classes: ClassTable
    name: str = ""
    input_size: tuple | None = None
    ref: ModelRef | None = None

    @property
    def class_names(self) -> list[str]:
        return list(self.classes.names)

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def open_model(spec=None) -> OpenedModel:
    """Open the model that ``spec`` (else ``$SEGCLI_MODEL``, else the default preset) names."""
    ref = resolve(spec_from_env(spec))
    if ref.kind == "exported":
        return _open_exported(ref)
    if ref.kind == "preset":
        _refuse_untrained(ref)
    from segcli.models.load import load

    try:
        loaded = load(ref)
    except WeightsNotFoundError:
        name = ref.spec
        raise WeightsNotFoundError(
            f"Model '{name}' is not in the weights cache. Run `segcli weights fetch {name}` (needs network), or "
            f"`segcli weights import CHECKPOINT_DIR --as {name}`, or give a run directory or .keras file.") from None
    model = loaded.model
    if not hasattr(model, "num_classes"):  # a plain Keras segmentation model
        model.num_classes = int(model.output_shape[-1])
    classes = (loaded.classes or ClassTable.from_names([])).complete(int(model.num_classes))
    return OpenedModel(model, classes, ref.spec, loaded.input_size, ref)


def _refuse_untrained(ref: ModelRef) -> None:
    preset = ref.preset
    if preset["model"] != "segmenter" or preset.get("weights_scope") != "segmenter":
        raise UsageError(f"Preset '{ref.spec}' has no trained segmentation head, so its masks would be random; "
                         f"give a run directory, a .keras file or a fine-tuned preset such as {DEFAULT_MODEL} "
                         f"(see `segcli presets`).")


def _open_exported(ref: ModelRef) -> OpenedModel:
    from segcli.export.runtimes import open_runtime

    runner = open_runtime(ref.path)
    given = ClassTable.from_dicts(runner.classes, source=str(ref.path)) if runner.classes else \
        ClassTable.from_names([])
    return OpenedModel(runner, given.complete(int(runner.num_classes)), ref.spec, runner.input_size, ref)
