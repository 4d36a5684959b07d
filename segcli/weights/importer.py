"""Turn a checkpoint folder into a named entry of segcli's weights cache."""

from __future__ import annotations

from pathlib import Path

from segcli.presets import PRESETS


def import_checkpoint(folder, name: str, source: str | None = None, revision: str | None = None) -> Path:
    """Convert the checkpoint in ``folder`` and store it in the cache as ``name``.

    A Hugging Face folder (``config.json`` + ``model.safetensors``) with a decode
    head becomes a segmenter entry; one without (an ImageNet encoder) becomes a
    backbone entry. Returns the entry folder.
    """
    from segcli.models import hf_import
    from segcli.models.factory import load
    from segcli.weights.cache import entry_dir, save_entry

    folder = Path(folder)
    config = hf_import.read_config(folder)
    tensors = hf_import.read_tensors(folder)
    scope = "segmenter" if hf_import.has_decode_head(tensors) else "backbone"
    preset = PRESETS.get(name, {})
    loaded = load(folder, want=scope)
    model = loaded.model
    record = {
        "format": "segcli-weights-v1",
        "name": name,
        "scope": scope,
        "backbone_config": hf_import.backbone_config(config),
        "source": source or str(folder.resolve()),
        "revision": revision,
        "licence": preset.get("licence", "see the checkpoint's source"),
    }
    if scope == "segmenter":
        record.update(num_classes=model.num_classes, projection_filters=model.projection_filters)
        record["classes"] = _classes(preset, loaded.classes, model.num_classes)
    return save_entry(model, entry_dir(name), record)


def _classes(preset: dict, from_checkpoint: list, num_classes: int) -> list:
    from segcli.data.class_table import dataset_classes

    dataset = preset.get("dataset")
    if dataset in ("ade20k", "cityscapes") and preset.get("num_classes") == num_classes:
        return dataset_classes(dataset)
    return from_checkpoint
