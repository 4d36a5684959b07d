"""`segcli train`: every bad input is one line, a non-zero exit and no file outside --out; a real run learns."""

from __future__ import annotations

import csv
import json
import os

import numpy as np
import pytest
from typer.testing import CliRunner

from segcli.cli.app import app
from tests.data.tiny_dataset import make_easy, tree


def _train(args, cwd, monkeypatch):
    monkeypatch.chdir(cwd)
    return CliRunner().invoke(app, ["train", *args])


def _one_error_line(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output
    return lines[0][len("error: "):]


BASE = ["--preset", "segformer_test", "--image-size", "32", "--epochs", "1", "--batch-size", "2"]


@pytest.mark.parametrize("make, extra, message", [
    (None, [], "{data}: no such folder; give the dataset folder (expected DATA/images + DATA/masks, "
               "DATA/train/{{images,masks}} (+ DATA/val/{{images,masks}}), or DATA/img_dir/{{train,val}} + "
               "DATA/ann_dir/{{train,val}})."),
    ("empty", [], "{data}: empty folder; expected DATA/images + DATA/masks, DATA/train/{{images,masks}} "
                  "(+ DATA/val/{{images,masks}}), or DATA/img_dir/{{train,val}} + DATA/ann_dir/{{train,val}}."),
    ("one", [], "{data}: the data check found 1 problem(s), training refused; first: {data}: only 1 image/mask pair "
                "and no val split, so no validation is possible; add images or a val split."),
    ("easy", ["--num-classes", "2"],
     "{data}: the data check found 4 problem(s), training refused; first: {data}/masks/img_000.png: mask values [2] "
     "are outside the 2 classes 0..1 (255 = ignore); fix the mask or raise --num-classes."),
    ("easy", ["--epochs", "0"], "--epochs must be a positive whole number; got 0."),
    ("easy", ["--epochs", "-3"], "--epochs must be a positive whole number; got -3."),
    ("easy", ["--batch-size", "0"], "--batch-size must be a positive whole number; got 0."),
    ("easy", ["--batch-size", "-1"], "--batch-size must be a positive whole number; got -1."),
    ("easy", ["--image-size", "16"], "--image-size 16: smaller than 32 pixels; SegFormer downsamples by 32, use at "
                                     "least 32."),
    ("easy", ["--image-size", "64x31"], "--image-size 64x31: smaller than 32 pixels; SegFormer downsamples by 32, "
                                        "use at least 32."),
    ("easy", ["--image-size", "big"], "--image-size 'big': give N or HxW in pixels, e.g. 512 or 512x1024."),
    ("easy", ["--precision", "fp16"], "--precision fp16 needs a GPU (float16 with loss scaling); this machine has "
                                      "none. Use bf16 on a CPU with AMX or AVX-512 BF16, or fp32."),
    ("easy", ["--cache", "ram"], "--cache 'ram': use memory, disk or none."),
    ("easy", ["--val-fraction", "2"], "--val-fraction must be between 0 and 1 (exclusive), e.g. 0.1; got 2.0."),
    ("easy", ["--classes", "class_1"], "--classes class_1: keep at least 2 classes (a model with one class has nothing "
                                       "to tell apart)."),
    ("easy", ["--classes", "class_1, class_1"], "--classes class_1, class_1: keep at least 2 classes (a model with "
                                                "one class has nothing to tell apart)."),
    ("easy", ["--classes", ",class_1"], "--classes ',class_1' has an empty name; give names separated by commas, e.g. "
                                        "sky,road."),
])
def test_bad_input_is_one_line_nonzero_exit_and_writes_nothing(tmp_path, monkeypatch, make, extra, message):
    data = tmp_path / "data"
    if make == "empty":
        data.mkdir()
    elif make == "one":
        make_easy(data, n=1, size=32)
    elif make == "easy":
        make_easy(data, n=4, size=32)
    out = tmp_path / "run"
    before = tree(tmp_path)
    result = _train([str(data), *BASE, *extra, "--out", str(out)], tmp_path, monkeypatch)
    assert result.exit_code == 2
    assert _one_error_line(result) == message.format(data=data)
    assert tree(tmp_path) == before  # not even --out


def test_non_empty_out_needs_resume_or_overwrite(tmp_path, monkeypatch):
    make_easy(tmp_path / "data", n=4, size=32)
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    before = tree(tmp_path)
    result = _train([str(tmp_path / "data"), *BASE, "--out", str(out)], tmp_path, monkeypatch)
    assert result.exit_code == 2
    assert _one_error_line(result) == (f"--out {out} is not empty; pass --resume to continue that run or --overwrite "
                                       f"to replace it.")
    assert tree(tmp_path) == before and (out / "notes.txt").read_text() == "mine"


def test_resume_without_a_run_and_missing_preset(tmp_path, monkeypatch):
    make_easy(tmp_path / "data", n=4, size=32)
    result = _train([str(tmp_path / "data"), "--out", str(tmp_path / "x"), "--resume"], tmp_path, monkeypatch)
    assert result.exit_code == 2
    assert _one_error_line(result) == (f"--resume: {tmp_path / 'x'} holds no run (config.json missing); drop --resume "
                                       f"to start a new run.")
    result = _train([str(tmp_path / "data")], tmp_path, monkeypatch)
    assert result.exit_code == 2
    assert _one_error_line(result) == "--preset is required (see `segcli presets`), e.g. --preset mit_b0."
    assert not (tmp_path / "runs").exists() and not (tmp_path / "x").exists()


def test_a_few_epochs_at_64px_learn_the_easy_task_and_write_a_complete_run(tmp_path, monkeypatch):
    data = make_easy(tmp_path / "data", n=20, size=64)
    out = tmp_path / "run"
    before = tree(tmp_path)
    result = _train([str(data), "--preset", "segformer_test", "--image-size", "64", "--epochs", "8",
                     "--batch-size", "4", "--lr", "2e-3", "--head-lr-mult", "10", "--class-weights", "none",
                     "--val-fraction", "0.2", "--out", str(out), "--json"],
                    tmp_path, monkeypatch)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    # chance: predicting background everywhere gives about 0.27 here
    assert summary["best_miou"] > 0.6, summary["history"]
    assert summary["epochs_run"] == 8 and [r["name"] for r in summary["per_class"]] == ["class_0", "class_1", "class_2"]
    assert "inferred 3 classes" in result.stderr and "drew 4 of 20 pairs" in result.stderr

    assert tree(tmp_path) - before == {"run"} | {f"run/{p}" for p in tree(out)}  # only the run directory
    assert {"config.json", "classes.json", "splits/train.txt", "splits/val.txt", "best.keras", "last.ckpt.npz",
            "metrics.csv", "logs", "report.html"} <= tree(out)
    events = [p for p in (out / "logs").iterdir() if p.name.startswith("events.out.tfevents")]
    assert events
    # TensorBoard's images tab: val image | ground truth | prediction, every epoch
    import tensorflow as tf

    panels = [v for e in tf.compat.v1.train.summary_iterator(str(events[0])) for v in e.summary.value
              if v.tag.startswith("val_overlays/")]
    assert len(panels) == 8 * 3
    width, height, png = tf.make_ndarray(panels[0].tensor)
    assert tf.io.decode_png(png).shape == (int(height), int(width), 3) == (64, 3 * 64, 3)
    # report.html: the best epoch on the val split, as `segcli eval --report` writes it (rendering: test_report.py)
    report = (out / "report.html").read_text()
    assert report.count("data:image/png;base64,") >= 3 and "class_2" in report
    config = json.loads((out / "config.json").read_text())
    assert config["settings"]["epochs"] == 8 and config["settings"]["image_size"] == [64, 64]
    import keras
    import tensorflow as tf

    assert {k: config["versions"][k] for k in ("tensorflow", "keras")} == {"tensorflow": tf.__version__,
                                                                           "keras": keras.__version__}
    assert config["settings"]["resolved"]["num_classes"] == 3 and config["settings"]["resolved"]["steps_per_epoch"] == 4
    assert len((out / "splits" / "val.txt").read_text().split()) == 2 * 4
    classes = json.loads((out / "classes.json").read_text())["classes"]
    assert [c["name"] for c in classes] == ["class_0", "class_1", "class_2"]
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert [int(r["epoch"]) for r in rows] == list(range(1, 9))
    assert max(float(r["val_miou"]) for r in rows) == pytest.approx(summary["best_miou"])

    # best.keras is a softmax model the factory loads from the run directory
    from segcli.data.image_io import read_image
    from segcli.models.load import load

    model = load(str(out)).model
    val_image = data / (out / "splits" / "val.txt").read_text().split()[0]
    probs = np.asarray(model(read_image(val_image)[None].astype("float32")))
    assert probs.shape == (1, 64, 64, 3)
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-4)


