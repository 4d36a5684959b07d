"""One predict at a time per output folder (per shard): a second run into the same ``out`` stops at once.

Two runs into one ``out`` each skip only what was finished when they looked, so both computed every mask.
:func:`hold` takes an exclusive ``flock`` on ``out/.segcli-predict[.shard-K-of-N].lock`` for the whole run
and removes the file at the end; a run that finds it locked raises :class:`OutputBusy`, naming the other
run's process id. Shards of one job lock their own files, so they still share one ``out``. The lock is the
kernel's: a killed run (even ``kill -9``) leaves no lock behind, only a file the next run takes over.

>>> import tempfile
>>> out = Path(tempfile.mkdtemp())
>>> with hold(out):
...     try:
...         with hold(out):
...             pass
...     except OutputBusy as exc:
...         print(str(exc).replace(str(out), "OUT").replace(str(os.getpid()), "PID"))
out OUT: another segcli predict (process PID) is writing there; wait for it to finish, or choose another output folder.
>>> sorted(out.iterdir())
[]
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from segcli.errors import UsageError


class OutputBusy(UsageError):
    """Another predict holds the output folder (the same shard of it)."""


def lock_path(out: Path, shard: tuple | None = None) -> Path:
    return Path(out) / (f".segcli-predict.shard-{shard[0]}-of-{shard[1]}.lock" if shard else ".segcli-predict.lock")


def _lock(path: Path) -> int:
    """An open descriptor of ``path`` holding its exclusive lock; OutputBusy when another process holds it."""
    import fcntl

    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise OutputBusy(f"out {path.parent}: another segcli predict (process {other}) is writing there; wait "
                             f"for it to finish, or choose another output folder.", value="out_dir") from None
        with contextlib.suppress(OSError):
            if os.fstat(fd).st_ino == os.stat(path).st_ino:  # not a file the holder removed meanwhile
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()}\n".encode())
                return fd
        os.close(fd)


@contextlib.contextmanager
def hold(out: Path, shard: tuple | None = None):
    """Hold ``out``'s predict lock (``shard``'s own) while the block runs; OutputBusy when it is taken.
    Where there is no ``flock`` (Windows) the block runs unguarded."""
    if os.name != "posix":
        yield
        return
    path = lock_path(out, shard)
    fd = _lock(path)
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            path.unlink()
        os.close(fd)
