"""Dataset discovery: layouts, the seeded val split, class files, and every mask kind read as indices."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from segcli.data.folder_dataset import discover
from segcli.errors import DataError
from tests.data.tiny_dataset import make_easy, write_mask, write_rgb


@pytest.mark.parametrize("layout", ["flat", "split", "mmseg"])
def test_each_layout_is_found_with_its_pairs(tmp_path, layout):
    make_easy(tmp_path, n=8, layout=layout, n_val=2, ext=".jpg")
    ds = discover(tmp_path)
    assert ds.layout == layout
    n_train, n_val = len(ds.splits["train"]), len(ds.splits["val"])
    assert n_train + n_val == 8
    if layout != "flat":
        assert (n_train, n_val) == (6, 2) and ds.val_source == "folder"
        assert all("val" in str(p.image) for p in ds.splits["val"])
    pair = ds.splits["train"][0]
    assert pair.image.suffix == ".jpg" and pair.mask.suffix == ".png" and pair.image.stem == pair.mask.stem
    assert ds.num_classes == 3 and ds.class_source == "inferred"


def test_drawn_val_split_is_seeded_and_disjoint(tmp_path):
    make_easy(tmp_path, n=20)
    a = discover(tmp_path, val_fraction=0.25, seed=1)
    b = discover(tmp_path, val_fraction=0.25, seed=1)
    c = discover(tmp_path, val_fraction=0.25, seed=2)
    stems = lambda ds, s: [p.stem for p in ds.splits[s]]  # noqa: E731
    assert stems(a, "val") == stems(b, "val") and len(stems(a, "val")) == 5
    assert stems(a, "val") != stems(c, "val")
    assert not set(stems(a, "val")) & set(stems(a, "train"))
    assert "drew 5 of 20 pairs" in a.notes[0]


def test_zero_255_masks_are_two_classes_not_ignore(tmp_path):
    for i in range(3):
        write_rgb(tmp_path / "images" / f"{i}.png", np.zeros((8, 8, 3), np.uint8))
        mask = np.zeros((8, 8), np.uint8)
        mask[:4] = 255
        write_mask(tmp_path / "masks" / f"{i}.png", mask)
    ds = discover(tmp_path)
    assert ds.binary_255 and ds.class_names == ["background", "foreground"]
    label = ds.read_label(ds.splits["train"][0])
    assert label.dtype == np.uint8 and set(np.unique(label)) == {0, 1} and (label[:4] == 1).all()
    assert any("only 0 and 255" in n for n in ds.notes)


def test_classes_json_palette_maps_rgb_masks(tmp_path):
    classes = [{"name": "sky", "color": [0, 0, 255]}, {"name": "grass", "color": [0, 255, 0]}]
    (tmp_path / "classes.json").write_text(json.dumps(classes))
    rgb = np.zeros((6, 6, 3), np.uint8)
    rgb[:3] = [0, 0, 255]
    rgb[3:] = [0, 255, 0]
    rgb[5, 5] = [9, 9, 9]  # not in the palette: ignore
    for i in range(2):
        write_rgb(tmp_path / "images" / f"{i}.jpg", np.zeros((6, 6, 3), np.uint8))
        write_rgb(tmp_path / "masks" / f"{i}.png", rgb)
    ds = discover(tmp_path, val_fraction=0.5)
    assert ds.class_source == "classes.json" and ds.classes == classes
    label = ds.read_label(tmp_path / "masks" / "0.png")
    assert (label[:3] == 0).all() and (label[3:5] == 1).all() and label[5, 5] == 255 and label[5, 0] == 1


def test_classes_txt_and_palette_png_masks(tmp_path):
    (tmp_path / "classes.txt").write_text("background\ncat\ndog\n")
    (tmp_path / "masks").mkdir()
    for i in range(2):
        write_rgb(tmp_path / "images" / f"{i}.png", np.zeros((4, 4, 3), np.uint8))
        im = Image.fromarray(np.array([[0, 1, 2, 255]] * 4, np.uint8), mode="P")
        im.putpalette([0, 0, 0, 200, 0, 0, 0, 200, 0] + [255, 255, 255] * 253)
        im.save(tmp_path / "masks" / f"{i}.png")
    ds = discover(tmp_path, val_fraction=0.5)
    assert ds.class_names == ["background", "cat", "dog"] and ds.class_source == "classes.txt"
    assert ds.read_label(ds.splits["val"][0])[0].tolist() == [0, 1, 2, 255]


def test_rgb_masks_without_class_file_get_inferred_colours(tmp_path):
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[:2] = [200, 10, 10]
    for i in range(2):
        write_rgb(tmp_path / "images" / f"{i}.png", np.zeros((4, 4, 3), np.uint8))
        write_rgb(tmp_path / "masks" / f"{i}.png", rgb)
    ds = discover(tmp_path, val_fraction=0.5)
    assert [c["color"] for c in ds.classes] == [[0, 0, 0], [200, 10, 10]]
    assert ds.read_label(ds.splits["train"][0])[:, 0].tolist() == [1, 1, 0, 0]


def test_num_classes_fixes_the_count_of_inferred_classes(tmp_path):
    make_easy(tmp_path, n=4)
    assert discover(tmp_path, num_classes=5).num_classes == 5
    assert discover(tmp_path, num_classes=2).num_classes == 2  # data check then reports value 2


@pytest.mark.parametrize("setup, message", [
    (lambda root: None, "{root}: empty folder; expected DATA/images + DATA/masks"),
    (lambda root: (root / "images").mkdir(), "{root}: empty dataset, no images or masks in images and masks;"),
    (lambda root: make_easy(root, n=1), "{root}: only 1 image/mask pair and no val split, so no validation is "
                                        "possible; add images or a val split."),
    (lambda root: (root / "other").mkdir(), "{root}: no dataset layout found; expected DATA/images"),
])
def test_unusable_folders_raise_one_clear_line(tmp_path, setup, message):
    root = tmp_path / "data"
    root.mkdir()
    setup(root)
    with pytest.raises(DataError) as info:
        discover(root)
    assert str(info.value).startswith(message.format(root=root))


def test_missing_folder(tmp_path):
    with pytest.raises(DataError, match="no such folder"):
        discover(tmp_path / "nope")
