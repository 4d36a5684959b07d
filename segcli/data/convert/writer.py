"""Write a converted dataset in segcli's split layout, all at once, then check it.

The output folder DATA gets ``train/{images,masks}``, ``val/{images,masks}`` when the source has a val split,
``classes.json`` and ``convert.json`` (the options and the full report, with every dropped or clipped
annotation). Images are relative symbolic links to the source images, or copies; masks are single-channel
PNGs of class ids (255 = ignore) named ``<image stem>.png``.

**Atomic.** Everything is written into a hidden work folder beside DATA (``.<DATA name>.convert-*.tmp``).
Only when every file is written does a previous DATA move into the work folder and the new one take its
name; the work folder is then deleted. An interrupted run leaves the previous DATA (or, if it stopped
between the two renames, no DATA) and a work folder that the next run removes.

**Idempotent.** The same source and options write the same bytes: images in a fixed order, deterministic PNG
encoding, and no timestamps in ``convert.json``.

DATA must be new, empty, or an earlier conversion (it holds ``convert.json``) holding nothing but what that
conversion wrote: ``convert.json`` lists the images of each split (``written``), so a file added since (notes,
an extra folder, an extra image/mask pair) stops the run instead of being deleted with the folder. DATA may
not be, lie inside, or contain the source or its image folder.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable, Optional

from segcli.data.convert.common import IGNORE, ConvertReport, Issue, Plan, Sample, read_json
from segcli.data.image_io import IMAGE_EXTENSIONS
from segcli.errors import DataError, UsageError
from segcli.files import file_in_the_way, json_bytes

RECORD = "convert.json"
RECORD_VERSION = 2  # 2: the record lists the images written ("written"); 1 did not
SPLIT_NAMES = ("train", "val")


@dataclass
class ConvertResult:
    """The conversion report, and the data check of the result (or why the check could not run)."""

    report: ConvertReport
    check: object = None  # segcli.data.check.CheckReport
    check_error: Optional[str] = None

    @property
    def ok(self) -> bool:
        return self.check is not None and self.check.ok

    def to_dict(self) -> dict:
        return {"convert": self.report.to_dict(), "check": self.check.to_dict() if self.check else None,
                "check_error": self.check_error}


def real_path(path: Path) -> Path:
    """``path`` made absolute with every symbolic link resolved (it need not exist)."""
    return Path(os.path.realpath(Path(path).expanduser()))


def check_out(out: Path, src: Path, image_dirs: list) -> Optional[dict]:
    """UsageError when ``out`` cannot take the dataset: it overlaps the inputs, is a file, or holds other files.
    Returns the record of the earlier conversion ``out`` holds, or None."""
    target = real_path(out)
    inputs = [("the source", src)] + [("the image folder", d) for d in image_dirs if d is not None]
    for what, path in inputs:
        real = real_path(path)
        if target == real:
            raise UsageError(f"output folder {out} is {what} ({path}); choose a new folder outside it.")
        if real in target.parents and (what != "the source" or real.is_dir()):
            raise UsageError(f"output folder {out} is inside {what} {path}; choose a folder outside it.")
        if target in real.parents:
            raise UsageError(f"output folder {out} contains {what} {path}, which replacing it would delete; "
                             f"choose another folder.")
    if out.exists() and not out.is_dir():
        raise UsageError(f"output folder {out} is a file; give a folder for the dataset.")
    blocker = file_in_the_way(out)
    if blocker is not None:
        raise UsageError(f"output folder {out} cannot be created: {blocker} is a file; choose another folder.")
    if out.is_dir() and any(out.iterdir()) and not (out / RECORD).is_file():
        raise UsageError(f"output folder {out} is not empty and holds no earlier conversion ({RECORD}); "
                         f"give a new or empty folder.")
    return _check_earlier(out) if (out / RECORD).is_file() else None


def _mask_name(name: str) -> str:
    """The mask of image ``name`` (relative to DATA/<split>/images), relative to DATA/<split>/masks."""
    return PurePosixPath(name).with_suffix(".png").as_posix()


def _written(out: Path, record: dict) -> dict:
    """{split: image names} the record lists; a version 1 record lists none, so the pairs on disk stand in."""
    written = record.get("written")
    if isinstance(written, dict):
        return {s: [n for n in written.get(s) or [] if isinstance(n, str)] for s in SPLIT_NAMES}
    pairs = {}
    for split in SPLIT_NAMES:
        images = out / split / "images"
        names = sorted(p.relative_to(images).as_posix() for p in images.rglob("*") if not p.is_dir())
        pairs[split] = [n for n in names if (out / split / "masks" / _mask_name(n)).is_file()]
    return pairs


def _owned(out: Path, record: dict) -> set:
    """Paths in ``out`` (relative, POSIX) the conversion of ``record`` wrote, the folders holding them included."""
    files = {RECORD, "classes.json"}
    for split, names in _written(out, record).items():
        files.update(f"{split}/images/{name}" for name in names)
        files.update(f"{split}/masks/{_mask_name(name)}" for name in names)
    return files | {p.as_posix() for f in files for p in PurePosixPath(f).parents if p.name}


def _foreign(out: Path, owned: set) -> list:
    """Paths in ``out`` (relative, sorted) not in ``owned``; a foreign folder stands for everything in it."""
    found = []
    for top, dirs, files in os.walk(out):
        rel = PurePosixPath(Path(top).relative_to(out).as_posix())
        found += [(rel / name).as_posix() for name in dirs + files if (rel / name).as_posix() not in owned]
        dirs[:] = [d for d in dirs if (rel / d).as_posix() in owned]
    return sorted(found)


def _check_earlier(out: Path) -> dict:
    """The record of the conversion in ``out``; UsageError naming the first path in ``out`` it did not write."""
    record = read_json(out / RECORD, f"restore it, or move {out} aside")
    record = record if isinstance(record, dict) else {}
    foreign = _foreign(out, _owned(out, record))
    if foreign:
        more = len(foreign) - 1
        others = f" (and {more} other{'s' if more > 1 else ''})" if more else ""
        raise UsageError(f"output folder {out} holds {out / foreign[0]}{others}, which its earlier conversion did "
                         f"not write and replacing it would delete; move {'them' if more else 'it'} out of {out} "
                         f"or choose another --out.")
    return record


def replacing_note(out: Path, earlier: Optional[dict], options: Optional[dict]) -> Optional[str]:
    """One line when the earlier conversion in ``out`` came from another format or source, else None."""
    before, now = (earlier or {}).get("options"), options or {}
    if not isinstance(before, dict) or not now:
        return None
    if (before.get("format"), before.get("source")) == (now.get("format"), now.get("source")):
        return None
    return (f"replacing {out}, a conversion from {before.get('format')} ({before.get('source')}), with one from "
            f"{now.get('format')} ({now.get('source')}).")


def image_size(image) -> tuple:
    """(height, width) of an image file or file object as segcli reads it (EXIF rotation applied)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(image) as im:
            width, height = im.size
            orientation = im.getexif().get(0x0112, 1)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise DataError("not a readable image (corrupt or unsupported format)") from None
    return (width, height) if orientation in (5, 6, 7, 8) else (height, width)


