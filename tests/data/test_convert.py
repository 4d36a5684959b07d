"""`segcli data convert`: each format's masks, classes and report against masks drawn independently, repeat runs,
atomic replacement, bad input, and a mask -> polygon -> COCO -> mask round trip."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from segcli.classes import dataset_classes, distinct_palette
from segcli.cli.app import app
from segcli.data.convert import FORMATS
from segcli.data.convert import plan as read_plan
from segcli.data.image_io import read_mask
from tests.data.convert_fixtures import (SIZE, coco_rle, write_cityscapes, write_coco, write_cvat, write_labelme,
                                         write_png, write_round_trip, write_voc)


def run(*args):
    return CliRunner().invoke(app, ["data", "convert", *map(str, args)])


def tree(root: Path) -> dict:
    """Every file under ``root``: its bytes, or the target of a symbolic link."""
    found = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_symlink():
            found[rel] = ("link", os.readlink(path))
        elif path.is_file():
            found[rel] = path.read_bytes()
    return found


def record(data: Path) -> dict:
    return json.loads((data / "convert.json").read_text())


def issues(data: Path) -> set:
    return {(Path(i["file"]).name, i["item"], i["action"], i["reason"]) for i in record(data)["report"]["issues"]}


def class_list(data: Path) -> list:
    return json.loads((data / "classes.json").read_text())["classes"]


def assert_linked(link: Path, target: Path) -> None:
    assert link.is_symlink() and not os.path.isabs(os.readlink(link))
    assert link.resolve() == target.resolve()


def assert_one_image_written(result) -> None:
    """One image and no val split: DATA is written, but its data check says training needs a val split (exit 1)."""
    assert result.exit_code == 1, result.output
    assert "only 1 image/mask pair and no val split, so no validation is possible" in result.stdout
    assert "NOT OK: 1 problem(s); fix them before training." in result.stdout


def test_coco_folder_gives_train_and_val_masks_in_area_order_and_reports_every_drop(tmp_path):
    expected = write_coco(tmp_path / "coco")
    before = tree(tmp_path / "coco")
    result = run(tmp_path / "coco", "--from", "coco", "--out", tmp_path / "data")
    assert result.exit_code == 0, result.output
    data = tmp_path / "data"
    np.testing.assert_array_equal(read_mask(data / "train" / "masks" / "a.png"), expected["a.png"])
    np.testing.assert_array_equal(read_mask(data / "val" / "masks" / "b.png"), expected["b.png"])
    assert_linked(data / "train" / "images" / "a.png", tmp_path / "coco" / "a.png")
    assert_linked(data / "val" / "images" / "b.png", tmp_path / "coco" / "b.png")
    assert class_list(data) == [{"name": n, "color": c} for n, c in
                                zip(["background", "car", "road", "person"], distinct_palette(4))]
    missing = tmp_path / "coco" / "missing.png"
    assert issues(data) == {
        ("instances_train.json", "annotation 5 ('car')", "dropped",
         "degenerate polygon: 2 points (it needs at least 3)"),
        ("instances_train.json", "annotation 6 ('car')", "dropped", "degenerate polygon: zero area"),
        ("instances_train.json", "annotation 7 ('car')", "dropped", "outside the image (64x64)"),
        ("instances_train.json", "annotation 8 ('car')", "clipped", "partly outside the image (64x64); clipped"),
        ("instances_train.json", "annotation 9 (category 99)", "dropped",
         "unknown category id 99 (not in the categories)"),
        ("instances_train.json", "annotation 10 ('person')", "dropped",
         "covered entirely by annotations drawn over it"),
        ("instances_train.json", "image missing.png", "dropped",
         f"missing image: {missing} does not exist (1 annotation dropped)"),
    }
    report = record(data)["report"]
    assert report["images"] == {"train": 1, "val": 1}
    assert report["annotations"] == {"background": 0, "car": 5, "road": 1, "person": 1, "ignore (255)": 1}
    assert "6 dropped, 1 clipped, 0 partly ignored" in result.stdout
    assert "1 of 4 classes has no labelled pixel in the train split (person)" in result.stdout  # only in val
    assert "OK: the dataset can be trained on (look at the 1 warning(s) above)." in result.stdout
    assert tree(tmp_path / "coco") == before


def test_coco_json_with_images_elsewhere_class_list_and_copy(tmp_path):
    write_coco(tmp_path / "src")
    (tmp_path / "ann").mkdir()
    (tmp_path / "src" / "instances_train.json").rename(tmp_path / "ann" / "train.json")
    without = run(tmp_path / "ann" / "train.json", "--from", "coco", "--out", tmp_path / "data")
    assert without.exit_code == 2
    assert without.stderr.startswith(f"error: {tmp_path / 'ann' / 'train.json'}: none of its 2 images could be "
                                     f"converted; first: ")
    assert not (tmp_path / "data").exists()
    result = run(tmp_path / "ann" / "train.json", "--from", "coco", "--out", tmp_path / "data",
                 "--images", tmp_path / "src", "--classes", "road,car", "--copy")
    assert_one_image_written(result)
    data = tmp_path / "data"
    copied = data / "train" / "images" / "a.png"
    assert not copied.is_symlink() and copied.read_bytes() == (tmp_path / "src" / "a.png").read_bytes()
    assert not (data / "val").exists()
    assert [c["name"] for c in class_list(data)] == ["background", "road", "car"]
    mask = read_mask(data / "train" / "masks" / "a.png")
    assert mask[5, 5] == 1 and mask[15, 15] == 2 and mask[50, 50] == 255
    assert ("train.json", "annotation 10 ('person')", "dropped",
            "unknown label 'person' (not in the class list)") in issues(data)


def test_labelme_shapes_class_order_embedded_image_and_report(tmp_path):
    expected = write_labelme(tmp_path / "lm")
    result = run(tmp_path / "lm", "--from", "labelme", "--classes", "road,cat,dog", "--out", tmp_path / "data")
    assert result.exit_code == 0, result.output
    data = tmp_path / "data"
    assert [c["name"] for c in class_list(data)] == ["background", "road", "cat", "dog"]
    mask = read_mask(data / "train" / "masks" / "a.png")
    yy, xx = np.mgrid[:SIZE, :SIZE]
    rim = np.abs(np.hypot(xx - 45, yy - 20) - 8) <= 1  # Pillow and the reference may differ on the circle's rim
    assert not ((mask != expected["a.png"]) & ~rim).any()
    np.testing.assert_array_equal(read_mask(data / "val" / "masks" / "b.png"), expected["b.png"])
    embedded = data / "val" / "images" / "b.png"  # b.png exists only inside b.json
    assert not embedded.is_symlink() and cv2.imread(str(embedded)).shape == (SIZE, SIZE, 3)
    lm = tmp_path / "lm"
    assert issues(data) == {
        ("c.json", "image c.png", "dropped", "in a test folder (only train and val are converted)"),
        ("a.json", "shape 5 (line 'dog')", "dropped", "not an area shape (line)"),
        ("a.json", "shape 6 (polygon 'bird')", "dropped", "unknown label 'bird' (not in the class list)"),
        ("a.json", "shape 7 (polygon 'cat')", "dropped", "degenerate polygon: 2 points (it needs at least 3)"),
        ("a.json", "shape 8 (rectangle 'dog')", "clipped", "partly outside the image (64x64); clipped"),
    }
    assert_linked(data / "train" / "images" / "a.png", lm / "a.png")
    assert record(data)["report"]["annotations"] == {"background": 0, "road": 1, "cat": 2, "dog": 3,
                                                     "ignore (255)": 1}


def test_labelme_without_class_list_takes_sorted_labels(tmp_path):
    write_labelme(tmp_path / "lm")
    result = run(tmp_path / "lm" / "a.json", "--from", "labelme", "--out", tmp_path / "data")
    assert_one_image_written(result)
    assert [c["name"] for c in class_list(tmp_path / "data")] == ["background", "bird", "cat", "dog", "road"]
    mask = read_mask(tmp_path / "data" / "train" / "masks" / "a.png")
    assert mask[55, 58] == 1 and mask[5, 5] == 4  # the bird triangle is kept, over the road


def test_a_broken_file_in_a_labelme_folder_is_dropped_and_reported_the_rest_converts(tmp_path):
    expected = write_labelme(tmp_path / "lm")
    (tmp_path / "lm" / "half.json").write_text('{"shapes": [')  # cut off mid-write
    (tmp_path / "lm" / "latin1.json").write_bytes(b'{"label": "caf\xe9"}')
    result = run(tmp_path / "lm", "--from", "labelme", "--classes", "road,cat,dog", "--out", tmp_path / "data")
    assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(read_mask(tmp_path / "data" / "val" / "masks" / "b.png"), expected["b.png"])
    assert {i for i in issues(tmp_path / "data") if i[0] in ("half.json", "latin1.json")} == {
        ("half.json", "file half.json", "dropped", "not valid JSON (line 1, column 13: Expecting value)"),
        ("latin1.json", "file latin1.json", "dropped", "not a UTF-8 text file"),
    }
    assert "half.json" in result.stdout and "not valid JSON (line 1, column 13: Expecting value)" in result.stdout


def test_cvat_labels_colours_z_order_rle_masks_and_subsets(tmp_path):
    expected = write_cvat(tmp_path / "cvat")
    result = run(tmp_path / "cvat" / "annotations.xml", "--from", "cvat", "--out", tmp_path / "data")
    assert result.exit_code == 0, result.output
    data = tmp_path / "data"
    assert class_list(data) == [{"name": "background", "color": [0, 0, 0]},
                                {"name": "road", "color": [128, 64, 128]}, {"name": "car", "color": [0, 0, 142]}]
    np.testing.assert_array_equal(read_mask(data / "train" / "masks" / "x.png"), expected["x.png"])
    np.testing.assert_array_equal(read_mask(data / "val" / "masks" / "y.png"), expected["y.png"])
    assert not (data / "train" / "masks" / "z.png").exists()
    assert issues(data) == {
        ("annotations.xml", "image z.png", "dropped", "subset 'Test' (only train and val are converted)"),
        ("annotations.xml", "polyline 4 ('car')", "dropped", "not an area shape (polyline)"),
        ("annotations.xml", "box 5 ('tree')", "dropped", "unknown label 'tree' (not in the class list)"),
        ("annotations.xml", "polygon 6 ('car')", "dropped", "degenerate polygon: 2 points (it needs at least 3)"),
    }


def test_cvat_project_export_with_images_in_subset_folders(tmp_path):
    expected = write_cvat(tmp_path / "cvat")
    xml = tmp_path / "cvat" / "annotations.xml"
    xml.write_text(xml.read_text().replace("<task>", "<project>").replace("</task>", "</project>"))
    for name, subset in (("x.png", "Train"), ("y.png", "Validation")):
        (tmp_path / "cvat" / "images" / subset).mkdir()
        (tmp_path / "cvat" / "images" / name).rename(tmp_path / "cvat" / "images" / subset / name)
    result = run(tmp_path / "cvat", "--from", "cvat", "--out", tmp_path / "data")
    assert result.exit_code == 0, result.output
    assert [c["name"] for c in class_list(tmp_path / "data")] == ["background", "road", "car"]
    np.testing.assert_array_equal(read_mask(tmp_path / "data" / "val" / "masks" / "y.png"), expected["y.png"])
    assert_linked(tmp_path / "data" / "train" / "images" / "x.png", tmp_path / "cvat" / "images" / "Train" / "x.png")


def test_cityscapes_label_ids_become_train_ids(tmp_path):
    expected = write_cityscapes(tmp_path / "cs")
    result = run(tmp_path / "cs", "--from", "cityscapes", "--out", tmp_path / "data")
    assert result.exit_code == 0, result.output
    data = tmp_path / "data"
    table = dataset_classes("cityscapes")
    assert class_list(data) == (table.as_dicts() if hasattr(table, "as_dicts") else table)
    for split, name in (("train", "aachen_000000_000019_leftImg8bit"), ("val", "frankfurt_000000_000019_leftImg8bit")):
        np.testing.assert_array_equal(read_mask(data / split / "masks" / f"{name}.png"), expected[f"{name}.png"])
    assert issues(data) == {(f"{city}_000000_000019_gtFine_labelIds.png", "mask", "ignored",
                             "values 50 are not Cityscapes label ids; set to 255 (ignore)")
                            for city in ("aachen", "frankfurt")}


def test_voc_reads_palette_indices_keeps_the_border_and_follows_the_split_files(tmp_path):
    palette = np.random.default_rng(0).integers(0, 256, (256, 3)).tolist()  # not VOC's: indices must be read
    expected = write_voc(tmp_path / "voc", palette)
    result = run(tmp_path / "voc", "--from", "voc", "--out", tmp_path / "data")
    assert result.exit_code == 0, result.output
    data = tmp_path / "data"
    np.testing.assert_array_equal(read_mask(data / "train" / "masks" / "2007_000032.png"), expected["2007_000032.jpg"])
    np.testing.assert_array_equal(read_mask(data / "val" / "masks" / "2007_000039.png"), expected["2007_000039.jpg"])
    classes = class_list(data)
    assert len(classes) == 21 and classes[15]["name"] == "person"
    # VOC's colour map as published with the devkit
    known = {0: [0, 0, 0], 1: [128, 0, 0], 2: [0, 128, 0], 3: [128, 128, 0], 4: [0, 0, 128], 8: [64, 0, 0],
             15: [192, 128, 128], 20: [0, 64, 128]}
    assert {i: classes[i]["color"] for i in known} == known
    voc = tmp_path / "voc"
    assert issues(data) == {
        ("train.txt", "image 2007_000099", "dropped",
         f"missing mask: {voc / 'SegmentationClass' / '2007_000099'}.png does not exist"),
        ("2007_000063.png", "image 2007_000063", "dropped", "not listed in train.txt or val.txt"),
        ("2007_000032.png", "mask", "ignored", "values 30 are not VOC classes; set to 255 (ignore)"),
        ("2007_000039.png", "mask", "ignored", "values 30 are not VOC classes; set to 255 (ignore)"),
    }


def test_repeating_a_conversion_writes_the_same_bytes_and_replaces_the_earlier_one(tmp_path):
    write_coco(tmp_path / "coco")
    out = tmp_path / "data"
    assert run(tmp_path / "coco", "--from", "coco", "--out", out).exit_code == 0
    first = tree(out)
    assert run(tmp_path / "coco", "--from", "coco", "--out", out).exit_code == 0
    assert tree(out) == first
    assert run(tmp_path / "coco", "--from", "coco", "--out", out, "--copy").exit_code == 0
    assert not (out / "train" / "images" / "a.png").is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["coco", "data"]  # no work folder left behind


def test_an_interrupted_conversion_leaves_the_earlier_dataset_as_it_was(tmp_path, monkeypatch):
    from segcli.data.convert import writer

    write_coco(tmp_path / "coco")
    out = tmp_path / "data"
    assert run(tmp_path / "coco", "--from", "coco", "--out", out).exit_code == 0
    before = tree(out)
    real_put, calls = writer._Writer._put, []

    def put_then_stop(self, *args):  # stands in for Ctrl-C or a full disk half way through
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        real_put(self, *args)

    monkeypatch.setattr(writer._Writer, "_put", put_then_stop)
    with pytest.raises(KeyboardInterrupt):
        writer.write(read_plan("coco", tmp_path / "coco"), "coco", tmp_path / "coco", out, copy=True)
    assert tree(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["coco", "data"]


def added_files_line(out: Path, first: Path, others: int) -> str:
    more = f" (and {others} other{'s' if others > 1 else ''})" if others else ""
    return (f"error: output folder {out} holds {first}{more}, which its earlier conversion did not write and "
            f"replacing it would delete; move {'them' if others else 'it'} out of {out} or choose another --out.\n")


def test_files_added_to_an_earlier_conversion_stop_the_next_one_and_are_kept(tmp_path):
    write_coco(tmp_path / "coco")
    out = tmp_path / "data"
    assert run(tmp_path / "coco", "--from", "coco", "--out", out).exit_code == 0
    (out / "NOTES.md").write_text("my notes")
    (out / "train" / "images_extra").mkdir()
    (out / "train" / "images_extra" / "keep.txt").write_text("keep me")
    write_png(out / "train" / "images" / "extra.png", np.zeros((SIZE, SIZE, 3), np.uint8))  # a pair added by hand
    write_png(out / "train" / "masks" / "extra.png", np.zeros((SIZE, SIZE), np.uint8))
    before = tree(tmp_path)
    result = run(tmp_path / "coco", "--from", "coco", "--out", out)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.stderr == added_files_line(out, out / "NOTES.md", 3)
    assert tree(tmp_path) == before
    for path in (out / "NOTES.md", out / "train" / "images" / "extra.png", out / "train" / "masks" / "extra.png"):
        path.unlink()
    result = run(tmp_path / "coco", "--from", "coco", "--out", out)
    assert result.exit_code == 2 and result.stderr == added_files_line(out, out / "train" / "images_extra", 0)
    assert (out / "train" / "images_extra" / "keep.txt").read_text() == "keep me"
    (out / "train" / "images_extra" / "keep.txt").unlink()
    (out / "train" / "images_extra").rmdir()
    assert run(tmp_path / "coco", "--from", "coco", "--out", out).exit_code == 0


def test_an_earlier_conversion_without_a_file_list_owns_its_image_mask_pairs(tmp_path):
    write_coco(tmp_path / "coco")
    out = tmp_path / "data"
    assert run(tmp_path / "coco", "--from", "coco", "--out", out).exit_code == 0
    first = tree(out)
    legacy = {k: v for k, v in record(out).items() if k != "written"}  # as segcli wrote it before listing files
    (out / "convert.json").write_text(json.dumps({**legacy, "version": 1}, indent=2) + "\n")
    (out / "val" / "masks" / "notes.txt").write_text("mine")
    before = tree(tmp_path)
    result = run(tmp_path / "coco", "--from", "coco", "--out", out)
    assert result.exit_code == 2 and result.stderr == added_files_line(out, out / "val" / "masks" / "notes.txt", 0)
    assert tree(tmp_path) == before
    (out / "val" / "masks" / "notes.txt").unlink()
    assert run(tmp_path / "coco", "--from", "coco", "--out", out).exit_code == 0
    assert tree(out) == first


def test_replacing_a_conversion_from_another_source_says_so_in_one_note(tmp_path):
    write_coco(tmp_path / "coco")
    write_labelme(tmp_path / "lm")
    out = tmp_path / "data"
    first = run(tmp_path / "coco", "--from", "coco", "--out", out)
    assert first.exit_code == 0 and first.stderr == ""
    result = run(tmp_path / "lm", "--from", "labelme", "--out", out)
    assert result.exit_code == 0, result.output
    assert result.stderr == (f"note: replacing {out}, a conversion from coco ({(tmp_path / 'coco').resolve()}), "
                             f"with one from labelme ({(tmp_path / 'lm').resolve()}).\n")
    assert record(out)["options"]["format"] == "labelme"
    again = run(tmp_path / "lm", "--from", "labelme", "--out", out)
    assert again.exit_code == 0 and again.stderr == ""


def test_round_trip_mask_to_polygons_to_coco_to_mask_agrees_on_99_percent(tmp_path):
    # COCO's rasteriser keeps a pixel when its centre is inside the polygon, so a polygon through the centres
    # of a mask's boundary pixels gives back about half of them: at 256 px that is under 1% of the image.
    original = write_round_trip(tmp_path / "src", 256)
    result = run(tmp_path / "src" / "scene.json", "--from", "coco", "--out", tmp_path / "data")
    assert_one_image_written(result)
    converted = read_mask(tmp_path / "data" / "train" / "masks" / "scene.png")
    assert (converted == original).mean() >= 0.99
    for value in (1, 2, 3):  # each shape comes back where it was, with at most a one-pixel seam lost
        eroded = cv2.erode((original == value).astype(np.uint8), np.ones((3, 3), np.uint8))
        assert (converted[eroded > 0] == value).all()


def test_malformed_polygons_and_bracketed_names_are_reported_in_full(tmp_path, monkeypatch):
    write_png(tmp_path / "src" / "a.png", np.zeros((SIZE, SIZE, 3), np.uint8))

    def ann(i, polygon):
        return {"id": i, "image_id": 1, "category_id": 1, "segmentation": [polygon], "iscrowd": 0}

    coco = {"images": [{"id": 1, "file_name": "a.png", "width": SIZE, "height": SIZE},
                       {"id": 2, "file_name": "[draft] b.png", "width": SIZE, "height": SIZE}],
            "categories": [{"id": 1, "name": "thing"}],
            "annotations": [ann(1, [1, 1, 30, 1, 30, 30, 1]), ann(2, [1, 1, "x", 1, 30, 30]),
                            ann(3, [10, 10, 30, 10, 30, 30, 10, 30])]}
    (tmp_path / "src" / "a.json").write_text(json.dumps(coco))
    monkeypatch.chdir(tmp_path)  # short relative paths keep the table's rows on one line each
    result = run(Path("src") / "a.json", "--from", "coco", "--out", "data")
    assert_one_image_written(result)
    odd = "malformed polygon: an odd number of coordinates (7)"
    missing = "missing image: src/[draft] b.png does not exist"
    assert issues(tmp_path / "data") == {
        ("a.json", "annotation 1 ('thing')", "dropped", odd),
        ("a.json", "annotation 2 ('thing')", "dropped", "malformed polygon: not a list of finite numbers x1, y1, x2, "
                                                        "y2, ..."),
        ("a.json", "image [draft] b.png", "dropped", missing),
    }
    for text in (odd, "image [draft] b.png", missing):  # user text is shown as it is, not read as Rich markup
        assert text in result.stdout


def _bad_sources(tmp_path: Path) -> dict:
    """name -> (args, expected error line) for inputs that must fail with one clear line."""
    write_coco(tmp_path / "coco")
    write_cvat(tmp_path / "cvat")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "instances_train.json").write_text('{"images": [')
    (tmp_path / "broken" / "a.json").write_text('{"shapes": [}')
    (tmp_path / "broken" / "annotations.xml").write_text("<annotations><image name='a.png'")
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "video.xml").write_text("<annotations><track id='0' label='car'/></annotations>")
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "notes.txt").write_text("keep me")
    (tmp_path / "file_out").write_text("")
    twice = {"images": [], "annotations": [], "categories": [{"id": 1, "name": "thing"}, {"id": 1, "name": "dup"}]}
    (tmp_path / "twice.json").write_text(json.dumps(twice))
    (tmp_path / "clash").mkdir()
    for name, categories in (("instances_train.json", twice["categories"][:1]),
                             ("instances_val.json", twice["categories"][1:])):
        (tmp_path / "clash" / name).write_text(json.dumps({**twice, "categories": categories}))
    coco, cvat, broken, clash = tmp_path / "coco", tmp_path / "cvat", tmp_path / "broken", tmp_path / "clash"
    out = tmp_path / "data"
    return {
        "missing SRC": ((tmp_path / "nope", "--from", "coco", "--out", out),
                        f"{tmp_path / 'nope'}: no such file or folder; a coco source is {FORMATS['coco']}."),
        "unknown format": ((coco, "--from", "yolo", "--out", out),
                           "--from: unknown format 'yolo'; choose one of: coco, labelme, cvat, cityscapes, voc, ade20k."),
        "corrupt COCO JSON": ((broken / "instances_train.json", "--from", "coco", "--out", out),
                              f"{broken / 'instances_train.json'}: not valid JSON (line 1, column 13: Expecting "
                              f"value); fix or re-export it."),
        "corrupt LabelMe JSON": ((broken / "a.json", "--from", "labelme", "--out", out),
                                 f"{broken / 'a.json'}: not valid JSON (line 1, column 13: Expecting value); "
                                 f"fix it or remove it."),
        "corrupt CVAT XML": ((broken / "annotations.xml", "--from", "cvat", "--out", out),
                             f"{broken / 'annotations.xml'}: not valid XML (line 1, column 14: unclosed token); "
                             f"fix or re-export it."),
        "not COCO": ((tmp_path / "list.json", "--from", "coco", "--out", out),
                     f"{tmp_path / 'list.json'}: not a COCO instances file (it needs \"images\", \"annotations\" "
                     f"and \"categories\" lists)."),
        "CVAT for video": ((tmp_path / "video.xml", "--from", "cvat", "--out", out),
                           f"{tmp_path / 'video.xml'}: holds <track> elements (CVAT for video); export the task "
                           f"as 'CVAT for images 1.1'."),
        "category id twice in one file": ((tmp_path / "twice.json", "--from", "coco", "--out", out),
                                          f"{tmp_path / 'twice.json'}: category id 1 is listed twice in twice.json, "
                                          f"as 'thing' and as 'dup'; give each category id one name."),
        "category id named apart in two files": ((clash, "--from", "coco", "--out", out),
                                                 f"{clash / 'instances_val.json'}: category id 1 is 'dup' here but "
                                                 f"'thing' in {clash / 'instances_train.json'}; the files must share "
                                                 f"one category list."),
        "out inside SRC": ((coco, "--from", "coco", "--out", coco / "data"),
                           f"output folder {coco / 'data'} is inside the source {coco}; choose a folder outside it."),
        "out is SRC": ((coco, "--from", "coco", "--out", coco),
                       f"output folder {coco} is the source ({coco}); choose a new folder outside it."),
        "out inside the image folder": ((cvat / "annotations.xml", "--from", "cvat", "--out", cvat / "images" / "d"),
                                        f"output folder {cvat / 'images' / 'd'} is inside the image folder "
                                        f"{cvat / 'images'}; choose a folder outside it."),
        "out holds SRC": ((coco, "--from", "coco", "--out", tmp_path),
                          f"output folder {tmp_path} contains the source {coco}, which replacing it would delete; "
                          f"choose another folder."),
        "out holds other files": ((coco, "--from", "coco", "--out", tmp_path / "foreign"),
                                  f"output folder {tmp_path / 'foreign'} is not empty and holds no earlier "
                                  f"conversion (convert.json); give a new or empty folder."),
        "out under a file": ((coco, "--from", "coco", "--out", tmp_path / "file_out" / "data"),
                             f"output folder {tmp_path / 'file_out' / 'data'} cannot be created: "
                             f"{tmp_path / 'file_out'} is a file; choose another folder."),
        "out is a file": ((coco, "--from", "coco", "--out", tmp_path / "file_out"),
                          f"output folder {tmp_path / 'file_out'} is a file; give a folder for the dataset."),
        "class list for VOC": ((coco, "--from", "voc", "--classes", "cat", "--out", out),
                               "voc has a fixed class list (its 21 classes); convert without a class list."),
        "repeated class": ((coco, "--from", "coco", "--classes", "car,road,car", "--out", out),
                           "the class list names car more than once; give each class once."),
    }


def test_bad_input_gives_one_clear_line_exit_2_no_traceback_and_touches_nothing(tmp_path):
    cases = _bad_sources(tmp_path)
    before = tree(tmp_path)
    for name, (args, message) in cases.items():
        result = run(*args)
        assert result.exit_code == 2, (name, result.output)
        assert result.stderr == f"error: {message}\n", name
        assert "Traceback" not in result.output, name
    assert tree(tmp_path) == before and not (tmp_path / "data").exists()


def test_unreadable_and_unsupported_images_are_dropped_with_their_reason(tmp_path):
    write_coco(tmp_path / "coco")
    png = (tmp_path / "coco" / "b.png").read_bytes()
    (tmp_path / "coco" / "b.png").write_bytes(png[:len(png) // 3])
    Image.fromarray(np.zeros((SIZE, SIZE, 3), np.uint8)).save(tmp_path / "coco" / "c.gif")
    data = json.loads((tmp_path / "coco" / "instances_train.json").read_text())
    data["images"].append({"id": 3, "file_name": "c.gif", "width": SIZE, "height": SIZE})
    (tmp_path / "coco" / "instances_train.json").write_text(json.dumps(data))
    result = run(tmp_path / "coco", "--from", "coco", "--out", tmp_path / "data")
    assert_one_image_written(result)
    found = issues(tmp_path / "data")
    assert ("instances_val.json", "image b.png", "dropped",
            f"{tmp_path / 'coco' / 'b.png'}: not a readable image (corrupt or unsupported format)") in found
    assert ("instances_train.json", "image c.gif", "dropped",
            "segcli does not read .gif images; convert them to PNG or JPEG") in found
    assert not (tmp_path / "data" / "val").exists()


def test_segcli_process_converts_and_prints_json(tmp_path):
    write_cvat(tmp_path / "cvat")
    segcli = Path(sys.executable).with_name("segcli")
    command = [str(segcli)] if segcli.is_file() else [sys.executable, "-m", "segcli.cli.app"]
    proc = subprocess.run(command + ["data", "convert", str(tmp_path / "cvat"), "--from", "cvat", "--out",
                                     str(tmp_path / "data"), "--json"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    result = json.loads(proc.stdout)
    assert result["convert"]["images"] == {"train": 1, "val": 1}
    assert result["convert"]["annotations"] == {"background": 0, "road": 2, "car": 2}
    assert result["check"]["ok"] is True and result["check"]["pairs"] == {"train": 1, "val": 1}


def test_help_shows_examples_and_every_format():
    result = CliRunner().invoke(app, ["data", "convert", "--help"])
    assert result.exit_code == 0
    assert "segcli data convert coco/instances_train.json --from coco --out data/" in result.stdout
    assert all(name in result.stdout for name in FORMATS)


def test_compressed_rle_with_the_wrong_size_is_reported(tmp_path):
    write_png(tmp_path / "src" / "a.png", np.zeros((SIZE, SIZE, 3), np.uint8))
    blob = np.zeros((32, 32), bool)
    blob[4:8, 4:8] = True
    coco = {"images": [{"id": 1, "file_name": "a.png", "width": SIZE, "height": SIZE}],
            "categories": [{"id": 1, "name": "thing"}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "segmentation": coco_rle(blob), "iscrowd": 0},
                            {"id": 2, "image_id": 1, "category_id": 1, "iscrowd": 0,
                             "segmentation": {"size": [SIZE, SIZE], "counts": "!!"}}]}
    (tmp_path / "src" / "a.json").write_text(json.dumps(coco))
    result = run(tmp_path / "src" / "a.json", "--from", "coco", "--out", tmp_path / "data")
    assert_one_image_written(result)
    assert issues(tmp_path / "data") == {
        ("a.json", "annotation 1 ('thing')", "dropped", "RLE is 32x32 but the image is 64x64"),
        ("a.json", "annotation 2 ('thing')", "dropped",
         "unreadable RLE: character '!' cannot occur in a compressed RLE string"),
    }
