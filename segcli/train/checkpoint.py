"""The run directory of ``segcli train``: what is in it, how it is written, and who writes it.

Files (all written to a temporary name, then renamed, so a run killed at any moment leaves whole files):

* ``config.json``: every resolved setting; ``classes.json``: names and colours;
* ``splits/train.txt``, ``splits/val.txt``: ``image<TAB>mask`` per line, relative to the dataset;
* ``best.keras``: the model with the best val mIoU (softmax output, loads with ``keras.saving.load_model``);
* ``last.ckpt.npz``: model weights, both optimizers' state, the epoch and the metrics history;
* ``metrics.csv``: one row per finished epoch; ``report.html``: the best epoch on the val split, at the end;
* ``logs/``: TensorBoard; ``cache/``: decoded pairs (``cache="disk"``).

:class:`RunWriter` is the chief's writer: it writes the start files once and, after each epoch, best.keras
(when improved), the checkpoint, metrics.csv and the TensorBoard scalars. :func:`prepare` refuses, changing
nothing, to resume a run whose checkpoint is damaged, or missing after finished epochs: starting again at epoch 1
would replace their metrics.csv and best.keras.

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
import zipfile
from pathlib import Path

import numpy as np

from segcli.data.image_io import write_atomic
from segcli.errors import CheckpointError
from segcli.files import file_in_the_way, nearest_existing
from segcli.train.report import REPORT
from segcli.train.settings import SettingError

CONFIG = "config.json"
CLASSES = "classes.json"
SPLITS_DIR = "splits"
BEST = "best.keras"
LAST = "last.ckpt.npz"
METRICS = "metrics.csv"
LOGS = "logs"
CACHE_DIR = "cache"
RUN_FILES = (CONFIG, CLASSES, SPLITS_DIR, BEST, LAST, METRICS, REPORT, LOGS, CACHE_DIR)
TENSORBOARD_KEYS = ("train_loss", "val_miou", "val_pixel_accuracy", "lr_backbone", "lr_head", "images_per_sec")
#: What reading a damaged .npz checkpoint raises (a cut-off file is not a zip file; a cut-off member ends early).
DAMAGED = (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile)
METRIC_COLUMNS = ("epoch", "train_loss", "val_miou", "val_pixel_accuracy", "val_mean_accuracy", "lr_backbone",
                  "lr_head", "images_per_sec", "seconds", "best")


def write_json(path, data) -> None:
    write_atomic(path, (json.dumps(data, indent=2) + "\n").encode())


def read_json(path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: cannot be read ({exc}); the run directory is damaged.") from None


class RunNotResumable(SettingError, CheckpointError):
    """``resume`` cannot continue a run: its checkpoint is damaged, or missing after finished epochs."""


def prepare(out: Path, resume: bool, overwrite: bool, preset=None) -> None:
    """Refuse a non-empty ``out`` unless resuming or overwriting; ``overwrite`` removes only run files.

    On ``resume``, refuse (changing nothing) a run whose checkpoint is unreadable or, after finished epochs,
    missing; on ``overwrite``, refuse when ``preset`` is one of the run files it would remove.
    """
    if out.exists() and not out.is_dir():
        raise SettingError(f"`out` {out} is a file; give a folder for the run.")
    if resume and overwrite:
        raise SettingError("`resume` and `overwrite` contradict each other; pick one.")
    _check_writable(out)
    exists = out.is_dir() and any(out.iterdir())
    if resume:
        if not (out / CONFIG).is_file():
            raise SettingError(f"`resume`: {out} holds no run ({CONFIG} missing); drop `resume` to start a new run.")
        check_resumable(out)
        for stale in list(out.glob(".*.tmp")) + list(out.glob(".*.tmp.keras")):  # left by a killed run
            stale.unlink(missing_ok=True)
        return
    if exists and not overwrite:
        raise SettingError(f"`out` {out} is not empty; pass `resume` to continue that run or `overwrite` to replace "
                           f"it.")
    if exists:
        _check_preset_survives(out, preset)
        for name in RUN_FILES:
            path = out / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()


def _check_writable(out: Path) -> None:
    blocker = file_in_the_way(out)
    if blocker is not None:
        raise SettingError(f"`out` {out}: {blocker} is a file, so the run cannot be written there; choose another "
                           f"folder.")
    existing = nearest_existing(out)
    if not os.access(existing, os.W_OK | os.X_OK):
        raise SettingError(f"`out` {out}: cannot write in {existing}; choose a writable folder.")


def _check_preset_survives(out: Path, preset) -> None:
    """``overwrite`` must not remove the model the run starts from (``preset`` ``out``/best.keras)."""
    from segcli.models.registry import PRESETS

    if not preset or str(preset) in PRESETS or not Path(str(preset)).expanduser().exists():
        return
    start = Path(str(preset)).expanduser().resolve()
    doomed = [(out / name).resolve() for name in RUN_FILES]
    if start == out.resolve() or any(start == p or p in start.parents for p in doomed):
        raise SettingError(f"`overwrite` would delete {preset}, the model `preset` starts from; give a new `out` "
                           f"to fine-tune from it.")


def check_resumable(out: Path) -> None:
    """RunNotResumable when ``out``'s checkpoint is unreadable, or missing although epochs finished (metrics.csv
    rows, best.keras): starting at epoch 1 would replace them. Reads only the checkpoint's small state."""
    out = Path(out)
    if (out / LAST).is_file():
        read_state(out / LAST)
        return
    rows = finished_rows(out)
    if rows or (out / BEST).is_file():
        shown = f"{METRICS} records {rows} finished epoch{'s' if rows != 1 else ''}" if rows else \
            f"{BEST} holds a trained model"
        raise RunNotResumable(f"{out}: its checkpoint {LAST} is missing although {shown}, so `resume` cannot "
                              f"continue the run; {_restart_options(out)}.")


