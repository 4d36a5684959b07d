"""COCO instances JSON -> index masks.

SRC is one instances JSON (it becomes the train split), or a folder whose ``*.json`` files (in it or one
level down) are told apart by a train or val word in their path: ``instances_train2017.json``,
``valid/_annotations.coco.json``. Images are ``file_name`` relative to the image folder (default: the
JSON's folder).

* Classes: background 0, then the categories by id (categories sharing a name become one class; one named
  background draws 0); with a class list, categories named in it get its ids and the others are dropped as
  unknown labels.
* Polygons are rasterised with pycocotools, as COCO's own tools do (pixel (x, y) spans [x, x+1] x [y, y+1]);
  RLE masks, compressed or not, are decoded as they are.
* ``iscrowd`` regions become 255 (ignore).
* Overlaps: annotations are drawn in decreasing area (pixels), so smaller objects lie over larger ones;
  equal areas are drawn in file order. Crowd regions take part in the same order.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path, PurePosixPath

import numpy as np

from segcli.data.convert.common import (read_json, IGNORE, Canvas, Issue, Plan, Sample, class_table, coco_counts, label_ids,
                                        outside, place, polygon_problem, polygon_region, rle_decode, split_of,
                                        unknown_label)
from segcli.errors import DataError, UsageError


def _json_files(src: Path):
    """([(split, json path)], notes)."""
    if src.is_file():
        return [("train", src)], []
    found = sorted(p for p in [*src.glob("*.json"), *src.glob("*/*.json")] if not p.name.startswith("."))
    by_split: dict = defaultdict(list)
    for path in found:  # the file's name decides first ("train_set/instances_val.json" is val)
        by_split[split_of(path.name) or split_of(path.parent.relative_to(src).as_posix())].append(path)
    chosen, notes = [], []
    for split in ("train", "val"):
        files = by_split.pop(split, [])
        if len(files) > 1:  # annotations/ of COCO 2017 also holds captions_* and person_keypoints_*
            files = [p for p in files if p.name.startswith("instances")] or files
        if len(files) > 1:
            raise UsageError(f"{src}: several {split} annotation files ({', '.join(p.name for p in files)}); "
                             f"give the one to convert as the source.")
        chosen += [(split, p) for p in files]
    if not chosen and len(by_split.get(None, [])) == 1:
        return [("train", by_split.pop(None)[0])], []
    if not chosen:
        raise DataError(f"{src}: no COCO annotation file found; give the .json file, or a folder holding "
                        f"*train*.json (and *val*.json) in it or one level down.")
    if chosen[0][0] != "train":
        raise DataError(f"{src}: has a val annotation file ({chosen[0][1].name}) but no train one.")
    for path in (p for files in by_split.values() for p in files):
        notes.append(f"{path}: not converted (only train and val annotation files are).")
    return chosen, notes


def _load(path: Path) -> dict:
    data = read_json(path, "fix or re-export it")
    if not isinstance(data, dict) or not isinstance(data.get("images"), list) \
            or not isinstance(data.get("categories"), list) or not isinstance(data.get("annotations", []), list):
        raise DataError(f"{path}: not a COCO instances file (it needs \"images\", \"annotations\" and "
                        f"\"categories\" lists).")
    return data


def _categories(files: list):
    """{category id: {"name", "color", "file" (the first to list it)}} over all files; DataError when they disagree."""
    categories: dict = {}
    for path, data in files:
        for i, cat in enumerate(data["categories"]):
            if not isinstance(cat, dict) or not isinstance(cat.get("id"), int) or not isinstance(cat.get("name"), str):
                raise DataError(f"{path}: category {i} needs an integer \"id\" and a \"name\"; got {cat!r}.")
            known = categories.setdefault(cat["id"], {"name": cat["name"], "color": cat.get("color"), "file": path})
            if known["name"] != cat["name"]:
                raise DataError(_name_clash(path, cat, known))
    return categories


def _name_clash(path: Path, cat: dict, known: dict) -> str:
    """The error line for category id ``cat["id"]`` named ``cat["name"]`` in ``path`` after ``known``."""
    if known["file"] == path:
        return (f"{path}: category id {cat['id']} is listed twice in {path.name}, as '{known['name']}' and as "
                f"'{cat['name']}'; give each category id one name.")
    return (f"{path}: category id {cat['id']} is '{cat['name']}' here but '{known['name']}' in {known['file']}; "
            f"the files must share one category list.")


def _is_color(value) -> bool:
    return isinstance(value, list) and len(value) == 3 and all(isinstance(v, int) and 0 <= v <= 255 for v in value)


def _classes(categories: dict, class_names, notes: list):
    """(class table, {category id: class id or None})."""
    if class_names is not None:
        table = class_table(class_names)
    else:
        names, colors = [], {}
        for cid in sorted(categories):
            name = categories[cid]["name"]
            if name in names:
                notes.append(f"category {cid} is also named '{name}': merged into one class.")
                continue
            names.append(name)
            colors[name] = categories[cid]["color"]
        use = all(_is_color(c) for c in colors.values()) and colors
        table = class_table(names, colors if use else None)
    ids = label_ids(table)
    return table, {cid: ids.get(cat["name"]) for cid, cat in categories.items()}


def _file_name(name: str) -> str:
    """The image's path under DATA/<split>/images: ``file_name`` itself when it stays inside, else its name."""
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts:
        return path.name
    return path.as_posix()


