"""`data check` findings: each names its file; problems block training, warnings do not."""

from __future__ import annotations

import numpy as np

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
