"""The bad-input matrix (issue 14, section 4): segcli run as a new user would, on the files a new user has.

Every case runs the real ``segcli`` console script in a subprocess with a timeout (no hang) and asserts:

- the exact ``error:`` / ``warning:`` line(s) on stderr (a stable prefix where a path is followed by a
  third-party message), and for an error exactly one such line, the last one on stderr;
- the exit code: 2 for an expected failure, 1 for predict with bad files among good ones (the good ones are
  written) and for a dataset that ``data check`` refuses, 0 for the success cases (0/255 masks: with a note);
- no "Traceback" anywhere in the output;
- the inputs untouched: every file under every input folder hashed before and after, and nothing new written
  inside an input folder (the one exception: predict's ``--out`` inside its input folder, which is allowed and
  never read as input).

Cases that load a model or train pay TensorFlow's start-up (5-25 s) and are marked slow.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from tests.processes import COMMAND

TIMEOUT = 180
LAYOUTS = ("expected DATA/images + DATA/masks, DATA/train/{images,masks} (+ DATA/val/{images,masks}), or "
           "DATA/img_dir/{train,val} + DATA/ann_dir/{train,val}")
BINARY_NOTE = ("note: masks hold only 0 and 255: read as 2 classes, background (0) and foreground (255), not as "
               "ignore; add classes.txt to override.")


# --- files a new user has -----------------------------------------------------------------------------------------
def rgb(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def png(path: Path, array: np.ndarray) -> Path:
    """Any array OpenCV writes: uint8/uint16, 1, 3 or 4 channels (BGR order)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(".png", array)
    assert ok
    path.write_bytes(buf.tobytes())
    return path


def jpeg_bytes(seed: int = 0) -> bytes:
    ok, buf = cv2.imencode(".jpg", rgb(32, 32, seed))
    assert ok
    return buf.tobytes()


def odd_images(folder: Path) -> list[str]:
    """Images that are unusual but valid: 16-bit, RGBA, grayscale, 1x1, CMYK JPEG, a unicode name with spaces."""
    png(folder / "deep16.png", rgb(32, 32, 1).astype(np.uint16) * 257)
    png(folder / "alpha.png", np.dstack([rgb(32, 32, 2), np.full((32, 32), 90, np.uint8)]))
    png(folder / "gray.png", rgb(32, 48, 3)[:, :, 0])
    png(folder / "one.png", rgb(1, 1, 4))
    Image.fromarray(rgb(32, 32, 5)).convert("CMYK").save(folder / "cmyk.jpg")
    assert Image.open(folder / "cmyk.jpg").mode == "CMYK"
    png(folder / "sub dir" / "ünï cødé ñame.png", rgb(48, 32, 6))
    return ["deep16", "alpha", "gray", "one", "cmyk", "sub dir/ünï cødé ñame"]


