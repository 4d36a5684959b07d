"""What made the outputs in predict's ``out`` folder: ``.segcli-predict.json``, checked before a run resumes.

predict skips an input whose outputs exist, so a rerun into ``out`` must compute what those files hold.
The first run into ``out`` records the settings that decide the masks (:func:`settings_of`): the model (the
SHA-256 of its weights files: a copy of it on another machine is the same model, a retrained one is not),
its class count, the backend and precision that ran (what ``auto`` chose), mode, tile, stride, the longest
side where it applies, TTA, and the video smoothing. Batch size, workers and the overlay options are left out:
they do not change a mask.

A later run whose settings differ stops before predicting with :class:`OutputsDiffer`, which names the first
difference; ``overwrite`` replaces the record instead. The record is created only where none exists, in one
atomic step (a hard link), so shards started together on several machines agree on one. An ``out`` with no
record (an older segcli's) is adopted: its files are kept and this run's settings recorded.

>>> OutputsDiffer("`out` o: made with `mode` whole").render(lambda name: "--" + name)
'--out o: made with --mode whole'
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from pathlib import Path

from segcli.errors import UsageError

RECORD_FILE = ".segcli-predict.json"
#: The recorded settings that decide a mask, compared in this order ("model": its SHA-256, else its name).
COMPARED = ("model", "classes", "backend", "precision", "mode", "tile", "stride", "max_side", "tta", "smooth", "every")
_FIX = "pass `overwrite` to recompute them, or choose another `out`"


class OutputsDiffer(UsageError):
    """``out`` holds files made otherwise than this run asks. Setting names are marked with backquotes:
    ``str()`` shows them as they are, :meth:`render` lets the CLI show its flags instead."""

    def __init__(self, template: str):
        self.template = template
        super().__init__(self.render())

    def render(self, name_of=None) -> str:
        return re.sub(r"`(\w+)`", lambda m: name_of(m.group(1)) if name_of else m.group(1), self.template)


def settings_of(source, seg, options) -> dict:
    """The record of a run: ``source`` an OpenedModel, ``seg`` its Predictor (or TTA), ``options`` PredictOptions."""
    base = getattr(seg, "seg", seg)  # the Predictor under a TTA wrapper
    tile = base.tile and (base.tile[0] if base.tile[0] == base.tile[1] else list(base.tile))
    whole_dynamic = options.mode == "whole" and base.input_size is None
    return {"model": source.name, "model_sha256": model_sha256(source.ref), "classes": int(base.num_classes),
            "backend": source.backend, "precision": source.precision, "mode": options.mode, "tile": tile,
            "stride": base.stride, "max_side": base.max_side if whole_dynamic else None,
            "tta": str(options.tta) if options.tta else None, "smooth": float(options.smooth),
            "every": int(options.every) if options.smooth else None}  # without smoothing a frame's mask is its own


def model_sha256(ref) -> str | None:
    """SHA-256 of the files a model's weights come from, in turn (a weights folder's recorded one); None without a
    ref (an OpenedModel built by hand), which leaves the model's name to identify it."""
    from segcli.checkpoints.cache import WEIGHTS_FILE, hash_file, read_record, sha256_file
    from segcli.checkpoints.resolve import HF_FILES, KERAS_HUB_FILES

    if ref is None or ref.path is None:
        return None
    path = Path(ref.path)
    if ref.kind in ("entry", "preset"):
        recorded = (ref.record or read_record(path)).get("sha256")  # checked against the file on every load
        if recorded:
            return recorded
        files = [path / WEIGHTS_FILE]
    elif ref.kind in ("hf", "keras_hub"):
        files = [path / name for name in (HF_FILES if ref.kind == "hf" else KERAS_HUB_FILES)]
    else:  # a .keras file or an exported model; an OpenVINO IR keeps its weights in the .bin beside the .xml
        files = [path, path.with_suffix(".bin")] if path.suffix.lower() == ".xml" else [path]
    if len(files) == 1:
        return sha256_file(files[0])  # what `sha256sum FILE` prints
    digest = hashlib.sha256()
    for file in files:
        hash_file(digest, file)
    return digest.hexdigest()


def claim(out: Path, settings: dict, overwrite: bool) -> bool:
    """Check ``settings`` against ``out``'s record, or record them; True when ``out`` had no record before."""
    from segcli.files import json_bytes, write_atomic

    path = Path(out) / RECORD_FILE
    data = json_bytes(settings)
    if overwrite:
        write_atomic(path, data)
        return False
    old = _read(path, out)
    if old is None:
        if _create(path, data):
            return True
        old = _read(path, out)  # another shard's run recorded its settings first
    _check(out, old, settings)
    return False


def _read(path: Path, out) -> dict | None:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise OutputsDiffer(f"`out` {out}: its {RECORD_FILE} is unreadable ({exc}), so what made its files is "
                            f"unknown; {_FIX}.") from None
    if not isinstance(record, dict):
        raise OutputsDiffer(f"`out` {out}: its {RECORD_FILE} is not a JSON object, so what made its files is "
                            f"unknown; {_FIX}.")
    return record


def _create(path: Path, data: bytes) -> bool:
    """Write ``path`` only if it does not exist, atomically even against another machine; False if it did."""
    from segcli.files import umask

    fd, tmp = tempfile.mkstemp(prefix=f"{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            os.fchmod(f.fileno(), 0o666 & ~umask())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        except OSError:  # a file system without hard links: check, then rename
            if path.exists():
                return False
            os.replace(tmp, path)
        return True
    finally:
        Path(tmp).unlink(missing_ok=True)


def _key(record: dict, name: str):
    return (record.get("model_sha256") or record.get("model")) if name == "model" else record.get(name)


def _check(out, old: dict, new: dict) -> None:
    """OutputsDiffer naming the first setting (of those both records hold) whose values differ."""
    for name in COMPARED:
        if name in old and name in new and _key(old, name) != _key(new, name):
            raise OutputsDiffer(f"`out` {out}: its files were made with {_difference(name, old, new)}; {_FIX}.")


def _difference(name: str, old: dict, new: dict) -> str:
    if name == "model":
        def shown(record):
            sha = record.get("model_sha256")
            return f"{record.get('model')} (sha256 {sha[:12]})" if sha else str(record.get("model"))

        return f"`model` {shown(old)}, this run uses {shown(new)}"
    if name == "classes":
        return f"a model of {old[name]} classes, this run's has {new[name]}"
    return f"`{name}` {_shown(old[name])}, this run uses {_shown(new[name])}"


def _shown(value) -> str:
    if value is None:
        return "none"
    if isinstance(value, list):
        return "x".join(map(str, value))
    return f"{value:g}" if isinstance(value, float) else str(value)