def finished_rows(out: Path) -> int:
    """Epoch rows in ``out``'s metrics.csv (0 when it is missing or unreadable)."""
    try:
        lines = (Path(out) / METRICS).read_text().splitlines()
    except (OSError, ValueError):
        return 0
    return sum(1 for line in lines[1:] if line.strip())


def _restart_options(out: Path) -> str:
    """What the user can do with a run that cannot be resumed (setting names in backquotes)."""
    again = "pass `overwrite` instead of `resume` to start it again (this replaces its files)"
    if not (out / BEST).is_file():
        return again
    return f"{again}, or drop `resume` and pass `preset` {out / BEST} and a new `out` to fine-tune from its best model"


def _damaged(path: Path, exc: BaseException) -> RunNotResumable:
    """The one line for an unreadable checkpoint ``path`` (``RUN/last.ckpt.npz``)."""
    why = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return RunNotResumable(f"{path}: damaged checkpoint ({why}), so `resume` cannot continue the run; "
                           f"{_restart_options(Path(path).parent)}.")


def write_splits(out: Path, ds) -> None:
    for split, pairs in ds.splits.items():
        lines = [f"{p.image.relative_to(ds.root).as_posix()}\t{p.mask.relative_to(ds.root).as_posix()}"
                 for p in pairs]
        data = os.fsencode("\n".join(lines) + "\n")  # the names' own bytes, as `find > list` writes them
        write_atomic(out / SPLITS_DIR / f"{split}.txt", data)


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
                             for line in os.fsdecode(path.read_bytes()).splitlines() if line.strip()]
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
    """(weights, optimizer_states, state) from :func:`save_checkpoint`; RunNotResumable when it is damaged."""
    try:
        with _open_npz(path) as data:
            state = _state(data)
            weights = [data[f"w{i}"] for i in range(state["n_weights"])]
            opts = [[data[f"o{k}_{i}"] for i in range(n)] for k, n in enumerate(state["n_optimizer_vars"])]
    except DAMAGED as exc:
        raise _damaged(path, exc) from None
    return weights, opts, state


def _open_npz(path: Path):
    """``np.load`` of a checkpoint, which must be a zip archive (np.load would take other bytes for a pickle)."""
    with open(path, "rb") as f:
        start = f.read(4)
    if start != b"PK\x03\x04":
        raise ValueError("empty file" if not start else "not an .npz archive")
    return np.load(path, allow_pickle=False)


def _state(data) -> dict:
    """The JSON state in an opened checkpoint; ValueError when it lacks what :func:`load_checkpoint` reads."""
    state = json.loads(data["state"].tobytes().decode())
    if not (isinstance(state, dict) and isinstance(state.get("epoch"), int) and isinstance(state.get("n_weights"), int)
            and isinstance(state.get("n_optimizer_vars"), list)):
        raise ValueError("its state lacks the epoch or the array counts")
    return state


def read_state(path: Path) -> dict:
    """The state :func:`save_checkpoint` stored (epoch, history, ...), without the arrays; RunNotResumable when
    the file is damaged."""
    try:
        with _open_npz(path) as data:
            return _state(data)
    except DAMAGED as exc:
        raise _damaged(path, exc) from None


def saved_epoch(out: Path) -> int:
    """The last finished epoch that ``out``'s checkpoint holds (0: none, or no readable checkpoint)."""
    try:
        return read_state(Path(out) / LAST)["epoch"]
    except RunNotResumable:
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
