"""The one model factory: every command and ``from_preset`` builds Keras models here.

What a spec names is decided once, by :func:`segcli.checkpoints.resolve.resolve`
(a preset, a name in the weights cache, a ``.keras`` file, a run directory, a
weights folder, a Hugging Face or keras-hub folder); this module builds the model
for the :class:`~segcli.checkpoints.resolve.ModelRef` it returns.

>>> model = create_model("segformer_test", num_classes=4)
>>> type(model).__name__, model.num_classes
('SegFormer', 4)
"""

from __future__ import annotations

import tempfile
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

from segcli.checkpoints.resolve import ModelRef, resolve
from segcli.classes import ClassTable
from segcli.errors import CheckpointError, ModelError, WeightsNotFoundError
from segcli.models import factory_hook
from segcli.models.arguments import image_shape, whole_number
from segcli.models.mit.presets import BACKBONE_CLASS as MIT_BACKBONE
from segcli.models.registry import PRESETS, SEGMENTER_ROW_CLASSES, has_weights

DEFAULT_PROJECTION_FILTERS = 256
WEIGHTS_FORMAT = "segcli-weights-v1"


@dataclass
class Loaded:
    """A built model plus what is known about its classes, origin and input size."""

    model: object
    classes: ClassTable | None = None
    source: str = ""
    record: dict = field(default_factory=dict)
    input_size: tuple | None = None
    trained_classes: int | None = None  # the class count of the checkpoint's own classifier, when it has one


@dataclass(frozen=True)
class Request:
    """What the caller wants built: a "segmenter" or a "backbone", and how."""

    want: str = "segmenter"
    num_classes: int | None = None
    load_weights: bool | None = None
    input_shape: tuple | None = None
    projection_filters: int | None = None
    activation: str | None = "auto"


def _mit_backbone():
    from segcli.models.mit.backbone import MiTBackbone

    return MiTBackbone


#: Backbone classes by registered name (preset rows and weights records store it): one line per family.
BACKBONES = {MIT_BACKBONE: _mit_backbone}


def _backbone(config: dict, input_shape, class_name: str | None = None):
    class_name = class_name or MIT_BACKBONE  # records written before 0.2 did not store it; they are all MiT
    if class_name not in BACKBONES:
        raise CheckpointError(f"backbone class {class_name!r} is not one segcli knows ({', '.join(BACKBONES)}); "
                              f"this checkpoint needs a newer segcli.")
    config = {k: v for k, v in config.items() if k not in ("name", "trainable")}
    if input_shape is not None:
        config["input_shape"] = tuple(input_shape)
    return BACKBONES[class_name]().from_config(config)


def _new_head(backbone, req: Request, what: str, projection_filters=None, default_classes=None):
    from segcli.models.segformer.model import SegFormer

    num_classes = req.num_classes
    if num_classes is None and default_classes:
        warnings.warn(f"{what}: num_classes not given; using {default_classes}, the preset table's default. "
                      f"Pass num_classes for your data.", UserWarning, stacklevel=5)
        num_classes = default_classes
    if num_classes is None:
        raise ModelError(f"{what} has no trained head: pass num_classes (the number of classes, background included).")
    width = req.projection_filters or projection_filters or DEFAULT_PROJECTION_FILTERS
    return SegFormer(backbone, num_classes, width, activation=req.activation)


def _retarget(model, req: Request):
    """(model, its class count): same backbone and head weights, a new classifier when the class count changes."""
    from segcli.models.segformer.model import SegFormer

    num_classes = req.num_classes
    if (num_classes is None or num_classes == model.num_classes) and req.activation == model.activation:
        return model, model.num_classes
    new = SegFormer(model.backbone, num_classes or model.num_classes, model.projection_filters,
                    activation=req.activation)
    new.head.copy_weights_from(model.head, include_classifier=new.num_classes == model.num_classes)
    return new, model.num_classes


