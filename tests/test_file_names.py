"""File names that are not UTF-8 (a Latin-1 ``café.png`` copied from an old disk) go through every command.

Python decodes such names to lone surrogates (PEP 383). segcli must read and write those files, keep the exact
bytes in what it writes (run splits, predict's outputs), write valid UTF-8 JSON and HTML, and print the name's
own bytes, as ls and find do, never a UnicodeEncodeError traceback.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.processes import COMMAND

NAMES = [b"caf\xe9", b"bad\xffname", b"plain", b"other"]  # Latin-1 é and a byte no encoding uses
DEMO = Path(__file__).resolve().parents[1] / "samples" / "demo_model"


def write_png(path: bytes, array: np.ndarray) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    ok, data = cv2.imencode(".png", array)
    assert ok
    with open(path, "wb") as f:  # cv2.imwrite cannot take such a name
        f.write(data.tobytes())


def segcli(*args, cwd) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_COLOR": "1", "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONIOENCODING": "utf-8",
           "SEGCLI_HOME": os.fsdecode(bytes(cwd) + b"/home")}
    proc = subprocess.run(COMMAND + [os.fsdecode(a) if isinstance(a, bytes) else str(a) for a in args],
                          cwd=cwd, env=env, capture_output=True, timeout=300)
    shown = (proc.stdout + proc.stderr).decode("utf-8", "replace")
    assert b"Traceback" not in proc.stdout + proc.stderr, shown
    return proc


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = bytes(tmp_path_factory.mktemp("names"))
    rng = np.random.default_rng(0)
    for split in (b"train", b"val"):
        for name in NAMES:
            write_png(root + b"/ds/" + split + b"/images/" + name + b".png", rng.integers(0, 256, (48, 48, 3), np.uint8))
            write_png(root + b"/ds/" + split + b"/masks/" + name + b".png", rng.integers(0, 3, (48, 48), np.uint8))
    return root


def test_predict_writes_each_name_as_its_bytes_and_valid_json(data):
    proc = segcli("predict", b"ds/val/images", "--model", DEMO, "--out", b"out", cwd=data)
    assert proc.returncode == 0
    written = set(os.listdir(data + b"/out"))
    assert {name + b".png" for name in NAMES} | {name + b"_overlay.jpg" for name in NAMES} <= written
    with open(data + b"/out/summary.json", "rb") as f:
        summary = json.load(f)  # strict UTF-8 JSON; the names come back as Python decodes them from the disk
    inputs = sorted(os.fsencode(entry["input"]) for entry in summary["images"])
    assert inputs == sorted(name + b".png" for name in NAMES)


def test_shards_split_the_names_between_them(data):
    outs = []
    for shard in ("0/2", "1/2"):
        assert segcli("predict", b"ds/train/images", "--model", DEMO, "--out", b"shards", "--shard", shard,
                      cwd=data).returncode == 0
    for k in (0, 1):
        with open(data + b"/shards/summary.shard-%d-of-2.json" % k, "rb") as f:
            outs.append({os.fsencode(e["input"]) for e in json.load(f)["images"]})
    assert not outs[0] & outs[1] and outs[0] | outs[1] == {name + b".png" for name in NAMES}


def test_a_bad_file_is_named_by_its_own_bytes(data):
    os.makedirs(data + b"/broken", exist_ok=True)
    open(data + b"/broken/emp\xfety.png", "wb").close()
    write_png(data + b"/broken/fine.png", np.zeros((40, 40, 3), np.uint8))
    proc = segcli("predict", b"broken", "--model", DEMO, "--out", b"broken_out", cwd=data)
    assert proc.returncode == 1  # some inputs failed
    assert b"warning: skipped broken/emp\xfety.png: empty file (0 bytes)" in proc.stderr
    assert b"failed: broken/emp\xfety.png: empty file (0 bytes)" in proc.stdout


@pytest.mark.slow
def test_train_keeps_the_names_in_its_splits_and_eval_reports_them(data):
    proc = segcli("train", b"ds", "--preset", "segformer_test", "--image-size", "32", "--epochs", "1", "--out",
                  b"run", cwd=data)
    assert proc.returncode == 0, proc.stderr.decode("utf-8", "replace")
    with open(data + b"/run/splits/val.txt", "rb") as f:
        assert sorted(f.read().splitlines()) == sorted(b"val/images/%s.png\tval/masks/%s.png" % (n, n) for n in NAMES)
    proc = segcli("eval", b"ds", "--model", b"run", "--report", b"report.html", "--worst", "4", cwd=data)
    assert proc.returncode == 0
    with open(data + b"/report.html", "rb") as f:
        page = f.read().decode("utf-8")  # valid UTF-8: undecodable bytes are shown as U+FFFD
    assert "caf\ufffd.png" in page and "bad\ufffdname.png" in page


def test_a_name_with_a_newline_stays_one_escaped_line(tmp_path):
    """A script wrote "bad<newline>name.png" (a broken one) beside a good image: its warning and failed lines show the
    newline as \\n, so each is still one line a person (or grep) can read."""
    images = tmp_path / "in"
    images.mkdir()
    (images / "bad\nname.png").write_bytes(b"not a png")
    write_png(bytes(images / "good.png"), np.zeros((32, 32, 3), np.uint8))
    proc = segcli("predict", images, "--model", DEMO, "--out", tmp_path / "out", cwd=tmp_path)
    assert proc.returncode == 1
    why = "not a readable image (corrupt or unsupported format); remove or replace it."
    assert f"warning: skipped {images}/bad\\nname.png: {why}" in proc.stderr.decode().splitlines()
    assert f"failed: {images}/bad\\nname.png: {why}" in proc.stdout.decode().splitlines()
    assert (tmp_path / "out" / "good.png").is_file()
