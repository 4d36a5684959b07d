"""find_inputs with ``**`` globs: symlink loops end instead of hanging; loop-free trees match glob.glob."""

from __future__ import annotations

import glob
import os
import subprocess
import sys

import pytest

from segcli.inference.inputs import LeftOut, _glob_loop_safe, find_inputs

needs_symlinks = pytest.mark.skipif(not hasattr(os, "symlink") or os.name == "nt", reason="needs POSIX symlinks")

LOOPS = """
import sys
from pathlib import Path
from segcli.inference.inputs import find_inputs
tmp = Path(sys.argv[1])
print([(str(i.path), i.rel) for i in find_inputs([str(tmp / "pin" / "**" / "*.png")])])
"""


@needs_symlinks
def test_recursive_glob_survives_two_symlink_loops(tmp_path):
    sub = tmp_path / "pin" / "sub"
    sub.mkdir(parents=True)
    (sub / "a.png").write_bytes(b"png")
    (sub / "self").symlink_to(".")
    (sub / "self2").symlink_to(".")
    # in a subprocess: before the fix this ran forever at 100% CPU
    done = subprocess.run([sys.executable, "-c", LOOPS, str(tmp_path)], capture_output=True, text=True, timeout=60,
                          cwd=os.getcwd())
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == repr([(str(sub / "a.png"), "sub/a.png")])


@needs_symlinks
def test_recursive_glob_matches_glob_on_loop_free_trees(tmp_path, monkeypatch):
    t = tmp_path / "t"
    for d in ("a/b/c", ".h/x", "d"):
        (t / d).mkdir(parents=True)
    for f in ("1.jpg", "a/2.jpg", "a/b/3.png", "a/b/c/4.jpg", ".h/x/5.jpg", ".h/6.jpg", "a/.7.jpg", "d/8.jpg"):
        (t / f).write_bytes(b"x")
    (t / "d" / "lb").symlink_to("../a/b")  # a symlinked folder that is no loop: followed, as glob does
    (t / "broken.jpg").symlink_to("nowhere")
    monkeypatch.chdir(tmp_path)
    for pattern in ("t/**/*.jpg", "t/**", "t/**/", "**/*.png", "t/**/.h/*.jpg", "t/*/**/*.jpg", "./t/**/*.jpg",
                    "t/**/**/*.png", "**", "t/**/.*.jpg", "t/**/b", str(t / "**" / "*.png")):
        assert sorted(m for m in _glob_loop_safe(pattern) if m) == sorted(glob.glob(pattern, recursive=True)), pattern
    rels = [i.rel for i in find_inputs(["t/**/*.jpg"])]
    assert rels == ["1.jpg", "a/2.jpg", "a/b/c/4.jpg", "d/8.jpg"]  # d/lb/c/4.jpg is the same file: kept once


def _tree(root):
    """in/a.png, in/sub/b.png, and in/masks: an earlier predict's output (its record, a mask and an overlay)."""
    from segcli.inference.provenance import RECORD_FILE

    for name in ("a.png", "sub/b.png", "masks/a.png", "masks/a_overlay.jpg", "old/deep/c.png"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"x")
    (root / "masks" / RECORD_FILE).write_text("{}")
    (root / "old" / RECORD_FILE).write_text("{}")
    return root


def test_folders_an_earlier_predict_wrote_are_skipped_unless_named(tmp_path, monkeypatch):
    from pathlib import Path

    monkeypatch.chdir(tmp_path)
    _tree(tmp_path / "in")
    left = LeftOut()
    assert [i.rel for i in find_inputs(["in"], left=left)] == ["a.png", "sub/b.png"]
    assert left.folders == [Path("in/masks"), Path("in/old")]
    for pattern in ("in/**/*.png", "in/*", "in/**"):
        left = LeftOut()
        assert [i.rel for i in find_inputs([pattern], left=left)] == ["a.png", "sub/b.png"], pattern
        assert left.folders == [Path("in/masks"), Path("in/old")], pattern
    # named: a folder, a file in one, or a glob whose fixed part is one
    assert [i.rel for i in find_inputs(["in/masks"])] == ["a.png", "a_overlay.jpg"]
    assert [i.rel for i in find_inputs(["in/masks/a.png"])] == ["a.png"]
    assert [i.rel for i in find_inputs(["in/masks/*.jpg"])] == ["a_overlay.jpg"]
    assert [i.rel for i in find_inputs(["in/old"])] == ["deep/c.png"]