class _Writer:
    """Writes samples into ``data`` (inside the work folder) as they will be seen from ``final``."""

    def __init__(self, data: Path, final: Path, copy: bool, issues: list):
        self.data, self.final, self.copy, self.issues = data, final, copy, issues
        self.taken: dict = {}  # (split, stem) -> source
        self.written: dict = {split: [] for split in SPLIT_NAMES}  # image names, in the order written
        self.images: Counter = Counter()
        self.annotations: Counter = Counter()

    def drop(self, sample: Sample, reason: str) -> None:
        self.issues.append(Issue(sample.source, f"image {sample.name}", "dropped", reason))

    def _size(self, sample: Sample):
        if sample.image is not None and sample.image.is_file():
            return image_size(sample.image)
        if sample.image_bytes is not None:
            import io

            return image_size(io.BytesIO(sample.image_bytes()))
        return None

    def write(self, sample: Sample) -> None:
        from segcli.data.image_io import encode_png

        stem = Path(sample.name).with_suffix("").as_posix()
        suffix = Path(sample.name).suffix.lower()
        if suffix not in IMAGE_EXTENSIONS:
            self.drop(sample, f"segcli does not read {suffix or 'extension-less'} images; convert them to PNG or JPEG")
            return
        if (sample.split, stem) in self.taken:
            self.drop(sample, f"duplicate image name: {stem} is already taken by {self.taken[sample.split, stem]}")
            return
        try:
            size = self._size(sample)
        except DataError as exc:
            self.drop(sample, f"{sample.image}: {exc}")
            return
        if size is None:
            noun = "annotation" if sample.annotations == 1 else "annotations"
            lost = f" ({sample.annotations} {noun} dropped)" if sample.annotations else ""
            self.drop(sample, f"missing image: {sample.image} does not exist{lost}")
            return
        if sample.size is not None and tuple(sample.size) != size:
            self.drop(sample, f"size mismatch: the image is {size[1]}x{size[0]} but the annotation says "
                              f"{sample.size[1]}x{sample.size[0]}")
            return
        issues: list = []
        try:
            label, counts = sample.render(size[0], size[1], issues)
        except DataError as exc:
            self.drop(sample, str(exc))
            return
        if label.shape != size:
            self.drop(sample, f"size mismatch: the mask is {label.shape[1]}x{label.shape[0]} but the image is "
                              f"{size[1]}x{size[0]}")
            return
        self.issues.extend(issues)
        self.taken[sample.split, stem] = sample.source
        self._put(sample, encode_png(label))
        self.written[sample.split].append(sample.name)
        self.images[sample.split] += 1
        self.annotations.update(counts)

    def _put(self, sample: Sample, mask_png: bytes) -> None:
        image_path = self.data / sample.split / "images" / sample.name
        mask_path = self.data / sample.split / "masks" / _mask_name(sample.name)
        for path in (image_path, mask_path):
            path.parent.mkdir(parents=True, exist_ok=True)
        mask_path.write_bytes(mask_png)
        if sample.image is None or not sample.image.is_file():
            image_path.write_bytes(sample.image_bytes())
        elif self.copy:
            shutil.copyfile(sample.image, image_path)
        else:
            link_dir = self.final / sample.split / "images" / Path(sample.name).parent
            os.symlink(os.path.relpath(real_path(sample.image), link_dir), image_path)


