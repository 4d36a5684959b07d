"""Video input: frame masks equal the model's argmax per decoded frame, the overlay video, --every, --smooth
(against an EMA reference), resuming, and truncated or broken files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from segcli.data.image_io import read_mask
from segcli.inference.predict import PredictOptions, run_predict
from segcli.inference.tta import parse_tta
from tests.inference.predict_fixtures import make_model, smooth

FRAMES, H, W, FPS = 12, 48, 64, 10.0


def write_video(path, frames=FRAMES, fourcc="mp4v"):
    """A panning shot: a smooth random image rolled 5 px per frame, written by OpenCV's FFmpeg writer."""
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), FPS, (W, H))
    assert writer.isOpened()
    base = smooth(H, W * 2, 21)
    for i in range(frames):
        writer.write(np.ascontiguousarray(base[:, 5 * i:5 * i + W, ::-1]))
    writer.release()
    return path


def decode(path):
    """Every frame as RGB, read independently of segcli."""
    import cv2

    cap, frames = cv2.VideoCapture(str(path)), []
    while True:
        ok, bgr = cap.read()
        if not ok:
            return frames
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))


def video_info(path):
    import cv2

    cap = cv2.VideoCapture(str(path))
    return (cap.isOpened(), int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), round(cap.get(cv2.CAP_PROP_FPS), 3),
            (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))))


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from segcli.inference.runners import open_model

    root = tmp_path_factory.mktemp("video")
    model, run, _ = make_model(root / "models")
    clip = write_video(root / "clip.mp4")
    return {"model": model, "run": run, "clip": clip, "frames": decode(clip), "root": root,
            "source": open_model(str(run), precision="fp32")}


def smoothed_reference(model, frames, alpha):
    """EMA of the Keras model's quarter-resolution logits (frames resized to 64x64 as whole mode does), upsampled."""
    import cv2
    import tensorflow as tf

    ema, masks = None, []
    for frame in frames:
        x = cv2.resize(frame, (64, 64), interpolation=cv2.INTER_LINEAR)  # 48x64 -> the nearest multiples of 32
        z = model.quarter_logits(x[None].astype(np.float32))[0].numpy()
        ema = z if ema is None else alpha * ema + (1 - alpha) * z
        masks.append(tf.argmax(tf.image.resize(ema[None], (H, W), method="bilinear")[0], -1).numpy())
    return masks


def test_frames_overlay_and_summary(world, tmp_path):
    out = tmp_path / "out"
    summary = run_predict([world["clip"]], world["source"], PredictOptions(out=out, batch_size=5))
    names = sorted(p.name for p in (out / "clip").iterdir())
    assert names == [f"{i:06d}.png" for i in range(1, FRAMES + 1)]
    for i, expected in enumerate(smoothed_reference(world["model"], world["frames"], 0.0)):
        mask = read_mask(out / "clip" / f"{i + 1:06d}.png")
        assert mask.shape == (H, W) and (mask == expected).mean() > 0.995
    assert len({read_mask(out / "clip" / n).tobytes() for n in names}) > 1  # the shot pans: masks differ
    assert video_info(out / "clip_overlay.mp4") == (True, FRAMES, FPS, (W, H))
    video = summary["videos"][0]
    assert video["frames"] == {"in_header": FRAMES, "read": FRAMES, "written": FRAMES, "skipped": 0}
    assert video["outputs"] == {"masks": "clip/", "overlay": "clip_overlay.mp4"} and not video["truncated"]
    assert summary["count"] == {"inputs": 1, "written": 1, "skipped": 0, "failed": 0, "not_processed": 0}
    assert sum(c["fraction"] for c in video["classes"]) == pytest.approx(1.0, abs=1e-4)
    assert json.loads((out / "summary.json").read_text())["videos"][0]["frames"] == video["frames"]
    assert [p.name for p in out.rglob("*") if p.name.startswith(".")] == [".segcli-predict.json"]


def test_every_samples_frames_and_keeps_the_duration(world, tmp_path):
    out = tmp_path / "out"
    run_predict([world["clip"]], world["source"], PredictOptions(out=out, every=5, overlay=True))
    assert sorted(p.name for p in (out / "clip").iterdir()) == ["000001.png", "000006.png", "000011.png"]
    assert video_info(out / "clip_overlay.mp4") == (True, 3, 2.0, (W, H))


