"""segcli's OpenVINO conversion cache (``cached_runner``): a cache folder it cannot write, and the disk it takes."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.processes import COMMAND

pytest.importorskip("openvino")

DEMO = Path(__file__).resolve().parents[2] / "samples" / "demo_model"
UNWRITABLE = re.compile(r"warning: cannot write the OpenVINO cache folder (.+) \((.+)\), so every run converts the "
                        r"model again \(this one took \d+\.\d s\); set SEGCLI_HOME to a writable folder to keep the "
                        r"conversion\.")


@pytest.fixture(scope="module")
def demo():
    from segcli.models.load import load

    return load(str(DEMO)).model


def photos(folder: Path) -> Path:
    """Two small PNGs of different sizes in ``folder``."""
    folder.mkdir()
    for i, (h, w) in enumerate([(64, 48), (48, 64)]):
        cv2.imwrite(str(folder / f"{i}.png"), np.random.default_rng(i).integers(0, 256, (h, w, 3), np.uint8))
    return folder


def predict(home: Path, tmp_path: Path, out: str = "out") -> tuple[list, list]:
    """``segcli predict`` of the demo model with SEGCLI_HOME ``home``: its warning lines and the files it wrote."""
    images = tmp_path / "photos" if (tmp_path / "photos").is_dir() else photos(tmp_path / "photos")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "SEGCLI_HOME": str(home), "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([*COMMAND, "predict", str(images), "--model", str(DEMO), "--out", str(tmp_path / out)],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    return ([line for line in done.stderr.splitlines() if line.startswith("warning:")],
            sorted(p.name for p in (tmp_path / out).iterdir() if not p.name.startswith(".")))


def files_below(folder: Path) -> dict:
    return {p: p.stat().st_mtime_ns for p in folder.rglob("*")}


def test_segcli_home_below_a_file_converts_in_memory_with_one_warning(tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder\n")
    warnings, written = predict(blocker / "segcli", tmp_path)
    assert len(warnings) == 1 and UNWRITABLE.fullmatch(warnings[0]), warnings
    assert UNWRITABLE.fullmatch(warnings[0]).groups() == (str(blocker / "segcli" / "openvino"), "Not a directory")
    assert written == ["0.png", "0_overlay.jpg", "1.png", "1_overlay.jpg", "summary.json"]
    assert blocker.read_text() == "a file, not a folder\n"


def test_the_runner_of_an_unwritable_cache_answers_like_the_keras_model(demo, tmp_path, monkeypatch):
    from segcli.export.openvino_cache import cached_runner

    monkeypatch.setenv("SEGCLI_HOME", str(tmp_path / "file"))
    (tmp_path / "file").write_bytes(b"")
    runner = cached_runner(demo, None, "fp32")
    assert len(runner.warnings) == 1 and UNWRITABLE.fullmatch(f"warning: {runner.warnings[0]}")
    images = np.random.default_rng(5).integers(0, 256, (2, 64, 48, 3)).astype(np.uint8)
    expected = np.asarray(demo.quarter_logits(images.astype("float32")))
    assert np.abs(runner.predict_logits(images) - expected).max() <= 1e-4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def mount_read_only(folder: Path) -> bool:
    """Bind-mount ``folder`` read-only onto itself; False where this user may not mount."""
    try:
        bind = subprocess.run(["mount", "--bind", str(folder), str(folder)], capture_output=True, timeout=30)
    except OSError:
        return False
    if bind.returncode:
        return False
    if subprocess.run(["mount", "-o", "remount,bind,ro", str(folder)], capture_output=True, timeout=30).returncode:
        subprocess.run(["umount", str(folder)], timeout=30)
        return False
    return True


@pytest.mark.slow
def test_a_read_only_home_converts_in_memory_and_still_reads_a_cached_conversion(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    if not mount_read_only(home):
        pytest.skip("mount --bind is not permitted here")
    try:
        warnings, _ = predict(home, tmp_path, "out1")
        assert len(warnings) == 1 and UNWRITABLE.fullmatch(warnings[0]).groups() == (
            str(home / "openvino"), "Read-only file system")
    finally:
        subprocess.run(["umount", str(home)], timeout=30, check=True)
    assert predict(home, tmp_path, "out2")[0] == []  # writable: converted and cached
    cached = files_below(home)
    assert [p.name for p in cached if p.name == "model.xml"] == ["model.xml"]
    assert mount_read_only(home)
    try:
        warnings, written = predict(home, tmp_path, "out3")
        assert warnings == [] and len(written) == 5  # the cached IR and blobs were read, nothing converted
        assert files_below(home) == cached
    finally:
        subprocess.run(["umount", str(home)], timeout=30, check=True)


def test_blobs_stay_for_a_few_input_shapes_the_least_recently_used_go(demo, segcli_home):
    """OpenVINO writes one blob per compiled static shape; segcli keeps those of BLOB_SHAPES shapes.

    Within one run, shapes beyond those are compiled without a blob (so a run over many sizes keeps hitting its
    first ones); a later run's new shapes replace the least recently used ones.
    """
    from segcli.export.openvino_cache import cached_runner
    from segcli.export.openvino_format import BLOB_SHAPES

    def run(runner, shapes):
        for shape in shapes:
            runner.predict_logits(np.zeros(shape, np.uint8))

    def kept(blobs):
        return {folder.name: [p.name for p in folder.iterdir()] for folder in blobs.iterdir()}

    shapes = [(1, 32 + 8 * i, 64, 3) for i in range(BLOB_SHAPES + 2)]
    names = ["x".join(map(str, shape)) for shape in shapes]
    run(cached_runner(demo, None, "fp32"), shapes)
    (folder,) = (segcli_home / "openvino").iterdir()
    first = kept(folder / "blobs")
    assert sorted(first) == sorted(names[:BLOB_SHAPES])
    assert all(len(files) == 1 and files[0].endswith(".blob") for files in first.values())
    last = folder / "blobs" / names[BLOB_SHAPES - 1] / first[names[BLOB_SHAPES - 1]][0]
    mtime = last.stat().st_mtime_ns
    later = [(1, 64, 32 + 8 * i, 3) for i in range(BLOB_SHAPES - 1)]
    run(cached_runner(demo, None, "fp32"), [shapes[BLOB_SHAPES - 1], *later])  # a hit, then new shapes
    assert sorted(kept(folder / "blobs")) == sorted([names[BLOB_SHAPES - 1], *("x".join(map(str, s)) for s in later)])
    assert last.stat().st_mtime_ns == mtime  # read, not compiled again


#: Runs segcli's CLI in this process, then says whether TensorFlow was imported.
TF_PROBE = ("import sys\nfrom segcli.cli.app import main\nsys.argv = ['segcli', *sys.argv[1:]]\ntry:\n    main()\n"
            "except SystemExit as exit:\n    assert not exit.code, exit.code\n"
            "print('imported tensorflow:', 'tensorflow' in sys.modules)\n")


def run_probed(home: Path, cwd: Path, *args: str) -> tuple[bool, subprocess.CompletedProcess]:
    """``segcli ARGS`` in a fresh process: (TensorFlow imported, the finished process)."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(cwd), "SEGCLI_HOME": str(home), "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-c", TF_PROBE, *args], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    return done.stdout.strip().endswith("imported tensorflow: True"), done


