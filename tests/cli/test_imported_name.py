"""`segcli weights import DIR --as NAME`, then NAME works wherever a model is named (issue 11).

The README promised this and predict used to answer "Unknown preset 'mytest'": three resolvers each
decided what --model meant. Now one does, and every command is run here with the imported name.
"""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from segcli.cli.app import app
from tests import hf_checkpoints as hf

NAME = "mytest"


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture()
def imported(tmp_path, segcli_home):
    hf.make(tmp_path / "hf_folder", num_labels=5)  # 5 classes, as `data synth` writes
    result = run("weights", "import", tmp_path / "hf_folder", "--as", NAME)
    assert result.exit_code == 0, result.output
    assert run("data", "synth", tmp_path / "data", "--n", "6", "--size", "64").exit_code == 0
    return tmp_path


def test_predict_and_eval_take_the_imported_name(imported):
    out = imported / "out"
    result = run("predict", imported / "data" / "val" / "images", "--out", out, "--model", NAME,
                 "--backend", "tensorflow", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["model"] == NAME and summary["count"]["written"] == summary["count"]["inputs"] > 0
    assert len(list(out.glob("*_overlay.jpg"))) == summary["count"]["written"]

    result = run("eval", imported / "data", "--model", NAME, "--backend", "tensorflow", "--json")
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert metrics["model"] == NAME and len(metrics["per_class"]) == 5 and metrics["images"] > 0


def test_export_and_bench_take_the_imported_name(imported):
    result = run("export", "--model", NAME, "--format", "onnx", "--out", imported / "m.onnx", "--sample-size", "64",
                 "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["passed"] and (imported / "m.onnx").is_file()

    result = run("bench", "--model", NAME, "--backend", "tensorflow", "--image-size", "64", "--warmup", "1",
                 "--iters", "1", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)


def test_train_starts_from_the_imported_name(imported):
    result = run("train", imported / "data", "--preset", NAME, "--epochs", "1", "--batch-size", "2", "--image-size",
                 "64", "--out", imported / "run", "--json")
    assert result.exit_code == 0, result.output
    config = json.loads((imported / "run" / "config.json").read_text())
    assert config["settings"]["preset"] == NAME
    assert config["settings"]["resolved"]["pretrained_loaded"] is True
    assert (imported / "run" / "best.keras").is_file()