def _leftovers(out: Path) -> list:
    return sorted(p for p in out.parent.glob(f".{out.name}.convert-*.tmp") if p.is_dir())


def _swap(data: Path, out: Path, work: Path) -> None:
    """Put ``data`` where ``out`` is: the old ``out`` (if any) moves into ``work`` first."""
    if out.exists():
        os.replace(out, work / "previous")
    os.replace(data, out)


def write(plan: Plan, fmt: str, src: Path, out: Path, copy: bool = False, options: Optional[dict] = None,
          progress: Optional[Callable] = None, notify: Optional[Callable] = None) -> ConvertReport:
    """Write ``plan`` into ``out`` (see the module docstring) and return the report; ``notify(line)`` hears
    :func:`replacing_note` before anything is written."""
    out = Path(out).expanduser()
    if out.is_symlink():  # replace the folder it points to, not the link
        out = real_path(out)
    note = replacing_note(out, check_out(out, src, plan.image_dirs), options)
    if note and notify is not None:
        notify(note)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        for stale in _leftovers(out):
            shutil.rmtree(stale, ignore_errors=True)
        work = Path(tempfile.mkdtemp(prefix=f".{out.name}.convert-", suffix=".tmp", dir=out.parent))
    except OSError as exc:
        raise DataError(f"cannot write beside the output folder {out} ({exc.strerror or exc}); "
                        f"choose another folder.") from None
    try:
        return _write_all(plan, fmt, src, out, copy, options, progress, work)
    except OSError as exc:
        raise DataError(f"converting into {out} failed ({exc}); {out} was left as it was.") from None
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _write_all(plan: Plan, fmt, src, out: Path, copy: bool, options, progress, work: Path) -> ConvertReport:
    """Write everything into ``work/data``, then swap it in as ``out``."""
    issues = list(plan.issues)
    writer = _Writer(work / "data", real_path(out.parent) / out.name, copy, issues)
    (work / "data").mkdir()
    for done, sample in enumerate(plan.samples, 1):
        writer.write(sample)
        if progress is not None:
            progress(done, len(plan.samples))
    if not writer.images:
        first = next((i for i in issues if i.item.startswith("image ")), issues[0] if issues else None)
        detail = f"; first: {first.file}: {first.item}: {first.reason}" if first else ""
        raise DataError(f"{src}: none of its {len(plan.samples)} images could be converted{detail}.")
    report = _report(plan, fmt, src, out, copy, writer, issues)
    record = {"converter": "segcli data convert", "version": RECORD_VERSION, "options": options or {},
              "written": {split: names for split, names in writer.written.items() if names},
              "report": report.to_dict()}
    (work / "data" / "classes.json").write_text(json.dumps({"classes": plan.classes}, indent=2) + "\n")
    (work / "data" / RECORD).write_bytes(json_bytes(record))
    _swap(work / "data", out, work)
    return report


def _report(plan: Plan, fmt, src, out, copy, writer: _Writer, issues: list) -> ConvertReport:
    names = {i: c["name"] for i, c in enumerate(plan.classes)}
    names[IGNORE] = "ignore (255)"
    annotations = {names[i]: writer.annotations.get(i, 0) for i in range(len(plan.classes))}
    if writer.annotations.get(IGNORE):
        annotations[names[IGNORE]] = writer.annotations[IGNORE]
    return ConvertReport(format=fmt, source=str(real_path(src)), out=str(real_path(out.parent) / out.name),
                         images_linked=not copy, classes=plan.classes,
                         images={s: writer.images[s] for s in ("train", "val") if writer.images[s]},
                         annotations=annotations, issues=issues, notes=list(plan.notes))


def check(out: Path):
    """(CheckReport, None) for the written dataset, or (None, why discover refused it)."""
    from segcli.data.check import check_dataset
    from segcli.data.folder_dataset import discover

    try:
        return check_dataset(discover(out)), None
    except DataError as exc:
        return None, str(exc)