def bad_images(folder: Path) -> dict[str, str]:
    """A zero-byte file, a truncated JPEG, a PNG cut off in its pixel data, a PNG with a flipped byte and a
    symlink loop; name -> what predict says about it."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "zero.png").write_bytes(b"")
    (folder / "trunc.jpg").write_bytes(jpeg_bytes()[:300])
    ok, data = cv2.imencode(".png", rgb(32, 32, 7))  # IHDR (bytes 8-32), then IDAT from byte 33 (OpenCV's PNG)
    assert ok and data.tobytes()[37:41] == b"IDAT"
    (folder / "cut.png").write_bytes(data.tobytes()[:-30])
    flipped = bytearray(data.tobytes())
    flipped[60] ^= 0xFF
    (folder / "flipped.png").write_bytes(bytes(flipped))
    os.symlink("loop.png", folder / "loop.png")
    return {"zero.png": "empty file (0 bytes); remove it or replace it with a valid image.",
            "trunc.jpg": "not a readable image (corrupt or unsupported format); remove or replace it.",
            "cut.png": f"truncated PNG (it ends at byte {data.size - 30}, inside its IDAT chunk); replace it with a "
                       f"complete copy.",
            "flipped.png": "damaged PNG (its IDAT chunk at byte 33 fails its CRC check); replace it with a good copy.",
            "loop.png": "cannot be read (Too many levels of symbolic links); fix it or remove it."}


def dataset(root: Path, masks: list, classes: list | None = None, size: int = 32) -> Path:
    """A flat dataset: one random image per mask (``masks``: (H, W) or (H, W, 3) RGB arrays)."""
    for i, mask in enumerate(masks):
        h, w = mask.shape[:2]
        png(root / "images" / f"im{i}.png", rgb(h, w, i))
        png(root / "masks" / f"im{i}.png", mask[:, :, ::-1] if mask.ndim == 3 else mask)
    if classes is not None:
        (root / "classes.txt").write_text("\n".join(classes) + "\n")
    return root


def index_masks(n: int = 4, size: int = 32, bad_value: int | None = None) -> list:
    """3-class index masks; the first holds ``bad_value`` in a corner when given."""
    masks = []
    for i in range(n):
        mask = np.zeros((size, size), np.uint8)
        mask[4:20, 4:20] = 1
        mask[20:, 20:] = 2
        masks.append(mask)
    if bad_value is not None:
        masks[0][:4, :4] = bad_value
    return masks


def binary_masks(n: int = 4, size: int = 32) -> list:
    out = []
    for _ in range(n):
        mask = np.zeros((size, size), np.uint8)
        mask[8:24, 8:24] = 255
        out.append(mask)
    return out


def weights_folder(folder: Path, record: str) -> Path:
    folder.mkdir(parents=True)
    (folder / "model.weights.h5").write_bytes(b"not hdf5")
    (folder / "record.json").write_text(record)
    return folder


def coco(folder: Path, images: dict) -> Path:
    """A COCO instances file beside ``images`` (name -> bytes), one square of class "thing" on each."""
    folder.mkdir(parents=True, exist_ok=True)
    entries, annotations = [], []
    for i, (name, data) in enumerate(images.items(), 1):
        (folder / name).write_bytes(data)
        entries.append({"id": i, "file_name": name, "width": 32, "height": 32})
        annotations.append({"id": i, "image_id": i, "category_id": 1, "iscrowd": 0, "area": 256,
                            "bbox": [4, 4, 16, 16], "segmentation": [[4, 4, 20, 4, 20, 20, 4, 20]]})
    path = folder / "instances.json"
    path.write_text(json.dumps({"images": entries, "annotations": annotations,
                                "categories": [{"id": 1, "name": "thing"}]}))
    return path


def png_bytes(seed: int = 0) -> bytes:
    ok, buf = cv2.imencode(".png", rgb(32, 32, seed))
    assert ok
    return buf.tobytes()


# --- the runner ---------------------------------------------------------------------------------------------------
@dataclass
class Run:
    """One command line and what must come of it."""

    args: list
    inputs: list  # files and folders that must be left exactly as they were
    code: int
    lines: list  # expected error:/warning:/note: lines on stderr; an entry ending in "..." is a prefix
    quiet: bool = True  # nothing else on stderr (False: progress, a report table or notes may come too)
    out_inside: Path | None = None  # a folder inside an input that the command may write (predict --out)
    stdout_has: list = field(default_factory=list)
    check: object = None  # a callable(proc) with further assertions


def snapshot(paths: list, skip: Path | None = None) -> dict:
    """Every file, folder and symlink under ``paths`` -> its hash, "dir" or its link target (links not followed)."""
    seen = {}

    def add(path: Path):
        if path.is_symlink():
            seen[str(path)] = "-> " + os.readlink(path)
        elif path.is_dir():
            seen[str(path)] = "dir"
        elif path.exists():
            seen[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()

    for root in map(Path, paths):
        add(root)
        if root.is_dir() and not root.is_symlink():
            for dirpath, dirnames, filenames in os.walk(root):  # os.walk follows no symlinked folder: no loop
                here = Path(dirpath)
                if skip is not None and (here == skip or skip in here.parents):
                    dirnames[:] = []
                    continue
                for name in dirnames + filenames:
                    if skip is None or here / name != skip:
                        add(here / name)
    return seen


def matches(line: str, expected: str) -> bool:
    return line.startswith(expected[:-3]) if expected.endswith("...") else line == expected


def run_case(run: Run, cwd: Path, home: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("SEGCLI_MODEL", "FORCE_COLOR", "COLUMNS")}
    env.update(SEGCLI_HOME=str(home), NO_COLOR="1", TF_CPP_MIN_LOG_LEVEL="3", PYTHONIOENCODING="utf-8")
    before = snapshot(run.inputs, run.out_inside)
    proc = subprocess.run(COMMAND + [str(a) for a in run.args], cwd=cwd, env=env, capture_output=True, text=True,
                          encoding="utf-8", timeout=TIMEOUT)
    shown = f"exit {proc.returncode}\n--- stderr\n{proc.stderr}\n--- stdout\n{proc.stdout[-3000:]}"
    assert "Traceback" not in proc.stdout + proc.stderr, shown
    assert "[ WARN" not in proc.stderr and "libpng" not in proc.stderr, shown  # segcli names a bad file itself
    assert proc.returncode == run.code, shown
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    flagged = [line for line in lines if line.startswith(("error:", "warning:"))]
    assert len(flagged) == len([e for e in run.lines if not e.startswith("note:")]), shown
    for expected in run.lines:
        assert any(matches(line, expected) for line in lines), f"missing {expected!r}\n{shown}"
    if run.quiet:
        assert len(lines) == len(run.lines), shown
    errors = [line for line in lines if line.startswith("error:")]
    if errors:
        assert len(errors) == 1 and lines[-1] == errors[0], shown
    for text in run.stdout_has:
        assert text in proc.stdout, shown
    assert snapshot(run.inputs, run.out_inside) == before, "an input was changed or written into"
    if run.check:
        run.check(proc)
    return proc


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The tiny model (3 classes) every model-using case shares, made once, and a private SEGCLI_HOME."""
    import keras

    from segcli.models.load import create_segmenter

    root = tmp_path_factory.mktemp("bad_input")
    keras.utils.set_random_seed(0)
    create_segmenter("segformer_test", num_classes=3).save(root / "tiny.keras")
    (root / "home").mkdir()
    return {"model": root / "tiny.keras", "home": root / "home"}


