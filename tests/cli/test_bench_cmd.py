"""`segcli bench`: JSON rows, the table, sweeps, end-to-end mode and one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from segcli.cli.app import app

TINY = ["--preset", "segformer_test", "--image-size", "64", "--batch-size", "1", "--iters", "2", "--warmup", "0"]
KEYS = {"preset": str, "image_size": list, "batch_size": int, "img_per_s": float, "latency_ms_p50": float,
        "latency_ms_p90": float, "latency_ms_p99": float, "gflops_per_image": float, "peak_rss_mb": float}
ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples" / "photos"
DEMO = ROOT / "samples" / "demo_model"


def test_json_rows_have_the_documented_keys_and_types():
    result = CliRunner().invoke(app, ["bench", *TINY, "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert len(rows) == 1
    for key, kind in KEYS.items():
        assert isinstance(rows[0][key], kind), key
    assert rows[0]["preset"] == "segformer_test" and rows[0]["image_size"] == [64, 64]


def test_a_sweep_gives_one_row_per_combination():
    result = CliRunner().invoke(app, ["bench", "--preset", "segformer_test,mit_test", "--image-size", "32,64",
                                      "--batch-size", "1,2", "--iters", "1", "--warmup", "0", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert len(rows) == 8
    assert {(r["preset"], tuple(r["image_size"]), r["batch_size"]) for r in rows} == {
        (p, (s, s), b) for p in ("segformer_test", "mit_test") for s in (32, 64) for b in (1, 2)}


def test_table_shows_environment_and_columns():
    result = CliRunner().invoke(app, ["bench", *TINY, "--image-size", "32x64"])
    assert result.exit_code == 0, result.output
    for text in ("TF ", "bfc allocator", "Keras ", "cores", "segformer_test", "32x64", "img/s", "p99 ms", "GFLOP/img",
                 "fp32 peak: unknown (run `segcli bench --peak` once to measure it)"):
        assert text in result.stdout, text


def test_bad_values_are_one_red_line_and_exit_2():
    runner = CliRunner()
    for args, message in [
        (["--image-size", "abc"], "error: --image-size 'abc': give N or HxW in pixels, e.g. 512 or 512x1024."),
        (["--batch-size", "0"], "error: --batch-size 0: must be a positive integer."),
        (["--iters", "0"], "error: --iters 0: must be at least 1."),
        (["--preset", "nope_b9"], "error: Unknown preset 'nope_b9'."),
        (["--input", "/no/such/folder"], "error: --input /no/such/folder: no such folder; give a folder of images."),
    ]:
        result = runner.invoke(app, ["bench", *args])
        assert result.exit_code == 2, args
        assert message in result.stderr.replace("\n", " "), (args, result.stderr)
        assert "Traceback" not in result.output


def test_flags_of_the_other_mode_are_refused_not_ignored():
    """Preset rows time TensorFlow with random weights; --backend/--precision/--formats/--data belong to --model,
    and --preset/--mixed-precision/--num-classes/--input to preset rows. Given to the wrong mode, they used to be
    dropped in silence (a bench that said nothing of OpenVINO after --backend openvino)."""
    model_only = ("for --model only (a run directory, .keras file, imported name or exported file); preset rows "
                  "time TensorFlow's forward pass with random weights.")
    preset_only = "for preset rows only (random weights); with --model leave them out."
    for args, message in [
        (["--backend", "openvino"], f"error: --backend openvino: {model_only}"),
        (["--precision", "bf16", "--formats", "onnx"], f"error: --formats and --precision bf16: {model_only}"),
        (["--data", "samples"], f"error: --data: {model_only}"),
        (["--model", "samples/demo_model", "--mixed-precision", "--preset", "segformer_b0"],
         f"error: --preset and --mixed-precision: {preset_only}"),
    ]:
        result = CliRunner().invoke(app, ["bench", *args])
        assert result.exit_code == 2, (args, result.output)
        assert message in " ".join(result.stderr.split()), (args, result.stderr)
        assert "Traceback" not in result.output


def test_preset_rows_still_take_the_default_and_the_tensorflow_backend():
    for backend in ("auto", "tensorflow"):
        result = CliRunner().invoke(app, ["bench", *TINY, "--backend", backend, "--precision", "fp32", "--json"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)[0]["precision"] == "float32"


def test_input_folder_times_the_predict_path(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("coffee.jpg", "camera_gray.png"):
        (folder / name).write_bytes((SAMPLES / name).read_bytes())
    before = sorted(p.name for p in folder.iterdir())
    result = CliRunner().invoke(app, ["bench", *TINY, "--input", str(folder), "--json"])
    assert result.exit_code == 0, result.output
    row = json.loads(result.stdout)[0]
    assert row["end_to_end_images"] == 2 and row["end_to_end_img_per_s"] > 0
    assert sorted(p.name for p in folder.iterdir()) == before  # inputs untouched, outputs went elsewhere


def test_runs_as_a_real_command():
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, "-m", "segcli.cli.app", "bench", *TINY, "--preset", "mit_test", "--json"],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert [r["preset"] for r in rows] == ["segformer_test", "mit_test"]


def test_tensorflow_import_noise_stays_off_the_terminal():
    """TF 2.19+ prints oneDNN/CUDA lines at import that TF_CPP_MIN_LOG_LEVEL does not reach; the CLI hides them."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    proc = subprocess.run([sys.executable, "-m", "segcli.cli.app", "bench", *TINY, "--json"],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    for noise in ("absl::InitializeLog", "oneDNN custom operations", "cuda drivers", "cuInit", "retracing"):
        assert noise not in proc.stderr


