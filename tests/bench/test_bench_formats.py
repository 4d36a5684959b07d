"""`segcli bench --model`: an exported file alone, and a trained model exported to several formats in one table."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from segcli.cli.app import app
from tests.export.export_fixtures import colour_blocks, train_tiny


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return train_tiny(tmp_path_factory.mktemp("trained") / "tiny.keras")


def labelled(folder, count=4, seed=40):
    images, masks = colour_blocks(count, seed=seed)
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    for i, (image, mask) in enumerate(zip(images, masks)):
        cv2.imwrite(str(folder / "images" / f"{i}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        cv2.imwrite(str(folder / "masks" / f"{i}.png"), mask.astype(np.uint8))
    return folder


def bench(*args):
    return CliRunner().invoke(app, ["bench", *map(str, args), "--image-size", "64", "--iters", "1", "--json"])


def test_formats_table_agrees_with_keras_and_scores_labelled_data(trained, tmp_path):
    pytest.importorskip("openvino")
    data = labelled(tmp_path / "val")
    # fp32: parity with Keras; the default is predict's (bf16 on a CPU with AVX-512 BF16 or AMX)
    result = bench("--model", trained, "--formats", "keras,onnx,openvino", "--data", data, "--precision", "fp32")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [r["format"] for r in rows] == ["keras", "onnx", "openvino"]
    assert rows[2]["runtime"].startswith("openvino") and rows[1]["runtime"].startswith("onnxruntime")
    for row in rows:
        assert row["mask_agreement"] == 1.0 and row["img_per_s"] > 0 and row["gflops_per_image"] > 0
        assert row["miou"] == pytest.approx(rows[0]["miou"], abs=1e-4) and row["miou"] > 0.8
        assert (row["miou_split"], row["miou_images"]) == ("all", 4)  # no val folder: eval scores every pair


def test_an_exported_file_is_timed_alone(trained, tmp_path):
    from segcli.export.api import export_model

    export_model(trained, "tflite", tmp_path / "m.tflite", sample_size=(64, 64))
    result = bench("--model", tmp_path / "m.tflite")
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)
    assert row["format"] == "tflite" and row["gflops_per_image"] is None
    assert row["mask_agreement"] is None  # timed alone: nothing else to agree with
    assert "tflite ..." in result.stderr


def test_unknown_format_is_one_line(trained):
    result = bench("--model", trained, "--formats", "keras,caffe")
    assert result.exit_code == 2
    assert result.output.strip().splitlines()[-1] == ("error: --formats caffe: use some of keras, savedmodel, onnx, "
                                                      "tflite, openvino.")


def notes(result) -> list:
    return [line for line in result.stderr.splitlines() if line.startswith("note:")]


def test_a_class_count_the_data_does_not_have_gives_no_miou_and_one_note(trained):
    samples = Path(__file__).resolve().parents[2] / "samples"  # 5 classes; the model predicts 3
    result = CliRunner().invoke(app, ["bench", "--model", str(trained), "--formats", "keras,onnx", "--data",
                                      str(samples), "--image-size", "64", "--iters", "1"])
    assert result.exit_code == 0, result.output
    rows = [line.split("│") for line in result.stdout.splitlines() if line.startswith(("│ keras", "│ onnx"))]
    assert [row[-2].strip() for row in rows] == ["-", "-"]
    assert notes(result) == [f"note: no mIoU: {samples / 'classes.json'}: lists 5 classes but the model predicts 3; "
                             f"evaluate with the model trained on this class list."]


def test_images_without_masks_are_compared_on_and_a_note_says_why_there_is_no_miou(trained, tmp_path):
    photos = tmp_path / "photos"
    labelled(tmp_path / "pairs")
    (tmp_path / "pairs" / "images").rename(photos)
    result = bench("--model", trained, "--data", photos)
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)
    assert row["format"] == "keras" and row["miou"] is None and row["miou_split"] is None
    (line,) = notes(result)
    assert line.startswith(f"note: no mIoU: {photos}: no dataset layout found")
