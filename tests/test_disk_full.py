"""A disk that fills up mid-run: one line naming what and where, no traceback, nothing half-written, a rerun goes on.

The disk is real: a small tmpfs mounted in a private mount namespace (``unshare``), which vanishes with the process.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.processes import COMMAND

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "samples" / "demo_model"
PHOTOS = ROOT / "samples" / "photos"


def _on_a_small_disk(disk: Path, script: str, kib: int) -> subprocess.CompletedProcess:
    """Run ``script`` (sh) with a ``kib`` KiB tmpfs mounted at ``disk``; skipped where no mount namespace can be had."""
    disk.mkdir(exist_ok=True)
    mount = f"mount -t tmpfs -o size={kib}k segcli-test {shlex.quote(str(disk))}"
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", mount], capture_output=True, text=True) \
        if shutil.which("unshare") else None
    if probe is None or probe.returncode != 0:
        pytest.skip(f"no private mount namespace here to make a small disk in ({probe.stderr.strip() if probe else ''})")
    return subprocess.run(["unshare", "-rm", "sh", "-c", f"{mount} && {script}"], capture_output=True, text=True,
                          cwd=ROOT, timeout=600)


def _segcli(*args) -> str:
    return " ".join(shlex.quote(str(a)) for a in [*COMMAND, *args])


@pytest.mark.slow
def test_predict_stops_at_a_full_disk_with_one_line_and_a_rerun_goes_on(tmp_path):
    disk, report = tmp_path / "disk", tmp_path / "report"
    out = disk / "out"
    predict = _segcli("predict", PHOTOS, "--model", DEMO, "--out", out, "--backend", "tensorflow")
    # the first run fills 40 KiB; then the disk grows (a user frees space) and the same command runs again
    script = (f"{predict} 2> {report}.err1; echo $? > {report}.rc1; ls -A {out} > {report}.ls1; "
              f"mount -o remount,size=1m {disk} && {predict} 2> {report}.err2; echo $? > {report}.rc2; "
              f"ls -A {out} > {report}.ls2")
    _on_a_small_disk(disk, script, kib=40)
    first = Path(f"{report}.err1").read_text().strip().splitlines()
    assert Path(f"{report}.rc1").read_text().strip() == "2"
    assert len(first) == 1 and "Traceback" not in Path(f"{report}.err1").read_text(), first
    prefix = f"error: --out {out}: no space left on device after "
    assert first[0].startswith(prefix), first
    assert first[0].endswith(" of 4 images were done (they are kept); free some space, then run the same command "
                             "again to go on.")
    done = int(first[0][len(prefix):].split(" ")[0])
    left = Path(f"{report}.ls1").read_text().split()
    masks = [n for n in left if n.endswith(".png")]
    assert len(masks) == done and not [n for n in left if n.endswith(".tmp")], left  # nothing half-written
    assert Path(f"{report}.rc2").read_text().strip() == "0", Path(f"{report}.err2").read_text()
    assert len([n for n in Path(f"{report}.ls2").read_text().split() if n.endswith("_overlay.jpg")]) == 4


def test_any_command_on_a_full_disk_is_one_line_naming_the_file(tmp_path):
    disk, report = tmp_path / "disk", tmp_path / "report"
    _on_a_small_disk(disk, f"{_segcli('data', 'synth', disk / 'synth')} 2> {report}.err; echo $? > {report}.rc", kib=24)
    lines = Path(f"{report}.err").read_text().strip().splitlines()
    assert Path(f"{report}.rc").read_text().strip() == "2"
    assert len(lines) == 1 and lines[0].startswith(f"error: no space left on device writing {disk / 'synth'}"), lines
    assert lines[0].endswith(".png; free some space (or write elsewhere), then run the command again.")


@pytest.mark.slow
def test_train_on_a_full_disk_says_to_resume_and_resume_goes_on(tmp_path):
    disk, report = tmp_path / "disk", tmp_path / "report"
    train = _segcli("train", ROOT / "samples", "--preset", "mit_b0", "--epochs", "1", "--image-size", "32", "--out",
                    disk / "run")
    script = (f"{train} 2> {report}.err1; echo $? > {report}.rc1; mount -o remount,size=64m {disk} && "
              f"{train} --resume 2> {report}.err2; echo $? > {report}.rc2; ls {disk / 'run'} > {report}.ls")
    _on_a_small_disk(disk, script, kib=8)  # full before the first step: the run directory has no checkpoint yet
    lines = [line for line in Path(f"{report}.err1").read_text().splitlines() if line.startswith("error:")]
    assert Path(f"{report}.rc1").read_text().strip() == "2" and "Traceback" not in Path(f"{report}.err1").read_text()
    assert len(lines) == 1 and lines[0].startswith("error: no space left on device"), lines
    assert lines[0].endswith("; free some space (or write elsewhere), then run the command with --resume added.")
    assert Path(f"{report}.rc2").read_text().strip() == "0", Path(f"{report}.err2").read_text()[-2000:]
    assert "best.keras" in Path(f"{report}.ls").read_text().split()


@pytest.mark.slow
def test_probabilities_that_do_not_fit_stop_predict_with_one_line_and_leave_no_temporary_file(tmp_path):
    """--save-probs reserves each image's file before computing into it: a full disk is the usual one line."""
    disk, report = tmp_path / "disk", tmp_path / "report"
    out = disk / "out"
    predict = _segcli("predict", PHOTOS, "--model", DEMO, "--out", out, "--backend", "tensorflow", "--save-probs",
                      "--no-overlay")
    script = (f"{predict} 2> {report}.err1; echo $? > {report}.rc1; ls -A {out} > {report}.ls1; "
              f"mount -o remount,size=16m {disk} && {predict} 2> {report}.err2; echo $? > {report}.rc2; "
              f"ls -A {out} > {report}.ls2")
    _on_a_small_disk(disk, script, kib=512)  # the photos' probabilities take 0.3-0.7 MB each (5 classes, float16)
    err = Path(f"{report}.err1").read_text()
    first = [line for line in err.strip().splitlines() if line.startswith("error:")]
    assert Path(f"{report}.rc1").read_text().strip() == "2" and "Traceback" not in err, err
    assert len(first) == 1 and first[0].startswith(f"error: --out {out}: no space left on device after "), first
    assert not [n for n in Path(f"{report}.ls1").read_text().split() if n.endswith(".tmp")]
    assert Path(f"{report}.rc2").read_text().strip() == "0", Path(f"{report}.err2").read_text()
    assert len([n for n in Path(f"{report}.ls2").read_text().split() if n.endswith("_probs.npy")]) == 4