def kept_classes(classes, model) -> ClassTable | None:
    """The checkpoint's classes when the built model (or a runner of its conversion) still predicts them."""
    return classes if classes is not None and len(classes) == getattr(model, "num_classes", -1) else None


def _from_hf(ref: ModelRef, req: Request) -> Loaded:
    from segcli.models.segformer import convert_hf
    from segcli.models.segformer.model import SegFormer

    config = convert_hf.read_config(ref.path)
    tensors = convert_hf.read_tensors(ref.path)
    backbone = _backbone(convert_hf.backbone_config(config), req.input_shape)
    source = str(ref.path)
    if req.want == "backbone" or not convert_hf.has_decode_head(tensors):
        convert_hf.load_into_backbone(backbone, tensors, source)
        if req.want == "backbone":
            return Loaded(backbone, source=source, record={"source": source})
        return Loaded(_new_head(backbone, req, source), source=source)
    n_ckpt = int(config.get("num_labels") or len(config.get("id2label") or {}))
    keep = req.num_classes is None or req.num_classes == n_ckpt
    model = SegFormer(backbone, n_ckpt if keep else req.num_classes, int(config.get("decoder_hidden_size", 256)),
                      activation=req.activation)
    convert_hf.load_into_segmenter(model, tensors, source, include_classifier=keep)
    return Loaded(model, kept_classes(ref.classes, model), source, {"source": source}, ref.input_size, n_ckpt)


def _from_keras_hub(ref: ModelRef, req: Request) -> Loaded:
    from segcli.models.segformer.convert_keras_hub import convert

    model, record = convert(ref.path)
    if req.want == "backbone":
        return Loaded(getattr(model, "backbone", model), source=str(ref.path), record=record)
    if not hasattr(model, "head"):
        return Loaded(_new_head(model, req, str(ref.path)), source=str(ref.path))
    model, trained = _retarget(model, req)
    size = record.get("input_size")
    return Loaded(model, kept_classes(ref.classes, model), str(ref.path), record, tuple(size) if size else None, trained)


def _load_weights(model, weights: Path) -> None:
    from segcli.models.segformer.legacy import upgraded_weights

    with tempfile.TemporaryDirectory() as tmp:
        model.load_weights(str(upgraded_weights(weights, Path(tmp))))


def _from_entry(ref: ModelRef, req: Request, label: str | None = None) -> Loaded:
    from segcli.checkpoints.cache import read_entry
    from segcli.models.segformer.model import SegFormer

    weights, record = read_entry(ref.path, label)
    backbone = _backbone(record["backbone_config"], req.input_shape, record.get("backbone_class"))
    source = str(ref.path)
    if record.get("scope") == "backbone":
        _load_weights(backbone, weights)
        if req.want == "backbone":
            return Loaded(backbone, source=source, record=record)
        segmenter_row = ref.preset is not None and ref.preset["model"] == "segmenter"
        model = _new_head(backbone, req, label or source, (ref.preset or {}).get("projection_filters"),
                          SEGMENTER_ROW_CLASSES if segmenter_row else None)
        return Loaded(model, None, source, record)
    model = SegFormer(backbone, record["num_classes"], record["projection_filters"], activation=req.activation)
    _load_weights(model, weights)
    if req.want == "backbone":
        return Loaded(model.backbone, source=source, record=record)
    model, trained = _retarget(model, req)
    return Loaded(model, kept_classes(ref.classes, model), source, record, ref.input_size, trained)


