"""A checkpoint's fingerprint: a hash of the files a model spec loads, computed without building the model.

The OpenVINO conversion cache (:mod:`segcli.export.openvino_cache`) keys its conversions by the weights of the
built Keras model, which needs TensorFlow and a full load. The fingerprint lets a second run of the same
checkpoint find its conversion from the files alone, so it starts without importing TensorFlow.

It hashes the bytes of every file the checkpoint is made of (a ``.keras`` file; the top-level files of a weights,
Hugging Face or keras-hub folder), the kind of checkpoint and the installed Keras version. Any change to those
files gives another fingerprint. Presets without cached weights and exported models have none.

>>> import tempfile, pathlib
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> (folder / "m.keras").write_bytes(b"weights")
7
>>> from segcli.checkpoints.resolve import resolve
>>> first = checkpoint_fingerprint(resolve(str(folder / "m.keras")))
>>> (folder / "m.keras").write_bytes(b"other weights")
13
>>> len(first), first == checkpoint_fingerprint(resolve(str(folder / "m.keras")))
(16, False)
"""

from __future__ import annotations

import hashlib
from importlib.metadata import PackageNotFoundError, version

from segcli.checkpoints.cache import sha256_file
from segcli.checkpoints.resolve import ModelRef

#: Kinds of checkpoint whose model is fully given by their files.
FILE_KINDS = ("keras", "entry", "hf", "keras_hub", "preset")


def checkpoint_fingerprint(ref: ModelRef) -> str | None:
    """A short hash of the files ``ref`` loads, or None when ``ref`` has no files that make the model."""
    if ref.kind not in FILE_KINDS or ref.path is None or not ref.path.exists():
        return None
    files = [ref.path] if ref.path.is_file() else sorted(p for p in ref.path.iterdir() if p.is_file())
    digest = hashlib.sha256(f"{ref.kind}\0keras {_keras_version()}".encode())
    for path in files:  # sha256_file reads each file once per process: the weights check and summaries reuse it
        digest.update(f"\0{path.name}\0{sha256_file(path)}".encode())
    return digest.hexdigest()[:16]


def _keras_version() -> str:
    try:
        return version("keras")
    except PackageNotFoundError:
        return "none"
