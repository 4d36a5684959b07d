"""segcli's weights cache: one folder per entry under ``$SEGCLI_HOME/weights``.

An entry (and any folder saved by :func:`save_entry`) holds ``model.weights.h5``
and ``record.json``. The record says what the weights are (``scope`` backbone or
segmenter, the backbone config, classes, palette, source, licence) and the
SHA-256 of the weights file, which is checked on every load.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path

from segcli.files import umask
from segcli.errors import CheckpointError, WeightsNotFoundError

WEIGHTS_FILE = "model.weights.h5"
RECORD_FILE = "record.json"


def segcli_home() -> Path:
    return Path(os.environ.get("SEGCLI_HOME") or "~/.cache/segcli").expanduser()


def weights_root() -> Path:
    return segcli_home() / "weights"


def entry_dir(name: str) -> Path:
    return weights_root() / name


def sha256_file(path: Path) -> str:
    """SHA-256 of a file (what ``sha256sum`` prints), read once per process while its size and mtime stay."""
    stat = Path(path).stat()
    return _sha256_file(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=32)
def _sha256_file(path: str, size: int, mtime_ns: int) -> str:
    return hash_file(hashlib.sha256(), Path(path)).hexdigest()


def hash_file(digest, path: Path, chunk: int = 1 << 20):
    """``digest`` updated with the bytes of ``path``, read a chunk at a time; returns ``digest``."""
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest


def is_entry(folder: Path) -> bool:
    return (folder / WEIGHTS_FILE).is_file() and (folder / RECORD_FILE).is_file()


def _fix(folder: Path) -> str:
    """What to do about a broken weights folder: a cache entry is fetched again, another folder replaced."""
    if Path(folder).absolute().parent == weights_root().absolute():
        return f"delete {folder} and fetch or import it again"
    return f"replace {folder} with an intact copy or pass another model"


def read_record(folder: Path) -> dict:
    """The record of weights folder ``folder``, with the keys a model is built from; CheckpointError otherwise."""
    path = Path(folder) / RECORD_FILE
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: unreadable ({exc}); {_fix(folder)}.") from None
    if not isinstance(record, dict):
        raise CheckpointError(f"{path}: not a segcli weights record (not a JSON object); {_fix(folder)}.")
    needed = {"backbone_config": dict}
    if record.get("scope") != "backbone":
        needed.update(num_classes=int, projection_filters=int)
    bad = [key for key, kind in needed.items() if not isinstance(record.get(key), kind)]
    if bad or not isinstance(record.get("classes") or [], list):
        what = f"no valid {', '.join(bad)}" if bad else "its classes are not a list"
        raise CheckpointError(f"{path}: not a segcli weights record ({what}); {_fix(folder)}.")
    return record


def read_entry(folder: Path, label: str | None = None) -> tuple[Path, dict]:
    """Return (weights path, record) of a saved entry after checking its SHA-256."""
    label = label or str(folder)
    fix = f"delete {folder} and fetch or import it again"
    record = read_record(folder)
    weights = folder / WEIGHTS_FILE
    if not weights.is_file():
        raise CheckpointError(f"Weights entry '{label}' has no {WEIGHTS_FILE}; {fix}.")
    expected = record.get("sha256")
    if expected and sha256_file(weights) != expected:
        raise CheckpointError(
            f"Weights entry '{label}' is corrupt: {weights} does not match its recorded SHA-256; {fix}."
        )
    return weights, record


def load_cached(name: str, label: str | None = None) -> tuple[Path, dict]:
    """Weights and record of cache entry ``name``, or a clear error saying how to get them."""
    folder = entry_dir(name)
    if not folder.exists():
        shown = label or name
        raise WeightsNotFoundError(
            f"No weights for preset '{shown}' in {folder}. Run `segcli weights fetch {shown}`, or on a machine "
            f"without network `segcli weights import CHECKPOINT_DIR --as {shown}`; "
            f"or pass load_weights=False for random initialisation."
        )
    return read_entry(folder, label or name)


def save_entry(model, folder: Path, record: dict) -> Path:
    """Write ``model``'s weights and ``record`` into ``folder`` atomically.

    Everything is written into a temporary sibling folder that is renamed into
    place, so an interrupted save never leaves a half-written entry.
    """
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".tmp", dir=folder.parent))
    os.chmod(tmp, 0o777 & ~umask())  # mkdtemp's 0700 would hide the cache from other users
    try:
        weights = tmp / WEIGHTS_FILE
        model.save_weights(str(weights))
        record = {**record, "sha256": sha256_file(weights), "size_bytes": weights.stat().st_size}
        (tmp / RECORD_FILE).write_text(json.dumps(record, indent=2) + "\n")
        if folder.exists():
            old = folder.with_name(f".{folder.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            folder.rename(old)
            tmp.rename(folder)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder
