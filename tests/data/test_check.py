"""`data check` findings: each names its file; problems block training, warnings do not."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from segcli.data.check import check_dataset, group_findings, median_frequency_weights, warning_lines
from segcli.data.folder_dataset import discover
from tests.data.tiny_dataset import make_easy, make_pairs, write_mask, write_rgb


def _kinds(findings):
    return sorted(f.kind for f in findings)


def test_clean_dataset_is_ok_with_a_histogram_that_counts_every_pixel(tmp_path):
    make_easy(tmp_path, n=6, size=32)
    report = check_dataset(discover(tmp_path, val_fraction=0.34))
    assert report.ok and not report.problems and not report.warnings
    assert report.pairs == {"train": 4, "val": 2}
    assert sum(h["pixels"] for h in report.histogram) == 6 * 32 * 32
    assert all(h["pixels"] > 0 for h in report.histogram)
    assert sum(h["train_pixels"] for h in report.histogram) == 4 * 32 * 32


def test_every_problem_names_its_file(tmp_path):
    make_easy(tmp_path, n=6, size=32)
    write_rgb(tmp_path / "images" / "lonely.png", np.zeros((32, 32, 3), np.uint8))
    write_mask(tmp_path / "masks" / "orphan.png", np.zeros((32, 32), np.uint8))
    (tmp_path / "images" / "broken.png").write_bytes(b"not a png")
    write_mask(tmp_path / "masks" / "broken.png", np.zeros((32, 32), np.uint8))
    write_rgb(tmp_path / "images" / "small.png", np.zeros((32, 32, 3), np.uint8))
    write_mask(tmp_path / "masks" / "small.png", np.zeros((16, 32), np.uint8))
    write_rgb(tmp_path / "images" / "bad.png", np.zeros((32, 32, 3), np.uint8))
    write_mask(tmp_path / "masks" / "bad.png", np.full((32, 32), 7, np.uint8))
    write_rgb(tmp_path / "images" / "void.png", np.zeros((32, 32, 3), np.uint8))
    write_mask(tmp_path / "masks" / "void.png", np.full((32, 32), 255, np.uint8))
    (tmp_path / "classes.txt").write_text("bg\ndisc\nsquare\n")
    report = check_dataset(discover(tmp_path))
    assert not report.ok
    assert _kinds(report.problems) == ["bad_values", "missing_image", "missing_mask", "size_mismatch", "unreadable"]
    messages = {f.kind: f.message for f in report.problems}
    assert messages["missing_mask"].startswith(f"{tmp_path / 'images' / 'lonely.png'}: image has no mask")
    assert messages["missing_image"] == f"{tmp_path / 'masks' / 'orphan.png'}: mask has no image with the same name."
    assert messages["unreadable"].startswith(f"{tmp_path / 'images' / 'broken.png'}: not a readable image")
    assert messages["size_mismatch"] == (f"{tmp_path / 'masks' / 'small.png'}: mask is 32x16 but image small.png is "
                                         f"32x32 (width x height); masks must match their image size.")
    assert messages["bad_values"] == (f"{tmp_path / 'masks' / 'bad.png'}: mask values [7] are outside the 3 classes "
                                      f"0..2 (255 = ignore); fix the mask or list more classes in classes.txt.")
    assert [(w.kind, w.file) for w in report.warnings] == [("empty_mask", str(tmp_path / "masks" / "void.png"))]


def test_masks_named_after_the_image_plus_a_suffix_say_the_name_to_use(tmp_path):
    """Exports often name masks c_mask.png or b.jpg.png: one row per suffix says to rename them; an image that no
    mask names is still missing its mask, and a mask that names no image is still an orphan."""
    make_easy(tmp_path, n=6, size=32)
    for stem, mask in (("c", "c_mask"), ("d", "d_mask"), ("b", "b.jpg"), ("e", None), ("x1", None)):
        write_rgb(tmp_path / "images" / f"{stem}.jpg", np.zeros((32, 32, 3), np.uint8))
        if mask:
            write_mask(tmp_path / "masks" / f"{mask}.png", np.zeros((32, 32), np.uint8))
    write_mask(tmp_path / "masks" / "x1_2_very_long_addition.png", np.zeros((32, 32), np.uint8))  # not a suffix
    groups = group_findings(check_dataset(discover(tmp_path)).problems)
    masks = tmp_path / "masks"
    assert [(g.kind, g.value, [f.rsplit("/", 1)[1] for f in g.files]) for g in groups] == [
        ("missing_mask", "", ["e.jpg", "x1.jpg"]),
        ("mask_name", ".jpg", ["b.jpg.png"]),
        ("mask_name", "_mask", ["c_mask.png", "d_mask.png"]),
        ("missing_image", "", ["x1_2_very_long_addition.png"]),
    ]
    assert groups[2].message == (f"{masks / 'c_mask.png'}: named like c.jpg with '_mask' added; a mask must be "
                                 f"named <image stem>.png: rename it to c.png.")


def test_a_mask_whose_image_is_heic_says_to_convert_the_image(tmp_path):
    """An iPhone's IMG_1.HEIC beside masks/IMG_1.png (also in a sub folder, and a name with glob characters): one row
    per format naming the image, not an orphan mask; a mask with no image at all stays an orphan."""
    make_easy(tmp_path, n=6, size=32, layout="split")
    for rel in ("IMG_1", "sub/IMG_2", "a [1]", "orphan"):
        write_mask(tmp_path / "train" / "masks" / f"{rel}.png", np.zeros((32, 32), np.uint8))
        if rel != "orphan":
            (tmp_path / "train" / "images" / f"{rel}.HEIC").parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / "train" / "images" / f"{rel}.HEIC").write_bytes(b"ftypheic")
    groups = group_findings(check_dataset(discover(tmp_path)).problems)
    images = tmp_path / "train" / "images"
    assert [(g.kind, g.value, g.files) for g in groups] == [
        ("image_format", ".heic", [str(images / "IMG_1.HEIC"), str(images / "a [1].HEIC"),
                                   str(images / "sub" / "IMG_2.HEIC")]),
        ("missing_image", "", [str(tmp_path / "train" / "masks" / "orphan.png")]),
    ]
    assert groups[0].message == (f"{images / 'IMG_1.HEIC'}: a .heic image, a format segcli does not read, so its "
                                 f"mask IMG_1.png has no image; convert it to JPEG or PNG.")


def test_rgb_colours_outside_the_palette_are_problems(tmp_path):
    (tmp_path / "classes.json").write_text('[{"name": "a", "color": [0, 0, 0]}, {"name": "b", "color": [255, 0, 0]}]')
    for i in range(2):
        write_rgb(tmp_path / "images" / f"{i}.png", np.zeros((4, 4, 3), np.uint8))
        mask = np.zeros((4, 4, 3), np.uint8)
        mask[0, 0] = [0, 255, 0]
        write_rgb(tmp_path / "masks" / f"{i}.png", mask)
    report = check_dataset(discover(tmp_path, val_fraction=0.5))
    assert _kinds(report.problems) == ["bad_values", "bad_values"]
    assert "colours [[0, 255, 0]] are not in the palette of classes.json" in report.problems[0].message


def test_median_frequency_weights_favour_rare_classes(tmp_path):
    make_easy(tmp_path, n=8, size=32)
    weights = median_frequency_weights(check_dataset(discover(tmp_path)))
    assert len(weights) == 3 and weights[0] < 1.0 < max(weights[1:])


def test_identical_problems_group_by_kind_and_value_but_every_file_is_kept(tmp_path):
    masks = {f"seven_{i}": np.full((2, 2), 7, np.uint8) for i in range(5)}
    masks.update({f"nine_{i}": np.full((2, 2), 9, np.uint8) for i in range(2)})
    masks["ok"] = np.zeros((2, 2), np.uint8)
    make_pairs(tmp_path, masks)
    (tmp_path / "classes.txt").write_text("a\nb\n")
    report = check_dataset(discover(tmp_path))
    assert len(report.problems) == 7 and {f.value for f in report.problems} == {"[7]", "[9]"}
    groups = sorted(group_findings(report.problems), key=lambda g: g.value)
    assert [(g.kind, g.value, g.count) for g in groups] == [("bad_values", "[7]", 5), ("bad_values", "[9]", 2)]
    assert sorted(groups[0].files) == [str(tmp_path / "masks" / f"seven_{i}.png") for i in range(5)]
    assert groups[0].message == (f"{groups[0].files[0]}: mask values [7] are outside the 2 classes 0..1 "
                                 f"(255 = ignore); fix the mask or list more classes in classes.txt.")


def test_label_map_and_class_subset_apply_to_the_check(tmp_path):
    raw = np.array([[7, 8, 26, 0]], np.uint8)
    make_pairs(tmp_path, [raw, raw, raw])
    (tmp_path / "classes.txt").write_text("road\nsidewalk\nbuilding\n")
    report = check_dataset(discover(tmp_path, val_fraction=0.34, label_map={7: 0, 8: 1, 26: 2}))
    assert report.ok and [h["pixels"] for h in report.histogram] == [3, 3, 3]
    report = check_dataset(discover(tmp_path, val_fraction=0.34, label_map={7: 0, 8: 1, 26: 2},
                                    keep_classes="building,road"))
    assert report.ok and [(h["name"], h["pixels"]) for h in report.histogram] == [("building", 3), ("road", 3)]
    assert [c["name"] for c in report.classes] == ["building", "road"]
    report = check_dataset(discover(tmp_path, val_fraction=0.34, label_map={7: 0, 8: 5}))
    assert [f.kind for f in report.problems] == ["bad_values"] * 3
    assert report.problems[0].message == (
        f"{tmp_path / 'masks' / 'm000.png'}: the label map gives class ids [5] outside the 3 classes 0..2 "
        f"(255 = ignore); fix the label map or list more classes in classes.txt.")


def test_values_outside_the_class_file_are_reported_even_when_a_subset_would_ignore_them(tmp_path):
    make_pairs(tmp_path, [np.array([[0, 1, 9]], np.uint8)] * 2)
    (tmp_path / "classes.txt").write_text("bg\ncat\n")
    report = check_dataset(discover(tmp_path, val_fraction=0.5, keep_classes="cat"))
    assert [(f.kind, f.value) for f in report.problems] == [("bad_values", "[9]")] * 2
    assert [h["pixels"] for h in report.histogram] == [2]


def test_a_single_pair_is_checked_and_cannot_be_trained_on(tmp_path):
    make_easy(tmp_path, n=1, size=16)
    report = check_dataset(discover(tmp_path))
    assert report.pairs == {"train": 1, "val": 0} and report.val_source == "none"
    assert sum(h["pixels"] for h in report.histogram) == 16 * 16
    assert not report.ok and [(f.kind, f.file) for f in report.problems] == [("no_val_split", str(tmp_path))]
    assert report.first_problem() == (f"{tmp_path}: only 1 image/mask pair and no val split, so no validation is "
                                      f"possible; add images or a val split.")


def test_classes_without_a_train_pixel_are_one_warning_that_names_them(tmp_path):
    raw = np.array([[7, 8, 26, 0]], np.uint8)
    make_pairs(tmp_path, [raw, raw, raw])
    (tmp_path / "classes.txt").write_text("road\nsidewalk\nbuilding\nsky\n")
    report = check_dataset(discover(tmp_path, val_fraction=0.34, label_map={7: 0, 8: 1}))
    assert report.ok and [h["train_pixels"] for h in report.histogram] == [2, 2, 0, 0]
    assert [(w.kind, w.file) for w in report.warnings] == [("class_not_in_train", str(tmp_path))]
    assert report.warnings[0].message == (
        f"{tmp_path}: 2 of 4 classes have no labelled pixel in the train split (building, sky); a model trained on "
        f"it cannot learn them. Check the masks, --label-map or --classes.")
    assert warning_lines(report) == [f"warning: {report.warnings[0].message}"]


def test_warning_lines_fold_identical_findings_into_one_line(tmp_path):
    make_easy(tmp_path, n=6, size=16)
    for i in range(2):
        write_rgb(tmp_path / "images" / f"void{i}.png", np.zeros((16, 16, 3), np.uint8))
        write_mask(tmp_path / "masks" / f"void{i}.png", np.full((16, 16), 255, np.uint8))
    report = check_dataset(discover(tmp_path, val_fraction=0.25))
    void = tmp_path / "masks" / "void0.png"
    assert warning_lines(report) == [f"warning: {void}: no labelled pixel (all 255 = ignore). (1 more like it: "
                                     f"segcli data check lists them)"]


def test_gray_colour_masks_check_ok_with_their_classes_counted(tmp_path):
    classes = [{"name": "void", "color": [0, 0, 0]}, {"name": "building", "color": [70, 70, 70]},
               {"name": "car", "color": [0, 0, 142]}]
    (tmp_path / "classes.json").write_text(json.dumps(classes))
    gray = np.zeros((4, 4, 3), np.uint8)
    gray[:1] = 70  # Cityscapes' building on void: every colour gray
    car = gray.copy()
    car[3] = [0, 0, 142]
    make_pairs(tmp_path, [gray, gray, car, car])
    report = check_dataset(discover(tmp_path, val_fraction=0.25))
    assert report.ok and not report.warnings
    assert [(h["name"], h["pixels"]) for h in report.histogram] == [("void", 40), ("building", 16), ("car", 8)]


def test_index_masks_saved_as_gray_rgb_against_class_colours_say_how_to_save_them(tmp_path):
    (tmp_path / "classes.json").write_text(json.dumps([{"name": "bg", "color": [0, 0, 0]},
                                                       {"name": "cat", "color": [255, 0, 0]}]))
    make_pairs(tmp_path, [np.ones((2, 2, 3), np.uint8)] * 2)
    report = check_dataset(discover(tmp_path, val_fraction=0.5))
    assert {f.file: f.message for f in report.problems}[str(tmp_path / "masks" / "m000.png")] == (
        f"{tmp_path / 'masks' / 'm000.png'}: colours [[1, 1, 1]] are not in the palette of classes.json; add them "
        f"as classes or recolour the mask (its colours are all gray, read as colours because classes.json gives "
        f"class colours; if they are class indices, save it as a single-channel PNG).")


def test_jpeg_masks_are_warnings_that_say_to_save_png(tmp_path):
    make_easy(tmp_path, n=4, size=16)
    for stem in ("img_000", "img_001"):
        (tmp_path / "masks" / f"{stem}.png").unlink()
        write_mask(tmp_path / "masks" / f"{stem}.jpg", np.zeros((16, 16), np.uint8))
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(tmp_path / "masks" / "img_002.png", format="JPEG")
    report = check_dataset(discover(tmp_path, val_fraction=0.25))
    assert report.ok
    jpg, misnamed = tmp_path / "masks" / "img_000.jpg", tmp_path / "masks" / "img_002.png"
    assert [(w.kind, w.file) for w in report.warnings] == [
        ("lossy_mask", str(p)) for p in sorted([jpg, tmp_path / "masks" / "img_001.jpg", misnamed])]
    messages = {w.file: w.message for w in report.warnings}
    assert messages[str(jpg)] == (f"{jpg}: a JPEG mask; JPEG compression changes class ids along object edges, so "
                                  f"some pixels get the wrong class: save masks as PNG (lossless).")
    assert messages[str(misnamed)].startswith(f"{misnamed}: a JPEG file under a .png name; JPEG compression")
    assert warning_lines(report)[0].endswith("(lossless). (2 more like it: segcli data check lists them)")


def test_a_multi_page_tiff_image_is_a_warning_that_only_its_first_page_is_read(tmp_path):
    import cv2

    make_easy(tmp_path, n=4, size=16)
    stack = tmp_path / "images" / "img_003.tif"
    (tmp_path / "images" / "img_003.png").unlink()
    assert cv2.imwritemulti(str(stack), [np.full((16, 16, 3), v, np.uint8) for v in (10, 20, 30)])
    report = check_dataset(discover(tmp_path, val_fraction=0.25))
    assert report.ok
    assert [(w.kind, w.file, w.message) for w in report.warnings] == [
        ("multi_page", str(stack), f"{stack}: a TIFF of 3 pages; only its first page is read: save each page and its "
                                   f"mask as their own pair to train on every page.")]


def test_a_16_bit_image_holding_12_bit_data_is_a_warning_saying_how_to_fill_its_bits(tmp_path):
    import cv2

    make_easy(tmp_path, n=4, size=16)
    rgb = np.random.default_rng(0).integers(1, 256, (16, 16, 3)).astype(np.uint16)
    twelve, full = tmp_path / "images" / "img_000.png", tmp_path / "images" / "img_001.png"
    assert cv2.imwrite(str(twelve), rgb * 16) and cv2.imwrite(str(full), rgb * 257)
    assert cv2.imwrite(str(tmp_path / "images" / "img_002.png"), np.zeros((16, 16), np.uint16))  # black, not dim
    report = check_dataset(discover(tmp_path, val_fraction=0.25))
    assert report.ok
    assert [(w.kind, w.file, w.message) for w in report.warnings] == [
        ("dim_16bit", str(twelve), f"{twelve}: values up to {int(rgb.max()) * 16}; a 16-bit image holding 12-bit "
                                   f"data, so it reads nearly black: multiply it by 16 to fill the 16 bits, or save "
                                   f"it as an 8-bit image.")]


def test_ignored_pixels_are_counted_and_reduce_zero_label_names_the_raw_value_out_of_range(tmp_path):
    raw = np.array([[0, 1, 2, 2], [0, 0, 255, 1]], np.uint8)
    make_pairs(tmp_path, [raw, raw, raw, raw])
    report = check_dataset(discover(tmp_path, val_fraction=0.25, label_map="reduce_zero_label"))
    assert report.ok and [row["pixels"] for row in report.histogram] == [4 * 2, 4 * 2]  # values 1 and 2
    assert report.ignored_pixels == 4 * 4 and report.to_dict()["ignored_pixels"] == 16  # three 0s and one 255 each
    (tmp_path / "classes.txt").write_text("only\n")
    report = check_dataset(discover(tmp_path, val_fraction=0.25, label_map="reduce_zero_label"))
    mask = tmp_path / "masks" / "m000.png"
    assert [p.message for p in report.problems if p.file == str(mask)] == [
        f"{mask}: mask values [2] are class ids [1] after reduce_zero_label, outside the 1 classes 0..0 (255 = "
        f"ignore); fix the mask or list more classes in classes.txt."]


def test_hidden_folders_in_the_dataset_are_not_reported(tmp_path):
    make_easy(tmp_path, n=4, size=16)
    write_rgb(tmp_path / "images" / ".ipynb_checkpoints" / "img_000-checkpoint.png", np.zeros((16, 16, 3), np.uint8))
    write_mask(tmp_path / "masks" / ".git" / "stray.png", np.zeros((16, 16), np.uint8))
    report = check_dataset(discover(tmp_path))
    assert report.ok and not report.problems and report.pairs == {"train": 3, "val": 1}


def test_images_or_masks_sharing_a_name_are_a_problem_naming_both(tmp_path):
    make_easy(tmp_path, n=4, size=16)
    write_rgb(tmp_path / "images" / "img_001.jpg", np.zeros((16, 16, 3), np.uint8))
    write_mask(tmp_path / "masks" / "img_003.bmp", np.zeros((16, 16), np.uint8))
    report = check_dataset(discover(tmp_path))
    assert not report.ok and _kinds(report.problems) == ["duplicate_stem", "duplicate_stem"]
    images, masks = tmp_path / "images", tmp_path / "masks"
    assert [(f.file, f.message) for f in report.problems] == [
        (str(images / "img_001.jpg"), f"{images / 'img_001.jpg'}: same name as img_001.png in the same folder, so "
                                      f"which image goes with the mask of that name is ambiguous; keep one image "
                                      f"under that name (rename or remove the other)."),
        (str(masks / "img_003.bmp"), f"{masks / 'img_003.bmp'}: same name as img_003.png in the same folder, so "
                                     f"which mask goes with the image of that name is ambiguous; keep one mask under "
                                     f"that name (rename or remove the other).")]
    assert [(g.files, g.message) for g in group_findings(report.problems)] == [
        ([f.file], f.message) for f in report.problems]  # one row each: the image's message is not the mask's
    write_rgb(images / "img_001.tif", np.zeros((16, 16, 3), np.uint8))
    assert check_dataset(discover(tmp_path)).problems[0].message.startswith(
        f"{images / 'img_001.jpg'}: same name as img_001.png and img_001.tif in the same folder, so which image")


def test_size_mismatch_after_exif_rotation_says_so(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # stored 60x40, shown turned a quarter: 40 wide, 60 high
    for i in range(2):
        (tmp_path / "images").mkdir(exist_ok=True)
        Image.fromarray(np.zeros((40, 60, 3), np.uint8)).save(tmp_path / "images" / f"p{i}.jpg", exif=exif)
        write_mask(tmp_path / "masks" / f"p{i}.png", np.zeros((40, 60), np.uint8))  # drawn on the stored pixels
    report = check_dataset(discover(tmp_path, val_fraction=0.5))
    assert {f.file: f.message for f in report.problems}[str(tmp_path / "masks" / "p0.png")] == (
        f"{tmp_path / 'masks' / 'p0.png'}: mask is 60x40 but image p0.jpg is 40x60 (width x height) after its EXIF "
        f"rotation (stored as 60x40); masks must match their image size as segcli reads it (turned upright): "
        f"rotate the mask the same way, or remove the image's EXIF orientation tag.")
    assert {f.value for f in report.problems} == {"mask 60x40, image 40x60 after its EXIF rotation (stored as 60x40)"}


def test_a_broken_link_is_unreadable_not_a_missing_mask(tmp_path):
    make_easy(tmp_path, n=4, size=16)
    (tmp_path / "masks" / "img_000.png").unlink()
    (tmp_path / "masks" / "img_000.png").symlink_to("gone.png")
    report = check_dataset(discover(tmp_path))
    assert [(f.kind, f.file) for f in report.problems] == [("unreadable", str(tmp_path / "masks" / "img_000.png"))]
    assert "cannot be read (No such file or directory)" in report.problems[0].message
