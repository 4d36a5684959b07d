"""What predict reads: image files, folders (recursive) and globs, each with its output stem (a multi-page TIFF
as one input per page); shards.

A folder found inside an input that holds an earlier predict's record (``.segcli-predict.json``: its masks and
overlays) is left out, so outputs are never segmented as photos; a folder or file named as an input is always read.

>>> [shard_of(name, 4) for name in ("a/b.jpg", "a/c.jpg")], parse_shard("2/4")  # the same on every machine
([0, 2], (2, 4))
"""

from __future__ import annotations

import fnmatch
import glob
import hashlib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from segcli.data.image_io import IMAGE_EXTENSIONS, is_image_name, is_unread_image_name, page_count
from segcli.errors import DataError, UsageError
from segcli.files import file_in_the_way
from segcli.inference.image_outputs import MASK_SUFFIX
from segcli.inference.provenance import RECORD_FILE

GLOB_CHARS = "*?["


@dataclass
class InputItem:
    """One input image: where it is, and the output path stem relative to ``--out``."""

    path: Path
    rel: str  # relative input path (POSIX), the key for sharding and reports
    stem: str = ""  # relative output stem (POSIX), e.g. "sub/a" -> sub/a.png, sub/a_overlay.jpg
    page: int = 0  # the 0-based page of a multi-page TIFF, each page an input of its own


@dataclass
class LeftOut:
    """What a folder walk passed over that the user should hear about."""

    folders: list = field(default_factory=list)  # folders an earlier predict wrote (they hold its record)
    unread: list = field(default_factory=list)  # images in formats segcli does not read (.heic, .gif, ...)
    stacks: list = field(default_factory=list)  # (first page's InputItem, pages) of each multi-page TIFF


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
    digest = hashlib.sha1(os.fsencode(rel)).digest()  # the name's bytes, also when they are not UTF-8
    return int.from_bytes(digest[:8], "big") % n


def _inside(path: Path, folder: Path | None) -> bool:
    if folder is None:
        return False
    try:
        path.relative_to(folder)
        return True
    except ValueError:
        return False


def _earlier_output(folder: Path) -> bool:
    """True for a folder an earlier predict wrote into (it holds the run's record)."""
    return (folder / RECORD_FILE).is_file()


def _walk(root: Path, exclude: Path | None, left: LeftOut):
    """Image files under ``root`` (sorted; hidden entries, ``exclude`` and earlier predict outputs below ``root``
    left out, the outputs and images in other formats noted in ``left``), with paths relative to root."""
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and not _inside((here / d).resolve(), exclude))
        left.folders.extend(here / d for d in dirnames if _earlier_output(here / d))
        dirnames[:] = [d for d in dirnames if not _earlier_output(here / d)]
        for name in sorted(n for n in filenames if not n.startswith(".")):
            if is_image_name(name):
                yield here / name, (here / name).relative_to(root).as_posix()
            elif is_unread_image_name(name):
                left.unread.append(here / name)


def _output_between(base: Path, path: Path, skipped: list) -> bool:
    """True when a folder below a glob's fixed ``base`` down to ``path`` is an earlier predict output (recorded in
    ``skipped``): ``in/**/*.png`` leaves ``in/masks`` out, ``in/masks/*.png`` names it."""
    for folder in reversed(path.relative_to(base).parents[:-1] if path.is_file() else
                           (path.relative_to(base), *path.relative_to(base).parents[:-1])):
        if _earlier_output(base / folder):
            if base / folder not in skipped:
                skipped.append(base / folder)
            return True
    return False


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


def find_inputs(inputs, exclude: Path | None = None, left: LeftOut | None = None) -> list[InputItem]:
    """Image inputs from files, folders (recursive, by extension) and glob patterns; never anything under ``exclude``
    (the output folder), nor in a folder an earlier predict wrote below a named one (noted in ``left``)."""
    out = Path(exclude) if exclude is not None else None
    exclude = out.resolve() if out is not None else None
    left = LeftOut() if left is None else left
    found: list[tuple[Path, str]] = []
    for spec in inputs:
        spec = str(spec)
        path = Path(spec).expanduser()
        if path.is_dir():
            found.extend(sorted(_walk(path, exclude, left), key=lambda pair: pair[1]))
        elif path.is_file():
            found.append((path, path.name))
        elif any(c in spec for c in GLOB_CHARS):
            found.extend(_glob_inputs(spec, exclude, left))
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
    _assign_stems(items, out)
    return _split_pages(items, out, left)


def _split_pages(items: list[InputItem], out: Path | None, left: LeftOut) -> list[InputItem]:
    """Each page of a multi-page TIFF (a microscope's stack) as an input of its own, as a video's frames:
    ``stack.tif`` gives ``stack.tif#1`` ... written to ``stack/000001.png`` ... (noted in ``left``)."""
    split: list[InputItem] = []
    used = {item.stem: item for item in items}
    for item in items:
        pages = page_count(item.path)
        if pages == 1:
            split.append(item)
            continue
        del used[item.stem]
        left.stacks.append((item, pages))
        for k in range(pages):
            page = InputItem(item.path, f"{item.rel}#{k + 1}", f"{item.stem}/{k + 1:06d}", k)
            if page.stem in used:
                raise DataError(_collision(used[page.stem], page, page.stem, out))
            used[page.stem] = page
            split.append(page)
    return split


