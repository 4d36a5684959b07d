"""The tf.data pipeline: crops of the asked size, 255 padding, labels that stay labels, same batches after a resume."""

from __future__ import annotations

import numpy as np
import pytest
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


def _photo_dataset(root):
    """One pair per kind of file predict reads: RGB/gray/16-bit PNG, JPEG, EXIF-rotated JPEG and PNGs, BMP, CMYK
    JPEG, float TIFF."""
    from PIL import Image

    rng = np.random.default_rng(0)
    base = cv2_blur((rng.random((30, 44, 3)) * 255).astype(np.uint8))
    images = root / "images"
    images.mkdir(parents=True)
    Image.fromarray(base).save(images / "rgb.png")
    Image.fromarray(base[..., 0]).save(images / "gray.png")
    Image.fromarray(base).save(images / "plain.jpg", quality=90)
    for orientation in range(1, 9):
        exif = Image.Exif()
        exif[0x0112] = orientation
        Image.fromarray(base).save(images / f"exif{orientation}.jpg", exif=exif, quality=90)
        Image.fromarray(base).save(images / f"exif{orientation}_png.png", exif=exif)
    Image.fromarray(base).save(images / "other.bmp")
    Image.fromarray(base).convert("CMYK").save(images / "cmyk.jpg")
    cv2_write(images / "deep16.png", base[:, :, ::-1].astype(np.uint16) * 257)
    cv2_write(images / "float.tif", base[:, :, ::-1] / np.float32(255))
    from segcli.data.image_io import read_image

    for path in images.iterdir():
        h, w = read_image(path).shape[:2]
        write_mask(root / "masks" / f"{path.stem}.png", (np.arange(h * w).reshape(h, w) % 3).astype(np.uint8))
    return discover(root, val_fraction=0.1)


def cv2_write(path, array):
    import cv2

    assert cv2.imwrite(str(path), array)


def cv2_blur(image):
    import cv2

    return cv2.GaussianBlur(image, (5, 5), 0)


@pytest.mark.parametrize("cache", ["none", "memory", "disk"])
def test_train_decodes_the_same_pixels_as_predicts_reader(tmp_path, cache):
    from segcli.data.image_io import read_image
    from segcli.data.pipeline import PairSource

    ds = _photo_dataset(tmp_path / "data")
    pairs = ds.pairs()
    source = PairSource(ds, pairs, cache=cache, cache_dir=tmp_path / "cache")
    assert source.cache == cache
    for pair, (image, label) in zip(pairs, source.dataset().as_numpy_iterator()):
        expected = read_image(pair.image)  # what predict and eval see: OpenCV, EXIF applied
        assert image.shape == expected.shape, pair.image.name
        assert np.array_equal(image, expected), pair.image.name
        assert np.array_equal(label, ds.read_label(pair))
    kinds = {pair.image.name: e.kind for pair, e in zip(pairs, source.entries)}
    assert len(kinds) == 23 and kinds["exif6.jpg"] == 1 and kinds["exif6_png.png"] == kinds["deep16.png"] == 0
    assert kinds["cmyk.jpg"] == kinds["other.bmp"] == kinds["float.tif"] == 2
    sizes = {pair.image.name: e.decoded_bytes for pair, e in zip(pairs, source.entries)}
    assert sizes["float.tif"] == sizes["rgb.png"] == 30 * 44 * 4  # Pillow cannot open it: sized from its header


def test_disk_cache_is_reused_and_a_changed_file_is_decoded_again(tmp_path):
    from segcli.data.pipeline import PairSource

    make_easy(tmp_path / "data", n=4, size=32)
    ds = discover(tmp_path / "data", val_fraction=0.25)
    PairSource(ds, ds.pairs(), cache="disk", cache_dir=tmp_path / "cache")
    files = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "cache").iterdir()}
    assert len(files) == 2 * 4
    PairSource(ds, ds.pairs(), cache="disk", cache_dir=tmp_path / "cache")
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "cache").iterdir()} == files
    write_rgb(ds.pairs()[0].image, np.full((32, 32, 3), 7, np.uint8))
    source = PairSource(ds, ds.pairs(), cache="disk", cache_dir=tmp_path / "cache")
    assert len(list((tmp_path / "cache").iterdir())) == 2 * 5
    assert (next(source.dataset().as_numpy_iterator())[0] == 7).all()


def test_default_cache_is_memory_when_the_set_fits_a_quarter_of_ram(tmp_path, monkeypatch):
    from segcli.data import pipeline

    make_easy(tmp_path, n=4, size=32)
    entries = pipeline.index_pairs(discover(tmp_path, val_fraction=0.25).pairs())
    assert sum(e.decoded_bytes for e in entries) == 4 * 32 * 32 * 4
    monkeypatch.setattr(pipeline, "total_ram_bytes", lambda: 4 * 4 * 32 * 32 * 4)
    assert pipeline.choose_cache(None, entries) == "memory"
    monkeypatch.setattr(pipeline, "total_ram_bytes", lambda: 4 * 4 * 32 * 32 * 4 - 1)
    assert pipeline.choose_cache(None, entries) == "none"


def test_one_dataset_for_several_epochs_gives_each_epochs_batches(tmp_path):
    make_easy(tmp_path, n=6, size=48)
    ds = discover(tmp_path)
    kw = dict(seed=3, batch_size=2, steps=2, crop_hw=(32, 32), cache="memory")
    run = [b[0].numpy() for b in train_dataset(ds, ds.splits["train"], epoch=1, epochs=2, **kw)]
    one_by_one = [b[0].numpy() for e in (1, 2) for b in train_dataset(ds, ds.splits["train"], epoch=e, **kw)]
    assert len(run) == 4 and all(np.array_equal(a, b) for a, b in zip(run, one_by_one))
