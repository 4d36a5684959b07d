"""`segcli eval`: the table, the JSON keys, --min-miou as a CI gate, one pair, --label-map, --classes, --tta,
--report."""

from __future__ import annotations

import json
from pathlib import Path

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
    model, run, keras_file = make_model(root / "models")
    return {"model": model, "run": run, "keras": keras_file, "data": make_dataset(root / "data", model)}


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


def test_the_footer_gives_percents_the_ignore_label_and_what_each_dash_means(world):
    data = scored(invoke(world["data"], "--model", world["run"], "--json"))
    result = invoke(world["data"], "--model", world["run"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[-2] == (f"mIoU {100 * data['miou']:.2f}%  aAcc {100 * data['pixel_accuracy']:.2f}%  "
                         f"mAcc {100 * data['mean_accuracy']:.2f}%  ({data['pixels']} pixels scored; pixels labelled "
                         f"255 are ignored)")
    assert lines[-1] == ("'-' = undefined, left out of the means: IoU and Dice of a class absent from both labels "
                         "and predictions, precision of a class never predicted, recall of a class never labelled.")
    sky = next(line for line in lines if line.startswith("│ sky "))  # the last class never appears in the labels
    assert [cell.strip() for cell in sky.strip("│").split("│")][4] == "-" and data["per_class"][3]["recall"] is None
    below = invoke(world["data"], "--model", world["run"], "--min-miou", "0.999")
    assert below.exit_code == 1
    assert below.stderr.strip().splitlines()[-1] == f"mIoU {100 * data['miou']:.2f}% is below --min-miou 0.999 (99.90%)."


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
    (run / "classes.json").write_text(json.dumps(["road", "tree"]))  # as `segcli train --classes road,tree` writes
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
    result = invoke(world["data"], "--model", world["keras"], "--classes", "road,tree")  # a model without names
    assert result.exit_code == 2 and result.stderr.strip() == (
        f"error: {world['data']}: keeping 2 classes (road, tree) but the model predicts 4; keep the classes the "
        f"model was trained on.")
    result = invoke(world["data"], "--model", run, "--classes", "road,cow")
    assert result.exit_code == 2 and "class 'cow' is not one of the 4 classes of classes.json" in result.stderr


def test_classes_must_be_the_named_models_classes_in_its_order(world):
    """The labels are renumbered in --classes' order and the model predicts in its own: reordered, every class
    was scored against another one's predictions (the demo model: mIoU 44.18 instead of 80.18)."""
    plain = scored(invoke(world["data"], "--model", world["run"], "--json"))
    same = scored(invoke(world["data"], "--model", world["run"], "--classes", "background,road,tree,sky", "--json"))
    assert same["confusion"] == plain["confusion"] and same["miou"] == plain["miou"]
    line = ("must name the model's classes in its order: background,road,tree,sky ({model} predicts them in that "
            "order, and the labels are renumbered in the order given).")
    for classes in ("road,background,tree,sky", "road,tree"):
        result = invoke(world["data"], "--model", world["run"], "--classes", classes)
        assert result.exit_code == 2 and "Traceback" not in result.output
        assert result.stderr.strip() == f"error: --classes {classes}: {line.format(model=world['run'])}"


def test_the_demo_model_with_its_classes_reordered_stops():
    root = Path(__file__).resolve().parents[2] / "samples"
    result = invoke(root, "--model", root / "demo_model", "--classes", "disc,background,square,triangle,ring")
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.strip() == (
        f"error: --classes disc,background,square,triangle,ring: must name the model's classes in its order: "
        f"background,disc,square,triangle,ring ({root / 'demo_model'} predicts them in that order, and the labels "
        f"are renumbered in the order given).")


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


def test_max_side_below_32_is_one_line(world):
    for value in ("0", "1"):  # whole mode would have run every image at 32 px
        result = invoke(world["data"], "--model", world["run"], "--max-side", value)
        assert result.exit_code == 2 and "Traceback" not in result.output
        assert result.stderr.strip() == f"error: --max-side {value}: must be at least 32."


def test_max_side_in_slide_mode_is_refused_not_ignored(world):
    result = invoke(world["data"], "--model", world["run"], "--mode", "slide", "--max-side", "64")
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.stderr.strip() == ("error: --max-side 64: only whole mode uses a max side; set mode to whole, or "
                                     "leave the max side out.")  # predict's line


def test_a_class_count_mismatch_names_the_models_classes_as_the_fix(world, tmp_path):
    """classes.json lists 4 classes and the model predicts 2 it names, both among them: the line says how to
    score them (the library names the setting plainly, as it does `backend` and `precision`)."""
    _, run, keras_file = make_model(tmp_path / "two", num_classes=2)
    (run / "classes.json").write_text(json.dumps(["road", "tree"]))
    listed = world["data"] / "classes.json"
    result = invoke(world["data"], "--model", run)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.stderr.strip() == (
        f"error: {listed}: lists 4 classes but the model predicts 2; evaluate with the model trained on this class "
        f"list; or score the model's classes with classes road,tree.")
    plain = (f"error: {listed}: lists 4 classes but the model predicts 2; evaluate with the model trained on this "
             f"class list.")
    result = invoke(world["data"], "--model", keras_file)  # a model without names: no fix to offer
    assert result.exit_code == 2 and result.stderr.strip() == plain
    (run / "classes.json").write_text(json.dumps(["road", "cow"]))  # a class the data does not have
    result = invoke(world["data"], "--model", run)
    assert result.exit_code == 2 and result.stderr.strip() == plain


def test_a_run_directory_is_scored_on_the_val_split_it_drew(world, tmp_path):
    """A flat dataset has no val folder: eval draws the val split with the run's own fraction and seed."""
    import shutil

    from segcli.data.folder_dataset import discover

    run = tmp_path / "run"
    shutil.copytree(world["run"], run)
    (run / "config.json").write_text(json.dumps({"format": "segcli-run-v1",
                                                 "settings": {"val_fraction": 0.5, "seed": 3}}))
    flat = tmp_path / "flat"
    for kind in ("images", "masks"):
        (flat / kind).mkdir(parents=True)
        for split in ("train", "val"):
            for f in (world["data"] / split / kind).iterdir():
                shutil.copy(f, flat / kind / f.name)
    result = invoke(flat, "--model", run, "--split", "val", "--json")
    assert result.exit_code == 0, result.output
    drawn = discover(flat, val_fraction=0.5, seed=3).splits["val"]
    assert json.loads(result.stdout)["images"] == len(drawn) != len(discover(flat).splits["val"])
    assert f"note: no val split: drew {len(drawn)} of 5 pairs for validation (val fraction 0.5, seed 3)." in \
        result.stderr