# --- the cases: each takes (world, tmp) and returns a Run -----------------------------------------------------------
def predict_bad_files_in_a_good_folder(w, tmp):
    images = tmp / "in"
    good = odd_images(images)
    bad = bad_images(images)
    os.symlink("..", images / "sub dir" / "up")  # a folder loop: not followed, no hang

    def check(proc):
        summary = json.loads((tmp / "out" / "summary.json").read_text())
        assert summary["count"] == {**summary["count"], "inputs": 11, "written": 6, "failed": 5}
        for stem in good:
            assert np.asarray(Image.open(tmp / "out" / f"{stem}.png")).max() < 3, stem
        assert np.asarray(Image.open(tmp / "out" / "one.png")).shape == (1, 1)

    return Run(["predict", images, "--out", tmp / "out", "--model", w["model"]], [images], 1,
               [f"warning: skipped {images / name}: {why}" for name, why in bad.items()], quiet=False, check=check)


def predict_scientific_images(w, tmp):
    """What microscopes, cameras and GIS tools write: float TIFFs (one in a range with no known scale, one with NaN
    holes), a 16-bit PNG holding 12-bit data, a 3-page TIFF stack; the good ones are written, the others named."""
    images = tmp / "in"
    images.mkdir()
    assert cv2.imwrite(str(images / "unit.tif"), rgb(32, 32, 1) / np.float32(255))
    assert cv2.imwrite(str(images / "dem.tif"), np.linspace(-12.5, 3000, 32 * 32, dtype=np.float32).reshape(32, 32))
    holes = np.full((32, 32), 0.5, np.float32)
    holes[3, 4] = np.nan
    assert cv2.imwrite(str(images / "holes.tif"), holes)
    png(images / "camera12.png", rgb(32, 32, 2).astype(np.uint16) * 16)
    assert cv2.imwritemulti(str(images / "stack.tif"), [rgb(32, 32, seed) for seed in range(3)])

    def check(proc):
        summary = json.loads((tmp / "out" / "summary.json").read_text())
        assert summary["count"] == {**summary["count"], "inputs": 7, "written": 5, "failed": 2}
        assert [np.asarray(Image.open(tmp / "out" / "stack" / f"00000{k}.png")).shape for k in (1, 2, 3)] == \
            [(32, 32)] * 3

    why = "segcli reads float images scaled 0-1 or 0-255: rescale it to one of those, or save it as an 8-bit image."
    return Run(["predict", images, "--out", tmp / "out", "--model", w["model"]], [images], 1, [
        f"note: {images / 'stack.tif'} has 3 pages: each page is segmented on its own, into stack/000001.png to "
        f"stack/000003.png.",
        f"warning: skipped {images / 'dem.tif'}: a float image with values from -12.5 to 3000; {why}",
        f"warning: skipped {images / 'holes.tif'}: a float image with NaN or infinite pixels; fill them in, or save "
        f"it as an 8-bit image.",
        f"warning: {images / 'camera12.png'}: values up to {int(rgb(32, 32, 2).max()) * 16}; a 16-bit image holding "
        f"12-bit data, so it reads nearly black: multiply it by 16 to fill the 16 bits, or save it as an 8-bit image"],
        quiet=False, check=check)


def predict_out_inside_the_input_folder(w, tmp):
    images = tmp / "in"
    png(images / "a.png", rgb(32, 32))
    (images / "b.jpg").write_bytes(jpeg_bytes(1))
    (images / "empty.jpg").write_bytes(b"")
    png(images / "out" / "old.png", rgb(8, 8))  # an earlier run's output: never read as input

    def check(proc):
        summary = json.loads((images / "out" / "summary.json").read_text())
        assert (summary["count"]["inputs"], summary["count"]["written"]) == (3, 2)
        assert (images / "out" / "a.png").is_file() and (images / "out" / "b.png").is_file()

    return Run(["predict", images, "--out", images / "out", "--model", w["model"]], [images], 1,
               [f"warning: skipped {images / 'empty.jpg'}: empty file (0 bytes); remove it or replace it with a "
                f"valid image."], quiet=False, out_inside=images / "out", check=check)


def predict_corrupt_keras_file(w, tmp):
    model = tmp / "model.keras"
    model.write_bytes(os.urandom(2048))
    png(tmp / "in" / "a.png", rgb(32, 32))
    return Run(["predict", tmp / "in", "--out", tmp / "out", "--model", model], [tmp / "in", model], 2,
               [f"error: {model} cannot be loaded as a Keras model (BadZipFile: File is not a zip file); pass a "
                f"complete .keras file saved by segcli or Keras 3, or a run directory."])


