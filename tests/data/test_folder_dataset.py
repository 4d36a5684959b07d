"""Dataset discovery: layouts, the seeded val split, class files, and every mask kind read as indices."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from segcli.data import layouts
from segcli.data.folder_dataset import discover, read_label_map
from segcli.data.layouts import Layout
from segcli.errors import DataError
from tests.data.tiny_dataset import make_easy, make_pairs, write_mask, write_rgb


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
    assert ds.class_source == "classes.json" and ds.classes.as_dicts() == classes and ds.has_colors
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
    assert ds.classes.colors == ((0, 0, 0), (200, 10, 10)) and ds.has_colors
    assert ds.read_label(ds.splits["train"][0])[:, 0].tolist() == [1, 1, 0, 0]


def test_num_classes_fixes_the_count_of_inferred_classes(tmp_path):
    make_easy(tmp_path, n=4)
    assert discover(tmp_path, num_classes=5).num_classes == 5
    assert discover(tmp_path, num_classes=2).num_classes == 2  # data check then reports value 2


@pytest.mark.parametrize("setup, message", [
    (lambda root: None, "{root}: empty folder; expected DATA/images + DATA/masks"),
    (lambda root: (root / "images").mkdir(), "{root}: empty dataset, no images or masks in images and masks;"),
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


def test_a_single_pair_discovers_with_an_empty_val_split(tmp_path):
    make_easy(tmp_path, n=1, size=32)
    ds = discover(tmp_path)
    assert [p.stem for p in ds.splits["train"]] == ["img_000"] and ds.splits["val"] == []
    assert ds.val_source == "none" and [p.stem for p in ds.pairs()] == ["img_000"]
    assert "only 1 image/mask pair and no val split: eval scores it, but training needs a val split" in ds.notes[0]


def test_a_layout_is_one_registry_entry(tmp_path, monkeypatch):
    """A new Layout is found by discover and named in the "expected ..." line, with no other change."""
    pairs = Layout(name="pairs", description="DATA/rgb + DATA/labels",
                   tree="DATA/\n├── rgb/a.jpg\n└── labels/a.png",
                   detect=lambda root: (root / "rgb").is_dir(),
                   dirs=lambda root: {"train": (root / "rgb", root / "labels")})
    monkeypatch.setattr(layouts, "LAYOUTS", [*layouts.LAYOUTS, pairs])
    for i in range(3):
        write_rgb(tmp_path / "data" / "rgb" / f"{i}.png", np.zeros((4, 4, 3), np.uint8))
        write_mask(tmp_path / "data" / "labels" / f"{i}.png", np.full((4, 4), i % 2, np.uint8))
    ds = discover(tmp_path / "data", val_fraction=0.34)
    assert ds.layout == "pairs" and len(ds.pairs()) == 3
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "x").mkdir()
    with pytest.raises(DataError) as info:
        discover(tmp_path / "other")
    assert str(info.value).endswith(", DATA/img_dir/{train,val} + DATA/ann_dir/{train,val}, or DATA/rgb + "
                                    "DATA/labels.")
    assert "pairs" in layouts.help_text() and "└── labels/a.png" in layouts.help_text()


def test_split_layout_wins_over_flat_when_both_are_present(tmp_path):
    make_easy(tmp_path, n=4, size=16, layout="split", n_val=1)
    make_easy(tmp_path, n=2, size=16, layout="flat")
    assert discover(tmp_path).layout == "split"


RAW = np.array([[7, 8, 26, 0]] * 4, np.uint8)  # Cityscapes-style label ids


def test_label_map_maps_raw_values_and_unmapped_values_become_ignore(tmp_path):
    make_pairs(tmp_path, [RAW, RAW])
    (tmp_path / "map.json").write_text('{"7": 0, "8": 1, "0": 255}')
    ds = discover(tmp_path, val_fraction=0.5, label_map=tmp_path / "map.json")
    assert ds.label_map == {7: 0, 8: 1, 0: 255}
    assert ds.class_names == ["class_0", "class_1"] and ds.class_source == "label map"
    assert ds.read_label(tmp_path / "masks" / "m000.png")[0].tolist() == [0, 1, 255, 255]
    (tmp_path / "classes.txt").write_text("road\nsidewalk\nbuilding\n")
    ds = discover(tmp_path, val_fraction=0.5, label_map={7: 0, 8: 1, 26: 2})
    assert ds.class_names == ["road", "sidewalk", "building"]
    assert ds.read_label(ds.splits["train"][0])[0].tolist() == [0, 1, 2, 255]
    assert any("label map: 3 mask value(s) mapped to class ids" in n for n in ds.notes)


def test_reduce_zero_label_ignores_0_and_shifts_the_other_values_down_as_mmsegmentation_does(tmp_path):
    """Masks whose 0 means "not labelled" (ADE20K, LoveDA): the labels are what mmsegmentation's reduce_zero_label
    computes, written out here: 0 -> 255, v -> v - 1, 255 stays 255."""
    raw = np.array([[0, 1, 2, 3], [4, 255, 1, 0]], np.uint8)
    make_pairs(tmp_path, [raw, raw[::-1]])
    expected = np.where(raw == 0, 255, np.where(raw == 255, 255, raw.astype(int) - 1))
    ds = discover(tmp_path, val_fraction=0.5, label_map="reduce_zero_label")
    assert ds.class_names == ["class_0", "class_1", "class_2", "class_3"]  # values 1..4: four classes
    assert np.array_equal(ds.read_label(tmp_path / "masks" / "m000.png"), expected)
    assert any(n.startswith("reduce_zero_label: mask value 0 becomes 255 (ignore)") for n in ds.notes)
    (tmp_path / "classes.txt").write_text("wall\nbuilding\nsky\nfloor\ntree\n")
    ds = discover(tmp_path, val_fraction=0.5, label_map="reduce_zero_label")
    assert ds.class_names == ["wall", "building", "sky", "floor", "tree"]
    assert np.array_equal(ds.read_label(tmp_path / "masks" / "m000.png"), expected)


def test_reduce_zero_label_refuses_colour_masks(tmp_path):
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[0] = [255, 0, 0]
    make_pairs(tmp_path, [rgb, rgb])
    with pytest.raises(DataError) as info:
        discover(tmp_path, val_fraction=0.5, label_map="reduce_zero_label")
    assert str(info.value) == ("reduce_zero_label is for masks of class indices, and these masks are colour images; "
                               "map their colours with classes.json instead.")


def test_a_label_map_does_not_apply_to_rgb_masks(tmp_path):
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[0] = [255, 0, 0]
    make_pairs(tmp_path, [rgb, rgb])
    (tmp_path / "classes.json").write_text('[{"name": "bg", "color": [0, 0, 0]}, {"name": "r", "color": [255, 0, 0]}]')
    ds = discover(tmp_path, val_fraction=0.5, label_map={0: 0})
    with pytest.raises(DataError) as info:
        ds.read_label(ds.splits["train"][0])
    assert str(info.value) == (f"{ds.splits['train'][0].mask}: RGB colour mask, but a label map maps single-channel "
                               f"mask values; save index masks or drop the label map.")


@pytest.mark.parametrize("text, message", [
    ("[1, 2]", 'PATH: expected a non-empty JSON object of mask value -> class id, such as {"7": 0, "8": 1}.'),
    ("{}", 'PATH: expected a non-empty JSON object of mask value -> class id, such as {"7": 0, "8": 1}.'),
    ('{"a": 1}', "PATH: key 'a' is not a mask value; keys are whole numbers 0-255."),
    ('{"1.5": 1}', "PATH: key '1.5' is not a mask value; keys are whole numbers 0-255."),
    ('{"256": 1}', "PATH: key '256' is not a mask value; keys are whole numbers 0-255."),
    ('{"-1": 1}', "PATH: key '-1' is not a mask value; keys are whole numbers 0-255."),
    ('{"7": "road"}', "PATH: value 'road' of key '7' is not a class id; use a whole number 0-254, or 255 for ignore."),
    ('{"7": 1.0}', "PATH: value 1.0 of key '7' is not a class id; use a whole number 0-254, or 255 for ignore."),
    ('{"7": 256}', "PATH: value 256 of key '7' is not a class id; use a whole number 0-254, or 255 for ignore."),
    ('{"7": -1}', "PATH: value -1 of key '7' is not a class id; use a whole number 0-254, or 255 for ignore."),
    ('{"7": 0, "07": 1}', "PATH: mask value 7 is mapped twice ('7' and '07'); keep one."),
    ('{"7": 255}', "PATH: maps every value to 255 (ignore); map at least one value to a class id."),
])
def test_bad_label_maps_are_one_line_naming_the_file(tmp_path, text, message):
    path = tmp_path / "map.json"
    path.write_text(text)
    with pytest.raises(DataError) as info:
        read_label_map(path)
    assert str(info.value) == message.replace("PATH", str(path))


def test_unreadable_label_map_files(tmp_path):
    with pytest.raises(DataError) as info:
        read_label_map(tmp_path / "nope.json")
    assert str(info.value) == (f"{tmp_path / 'nope.json'}: no such label map file; give a JSON object of mask value "
                               f"-> class id, such as {{\"7\": 0, \"8\": 1}}, or reduce_zero_label.")
    (tmp_path / "bad.json").write_text("{7: 0}")
    with pytest.raises(DataError, match=r"bad\.json: not valid JSON \(.*\); write a JSON object such as"):
        read_label_map(tmp_path / "bad.json")


def test_keep_classes_keeps_a_subset_in_the_given_order(tmp_path):
    make_pairs(tmp_path, [np.array([[0, 1, 2, 255]] * 4, np.uint8)] * 2)
    (tmp_path / "classes.txt").write_text("bg\ncat\ndog\n")
    ds = discover(tmp_path, val_fraction=0.5, keep_classes="dog, bg")
    assert ds.class_names == ["dog", "bg"] and ds.num_classes == 2 and len(ds.full_classes) == 3
    assert ds.classes.colors == (ds.full_classes.colors[2], ds.full_classes.colors[0])
    assert ds.read_label(ds.splits["val"][0])[0].tolist() == [1, 255, 0, 255]
    assert any(n.startswith("using 2 of 3 classes (dog, bg);") for n in ds.notes)
    assert discover(tmp_path, val_fraction=0.5, keep_classes=["cat"]).read_label(ds.splits["val"][0])[0].tolist() \
        == [255, 0, 255, 255]
    with pytest.raises(DataError) as info:
        discover(tmp_path, keep_classes="cat,cow")
    assert str(info.value) == (f"{tmp_path}: class 'cow' is not one of the 3 classes of classes.txt (bg, cat, dog); "
                               f"use their names.")


def test_keep_classes_with_rgb_masks_and_a_label_map(tmp_path):
    rgb = np.zeros((2, 3, 3), np.uint8)
    rgb[:, 1] = [255, 0, 0]
    rgb[:, 2] = [0, 0, 255]
    make_pairs(tmp_path / "rgb", [rgb, rgb])
    (tmp_path / "rgb" / "classes.json").write_text(
        '{"classes": ["bg", "red", "blue"], "palette": [[0, 0, 0], [255, 0, 0], [0, 0, 255]]}')
    ds = discover(tmp_path / "rgb", val_fraction=0.5, keep_classes=["blue", "red"])
    assert ds.read_label(ds.splits["train"][0]).tolist() == [[255, 1, 0]] * 2
    make_pairs(tmp_path / "raw", [RAW, RAW])
    ds = discover(tmp_path / "raw", val_fraction=0.5, label_map={7: 0, 8: 1, 26: 2}, keep_classes="class_2")
    assert ds.read_label(ds.splits["train"][0])[0].tolist() == [255, 255, 0, 255]


# Cityscapes' building and ADE20K's wall and road are gray colours: R == G == B.
CITYSCAPES = [{"name": "void", "color": [0, 0, 0]}, {"name": "building", "color": [70, 70, 70]},
              {"name": "car", "color": [0, 0, 142]}]
ADE20K = [{"name": "wall", "color": [120, 120, 120]}, {"name": "building", "color": [180, 120, 120]},
          {"name": "road", "color": [140, 140, 140]}]


def _two_colours(top, bottom, shape=(4, 6)):
    mask = np.zeros((*shape, 3), np.uint8)
    mask[:shape[0] // 2], mask[shape[0] // 2:] = top, bottom
    return mask


@pytest.mark.parametrize("classes, top, bottom, expected", [
    (CITYSCAPES, (70, 70, 70), (0, 0, 0), (1, 0)),  # building on void
    (ADE20K, (120, 120, 120), (140, 140, 140), (0, 2)),  # wall above road
])
def test_gray_colour_masks_map_through_the_class_colours(tmp_path, classes, top, bottom, expected):
    (tmp_path / "classes.json").write_text(json.dumps(classes))
    make_pairs(tmp_path, [_two_colours(top, bottom)] * 3)
    with Image.open(tmp_path / "masks" / "m000.png") as im:
        assert im.mode == "RGB"  # stored with three channels, all equal
    ds = discover(tmp_path)
    assert ds.has_colors
    for pair in ds.pairs():
        assert ds.read_label(pair).tolist() == [[expected[0]] * 6] * 2 + [[expected[1]] * 6] * 2


def test_all_gray_masks_among_colour_masks_get_their_colours_inferred_as_classes(tmp_path):
    make_pairs(tmp_path, {"street": _two_colours((70, 70, 70), (200, 10, 10)),
                          "wall": _two_colours((70, 70, 70), (0, 0, 0))})
    ds = discover(tmp_path, val_fraction=0.5)
    assert ds.classes.colors == ((0, 0, 0), (70, 70, 70), (200, 10, 10)) and ds.class_source == "inferred"
    assert ds.read_label(tmp_path / "masks" / "wall.png")[:, 0].tolist() == [1, 1, 0, 0]
    assert ds.read_label(tmp_path / "masks" / "street.png")[:, 0].tolist() == [1, 1, 2, 2]


@pytest.mark.parametrize("class_file, text", [
    (None, None), ("classes.txt", "bg\ncat\ndog\n"), ("classes.json", json.dumps(["bg", "cat", "dog"])),
])
def test_index_masks_saved_as_gray_rgb_stay_indices_when_no_colours_are_given(tmp_path, class_file, text):
    if class_file:
        (tmp_path / class_file).write_text(text)
    make_pairs(tmp_path, [np.repeat(np.array([[[0], [1], [2], [255]]], np.uint8), 3, axis=2)] * 2)
    ds = discover(tmp_path, val_fraction=0.5)
    assert ds.num_classes == 3 and not ds.has_colors
    assert ds.read_label(ds.splits["train"][0]).tolist() == [[0, 1, 2, 255]]


def test_a_label_map_reads_gray_rgb_masks_as_values_even_with_class_colours(tmp_path):
    (tmp_path / "classes.json").write_text(json.dumps(CITYSCAPES))
    make_pairs(tmp_path, [_two_colours((26, 26, 26), (11, 11, 11))] * 2)
    ds = discover(tmp_path, val_fraction=0.5, label_map={11: 1, 26: 2})
    assert ds.read_label(ds.splits["train"][0])[:, 0].tolist() == [2, 2, 1, 1]


def test_train_reads_gray_colour_masks_as_the_dataset_does(tmp_path):
    from segcli.data.pipeline import PairSource

    (tmp_path / "classes.json").write_text(json.dumps(CITYSCAPES))
    make_pairs(tmp_path, [_two_colours((70, 70, 70), (0, 0, 0)), _two_colours((0, 0, 142), (70, 70, 70))])
    ds = discover(tmp_path, val_fraction=0.5)
    labels = [label for _, label in PairSource(ds, ds.pairs()).dataset().as_numpy_iterator()]
    assert sorted(label[:, 0].tolist() for label in labels) == [[1, 1, 0, 0], [2, 2, 1, 1]]


def test_hidden_files_and_folders_below_images_and_masks_are_left_out(tmp_path):
    make_easy(tmp_path, n=4, size=16)
    write_rgb(tmp_path / "images" / ".ipynb_checkpoints" / "img_000-checkpoint.png", np.zeros((16, 16, 3), np.uint8))
    write_mask(tmp_path / "masks" / ".git" / "lfs" / "stray.png", np.zeros((16, 16), np.uint8))
    write_mask(tmp_path / "masks" / ".hidden.png", np.zeros((16, 16), np.uint8))
    ds = discover(tmp_path)
    assert sorted(p.stem for p in ds.pairs()) == [f"img_{i:03d}" for i in range(4)]
    assert ds.images_without_masks == [] and ds.masks_without_images == [] and ds.duplicates == []


def test_a_hidden_folder_above_the_dataset_is_not_a_reason_to_skip_it(tmp_path):
    make_easy(tmp_path / ".cache" / "data", n=4, size=16)
    assert len(discover(tmp_path / ".cache" / "data").pairs()) == 4


def test_files_sharing_a_stem_are_duplicates_and_the_png_is_paired(tmp_path):
    make_easy(tmp_path, n=3, size=16, layout="split", n_val=1)
    write_rgb(tmp_path / "train" / "images" / "img_000.jpg", np.zeros((16, 16, 3), np.uint8))
    write_mask(tmp_path / "val" / "masks" / "img_002.bmp", np.zeros((16, 16), np.uint8))
    ds = discover(tmp_path)
    images, masks = tmp_path / "train" / "images", tmp_path / "val" / "masks"
    assert ds.duplicates == [("image", [images / "img_000.png", images / "img_000.jpg"]),
                             ("mask", [masks / "img_002.png", masks / "img_002.bmp"])]
    assert [p.image.name for p in ds.splits["train"]] == ["img_000.png", "img_001.png"]


def test_unpaired_files_are_kept_per_split_folder(tmp_path):
    make_easy(tmp_path, n=4, size=16, layout="split", n_val=2)
    write_rgb(tmp_path / "train" / "images" / "lonely.png", np.zeros((16, 16, 3), np.uint8))
    write_mask(tmp_path / "val" / "masks" / "orphan.png", np.zeros((16, 16), np.uint8))
    ds = discover(tmp_path)
    lonely, orphan = tmp_path / "train" / "images" / "lonely.png", tmp_path / "val" / "masks" / "orphan.png"
    assert ds.unpaired_for("train") == ([lonely], []) and ds.unpaired_for("val") == ([], [orphan])
    assert ds.unpaired_for("all") == ([lonely], [orphan])
    assert ds.images_without_masks == [lonely] and ds.masks_without_images == [orphan]


def test_a_name_macos_wrote_decomposed_pairs_with_the_same_name_composed(tmp_path):
    """'café' as e + U+0301 (NFD, how macOS names files) and as U+00E9 (NFC): one stem, one pair."""
    decomposed, composed = "cafe\u0301", "caf\u00e9"
    make_easy(tmp_path, n=4, size=32)
    write_rgb(tmp_path / "images" / f"{decomposed}.png", np.zeros((32, 32, 3), np.uint8))
    write_mask(tmp_path / "masks" / f"{composed}.png", np.zeros((32, 32), np.uint8))
    ds = discover(tmp_path, val_fraction=0.25)
    pairs = [p for split in ds.splits.values() for p in split]
    assert len(pairs) == 5 and not ds.images_without_masks and not ds.masks_without_images
    ours = next(p for p in pairs if p.image.stem == decomposed)
    assert ours.mask.name == f"{composed}.png"