def test_the_skipped_folders_are_one_note_and_part_of_the_no_images_error(tmp_path, monkeypatch):
    from segcli.errors import DataError
    from segcli.inference.inputs import select_images

    monkeypatch.chdir(tmp_path)
    _tree(tmp_path / "in")
    notes = []
    assert len(select_images(["in"], "out", note=notes.append)) == 2
    assert notes == ["skipped 2 folders that earlier predict runs wrote (they hold .segcli-predict.json): in/masks, "
                     "in/old; name one as an input to predict its images."]
    notes = []
    select_images(["in"], "in/old", note=notes.append)  # this run's out folder is left out without a note
    assert notes == ["skipped in/masks: an earlier predict wrote it (it holds .segcli-predict.json); name it as an "
                     "input to predict its images."]
    (tmp_path / "in" / "a.png").unlink()
    (tmp_path / "in" / "sub" / "b.png").unlink()
    with pytest.raises(DataError) as exc:
        select_images(["in"], "out", note=notes.append)
    assert str(exc.value) == ("no images found in in (looked for .jpg, .jpeg, .png, .bmp, .tif, .tiff, .webp; files "
                              "under the output folder are never inputs; skipped 2 folders that earlier predict runs "
                              "wrote (they hold .segcli-predict.json): in/masks, in/old; name one as an input to "
                              "predict its images).")


def test_phone_photos_and_other_unread_formats_are_one_note_or_part_of_the_error(tmp_path, monkeypatch):
    """An iPhone folder (HEIC) with a GIF and one JPEG: the JPEG is predicted, and the others are named, not dropped
    in silence; a folder of HEIC files alone is the no-images error, saying why."""
    from segcli.errors import DataError
    from segcli.inference.inputs import select_images

    monkeypatch.chdir(tmp_path)
    for name in ("IMG_0001.HEIC", "IMG_0002.heic", "sub/anim.gif", "sub/photo.jpg", "notes.txt", ".hidden.heic",
                 "IMG_0003.HEIC", "IMG_0004.HEIC"):
        (tmp_path / "in" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "in" / name).write_bytes(b"x")
    notes = []
    assert [item.rel for item in select_images(["in"], "out", note=notes.append)] == ["sub/photo.jpg"]
    assert notes == ["left out 5 images in formats segcli does not read (.heic, .gif): in/IMG_0001.HEIC, "
                     "in/IMG_0002.heic, in/IMG_0003.HEIC and 2 more; convert them to JPEG or PNG to predict them."]
    (tmp_path / "in" / "sub" / "photo.jpg").unlink()
    with pytest.raises(DataError) as exc:
        select_images(["in/sub"], "out", note=notes.append)
    assert str(exc.value) == ("no images found in in/sub (looked for .jpg, .jpeg, .png, .bmp, .tif, .tiff, .webp; "
                              "files under the output folder are never inputs; left out 1 image in a format segcli "
                              "does not read (.gif): in/sub/anim.gif; convert them to JPEG or PNG to predict them).")