def predict_weights_folder_with_bad_json(w, tmp):
    folder = weights_folder(tmp / "weights", "{not json")
    png(tmp / "in" / "a.png", rgb(32, 32))
    return Run(["predict", tmp / "in", "--out", tmp / "out", "--model", folder], [tmp / "in", folder], 2,
               [f"error: {folder / 'record.json'}: unreadable (..."])


def predict_weights_folder_with_a_record_that_is_no_object(w, tmp):
    folder = weights_folder(tmp / "weights", "[]")
    png(tmp / "in" / "a.png", rgb(32, 32))
    return Run(["predict", tmp / "in", "--out", tmp / "out", "--model", folder], [tmp / "in", folder], 2,
               [f"error: {folder / 'record.json'}: not a segcli weights record (not a JSON object); replace "
                f"{folder} with an intact copy or pass another model."])


def predict_unknown_model_name(w, tmp):
    png(tmp / "in" / "a.png", rgb(32, 32))
    return Run(["predict", tmp / "in", "--out", tmp / "out", "--model", "segformer_b9"], [tmp / "in"], 2,
               ["error: Unknown model 'segformer_b9': not a preset, not a name in the weights cache and no such "
                "file or folder. Did you mean: ..."])


def predict_empty_folder(w, tmp):
    (tmp / "in").mkdir()
    return Run(["predict", tmp / "in", "--out", tmp / "out", "--model", w["model"]], [tmp / "in"], 2,
               [f"error: no images found in {tmp / 'in'} (looked for .jpg, .jpeg, .png, .bmp, .tif, .tiff, .webp; "
                f"files under the output folder are never inputs)."])


def predict_missing_folder(w, tmp):
    return Run(["predict", tmp / "nope", "--out", tmp / "out", "--model", w["model"]], [], 2,
               [f"error: {tmp / 'nope'}: no such file or folder."])


def predict_out_under_a_file(w, tmp):
    png(tmp / "in" / "a.png", rgb(32, 32))
    (tmp / "file").write_text("x")
    return Run(["predict", tmp / "in", "--out", tmp / "file" / "out", "--model", w["model"]],
               [tmp / "in", tmp / "file"], 2,
               [f"error: --out {tmp / 'file' / 'out'}: {tmp / 'file'} is a file, not a folder; choose a folder for "
                f"the outputs."])


def predict_tile_without_slide_mode(w, tmp):
    png(tmp / "in" / "a.png", rgb(32, 32))

    def check(proc):
        assert not (tmp / "out").exists()  # refused before the model loads or anything is written

    return Run(["predict", tmp / "in", "--out", tmp / "out", "--model", w["model"], "--tile", "256"], [tmp / "in"], 2,
               ["error: --tile 256: only slide mode uses a tile; set mode to slide, or leave the tile out."],
               check=check)


def eval_stride_without_slide_mode(w, tmp):
    data = dataset(tmp / "data", index_masks(), ["background", "a", "b"])
    return Run(["eval", data, "--model", w["model"], "--stride", "64"], [data], 2,
               ["error: --stride 64: only slide mode uses a stride; set mode to slide, or leave the stride out."])


def eval_labels_above_the_class_count(w, tmp):
    data = dataset(tmp / "data", index_masks(bad_value=7), ["background", "a", "b"])
    return Run(["eval", data, "--model", w["model"]], [data], 2,
               [f"error: {data / 'masks' / 'im0.png'}: ground-truth labels [7] are outside the 3 classes 0..2 (and "
                f"not the ignore index 255); check the masks or the class count."])


def eval_0_255_masks_work_with_a_note(w, tmp):
    data = dataset(tmp / "data", binary_masks())
    return Run(["eval", data, "--model", w["model"]], [data], 0, [BINARY_NOTE], quiet=False, stdout_has=["mIoU"])


def eval_missing_folder(w, tmp):
    return Run(["eval", tmp / "nope", "--model", w["model"]], [], 2,
               [f"error: {tmp / 'nope'}: no such folder; give the dataset folder ({LAYOUTS})."])


def eval_empty_folder(w, tmp):
    (tmp / "data").mkdir()
    return Run(["eval", tmp / "data", "--model", w["model"]], [tmp / "data"], 2,
               [f"error: {tmp / 'data'}: empty folder; {LAYOUTS}."])


def eval_weights_folder_missing_keys(w, tmp):
    data = dataset(tmp / "data", index_masks(), ["background", "a", "b"])
    folder = weights_folder(tmp / "weights", '{"scope": "segmenter"}')
    return Run(["eval", data, "--model", folder], [data, folder], 2,
               [f"error: {folder / 'record.json'}: not a segcli weights record (no valid backbone_config, "
                f"num_classes, projection_filters); replace {folder} with an intact copy or pass another model."])


