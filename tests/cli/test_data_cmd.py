"""`segcli data check`: table or JSON on stdout, exit 1 when the dataset cannot be trained on."""

from __future__ import annotations

import json

import numpy as np
from typer.testing import CliRunner

from segcli.cli.app import app
from segcli.data.layouts import LAYOUTS
from tests.data.tiny_dataset import make_easy, make_pairs, tree, write_rgb


def test_check_clean_dataset_prints_counts_and_histogram(tmp_path):
    make_easy(tmp_path / "data", n=6, size=32, layout="split", n_val=2)
    before = tree(tmp_path)
    result = CliRunner().invoke(app, ["data", "check", str(tmp_path / "data")])
    assert result.exit_code == 0, result.output
    assert "pairs: train 4, val 2" in result.stdout and "Pixels per class" in result.stdout
    assert "OK: the dataset can be trained on." in result.stdout
    assert tree(tmp_path) == before  # read only


def test_check_json_lists_problems_and_exits_1(tmp_path):
    make_easy(tmp_path, n=4, size=32)
    write_rgb(tmp_path / "images" / "lonely.jpg", np.zeros((32, 32, 3), np.uint8))
    result = CliRunner().invoke(app, ["data", "check", str(tmp_path), "--json"])
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["ok"] is False and report["pairs"] == {"train": 3, "val": 1}
    assert report["problems"] == [{"kind": "missing_mask", "file": str(tmp_path / "images" / "lonely.jpg"),
                                   "message": f"{tmp_path / 'images' / 'lonely.jpg'}: image has no mask (expected a "
                                              f".png with the same name in the masks folder).", "value": ""}]
    assert [h["name"] for h in report["histogram"]] == ["class_0", "class_1", "class_2"]


def test_check_missing_folder_is_one_line_exit_2(tmp_path):
    result = CliRunner().invoke(app, ["data", "check", str(tmp_path / "nope")])
    assert result.exit_code == 2
    assert f"error: {tmp_path / 'nope'}: no such folder" in result.stderr
    assert "Traceback" not in result.output


