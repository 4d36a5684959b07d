"""`fetch` against a real Hugging Face cache layout, offline (HF_HUB_OFFLINE=1): the real code path, no mocks."""

from __future__ import annotations

import time

import numpy as np
import pytest

from segcli.errors import CheckpointError, WeightsNotFoundError
from tests import hf_checkpoints as hf
from tests.weights.hf_cache import REVISION, add_snapshot

pytest.importorskip("huggingface_hub")
pytest.importorskip("transformers")

B0_SMALL_HEAD = dict(hf.B0, decoder_hidden_size=256)


@pytest.fixture
def hf_home(tmp_path, monkeypatch):
    home = tmp_path / "hf_home"
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return home


def test_offline_with_empty_cache_fails_at_once_with_one_line(hf_home):
    from segcli.weights.fetch import fetch

    start = time.perf_counter()
    with pytest.raises(WeightsNotFoundError) as info:
        fetch("segformer_b0_ade20k_512")
    assert time.perf_counter() - start < 5
    assert str(info.value) == (
        "cannot fetch 'segformer_b0_ade20k_512': no network and nvidia/segformer-b0-finetuned-ade-512-512 is not "
        "in the Hugging Face cache. On a connected machine download "
        "https://huggingface.co/nvidia/segformer-b0-finetuned-ade-512-512, copy the folder here and run "
        "`segcli weights import DIR --as segformer_b0_ade20k_512`."
    )


def test_unreachable_hub_without_offline_flag_also_fails_at_once(hf_home, monkeypatch):
    from segcli.weights.fetch import fetch

    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    start = time.perf_counter()
    with pytest.raises(WeightsNotFoundError, match=r"^cannot fetch 'mit_b0_imagenet': no network and nvidia/mit-b0"):
        fetch("mit_b0_imagenet")
    assert time.perf_counter() - start < 5


def test_fetch_converts_a_cached_encoder_once_and_the_preset_then_loads_it(hf_home, tmp_path):
    from segcli.models import MiTBackbone, SegFormer
    from segcli.checkpoints.cache import entry_dir, sha256_file
    from segcli.weights.fetch import fetch

    hf.make(tmp_path / "ckpt", hf.B0, head="classification")
    add_snapshot(hf_home / "hub", "nvidia/mit-b0", tmp_path / "ckpt")
    result = fetch("segformer_b0_imagenet")  # shares the mit_b0_imagenet entry
    assert result.downloaded and result.entry == "mit_b0_imagenet"
    assert result.folder == entry_dir("mit_b0_imagenet")
    record = result.record
    assert record["source"] == "hf://nvidia/mit-b0" and record["revision"] == REVISION
    assert record["scope"] == "backbone" and "non-commercial" in record["licence"]
    assert record["sha256"] == sha256_file(result.folder / "model.weights.h5")
    again = fetch("mit_b0_imagenet")
    assert not again.downloaded and again.record["sha256"] == record["sha256"]

    backbone = MiTBackbone.from_preset("mit_b0_imagenet")
    from safetensors.numpy import load_file

    tensors = load_file(str(tmp_path / "ckpt" / "model.safetensors"))
    key = next(k for k in tensors if k.endswith("patch_embeddings.0.proj.weight"))
    np.testing.assert_array_equal(backbone.get_layer("patch_embedding_0").proj.kernel.numpy(),
                                  tensors[key].transpose(2, 3, 1, 0))
    model = SegFormer.from_preset("segformer_b0_imagenet", num_classes=3)
    np.testing.assert_array_equal(model.backbone.get_layer("patch_embedding_0").proj.kernel.numpy(),
                                  tensors[key].transpose(2, 3, 1, 0))


def test_fetch_of_an_ade20k_segmenter_keeps_logits_and_ships_the_class_table(hf_home, tmp_path):
    from segcli.models import SegFormer
    from segcli.weights.fetch import fetch

    torch_model = hf.make(tmp_path / "ckpt", B0_SMALL_HEAD, num_labels=150)
    add_snapshot(hf_home / "hub", "nvidia/segformer-b0-finetuned-ade-512-512", tmp_path / "ckpt")
    result = fetch("segformer_b0_ade20k_512")
    assert result.record["num_classes"] == 150 and result.record["projection_filters"] == 256
    assert result.record["classes"][0] == {"name": "wall", "color": [120, 120, 120]}
    model = SegFormer.from_preset("segformer_b0_ade20k_512", activation=None)
    images = np.random.RandomState(0).uniform(0, 255, (1, 64, 64, 3)).astype("float32")
    assert np.abs(np.asarray(model(images)) - hf.upsampled_logits(torch_model, images)).max() <= 1e-4


def test_fetch_refuses_a_checkpoint_of_another_architecture(hf_home, tmp_path):
    from segcli.checkpoints.cache import entry_dir
    from segcli.weights.fetch import fetch

    hf.make(tmp_path / "ckpt", hf.TINY, num_labels=150)
    add_snapshot(hf_home / "hub", "nvidia/segformer-b0-finetuned-ade-512-512", tmp_path / "ckpt")
    with pytest.raises(CheckpointError) as info:
        fetch("segformer_b0_ade20k_512")
    assert "does not match preset 'segformer_b0_ade20k_512' (mit_b0): hidden_sizes (8, 16, 40, 64) vs " \
           "(32, 64, 160, 256)" in str(info.value)
    assert not entry_dir("segformer_b0_ade20k_512").exists()


def test_fetch_replaces_a_corrupt_entry(hf_home, tmp_path):
    from segcli.weights.fetch import fetch

    hf.make(tmp_path / "ckpt", hf.B0, head="classification")
    add_snapshot(hf_home / "hub", "nvidia/mit-b0", tmp_path / "ckpt")
    first = fetch("mit_b0_imagenet")
    weights = first.folder / "model.weights.h5"
    weights.write_bytes(weights.read_bytes()[:1000])  # a partial file
    second = fetch("mit_b0_imagenet")
    assert second.downloaded and second.replaced_corrupt
    from segcli.checkpoints.cache import read_entry

    read_entry(second.folder)  # the new entry verifies
    assert second.record["size_bytes"] == first.record["size_bytes"]


def test_random_init_preset_has_nothing_to_fetch(hf_home):
    from segcli.errors import PresetError
    from segcli.weights.fetch import fetch

    with pytest.raises(PresetError, match=r"^Preset 'segformer_b0' is a random-init architecture"):
        fetch("segformer_b0")