def train_labels_above_the_class_count(w, tmp):
    data = dataset(tmp / "data", index_masks(bad_value=9), ["background", "a", "b"])
    return Run(["train", data, "--preset", "segformer_test", "--out", tmp / "run", "--epochs", "1"], [data], 2,
               [f"error: {data}: the data check found 1 problem(s), training refused; first: "
                f"{data / 'masks' / 'im0.png'}: mask values [9] are outside the 3 classes 0..2 (255 = ignore); fix "
                f"the mask or list more classes in classes.txt."], quiet=False,  # the check's report comes first
               check=lambda proc: not (tmp / "run").exists() or pytest.fail("a refused run wrote its folder"))


def train_rgb_masks_without_a_palette(w, tmp):
    masks = [np.zeros((32, 32, 3), np.uint8) for _ in range(3)]
    for mask in masks:
        mask[8:24, 8:24] = (200, 0, 0)
    data = dataset(tmp / "data", masks, ["background", "thing"])
    return Run(["train", data, "--preset", "segformer_test", "--out", tmp / "run"], [data], 2,
               [f"error: {data}: the data check found 3 problem(s), training refused; first: "
                f"{data / 'masks' / 'im0.png'}: RGB colour mask but classes.txt gives no class colours; list the "
                f"classes in {data / 'classes.json'} with \"color\": [r, g, b]."], quiet=False)


def train_unknown_preset(w, tmp):
    data = dataset(tmp / "data", index_masks(), ["background", "a", "b"])
    return Run(["train", data, "--preset", "segformer_b9", "--out", tmp / "run"], [data], 2,
               ["error: Unknown model 'segformer_b9': not a preset, not a name in the weights cache and no such "
                "file or folder. Did you mean: ..."])


def train_corrupt_keras_file_as_preset(w, tmp):
    data = dataset(tmp / "data", index_masks(), ["background", "a", "b"])
    model = tmp / "start.keras"
    model.write_bytes(b"")
    return Run(["train", data, "--preset", model, "--out", tmp / "run", "--epochs", "1", "--image-size", "32"],
               [data, model], 2,
               [f"error: {model} cannot be loaded as a Keras model (BadZipFile: File is not a zip file); pass a "
                f"complete .keras file saved by segcli or Keras 3, or a run directory."], quiet=False)  # + notes


def train_out_under_a_file(w, tmp):
    data = dataset(tmp / "data", index_masks(), ["background", "a", "b"])
    (tmp / "file").write_text("x")
    return Run(["train", data, "--preset", "segformer_test", "--out", tmp / "file" / "run"], [data, tmp / "file"],
               2, [f"error: --out {tmp / 'file' / 'run'}: {tmp / 'file'} is a file, so the run cannot be written "
                   f"there; choose another folder."])


def train_missing_folder(w, tmp):
    return Run(["train", tmp / "nope", "--preset", "segformer_test", "--out", tmp / "run"], [], 2,
               [f"error: {tmp / 'nope'}: no such folder; give the dataset folder ({LAYOUTS})."])


def train_0_255_masks_work_with_a_note(w, tmp):
    data = dataset(tmp / "data", binary_masks())
    return Run(["train", data, "--preset", "segformer_test", "--out", tmp / "run", "--epochs", "1", "--image-size",
                "32", "--batch-size", "2", "--scratch"], [data], 0, [BINARY_NOTE, "note: no val split: ..."],
               quiet=False, check=lambda proc: (tmp / "run" / "best.keras").is_file() or pytest.fail("no best.keras"))


def check_labels_above_the_class_count(w, tmp):
    data = dataset(tmp / "data", index_masks(bad_value=5), ["background", "a", "b"])
    return Run(["data", "check", data], [data], 1,
               [f"error: {data}: 1 problem(s), first: {data / 'masks' / 'im0.png'}: mask values [5] are outside "
                f"the 3 classes 0..2 (255 = ignore); fix the mask or list more classes in classes.txt."],
               stdout_has=["NOT OK: 1 problem(s); fix them before training."])


def check_0_255_masks_work_with_a_note(w, tmp):
    data = dataset(tmp / "data", binary_masks())
    return Run(["data", "check", data], [data], 0, [],
               stdout_has=[BINARY_NOTE, "OK: the dataset can be trained on."])


def check_rgb_masks_without_a_palette(w, tmp):
    masks = [np.zeros((32, 32, 3), np.uint8) for _ in range(2)]
    for mask in masks:
        mask[8:24, 8:24] = (0, 0, 200)
    data = dataset(tmp / "data", masks, ["background", "thing"])
    fix = f'list the classes in {data / "classes.json"} with "color": [r, g, b].'
    return Run(["data", "check", data], [data], 1, [f"error: {data}: 2 problem(s), first: {data / 'masks'}/im..."],
               stdout_has=['with "color": [r, g, b].'],  # the table keeps "[r, g, b]" (it is not Rich markup)
               check=lambda proc: proc.stderr.endswith(f": RGB colour mask but classes.txt gives no class colours; "
                                                       f"{fix}\n") or pytest.fail(proc.stderr))


