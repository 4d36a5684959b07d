"""segcli's OpenVINO conversion cache: a Keras SegFormer converted once, its IR and compiled blobs kept.

A conversion lives in ``segcli_home()/openvino/<model hash>-<code hash>-<h>x<w>-<precision>/`` (``model.xml``,
``model.bin``, ``segcli.json`` and ``blobs/``, see :func:`segcli.export.openvino_format.blob_cache`). The model
hash is over the built model's weights (:func:`model_hash`); the code hash over the source that decides what the
IR computes (:func:`converter_digest`), so a changed segcli converts again.

Building the model to hash it costs a TensorFlow import and a full load (about 5 s), most of a small job. So a
conversion made for a checkpoint on disk is also remembered under that checkpoint's file fingerprint
(:mod:`segcli.checkpoints.fingerprint`) in ``openvino/sources/``, and :func:`runner_for_checkpoint` opens it
again from the files alone, without TensorFlow.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from segcli.export.formats import METADATA_FILE
from segcli.export.openvino_format import BLOBS, XML, OpenVinoRunner, check_precision, convert, openvino_module

#: Folder (inside ``segcli_home()/openvino``) of the checkpoint fingerprints' pointers to their conversions.
SOURCES = "sources"


def model_hash(model) -> str:
    """A short hash of a Keras model's weights and class count: the cache key of its conversions."""
    digest = hashlib.sha256(str(getattr(model, "num_classes", "")).encode())
    for weight in model.weights:
        value = np.ascontiguousarray(np.asarray(weight.numpy() if hasattr(weight, "numpy") else weight))
        digest.update(weight.path.encode() if hasattr(weight, "path") else b"")
        digest.update(value.tobytes())
    return digest.hexdigest()[:16]


def converter_digest() -> str:
    """A short hash of the source that decides what the IR computes: the model code and this converter.

    Part of the cache key, so a segcli whose graph changed converts again instead of running an IR that an
    older version wrote.
    """
    root = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    converter = [root / "export" / name for name in ("openvino_format.py", "openvino_head.py", "openvino_cache.py")]
    for source in sorted((root / "models").rglob("*.py")) + converter:
        digest.update(source.relative_to(root).as_posix().encode())
        digest.update(source.read_bytes())
    return digest.hexdigest()[:8]


def cached_runner(model, input_size=None, precision: str = "fp32", threads: int | None = None,
                  calibration=None, fingerprint: str | None = None):
    """An :class:`OpenVinoRunner` of Keras SegFormer ``model``, converted once and cached.

    The IR goes to ``segcli_home()/openvino/<hash>-<code>-<h>x<w>-<precision>/model.xml`` (``any`` without an
    input size; the IR itself takes any size; ``<code>`` is :func:`converter_digest`) and OpenVINO's compiled
    blobs to ``blobs/<n>x<h>x<w>/`` beside it (:func:`blob_cache`). Storing a conversion deletes the same
    model's conversions by other converter digests. Where the cache cannot be written the model is converted
    in memory, with a warning in ``runner.warnings``. ``int8`` needs ``calibration`` images the first time.
    With a checkpoint ``fingerprint``, the conversion is remembered for :func:`runner_for_checkpoint`.
    """
    from segcli.checkpoints.cache import segcli_home
    from segcli.models.segformer.graph import SegFormerGraph

    check_precision(precision)
    size = "x".join(str(int(s)) for s in input_size) if input_size else "any"
    folder = segcli_home() / "openvino" / f"{model_hash(model)}-{converter_digest()}-{size}-{precision}"
    if not (folder / XML).is_file():
        metadata = {"num_classes": int(model.num_classes), "input_size": list(input_size) if input_size else None,
                    "logits_stride": 4, "precision": precision}
        start = time.perf_counter()
        ir = convert(SegFormerGraph(model), precision, calibration, metadata)
        seconds = time.perf_counter() - start
        try:
            _store(ir, metadata, folder)
        except OSError as exc:
            runner = OpenVinoRunner(folder, threads, precision, model=ir)
            runner.warnings = (*runner.warnings, _unwritable(folder.parent, exc, seconds))
            return runner
        _remove_other_digests(folder)
    if fingerprint:
        _remember(fingerprint, precision, folder)
    return OpenVinoRunner(folder, threads, precision, cache_dir=folder / BLOBS)


def runner_for_checkpoint(fingerprint: str, precision: str, threads: int | None = None):
    """The :class:`OpenVinoRunner` of the conversion remembered for a checkpoint fingerprint, or None when this
    segcli has not converted that checkpoint at ``precision`` (or the conversion was deleted since).
    """
    from segcli.checkpoints.cache import segcli_home

    pointer = segcli_home() / "openvino" / SOURCES / f"{fingerprint}-{precision}.json"
    try:
        name = str(json.loads(pointer.read_text())["conversion"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    folder = pointer.parent.parent / name
    if "/" in name or name.split("-")[1:2] != [converter_digest()] or not (folder / XML).is_file():
        return None
    return OpenVinoRunner(folder, threads, check_precision(precision), cache_dir=folder / BLOBS)


def _remember(fingerprint: str, precision: str, folder: Path) -> None:
    """Point the checkpoint ``fingerprint`` at its conversion ``folder``; a cache that cannot be written is skipped."""
    from segcli.files import write_atomic

    pointer = folder.parent / SOURCES / f"{fingerprint}-{precision}.json"
    try:
        write_atomic(pointer, (json.dumps({"conversion": folder.name}) + "\n").encode())
    except OSError:
        pass


def _store(ir, metadata: dict, folder: Path) -> None:
    """Save ``ir`` and ``metadata`` as ``folder``: written in a temporary sibling, renamed into place."""
    from segcli.files import umask, write_atomic

    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".tmp", dir=folder.parent))
    try:
        os.chmod(tmp, 0o777 & ~umask())  # mkdtemp's 0700 would hide the cache from other users
        try:
            openvino_module().save_model(ir, str(tmp / XML), compress_to_fp16=False)
        except RuntimeError as exc:  # OpenVINO's own write errors (a full disk)
            raise OSError(str(exc).strip().splitlines()[-1]) from None
        write_atomic(tmp / METADATA_FILE, (json.dumps(metadata, indent=2) + "\n").encode())
        if folder.is_dir():  # without model.xml: blobs left by a run whose IR was deleted meanwhile
            shutil.rmtree(folder, ignore_errors=True)
        try:
            tmp.rename(folder)
        except OSError:
            if not (folder / XML).is_file():  # else another run stored the same conversion first
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _unwritable(root: Path, exc: OSError, seconds: float) -> str:
    """The warning for a cache folder that cannot be written: what it costs and how to fix it."""
    return (f"cannot write the OpenVINO cache folder {root} ({exc.strerror or exc}), so every run converts the "
            f"model again (this one took {seconds:.1f} s); set SEGCLI_HOME to a writable folder to keep the "
            f"conversion.")


def _remove_other_digests(folder: Path) -> None:
    """Delete the conversions of ``folder``'s model by other converter digests (another segcli's): never read again.

    Folders being written (a leading dot) are left to the run that writes them.
    """
    model, digest = folder.name.split("-")[:2]
    for other in folder.parent.iterdir():
        parts = other.name.split("-")
        if len(parts) > 1 and parts[0] == model and parts[1] != digest and other.is_dir():
            shutil.rmtree(other, ignore_errors=True)
