"""The tf.data pipeline: crops of the asked size, 255 padding, labels that stay labels, same batches after a resume."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from segcli.data.folder_dataset import discover
from segcli.data.pipeline import augment, train_dataset, val_dataset
from tests.data.tiny_dataset import make_easy, write_mask, write_rgb


def test_batches_have_crop_size_and_only_known_labels(tmp_path):
    make_easy(tmp_path, n=6, size=48)
    ds = discover(tmp_path, val_fraction=0.34)
    batches = list(train_dataset(ds, ds.splits["train"], epoch=0, seed=0, batch_size=3, steps=2, crop_hw=(32, 40)))
    assert len(batches) == 2
    images, labels = batches[0]
    assert images.shape == (3, 32, 40, 3) and images.dtype == tf.float32
    assert labels.shape == (3, 32, 40) and labels.dtype == tf.uint8
    assert 0.0 <= float(tf.reduce_min(images)) and float(tf.reduce_max(images)) <= 255.0
    assert set(np.unique(labels.numpy())) <= {0, 1, 2, 255}


def test_same_seed_and_epoch_give_identical_batches_other_epochs_differ(tmp_path):
    make_easy(tmp_path, n=6, size=48)
    ds = discover(tmp_path)
    make = lambda epoch: [b[1].numpy() for b in train_dataset(  # noqa: E731
        ds, ds.splits["train"], epoch=epoch, seed=5, batch_size=2, steps=2, crop_hw=(32, 32))]
    first, again, other = make(1), make(1), make(2)
    assert all((a == b).all() for a, b in zip(first, again))
    assert not all((a == b).all() for a, b in zip(first, other))


def test_small_images_are_padded_with_ignore_in_the_mask():
    image = tf.fill([20, 20, 3], tf.constant(100, tf.uint8))
    label = tf.ones([20, 20], tf.uint8)
    out_image, out_label = augment(image, label, tf.constant([0, 1], tf.int64), (64, 64), scale_range=(0.5, 0.5),
                                   photometric=False)
    # 0.5 x 64 = a 32-pixel short side: the rest of the 64x64 crop is padding
    values = out_label.numpy()
    assert (values == 1).sum() == 32 * 32 and (values == 255).sum() == 64 * 64 - 32 * 32
    assert (out_image.numpy()[values == 255] == 0).all()


def test_val_keeps_the_mask_at_its_own_size_and_applies_exif(tmp_path):
    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = 6  # stored 30x50 landscape, shown rotated 90 degrees: 50 high, 30 wide
    (tmp_path / "images").mkdir()
    Image.fromarray(np.zeros((30, 50, 3), np.uint8)).save(tmp_path / "images" / "a.jpg", exif=exif)
    write_mask(tmp_path / "masks" / "a.png", np.zeros((50, 30), np.uint8))
    write_rgb(tmp_path / "images" / "b.png", np.zeros((50, 30, 3), np.uint8))
    write_mask(tmp_path / "masks" / "b.png", np.ones((50, 30), np.uint8))
    ds = discover(tmp_path, val_fraction=0.5)
    for image, label, size in val_dataset(ds, ds.pairs(), (32, 32)):
        assert image.shape == (1, 32, 32, 3) and label.shape == (50, 30) and size.numpy().tolist() == [50, 30]
    batches = list(train_dataset(ds, ds.pairs(), epoch=0, seed=0, batch_size=2, steps=1, crop_hw=(32, 32)))
    assert batches[0][0].shape == (2, 32, 32, 3)
