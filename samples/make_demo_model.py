"""Turn a ``segcli train`` run into samples/demo_model: a segcli weights folder stored in float16.

Run from the repository root::

    .venv/bin/python samples/make_demo_model.py RUN_DIR [--out samples/demo_model] [--note TEXT]

It loads ``RUN_DIR/best.keras`` through segcli's model factory, saves it with
``factory.save_folder`` (``model.weights.h5`` + ``record.json``), then rewrites the
weights file with every float32 array stored as float16, gzip-compressed. Keras casts
the arrays back to float32 when it loads them, so ``segcli predict --model samples/demo_model``
runs in float32 as before; the file is half the size. The script then loads the folder
again and compares it with the float32 model on ``samples/val``: it stops with an error if
more than 0.1% of the pixels change class.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np

SAMPLES = Path(__file__).resolve().parent
MAX_CHANGED_PIXELS = 0.001


def to_float16(src: Path, dst: Path) -> None:
    """Copy a Keras ``.weights.h5`` file with float32 datasets stored as gzip-compressed float16."""
    import h5py

    with h5py.File(src, "r") as fin, h5py.File(dst, "w") as fout:
        for key, value in fin.attrs.items():
            fout.attrs[key] = value

        def copy(name, obj):
            if isinstance(obj, h5py.Group):
                fout.require_group(name)
            else:
                data = obj[()]
                if data.dtype == np.float32:
                    data = data.astype(np.float16)
                options = {"compression": "gzip", "compression_opts": 9, "shuffle": True} if data.size > 64 else {}
                fout.create_dataset(name, data=data, **options)
            for key, value in obj.attrs.items():
                fout[name].attrs[key] = value

        fin.visititems(copy)


def _val_images() -> list[np.ndarray]:
    from segcli.data.image_io import read_image

    return [read_image(p) for p in sorted((SAMPLES / "val" / "images").glob("*.png"))]


def _masks(model, images) -> np.ndarray:
    from segcli.inference.predictor import Predictor

    return np.stack([p.mask for p in Predictor(model, batch_size=8).predict(images)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--out", type=Path, default=SAMPLES / "demo_model")
    parser.add_argument("--note", default="", help="How the run was made (kept in record.json as 'training').")
    args = parser.parse_args()

    from segcli.models.load import load, save_folder
    from segcli.checkpoints.cache import RECORD_FILE, WEIGHTS_FILE, sha256_file

    model = load(args.run_dir).model
    classes = json.loads((args.run_dir / "classes.json").read_text())
    classes = classes["classes"] if isinstance(classes, dict) else classes
    work = Path(tempfile.mkdtemp(prefix=".demo_model.", dir=args.out.parent))
    try:
        full = save_folder(model, work / "float32", classes=classes,
                           source="segcli train on `segcli data synth` images; see samples/README.md")
        half = work / "float16"
        half.mkdir()
        to_float16(full / WEIGHTS_FILE, half / WEIGHTS_FILE)
        record = json.loads((full / RECORD_FILE).read_text())
        record.update(sha256=sha256_file(half / WEIGHTS_FILE), size_bytes=(half / WEIGHTS_FILE).stat().st_size,
                      stored_dtype="float16 (gzip); Keras loads it as float32")
        if args.note:
            record["training"] = args.note
        (half / RECORD_FILE).write_text(json.dumps(record, indent=2) + "\n")

        reloaded = load(half).model
        dtypes = {v.dtype for v in reloaded.weights}
        if dtypes != {"float32"}:
            raise SystemExit(f"reloaded weights are {sorted(dtypes)}, expected float32")
        images = _val_images()
        changed = float(np.mean(_masks(model, images) != _masks(reloaded, images)))
        print(f"float16 weights: {record['size_bytes']:,} bytes (float32: {(full / WEIGHTS_FILE).stat().st_size:,}); "
              f"pixels whose class changes on samples/val: {100 * changed:.4f}%")
        if changed > MAX_CHANGED_PIXELS:
            raise SystemExit(f"float16 storage changes {100 * changed:.3f}% of the pixels; keep float32")
        if args.out.exists():
            shutil.rmtree(args.out)
        half.rename(args.out)
        print(f"wrote {args.out}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
