"""Atomic file writes, the one way segcli puts a file on disk, and the check that a folder can be made at a path.

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


def file_in_the_way(folder) -> Path | None:
    """The file that stops ``folder`` from being (or being created as) a folder: ``folder`` itself or its nearest
    existing parent when that is not a folder; None when the folder exists or can be created.

    >>> import tempfile, pathlib
    >>> note = pathlib.Path(tempfile.mkdtemp()) / "notes.txt"
    >>> _ = note.write_text("mine")
    >>> file_in_the_way(note / "out" / "masks") == note, file_in_the_way(note) == note, file_in_the_way(note.parent)
    (True, True, None)
    """
    path = Path(folder)  # as given, so messages name it as the user wrote it; a relative chain ends at "."
    existing = next(p for p in (path, *path.parents) if p.exists())
    return None if existing.is_dir() else existing
