"""The one answer to "what does this model name mean?" for --model, --preset and from_preset.

:func:`resolve` turns a spec into a :class:`ModelRef` without building anything
(no Keras import): which kind of checkpoint it is, where it lives, its classes
and its input size when the checkpoint says so. ``segcli.models.load`` builds
Keras models from a ref; ``segcli.inference.runners`` also opens exported files.

A spec is checked in this order:

1. a preset name (``segcli presets``);
2. an existing path: a ``.keras`` file, a run directory (``best.keras``), a segcli
   weights folder (``model.weights.h5`` + ``record.json``), a Hugging Face folder
   (``config.json`` + ``model.safetensors``), a keras-hub preset folder, an
   OpenVINO export folder (``model.xml``) or any other file (an exported model);
3. a name in the weights cache (``segcli weights list``: imported and fetched entries).

>>> resolve("segformer_test").kind, resolve("mit_b0").preset["model"]
('preset', 'backbone')
>>> spec_from_env(None, {"SEGCLI_MODEL": "runs/a"}), spec_from_env(None, {}), spec_from_env("m.keras", {})
('runs/a', 'segformer_b0_ade20k_512', 'm.keras')
"""

from __future__ import annotations

import difflib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from segcli.checkpoints.cache import RECORD_FILE, entry_dir, is_entry, read_record, weights_root
from segcli.classes import ClassTable, dataset_classes, read_class_file
from segcli.errors import CheckpointError, PresetError
from segcli.models.registry import PRESETS, has_weights, weights_entry_name

DEFAULT_MODEL = "segformer_b0_ade20k_512"
MODEL_ENV = "SEGCLI_MODEL"
RUN_MODEL_FILE = "best.keras"
HF_FILES = ("config.json", "model.safetensors")
KERAS_HUB_FILES = ("config.json", "model.weights.h5")
OPENVINO_FILE = "model.xml"
KINDS = ("preset", "entry", "keras", "hf", "keras_hub", "exported")


@dataclass(frozen=True)
class ModelRef:
    """What a model spec names. ``path`` is the file or folder to load (None for a preset without cached weights)."""

    spec: str
    kind: str
    path: Path | None = None
    preset: dict | None = None
    record: dict = field(default_factory=dict)
    classes: ClassTable | None = None
    input_size: tuple | None = None


def spec_from_env(spec, environ=None) -> str:
    """The model the user means: ``spec``, else ``$SEGCLI_MODEL``, else the default preset."""
    environ = os.environ if environ is None else environ
    return str(spec or environ.get(MODEL_ENV) or DEFAULT_MODEL)


def resolve(spec) -> ModelRef:
    """The :class:`ModelRef` of ``spec`` (see the module docstring).

    PresetError when it names nothing; CheckpointError for a path that does not exist.
    """
    spec = str(spec)
    if spec in PRESETS:
        return _preset_ref(spec)
    path = Path(spec).expanduser()
    if path.exists():
        return _path_ref(spec, path)
    if is_entry(entry_dir(spec)) and "/" not in spec:
        return _entry_ref(spec, entry_dir(spec))
    if "/" in spec or path.suffix:
        raise CheckpointError(f"{spec}: no such file or folder. Pass a run directory, a .keras file, a weights "
                              f"folder, an exported model or a model name (`segcli presets`, `segcli weights list`).")
    raise PresetError(_unknown_message(spec))


def _preset_ref(name: str) -> ModelRef:
    preset = PRESETS[name]
    path = entry_dir(weights_entry_name(preset)) if has_weights(preset) else None
    classes = dataset_classes(preset["dataset"]) if preset.get("dataset") in ("ade20k", "cityscapes") \
        and preset.get("num_classes") else None
    size = preset.get("input_size")
    return ModelRef(name, "preset", path, preset, classes=classes, input_size=tuple(size) if size else None)


def _path_ref(spec: str, path: Path) -> ModelRef:
    if path.is_file():
        if path.suffix == ".keras":
            return ModelRef(spec, "keras", path, classes=read_class_file(path.parent))
        return ModelRef(spec, "exported", path)
    if is_entry(path):
        return _entry_ref(spec, path)
    if (path / RUN_MODEL_FILE).is_file():
        return ModelRef(spec, "keras", path / RUN_MODEL_FILE, classes=read_class_file(path))
    if all((path / f).is_file() for f in HF_FILES):
        return ModelRef(spec, "hf", path, classes=_hf_classes(path))
    if is_keras_hub_preset(path):
        return ModelRef(spec, "keras_hub", path, classes=read_class_file(path))
    if (path / OPENVINO_FILE).is_file():
        return ModelRef(spec, "exported", path / OPENVINO_FILE)
    raise CheckpointError(
        f"{path} is not a model: expected a .keras file, a run directory with {RUN_MODEL_FILE}, a segcli weights "
        f"folder (model.weights.h5 + {RECORD_FILE}), a Hugging Face folder (config.json + model.safetensors), a "
        f"keras-hub preset folder or an exported model file.")


def _entry_ref(spec: str, folder: Path) -> ModelRef:
    record = read_record(folder)
    classes = ClassTable.from_dicts(record["classes"], source=RECORD_FILE) if record.get("classes") else \
        read_class_file(folder)
    size = record.get("input_size")
    return ModelRef(spec, "entry", folder, record=record, classes=classes, input_size=tuple(size) if size else None)


def _hf_classes(folder: Path) -> ClassTable | None:
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        return None  # the loader reports a broken config.json with its own message
    labels = config.get("id2label") or {}
    try:
        names = [labels[k] for k in sorted(labels, key=int)]
    except (TypeError, ValueError):
        return None
    generic = all(n == f"LABEL_{i}" for i, n in enumerate(names))
    return ClassTable.from_names(names, source="config.json") if names and not generic else None


def is_keras_hub_preset(folder: Path) -> bool:
    """True for a folder that keras-hub's ``save_to_preset`` wrote (its config names a keras_hub class)."""
    folder = Path(folder)
    if not all((folder / f).is_file() for f in KERAS_HUB_FILES):
        return False
    try:
        data = json.loads((folder / KERAS_HUB_FILES[0]).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and (str(data.get("registered_name", "")).startswith("keras_hub>")
                                       or str(data.get("module", "")).startswith("keras_hub."))


def cached_names() -> list[str]:
    """Names of the entries in the weights cache (what `segcli weights list` shows beside the presets)."""
    root = weights_root()
    return sorted(p.name for p in root.iterdir() if is_entry(p)) if root.is_dir() else []


def _unknown_message(spec: str) -> str:
    known = [*PRESETS, *cached_names()]
    close = difflib.get_close_matches(spec, known, n=4, cutoff=0.5)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    return (f"Unknown model '{spec}': not a preset, not a name in the weights cache and no such file or folder."
            f"{hint} Run `segcli presets` or `segcli weights list` for the names.")
