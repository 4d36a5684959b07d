"""`segcli data check`: table or JSON on stdout, exit 1 when the dataset cannot be trained on."""

from __future__ import annotations

import json

import numpy as np
from typer.testing import CliRunner

from segcli.cli.app import app
from tests.data.tiny_dataset import make_easy, tree, write_rgb


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
                                              f".png with the same name in the masks folder)."}]
    assert [h["name"] for h in report["histogram"]] == ["class_0", "class_1", "class_2"]


def test_check_missing_folder_is_one_line_exit_2(tmp_path):
    result = CliRunner().invoke(app, ["data", "check", str(tmp_path / "nope")])
    assert result.exit_code == 2
    assert f"error: {tmp_path / 'nope'}: no such folder" in result.stderr
    assert "Traceback" not in result.output
