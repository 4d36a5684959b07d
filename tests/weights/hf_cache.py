"""Build the Hugging Face hub cache layout that huggingface_hub reads offline (no download)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

REVISION = "0123456789abcdef0123456789abcdef01234567"


def add_snapshot(cache: Path, repo: str, checkpoint: Path, revision: str = REVISION) -> Path:
    """Copy ``checkpoint``'s files into ``cache`` as models--org--name/{blobs,snapshots/<rev>,refs/main}."""
    root = Path(cache) / ("models--" + repo.replace("/", "--"))
    blobs, snapshot = root / "blobs", root / "snapshots" / revision
    blobs.mkdir(parents=True, exist_ok=True)
    snapshot.mkdir(parents=True, exist_ok=True)
    for file in sorted(Path(checkpoint).iterdir()):
        data = file.read_bytes()
        blob = blobs / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        link = snapshot / file.name
        if link.exists() or link.is_symlink():
            link.unlink()
        os.symlink(os.path.relpath(blob, snapshot), link)
    (root / "refs").mkdir(exist_ok=True)
    (root / "refs" / "main").write_text(revision)
    return snapshot
