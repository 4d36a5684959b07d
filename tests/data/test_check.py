"""`data check` findings: each names its file; problems block training, warnings do not."""

from __future__ import annotations

import numpy as np

from segcli.data.check import check_dataset, median_frequency_weights
from segcli.data.folder_dataset import discover
from tests.data.tiny_dataset import make_easy, write_mask, write_rgb


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
