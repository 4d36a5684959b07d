"""Dataset folders of other tools that segcli reads after ``segcli data convert``: recognised by their markers,
so that pointing train, eval or data check at one says the command that converts it.

>>> import tempfile, pathlib
>>> root = pathlib.Path(tempfile.mkdtemp()) / "ADEChallengeData2016"
>>> for sub in ("images/training", "annotations/training"):
...     (root / sub).mkdir(parents=True)
>>> print(convert_hint(root).replace(f"{root.parent}/", "").replace(": ", ":\\n"))
ADEChallengeData2016 looks like ADE20K (ADEChallengeData2016); convert it first:
`segcli data convert ADEChallengeData2016 --from ade20k --out DATA`
"""

from __future__ import annotations

from pathlib import Path


def _ade20k(root: Path):
    if (root / "ADEChallengeData2016").is_dir():
        root = root / "ADEChallengeData2016"
    return root if (root / "annotations" / "training").is_dir() and (root / "images").is_dir() else None


def _voc(root: Path):
    for src in (root, root / "VOC2012", root / "VOCdevkit" / "VOC2012"):
        if (src / "SegmentationClass").is_dir():
            return src
    return None


def _coco(root: Path):
    for folder in (root, root / "annotations"):
        if folder.is_dir() and any(folder.glob("instances_*.json")):
            return root
    return None


def _has_shapes(file: Path) -> bool:
    """True when the start of ``file`` (LabelMe writes "shapes" before its image data) has a "shapes" key."""
    try:
        with open(file, "rb") as f:
            return b'"shapes"' in f.read(1 << 20)
    except OSError:
        return False


def _labelme(root: Path):
    files = sorted(root.glob("*.json"))[:3] if root.is_dir() else []
    return root if files and all(map(_has_shapes, files)) else None


#: format -> (what it is, a function giving the SRC to convert, or None).
SOURCES = {
    "ade20k": ("ADE20K (ADEChallengeData2016)", _ade20k),
    "cityscapes": ("Cityscapes (gtFine/ and leftImg8bit/)", lambda r: r if (r / "gtFine").is_dir() else None),
    "voc": ("Pascal VOC (SegmentationClass/)", _voc),
    "coco": ("COCO (instances_*.json)", _coco),
    "cvat": ("a CVAT export (annotations.xml)", lambda r: r if (r / "annotations.xml").is_file() else None),
    "labelme": ("a LabelMe folder (.json files with shapes)", _labelme),
}


def recognise(root) -> tuple[str, str, Path] | None:
    """(format, what it is, SRC to convert) when ``root`` is a dataset folder of another tool; else None."""
    root = Path(root)
    for fmt, (what, find) in SOURCES.items():
        src = find(root)
        if src is not None:
            return fmt, what, src
    return None


def convert_hint(root) -> str:
    """What to run when ``root`` is another tool's dataset folder, or "" when it is not one."""
    found = recognise(root)
    if found is None:
        return ""
    fmt, what, src = found
    return f"{root} looks like {what}; convert it first: `segcli data convert {src} --from {fmt} --out DATA`"
