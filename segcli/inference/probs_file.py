"""``--save-probs`` arrays as the files they become.

Each image's (H, W, C) float16 probabilities are computed straight into a memory-mapped ``.npy`` file under a
hidden temporary name in the output folder, which is renamed into place when the image's outputs are written. So
the array is never held whole in memory nor copied to be saved: for an 8000x8000 image with 150 classes it is 19 GB.
The file's blocks are reserved when it is made, so a full disk is an ``OSError`` then, not a crash when a page is
written later. A temporary file whose array is dropped unsaved (the image failed) is deleted with the array.

>>> import tempfile
>>> folder = Path(tempfile.mkdtemp())
>>> probs = on_disk(folder)((2, 3, 4))
>>> probs[:] = 0.25
>>> save_probs(folder / "a_probs.npy", probs)
>>> float(np.load(folder / "a_probs.npy").sum()), [p.name for p in folder.iterdir()]
(6.0, ['a_probs.npy'])
"""

from __future__ import annotations

import errno
import os
import tempfile
import weakref
from pathlib import Path

import numpy as np

from segcli.files import umask

TEMP_PREFIX = ".probs."


def on_disk(folder: Path):
    """``allocate(shape)``: a float16 memmap of ``shape`` in a new hidden ``.npy`` file in ``folder``."""
    folder = Path(folder)

    def allocate(shape) -> np.ndarray:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=".npy.tmp", dir=folder)
        os.close(fd)
        try:
            array = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float16, shape=tuple(shape))
            _reserve(tmp, folder)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        weakref.finalize(array, _delete_if_left, tmp)
        return array

    return allocate


def _reserve(path: str, folder: Path) -> None:
    """Allocate the file's blocks now; a file system that cannot is left to fill them as pages are written."""
    if not hasattr(os, "posix_fallocate"):  # macOS, Windows
        return
    with open(path, "r+b") as f:
        try:
            os.posix_fallocate(f.fileno(), 0, os.fstat(f.fileno()).st_size)
        except OSError as exc:
            if exc.errno in (errno.EOPNOTSUPP, errno.EINVAL):
                return
            raise OSError(exc.errno, exc.strerror, str(folder)) from exc


def _delete_if_left(path: str) -> None:
    Path(path).unlink(missing_ok=True)  # renamed by save_probs: nothing to do


def save_probs(path: Path, array: np.ndarray) -> None:
    """Put ``array``, one of :func:`on_disk`'s, at ``path`` by renaming its file. Its pages are the page cache's,
    as every write's are: no msync (like :func:`segcli.files.write_atomic`, which does not fsync)."""
    name = getattr(array, "filename", None)
    if not (isinstance(array, np.memmap) and name and Path(name).name.startswith(TEMP_PREFIX)):
        raise TypeError("save_probs takes an array that on_disk made")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(name, 0o666 & ~umask())
    os.replace(name, path)
