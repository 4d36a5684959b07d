"""Atomic file writes, the one way segcli puts a file on disk.

Every output (masks, overlays, checkpoints, reports, weights records) is written
to a temporary name beside its target and renamed into place, so a killed
process never leaves a truncated file.

>>> import tempfile, pathlib
>>> target = pathlib.Path(tempfile.mkdtemp()) / "sub" / "a.txt"
>>> write_atomic(target, b"hello")
>>> target.read_bytes(), sorted(p.name for p in target.parent.iterdir())
(b'hello', ['a.txt'])
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def umask() -> int:
    """The process umask (read without changing it)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomic(path, data: bytes) -> None:
    """Write ``data`` to a temporary name beside ``path``, then rename: never a truncated file.

    The file gets the usual permissions for new files (0666 minus the umask), not mkstemp's private 0600.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            os.fchmod(f.fileno(), 0o666 & ~umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
