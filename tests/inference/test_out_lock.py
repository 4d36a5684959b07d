"""Two predicts into one --out: the second stops at once with one line (both computed every mask before);
shards of one job still share the folder, and a killed holder leaves nothing that blocks the next run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from segcli.inference.out_lock import hold, lock_path
from tests.processes import COMMAND

DEMO = Path(__file__).resolve().parents[2] / "samples" / "demo_model"


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(2):
        cv2.imwrite(str(folder / f"{i}.png"), np.random.default_rng(i).integers(0, 256, (40, 56, 3), np.uint8))
    return folder


def predict(photos: Path, out: Path, *args) -> subprocess.CompletedProcess:
    env = {**os.environ, "SEGCLI_HOME": str(out.parent / "home"), "NO_COLOR": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([*COMMAND, "predict", str(photos), "--model", str(DEMO), "--out", str(out), *args],
                          env=env, capture_output=True, text=True, timeout=600)


def test_a_second_predict_into_a_held_out_stops_with_one_line(photos, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    with hold(out):
        done = predict(photos, out)
        assert sorted(p.name for p in out.iterdir()) == [".segcli-predict.lock"]  # nothing written
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip() == (f"error: --out {out}: another segcli predict (process {os.getpid()}) is writing "
                                   f"there; wait for it to finish, or choose another output folder.")
    assert list(out.iterdir()) == []  # the holder removed its lock file


def test_shards_of_one_job_lock_only_their_own_share(photos, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    with hold(out, (0, 2)):
        assert predict(photos, out, "--shard", "0/2").returncode == 2
        other = predict(photos, out, "--shard", "1/2")
    assert other.returncode == 0, other.stderr
    assert (out / "summary.shard-1-of-2.json").is_file()


def test_a_holder_killed_with_sigkill_does_not_block_the_next_run(photos, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom segcli.inference.out_lock import hold\n"
                               f"with hold({str(out)!r}):\n    print('held', flush=True)\n    time.sleep(600)\n"],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    assert predict(photos, out).returncode == 2
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=60)
    assert lock_path(out).is_file()  # left behind, unlocked
    done = predict(photos, out)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.iterdir() if p.suffix == ".png") == ["0.png", "1.png"]
    assert not lock_path(out).exists()