def _one_error_line(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output
    return lines[0][len("error: "):]


def test_300_masks_with_the_same_bad_value_are_one_row_and_json_lists_all(tmp_path):
    make_pairs(tmp_path, {f"img_{i:03d}": np.full((2, 2), 9, np.uint8) for i in range(300)})
    (tmp_path / "classes.txt").write_text("background\nthing\n")
    result = CliRunner().invoke(app, ["data", "check", str(tmp_path)])
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    rows = [line for line in lines if "bad_values" in line]
    assert len(rows) == 1 and "│   300 │" in rows[0]
    assert "│ mask values [9] are outside the 2 classes 0..1" in rows[0]
    assert sum("297 more" in line for line in lines) == 1
    assert "Problems (300 in 1 group(s))" in result.stdout
    assert len(lines) < 40  # was about 170 lines
    assert "NOT OK: 300 problem(s); fix them before training." in result.stdout
    report = json.loads(CliRunner().invoke(app, ["data", "check", str(tmp_path), "--json"]).stdout)
    assert sorted(p["file"] for p in report["problems"]) == [str(tmp_path / "masks" / f"img_{i:03d}.png")
                                                             for i in range(300)]
    assert {(p["kind"], p["value"]) for p in report["problems"]} == {("bad_values", "[9]")}


def test_label_map_and_classes_flags(tmp_path):
    raw = np.array([[7, 8, 26, 0]] * 2, np.uint8)
    make_pairs(tmp_path / "data", [raw, raw, raw])
    (tmp_path / "data" / "classes.txt").write_text("road\nsidewalk\nbuilding\n")
    (tmp_path / "map.json").write_text('{"7": 0, "8": 1, "26": 2}')
    before = tree(tmp_path)
    data, label_map = str(tmp_path / "data"), str(tmp_path / "map.json")
    result = CliRunner().invoke(app, ["data", "check", data, "--label-map", label_map, "--classes", "building,road",
                                      "--val-fraction", "0.34", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [(h["name"], h["pixels"]) for h in report["histogram"]] == [("building", 6), ("road", 6)]
    assert any(n.startswith("using 2 of 3 classes (building, road)") for n in report["notes"])
    assert tree(tmp_path) == before  # read only
    result = CliRunner().invoke(app, ["data", "check", data, "--label-map", label_map])
    assert result.exit_code == 0 and "note: label map: 3 mask value(s) mapped to class ids" in result.stdout


def test_label_map_reduce_zero_label_and_the_ignored_pixels_line(tmp_path):
    raw = np.array([[0, 1, 2, 3]] * 2, np.uint8)  # 0 = not labelled, as in an ADE20K or LoveDA mask
    make_pairs(tmp_path / "data", [raw, raw, raw, raw])
    result = CliRunner().invoke(app, ["data", "check", str(tmp_path / "data"), "--label-map", "reduce_zero_label"])
    assert result.exit_code == 0, result.output
    assert "classes: 3 from inferred" in result.stdout
    assert "note: no classes.json or classes.txt: inferred 3 classes (mask values 1..3 as class ids 0..2); add " \
           "classes.txt to name them." in result.stdout
    assert "and 8 pixels of 255 = ignore (25.0% of all), left out of the shares" in result.stdout


def test_bad_label_map_and_class_names_are_one_line_exit_2(tmp_path):
    make_easy(tmp_path / "data", n=3, size=16)
    (tmp_path / "map.json").write_text('{"7": "road"}')
    data = str(tmp_path / "data")
    result = CliRunner().invoke(app, ["data", "check", data, "--label-map", str(tmp_path / "map.json")])
    assert result.exit_code == 2
    assert _one_error_line(result) == (f"{tmp_path / 'map.json'}: value 'road' of key '7' is not a class id; use a "
                                       f"whole number 0-254, or 255 for ignore.")
    result = CliRunner().invoke(app, ["data", "check", data, "--classes", "class_1,cat"])
    assert result.exit_code == 2
    assert _one_error_line(result) == (f"{tmp_path / 'data'}: class 'cat' is not one of the 3 classes of inferred "
                                       f"(class_0, class_1, class_2); use their names.")
    result = CliRunner().invoke(app, ["data", "check", data, "--classes", "class_1,,class_2"])
    assert result.exit_code == 2
    assert _one_error_line(result) == ("--classes 'class_1,,class_2' has an empty name; give names separated by "
                                       "commas, e.g. sky,road.")
    result = CliRunner().invoke(app, ["data", "check", data, "--val-fraction", "1.5"])
    assert result.exit_code == 2
    assert _one_error_line(result) == "--val-fraction 1.5: give a fraction between 0 and 1 (exclusive), e.g. 0.1."


def test_one_pair_without_a_val_split_cannot_be_trained_on_exit_1(tmp_path):
    make_easy(tmp_path, n=1, size=16)
    before = tree(tmp_path)
    result = CliRunner().invoke(app, ["data", "check", str(tmp_path)])
    assert result.exit_code == 1, result.output
    assert "pairs: train 1, val 0 (val none)" in result.stdout
    assert "note: only 1 image/mask pair and no val split: eval scores it" in result.stdout
    assert "NOT OK: 1 problem(s); fix them before training." in result.stdout
    problem = (f"{tmp_path}: only 1 image/mask pair and no val split, so no validation is possible; add images or a "
               f"val split.")
    assert _one_error_line(result) == f"{tmp_path}: 1 problem(s), first: {problem}"  # what `segcli train` refuses
    result = CliRunner().invoke(app, ["data", "check", str(tmp_path), "--json"])
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["ok"] is False
    assert report["problems"] == [{"kind": "no_val_split", "file": str(tmp_path), "message": problem, "value": ""}]
    assert tree(tmp_path) == before  # read only
    make_easy(tmp_path / "two", n=2, size=16)  # two pairs: one is drawn for val
    assert CliRunner().invoke(app, ["data", "check", str(tmp_path / "two")]).exit_code == 0


def test_help_draws_every_registered_layout():
    result = CliRunner().invoke(app, ["data", "check", "--help"])
    assert result.exit_code == 0
    for layout in LAYOUTS:
        assert layout.name in result.stdout
        assert all(line in result.stdout for line in layout.tree.splitlines())
    assert "--label-map" in result.stdout and "--classes" in result.stdout
