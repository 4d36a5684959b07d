"""The run directory of ``segcli train``: what is in it, how it is written, and who writes it.

Files (all written to a temporary name, then renamed, so a run killed at any moment leaves whole files):

* ``config.json``: every resolved setting; ``classes.json``: names and colours;
* ``splits/train.txt``, ``splits/val.txt``: ``image<TAB>mask`` per line, relative to the dataset;
* ``best.keras``: the model with the best val mIoU (softmax output, loads with ``keras.saving.load_model``);
* ``last.ckpt.npz``: model weights, both optimizers' state, the epoch and the metrics history;
* ``metrics.csv``: one row per finished epoch; ``logs/``: TensorBoard; ``cache/``: decoded pairs (``cache="disk"``).

:class:`RunWriter` is the chief's writer: it writes the start files once and, after each epoch, best.keras
(when improved), the checkpoint, metrics.csv and the TensorBoard scalars.

>>> import tempfile
>>> run = Path(tempfile.mkdtemp())
>>> write_json(run / "config.json", {"epochs": 2})
>>> read_json(run / "config.json")
{'epochs': 2}
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from pathlib import Path

import numpy as np

from segcli.data.image_io import write_atomic
from segcli.errors import CheckpointError
from segcli.train.settings import SettingError

CONFIG = "config.json"
CLASSES = "classes.json"
SPLITS_DIR = "splits"
BEST = "best.keras"
LAST = "last.ckpt.npz"
METRICS = "metrics.csv"
LOGS = "logs"
CACHE_DIR = "cache"
RUN_FILES = (CONFIG, CLASSES, SPLITS_DIR, BEST, LAST, METRICS, LOGS, CACHE_DIR)
TENSORBOARD_KEYS = ("train_loss", "val_miou", "val_pixel_accuracy", "lr_backbone", "lr_head", "images_per_sec")
METRIC_COLUMNS = ("epoch", "train_loss", "val_miou", "val_pixel_accuracy", "val_mean_accuracy", "lr_backbone",
                  "lr_head", "images_per_sec", "seconds", "best")


def write_json(path, data) -> None:
    write_atomic(path, (json.dumps(data, indent=2) + "\n").encode())


def read_json(path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: cannot be read ({exc}); the run directory is damaged.") from None


def prepare(out: Path, resume: bool, overwrite: bool) -> None:
    """Refuse a non-empty ``out`` unless resuming or overwriting; ``overwrite`` removes only run files."""
    if out.exists() and not out.is_dir():
        raise SettingError(f"`out` {out} is a file; give a folder for the run.")
    if resume and overwrite:
        raise SettingError("`resume` and `overwrite` contradict each other; pick one.")
    existing = next(p for p in [out.absolute(), *out.absolute().parents] if p.exists())
    if not existing.is_dir():
        raise SettingError(f"`out` {out}: {existing} is a file, so the run cannot be written there; choose another "
                           f"folder.")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise SettingError(f"`out` {out}: cannot write in {existing}; choose a writable folder.")
    exists = out.is_dir() and any(out.iterdir())
    if resume:
        if not (out / CONFIG).is_file():
            raise SettingError(f"`resume`: {out} holds no run ({CONFIG} missing); drop `resume` to start a new run.")
        for stale in list(out.glob(".*.tmp")) + list(out.glob(".*.tmp.keras")):  # left by a killed run
            stale.unlink(missing_ok=True)
        return
    if exists and not overwrite:
        raise SettingError(f"`out` {out} is not empty; pass `resume` to continue that run or `overwrite` to replace "
                           f"it.")
    if exists:
        for name in RUN_FILES:
            path = out / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()


def write_splits(out: Path, ds) -> None:
    for split, pairs in ds.splits.items():
        lines = [f"{p.image.relative_to(ds.root).as_posix()}\t{p.mask.relative_to(ds.root).as_posix()}"
                 for p in pairs]
        write_atomic(out / SPLITS_DIR / f"{split}.txt", ("\n".join(lines) + "\n").encode())


def read_splits(out: Path, root: Path):
    """{split: [(image, mask)]} as written by :func:`write_splits`, or None."""
    folder = out / SPLITS_DIR
    if not folder.is_dir():
        return None
    result = {}
    for split in ("train", "val"):
        path = folder / f"{split}.txt"
        if path.is_file():
            result[split] = [tuple(root / part for part in line.split("\t"))
                             for line in path.read_text().splitlines() if line.strip()]
    return result


def write_metrics(out: Path, rows: list) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=METRIC_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: row.get(k) for k in METRIC_COLUMNS})
    write_atomic(out / METRICS, buf.getvalue().encode())


def save_checkpoint(path: Path, weights: list, optimizer_states: list, state: dict) -> None:
    """One .npz file: model weights, optimizer variables, and ``state`` as JSON. Atomic."""
    arrays = {f"w{i}": np.asarray(w) for i, w in enumerate(weights)}
    for k, values in enumerate(optimizer_states):
        arrays.update({f"o{k}_{i}": np.asarray(v) for i, v in enumerate(values)})
    state = {**state, "n_weights": len(weights), "n_optimizer_vars": [len(v) for v in optimizer_states]}
    arrays["state"] = np.frombuffer(json.dumps(state).encode(), dtype=np.uint8)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load_checkpoint(path: Path):
    """(weights, optimizer_states, state) from :func:`save_checkpoint`."""
    try:
        with np.load(path, allow_pickle=False) as data:
            state = json.loads(data["state"].tobytes().decode())
            weights = [data[f"w{i}"] for i in range(state["n_weights"])]
            opts = [[data[f"o{k}_{i}"] for i in range(n)] for k, n in enumerate(state["n_optimizer_vars"])]
    except (OSError, ValueError, KeyError) as exc:
        raise CheckpointError(f"{path}: damaged checkpoint ({exc}); remove it to restart the run.") from None
    return weights, opts, state


def saved_epoch(out: Path) -> int:
    """The last finished epoch that ``out``'s checkpoint holds (0: none, or no readable checkpoint)."""
    try:
        with np.load(Path(out) / LAST, allow_pickle=False) as data:
            return int(json.loads(data["state"].tobytes().decode())["epoch"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def save_best(clone, out: Path) -> None:
    """Save ``clone`` (the float32 softmax copy of the model) as ``best.keras``, atomically."""
    tmp = out / f".best.{os.getpid()}.tmp.keras"
    try:
        clone.save(str(tmp))
        os.replace(tmp, out / BEST)
    finally:
        tmp.unlink(missing_ok=True)


def classes_json(classes) -> dict:
    """``{"classes": [...]}``: a ClassTable's own JSON, or a list of ``{"name", "color"}`` dicts."""
    return classes.to_json() if hasattr(classes, "to_json") else {"classes": list(classes)}


def _scalar(tag: str, value: float) -> None:
    """A TensorBoard scalar through TF's core summary op (the tensorboard package is not needed)."""
    import tensorflow as tf
    from tensorflow.core.framework import summary_pb2

    metadata = summary_pb2.SummaryMetadata()
    metadata.plugin_data.plugin_name = "scalars"
    tf.summary.write(tag, tf.constant(float(value), tf.float32), metadata=metadata.SerializeToString())


def _image(tag: str, rgb) -> None:
    """A TensorBoard image (its plugin's format: width, height, PNG bytes) without the tensorboard package."""
    import tensorflow as tf
    from tensorflow.core.framework import summary_pb2

    metadata = summary_pb2.SummaryMetadata()
    metadata.plugin_data.plugin_name = "images"
    h, w = rgb.shape[:2]
    tensor = tf.stack([tf.as_string(w), tf.as_string(h), tf.io.encode_png(tf.constant(rgb))])
    tf.summary.write(tag, tensor, metadata=metadata.SerializeToString())


class RunWriter:
    """Writes the run directory; only the chief has one (other workers pass ``chief=False`` and write nothing)."""

    def __init__(self, out: Path, chief: bool):
        self.out = Path(out)
        self.chief = chief
        self._writer = None

    def start(self, settings: dict, ds) -> None:
        """config.json, classes.json, splits/ and the TensorBoard writer."""
        if not self.chief:
            return
        import tensorflow as tf

        self.out.mkdir(parents=True, exist_ok=True)
        write_json(self.out / CONFIG, {"format": "segcli-run-v1", "settings": settings, "versions": _versions()})
        write_json(self.out / CLASSES, classes_json(ds.classes))
        write_splits(self.out, ds)
        self._writer = tf.summary.create_file_writer(str(self.out / LOGS))

    def end_of_epoch(self, best_clone, weights, optimizer_states, state: dict, row: dict, panels=()) -> None:
        """best.keras (when ``best_clone`` is given), then the checkpoint, metrics.csv and TensorBoard
        (scalars, and ``panels``: val image | ground truth | prediction, in the images tab)."""
        if not self.chief:
            return
        if best_clone is not None:
            save_best(best_clone, self.out)
        save_checkpoint(self.out / LAST, weights, optimizer_states, state)
        write_metrics(self.out, state["history"])
        with self._writer.as_default(step=row["epoch"]):
            for key in TENSORBOARD_KEYS:
                if row.get(key) is not None:
                    _scalar(key, row[key])
            for i, panel in enumerate(panels):
                _image(f"val_overlays/{i}", panel)
        self._writer.flush()


def resumed_settings(out: Path, s, given: dict | None):
    """``(settings, ignored)`` of the run in ``out`` that ``s`` resumes: its recorded settings (with ``s``'s strategy:
    the hardware may differ) and :func:`~segcli.train.settings.ignored_on_resume` of ``given``."""
    from segcli.train.settings import from_saved, ignored_on_resume

    saved = read_json(Path(out) / CONFIG)["settings"]
    if Path(saved["data"]).resolve() != Path(s.data).resolve():
        raise SettingError(f"`resume`: the run in {out} trained on {saved['data']}, not {s.data}; give the "
                           f"same `data`.")
    return from_saved(saved, out=str(out), strategy=s.strategy), ignored_on_resume(saved, given or {})


def _versions() -> dict:
    """The versions a run was trained with, recorded in config.json."""
    import platform
    from importlib.metadata import version

    import keras
    import tensorflow as tf

    return {"segcli": version("segcli"), "tensorflow": tf.__version__, "keras": keras.__version__,
            "python": platform.python_version()}
