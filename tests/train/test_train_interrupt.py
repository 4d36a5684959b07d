"""Ctrl-C (SIGINT) during a real `segcli train`: exit 130 and one line saying what is saved and how to go on."""

from __future__ import annotations

import pytest

from tests.data.tiny_dataset import make_easy
from tests.processes import interrupt
from tests.train.test_train_resume import _segcli, started_into_epoch_2


@pytest.mark.slow
def test_ctrl_c_after_epoch_1_exits_130_and_says_how_to_resume(tmp_path):
    data = make_easy(tmp_path / "data", n=300, size=64)  # 135 steps an epoch: seconds
    out = tmp_path / "run"
    cmd, env = _segcli("train", str(data), "--preset", "segformer_test", "--image-size", "64", "--epochs", "3",
                       "--batch-size", "2", "--out", str(out))
    proc = started_into_epoch_2(cmd, env, out)
    stderr = interrupt(proc)
    assert proc.returncode == 130, stderr[-2000:]
    assert "Traceback" not in stderr
    assert [line for line in stderr.splitlines() if line.startswith("interrupted")] == [
        f"interrupted: epoch 1 is saved in {out}; run the same command with --resume to continue."]
    assert stderr.rstrip().splitlines()[-1].startswith("interrupted: ")


def test_the_interrupted_line_says_what_is_saved(tmp_path):
    from segcli.cli.train_cmd import _interrupted_line
    from segcli.train import checkpoint as ck

    out = tmp_path / "run"
    assert _interrupted_line(out) == "interrupted: no epoch finished, nothing is saved; run the same command to " \
                                     "start again."
    out.mkdir()
    ck.write_json(out / ck.CONFIG, {"settings": {}})
    assert _interrupted_line(out) == (f"interrupted: no epoch finished, nothing is saved in {out}; run the same "
                                      f"command with --resume to start it again.")
    for epoch, saved in ((1, "epoch 1 is"), (4, "epochs 1-4 are")):
        ck.save_checkpoint(out / ck.LAST, [], [], {"epoch": epoch})
        assert _interrupted_line(out) == f"interrupted: {saved} saved in {out}; run the same command with --resume " \
                                         f"to continue."
