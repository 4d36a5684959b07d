"""evaluate(): its numbers equal a per-pixel NumPy reference over the model's own argmax."""

from __future__ import annotations

import json

import numpy as np
import pytest

from segcli.data.image_io import encode_png, read_image, write_atomic
from segcli.inference.evaluate import evaluate
from segcli.errors import DataError
from tests.inference.predict_fixtures import CLASS_NAMES, make_model, model_argmax, smooth
from tests.inference.test_metrics import reference


def make_dataset(root, model, sizes=((64, 64), (32, 96), (64, 32)), num_classes=4):
    """A split-layout dataset whose labels agree with the model on part of each image, with 255 ignore."""
    for split, seeds in (("train", (1, 2)), ("val", (3, 4, 5))):
        for seed in seeds:
            h, w = sizes[seed % len(sizes)]
            image = smooth(h, w, seed)
            pred = model_argmax(model, image)
            rng = np.random.default_rng(seed)
            label = np.where(rng.random((h, w)) < 0.7, pred, rng.integers(0, num_classes - 1, (h, w)))
            label[rng.random((h, w)) < 0.1] = 255
            label[label == num_classes - 1] = 0  # the last class never appears in the labels
            write_atomic(root / split / "images" / f"s{seed}.png", encode_png(image))
            write_atomic(root / split / "masks" / f"s{seed}.png", encode_png(label.astype(np.uint8)))
    (root / "classes.json").write_text(json.dumps(CLASS_NAMES[:num_classes]))
    return root


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    model, run, keras_file = make_model(root / "models")
    return {"model": model, "run": run, "keras": keras_file, "data": make_dataset(root / "data", model)}


def expected_metrics(world, split_names=("val",)):
    from segcli.data.image_io import read_mask

    gts, preds = [], []
    for split in split_names:
        for image_path in sorted((world["data"] / split / "images").glob("*.png")):
            gts.append(read_mask(world["data"] / split / "masks" / image_path.name))
            preds.append(model_argmax(world["model"], read_image(image_path)))
    return reference(gts, preds, 4), sum(int((g != 255).sum()) for g in gts)


def test_metrics_match_numpy_reference(world):
    result = evaluate(world["data"], str(world["run"]), batch_size=2, precision="fp32")
    ref, pixels = expected_metrics(world)
    assert result["split"] == "val" and result["images"] == 3 and result["pixels"] == pixels
    assert result["miou"] == pytest.approx(ref["miou"], abs=1e-3)
    assert result["pixel_accuracy"] == pytest.approx(ref["aacc"], abs=1e-3)
    assert result["mean_accuracy"] == pytest.approx(ref["macc"], abs=1e-3)
    assert [c["name"] for c in result["per_class"]] == CLASS_NAMES
    ious = [c["iou"] for c in result["per_class"]]
    np.testing.assert_allclose(np.array([np.nan if v is None else v for v in ious]), ref["iou"], atol=1e-3)
    assert np.array(result["confusion"]).sum() == pixels


def test_all_split_and_slide_mode(world, tmp_path):
    result = evaluate(world["data"], str(world["keras"]), split="all", mode="slide", tile=32, stride=16)
    assert result["images"] == 5 and result["split"] == "all" and result["mode"] == "slide"
    assert 0.0 <= result["miou"] <= 1.0
    # One 64x64 tile per 64x64 image: slide mode runs exactly what whole mode runs, so every pixel agrees.
    square = make_dataset(tmp_path / "square", world["model"], sizes=((64, 64),))
    whole = evaluate(square, str(world["keras"]), split="all", mode="whole")
    slide = evaluate(square, str(world["keras"]), split="all", mode="slide", tile=64, stride=64)
    assert slide["confusion"] == whole["confusion"] and slide["images"] == whole["images"] > 0


