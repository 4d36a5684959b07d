"""`segcli predict` as a user runs it: exit codes, one-line errors, JSON, and a kill -9 that loses nothing."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from typer.testing import CliRunner

from segcli.cli.app import app
from segcli.data.image_io import encode_png, read_mask, write_atomic
from tests.processes import interrupt
from tests.inference.predict_fixtures import BAD, GOOD, make_messy_dir, make_model, smooth


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict_cli")
    model, run, keras_file = make_model(root / "models")
    return {"run": run, "keras": keras_file, "images": make_messy_dir(root / "images"), "root": root}


def invoke(*args, env=None):
    return CliRunner().invoke(app, ["predict", *map(str, args)], env=env)


def one_line_error(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert result.exit_code == 2 and "Traceback" not in result.output
    return lines[0]


def test_messy_folder_exit_1_lists_failures_and_json(world, tmp_path):
    result = invoke(world["images"], "--out", tmp_path / "o", "--model", world["run"], "--json", "--batch-size", 4)
    assert result.exit_code == 1
    summary = json.loads(result.stdout)
    assert summary["count"]["written"] == len(GOOD) and summary["count"]["failed"] == len(BAD)
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert sorted(warnings) == sorted(f"warning: skipped {e['error']}" for e in summary["failures"])
    assert any("corrupt.jpg: not a readable image" in w for w in warnings)
    assert any("empty.png: empty file (0 bytes)" in w for w in warnings)
    assert any("notes.png: not a readable image" in w for w in warnings)
    table = invoke(world["images"], "--out", tmp_path / "o", "--model", world["run"])
    assert table.exit_code == 1  # still failing inputs; the finished ones are skipped
    assert "skipped (done before)" in table.stdout and f"failed: {world['images'] / 'corrupt.jpg'}" in table.stdout


def test_good_inputs_exit_0_and_strict_exit_1(world, tmp_path):
    good = [str(world["images"] / name) for name in ("plain.jpg", "alpha.png")]
    result = invoke(*good, "--out", tmp_path / "ok", "--model", world["keras"], "--no-overlay")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "ok").iterdir()) == [".segcli-predict.json", "alpha.png", "plain.png",
                                                                   "summary.json"]
    strict = invoke(world["images"], "--out", tmp_path / "s", "--model", world["run"], "--strict")
    assert strict.exit_code == 1
    assert json.loads((tmp_path / "s" / "summary.json").read_text())["count"]["failed"] == 1


def test_batch_size_defaults_to_one_on_a_cpu_and_gives_the_same_masks_as_a_batch_of_four(world, tmp_path):
    import tensorflow as tf

    good = [str(world["images"] / name) for name in GOOD]
    expected = 8 if tf.config.list_physical_devices("GPU") else 1  # batch 1 was fastest end to end on CPUs
    masks = {}
    for backend in ("auto", "tensorflow"):
        for batch in (None, 4):
            out = tmp_path / f"{backend}-{batch}"
            result = invoke(*good, "--out", out, "--model", world["run"], "--backend", backend, "--no-overlay",
                            "--json", *(("--batch-size", batch) if batch else ()))
            assert result.exit_code == 0, result.output
            summary = json.loads(result.stdout)
            assert summary["batch_size"] == (batch or (expected if backend == "tensorflow" else 1))
            masks[backend, batch] = {p.name: read_mask(p) for p in out.glob("*.png")}
        assert masks[backend, None].keys() == masks[backend, 4].keys() and len(masks[backend, 4]) == len(GOOD)
        assert all(np.array_equal(masks[backend, None][k], masks[backend, 4][k]) for k in masks[backend, 4])


def test_default_model_not_cached_names_the_alternatives(world, tmp_path, monkeypatch):
    monkeypatch.delenv("SEGCLI_MODEL", raising=False)
    line = one_line_error(invoke(world["images"] / "plain.jpg", "--out", tmp_path / "o"))
    assert line.startswith("error: Model 'segformer_b0_ade20k_512' is not in the weights cache. Run `segcli weights "
                           "fetch segformer_b0_ade20k_512` (needs network), or `segcli weights import CHECKPOINT_DIR "
                           "--as segformer_b0_ade20k_512`, or ")  # the rest is the resolver's, tested there


def test_segcli_model_env_overrides_default(world, tmp_path):
    result = invoke(world["images"] / "plain.jpg", "--out", tmp_path / "o", "--json",
                    env={"SEGCLI_MODEL": str(world["run"])})
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["model"] == str(world["run"])


def test_one_line_errors(world, tmp_path):
    assert one_line_error(invoke(world["images"], "--out", tmp_path / "o", "--model", tmp_path / "missing.keras")) \
        .startswith(f"error: {tmp_path / 'missing.keras'}: no such file or folder. Pass a run directory, a .keras "
                    f"file")  # the rest is the resolver's, tested there
    assert one_line_error(invoke(world["images"], "--out", tmp_path / "o", "--model", "segformer_b0")).startswith(
        "error: Preset 'segformer_b0' has no trained segmentation head, so its masks would be random;")
    assert one_line_error(invoke(world["images"], "--out", tmp_path / "o", "--model", tmp_path / "m.onnx")) \
        .startswith(f"error: {tmp_path / 'm.onnx'}: no such file")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert one_line_error(invoke(empty, "--out", tmp_path / "o", "--model", world["run"])) == (
        f"error: no images found in {empty} (looked for .jpg, .jpeg, .png, .bmp, .tif, .tiff, .webp; files under "
        f"the output folder are never inputs).")
    assert one_line_error(invoke(tmp_path / "nothing", "--out", tmp_path / "o", "--model", world["run"])) == \
        f"error: {tmp_path / 'nothing'}: no such file or folder."
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert one_line_error(invoke(world["images"], "--out", blocker / "o", "--model", world["run"])) == \
        f"error: --out {blocker / 'o'}: {blocker} is a file, not a folder; choose a folder for the outputs."
    assert one_line_error(invoke(world["images"], "--out", blocker, "--model", world["run"])) == \
        f"error: --out {blocker}: it is a file, not a folder; choose a folder for the outputs."
    assert one_line_error(invoke(world["images"], "--out", tmp_path / "o", "--model", world["run"], "--shard",
                                 "4/4")) == \
        "error: --shard 4/4: use K/N with 0 <= K < N, for example 0/4 ... 3/4."
    assert one_line_error(invoke(world["images"], "--out", tmp_path / "o", "--model", world["run"], "--mode",
                                 "slide", "--tile", "100")) == \
        "error: --tile 100: must be a multiple of 32, at least 32."
    assert one_line_error(invoke(world["images"], "--out", tmp_path / "o", "--model", world["run"], "--alpha",
                                 "2")) == "error: --alpha 2.0: must be within 0..1."


def test_a_corrupt_exported_model_is_one_line(world, tmp_path):
    fake = tmp_path / "m.tflite"
    fake.write_bytes(b"0")
    line = one_line_error(invoke(world["images"], "--out", tmp_path / "o", "--model", fake))
    assert line.startswith(f"error: {fake}: the TFLite interpreter cannot load it")


def test_backend_and_precision_that_do_not_fit_are_one_line(world, tmp_path):
    assert one_line_error(invoke(world["images"], "--out", tmp_path / "o", "--model", world["run"],
                                 "--backend", "onnxruntime")).startswith("error: --backend onnxruntime runs exported "
                                                                        ".onnx files")
    assert one_line_error(invoke(world["images"], "--out", tmp_path / "o", "--model", world["run"],
                                 "--backend", "tensorflow", "--precision", "bf16")) == (
        "error: --precision bf16 on backend tensorflow: TensorFlow runs fp32 here (its bf16 was measured "
        "no faster on CPU); use backend openvino.")


def test_kill_9_then_rerun_finishes_without_recomputing(world, tmp_path):
    images = tmp_path / "many"
    for i in range(120):
        write_atomic(images / f"img_{i:03d}.png", encode_png(smooth(64, 64, i)))
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "segcli.cli.app", "predict", str(images), "--out", str(out), "--model",
           str(world["run"]), "--batch-size", "1", "--workers", "1"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and len(list(out.glob("img_*_overlay.jpg"))) < 3:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = {p: p.stat().st_mtime_ns for p in out.glob("img_*.png")}
    assert 0 < len(finished) < 120, "the run must be killed part-way"
    assert not (out / "summary.json").exists()

    rerun = subprocess.run(cmd + ["--json"], env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    summary = json.loads(rerun.stdout)
    masks = sorted(out.glob("img_*[0-9].png"))
    assert len(masks) == 120 and all(read_mask(m).shape == (64, 64) for m in masks)
    assert all(p.stat().st_mtime_ns == t for p, t in finished.items())  # nothing finished was rewritten
    assert summary["count"]["skipped"] >= len(finished)
    assert summary["count"]["written"] + summary["count"]["skipped"] == 120
    visible = [p for p in out.iterdir() if not p.name.startswith(".")]
    assert len(visible) == 241 and np.all([p.stat().st_size > 0 for p in visible])


def test_videos_from_the_command_line_one_warning_line_each(world, tmp_path):
    from tests.inference.test_video import FRAMES, decode, video_info, write_video

    clip = write_video(tmp_path / "clip.mp4")
    avi = write_video(tmp_path / "long.avi", fourcc="MJPG").read_bytes()
    (tmp_path / "cut.avi").write_bytes(avi[:len(avi) * 6 // 10])
    mp4 = clip.read_bytes()
    (tmp_path / "broken.mp4").write_bytes(mp4[:len(mp4) // 2])
    readable = len(decode(tmp_path / "cut.avi"))
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "segcli.cli.app", "predict", str(clip), str(tmp_path / "cut.avi"),
           str(tmp_path / "broken.mp4"), "--out", str(out), "--model", str(world["run"]), "--smooth", "0.5"]
    done = subprocess.run(cmd, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 1, done.stderr  # the unreadable file fails the run, as an unreadable image does
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert [line for line in lines if not line.startswith(("predict ", "summary: "))] == [
        f"warning: {tmp_path / 'cut.avi'}: the video ends after {readable} of the {FRAMES} frames its header gives "
        f"(truncated or damaged); predicted the {readable} sampled frames that were read.",
        f"warning: skipped {tmp_path / 'broken.mp4'}: not a readable video (FFmpeg cannot open it: truncated, "
        f"damaged or not a video); replace it or leave it out."]  # nothing from FFmpeg or OpenCV's own logs
    assert "video clip.mp4" in done.stdout and "(truncated)" in done.stdout
    assert video_info(out / "clip_overlay.mp4")[:2] == (True, FRAMES)
    assert len(list((out / "cut").glob("*.png"))) == readable

    again = invoke(clip, "--out", out, "--model", world["run"], "--smooth", "0.5", "--json")
    assert again.exit_code == 0, again.output
    frames = json.loads(again.stdout)["videos"][0]["frames"]
    assert frames["skipped"] == FRAMES and frames["written"] == 0


def test_video_and_tta_flag_errors(world, tmp_path):
    image = world["images"] / "plain.jpg"
    assert one_line_error(invoke(image, "--out", tmp_path, "--model", world["run"], "--every", "0")) == \
        "error: --every 0: must be at least 1 (1 = every frame)."
    assert one_line_error(invoke(image, "--out", tmp_path, "--model", world["run"], "--smooth", "1")) == \
        "error: --smooth 1.0: must be within 0 (off) and 1 (exclusive); 0.5 to 0.8 suits most clips."
    assert one_line_error(invoke(image, "--out", tmp_path, "--model", world["run"], "--tta", "flip,7")) == \
        "error: --tta 'flip,7': use flip, scales=S1,S2,... or both, for example flip,scales=0.75,1.0,1.25."
    assert one_line_error(invoke(tmp_path / "gone.mp4", "--out", tmp_path, "--model", world["run"])) == \
        f"error: {tmp_path / 'gone.mp4'}: no such file or folder."


def test_video_options_on_images_alone_say_they_are_ignored(world, tmp_path):
    result = invoke(world["images"] / "plain.jpg", "--out", tmp_path / "o", "--model", world["run"], "--every", "2")
    assert result.exit_code == 0, result.output
    assert "warning: no input is a video, so the video options are ignored (every 2, smooth 0)." in result.stderr
    assert (tmp_path / "o" / "plain.png").is_file()

def test_tta_flip_through_the_cli(world, tmp_path):
    result = invoke(world["images"] / "plain.jpg", "--out", tmp_path, "--model", world["run"], "--tta",
                    "flip,scales=0.75,1.0", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["tta"] == "flip,scales=0.75,1" and summary["count"]["written"] == 1
    assert read_mask(tmp_path / "plain.png").shape == GOOD["plain.jpg"]


def snapshot(folder) -> dict:
    """Every file under ``folder``: (mtime, bytes)."""
    return {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in folder.rglob("*") if p.is_file()}


def test_an_out_made_with_another_model_or_mode_is_refused_untouched_and_overwrite_recomputes(world, tmp_path):
    good = [str(world["images"] / name) for name in ("plain.jpg", "sub/deeper/nested.png")]
    out = tmp_path / "out"
    assert invoke(*good, "--out", out, "--model", world["run"]).exit_code == 0
    before = snapshot(out)
    old_masks = {name: read_mask(out / name).tobytes() for name in ("plain.png", "nested.png")}
    _, _, other = make_model(tmp_path / "other", seed=12)
    sha = {m: hashlib.sha256(m.read_bytes()).hexdigest()[:12] for m in (world["run"] / "best.keras", other)}
    fix = "pass --overwrite to recompute them, or choose another --out."
    assert one_line_error(invoke(*good, "--out", out, "--model", other)) == (
        f"error: --out {out}: its files were made with --model {world['run']} (sha256 "
        f"{sha[world['run'] / 'best.keras']}), this run uses {other} (sha256 {sha[other]}); {fix}")
    assert one_line_error(invoke(*good, "--out", out, "--model", world["run"], "--mode", "slide")) == (
        f"error: --out {out}: its files were made with --mode whole, this run uses slide; {fix}")
    assert snapshot(out) == before  # masks, overlays, summary.json: the same bytes, never rewritten

    resumed = invoke(*good, "--out", out, "--model", world["run"], "--batch-size", "2", "--json")
    assert resumed.exit_code == 0, resumed.output
    assert json.loads(resumed.stdout)["count"] == {"inputs": 2, "written": 0, "skipped": 2, "failed": 0,
                                                   "not_processed": 0}
    assert {p: v for p, v in snapshot(out).items() if p.name != "summary.json"} == \
        {p: v for p, v in before.items() if p.name != "summary.json"}

    forced = invoke(*good, "--out", out, "--model", other, "--overwrite", "--json")
    assert forced.exit_code == 0, forced.output
    summary = json.loads(forced.stdout)
    assert summary["count"]["written"] == 2 and summary["model"] == str(other)
    assert invoke(*good, "--out", tmp_path / "fresh", "--model", other).exit_code == 0
    masks = {name: read_mask(out / name).tobytes() for name in ("plain.png", "nested.png")}
    assert masks == {name: read_mask(tmp_path / "fresh" / name).tobytes() for name in masks}  # the other model's
    assert masks != old_masks
    assert one_line_error(invoke(*good, "--out", out, "--model", world["run"])).startswith(
        f"error: --out {out}: its files were made with --model {other} (sha256 {sha[other]}), this run uses")


def test_max_side_below_32_is_one_line_before_anything_is_written(world, tmp_path):
    for value in ("0", "-5", "1"):
        assert one_line_error(invoke(world["images"], "--out", tmp_path / "o", "--model", world["run"],
                                     "--max-side", value)) == \
            f"error: --max-side {value}: must be at least 32."
    assert not (tmp_path / "o").exists()


def test_the_bar_s_rate_leaves_out_inputs_an_earlier_run_finished(monkeypatch):
    """A resumed run reads 100 finished masks back in a blink; its img/s is the 1 image it predicted."""
    import io
    import re
    import time

    from rich.console import Console

    from segcli.cli import predict_cmd

    shown = io.StringIO()
    monkeypatch.setattr(predict_cmd, "err", Console(file=shown, width=150, force_terminal=False))
    with predict_cmd.progress_bar("predict") as (on_start, on_progress):
        on_start(101)
        on_progress(100, done_before=True)
        time.sleep(0.25)
        on_progress(1)
    rate = float(re.search(r"([\d.]+) img/s", shown.getvalue()).group(1))
    assert "101/101" in shown.getvalue()
    assert 0 < rate <= 1 / 0.25  # one image in at least 0.25 s; counting the 100 would give > 100 img/s


def test_an_earlier_predict_output_inside_the_input_is_skipped_with_one_note(world, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    images = tmp_path / "in1"
    for name in ("plain.jpg", "gray.png"):
        write_atomic(images / name, (world["images"] / name).read_bytes())
    assert invoke("in1", "--out", "in1/masks", "--model", world["run"]).exit_code == 0
    result = invoke("in1", "--out", "other", "--model", world["run"], "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["count"]["inputs"] == 2  # not the 2 masks and 2 overlays in in1/masks
    assert [line for line in result.stderr.splitlines() if line.startswith("note:")] == [
        "note: skipped in1/masks: an earlier predict wrote it (it holds .segcli-predict.json); name it as an input "
        "to predict its images."]
    named = invoke("in1/masks", "in1/masks/plain.png", "--out", "named", "--model", world["run"], "--json")
    assert json.loads(named.stdout)["count"]["inputs"] == 4 and "note:" not in named.stderr


def test_max_side_in_slide_mode_and_inputs_with_one_output_name_are_one_line(world, tmp_path, monkeypatch):
    image = world["images"] / "plain.jpg"
    for value in ("1024", "2048"):
        assert one_line_error(invoke(image, "--out", tmp_path / "o", "--model", world["run"], "--mode", "slide",
                                     "--max-side", value)) == \
            f"error: --max-side {value}: only whole mode uses a max side; set mode to whole, or leave the max side out."
    assert not (tmp_path / "o").exists()
    monkeypatch.chdir(tmp_path)
    for folder in ("ca", "cb"):
        write_atomic(tmp_path / folder / "x.png", (world["images"] / "gray.png").read_bytes())
    assert one_line_error(invoke("ca", "cb", "--out", "o", "--model", world["run"])) == (
        "error: ca/x.png and cb/x.png would both write o/x.png: outputs are named after each input's path relative "
        "to the folder or glob it came from (or its file name), and both are x.png; predict them into separate --out "
        "folders, or rename one.")


def test_the_eta_counts_only_what_this_run_predicts():
    """100 masks an earlier run finished are read back at once; 1 image then takes 10 s: 9 left take 90 s, not
    Rich's speed-based guess, which counts the 100 as work done in the first instant."""
    import io

    from rich.console import Console
    from rich.progress import Progress, TimeRemainingColumn

    from segcli.cli.predict_cmd import eta_seconds, new_rate

    now = [0.0]
    bar = Progress(TimeRemainingColumn(), console=Console(file=io.StringIO()), get_time=lambda: now[0])
    task_id = bar.add_task("predict", total=110)
    task = bar.tasks[0]
    assert eta_seconds(task) is None
    for i in range(1, 101):  # as predict reports them: one at a time, within a tenth of a second
        now[0] = i / 1000
        bar.update(task_id, advance=1, done_before=i)
    now[0] = 10.0
    bar.update(task_id, advance=1, done_before=100)
    assert new_rate(task) == 0.1 and eta_seconds(task) == 90.0
    assert TimeRemainingColumn().render(task).plain == "0:00:01"  # Rich's: 100 images in 10 s, 9 left


