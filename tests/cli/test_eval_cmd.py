"""`segcli eval`: the table, the JSON keys, and --min-miou as a CI gate."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from segcli.cli.app import app
from tests.inference.predict_fixtures import CLASS_NAMES, make_model
from tests.inference.test_eval_engine import make_dataset


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval_cli")
    model, run, _ = make_model(root / "models")
    return {"run": run, "data": make_dataset(root / "data", model)}


def invoke(*args):
    return CliRunner().invoke(app, ["eval", *map(str, args)])


def test_json_keys_and_gate(world):
    result = invoke(world["data"], "--model", world["run"], "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    for key in ("miou", "pixel_accuracy", "mean_accuracy", "per_class", "confusion"):
        assert key in data
    assert [c["name"] for c in data["per_class"]] == CLASS_NAMES
    assert set(data["per_class"][0]) >= {"name", "iou", "dice", "precision", "recall"}
    assert data["per_class"][3]["recall"] is None  # the last class never appears in the labels
    assert len(data["confusion"]) == 4 and all(len(row) == 4 for row in data["confusion"])
    miou = data["miou"]
    assert 0.2 < miou < 1.0  # labels agree with the model on about 70% of the pixels

    below = invoke(world["data"], "--model", world["run"], "--min-miou", round(miou + 0.01, 4))
    assert below.exit_code == 1
    assert f"is below --min-miou {round(miou + 0.01, 4)}" in below.stderr
    above = invoke(world["data"], "--model", world["run"], "--min-miou", round(miou - 0.01, 4))
    assert above.exit_code == 0
    for text in ("IoU %", "Dice %", "precision %", "recall %", "mean", "road", "mIoU", "aAcc", "mAcc"):
        assert text in above.stdout


def test_one_line_errors(world, tmp_path):
    result = invoke(world["data"], "--model", world["run"], "--min-miou", "50")
    assert result.exit_code == 2
    assert result.stderr.strip() == "error: --min-miou 50.0: give a fraction between 0 and 1 (0.5 means 50% mIoU)."
    result = invoke(tmp_path / "nope", "--model", world["run"])
    assert result.exit_code == 2 and result.stderr.strip().startswith(f"error: {tmp_path / 'nope'}: no such folder")
    result = invoke(world["data"], "--model", world["run"], "--split", "test")
    assert result.exit_code == 2 and result.stderr.strip() == "error: --split test: use one of auto, val, train, all."