def test_class_count_mismatch_and_bad_labels(world, tmp_path):
    (tmp_path / "three").mkdir()
    data = make_dataset(tmp_path / "three", world["model"])
    (data / "classes.json").write_text(json.dumps(["a", "b", "c"]))
    with pytest.raises(DataError) as exc:
        evaluate(data, str(world["run"]))
    assert str(exc.value) == (f"{data / 'classes.json'}: lists 3 classes but the model predicts 4; evaluate with "
                              f"the model trained on this class list.")
    data = make_dataset(tmp_path / "bad", world["model"])
    write_atomic(data / "val" / "masks" / "s4.png", encode_png(np.full((32, 96), 9, np.uint8)))
    (data / "classes.json").unlink()
    with pytest.raises(DataError) as exc:
        evaluate(data, str(world["run"]), batch_size=1)
    assert str(exc.value) == (f"{data / 'val' / 'masks' / 's4.png'}: ground-truth labels [9] are outside the 4 "
                              f"classes 0..3 (and not the ignore index 255); check the masks or the class count.")


def test_mask_size_mismatch_is_named(world, tmp_path):
    data = make_dataset(tmp_path / "d", world["model"])
    write_atomic(data / "val" / "masks" / "s3.png", encode_png(np.zeros((10, 12), np.uint8)))
    with pytest.raises(DataError) as exc:
        evaluate(data, str(world["run"]))
    image = data / "val" / "images" / "s3.png"
    assert str(exc.value) == (f"{data / 'val' / 'masks' / 's3.png'}: mask is 12x10 but {image} is "
                              f"{read_image(image).shape[1]}x{read_image(image).shape[0]}; they must match.")


def test_images_and_masks_left_out_are_counted_in_the_notes(world, tmp_path):
    data = make_dataset(tmp_path / "d", world["model"])
    for name in ("lonely1.png", "lonely2.png"):
        write_atomic(data / "val" / "images" / name, encode_png(np.zeros((32, 32, 3), np.uint8)))
    write_atomic(data / "val" / "masks" / "orphan.png", encode_png(np.zeros((32, 32), np.uint8)))
    write_atomic(data / "train" / "images" / "lonely3.png", encode_png(np.zeros((32, 32, 3), np.uint8)))
    result = evaluate(data, str(world["run"]))
    assert result["images"] == 3 and result["notes"] == [
        f"2 images without a mask and 1 mask without an image were left out (segcli data check {data} lists them)."]
    result = evaluate(data, str(world["run"]), split="train")
    assert result["images"] == 2 and result["notes"] == [
        f"1 image without a mask was left out (segcli data check {data} lists them)."]
    assert evaluate(data, str(world["run"]), split="all")["notes"] == [
        f"3 images without a mask and 1 mask without an image were left out (segcli data check {data} lists them)."]


def test_an_image_name_used_twice_is_a_note_naming_the_scored_file(world, tmp_path):
    data = make_dataset(tmp_path / "d", world["model"])
    write_atomic(data / "val" / "images" / "s3.jpg", encode_png(np.zeros((64, 32, 3), np.uint8)))
    result = evaluate(data, str(world["run"]))
    assert result["images"] == 3 and result["notes"] == [
        f"1 name is used by several files in one folder: scored val/images/s3.png, not val/images/s3.jpg "
        f"(segcli data check {data} lists them)."]


def test_size_mismatch_after_exif_rotation_says_so(world, tmp_path):
    from PIL import Image

    data = make_dataset(tmp_path / "d", world["model"])
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(np.zeros((32, 96, 3), np.uint8)).save(data / "val" / "images" / "s4.png", exif=exif)
    with pytest.raises(DataError) as exc:
        evaluate(data, str(world["run"]), batch_size=1)
    image = data / "val" / "images" / "s4.png"
    assert str(exc.value) == (f"{data / 'val' / 'masks' / 's4.png'}: mask is 96x32 but {image} "
                              f"is 32x96 after its EXIF rotation (stored as 96x32); they must match (rotate the mask "
                              f"the same way, or remove the image's EXIF orientation tag).")