def test_smooth_is_an_ema_of_quarter_logits(world, tmp_path):
    out = tmp_path / "out"
    run_predict([world["clip"]], world["source"], PredictOptions(out=out, smooth=0.7, batch_size=4))
    expected = smoothed_reference(world["model"], world["frames"], 0.7)
    got = [read_mask(out / "clip" / f"{i + 1:06d}.png") for i in range(FRAMES)]
    for g, e in zip(got, expected):
        assert (g == e).mean() > 0.995
    unsmoothed = smoothed_reference(world["model"], world["frames"], 0.0)
    assert np.mean([(g != u).mean() for g, u in zip(got, unsmoothed)]) > 0.01  # smoothing did something


@pytest.mark.parametrize("smooth_alpha", [0.0, 0.5])
def test_resume_recomputes_only_missing_frames(world, tmp_path, smooth_alpha):
    out = tmp_path / "out"
    options = dict(smooth=smooth_alpha, batch_size=3)
    run_predict([world["clip"]], world["source"], PredictOptions(out=out, **options))
    first = {p.name: read_mask(p) for p in (out / "clip").iterdir()}
    for n in (6, 7, 8):
        (out / "clip" / f"{n:06d}.png").unlink()
    (out / "clip_overlay.mp4").unlink()
    kept = {p: p.stat().st_mtime_ns for p in (out / "clip").iterdir()}
    summary = run_predict([world["clip"]], world["source"], PredictOptions(out=out, **options))
    assert summary["videos"][0]["frames"]["written"] == 3 and summary["videos"][0]["frames"]["skipped"] == 9
    assert all(p.stat().st_mtime_ns == t for p, t in kept.items())
    for name, mask in first.items():  # with smoothing too: the warm-up refolds the frames before the gap
        assert (read_mask(out / "clip" / name) == mask).mean() > 0.999, name
    assert video_info(out / "clip_overlay.mp4")[:2] == (True, FRAMES)


def test_tta_runs_on_video(world, tmp_path):
    summary = run_predict([world["clip"]], world["source"],
                          PredictOptions(out=tmp_path, tta=parse_tta("flip"), smooth=0.5, every=4))
    assert summary["tta"] == "flip" and summary["videos"][0]["frames"]["written"] == 3


def test_truncated_and_broken_videos(world, tmp_path):
    data = write_video(tmp_path / "long.avi", frames=FRAMES, fourcc="MJPG").read_bytes()
    (tmp_path / "cut.avi").write_bytes(data[:len(data) * 6 // 10])  # AVI frames stay readable
    readable = len(decode(tmp_path / "cut.avi"))
    assert 0 < readable < FRAMES
    mp4 = world["clip"].read_bytes()
    (tmp_path / "broken.mp4").write_bytes(mp4[:len(mp4) // 2])  # OpenCV's mp4 has its index at the end: unreadable
    warnings = []
    out = tmp_path / "out"
    summary = run_predict([tmp_path / "cut.avi", tmp_path / "broken.mp4"], world["source"], PredictOptions(out=out),
                          on_warning=warnings.append)
    assert warnings == [
        f"{tmp_path / 'cut.avi'}: the video ends after {readable} of the {FRAMES} frames its header gives "
        f"(truncated or damaged); predicted the {readable} sampled frames that were read.",
        f"skipped {tmp_path / 'broken.mp4'}: not a readable video (FFmpeg cannot open it: truncated, damaged or not a "
        f"video); replace it or leave it out."]
    assert len(list((out / "cut").iterdir())) == readable and video_info(out / "cut_overlay.mp4")[1] == readable
    assert summary["count"]["failed"] == 1 and summary["videos"][0]["truncated"]
    assert summary["failures"][0]["input"] == "broken.mp4" and not (out / "broken").exists()


def test_img_per_s_counts_the_images_a_run_computes_beside_a_finished_video(world, tmp_path):
    """A rerun that predicts one image and finds the video done rates that image (it reported 0.0 img/s)."""
    from segcli.data.image_io import encode_png, write_atomic

    inputs, out = [world["clip"], tmp_path / "photo.png"], tmp_path / "out"
    write_atomic(inputs[1], encode_png(world["frames"][0]))
    first = run_predict(inputs, world["source"], PredictOptions(out=out, overlay=False))
    assert first["img_per_s"] > 0 and first["count"]["written"] == 2
    (out / "photo.png").unlink()
    again = run_predict(inputs, world["source"], PredictOptions(out=out, overlay=False))
    assert again["count"] == {"inputs": 2, "written": 1, "skipped": 1, "failed": 0, "not_processed": 0}
    assert again["img_per_s"] > 0
    assert run_predict(inputs, world["source"], PredictOptions(out=out, overlay=False))["img_per_s"] is None
