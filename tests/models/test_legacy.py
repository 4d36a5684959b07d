"""Weights written by segcli 0.1 (the decode head as loose top-level layers) still load, with the same outputs."""

from __future__ import annotations

import json

import h5py
import numpy as np

from segcli.models.load import create_segmenter, load, save_folder
from segcli.models.segformer.legacy import HEAD_GROUPS


def _to_0_1_layout(h5_path):
    """Move the head groups back where 0.1 kept them: top-level groups under Keras's automatic names."""
    with h5py.File(h5_path, "r+") as f:
        for i, new in enumerate(HEAD_GROUPS.values()):
            f.move(new, f"layers/legacy_{i}")
        del f["layers/seg_former_head"]


def test_a_0_1_weights_folder_loads_with_the_same_logits(tmp_path):
    model = create_segmenter("segformer_test", num_classes=3)
    images = np.random.default_rng(0).uniform(0, 255, (1, 64, 96, 3)).astype("float32")
    folder = save_folder(model, tmp_path / "old")
    weights = folder / "model.weights.h5"
    _to_0_1_layout(weights)
    record = json.loads((folder / "record.json").read_text())
    record.pop("sha256")  # 0.1 records carry one; this test rewrites the file, so drop the check
    (folder / "record.json").write_text(json.dumps(record))

    loaded = load(folder).model
    np.testing.assert_array_equal(np.asarray(loaded(images)), np.asarray(model(images)))
    with h5py.File(weights) as f:  # the file on disk is read, never rewritten
        assert "layers/seg_former_head" not in f


def test_the_bundled_0_1_demo_model_loads():
    """samples/demo_model was written by segcli 0.1; it keeps loading as a 5-class B0."""
    model = load("samples/demo_model").model
    assert model.num_classes == 5
    kernel = np.asarray(model.head.linear_c[0].kernel)
    assert np.abs(kernel).sum() > 0 and kernel.shape == (32, 256)