@pytest.mark.slow
def test_ctrl_c_exits_130_with_one_line_saying_what_is_written(tmp_path):
    import cv2

    photo = cv2.imread("samples/photos/coffee.jpg")
    scale = 512 / max(photo.shape[:2])
    photo = cv2.resize(photo, (round(photo.shape[1] * scale), round(photo.shape[0] * scale)))
    images = tmp_path / "photos"
    images.mkdir()
    for i in range(40):
        cv2.imwrite(str(images / f"p{i:02d}.jpg"), photo)
    out = tmp_path / "o"
    cmd = [sys.executable, "-m", "segcli.cli.app", "predict", str(images), "--out", str(out), "--model",
           "samples/demo_model"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    lines = []
    for wait_for in (3, 6):  # the second run goes on from the first
        before = len(list(out.glob("p*[0-9].png")))
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 120
        while time.time() < deadline and len(list(out.glob("p*_overlay.jpg"))) < before + wait_for:
            time.sleep(0.01)
        stderr = interrupt(proc)
        assert proc.returncode == 130, stderr[-2000:]
        assert "Traceback" not in stderr and stderr.rstrip().splitlines()[-1].startswith("interrupted: ")
        masks = len(list(out.glob("p*[0-9].png")))
        assert before < masks < 40, "the run must be interrupted part-way"
        lines.append([line for line in stderr.splitlines() if line.startswith("interrupted")])
        done_before = f" ({before} done before)" if before else ""
        assert lines[-1] == [f"interrupted: {masks - before} of 40 written to {out}{done_before}; run the same "
                             f"command again to continue."]
    rerun = subprocess.run(cmd + ["--json"], env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert json.loads(rerun.stdout)["count"]["skipped"] == masks
