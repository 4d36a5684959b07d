"""`segcli bench --model`: an exported file alone, and a trained model exported to several formats in one table."""

from __future__ import annotations

import json

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
    result = bench("--model", trained, "--formats", "keras,onnx,openvino", "--data", data)
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [r["format"] for r in rows] == ["keras", "onnx", "openvino"]
    assert rows[2]["runtime"].startswith("openvino") and rows[1]["runtime"].startswith("onnxruntime")
    for row in rows:
        assert row["mask_agreement"] == 1.0 and row["img_per_s"] > 0 and row["gflops_per_image"] > 0
        assert row["miou"] == pytest.approx(rows[0]["miou"], abs=1e-4) and row["miou"] > 0.8


def test_an_exported_file_is_timed_alone(trained, tmp_path):
    from segcli.export.api import export_model

    export_model(trained, "tflite", tmp_path / "m.tflite", sample_size=(64, 64))
    result = bench("--model", tmp_path / "m.tflite")
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)
    assert row["format"] == "exported" and row["mask_agreement"] == 1.0 and row["gflops_per_image"] is None


def test_unknown_format_is_one_line(trained):
    result = bench("--model", trained, "--formats", "keras,caffe")
    assert result.exit_code == 2
    assert result.output.strip().splitlines()[-1] == ("error: formats caffe: use some of keras, savedmodel, onnx, "
                                                      "tflite, openvino.")