def _glob_inputs(spec: str, exclude: Path | None, left: LeftOut) -> list[tuple[Path, str]]:
    base = _glob_base(spec)
    matches = (m for m in _glob_loop_safe(spec) if m) if _is_recursive(spec) else glob.glob(spec)
    found = []
    for match in sorted(matches):
        match = Path(match)
        if (match.is_dir() or match.is_file()) and _output_between(base, match, left.folders):
            continue
        if match.is_dir():
            found.extend(sorted(((p, p.relative_to(base).as_posix()) for p, _ in _walk(match, exclude, left)),
                                key=lambda pair: pair[1]))
        elif match.is_file():
            found.append((match, match.relative_to(base).as_posix()))
    return found


def _assign_stems(items: list[InputItem], out: Path | None = None) -> None:
    """Output stems: the relative path without extension, or with it where two inputs would collide."""
    by_stem: dict[str, list[InputItem]] = {}
    for item in items:
        by_stem.setdefault(str(PurePosixPath(item.rel).with_suffix("")), []).append(item)
    used: dict[str, InputItem] = {}
    for stem, group in by_stem.items():
        for item in group:
            item.stem = stem if len(group) == 1 else item.rel
            if item.stem in used:
                raise DataError(_collision(used[item.stem], item, stem, out))
            used[item.stem] = item


def _collision(first: InputItem, second: InputItem, stem: str, out: Path | None) -> str:
    """Two inputs whose outputs would be the same files: the outputs mirror each input's path relative to the
    folder (or glob) it was found in, so two inputs with the same relative path collide."""
    fix = "predict them into separate --out folders, or rename one"
    if first.rel == second.rel:
        mask = Path(out or ".") / f"{stem}{MASK_SUFFIX}"
        return (f"{first.path} and {second.path} would both write {mask}: outputs are named after each input's path "
                f"relative to the folder or glob it came from (or its file name), and both are {first.rel}; {fix}.")
    mask = Path(out or ".") / f"{second.stem}{MASK_SUFFIX}"
    return f"{first.path} and {second.path} would both write {mask}; {fix}."


def check_writable(out: Path) -> None:
    """Create ``out`` and prove a file can be written there, or fail with one line."""
    blocker = file_in_the_way(out)
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


def select_images(inputs, out, shard=None, note=None) -> list[InputItem]:
    """Discovered inputs (never under ``out``) of ``shard`` (K, N); a clear error when there are none.
    ``note(line)`` hears which folders were left out as earlier predict outputs, and which images as other formats."""
    left = LeftOut()
    items = find_inputs(inputs, exclude=out, left=left)
    lines = [line for line in (_skipped_line(left.folders), _unread_line(left.unread), _stacks_line(left.stacks))
             if line]
    if not items:
        shown = ", ".join(str(i) for i in inputs)
        raise DataError(f"no images found in {shown} (looked for {', '.join(IMAGE_EXTENSIONS)}; files under the output "
                        f"folder are never inputs{''.join('; ' + line for line in lines)}).")
    for line in lines if note else ():
        note(line + ".")
    if shard:
        k, n = shard
        items = [item for item in items if shard_of(item.rel, n) == k]
    return items


def _unread_line(files: list[Path]) -> str:
    """Which images were left out as formats segcli does not read, and what to do.

    >>> print(_unread_line([Path("in/IMG_1.HEIC"), Path("in/IMG_2.heic"), Path("in/a.gif")]).replace("; ", ";\\n"))
    left out 3 images in formats segcli does not read (.heic, .gif): in/IMG_1.HEIC, in/IMG_2.heic, in/a.gif;
    convert them to JPEG or PNG to predict them
    """
    if not files:
        return ""
    kinds = ", ".join(dict.fromkeys(p.suffix.lower() for p in files))
    shown = ", ".join(str(p) for p in files[:3]) + (f" and {len(files) - 3} more" if len(files) > 3 else "")
    what = "1 image in a format" if len(files) == 1 else f"{len(files)} images in formats"
    return f"left out {what} segcli does not read ({kinds}): {shown}; convert them to JPEG or PNG to predict them"


def _stacks_line(stacks: list) -> str:
    """Which inputs are multi-page TIFFs, and where each one's pages go.

    >>> _stacks_line([(InputItem(Path("in/stack.tif"), "stack.tif", "stack"), 12)])
    'in/stack.tif has 12 pages: each page is segmented on its own, into stack/000001.png to stack/000012.png'
    """
    if not stacks:
        return ""
    if len(stacks) == 1:
        (item, n), = stacks
        return f"{item.path} has {n} pages: each page is segmented on its own, into {item.stem}/000001{MASK_SUFFIX} " \
               f"to {item.stem}/{n:06d}{MASK_SUFFIX}"
    shown = ", ".join(f"{item.path} ({n} pages) into {item.stem}/" for item, n in stacks[:3]) + \
        (f" and {len(stacks) - 3} more" if len(stacks) > 3 else "")
    return f"{len(stacks)} inputs are multi-page TIFFs: each page is segmented on its own, into a folder named " \
           f"after the file: {shown}"


def _skipped_line(skipped: list[Path]) -> str:
    """Which folders were left out as earlier predict outputs, and how to read them anyway.

    >>> _skipped_line([Path("in/masks")]).split(";")[0]
    'skipped in/masks: an earlier predict wrote it (it holds .segcli-predict.json)'
    """
    if not skipped:
        return ""
    shown = ", ".join(str(p) for p in skipped)
    if len(skipped) == 1:
        return f"skipped {shown}: an earlier predict wrote it (it holds {RECORD_FILE}); name it as an input to " \
               f"predict its images"
    return f"skipped {len(skipped)} folders that earlier predict runs wrote (they hold {RECORD_FILE}): {shown}; " \
           f"name one as an input to predict its images"