def check_reduce_zero_label_on_colour_masks(w, tmp):
    masks = [np.zeros((32, 32, 3), np.uint8) for _ in range(2)]
    for mask in masks:
        mask[8:24, 8:24] = (0, 0, 200)
    data = dataset(tmp / "data", masks)
    return Run(["data", "check", data, "--label-map", "reduce_zero_label"], [data], 2,
               ["error: reduce_zero_label is for masks of class indices, and these masks are colour images; map their "
                "colours with classes.json instead."])


def check_16_bit_mask(w, tmp):
    masks = index_masks()
    masks[1] = masks[1].astype(np.uint16) * 300
    data = dataset(tmp / "data", masks, ["background", "a", "b"])
    return Run(["data", "check", data], [data], 1,
               [f"error: {data}: 1 problem(s), first: {data / 'masks' / 'im1.png'}: mask values go up to 600; "
                f"segcli masks hold class indices 0-254 and 255 for ignore: save it as an 8-bit PNG of class "
                f"indices."])


def check_odd_images_pass_and_broken_ones_are_named(w, tmp):
    data = tmp / "data"
    stems = odd_images(data / "images")
    bad = bad_images(data / "images")
    for stem in stems + [Path(name).stem for name in bad]:
        size = (1, 1) if stem == "one" else (48, 32) if "ñame" in stem else (32, 48) if stem == "gray" else (32, 32)
        png(data / "masks" / f"{stem}.png", np.ones(size, np.uint8))
    (data / "classes.txt").write_text("background\nthing\n")

    def check(proc):
        report = json.loads(proc.stdout)
        assert sorted((Path(p["file"]).name, p["kind"]) for p in report["problems"]) == [
            ("cut.png", "unreadable"), ("flipped.png", "unreadable"), ("loop.png", "unreadable"),
            ("trunc.jpg", "unreadable"), ("zero.png", "unreadable")]
        assert report["pairs"] == {"train": 10, "val": 1}

    return Run(["data", "check", data, "--json"], [data], 1, [f"error: {data}: 5 problem(s), first: ..."],
               check=check)


def check_symlink_loops_in_the_dataset(w, tmp):
    data = dataset(tmp / "data", index_masks(), ["background", "a", "b"])
    (data / "masks" / "im2.png").unlink()
    os.symlink("im2.png", data / "masks" / "im2.png")  # the mask is a link to itself
    os.symlink("..", data / "images" / "up")  # a folder loop
    return Run(["data", "check", data], [data], 1,
               [f"error: {data}: 1 problem(s), first: {data / 'masks' / 'im2.png'}: cannot be read (Too many levels "
                f"of symbolic links); fix it or remove it."])


def check_empty_folder(w, tmp):
    (tmp / "data").mkdir()
    return Run(["data", "check", tmp / "data"], [tmp / "data"], 2, [f"error: {tmp / 'data'}: empty folder; {LAYOUTS}."])


def check_missing_folder(w, tmp):
    return Run(["data", "check", tmp / "nope"], [], 2,
               [f"error: {tmp / 'nope'}: no such folder; give the dataset folder ({LAYOUTS})."])


def convert_unknown_from_format(w, tmp):
    src = coco(tmp / "src", {"a.png": png_bytes()})
    return Run(["data", "convert", src, "--from", "yolo", "--out", tmp / "data"], [tmp / "src"], 2,
               ["error: --from: unknown format 'yolo'; choose one of: coco, labelme, cvat, cityscapes, voc, ade20k."])


def convert_out_inside_the_input_folder(w, tmp):
    src = coco(tmp / "src", {"a.png": png_bytes(), "ünï cødé ñame.png": png_bytes(1)})
    return Run(["data", "convert", src, "--from", "coco", "--out", tmp / "src" / "data"], [tmp / "src"], 2,
               [f"error: output folder {tmp / 'src' / 'data'} is inside the image folder {tmp / 'src'}; choose a "
                f"folder outside it."])


def convert_out_under_a_file(w, tmp):
    src = coco(tmp / "src", {"a.png": png_bytes()})
    (tmp / "file").write_text("x")
    return Run(["data", "convert", src, "--from", "coco", "--out", tmp / "file" / "data"], [tmp / "src", tmp / "file"],
               2, [f"error: output folder {tmp / 'file' / 'data'} cannot be created: {tmp / 'file'} is a file; "
                   f"choose another folder."])


def convert_missing_source(w, tmp):
    return Run(["data", "convert", tmp / "nope.json", "--from", "coco", "--out", tmp / "data"], [], 2,
               [f"error: {tmp / 'nope.json'}: no such file or folder; a coco source is a COCO instances .json file, "
                f"or a folder with *train*.json and *val*.json (in it or one level down)."])


