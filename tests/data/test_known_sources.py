"""ADE20K's release converts with ADE20K's own class ids; other tools' dataset folders given to train, eval or
data check are named, with the conversion command to run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from segcli.cli.app import app
from segcli.data.image_io import read_mask
from tests.data.convert_fixtures import SIZE, image, write_png

#: ADE20K's objectInfo150: the first classes and the last, by their value in the annotation PNGs.
ADE20K_NAMES = {1: "wall", 2: "building", 13: "person", 150: "flag"}


def write_ade20k(root: Path) -> dict:
    """ADEChallengeData2016 with one training and one validation image; returns {split: annotation}."""
    rng = np.random.default_rng(3)
    annotations = {}
    for folder, split in (("training", "train"), ("validation", "val")):
        values = rng.integers(0, 151, (SIZE, SIZE), dtype=np.uint8)  # 0: "other objects", 1..150: the classes
        values[0, :4] = (0, 1, 150, 200)  # 200: no ADE20K class at all
        stem = f"ADE_{split}_00000001"
        write_png(root / "ADEChallengeData2016" / "annotations" / folder / f"{stem}.png", values)
        write_png(root / "ADEChallengeData2016" / "images" / folder / f"{stem}.jpg", image(7))
        annotations[split] = values
    return annotations


def test_ade20k_values_shift_down_by_one_and_other_objects_are_ignored(tmp_path):
    annotations = write_ade20k(tmp_path / "ade")
    result = CliRunner().invoke(app, ["data", "convert", str(tmp_path / "ade"), "--from", "ade20k", "--out",
                                      str(tmp_path / "data")])
    assert result.exit_code == 0, result.output
    for split, values in annotations.items():
        expected = np.where((values == 0) | (values > 150), 255, values.astype(int) - 1)  # reduce_zero_label
        np.testing.assert_array_equal(read_mask(tmp_path / "data" / split / "masks" / f"ADE_{split}_00000001.png"),
                                      expected)
        assert (tmp_path / "data" / split / "images" / f"ADE_{split}_00000001.jpg").is_file()
    classes = json.loads((tmp_path / "data" / "classes.json").read_text())["classes"]
    assert len(classes) == 150 and {v: classes[v - 1]["name"] for v in ADE20K_NAMES} == ADE20K_NAMES
    report = json.loads((tmp_path / "data" / "convert.json").read_text())["report"]
    assert {i["reason"] for i in report["issues"]} == {"values 200 are above ADE20K's 150 classes; set to 255 "
                                                       "(ignore)"}


def _ade20k(root):
    write_ade20k(root)
    return root, root / "ADEChallengeData2016", "ade20k", "ADE20K (ADEChallengeData2016)"


def _voc_devkit(root):
    write_png(root / "VOCdevkit" / "VOC2012" / "SegmentationClass" / "a.png", np.zeros((8, 8), np.uint8))
    return root, root / "VOCdevkit" / "VOC2012", "voc", "Pascal VOC (SegmentationClass/)"


def _cityscapes(root):
    write_png(root / "gtFine" / "train" / "aachen" / "a_gtFine_labelIds.png", np.zeros((8, 8), np.uint8))
    return root, root, "cityscapes", "Cityscapes (gtFine/ and leftImg8bit/)"


def _coco(root):
    (root / "annotations").mkdir(parents=True)
    (root / "annotations" / "instances_train2017.json").write_text("{}")
    write_png(root / "train2017" / "a.jpg", image(1))
    return root, root, "coco", "COCO (instances_*.json)"


def _labelme(root):
    root.mkdir()
    (root / "a.json").write_text(json.dumps({"shapes": [], "imagePath": "a.jpg"}))
    return root, root, "labelme", "a LabelMe folder (.json files with shapes)"


@pytest.mark.parametrize("make", [_ade20k, _voc_devkit, _cityscapes, _coco, _labelme])
@pytest.mark.parametrize("command", [["data", "check", "{}"], ["train", "{}", "--preset", "segformer_test", "--epochs", "1"], ["eval", "{}"]])
def test_another_tools_dataset_is_named_with_the_command_that_converts_it(tmp_path, make, command):
    given, src, fmt, what = make(tmp_path / "src")
    result = CliRunner().invoke(app, [arg.format(given) for arg in command])
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines()[-1] == (
        f"error: {given} looks like {what}; convert it first: `segcli data convert {src} --from {fmt} --out DATA`.")


def test_a_segcli_dataset_is_not_taken_for_another_tools(tmp_path):
    from segcli.data.known_sources import recognise

    write_png(tmp_path / "data" / "images" / "a.jpg", image(1))
    write_png(tmp_path / "data" / "masks" / "a.png", np.zeros((SIZE, SIZE), np.uint8))
    assert recognise(tmp_path / "data") is None
    assert recognise(Path(__file__).resolve().parents[2] / "samples") is None