def predict_masks(model: Path, images: Path, out: Path, home: Path, *extra: str) -> tuple[bool, dict]:
    """``segcli predict --backend openvino --precision fp32`` (and ``extra``) in a fresh process: (TensorFlow
    imported, masks)."""
    imported, _ = run_probed(home, out.parent, "predict", str(images), "--model", str(model), "--out", str(out),
                             "--backend", "openvino", "--precision", "fp32", "--no-overlay", *extra)
    masks = {p.name: cv2.imread(str(p), cv2.IMREAD_UNCHANGED) for p in sorted(out.glob("*.png"))}
    return imported, masks


@pytest.mark.slow
def test_a_second_run_of_a_checkpoint_opens_its_conversion_without_tensorflow_until_the_file_changes(demo, tmp_path):
    images, home = photos(tmp_path / "photos"), tmp_path / "home"
    checkpoint = tmp_path / "model.keras"
    demo.save(checkpoint)
    first_tf, first = predict_masks(checkpoint, images, tmp_path / "out1", home)
    second_tf, second = predict_masks(checkpoint, images, tmp_path / "out2", home)
    assert (first_tf, second_tf) == (True, False)
    assert first.keys() == second.keys() == {"0.png", "1.png"}
    assert all(np.array_equal(first[name], second[name]) for name in first)

    bias = demo.weights[-1]  # the classifier's bias: class 3 now wins nearly everywhere
    original = bias.numpy()
    try:
        bias.assign(original + 50.0 * np.eye(len(original), dtype=np.float32)[3])
        demo.save(checkpoint)
    finally:
        bias.assign(original)
    changed_tf, changed = predict_masks(checkpoint, images, tmp_path / "out3", home)
    _, fresh = predict_masks(checkpoint, images, tmp_path / "out4", tmp_path / "fresh_home")
    assert changed_tf  # a changed file is converted again, not matched to the old conversion
    assert all(np.array_equal(changed[name], fresh[name]) for name in fresh)
    assert all((changed[name] == 3).mean() > 0.9 and not np.array_equal(changed[name], first[name]) for name in first)


@pytest.mark.slow
def test_probabilities_slide_mode_test_time_scales_and_bench_need_no_tensorflow_on_a_cached_conversion(demo, tmp_path):
    import tensorflow as tf

    from segcli.inference.predictor import Predictor

    images, home = photos(tmp_path / "photos"), tmp_path / "home"
    checkpoint = tmp_path / "model.keras"
    demo.save(checkpoint)
    predict_masks(checkpoint, images, tmp_path / "warm", home)  # converts, with TensorFlow
    runs = {"probs": ["--save-probs"], "slide": ["--mode", "slide", "--tile", "32", "--stride", "16"],
            "tta": ["--tta", "flip,scales=0.75,1.0,1.25"]}
    for name, extra in runs.items():
        imported, masks = predict_masks(checkpoint, images, tmp_path / name, home, *extra)
        assert not imported, name
        assert {k: m.shape for k, m in masks.items()} == {"0.png": (64, 48), "1.png": (48, 64)}, name

    image = cv2.cvtColor(cv2.imread(str(images / "0.png")), cv2.COLOR_BGR2RGB)
    pixels = Predictor(demo).prepare(image).pixels
    quarter = demo.quarter_logits(pixels[None].astype(np.float32))
    expected = tf.nn.softmax(tf.image.resize(quarter, (64, 48), method="bilinear")[0]).numpy()
    probs = np.load(tmp_path / "probs" / "0_probs.npy")
    assert probs.dtype == np.float16 and probs.shape == expected.shape
    np.testing.assert_allclose(probs.astype(np.float32), expected, atol=3e-3)

    imported, bench = run_probed(home, tmp_path, "bench", "--model", str(checkpoint), "--backend", "openvino",
                                 "--precision", "fp32", "--image-size", "64", "--iters", "1", "--json")
    assert not imported
    assert "TensorFlow not loaded (nothing ran in it)" in bench.stderr
    (row,) = json.loads(bench.stdout.split("imported tensorflow")[0])
    assert row["runtime"].startswith("openvino") and row["img_per_s"] > 0 and row["mask_agreement"] is None