def _from_keras(ref: ModelRef, req: Request) -> Loaded:
    import keras

    from segcli.models.segformer.legacy import upgraded_weights
    from segcli.models.segformer.model import SegFormer

    try:
        with tempfile.TemporaryDirectory() as tmp:
            model = keras.saving.load_model(str(upgraded_weights(ref.path, Path(tmp))), safe_mode=True)
    except Exception as exc:  # keras raises many types for a bad file
        reason = " ".join(f"{type(exc).__name__}: {exc}".split())  # one line, whatever Keras wrote
        raise CheckpointError(f"{ref.path} cannot be loaded as a Keras model ({reason}); pass a complete .keras file "
                              f"saved by segcli or Keras 3, or a run directory.") from None
    if req.input_shape is not None:
        model = with_arguments(model, {"input_shape": tuple(req.input_shape)})
    if req.want == "backbone":
        return Loaded(getattr(model, "backbone", model), source=str(ref.path))
    trained = None
    if isinstance(model, SegFormer):
        model, trained = _retarget(model, req)
    return Loaded(model, kept_classes(ref.classes, model), str(ref.path), {}, ref.input_size, trained)


#: Keras' own constructor arguments, which every model takes.
KERAS_ARGUMENTS = ("name", "dtype", "trainable")


def _arguments(cls) -> set:
    import inspect

    return {p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "args", "kwargs")}


def with_arguments(model, changes: dict, keep_weights: bool = True):
    """``model`` rebuilt with constructor arguments changed, its weights kept (keras-cv's ``from_preset(**kwargs)``).

    An argument of a SegFormer's backbone (``include_normalization``, ``input_shape``, ``drop_path_rate``, ...)
    goes to the backbone, ``dtype`` to both; any other to the model. A name neither takes, or a change that
    does not fit the weights kept, is a ModelError.
    """
    import keras

    if not changes:
        return model
    names = ", ".join(sorted(changes))
    backbone = getattr(model, "backbone", None)
    own, inner = _arguments(type(model)) | set(KERAS_ARGUMENTS), _arguments(type(backbone)) if backbone else set()
    unknown = sorted(set(changes) - own - inner - {"num_classes", "backbone"})
    if unknown:
        takes = sorted((own | inner) - {"self", "backbone", "num_classes"})
        raise ModelError(f"{type(model).__name__}.from_preset: unknown argument(s) {', '.join(unknown)}; it takes "
                         f"{', '.join(takes)}.")
    config = model.get_config()
    if backbone is not None:
        passed = {k: v for k, v in changes.items() if k in inner and (k not in own or k == "dtype")}
        if passed:
            rebuilt = type(backbone).from_config({**backbone.get_config(), **passed})
            config["backbone"] = keras.saving.serialize_keras_object(rebuilt)
        changes = {k: v for k, v in changes.items() if k in own}
    rebuilt = type(model).from_config({**config, **changes})
    if keep_weights:
        try:
            rebuilt.set_weights(model.get_weights())
        except ValueError as exc:
            raise ModelError(f"{names}: the weights loaded do not fit the model these arguments build "
                             f"({' '.join(str(exc).split())}).") from None
    return rebuilt


def _from_preset(ref: ModelRef, req: Request) -> Loaded:
    preset, name = ref.preset, ref.spec
    if req.load_weights is True and not has_weights(preset):
        raise ModelError(f"Preset '{name}' has no pretrained weights; use load_weights=None or False.")
    if has_weights(preset) and req.load_weights is not False:
        if not ref.path.exists():
            raise WeightsNotFoundError(
                f"No weights for preset '{name}' in {ref.path}. Run `segcli weights fetch {name}`, or on a machine "
                f"without network `segcli weights import CHECKPOINT_DIR --as {name}`; or pass load_weights=False "
                f"for random initialisation.")
        entry = replace(ref, kind="entry")
        return _from_entry(entry, req, name)
    backbone = _backbone(preset["arch"], req.input_shape, preset["backbone_class"])
    if req.want == "backbone":
        return Loaded(backbone, source=name)
    default = SEGMENTER_ROW_CLASSES if preset["model"] == "segmenter" else None
    req = replace(req, num_classes=req.num_classes or preset.get("num_classes"))
    model = _new_head(backbone, req, f"Preset '{name}'", preset.get("projection_filters"), default)
    return Loaded(model, kept_classes(ref.classes, model), name, {}, ref.input_size)


