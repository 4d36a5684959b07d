"""The one model factory: every command and ``from_preset`` builds models here.

A *source* is a preset name (``segcli presets``), a ``.keras`` file, a run
directory from ``segcli train`` (its ``best.keras``), a segcli weights folder
(``model.weights.h5`` + ``record.json``) or a Hugging Face checkpoint folder
(``config.json`` + ``model.safetensors``).

>>> model = create_model("segformer_test", num_classes=4)
>>> type(model).__name__, model.num_classes
('SegFormer', 4)
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

from segcli.errors import CheckpointError, ModelError
from segcli.models.registry import PRESETS, SEGMENTER_ROW_CLASSES, get_preset, has_weights, weights_entry_name

DEFAULT_PROJECTION_FILTERS = 256
HEAD_LAYERS = ("linear_c0", "linear_c1", "linear_c2", "linear_c3", "linear_fuse", "fuse_norm")


@dataclass
class Loaded:
    """A built model plus what is known about its classes and origin."""

    model: object
    classes: list = field(default_factory=list)  # [{"name": ..., "color": [r, g, b]}]
    source: str = ""
    record: dict = field(default_factory=dict)


def _source_kind(source) -> tuple[str, Path | None]:
    if isinstance(source, (str, Path)) and str(source) in PRESETS:
        return "preset", None
    path = Path(str(source)).expanduser()
    if not path.exists():
        if isinstance(source, str) and "/" not in source and not source.endswith(".keras"):
            get_preset(source)  # raises with close matches
        raise CheckpointError(f"{source}: no such file or folder, and not a preset name.")
    from segcli.models.segformer.convert_hf import CONFIG_FILE, SAFETENSORS_FILE
    from segcli.checkpoints.cache import is_entry

    if path.is_file() and path.suffix == ".keras":
        return "keras", path
    if path.is_dir() and is_entry(path):
        return "entry", path
    if path.is_dir() and (path / CONFIG_FILE).is_file() and (path / SAFETENSORS_FILE).is_file():
        return "hf", path
    if path.is_dir() and (path / "best.keras").is_file():
        return "keras", path / "best.keras"
    raise CheckpointError(
        f"{path} is not a model: expected a .keras file, a run directory with best.keras, a segcli weights "
        f"folder (model.weights.h5 + record.json) or a Hugging Face folder (config.json + model.safetensors)."
    )


def _backbone(config: dict, input_shape):
    from segcli.models.mit.backbone import MiTBackbone

    config = dict(config)
    if input_shape is not None:
        config["input_shape"] = tuple(input_shape)
    return MiTBackbone.from_config(config)


def _new_head(backbone, num_classes, projection_filters, activation, what, default_classes=None):
    from segcli.models.segformer.model import SegFormer

    if num_classes is None and default_classes:
        warnings.warn(f"{what}: num_classes not given; using {default_classes}, the preset table's default. "
                      f"Pass num_classes for your data.", UserWarning, stacklevel=4)
        num_classes = default_classes
    if num_classes is None:
        raise ModelError(f"{what} has no trained head: pass num_classes (the number of classes, background included).")
    return SegFormer(backbone, num_classes, projection_filters or DEFAULT_PROJECTION_FILTERS, activation=activation)


def _retarget(model, num_classes, activation):
    """Same backbone and head weights, a new classifier for ``num_classes``."""
    from segcli.models.segformer.model import SegFormer

    if (num_classes is None or num_classes == model.num_classes) and activation == model.activation:
        return model
    new = SegFormer(model.backbone, num_classes or model.num_classes, model.projection_filters, activation=activation)
    if new.num_classes == model.num_classes:
        return _copy_layers(model, new, HEAD_LAYERS + ("classifier",))
    return _copy_layers(model, new, HEAD_LAYERS)


def _copy_layers(src, dst, names):
    for name in names:
        dst.get_layer(name).set_weights(src.get_layer(name).get_weights())
    return dst


def _from_hf(path: Path, want, num_classes, projection_filters, input_shape, activation) -> Loaded:
    from segcli.classes import classes_from_names
    from segcli.models.segformer import convert_hf as hf_import

    config = hf_import.read_config(path)
    tensors = hf_import.read_tensors(path)
    backbone = _backbone(hf_import.backbone_config(config), input_shape)
    source = str(path)
    record = {"source": source}
    if want == "backbone" or not hf_import.has_decode_head(tensors):
        hf_import.load_into_backbone(backbone, tensors, source)
        if want == "backbone":
            return Loaded(backbone, source=source, record=record)
        return Loaded(_new_head(backbone, num_classes, projection_filters, activation, source), source=source)
    from segcli.models.segformer.model import SegFormer

    names = hf_import.class_names(config)
    n_ckpt = len(names) or int(config.get("num_labels", 0))
    keep = num_classes is None or num_classes == n_ckpt
    model = SegFormer(backbone, n_ckpt if keep else num_classes, int(config.get("decoder_hidden_size", 256)),
                      activation=activation)
    hf_import.load_into_segmenter(model, tensors, source, include_classifier=keep)
    return Loaded(model, classes_from_names(names) if keep else [], source, record)


def _from_entry(path: Path, want, num_classes, projection_filters, input_shape, activation, label=None) -> Loaded:
    from segcli.models.segformer.model import SegFormer
    from segcli.checkpoints.cache import read_entry

    weights, record = read_entry(path, label)
    backbone = _backbone(record["backbone_config"], input_shape)
    classes = record.get("classes") or []
    if record.get("scope") == "backbone":
        backbone.load_weights(str(weights))
        if want == "backbone":
            return Loaded(backbone, source=str(path), record=record)
        default = SEGMENTER_ROW_CLASSES if label in PRESETS and PRESETS[label]["model"] == "segmenter" else None
        model = _new_head(backbone, num_classes, projection_filters, activation, label or str(path), default)
        return Loaded(model, [], str(path), record)
    model = SegFormer(backbone, record["num_classes"], record["projection_filters"], activation=activation)
    model.load_weights(str(weights))
    if want == "backbone":
        return Loaded(model.backbone, source=str(path), record=record)
    model = _retarget(model, num_classes, activation)
    return Loaded(model, classes if model.num_classes == record["num_classes"] else [], str(path), record)


def _from_keras(path: Path, want, num_classes, input_shape, activation) -> Loaded:
    import keras

    from segcli.models.segformer.model import SegFormer

    try:
        model = keras.saving.load_model(str(path), safe_mode=True)
    except Exception as exc:  # keras raises many types for a bad file
        raise CheckpointError(f"{path} cannot be loaded as a Keras model ({type(exc).__name__}: {exc}).") from None
    if input_shape is not None:
        rebuilt = type(model).from_config({**model.get_config(), **_with_input_shape(model, input_shape)})
        rebuilt.set_weights(model.get_weights())
        model = rebuilt
    if want == "backbone":
        return Loaded(getattr(model, "backbone", model), source=str(path))
    if isinstance(model, SegFormer):
        model = _retarget(model, num_classes, activation)
    return Loaded(model, source=str(path))


def _with_input_shape(model, input_shape):
    import keras

    if hasattr(model, "backbone"):
        config = model.backbone.get_config()
        config["input_shape"] = tuple(input_shape)
        return {"backbone": keras.saving.serialize_keras_object(type(model.backbone).from_config(config))}
    return {"input_shape": tuple(input_shape)}


def _from_preset(name, want, num_classes, load_weights, projection_filters, input_shape, activation) -> Loaded:
    from segcli.classes import dataset_classes
    from segcli.checkpoints.cache import entry_dir, load_cached

    preset = get_preset(name)
    if load_weights is True and not has_weights(preset):
        raise ModelError(f"Preset '{name}' has no pretrained weights; use load_weights=None or False.")
    if has_weights(preset) and load_weights is not False:
        entry = weights_entry_name(preset)
        load_cached(entry, label=name)  # a clear error when missing
        loaded = _from_entry(entry_dir(entry), want, num_classes, projection_filters, input_shape, activation, name)
        if not loaded.classes and preset.get("dataset") in ("ade20k", "cityscapes") and \
                getattr(loaded.model, "num_classes", None) == preset.get("num_classes"):
            loaded.classes = dataset_classes(preset["dataset"])
        return loaded
    backbone = _backbone(preset["arch"], input_shape)
    if want == "backbone":
        return Loaded(backbone, source=name)
    classes_default = preset.get("num_classes")
    model = _new_head(backbone, num_classes or classes_default, projection_filters or preset.get("projection_filters"),
                      activation, f"Preset '{name}'", SEGMENTER_ROW_CLASSES if preset["model"] == "segmenter" else None)
    classes = dataset_classes(preset["dataset"]) if classes_default and model.num_classes == classes_default else []
    return Loaded(model, classes, name)


def load(source, want="segmenter", num_classes=None, load_weights=None, input_shape=None,
         projection_filters=None, activation="auto") -> Loaded:
    """Build the model that ``source`` names, with what is known about its classes."""
    if num_classes is not None and int(num_classes) < 1:
        raise ModelError(f"num_classes must be at least 1; got {num_classes}.")
    kind, path = _source_kind(source)
    if kind == "preset":
        return _from_preset(str(source), want, num_classes, load_weights, projection_filters, input_shape, activation)
    if load_weights is False and kind != "keras":
        raise ModelError(f"{source} is a checkpoint; load_weights=False makes no sense for it.")
    if kind == "hf":
        return _from_hf(path, want, num_classes, projection_filters, input_shape, activation)
    if kind == "entry":
        return _from_entry(path, want, num_classes, projection_filters, input_shape, activation)
    return _from_keras(path, want, num_classes, input_shape, activation)


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
    record = {"format": "segcli-weights-v1", "scope": "segmenter" if segmenter else "backbone",
              "backbone_config": config, "source": source or "saved by segcli"}
    if segmenter:
        record.update(num_classes=model.num_classes, projection_filters=model.projection_filters,
                      classes=classes or [])
    return save_entry(model, Path(folder), record)


def create_backbone(source, load_weights=None, input_shape=None):
    """A MiTBackbone from a preset or checkpoint (``MiTBackbone.from_preset``)."""
    return load(source, want="backbone", load_weights=load_weights, input_shape=input_shape).model


def create_segmenter(source, num_classes=None, load_weights=None, input_shape=None, projection_filters=None,
                     activation="auto"):
    """A SegFormer from a preset or checkpoint (``SegFormer.from_preset``)."""
    return load(source, "segmenter", num_classes, load_weights, input_shape, projection_filters, activation).model


def create_model(source, **kwargs):
    """A backbone for backbone presets, a SegFormer for everything else (timm's ``create_model``)."""
    if str(source) in PRESETS and PRESETS[str(source)]["model"] == "backbone" and "num_classes" not in kwargs:
        return create_backbone(source, **kwargs)
    return create_segmenter(source, **kwargs)
