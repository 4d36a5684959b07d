"""Shared by the predict/eval tests: a tiny trained-looking model on disk and a messy input folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

CLASS_NAMES = ["background", "road", "tree", "sky"]
COLORS = [[0, 0, 0], [128, 64, 128], [0, 160, 0], [70, 130, 180]]

#: Files that must be predicted (relative path -> displayed (H, W)) and files that must fail.
GOOD = {
    "plain.jpg": (64, 64),
    "sub/deeper/nested.png": (64, 96),
    "name with spaces.png": (32, 64),
    "ünïcødé ñame.jpg": (64, 32),
    "deep16.png": (32, 32),
    "alpha.png": (64, 64),
    "gray.png": (32, 96),
    "palette.png": (32, 32),
    "rotated.jpg": (64, 32),  # stored 32x64 with EXIF orientation 6
    "tiny.png": (1, 1),
}
BAD = ["corrupt.jpg", "empty.png", "notes.png"]


def smooth(h, w, seed):
    import cv2

    rng = np.random.default_rng(seed)
    small = rng.uniform(0, 255, (max(2, h // 8), max(2, w // 8), 3)).astype(np.float32)
    return np.clip(cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC), 0, 255).astype(np.uint8)


def _png(path: Path, array) -> None:
    import cv2

    ok, buf = cv2.imencode(".png", array)
    assert ok
    buf.tofile(str(path))


def make_messy_dir(root: Path) -> Path:
    """Good images of every kind plus a corrupt JPEG, a zero-byte file and a text file named .png."""
    import cv2
    from PIL import Image

    root.mkdir(parents=True, exist_ok=True)
    (root / "sub" / "deeper").mkdir(parents=True)
    for i, (rel, (h, w)) in enumerate(GOOD.items()):
        path = root / rel
        rgb = smooth(h, w, i)
        if rel == "deep16.png":
            _png(path, (rgb.astype(np.uint16) * 257)[:, :, ::-1])
        elif rel == "alpha.png":
            _png(path, np.dstack([rgb[:, :, ::-1], np.full((h, w), 128, np.uint8)]))
        elif rel == "gray.png":
            _png(path, rgb[:, :, 0])
        elif rel == "palette.png":
            Image.fromarray(rgb).convert("P", palette=Image.ADAPTIVE, colors=16).save(path)
        elif rel == "rotated.jpg":
            exif = Image.Exif()
            exif[0x0112] = 6  # rotate 90 degrees clockwise on display
            Image.fromarray(smooth(w, h, i)).save(path, exif=exif.tobytes(), quality=95)
        elif rel.endswith(".jpg"):
            ok, buf = cv2.imencode(".jpg", rgb[:, :, ::-1])
            buf.tofile(str(path))
        else:
            _png(path, rgb[:, :, ::-1])
    ok, buf = cv2.imencode(".jpg", smooth(64, 64, 99))
    (root / "corrupt.jpg").write_bytes(buf.tobytes()[:200])
    (root / "empty.png").write_bytes(b"")
    (root / "notes.png").write_text("this is not an image\n")
    (root / "readme.txt").write_text("ignored: not an image extension\n")
    return root


def make_model(folder: Path, num_classes: int = 4, seed: int = 11):
    """A tiny SegFormer saved as FILE.keras and as a run directory (best.keras + classes.json)."""
    import keras

    from segcli.models.load import create_segmenter

    keras.utils.set_random_seed(seed)
    model = create_segmenter("segformer_test", num_classes=num_classes)
    # Make the classes depend clearly on colour so masks hold several classes.
    kernel = model.head.classifier.get_weights()
    kernel[0] = kernel[0] * 40
    model.head.classifier.set_weights(kernel)
    run = folder / "run"
    run.mkdir(parents=True)
    model.save(run / "best.keras")
    classes = [{"name": n, "color": c} for n, c in zip(CLASS_NAMES[:num_classes], COLORS)]
    (run / "classes.json").write_text(json.dumps({"classes": classes}))
    model.save(folder / "model.keras")
    return model, run, folder / "model.keras"


def model_argmax(model, image):
    """Independent reference: argmax of the full model's output at the image size."""
    return np.asarray(model(image[None].astype(np.float32), training=False))[0].argmax(-1)