def convert_zero_byte_annotation_file(w, tmp):
    (tmp / "src").mkdir()
    (tmp / "src" / "instances.json").write_bytes(b"")
    return Run(["data", "convert", tmp / "src" / "instances.json", "--from", "coco", "--out", tmp / "data"],
               [tmp / "src"], 2, [f"error: {tmp / 'src' / 'instances.json'}: not valid JSON (..."])


def convert_every_image_broken(w, tmp):
    src = coco(tmp / "src", {"zero.png": b"", "trunc.jpg": jpeg_bytes()[:300]})
    return Run(["data", "convert", src, "--from", "coco", "--out", tmp / "data"], [tmp / "src"], 2,
               [f"error: {src}: none of its 2 images could be converted; first: ..."],
               check=lambda proc: not (tmp / "data").exists() or pytest.fail("a failed conversion left --out"))


def convert_empty_labelme_folder(w, tmp):
    (tmp / "src").mkdir()
    return Run(["data", "convert", tmp / "src", "--from", "labelme", "--out", tmp / "data"], [tmp / "src"], 2,
               [f"error: {tmp / 'src'}: no LabelMe .json files found (searched the folder and its subfolders)."])


def export_bad_format(w, tmp):
    return Run(["export", "--model", w["model"], "--format", "pb", "--out", tmp / "m.pb"], [w["model"]], 2,
               ["error: --format pb: use one of savedmodel, onnx, tflite, openvino."])


def export_wrong_suffix(w, tmp):
    return Run(["export", "--model", w["model"], "--format", "tflite", "--out", tmp / "m.onnx"], [w["model"]], 2,
               [f"error: --out {tmp / 'm.onnx'}: a TFLite export must end with .tflite."])


def export_corrupt_keras_file(w, tmp):
    model = tmp / "model.keras"
    model.write_bytes(b"PK\x03\x04 truncated")
    return Run(["export", "--model", model, "--format", "savedmodel", "--out", tmp / "sm"], [model], 2,
               [f"error: {model} cannot be loaded as a Keras model (BadZipFile: File is not a zip file); pass a "
                f"complete .keras file saved by segcli or Keras 3, or a run directory."])


def export_unknown_model_name(w, tmp):
    return Run(["export", "--model", "segformer_b9", "--format", "savedmodel", "--out", tmp / "sm"], [], 2,
               ["error: Unknown model 'segformer_b9': not a preset, not a name in the weights cache and no such "
                "file or folder. Did you mean: ..."])


def export_out_under_a_file(w, tmp):
    (tmp / "file").write_text("x")
    return Run(["export", "--model", w["model"], "--format", "savedmodel", "--out", tmp / "file" / "sm"],
               [w["model"], tmp / "file"], 2,
               [f"error: --out {tmp / 'file' / 'sm'}: {tmp / 'file'} is a file, so nothing can be written there; "
                f"choose another path."])


def export_overwrite_of_a_folder_of_other_files(w, tmp):
    folder = tmp / "mine"  # even beside a model.xml: --overwrite replaces an earlier export, not the user's files
    (folder / "sub").mkdir(parents=True)
    (folder / "model.xml").write_text("<net/>\n")
    (folder / "notes.txt").write_text("my notes\n")
    (folder / "sub" / "data.csv").write_text("a,b\n1,2\n")
    return Run(["export", "--model", w["model"], "--format", "openvino", "--out", folder, "--overwrite"],
               [w["model"], folder], 2,
               [f"error: --out {folder} holds notes.txt, which an OpenVINO export does not write; choose a new --out "
                f"or move the files."])


def export_overwrite_of_a_folder_at_a_file_path(w, tmp):
    folder = tmp / "m.tflite"
    folder.mkdir()
    (folder / "data.csv").write_text("a,b\n")
    return Run(["export", "--model", w["model"], "--format", "tflite", "--out", folder, "--overwrite"],
               [w["model"], folder], 2,
               [f"error: --out {folder} is a folder, not a TFLite file; choose a new --out or move the files."])


def export_negative_sample_size(w, tmp):
    return Run(["export", "--model", w["model"], "--format", "tflite", "--out", tmp / "m.tflite", "--sample-size",
                "-32"], [w["model"]], 2,
               ["error: --sample-size -32: smaller than 32 pixels; SegFormer downsamples by 32, use at least 32."],
               check=lambda proc: not list(tmp.iterdir()) or pytest.fail("a refused export wrote files"))


def synth_out_under_a_file(w, tmp):
    (tmp / "file").write_text("x")
    return Run(["data", "synth", tmp / "file" / "shapes", "--n", "2", "--size", "32"], [tmp / "file"], 2,
               [f"error: {tmp / 'file' / 'shapes'} cannot be created: {tmp / 'file'} is a file; choose another "
                f"folder."])


def synth_into_a_folder_of_other_files(w, tmp):
    png(tmp / "mine" / "train" / "images" / "a.png", rgb(32, 32))
    return Run(["data", "synth", tmp / "mine", "--n", "2", "--size", "32"], [tmp / "mine"], 2,
               [f"error: {tmp / 'mine'} is not empty and holds no earlier synthetic set; give a new or empty "
                f"folder."])