_BUILDERS = {"preset": _from_preset, "entry": _from_entry, "keras": _from_keras, "hf": _from_hf,
             "keras_hub": _from_keras_hub}


def load(source, want="segmenter", num_classes=None, load_weights=None, input_shape=None,
         projection_filters=None, activation="auto", **arguments) -> Loaded:
    """Build the model that ``source`` (a spec or a ModelRef) names, with what is known about it; ``arguments``
    change constructor arguments (:func:`with_arguments`)."""
    for name, value in (("num_classes", num_classes), ("projection_filters", projection_filters)):
        if value is not None:
            whole_number(name, value)
    if input_shape is not None:
        input_shape = image_shape(input_shape)
        if arguments:  # applied together, so input_shape=(None, None, 1) can come with include_normalization=False
            arguments, input_shape = {**arguments, "input_shape": input_shape}, None
    ref = source if isinstance(source, ModelRef) else resolve(source)
    if ref.kind == "exported":
        raise ModelError(f"{ref.path} is an exported model: predict, eval and bench run it, but it cannot be "
                         f"built as a Keras model; pass the checkpoint it was exported from.")
    if load_weights is False and ref.kind not in ("preset", "keras"):
        raise ModelError(f"{ref.spec} is a checkpoint; load_weights=False makes no sense for it.")
    req = Request(want, num_classes, load_weights, input_shape, projection_filters, activation)
    loaded = _BUILDERS[ref.kind](ref, req)
    random_init = ref.kind == "preset" and (load_weights is False or not has_weights(ref.preset))
    return replace(loaded, model=with_arguments(loaded.model, arguments, keep_weights=not random_init))


def save_folder(model, folder, classes=None, source=None):
    """Save a SegFormer or MiTBackbone as a segcli weights folder that ``from_preset(folder)`` loads.

    >>> import tempfile
    >>> model = create_model("segformer_test", num_classes=2)
    >>> folder = save_folder(model, tempfile.mkdtemp() + "/tiny")
    >>> create_model(str(folder)).num_classes
    2
    """
    from segcli.checkpoints.cache import save_entry

    segmenter = hasattr(model, "backbone")
    backbone = model.backbone if segmenter else model
    config = {k: v for k, v in backbone.get_config().items() if k not in ("name", "trainable")}
    import keras

    record = {"format": WEIGHTS_FORMAT, "scope": "segmenter" if segmenter else "backbone",
              "backbone_class": keras.saving.get_registered_name(type(backbone)),
              "backbone_config": config, "source": source or "saved by segcli"}
    if segmenter:
        if isinstance(classes, ClassTable):
            classes = classes.as_dicts()
        record.update(num_classes=model.num_classes, projection_filters=model.projection_filters,
                      classes=classes or [])
    return save_entry(model, Path(folder), record)


def create_backbone(source, load_weights=None, input_shape=None, **arguments):
    """A MiTBackbone from a preset or checkpoint (``MiTBackbone.from_preset``)."""
    return load(source, want="backbone", load_weights=load_weights, input_shape=input_shape, **arguments).model


def create_segmenter(source, num_classes=None, load_weights=None, input_shape=None, projection_filters=None,
                     activation="auto", **arguments):
    """A SegFormer from a preset or checkpoint (``SegFormer.from_preset``)."""
    return load(source, "segmenter", num_classes, load_weights, input_shape, projection_filters, activation,
                **arguments).model


factory_hook.register(backbone=create_backbone, segmenter=create_segmenter)


def create_model(source, **kwargs):
    """A backbone for backbone presets, a SegFormer for everything else (timm's ``create_model``)."""
    if str(source) in PRESETS and PRESETS[str(source)]["model"] == "backbone" and "num_classes" not in kwargs:
        return create_backbone(source, **kwargs)
    return create_segmenter(source, **kwargs)
