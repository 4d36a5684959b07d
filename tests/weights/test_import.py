"""`import_checkpoint`: Hugging Face and keras-hub folders become cache entries that load by name."""

from __future__ import annotations

import json

import numpy as np
import pytest

from segcli.errors import CheckpointError, UsageError
from tests import hf_checkpoints as hf


def _images(shape=(2, 64, 64, 3), seed=0):
    return np.random.RandomState(seed).uniform(0, 255, shape).astype("float32")


def test_keras_hub_segmenter_import_matches_keras_hub_logits(tmp_path):
    pytest.importorskip("keras_hub")
    from segcli.models import SegFormer
    from segcli.weights.importer import import_checkpoint
    from tests.weights import keras_hub_presets as kh

    reference = kh.make(tmp_path / "preset")
    folder = import_checkpoint(tmp_path / "preset", "kh_tiny")
    record = json.loads((folder / "record.json").read_text())
    assert record["scope"] == "segmenter" and record["num_classes"] == 5 and record["projection_filters"] == 32
    assert record["checkpoint_format"] == "keras_hub" and record["input_size"] == [64, 64]
    assert record["backbone_config"]["layer_norm_epsilon"] == 1e-6
    model = SegFormer.from_preset(str(folder), activation=None)
    images = _images()
    expected, got = kh.logits(reference, images), np.asarray(model(images))
    assert got.shape == expected.shape == (2, 64, 64, 5)
    assert np.abs(got - expected).max() <= 1e-4


def test_keras_hub_backbone_import_matches_the_pyramid(tmp_path):
    pytest.importorskip("keras_hub")
    import keras

    from segcli.models import MiTBackbone
    from segcli.weights.importer import import_checkpoint
    from tests.weights import keras_hub_presets as kh

    reference = kh.make(tmp_path / "preset", segmenter=False)
    folder = import_checkpoint(tmp_path / "preset", "kh_encoder")
    backbone = MiTBackbone.from_preset(str(folder))
    images = _images((1, 64, 64, 3))
    ours = keras.Model(backbone.inputs, [backbone.get_layer(n).output for n in backbone.pyramid_level_inputs.values()])
    theirs = keras.Model(reference.inputs, [reference.pyramid_outputs[f"P{i}"] for i in range(1, 5)])
    normalised = ((images - kh.MEAN) / kh.STD).astype("float32")
    for a, b in zip(ours(images), theirs(normalised, training=False)):
        assert np.abs(np.asarray(a) - np.asarray(b)).max() <= 1e-4


def test_keras_hub_preprocessor_with_other_normalisation_is_refused(tmp_path):
    pytest.importorskip("keras_hub")
    from segcli.weights.importer import import_checkpoint
    from tests.weights import keras_hub_presets as kh

    kh.make(tmp_path / "preset")
    (tmp_path / "preset" / "preprocessor.json").write_text(json.dumps(
        {"class_name": "SegFormerImageSegmenterPreprocessor", "config": {"image_converter": {
            "class_name": "SegFormerImageConverter", "config": {"scale": 0.00392156862745098, "offset": None}}}}))
    with pytest.raises(CheckpointError, match=r"preprocessor.json: the model expects inputs scaled by"):
        import_checkpoint(tmp_path / "preset", "kh_tiny")


def test_keras_hub_preset_whose_hidden_size_does_not_split_into_its_heads_is_refused(tmp_path, segcli_home):
    pytest.importorskip("keras_hub")
    from segcli.weights.importer import import_checkpoint
    from tests.weights import keras_hub_presets as kh

    kh.make(tmp_path / "preset", segmenter=False, arch={**kh.TINY, "hidden_dims": [8, 16, 24, 64]})  # 24 / 5 heads
    with pytest.raises(CheckpointError) as info:
        import_checkpoint(tmp_path / "preset", "kh_tiny")
    assert str(info.value) == (f"{tmp_path / 'preset'}: stage 3 of 4 has hidden size 24 and 5 attention heads; "
                               f"segcli needs each stage's hidden size to be divisible by its number of heads. Use a "
                               f"checkpoint whose hidden sizes divide evenly by their heads (every published SegFormer "
                               f"does).")
    assert list(segcli_home.rglob("*")) == []


def test_hf_folder_import_under_a_custom_name_keeps_its_labels(tmp_path):
    from segcli.models.load import load
    from segcli.checkpoints.cache import entry_dir
    from segcli.weights.importer import import_checkpoint

    torch_model = hf.make(tmp_path / "ckpt", num_labels=4)
    folder = import_checkpoint(tmp_path / "ckpt", "tiny_hf")
    assert folder == entry_dir("tiny_hf")
    loaded = load(folder, activation=None)
    assert list(loaded.classes.names) == ["label_0", "label_1", "label_2", "label_3"]
    by_name = load("tiny_hf", activation=None)  # the imported name resolves like a preset
    assert list(by_name.classes.names) == list(loaded.classes.names)
    images = _images((1, 64, 96, 3))
    assert np.abs(np.asarray(loaded.model(images)) - hf.upsampled_logits(torch_model, images)).max() <= 1e-4
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["config.json", "model.safetensors"]


def test_importing_a_mismatched_checkpoint_under_a_preset_name_is_refused(tmp_path):
    from segcli.weights.importer import import_checkpoint

    hf.make(tmp_path / "ckpt", num_labels=150)
    with pytest.raises(CheckpointError) as info:
        import_checkpoint(tmp_path / "ckpt", "segformer_b0_ade20k_512")
    assert str(info.value).endswith("import it under another name, for example --as segformer_b0_ade20k_512_custom.")
    with pytest.raises(UsageError, match=r"^Preset 'segformer_test' is a random-init architecture"):
        import_checkpoint(tmp_path / "ckpt", "segformer_test")


def test_bad_names_and_folders_get_one_line(tmp_path):
    from segcli.weights.importer import import_checkpoint

    with pytest.raises(UsageError, match=r"^name '../x': use a plain name"):
        import_checkpoint(tmp_path, "../x")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match=r"empty is not a checkpoint folder: expected config.json"):
        import_checkpoint(tmp_path / "empty", "x")
    with pytest.raises(CheckpointError, match=r"missing: no such folder"):
        import_checkpoint(tmp_path / "missing", "x")


def test_a_truncated_safetensors_file_says_to_copy_it_again(tmp_path, segcli_home):
    from segcli.weights.importer import import_checkpoint

    hf.make(tmp_path / "ckpt", num_labels=3)
    weights = tmp_path / "ckpt" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(CheckpointError) as info:
        import_checkpoint(tmp_path / "ckpt", "x")
    message = str(info.value)
    assert message.startswith(f"{weights} cannot be read as safetensors (")
    assert message.endswith("); copy or download the checkpoint again (a damaged or partly copied file reads like "
                            "this).")
    assert not (segcli_home / "weights" / "x").exists()

def test_corrupt_entry_is_never_loaded_silently(tmp_path):
    from segcli.models import SegFormer
    from segcli.weights.importer import import_checkpoint

    hf.make(tmp_path / "ckpt")
    folder = import_checkpoint(tmp_path / "ckpt", "tiny_hf")
    weights = folder / "model.weights.h5"
    data = bytearray(weights.read_bytes())
    data[-100] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError) as info:
        SegFormer.from_preset(str(folder))
    assert "is corrupt" in str(info.value) and "delete" in str(info.value) and "fetch or import it again" in str(info.value)
