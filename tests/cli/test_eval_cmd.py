"""`segcli eval`: the table, the JSON keys, --min-miou as a CI gate, one pair, --label-map, --classes, --tta,
--report."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from segcli.cli.app import app
from tests.inference.predict_fixtures import CLASS_NAMES, make_model, model_argmax
from tests.inference.test_eval_engine import make_dataset
from tests.inference.test_metrics import reference


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval_cli")
    model, run, _ = make_model(root / "models")
    return {"model": model, "run": run, "data": make_dataset(root / "data", model)}


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


def scored(result) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_a_single_pair_is_scored(world, tmp_path):
    from segcli.data.image_io import read_image, read_mask

    one = tmp_path / "one"
    for kind in ("images", "masks"):
        (one / kind).mkdir(parents=True)
        (one / kind / "s3.png").write_bytes((world["data"] / "val" / kind / "s3.png").read_bytes())
    data = scored(invoke(one, "--model", world["run"], "--precision", "fp32", "--json"))
    assert data["images"] == 1 and data["split"] == "all" and data["engine"] == "openvino fp32"
    gt = read_mask(one / "masks" / "s3.png")
    ref = reference([gt], [model_argmax(world["model"], read_image(one / "images" / "s3.png"))], 4)
    assert data["miou"] == pytest.approx(ref["miou"], abs=1e-3) and data["pixels"] == int((gt != 255).sum())


def test_label_map_maps_raw_values(world, tmp_path):
    from segcli.data.image_io import encode_png, read_mask, write_atomic

    raw = tmp_path / "raw"
    for split in ("train", "val"):
        for mask_path in sorted((world["data"] / split / "masks").glob("*.png")):
            label = read_mask(mask_path)
            stored = np.where(label == 255, 3, label.astype(np.int64) * 10 + 7).astype(np.uint8)  # 3: unmapped
            write_atomic(raw / split / "masks" / mask_path.name, encode_png(stored))
            write_atomic(raw / split / "images" / mask_path.name,
                         (world["data"] / split / "images" / mask_path.name).read_bytes())
    (raw / "classes.json").write_text(json.dumps(CLASS_NAMES))
    (tmp_path / "map.json").write_text(json.dumps({"7": 0, "17": 1, "27": 2, "37": 3}))
    mapped = scored(invoke(raw, "--model", world["run"], "--label-map", tmp_path / "map.json", "--json"))
    plain = scored(invoke(world["data"], "--model", world["run"], "--json"))
    assert mapped["confusion"] == plain["confusion"] and mapped["miou"] == plain["miou"]
    (tmp_path / "bad.json").write_text('{"7": 300}')
    result = invoke(raw, "--model", world["run"], "--label-map", tmp_path / "bad.json")
    assert result.exit_code == 2 and result.stderr.strip() == (
        f"error: {tmp_path / 'bad.json'}: value 300 of key '7' is not a class id; use a whole number 0-254, or 255 "
        f"for ignore.")


def test_classes_scores_a_subset_model(world, tmp_path):
    from segcli.data.image_io import read_image, read_mask

    model, run, _ = make_model(tmp_path / "two", num_classes=2)
    # fp32: this checks the subset's scoring against a float32 reference, and the random model's near-tied
    # logits would let bf16 rounding move its mIoU
    data = scored(invoke(world["data"], "--model", run, "--classes", "road,tree", "--precision", "fp32", "--json"))
    assert [c["name"] for c in data["per_class"]] == ["road", "tree"]
    gts, preds = [], []
    for image_path in sorted((world["data"] / "val" / "images").glob("*.png")):
        label = read_mask(world["data"] / "val" / "masks" / image_path.name)
        gts.append(np.select([label == 1, label == 2], [0, 1], 255))  # road -> 0, tree -> 1, the rest ignored
        preds.append(model_argmax(model, read_image(image_path)))
    ref = reference(gts, preds, 2)
    assert data["miou"] == pytest.approx(ref["miou"], abs=1e-3)
    assert data["pixels"] == sum(int((g != 255).sum()) for g in gts)
    result = invoke(world["data"], "--model", world["run"], "--classes", "road,tree")
    assert result.exit_code == 2 and result.stderr.strip() == (
        f"error: {world['data']}: keeping 2 classes (road, tree) but the model predicts 4; keep the classes the "
        f"model was trained on.")
    result = invoke(world["data"], "--model", run, "--classes", "road,cow")
    assert result.exit_code == 2 and "class 'cow' is not one of the 4 classes of classes.json" in result.stderr


def test_tta_report_and_worst_options(world, tmp_path):
    data = scored(invoke(world["data"], "--model", world["run"], "--tta", "flip", "--worst", "2", "--json",
                         "--report", tmp_path / "sub" / "r.html"))
    assert data["tta"] == "flip" and len(data["worst"]) == 2
    assert (tmp_path / "sub" / "r.html").read_text().count("data:image/png;base64,") == 2 + 3 * 2
    checks = [(("--report", tmp_path), f"error: --report {tmp_path}: is a folder; give a file name such as "
                                        f"{tmp_path / 'report.html'}."),
              (("--worst", "-1"), "error: --worst -1: give 0 or more images."),
              (("--tta", "flip", "--mode", "slide"), "error: test-time augmentation (flip) runs in whole mode; slide "
                                                     "mode already averages overlapping tiles, so use one or the "
                                                     "other."),
              (("--tta", "big"), "error: --tta 'big': use flip, scales=S1,S2,... or both, for example "
                                 "flip,scales=0.75,1.0,1.25.")]
    for args, line in checks:
        result = invoke(world["data"], "--model", world["run"], *args)
        assert result.exit_code == 2 and result.stderr.strip() == line, result.stderr
