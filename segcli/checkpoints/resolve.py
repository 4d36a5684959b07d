"""Resolve ``--model`` for predict and eval into a model, its classes and its input size.

``--model`` may be:

- a run directory from ``segcli train`` (``best.keras``, with ``classes.json``
  or ``classes.txt`` for names and colours);
- a ``.keras`` file, a segcli weights folder or a Hugging Face checkpoint folder;
- a preset name whose trained weights are in the cache (``segcli weights fetch``);
- an exported ``.onnx`` or ``.tflite`` file, run by ``segcli.export.runtimes``;
- nothing: ``$SEGCLI_MODEL``, else :data:`DEFAULT_MODEL`.

Exported files: ``segcli.export.runtimes.load_runner(path)`` must return an
object with ``predict_logits(images)`` (uint8 (B, H, W, 3) -> float32
(B, h, w, C) logits, any h, w), ``num_classes``, ``input_size`` ((H, W) or
None) and ``classes`` (a list like below, or empty).

Classes are ``[{"name": str, "color": [r, g, b]}]``, one per class index.

>>> spec_from_env(None, {"SEGCLI_MODEL": "runs/a"}), spec_from_env(None, {}), spec_from_env("m.keras", {})
('runs/a', 'segformer_b0_ade20k_512', 'm.keras')
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from segcli.errors import CheckpointError, MissingDependencyError, UsageError, WeightsNotFoundError

DEFAULT_MODEL = "segformer_b0_ade20k_512"
MODEL_ENV = "SEGCLI_MODEL"
EXPORTED_SUFFIXES = (".onnx", ".tflite")
CLASS_FILES = ("classes.json", "classes.txt")


@dataclass
class ModelSource:
    """A model ready for :class:`segcli.inference.predictor.Segmenter`, with what is known about it."""

    model: object
    classes: list = field(default_factory=list)
    name: str = ""
    input_size: tuple | None = None

    @property
    def class_names(self) -> list[str]:
        return [c["name"] for c in self.classes]


def spec_from_env(spec, environ=None) -> str:
    """The model the user means: ``spec``, else ``$SEGCLI_MODEL``, else the default preset."""
    environ = os.environ if environ is None else environ
    return spec or environ.get(MODEL_ENV) or DEFAULT_MODEL


def _alternatives(name: str) -> str:
    return (f"Run `segcli weights fetch {name}` (needs network), or `segcli weights import CHECKPOINT_DIR --as "
            f"{name}`, or pass --model RUN_DIR|FILE.keras.")


def _parse_classes(data) -> list[dict]:
    """Names and optional colours from the shapes a classes.json may take."""
    palette = None
    if isinstance(data, dict):
        palette = data.get("palette") or data.get("colors")
        data = data.get("classes") or data.get("names") or []
    out = []
    for i, entry in enumerate(data):
        if isinstance(entry, dict):
            color = entry.get("color") or entry.get("colour")
            out.append({"name": str(entry.get("name", f"class_{i}")), "color": color})
        else:
            out.append({"name": str(entry), "color": None})
    if palette:
        for entry, color in zip(out, palette):
            entry["color"] = entry["color"] or color
    return out


def read_class_file(folder: Path) -> list[dict]:
    """Classes from ``classes.json`` or ``classes.txt`` in ``folder``; [] when there is none."""
    for name in CLASS_FILES:
        path = folder / name
        if not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8")
            if name.endswith(".json"):
                return _parse_classes(json.loads(text))
            return [{"name": line.strip(), "color": None} for line in text.splitlines() if line.strip()]
        except (OSError, ValueError, AttributeError, TypeError) as exc:
            raise CheckpointError(f"{path}: unreadable class list ({exc}); fix or delete it.") from None
    return []


def complete_classes(classes, num_classes: int) -> list[dict]:
    """Exactly ``num_classes`` entries: known names and colours first, then ``class_<i>`` and distinct colours."""
    from segcli.classes import distinct_palette

    palette = distinct_palette(num_classes)
    classes = list(classes or [])[:num_classes]
    out = []
    for i in range(num_classes):
        known = classes[i] if i < len(classes) else {}
        color = known.get("color")
        out.append({"name": known.get("name") or f"class_{i}",
                    "color": [int(v) for v in color] if color is not None and len(color) == 3 else palette[i]})
    return out


def _load_exported(path: Path) -> ModelSource:
    import importlib

    try:
        runtimes = importlib.import_module("segcli.export.runtimes")
    except ModuleNotFoundError as exc:
        if exc.name != "segcli.export.runtimes":
            raise
        raise MissingDependencyError(
            f"{path}: running exported {path.suffix} models needs segcli.export.runtimes, which this segcli "
            f"does not include; pass --model RUN_DIR|FILE.keras instead."
        ) from None
    runner = runtimes.load_runner(path)
    classes = complete_classes(getattr(runner, "classes", None), int(runner.num_classes))
    return ModelSource(runner, classes, str(path), getattr(runner, "input_size", None))


def _load_preset(name: str) -> ModelSource:
    from segcli.models import load as factory
    from segcli.models.registry import get_preset, has_weights

    preset = get_preset(name)
    if preset["model"] != "segmenter" or not has_weights(preset) or preset.get("weights_scope") != "segmenter":
        raise UsageError(
            f"Preset '{name}' has no trained segmentation head, so its masks would be random; pass --model "
            f"RUN_DIR|FILE.keras or a fine-tuned preset such as {DEFAULT_MODEL} (see `segcli presets`)."
        )
    try:
        loaded = factory.load(name)
    except WeightsNotFoundError:
        raise WeightsNotFoundError(f"Model '{name}' is not in the weights cache. {_alternatives(name)}") from None
    size = preset.get("input_size")
    return ModelSource(loaded.model, complete_classes(loaded.classes, loaded.model.num_classes), name,
                       tuple(size) if size else None)


def resolve(spec=None) -> ModelSource:
    """Load the model that ``--model`` (or ``$SEGCLI_MODEL``, or the default) names."""
    from segcli.models.registry import PRESETS

    spec = spec_from_env(spec)
    if str(spec) in PRESETS:
        return _load_preset(str(spec))
    path = Path(str(spec)).expanduser()
    if path.suffix.lower() in EXPORTED_SUFFIXES:
        if not path.is_file():
            raise CheckpointError(f"--model {spec}: no such file.")
        return _load_exported(path)
    if not path.exists():
        if "/" not in str(spec) and path.suffix == "":
            from segcli.models.registry import get_preset

            get_preset(str(spec))  # unknown name: the preset error lists close matches
        raise CheckpointError(f"--model {spec}: no such file or folder. Pass a run directory, a .keras file "
                              f"or a preset name (`segcli presets`).")
    from segcli.models import load as factory

    loaded = factory.load(path)
    model = loaded.model
    if not hasattr(model, "num_classes"):
        model.num_classes = int(model.output_shape[-1])
    classes = read_class_file(path) if path.is_dir() else read_class_file(path.parent)
    size = loaded.record.get("input_size") if isinstance(loaded.record, dict) else None
    return ModelSource(model, complete_classes(classes or loaded.classes, int(model.num_classes)), str(spec),
                       tuple(size) if size else None)
