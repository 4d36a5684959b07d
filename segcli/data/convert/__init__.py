"""``segcli data convert``: labels from other tools into segcli's split layout.

The registry below maps each ``--from`` name to its module; every module has
``plan(src, images, class_names) -> Plan`` and :func:`convert` hands the plan to
:mod:`segcli.data.convert.writer`, which writes DATA atomically and checks it.

Class ids: for coco, labelme and cvat, background is 0 and the source's
classes follow (COCO: by category id; LabelMe: sorted label names; CVAT: the
order of its label list; or the order of a given class list); cityscapes uses
its 19 train ids (road is 0), voc its 21 classes and ade20k its 150 (wall is 0; ADE20K's 0, "other", becomes
ignore). 255 is ignore everywhere.

Where annotations overlap, the one drawn last wins:

* **coco**: in decreasing area (pixels), so smaller objects are drawn over
  larger ones (equal areas: in file order); ``iscrowd`` regions take part in
  the same order and draw 255 (ignore);
* **labelme**: in the file's shape order (later shapes over earlier ones), as
  LabelMe's own export does; a ``__ignore__`` label draws 255;
* **cvat**: by ``z_order``, then document order, as CVAT's own mask export does.

Annotations that end up with no visible pixel are reported, like every other
dropped or clipped annotation.

>>> sorted(FORMATS)
['ade20k', 'cityscapes', 'coco', 'cvat', 'labelme', 'voc']
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

from segcli.errors import DataError, UsageError

#: Format name -> what SRC is for it.
FORMATS = {
    "coco": "a COCO instances .json file, or a folder with *train*.json and *val*.json (in it or one level down)",
    "labelme": "a folder of LabelMe .json files (subfolders named val and test become splits), or one .json file",
    "cvat": "a CVAT for images 1.1 annotations.xml, or the folder holding it (images in images/ beside it)",
    "cityscapes": "the Cityscapes root, holding gtFine/{train,val}/<city>/*_gtFine_labelIds.png and leftImg8bit/",
    "voc": "the VOC folder (VOC2012), holding SegmentationClass/, JPEGImages/ and ImageSets/Segmentation/",
    "ade20k": "ADEChallengeData2016 (or the folder holding it), with annotations/ and images/ "
              "{training,validation}",
}


def _module(fmt: str):
    from segcli.data.convert import ade20k, cityscapes, coco, cvat, labelme, voc

    return {"coco": coco, "labelme": labelme, "cvat": cvat, "cityscapes": cityscapes, "voc": voc,
            "ade20k": ade20k}[fmt]


def plan(fmt: str, src, images=None, class_names: Optional[list] = None):
    """Read the source: a :class:`~segcli.data.convert.common.Plan` of classes and samples, nothing written."""
    from segcli.data.convert.common import chosen_names

    if fmt not in FORMATS:
        raise UsageError(f"unknown format '{fmt}'; choose one of: {', '.join(FORMATS)}.", value="fmt")
    src = Path(src).expanduser()
    if not src.exists():
        raise DataError(f"{src}: no such file or folder; a {fmt} source is {FORMATS[fmt]}.")
    images = Path(images).expanduser() if images is not None else None
    if images is not None and not images.is_dir():
        raise DataError(f"{images}: no such image folder.")
    return _module(fmt).plan(src, images, chosen_names(class_names))


def convert(src, fmt: str, out, images=None, copy: bool = False, class_names: Optional[list] = None,
            progress: Optional[Callable] = None, notify: Optional[Callable] = None):
    """Convert ``src`` (format ``fmt``) into the split-layout dataset ``out`` and run the data check on it.

    ``images`` is the image folder where the format does not fix it; ``copy`` copies images instead of
    linking them; ``class_names`` fixes the class order (formats with their own class table refuse it);
    ``notify(line)`` hears, before anything is written, that ``out`` holds a conversion from another source.
    Returns a :class:`~segcli.data.convert.writer.ConvertResult`.
    """
    from segcli.data.convert import writer

    src = Path(src).expanduser()
    the_plan = plan(fmt, src, images, class_names)
    options = {"format": fmt, "source": str(writer.real_path(src)),
               "images": str(writer.real_path(Path(images))) if images is not None else None,
               "copy": bool(copy), "classes": list(class_names) if class_names is not None else None}
    report = writer.write(the_plan, fmt, src, Path(out), copy=copy, options=options, progress=progress,
                          notify=notify)
    check, error = writer.check(Path(out).expanduser())
    return writer.ConvertResult(report=report, check=check, check_error=error)