def bench_data_that_is_no_folder(w, tmp):
    return Run(["bench", "--model", w["model"], "--data", tmp / "nope"], [w["model"]], 2,
               [f"error: --data {tmp / 'nope'}: no such folder; give a folder of images."])


def bench_unknown_format(w, tmp):
    return Run(["bench", "--model", w["model"], "--formats", "keras,pb"], [w["model"]], 2,
               ["error: --formats pb: use some of keras, savedmodel, onnx, tflite, openvino."])


def bench_image_size_below_32(w, tmp):
    return Run(["bench", "--image-size", "31"], [], 2,
               ["error: --image-size 31: smaller than 32 pixels; SegFormer downsamples by 32, use at least 32."])


def weights_import_damaged_safetensors(w, tmp):
    (tmp / "hf").mkdir()
    (tmp / "hf" / "config.json").write_text('{"model_type": "segformer"}')
    (tmp / "hf" / "model.safetensors").write_bytes(b"cut")
    return Run(["weights", "import", tmp / "hf", "--as", "mine"], [tmp / "hf"], 2,
               [f"error: {tmp / 'hf' / 'model.safetensors'} cannot be read as safetensors (..."],
               check=lambda proc: not (w["home"] / "weights" / "mine").exists() or pytest.fail("an entry was left"))


def weights_fetch_a_typo_after_a_good_name(w, tmp):
    """The typo stops the command before anything is fetched (no download starts, no progress line)."""
    return Run(["weights", "fetch", "segformer_b0_ade20k_512", "segformer_b0_ade20k_521"], [], 2,
               ["error: Unknown preset 'segformer_b0_ade20k_521'. ..."])

#: Cases that start TensorFlow (load a model or train) and so take more than ~5 s.
SLOW = {predict_bad_files_in_a_good_folder, predict_scientific_images, predict_out_inside_the_input_folder, predict_corrupt_keras_file,
        eval_labels_above_the_class_count, eval_0_255_masks_work_with_a_note, train_corrupt_keras_file_as_preset,
        train_0_255_masks_work_with_a_note, export_corrupt_keras_file}

CASES = [predict_bad_files_in_a_good_folder, predict_scientific_images, predict_out_inside_the_input_folder, predict_corrupt_keras_file,
         predict_weights_folder_with_bad_json, predict_weights_folder_with_a_record_that_is_no_object,
         predict_unknown_model_name, predict_empty_folder, predict_missing_folder, predict_out_under_a_file,
         predict_tile_without_slide_mode, eval_stride_without_slide_mode,
         eval_labels_above_the_class_count, eval_0_255_masks_work_with_a_note, eval_missing_folder, eval_empty_folder,
         eval_weights_folder_missing_keys,
         train_labels_above_the_class_count, train_rgb_masks_without_a_palette, train_unknown_preset,
         train_corrupt_keras_file_as_preset, train_out_under_a_file, train_missing_folder,
         train_0_255_masks_work_with_a_note,
         check_labels_above_the_class_count, check_0_255_masks_work_with_a_note, check_rgb_masks_without_a_palette,
         check_reduce_zero_label_on_colour_masks, check_16_bit_mask, check_odd_images_pass_and_broken_ones_are_named,
         check_symlink_loops_in_the_dataset,
         check_empty_folder, check_missing_folder,
         convert_unknown_from_format, convert_out_inside_the_input_folder, convert_out_under_a_file,
         convert_missing_source, convert_zero_byte_annotation_file, convert_every_image_broken,
         convert_empty_labelme_folder,
         export_bad_format, export_wrong_suffix, export_corrupt_keras_file, export_unknown_model_name,
         export_out_under_a_file, export_overwrite_of_a_folder_of_other_files,
         export_overwrite_of_a_folder_at_a_file_path, export_negative_sample_size,
         synth_out_under_a_file, synth_into_a_folder_of_other_files,
         bench_data_that_is_no_folder, bench_unknown_format, bench_image_size_below_32,
         weights_import_damaged_safetensors, weights_fetch_a_typo_after_a_good_name]


@pytest.mark.parametrize("case", [pytest.param(c, id=c.__name__, marks=[pytest.mark.slow] if c in SLOW else [])
                                  for c in CASES])
def test_bad_input(case, world, tmp_path):
    run_case(case(world, tmp_path), tmp_path, world["home"])


def test_the_matrix_covers_every_command_and_at_least_25_cases():
    commands = {c.__name__.split("_")[0] for c in CASES}
    assert commands == {"predict", "eval", "train", "check", "convert", "synth", "export", "bench", "weights"}
    assert len(CASES) >= 25 and len({c.__name__ for c in CASES}) == len(CASES)


def test_the_readme_gives_the_matrix_s_size():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    assert f"is the bad-input matrix: {len(CASES)} cases that run the real" in readme
