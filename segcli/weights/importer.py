"""Turn a checkpoint folder into a named entry of segcli's weights cache.

Two kinds of folder are understood:

- a Hugging Face SegFormer folder (``config.json`` + ``model.safetensors``), as
  ``huggingface_hub`` downloads it or ``save_pretrained`` writes it;
- a keras-hub SegFormer preset folder (``config.json`` + ``model.weights.h5``,
  with ``task.json`` + ``task.weights.h5`` for a segmenter), as
  ``save_to_preset`` writes it (see :mod:`segcli.models.segformer.convert_keras_hub`).

Importing under a preset name checks that the checkpoint is that preset's
architecture, scope and class count; under any other name it is stored as it is.

>>> check_entry_name("my_model-v2")
'my_model-v2'
"""

from __future__ import annotations

import re
from pathlib import Path

from segcli.errors import CheckpointError, UsageError
from segcli.models.registry import PRESETS, has_weights

FORMAT = "segcli-weights-v1"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def check_entry_name(name: str) -> str:
    """A cache entry name is one plain folder name (letters, digits, ``_ . -``)."""
    if not _NAME.match(str(name)) or name.endswith((".tmp", ".old")):
        raise UsageError(f"name {name!r}: use a plain name of letters, digits, '_', '.' and '-' "
                         f"(for example my_segformer).", value="name")
    return str(name)


def checkpoint_kind(folder: Path) -> str:
    """"hf" or "keras_hub" for a checkpoint folder, or a clear error naming what is missing."""
    from segcli.checkpoints.resolve import is_keras_hub_preset

    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"{folder}: no such folder. Pass a Hugging Face checkpoint folder (config.json + "
                              f"model.safetensors) or a keras-hub preset folder (config.json + model.weights.h5).")
    if is_keras_hub_preset(folder):
        return "keras_hub"
    if (folder / "config.json").is_file() and (folder / "model.safetensors").is_file():
        return "hf"
    if (folder / "config.json").is_file() and (folder / "pytorch_model.bin").is_file():
        raise CheckpointError(f"{folder} holds pytorch_model.bin but no model.safetensors; segcli reads "
                              f"safetensors only. Convert it first (transformers: "
                              f"`Model.from_pretrained(DIR).save_pretrained(DIR, safe_serialization=True)`).")
    raise CheckpointError(f"{folder} is not a checkpoint folder: expected config.json with model.safetensors "
                          f"(Hugging Face) or with model.weights.h5 (keras-hub preset).")


def check_against_preset(name: str, record: dict, source: str) -> None:
    """Refuse a checkpoint that is not what preset ``name`` promises (architecture, scope, classes)."""
    preset = PRESETS.get(name)
    if preset is None:
        return
    other = f"import it under another name, for example --as {name}_custom"
    if not has_weights(preset):
        raise UsageError(f"Preset '{name}' is a random-init architecture and never loads cached weights; "
                         f"{other}.")
    arch = preset["arch"]
    got = record["backbone_config"]
    diffs = [f"{k} {tuple(got.get(k, ()))} vs {tuple(arch[k])}" for k in arch if tuple(got.get(k, ())) != tuple(arch[k])]
    if record.get("backbone_class", preset["backbone_class"]) != preset["backbone_class"]:
        diffs.insert(0, f"backbone {record['backbone_class']} vs {preset['backbone_class']}")
    if diffs:
        raise CheckpointError(f"{source} does not match preset '{name}' ({preset['arch_name']}): "
                              f"{'; '.join(diffs[:3])}; {other}.")
    want_scope = preset.get("weights_scope", "segmenter")
    if record["scope"] != want_scope:
        raise CheckpointError(f"{source} is a {record['scope']} checkpoint but preset '{name}' needs a "
                              f"{want_scope} checkpoint; {other}.")
    if want_scope == "segmenter" and preset.get("num_classes") and record["num_classes"] != preset["num_classes"]:
        raise CheckpointError(f"{source} has {record['num_classes']} classes but preset '{name}' has "
                              f"{preset['num_classes']}; {other}.")


def import_checkpoint(folder, name: str, source: str | None = None, revision: str | None = None) -> Path:
    """Convert the checkpoint in ``folder`` and store it in the cache as ``name``.

    A Hugging Face folder with a decode head becomes a segmenter entry; one
    without (an ImageNet encoder) becomes a backbone entry. A keras-hub preset
    folder becomes a segmenter entry when it has ``task.json``. Returns the
    entry folder. Nothing in ``folder`` is changed.
    """
    from segcli.checkpoints.cache import entry_dir, save_entry

    check_entry_name(name)
    folder = Path(folder)
    kind = checkpoint_kind(folder)
    label = source or str(folder)
    if kind == "keras_hub":
        from segcli.models.segformer.convert_keras_hub import convert

        model, record = convert(folder)
    else:
        model, record = _convert_hf(folder)
    import keras

    backbone = getattr(model, "backbone", model)
    record = {"format": FORMAT, "name": name, "backbone_class": keras.saving.get_registered_name(type(backbone)),
              **record,
              "source": source or str(folder.resolve()), "revision": revision,
              "licence": PRESETS.get(name, {}).get("licence", "see the checkpoint's source")}
    check_against_preset(name, record, label)
    if record["scope"] == "segmenter":
        record["classes"] = _classes(PRESETS.get(name, {}), record.get("classes") or [], record["num_classes"])
    return save_entry(model, entry_dir(name), record)


def _convert_hf(folder: Path):
    from segcli.models.segformer import convert_hf as hf_import
    from segcli.models.load import load

    config = hf_import.read_config(folder)
    tensors = hf_import.read_tensors(folder)
    scope = "segmenter" if hf_import.has_decode_head(tensors) else "backbone"
    loaded = load(folder, want=scope)
    model = loaded.model
    record = {"scope": scope, "backbone_config": hf_import.backbone_config(config), "checkpoint_format": "hf"}
    if scope == "segmenter":
        record.update(num_classes=model.num_classes, projection_filters=model.projection_filters,
                      classes=loaded.classes.as_dicts() if loaded.classes else [])
    return model, record


def _classes(preset: dict, from_checkpoint: list, num_classes: int) -> list:
    from segcli.classes import dataset_classes

    dataset = preset.get("dataset")
    if dataset in ("ade20k", "cityscapes") and preset.get("num_classes") == num_classes:
        return dataset_classes(dataset).as_dicts()
    return from_checkpoint