def test_from_scratch_recipe_progress_json_log_then_the_paper_recipe_in_bf16(tmp_path, monkeypatch):
    from segcli.train.settings import PAPER, SCRATCH

    data = make_easy(tmp_path / "data", n=12, size=32)
    out, log = tmp_path / "run", tmp_path / "log.jsonl"
    result = _train([str(data), "--preset", "segformer_test", "--image-size", "32", "--epochs", "2", "--batch-size",
                     "4", "--cache", "disk", "--json-log", str(log), "--out", str(out)], tmp_path, monkeypatch)
    assert result.exit_code == 0, result.output
    opening = next(line for line in result.stderr.splitlines() if line.startswith("Training segformer_test"))
    assert "2 epochs x 3 steps, default strategy (1 replica), fp32; random initialisation (no pretrained weights " \
           f"loaded), so the from-scratch recipe (lr {SCRATCH.lr:g}, head x{SCRATCH.head_lr_mult:g}" in opening
    assert opening.count("no pretrained weights loaded") == 1
    settings = json.loads((out / "config.json").read_text())["settings"]
    assert (settings["lr"], settings["head_lr_mult"], settings["class_weights"]) == \
        (SCRATCH.lr, SCRATCH.head_lr_mult, SCRATCH.class_weights)
    assert settings["resolved"]["recipe"] == "from-scratch" and settings["resolved"]["cache"] == "disk"
    steps = settings["resolved"]["steps_per_epoch"]
    assert steps == 3 and settings["warmup_steps"] == int(SCRATCH.warmup_share * 2 * steps)  # 11 train pairs
    assert len(list((out / "cache").glob("*.npy"))) == 2 * 12
    # a log (stderr is not a terminal here) hears about tracing and the first step at once
    assert "epoch 1/2: tracing the training step (the first step takes longer) ..." in result.stderr
    assert "epoch 1/2 step 1/3: first step done after" in result.stderr
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    csv_rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert [r["epoch"] for r in rows] == [1, 2]
    assert [r["val_miou"] for r in rows] == pytest.approx([float(r["val_miou"]) for r in csv_rows])

    # from that run's weights: the paper's fine-tuning recipe, computed in bfloat16 where this CPU has it
    tuned = tmp_path / "tuned"
    args = [str(data), "--preset", str(out), "--image-size", "32", "--epochs", "1", "--batch-size", "4",
            "--out", str(tuned), "--json"]
    flags = set(open("/proc/cpuinfo").read().split())  # the kernel's view, independent of segcli.hardware
    native_bf16 = bool(flags & {"avx512_bf16", "amx_bf16"})
    result = _train([*args, "--precision", "bf16"], tmp_path, monkeypatch)
    if not native_bf16:  # refused with one line, nothing written; the recipe is then checked in fp32
        assert result.exit_code == 2 and not tuned.exists()
        assert _one_error_line(result).startswith("--precision bf16 needs a CPU with AMX or AVX-512 BF16")
        result = _train([*args, "--precision", "fp32"], tmp_path, monkeypatch)
    assert result.exit_code == 0, result.output
    assert ", so the paper's fine-tuning recipe (lr 6e-05, head x10" in result.stderr
    assert "batch 4, 1 epoch x " in result.stderr and "; weights from " in result.stderr
    settings = json.loads((tuned / "config.json").read_text())["settings"]
    assert (settings["lr"], settings["head_lr_mult"], settings["epochs"]) == (PAPER.lr, PAPER.head_lr_mult, 1)
    from tensorflow.python.util import _pywrap_util_port

    rewrite = native_bf16 and _pywrap_util_port.IsMklEnabled()  # TF's oneDNN ops on: its bf16 graph rewrite
    assert settings["resolved"]["keras_policy"] == ("mixed_bfloat16" if native_bf16 and not rewrite else "float32")
    if rewrite:
        assert settings["resolved"]["precision_engine"] == "TF oneDNN bf16 graph rewrite"
        assert "bf16 (TF oneDNN bf16 graph rewrite); weights from" in result.stderr
    assert np.isfinite(json.loads(result.stdout)["history"][0]["train_loss"])
    import keras
    import tensorflow as tf

    assert keras.mixed_precision.global_policy().name == "float32"  # the run restored it
    assert not tf.config.optimizer.get_experimental_options().get("auto_mixed_precision_onednn_bfloat16")