def _rle_region(seg: dict, height: int, width: int):
    """(region, None) or (None, why not)."""
    size, counts = seg.get("size"), seg.get("counts")
    if not (isinstance(size, list) and len(size) == 2):
        return None, "unreadable RLE: \"size\" must be [height, width]"
    if list(size) != [height, width]:
        return None, f"RLE is {size[1]}x{size[0]} but the image is {width}x{height}"
    try:
        if isinstance(counts, str):
            counts = coco_counts(counts)
        elif not (isinstance(counts, list) and all(isinstance(v, int) for v in counts)):
            return None, "unreadable RLE: \"counts\" must be a string or a list of integers"
        return rle_decode(counts, height, width).astype(bool), None
    except DataError as exc:
        return None, f"unreadable RLE: {exc}"


def _malformed(poly) -> str:
    """Why ``poly`` is not a flat list of finite x, y numbers, or ""."""
    if not isinstance(poly, list) or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in poly):
        return "not a list of finite numbers x1, y1, x2, y2, ..."
    return f"an odd number of coordinates ({len(poly)})" if len(poly) % 2 else ""


def _polygons_region(seg: list, height: int, width: int, file, item: str, issues: list):
    """(region or None, some point outside the image)."""
    if seg and all(isinstance(v, (int, float)) for v in seg):
        seg = [seg]  # a single flat polygon, as some exporters write it
    polygons, out = [], False
    for k, poly in enumerate(seg, 1):
        part = item if len(seg) == 1 else f"{item}, polygon {k} of {len(seg)}"
        why = _malformed(poly)
        if why:
            issues.append(Issue(str(file), part, "dropped", f"malformed polygon: {why}"))
            continue
        xy = np.asarray(poly, np.float64).reshape(-1, 2)
        problem = polygon_problem(xy)
        if problem:
            issues.append(Issue(str(file), part, "dropped", problem))
            continue
        polygons.append(xy)
        out = out or outside(xy, 0.0, width, height)
    return (polygon_region(polygons, height, width) if polygons else None), out


def _render(anns: list, class_of: dict, cat_names: dict, file: Path, height: int, width: int, issues: list):
    regions = []
    for order, ann in enumerate(anns):
        cid, crowd = ann.get("category_id"), bool(ann.get("iscrowd"))
        what = f"'{cat_names[cid]}'" if cid in cat_names else f"category {cid}"
        item = f"annotation {ann.get('id')} ({what}{', crowd' if crowd else ''})"
        if cid not in class_of:
            issues.append(Issue(str(file), item, "dropped", f"unknown category id {cid} (not in the categories)"))
            continue
        if class_of[cid] is None:
            issues.append(unknown_label(file, item, cat_names[cid]))
            continue
        seg = ann.get("segmentation")
        if isinstance(seg, dict):
            region, why = _rle_region(seg, height, width)
            out = False
            if why:
                issues.append(Issue(str(file), item, "dropped", why))
                continue
        elif isinstance(seg, list) and seg:
            region, out = _polygons_region(seg, height, width, file, item, issues)
            if region is None:
                continue
        else:
            issues.append(Issue(str(file), item, "dropped", "no segmentation (only a box?)"))
            continue
        value = IGNORE if crowd else class_of[cid]
        regions.append((-int(region.sum()), order, region, value, item, out))
    canvas = Canvas(height, width)
    for _, _, region, value, item, out in sorted(regions, key=lambda r: r[:2]):
        place(canvas, issues, region, value, file, item, out)
    return canvas.finish(issues)


def _samples(split: str, path: Path, data: dict, image_dir: Path, class_of: dict, cat_names: dict, issues: list):
    by_image: dict = defaultdict(list)
    for ann in data.get("annotations", []):
        by_image[ann.get("image_id") if isinstance(ann, dict) else None].append(ann)
    samples, seen = [], set()
    for i, entry in enumerate(data["images"]):
        ok = isinstance(entry, dict) and entry.get("id") is not None and isinstance(entry.get("file_name"), str) \
            and all(isinstance(entry.get(k), int) and entry[k] > 0 for k in ("width", "height"))
        if not ok or entry.get("id") in seen:
            why = "repeats an image id" if ok else "needs \"id\", \"file_name\", \"width\" and \"height\""
            issues.append(Issue(str(path), f"image entry {i}", "dropped", f"image entry {why}"))
            continue
        seen.add(entry["id"])
        anns = by_image.pop(entry["id"], [])

        def render(height, width, found, anns=anns):
            return _render(anns, class_of, cat_names, path, height, width, found)

        samples.append(Sample(split=split, name=_file_name(entry["file_name"]), source=str(path),
                              image=image_dir / entry["file_name"], render=render,
                              size=(entry["height"], entry["width"]), annotations=len(anns)))
    for image_id, anns in by_image.items():
        for ann in anns:
            item = f"annotation {ann.get('id') if isinstance(ann, dict) else ann!r}"
            issues.append(Issue(str(path), item, "dropped", f"refers to image id {image_id}, which is not in images"))
    return samples


def plan(src: Path, images, class_names) -> Plan:
    files, notes = _json_files(src)
    loaded = [(path, _load(path)) for _, path in files]
    categories = _categories(loaded)
    classes, class_of = _classes(categories, class_names, notes)
    cat_names = {cid: cat["name"] for cid, cat in categories.items()}
    samples, issues, image_dirs = [], [], []
    for (split, path), (_, data) in zip(files, loaded):
        image_dir = images if images is not None else path.parent
        image_dirs.append(image_dir)
        samples += _samples(split, path, data, image_dir, class_of, cat_names, issues)
    image_dirs += [s.image.parent for s in samples]  # file_name may lead elsewhere ("../images/a.jpg")
    return Plan(classes=classes, samples=samples, image_dirs=sorted(set(image_dirs)), issues=issues, notes=notes)
