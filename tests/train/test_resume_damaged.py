"""`segcli train --resume` on a run whose checkpoint is damaged or gone: one line with the ways on, exit 2, and
not one byte of the run directory changed (a restart at epoch 1 would replace its metrics.csv and best.keras)."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from segcli.cli.app import app
from segcli.train import checkpoint as ck
from tests.data.tiny_dataset import make_easy

pytestmark = pytest.mark.slow
ARGS = ["--preset", "segformer_test", "--image-size", "64", "--epochs", "2", "--batch-size", "4"]


def _train(*args):
    return CliRunner().invoke(app, ["train", *map(str, args)])


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """(data, run): a real 2-epoch run with last.ckpt.npz, metrics.csv and best.keras."""
    root = tmp_path_factory.mktemp("resume_damaged")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SEGCLI_HOME", str(root / "home"))
        data = make_easy(root / "data", n=12, size=64)
        result = _train(data, *ARGS, "--out", root / "run")
    assert result.exit_code == 0, result.output
    return data, root / "run"


@pytest.fixture
def run(finished, tmp_path):
    """A copy of the finished run, with a file a killed run leaves behind (a resume would remove it)."""
    copy = tmp_path / "run"
    shutil.copytree(finished[1], copy)
    (copy / f".{ck.LAST}.123.tmp").write_bytes(b"partial")
    return copy


def snapshot(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def refused(finished, run) -> str:
    """The error line of `train --resume` on ``run`` (after the data check's notes, if it got that far),
    checking that nothing in the run changed."""
    before = snapshot(run)
    result = _train(finished[0], *ARGS, "--out", run, "--resume")
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and result.stdout == ""
    assert snapshot(run) == before
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, result.stderr
    return lines[0]


def ways_on(run: Path) -> str:
    return (f"pass --overwrite instead of --resume to start it again (this replaces its files), or drop --resume "
            f"and pass --preset {run / ck.BEST} and a new --out to fine-tune from its best model.")


@pytest.mark.parametrize("damage, why", [
    (lambda b: b[:1000], "File is not a zip file"),  # `truncate -s 1000`: the zip's directory is gone
    (lambda b: b"", "empty file"),
    (lambda b: b"not a checkpoint\n", "not an .npz archive"),
])
def test_a_damaged_checkpoint_is_one_line_and_changes_nothing(finished, run, damage, why):
    last = run / ck.LAST
    last.write_bytes(damage(last.read_bytes()))
    assert refused(finished, run) == (f"error: {last}: damaged checkpoint ({why}), so --resume cannot continue the "
                                      f"run; {ways_on(run)}")
    assert ck.saved_epoch(run) == 0  # what an interrupted run's last line reads: no traceback there either


def test_damage_inside_the_weights_is_found_when_they_are_loaded(finished, run):
    """The state at the end of the file reads, a weight array in the middle does not (its CRC fails)."""
    last = run / ck.LAST
    data = bytearray(last.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 8] = bytes(255 - b for b in data[middle:middle + 8])
    last.write_bytes(bytes(data))
    (run / f".{ck.LAST}.123.tmp").unlink()  # this resume gets as far as removing such leftovers
    line = refused(finished, run)
    assert line.startswith(f"error: {last}: damaged checkpoint (Bad CRC-32 for file '")
    assert line.endswith(f".npy'), so --resume cannot continue the run; {ways_on(run)}")


def test_a_missing_checkpoint_after_finished_epochs_is_refused(finished, run):
    (run / ck.LAST).unlink()
    assert refused(finished, run) == (f"error: {run}: its checkpoint {ck.LAST} is missing although {ck.METRICS} "
                                      f"records 2 finished epochs, so --resume cannot continue the run; "
                                      f"{ways_on(run)}")
    (run / ck.METRICS).unlink()  # killed after best.keras, before the checkpoint and metrics.csv of epoch 1
    assert refused(finished, run) == (f"error: {run}: its checkpoint {ck.LAST} is missing although {ck.BEST} "
                                      f"holds a trained model, so --resume cannot continue the run; {ways_on(run)}")


def test_overwrite_does_not_delete_the_model_it_would_start_from(finished, run):
    before = snapshot(run)
    result = _train(finished[0], *ARGS, "--out", run, "--overwrite", "--preset", run / ck.BEST)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.stderr.strip() == (f"error: --overwrite would delete {run / ck.BEST}, the model --preset starts "
                                     f"from; give a new --out to fine-tune from it.")
    assert snapshot(run) == before


def test_the_ways_on_work(finished, run, tmp_path):
    (run / ck.LAST).unlink()
    best = (run / ck.BEST).read_bytes()
    tuned = _train(finished[0], *ARGS, "--preset", run / ck.BEST, "--out", tmp_path / "tuned")
    assert tuned.exit_code == 0, tuned.output
    assert f"weights from {run / ck.BEST}, so" in tuned.stderr and (tmp_path / "tuned" / ck.BEST).is_file()
    assert (run / ck.BEST).read_bytes() == best
    again = _train(finished[0], *ARGS, "--out", run, "--overwrite")
    assert again.exit_code == 0, again.output
    assert [line.split(",")[0] for line in (run / ck.METRICS).read_text().splitlines()[1:]] == ["1", "2"]


def test_a_run_killed_before_its_first_epoch_ended_still_resumes(finished, run):
    for name in (ck.LAST, ck.METRICS, ck.BEST):
        (run / name).unlink()
    result = _train(finished[0], *ARGS, "--out", run, "--resume")
    assert result.exit_code == 0, result.output
    assert f"Resuming {run}: no finished epoch yet, starting at epoch 1." in result.stderr
    assert ck.saved_epoch(run) == 2


def test_fine_tuning_on_other_classes_says_the_classifier_is_new(finished, tmp_path):
    """A 3-class run fine-tuned on 2 of its classes: the opening line says a new classifier replaces its own."""
    tuned = _train(finished[0], "--preset", finished[1] / ck.BEST, "--image-size", "64", "--epochs", "1",
                   "--batch-size", "4", "--classes", "class_0,class_1", "--out", tmp_path / "two")
    assert tuned.exit_code == 0, tuned.output
    assert f"weights from {finished[1] / ck.BEST} (a new classifier replaces its 3-class one), so" in tuned.stderr
