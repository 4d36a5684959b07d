"""What predict reads: image files, folders (recursive) and globs, each with its output stem; shards.

>>> [shard_of(name, 4) for name in ("a/b.jpg", "a/c.jpg")], parse_shard("2/4")  # the same on every machine
([0, 2], (2, 4))
"""

from __future__ import annotations

import fnmatch
import glob
import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from segcli.data.image_io import IMAGE_EXTENSIONS, is_image_name
from segcli.errors import DataError, UsageError

MASK_SUFFIX = ".png"
GLOB_CHARS = "*?["


@dataclass
class InputItem:
    """One input image: where it is, and the output path stem relative to ``--out``."""

    path: Path
    rel: str  # relative input path (POSIX), the key for sharding and reports
    stem: str = ""  # relative output stem (POSIX), e.g. "sub/a" -> sub/a.png, sub/a_overlay.jpg


def parse_shard(text: str) -> tuple[int, int]:
    """``"K/N"`` -> (K, N) with 0 <= K < N."""
    try:
        k, n = (int(part) for part in str(text).split("/"))
        if n < 1 or not 0 <= k < n:
            raise ValueError
    except ValueError:
        raise UsageError(f"shard {text}: use K/N with 0 <= K < N, for example 0/4 ... 3/4.", value="shard") from None
    return k, n


def shard_of(rel: str, n: int) -> int:
    """Stable shard of a relative path: the same on every machine and Python run."""
    digest = hashlib.sha1(rel.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % n


def _inside(path: Path, folder: Path | None) -> bool:
    if folder is None:
        return False
    try:
        path.relative_to(folder)
        return True
    except ValueError:
        return False


def _walk(root: Path, exclude: Path | None):
    """Image files under ``root`` (sorted, hidden entries and ``exclude`` left out), with paths relative to root."""
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and not _inside((here / d).resolve(), exclude))
        for name in sorted(filenames):
            if not name.startswith(".") and is_image_name(name):
                yield here / name, (here / name).relative_to(root).as_posix()


def _glob_base(pattern: str) -> Path:
    parts = []
    for part in Path(pattern).parts:
        if any(c in part for c in GLOB_CHARS):
            break
        parts.append(part)
    return Path(*parts) if parts else Path(".")


def _is_recursive(pattern: str) -> bool:
    return "**" in Path(pattern).parts


def _scan(dirname: str, dironly: bool) -> list[str]:
    try:
        with os.scandir(dirname or os.curdir) as entries:
            return [e.name for e in entries if not dironly or e.is_dir()]
    except OSError:
        return []


def _rlist(dirname: str, dironly: bool, ancestors: frozenset):
    """glob's recursive listing for ``**``, except that a directory whose real path is one it is already inside is
    left out: symlink loops (``self -> .``) end instead of exploding. Loop-free trees give exactly glob's names."""
    for name in _scan(dirname, dironly):
        if name.startswith("."):
            continue
        path = os.path.join(dirname, name) if dirname else name
        if not os.path.isdir(path):
            yield name
            continue
        real = os.path.realpath(path)
        if real in ancestors:
            continue
        yield name
        for sub in _rlist(path, dironly, ancestors | {real}):
            yield os.path.join(name, sub)


def _glob_loop_safe(pattern: str, dironly: bool = False):
    """``glob.iglob(pattern, recursive=True)`` (same names, same rules for hidden entries) without following symlinked
    directories into loops."""
    dirname, basename = os.path.split(pattern)
    if not glob.has_magic(pattern):
        if (os.path.lexists(pattern) if basename else os.path.isdir(dirname)):
            yield pattern
        return
    if dirname and dirname != pattern and glob.has_magic(dirname):
        dirs = _glob_loop_safe(dirname, True)
    else:
        dirs = [dirname]
    for folder in dirs:
        if basename == "**":
            names = ["", *_rlist(folder, dironly, frozenset({os.path.realpath(folder or os.curdir)}))]
        elif glob.has_magic(basename):
            names = [n for n in _scan(folder, dironly) if basename.startswith(".") or not n.startswith(".")]
            names = fnmatch.filter(names, basename)
        elif (os.path.lexists(os.path.join(folder, basename)) if basename else os.path.isdir(folder)):
            names = [basename]
        else:
            names = []
        for name in names:
            yield os.path.join(folder, name)


def find_inputs(inputs, exclude: Path | None = None) -> list[InputItem]:
    """Image inputs from files, folders (recursive, by extension) and glob patterns; never anything under ``exclude``."""
    exclude = Path(exclude).resolve() if exclude is not None else None
    found: list[tuple[Path, str]] = []
    for spec in inputs:
        spec = str(spec)
        path = Path(spec).expanduser()
        if path.is_dir():
            found.extend(sorted(_walk(path, exclude), key=lambda pair: pair[1]))
        elif path.is_file():
            found.append((path, path.name))
        elif any(c in spec for c in GLOB_CHARS):
            base = _glob_base(spec)
            matches = (m for m in _glob_loop_safe(spec) if m) if _is_recursive(spec) else glob.glob(spec)
            for match in sorted(matches):
                match = Path(match)
                if match.is_dir():
                    found.extend(sorted(((p, p.relative_to(base).as_posix()) for p, _ in _walk(match, exclude)),
                                        key=lambda pair: pair[1]))
                elif match.is_file():
                    found.append((match, match.relative_to(base).as_posix()))
        else:
            raise DataError(f"{spec}: no such file or folder.")
    items, seen = [], set()
    for path, rel in found:
        try:
            real = path.resolve()
        except (OSError, RuntimeError):  # a symlink loop: kept, so reading it fails with one warning line
            real = path.absolute()
        if real in seen or _inside(real, exclude):
            continue
        seen.add(real)
        items.append(InputItem(path, rel))
    _assign_stems(items)
    return items


def _assign_stems(items: list[InputItem]) -> None:
    """Output stems: the relative path without extension, or with it where two inputs would collide."""
    by_stem: dict[str, list[InputItem]] = {}
    for item in items:
        by_stem.setdefault(str(PurePosixPath(item.rel).with_suffix("")), []).append(item)
    used: dict[str, InputItem] = {}
    for stem, group in by_stem.items():
        for item in group:
            item.stem = stem if len(group) == 1 else item.rel
            if item.stem in used:
                raise DataError(f"{used[item.stem].path} and {item.path} would both write {item.stem}{MASK_SUFFIX}; "
                                f"predict them in separate runs or rename one.")
            used[item.stem] = item


def check_writable(out: Path) -> None:
    """Create ``out`` and prove a file can be written there, or fail with one line."""
    blocker = next((p for p in (out, *out.parents) if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        where = "it" if blocker == out else str(blocker)
        raise DataError(f"out {out}: {where} is a file, not a folder; choose a folder for the outputs.",
                        value="out_dir")
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".segcli-write-test.", dir=out)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise DataError(f"out {out}: cannot write there ({exc.strerror or exc}); choose a writable folder.",
                        value="out_dir") from None


def select_images(inputs, out, shard=None) -> list[InputItem]:
    """Discovered inputs (never under ``out``) of ``shard`` (K, N); a clear error when there are none."""
    items = find_inputs(inputs, exclude=out)
    if not items:
        shown = ", ".join(str(i) for i in inputs)
        raise DataError(f"no images found in {shown} (looked for {', '.join(IMAGE_EXTENSIONS)}; files under the output folder "
                        f"are never inputs).")
    if shard:
        k, n = shard
        items = [item for item in items if shard_of(item.rel, n) == k]
    return items