def test_a_run_that_fails_in_setup_leaves_no_bf16_settings_behind(tmp_path, monkeypatch):
    """The precision is set up before the model loads; a model that cannot load must not leave it switched on."""
    import keras
    import tensorflow as tf

    from segcli.hardware import has_bf16
    from segcli.train.precision import REWRITE_KEEPS_FLOAT32

    data = make_easy(tmp_path / "data", n=4, size=32)
    (tmp_path / "broken.keras").write_bytes(b"not a zip")
    before = {key: os.environ.get(key) for key in REWRITE_KEEPS_FLOAT32}
    args = [str(data), "--preset", "broken.keras", "--image-size", "32", "--epochs", "1", "--batch-size", "2"]
    result = _train([*args, "--precision", "bf16", "--out", str(tmp_path / "run")], tmp_path, monkeypatch)
    assert result.exit_code == 2
    if has_bf16():  # bf16 was set up, then the model failed to load
        assert _one_error_line(result).startswith("broken.keras cannot be loaded as a Keras model (BadZipFile")
    assert keras.mixed_precision.global_policy().name == "float32"
    assert not tf.config.optimizer.get_experimental_options().get("auto_mixed_precision_onednn_bfloat16")
    assert {key: os.environ.get(key) for key in REWRITE_KEEPS_FLOAT32} == before


