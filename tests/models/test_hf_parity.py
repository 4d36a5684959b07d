"""Fidelity: our Keras SegFormer reproduces transformers' logits from the same weights."""

from __future__ import annotations

import numpy as np
import pytest

from segcli.errors import CheckpointError
from tests import hf_checkpoints as hf

pytest.importorskip("torch")
pytest.importorskip("transformers")


def _images(shape=(2, 96, 160, 3), seed=0):
    return np.random.RandomState(seed).uniform(0, 255, shape).astype("float32")


def _check_segmenter(tmp_path, arch, num_labels):
    from segcli.models import SegFormer

    torch_model = hf.make(tmp_path / "ckpt", arch, num_labels)
    model = SegFormer.from_preset(str(tmp_path / "ckpt"), activation=None)
    images = _images()
    expected = hf.upsampled_logits(torch_model, images)
    got = np.asarray(model(images))
    assert got.shape == expected.shape == (2, 96, 160, num_labels)
    assert np.abs(got - expected).max() <= 1e-4


def test_tiny_segmenter_matches_transformers(tmp_path):
    _check_segmenter(tmp_path, hf.TINY, 5)


@pytest.mark.slow
def test_b0_segmenter_matches_transformers(tmp_path):
    _check_segmenter(tmp_path, hf.B0, 150)


@pytest.mark.slow
def test_b2_segmenter_matches_transformers(tmp_path):
    _check_segmenter(tmp_path, hf.B2, 150)


@pytest.mark.parametrize("arch", [hf.TINY, pytest.param(hf.B0, marks=pytest.mark.slow)], ids=["tiny", "b0"])
def test_encoder_hidden_states_match_transformers(tmp_path, arch):
    import keras
    import torch
    from transformers import SegformerModel

    from segcli.models import MiTBackbone

    hf.make(tmp_path / "ckpt", arch, head="classification")
    backbone = MiTBackbone.from_preset(str(tmp_path / "ckpt"))
    reference = SegformerModel.from_pretrained(str(tmp_path / "ckpt")).eval()
    images = _images((1, 77, 130, 3))
    with torch.no_grad():
        states = reference(pixel_values=hf.to_torch_input(images), output_hidden_states=True).hidden_states
    extractor = keras.Model(backbone.inputs, [backbone.get_layer(n).output
                                              for n in backbone.pyramid_level_inputs.values()])
    ours = extractor(images)
    assert len(states) == 4
    for level, (expected, got) in enumerate(zip(states, ours)):
        expected = expected.numpy().transpose(0, 2, 3, 1)
        assert got.shape == expected.shape, level
        assert np.abs(np.asarray(got) - expected).max() <= 1e-4, level


def test_missing_tensor_is_named(tmp_path):
    from safetensors.numpy import load_file, save_file

    from segcli.models import SegFormer

    hf.make(tmp_path / "ckpt")
    path = tmp_path / "ckpt" / "model.safetensors"
    tensors = load_file(str(path))
    del tensors["segformer.encoder.block.1.0.mlp.dense2.weight"]
    save_file(tensors, str(path))
    with pytest.raises(CheckpointError, match=r"tensor 'encoder.block.1.0.mlp.dense2.weight' is missing"):
        SegFormer.from_preset(str(tmp_path / "ckpt"))


def test_misshaped_tensor_is_named(tmp_path):
    from safetensors.numpy import load_file, save_file

    from segcli.models import SegFormer

    hf.make(tmp_path / "ckpt")
    path = tmp_path / "ckpt" / "model.safetensors"
    tensors = load_file(str(path))
    tensors["decode_head.linear_fuse.weight"] = np.zeros((32, 100, 1, 1), "float32")
    save_file(tensors, str(path))
    with pytest.raises(CheckpointError) as info:
        SegFormer.from_preset(str(tmp_path / "ckpt"))
    assert str(info.value).endswith(
        "tensor 'decode_head.linear_fuse.weight' has shape (32, 100, 1, 1), which does not fit the model's "
        "(1, 1, 128, 32) (after layout conversion).")


def test_new_class_count_keeps_everything_but_the_classifier(tmp_path):
    from segcli.models import SegFormer

    hf.make(tmp_path / "ckpt", num_labels=5)
    full = SegFormer.from_preset(str(tmp_path / "ckpt"))
    retargeted = SegFormer.from_preset(str(tmp_path / "ckpt"), num_classes=3)
    assert retargeted.num_classes == 3
    np.testing.assert_array_equal(full.head.linear_fuse.get_weights()[0],
                                  retargeted.head.linear_fuse.get_weights()[0])


def test_canonical_names_cover_transformers_v5_renames():
    from segcli.models.segformer.convert_hf import canonical_name

    assert canonical_name("segformer.stages.2.layer_norm.weight") == "encoder.layer_norm.2.weight"
    assert canonical_name("segformer.stages.0.blocks.1.attention.sequence_reduction.layer_norm.bias") == \
        "encoder.block.0.1.attention.self.layer_norm.bias"
    assert canonical_name("decode_head.linear_projections.3.proj.weight") == "decode_head.linear_c.3.proj.weight"
