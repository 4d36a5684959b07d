"""Atomic file writes, the one way segcli puts a file on disk; the check that a folder can be made at a path; and
file names that are not UTF-8 written into JSON and shown to people.

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

import json
import os
import re
import tempfile
from pathlib import Path

#: The lone surrogates Python decodes a file name's non-UTF-8 bytes to (PEP 383's surrogateescape).
_SURROGATE = re.compile("[\ud800-\udfff]")


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
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        if exc.filename is None:  # a failed write() names no file: name the one being written (a full disk, say)
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        raise
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
    existing = nearest_existing(folder)
    return None if existing.is_dir() else existing


def nearest_existing(path) -> Path:
    """``path`` or its nearest parent that exists, as given (messages name it as the user wrote it; a relative
    chain ends at ".")."""
    path = Path(path)
    return next(p for p in (path, *path.parents) if p.exists())


def json_bytes(value) -> bytes:
    """``value`` as indented UTF-8 JSON. A file name's undecodable bytes stay ``\\udcXX`` escapes: the file is
    valid UTF-8, and ``json.loads`` gives back the name that ``os.fsencode`` turns into the exact bytes.

    >>> import json, os
    >>> data = json_bytes({"file": os.fsdecode(b"bad\\xffname.png")})
    >>> data.decode("utf-8").splitlines()[1], os.fsencode(json.loads(data)["file"])
    ('  "file": "bad\\\\udcffname.png"', b'bad\\xffname.png')
    """
    text = json.dumps(value, indent=2, ensure_ascii=False) + "\n"
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text).encode("utf-8")


def displayable(text: str) -> str:
    """``text`` for people (HTML, tables): undecodable bytes become U+FFFD, as a terminal or browser shows them.

    >>> import os
    >>> displayable(os.fsdecode(b"bad\\xffname.png"))
    'bad\ufffdname.png'
    """
    return str(text).encode("utf-8", "surrogateescape").decode("utf-8", "replace")
