"""A real `segcli train` killed with SIGKILL mid-epoch resumes with --resume and finishes the right epochs."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from segcli.train.schedule import WarmupPoly
from segcli.train.settings import SCRATCH
from tests.data.tiny_dataset import make_easy

EPOCHS = 3


def _segcli(*args):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return [sys.executable, "-m", "segcli.cli.app", *args], env


def _rows(out: Path):
    path = out / "metrics.csv"
    return list(csv.DictReader(path.open())) if path.exists() else []


def started_into_epoch_2(cmd, env, out):
    """A `segcli train` process, returned once epoch 1 is in metrics.csv and epoch 2 has run for a second."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while not _rows(out) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    if len(_rows(out)) != 1 or proc.poll() is not None:
        proc.kill()
        _, stderr = proc.communicate()
        pytest.fail(f"no run in epoch 2 to stop (exit {proc.returncode}): {stderr[-2000:]}")
    time.sleep(1.0)  # well into epoch 2
    if proc.poll() is not None:
        pytest.fail("the run ended before it could be stopped")
    return proc

@pytest.mark.slow
def test_kill_9_mid_epoch_then_resume_finishes_with_the_same_schedule(tmp_path):
    data = make_easy(tmp_path / "data", n=300, size=64)  # 135 steps an epoch: seconds, even with a cached set
    out = tmp_path / "run"
    args = [str(data), "--preset", "segformer_test", "--image-size", "64", "--epochs", str(EPOCHS),
            "--batch-size", "2", "--lr", "1e-3", "--out", str(out)]
    cmd, env = _segcli("train", *args)
    proc = started_into_epoch_2(cmd, env, out)
    try:
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.communicate()
    done_before = len(_rows(out))
    assert done_before < EPOCHS

    cmd, env = _segcli("train", *args, "--resume")
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert f"Resuming {out} after epoch {done_before} of {EPOCHS}." in result.stderr
    rows = _rows(out)
    assert [int(r["epoch"]) for r in rows] == list(range(1, EPOCHS + 1))
    # the learning rate continues the one schedule: warmup + poly over all steps of all epochs
    steps = json.loads((out / "config.json").read_text())["settings"]["resolved"]["steps_per_epoch"]
    assert steps == 135  # 270 train pairs / batch 2; segformer_test has no pretrained weights: from-scratch recipe
    schedule = WarmupPoly(1e-3, EPOCHS * steps, warmup_steps=int(SCRATCH.warmup_share * EPOCHS * steps))
    for r in rows:
        assert float(r["lr_backbone"]) == pytest.approx(float(schedule(int(r["epoch"]) * steps)), abs=1e-9)
        assert float(r["lr_head"]) == pytest.approx(SCRATCH.head_lr_mult * float(r["lr_backbone"]), abs=1e-8)
    assert not [p.name for p in out.iterdir() if p.name.endswith((".tmp", ".tmp.keras"))]
    assert (out / "best.keras").is_file()
