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

DATA must be new, empty, or an earlier conversion (it holds ``convert.json``); it may not be, lie inside, or
contain the source or its image folder.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from segcli.data.convert.common import IGNORE, ConvertReport, Issue, Plan, Sample
from segcli.data.image_io import IMAGE_EXTENSIONS
from segcli.errors import DataError, UsageError

RECORD = "convert.json"
RECORD_VERSION = 1


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


def check_out(out: Path, src: Path, image_dirs: list) -> None:
    """UsageError when ``out`` cannot take the dataset: it overlaps the inputs, is a file, or holds other files."""
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
    ancestor = next(p for p in out.absolute().parents if p.exists())
    if not out.exists() and not ancestor.is_dir():
        raise UsageError(f"output folder {out} cannot be created: {ancestor} is a file; choose another folder.")
    if out.is_dir() and any(out.iterdir()) and not (out / RECORD).is_file():
        raise UsageError(f"output folder {out} is not empty and holds no earlier conversion ({RECORD}); "
                         f"give a new or empty folder.")


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
        self._put(sample, stem, encode_png(label))
        self.images[sample.split] += 1
        self.annotations.update(counts)

    def _put(self, sample: Sample, stem: str, mask_png: bytes) -> None:
        image_path = self.data / sample.split / "images" / sample.name
        mask_path = self.data / sample.split / "masks" / f"{stem}.png"
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
          progress: Optional[Callable] = None) -> ConvertReport:
    """Write ``plan`` into ``out`` (see the module docstring) and return the report."""
    out = Path(out).expanduser()
    if out.is_symlink():  # replace the folder it points to, not the link
        out = real_path(out)
    check_out(out, src, plan.image_dirs)
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
              "report": report.to_dict()}
    (work / "data" / "classes.json").write_text(json.dumps({"classes": plan.classes}, indent=2) + "\n")
    (work / "data" / RECORD).write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n")
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