def test_each_page_of_a_multi_page_tiff_is_an_input_of_its_own_written_into_a_folder(tmp_path, monkeypatch):
    import cv2
    import numpy as np

    from segcli.inference.inputs import select_images

    monkeypatch.chdir(tmp_path)
    (tmp_path / "in").mkdir()
    pages = [np.full((8, 8), 40 * i, np.uint8) for i in range(3)]
    assert cv2.imwritemulti("in/stack.tif", pages) and cv2.imwrite("in/single.tif", pages[0])
    assert cv2.imwritemulti("in/float_stack.tiff", [p.astype(np.float32) / 255 for p in pages[:2]])
    (tmp_path / "in" / "damaged.tif").write_bytes(b"II*\x00garbage")  # one input: reading it says what is wrong
    notes = []
    items = select_images(["in"], "out", note=notes.append)
    assert [(item.rel, item.stem, item.page) for item in items] == [
        ("damaged.tif", "damaged", 0), ("float_stack.tiff#1", "float_stack/000001", 0),
        ("float_stack.tiff#2", "float_stack/000002", 1), ("single.tif", "single", 0),
        ("stack.tif#1", "stack/000001", 0), ("stack.tif#2", "stack/000002", 1), ("stack.tif#3", "stack/000003", 2)]
    assert notes == ["2 inputs are multi-page TIFFs: each page is segmented on its own, into a folder named after the "
                     "file: in/float_stack.tiff (2 pages) into float_stack/, in/stack.tif (3 pages) into stack/."]
    notes.clear()
    select_images(["in/stack.tif", "in/single.tif"], "out", note=notes.append)
    assert notes == ["in/stack.tif has 3 pages: each page is segmented on its own, into stack/000001.png to "
                     "stack/000003.png."]


def test_a_page_whose_mask_another_input_would_write_is_one_line(tmp_path, monkeypatch):
    import cv2
    import numpy as np

    from segcli.errors import DataError
    from segcli.inference.inputs import select_images

    monkeypatch.chdir(tmp_path)
    (tmp_path / "in" / "stack").mkdir(parents=True)
    assert cv2.imwritemulti("in/stack.tif", [np.zeros((8, 8), np.uint8)] * 2)
    assert cv2.imwrite("in/stack/000002.png", np.zeros((8, 8), np.uint8))
    with pytest.raises(DataError) as exc:
        select_images(["in"], "out")
    assert str(exc.value) == ("in/stack/000002.png and in/stack.tif would both write out/stack/000002.png; predict "
                              "them into separate --out folders, or rename one.")


def test_inputs_with_one_output_name_say_which_file_and_what_to_do(tmp_path, monkeypatch):
    from segcli.errors import DataError

    monkeypatch.chdir(tmp_path)
    for name in ("ca/x.png", "cb/x.png", "cc/x.png", "cc/x.jpg", "cc/x.png.bmp"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    fix = "predict them into separate --out folders, or rename one."
    for inputs in (["ca", "cb"], ["ca/x.png", "cb/x.png"], ["ca/*.png", "cb/*.png"]):
        with pytest.raises(DataError) as exc:
            find_inputs(inputs, exclude="o")
        assert str(exc.value) == ("ca/x.png and cb/x.png would both write o/x.png: outputs are named after each "
                                  "input's path relative to the folder or glob it came from (or its file name), and "
                                  f"both are x.png; {fix}"), inputs
    with pytest.raises(DataError) as exc:  # x.png -> x.png.png (x.jpg is there too), as x.png.bmp -> x.png.png
        find_inputs(["cc"], exclude="o")
    assert str(exc.value) == f"cc/x.png and cc/x.png.bmp would both write o/x.png.png; {fix}"


def test_a_heic_named_as_an_input_is_one_line_saying_to_convert_it(tmp_path):
    """Named directly (not found in a folder walk), a HEIC file reaches the reader, which says what it is."""
    from segcli.data.image_io import read_image
    from segcli.errors import DataError

    heic = tmp_path / "IMG_0001.HEIC"
    heic.write_bytes(b"\x00\x00\x00\x18ftypheic" + bytes(64))  # an ISO-BMFF header, as an iPhone writes
    assert [item.rel for item in find_inputs([str(heic)])] == ["IMG_0001.HEIC"]
    with pytest.raises(DataError) as exc:
        read_image(heic)
    assert str(exc.value) == f"{heic}: a .heic image, a format segcli does not read; convert it to JPEG or PNG."