def test_a_nan_loss_stops_with_one_line(tmp_path, monkeypatch):
    import tensorflow as tf

    from segcli.train import losses

    real = losses.segmentation_loss
    monkeypatch.setattr(losses, "segmentation_loss", lambda *a, **k: real(*a, **k) * tf.constant(float("nan")))
    data = make_easy(tmp_path / "data", n=4, size=32)
    result = _train([str(data), *BASE, "--lr", "0.001", "--out", str(tmp_path / "run")], tmp_path, monkeypatch)
    assert result.exit_code == 2
    assert _one_error_line(result) == "training diverged: the loss is nan at epoch 1, step 1 (fp32, lr 0.001); " \
                                      "lower --lr."


def test_resume_warns_once_about_the_flags_it_ignores(tmp_path, monkeypatch):
    data = make_easy(tmp_path / "data", n=4, size=32)
    out = tmp_path / "run"
    result = _train([str(data), *BASE, "--out", str(out)], tmp_path, monkeypatch)
    assert result.exit_code == 0, result.output
    lr = json.loads((out / "config.json").read_text())["settings"]["lr"]
    # the same flags again: nothing ignored, no warning
    result = _train([str(data), *BASE, "--out", str(out), "--resume"], tmp_path, monkeypatch)
    assert result.exit_code == 0, result.output
    assert "warning:" not in result.stderr
    result = _train([str(data), "--preset", "segformer_test", "--image-size", "64", "--epochs", "2", "--batch-size",
                     "2", "--lr", "0.5", "--seed", "0", "--classes", "class_0,class_1", "--out", str(out), "--resume"],
                    tmp_path, monkeypatch)
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert warnings == [f"warning: --resume continues {out} with its own settings; ignored: --epochs 2 (the run "
                        f"has 1), --lr 0.5 (the run has {lr:g}), --classes class_0,class_1 (the run has none), --image-size "
                        f"64x64 (the run has 32x32)."]
    config = json.loads((out / "config.json").read_text())["settings"]
    assert config["epochs"] == 1 and config["image_size"] == [32, 32] and config["lr"] == lr