def test_peak_with_a_model_is_measured_and_gives_the_share_of_peak(segcli_home):
    args = ["bench", "--model", str(DEMO), "--backend", "tensorflow", "--image-size", "64", "--iters", "1", "--json"]
    result = CliRunner().invoke(app, [*args, "--peak"])
    assert result.exit_code == 0, result.output
    assert "measured now" in result.stderr
    row = json.loads(result.stdout)[0]
    assert row["fraction_of_peak"] == pytest.approx(row["gflops_per_image"] * row["img_per_s"] / json.loads(
        (segcli_home / "bench" / "peak.json").read_text()).popitem()[1]["gflops_per_s"], rel=0.02, abs=1e-4)


def test_bad_model_values_are_one_line_and_no_nan():
    """--model used to hand --batch-size 0 to OpenVINO (a traceback), time no call at --iters 0 (a NaN row, invalid
    JSON) and take --warmup -1; it now checks them as preset rows do."""
    for args, line in [
        (["--batch-size", "0"], "error: --batch-size 0: must be a positive integer."),
        (["--iters", "0"], "error: --iters 0: must be at least 1."),
        (["--iters", "-2", "--json"], "error: --iters -2: must be at least 1."),
        (["--warmup", "-1"], "error: --warmup -1: must be 0 or more."),
        (["--batch-size", "1,8"], "error: --batch-size 1,8: with --model give one value; run bench once per value."),
        (["--image-size", "64", "--image-size", "128"],
         "error: --image-size 64,128: with --model give one value; run bench once per value."),
        (["--split", "val"], "error: --split val: chooses the --data pairs to score; give --data too."),
        (["--data", ROOT / "samples", "--split", "test"], "error: --split test: use one of auto, val, train, all."),
    ]:
        result = CliRunner().invoke(app, ["bench", "--model", str(DEMO), *map(str, args)])
        assert result.exit_code == 2 and result.stdout == "", (args, result.output)
        assert result.stderr.strip().splitlines()[-1] == line and "Traceback" not in result.output


def test_a_model_alone_runs_as_predict_runs_it_and_says_what_it_is():
    from segcli.inference.runners import open_model

    result = CliRunner().invoke(app, ["bench", "--model", str(DEMO), "--image-size", "64", "--iters", "1", "--json"])
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)
    predict_runs = open_model(str(DEMO))  # predict's --backend auto --precision auto
    assert row["precision"] == predict_runs.precision and row["runtime"].startswith(predict_runs.backend)
    assert row["format"] == "segcli weights" and "segcli weights ..." in result.stderr  # not "exported"


def test_data_is_scored_on_the_split_eval_scores_and_the_table_says_which():
    data = ROOT / "samples"  # train/ (48 pairs) and val/ (12)
    scored = CliRunner().invoke(app, ["eval", str(data), "--model", str(DEMO), "--backend", "tensorflow",
                                      "--precision", "fp32", "--json"])
    want = json.loads(scored.stdout)
    assert want["split"] == "val" and want["images"] == 12
    args = ["bench", "--model", str(DEMO), "--formats", "keras", "--data", str(data), "--image-size", "64",
            "--iters", "1"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    (keras_row,) = [line.split("│") for line in result.stdout.splitlines() if line.startswith("│ keras")]
    assert keras_row[-2].strip() == f"{100 * want['miou']:.2f}"  # eval's percentage, not a fraction
    assert "mIoU %" in result.stdout
    assert f"mIoU % as segcli eval gives it, on the val split of {data} (12 images)" in " ".join(result.stdout.split())
    (row,) = json.loads(CliRunner().invoke(app, [*args, "--split", "all", "--json"]).stdout)
    assert (row["miou_split"], row["miou_images"]) == ("all", 60)


def test_help_examples_use_options_bench_has():
    import shlex

    import typer

    from segcli.cli.app import EXAMPLES

    command = typer.main.get_command(app).commands["bench"]
    for example in EXAMPLES["bench"]:
        command.make_context("bench", shlex.split(example)[2:])  # an unknown option raises NoSuchOption
    assert "--image-size 512" in " ".join(CliRunner().invoke(app, ["bench", "--help"]).stdout.split())


@pytest.mark.slow
def test_help_examples_run(monkeypatch):
    import shlex

    from segcli.cli.app import EXAMPLES

    monkeypatch.chdir(ROOT)  # they name samples/
    for example in EXAMPLES["bench"]:
        result = CliRunner().invoke(app, shlex.split(example)[1:])
        assert result.exit_code == 0, (example, result.output)
