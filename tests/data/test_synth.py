"""The synthetic dataset generator: deterministic, in segcli's split layout, readable by the dataset code."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from segcli.cli.app import app
from segcli.data.folder_dataset import discover
from segcli.data.image_io import read_image, read_mask
from segcli.data.synth import CLASS_NAMES, generate, render
from segcli.errors import UsageError

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_writes_byte_identical_files_and_another_seed_differs(tmp_path):
    generate(tmp_path / "a", n=6, size=48, seed=3)
    generate(tmp_path / "b", n=6, size=48, seed=3)
    generate(tmp_path / "c", n=6, size=48, seed=4)
    a, b, c = _files(tmp_path / "a"), _files(tmp_path / "b"), _files(tmp_path / "c")
    assert len(a) == 6 * 2 + 2 and a == b
    images = [k for k in a if "/images/" in k]
    assert all(a[k] != c[k] for k in images)


def test_split_layout_pairs_and_classes_are_what_training_reads(tmp_path):
    result = generate(tmp_path / "set", n=10, size=64, seed=0, val_fraction=0.2)
    root = tmp_path / "set"
    assert (result.train, result.val) == (8, 2)
    for split, count in (("train", 8), ("val", 2)):
        images = sorted(p.name for p in (root / split / "images").iterdir())
        masks = sorted(p.name for p in (root / split / "masks").iterdir())
        assert images == masks and len(images) == count
    assert sorted((root / "val" / "images").iterdir())[0].name == "synth_00008.png"
    image = read_image(root / "train" / "images" / "synth_00000.png")
    mask = read_mask(root / "train" / "masks" / "synth_00000.png")
    assert image.shape == (64, 64, 3) and image.dtype == np.uint8
    assert mask.shape == (64, 64) and mask.dtype == np.uint8 and mask.max() < len(CLASS_NAMES)
    classes = json.loads((root / "classes.json").read_text())["classes"]
    assert [c["name"] for c in classes] == list(CLASS_NAMES)
    assert all(len(c["color"]) == 3 for c in classes)
    dataset = discover(root)
    assert dataset.layout == "split" and dataset.num_classes == 5
    assert (len(dataset.splits["train"]), len(dataset.splits["val"])) == (8, 2)


def test_every_class_is_drawn_and_colour_does_not_give_the_class_away():
    means = {k: [] for k in range(1, len(CLASS_NAMES))}
    pixels = np.zeros(len(CLASS_NAMES))
    for i in range(60):
        image, mask = render(96, seed=11, index=i)
        pixels += np.bincount(mask.ravel(), minlength=len(CLASS_NAMES))
        for k in means:
            if (mask == k).sum() > 50:
                means[k].append(image[mask == k].mean(axis=0))
    share = pixels / pixels.sum()
    assert share[0] < 0.8 and all(s > 0.04 for s in share[1:]), share
    centres = np.array([np.mean(v, axis=0) for v in means.values()])
    spreads = np.array([np.std(v, axis=0).mean() for v in means.values()])
    # Per-object colours are random: each class's mean colour varies a lot between objects,
    # while the classes' average colours are all about the same mid grey.
    assert spreads.min() > 25, spreads
    assert np.abs(centres - centres.mean(axis=0)).max() < 25, centres


def test_images_carry_noise():
    image, _ = render(64, seed=0, index=0)
    rows = image.astype(np.int16)
    assert np.abs(np.diff(rows, axis=1)).mean() > 1.0
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 1000


def test_a_new_run_replaces_an_earlier_set_and_never_writes_into_other_folders(tmp_path):
    out = tmp_path / "set"
    generate(out, n=6, size=32, seed=0)
    generate(out, n=3, size=32, seed=0)
    assert len(list((out / "train" / "images").iterdir())) == 2
    assert json.loads((out / "synth.json").read_text())["n"] == 3
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(UsageError) as info:
        generate(tmp_path / "mine", n=2, size=32, seed=0)
    assert str(info.value) == (f"{tmp_path / 'mine'} is not empty and holds no earlier synthetic set; "
                               f"give a new or empty folder.")
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["notes.txt"]


def test_an_interrupted_run_leaves_nothing_that_blocks_the_next(tmp_path):
    out = tmp_path / "set"
    (out / ".synth-abc.tmp" / "train").mkdir(parents=True)  # what a killed run leaves
    generate(out, n=2, size=32, seed=0)
    assert sorted(p.name for p in out.iterdir()) == ["classes.json", "synth.json", "train", "val"]


@pytest.mark.parametrize("args, message", [
    (["--n", "0"], "--n 0: the number of images must be between 1 and 1,000,000."),
    (["--size", "16"], "--size 16: images must be 32 to 4096 pixels on a side."),
    (["--seed", "-1"], "--seed -1: the seed must be 0 or a positive integer."),
    (["--val-fraction", "1"], "--val-fraction 1.0: give a fraction from 0 up to (not including) 1."),
])
def test_cli_bad_values_give_one_clear_line(tmp_path, args, message):
    result = CliRunner().invoke(app, ["data", "synth", str(tmp_path / "set"), *args])
    assert result.exit_code == 2
    assert result.output.strip() == f"error: {message}"
    assert not (tmp_path / "set").exists()


def test_cli_prints_what_it_wrote(tmp_path):
    result = CliRunner().invoke(app, ["data", "synth", str(tmp_path / "set"), "--n", "5", "--size", "32",
                                      "--seed", "2"])
    assert result.exit_code == 0, result.output
    assert f"Wrote 4 train + 1 val image/mask pairs (32x32 PNG, seed 2) to {tmp_path / 'set'}" in result.stdout
    for name in CLASS_NAMES:
        assert name in result.stdout
    as_json = CliRunner().invoke(app, ["data", "synth", str(tmp_path / "set"), "--n", "3", "--size", "32", "--json"])
    assert as_json.exit_code == 0
    assert json.loads(as_json.stdout)["train"] == 2


def test_committed_samples_are_exactly_what_the_generator_makes(tmp_path):
    record = json.loads((SAMPLES / "synth.json").read_text())
    generate(tmp_path / "again", n=record["n"], size=record["size"], seed=record["seed"],
             val_fraction=record["val_fraction"])
    again = _files(tmp_path / "again")
    committed = {k: v for k, v in _files(SAMPLES).items() if k.split("/")[0] in ("train", "val")
                 or k in ("classes.json", "synth.json")}
    assert committed.keys() == again.keys()
    assert committed == again
