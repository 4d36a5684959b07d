"""`segcli weights` and `segcli export` from the command line, and predict on exported files."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from segcli.cli.app import app
from tests import hf_checkpoints as hf
from tests.export.export_fixtures import colour_blocks, train_tiny


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_weights_path_prints_the_cache(segcli_home):
    result = run("weights", "path")
    assert result.exit_code == 0
    assert result.stdout.strip() == str(segcli_home / "weights")


def test_weights_path_of_a_name_prints_its_folder_and_refuses_a_path(tmp_path, segcli_home):
    from segcli.models.registry import PRESETS, weights_entry_name

    preset = "segformer_b0_ade20k_512"
    for name, folder in ((preset, weights_entry_name(PRESETS[preset])), ("my_b0", "my_b0"), ("v2.1-b", "v2.1-b")):
        result = run("weights", "path", name)
        assert result.exit_code == 0, result.output
        assert result.stdout.strip() == str(segcli_home / "weights" / folder)
    hf.make(tmp_path / "ckpt", num_labels=4)
    assert run("weights", "import", tmp_path / "ckpt", "--as", "mine").exit_code == 0
    assert run("weights", "path", "mine").stdout.strip() == str(segcli_home / "weights" / "mine")
    for name in ("../../etc", "..", "a/b", "/etc"):
        result = run("weights", "path", name)
        assert result.exit_code == 2 and result.stdout == "" and "Traceback" not in result.output
        assert result.stderr.strip() == (f"error: name {name!r}: use a plain name of letters, digits, '_', '.' "
                                         f"and '-' (for example my_segformer).")


def test_import_then_list_and_presets_show_it_cached(tmp_path, segcli_home):
    hf.make(tmp_path / "ckpt", num_labels=4)
    result = run("weights", "import", tmp_path / "ckpt", "--as", "my_tiny")
    assert result.exit_code == 0, result.output
    assert (segcli_home / "weights" / "my_tiny" / "record.json").is_file()
    listed = run("weights", "list", "--json")
    assert listed.exit_code == 0
    names = json.dumps(json.loads(listed.stdout))
    assert "my_tiny" in names


def test_importing_again_under_a_taken_name_says_what_it_replaced(tmp_path, segcli_home):
    hf.make(tmp_path / "first", num_labels=4)
    hf.make(tmp_path / "second", num_labels=3)
    assert run("weights", "import", tmp_path / "first", "--as", "mine").exit_code == 0
    again = run("weights", "import", tmp_path / "second", "--as", "mine")
    assert again.exit_code == 0, again.output
    assert again.stderr.strip() == (f"note: 'mine' held an earlier import (from {(tmp_path / 'first').resolve()}); "
                                    f"this one replaced it.")
    record = json.loads((segcli_home / "weights" / "mine" / "record.json").read_text())
    assert record["num_classes"] == 3

def test_import_of_a_folder_that_is_no_checkpoint_is_one_line(tmp_path):
    (tmp_path / "empty").mkdir()
    result = run("weights", "import", tmp_path / "empty", "--as", "x")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "Traceback" not in result.output


def test_a_checkpoint_whose_hidden_size_does_not_split_into_its_heads_is_one_line(tmp_path, segcli_home):
    ckpt = tmp_path / "ckpt"  # stage 3: 24 channels, 5 heads (transformers' default heads 1, 2, 5, 8)
    hf.make(ckpt, dict(hidden_sizes=[8, 16, 24, 32], depths=[1, 1, 1, 1], decoder_hidden_size=16), num_labels=3)
    expected = (f"error: {ckpt}: stage 3 of 4 has hidden size 24 and 5 attention heads; segcli needs each stage's "
                f"hidden size to be divisible by its number of heads. Use a checkpoint whose hidden sizes divide "
                f"evenly by their heads (every published SegFormer does).")
    result = run("weights", "import", ckpt, "--as", "tiny")
    assert (result.exit_code, result.output.strip()) == (2, expected)
    assert list(segcli_home.rglob("*")) == []  # nothing cached
    (tmp_path / "imgs").mkdir()  # --model pointing at the checkpoint folder stops the same way
    cv2.imwrite(str(tmp_path / "imgs" / "a.png"), np.zeros((32, 32, 3), np.uint8))
    result = run("predict", tmp_path / "imgs", "--model", ckpt, "--out", tmp_path / "out")
    assert (result.exit_code, result.output.strip()) == (2, expected)


def test_fetch_offline_fails_at_once_with_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    result = run("weights", "fetch", "segformer_b0_ade20k_512")
    assert result.exit_code != 0
    assert "segformer_b0_ade20k_512" in result.output and "segcli weights import" in result.output
    assert len([line for line in result.output.splitlines() if line.startswith("error:")]) == 1


@pytest.fixture(scope="module")
def tiny_keras(tmp_path_factory):
    return train_tiny(tmp_path_factory.mktemp("tiny") / "tiny.keras")


@pytest.mark.parametrize("fmt, name", [("onnx", "m.onnx"), ("tflite", "m.tflite"), ("openvino", "ov")])
def test_export_then_predict_runs_the_exported_file(tiny_keras, tmp_path, fmt, name):
    import keras

    result = run("export", "--model", tiny_keras, "--format", fmt, "--out", tmp_path / name, "--sample-size", 64,
                 "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["max_abs_diff"] <= 1e-4

    images, _ = colour_blocks(2, size=64, seed=5)
    (tmp_path / "imgs").mkdir()
    for i, image in enumerate(images):
        cv2.imwrite(str(tmp_path / "imgs" / f"{i}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    result = run("predict", tmp_path / "imgs", "--model", tmp_path / name, "--out", tmp_path / "out", "--no-overlay")
    assert result.exit_code == 0, result.output
    reference = keras.saving.load_model(str(tiny_keras))
    expected = np.asarray(reference(images.astype("float32"))).argmax(-1)
    for i in range(2):
        mask = cv2.imread(str(tmp_path / "out" / f"{i}.png"), cv2.IMREAD_UNCHANGED)
        assert (mask == expected[i]).mean() >= 0.99


def test_predict_on_a_tflite_file_keeps_the_interpreter_s_notice_off_the_terminal(tiny_keras, tmp_path):
    """The TFLite runtime writes "INFO: Created TensorFlow Lite XNNPACK delegate" to fd 2, past sys.stderr: only
    a real process shows whether it reaches the terminal."""
    import subprocess
    import sys

    model = tmp_path / "m.tflite"
    assert run("export", "--model", tiny_keras, "--format", "tflite", "--out", model, "--sample-size", 32).exit_code == 0
    images, _ = colour_blocks(1, size=32, seed=5)
    (tmp_path / "imgs").mkdir()
    cv2.imwrite(str(tmp_path / "imgs" / "a.png"), images[0][..., ::-1])
    done = subprocess.run([sys.executable, "-m", "segcli.cli.app", "predict", str(tmp_path / "imgs"), "--model",
                           str(model), "--out", str(tmp_path / "out"), "--no-overlay"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out" / "a.png").is_file()
    assert "XNNPACK" not in done.stderr and "INFO:" not in done.stderr, done.stderr

def _tree(path):
    return sorted(str(p.relative_to(path)) for p in path.rglob("*")) if path.is_dir() else [path.name]


@pytest.mark.parametrize("fmt, name", [("openvino", "ov"), ("onnx", "m.onnx"),
                                       pytest.param("savedmodel", "sm", marks=pytest.mark.slow)])
def test_overwrite_replaces_an_earlier_export(tiny_keras, tmp_path, fmt, name):
    out = tmp_path / name
    export = ["export", "--model", tiny_keras, "--format", fmt, "--out", out, "--sample-size", 32, "--json"]
    assert run(*export).exit_code == 0
    written = _tree(out)  # everything this format writes, which --overwrite must accept as its own
    result = run(*export)
    assert (result.exit_code, result.output.strip()) == (2, f"error: --out {out} already exists; pass --overwrite "
                                                            f"to replace it.")
    stale = out / "segcli.json" if out.is_dir() else out
    stale.write_bytes(b"from the earlier export")
    result = run(*export, "--overwrite")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["passed"] and stale.read_bytes() != b"from the earlier export"
    assert _tree(out) == written and sorted(p.name for p in tmp_path.iterdir()) == [name]  # no temp or old copy


def test_export_with_an_unknown_format_is_one_line(tiny_keras, tmp_path):
    result = run("export", "--model", tiny_keras, "--format", "caffe", "--out", tmp_path / "x")
    assert result.exit_code == 2
    assert result.output.strip() == "error: --format caffe: use one of savedmodel, onnx, tflite, openvino."


def test_export_int8_without_calibration_names_the_flag(tiny_keras, tmp_path):
    result = run("export", "--model", tiny_keras, "--format", "openvino", "--precision", "int8", "--out",
                 tmp_path / "ov")
    assert result.exit_code == 2
    assert result.output.strip().splitlines()[-1].startswith("error: --precision int8 needs calibration images")
    assert not (tmp_path / "ov").exists()
