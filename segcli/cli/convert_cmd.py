"""``segcli data convert SRC --from FORMAT --out DATA``: other tools' labels into segcli's split layout."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from segcli.data.convert import FORMATS

#: Dropped or clipped annotations listed before "... and N more" (DATA/convert.json and --json have them all).
SHOWN_ISSUES = 50


def _progress():
    """A progress callback drawing a bar on a terminal's stderr, else None; and a function that stops it."""
    from segcli.cli.output import err

    if not err.is_terminal:
        return None, lambda: None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(TextColumn("convert"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=err)
    task = {}

    def progress(done: int, total: int) -> None:
        if "id" not in task:
            bar.start()
            task["id"] = bar.add_task("convert", total=total)
        bar.update(task["id"], completed=done)

    return progress, bar.stop


def render_conversion(report, console) -> None:
    """The conversion report as a summary line, a class table and the dropped/clipped table."""
    from rich.table import Table
    from rich.text import Text  # cells hold user text: "[x1, y1, ...]" or a file name in brackets is not markup

    images = ", ".join(f"{split} {n}" for split, n in report.images.items())
    how = "linked (relative symbolic links)" if report.images_linked else "copied"
    console.print(f"Converted {report.format} labels from {report.source} into {report.out}: images {images}, "
                  f"{how}.", highlight=False, markup=False)
    for note in report.notes:
        console.print(f"note: {note}", highlight=False, markup=False)
    table = Table(title="Annotations per class", title_justify="left")
    for col, justify in (("id", "right"), ("class", "left"), ("color", "left"), ("annotations", "right")):
        table.add_column(col, justify=justify)
    for i, cls in enumerate(report.classes):
        table.add_row(str(i), Text(cls["name"]), str(cls["color"]), str(report.annotations.get(cls["name"], 0)))
    if "ignore (255)" in report.annotations:
        table.add_row("255", "ignore", "", str(report.annotations["ignore (255)"]))
    console.print(table)
    if not report.issues:
        console.print("Nothing was dropped or clipped.", highlight=False)
        return
    table = Table(title=f"Dropped, clipped or ignored ({len(report.issues)})", title_justify="left")
    for col in ("file", "annotation", "action", "reason"):
        table.add_column(col, overflow="fold")
    for issue in report.issues[:SHOWN_ISSUES]:
        table.add_row(Text(issue.file), Text(issue.item), issue.action, Text(issue.reason))
    if len(report.issues) > SHOWN_ISSUES:
        table.add_row("...", f"and {len(report.issues) - SHOWN_ISSUES} more", "", f"see {report.out}/convert.json")
    console.print(table)
    console.print(f"{report.count('dropped')} dropped, {report.count('clipped')} clipped, "
                  f"{report.count('ignored')} partly ignored; all listed in {report.out}/convert.json.",
                  highlight=False, markup=False)


def convert(
    src: Path = typer.Argument(..., metavar="SRC", help="The annotation file or folder (what it is depends on "
                                                        "--from)."),
    fmt: str = typer.Option(..., "--from", metavar="FORMAT",
                            help="Source format, one of " + ", ".join(FORMATS) + ". SRC is, for "
                            + "; ".join(f"{k}: {v}" for k, v in FORMATS.items()) + "."),
    out_dir: Path = typer.Option(..., "--out", "-o", metavar="DATA", help="Dataset folder to write: new, empty, or "
                                 "an earlier conversion (replaced). Not inside SRC or its image folder."),
    images: Optional[Path] = typer.Option(None, "--images", metavar="DIR", help="Image folder where the format does "
                                          "not fix it (COCO default: file_name relative to the JSON's folder)."),
    copy: bool = typer.Option(False, "--copy", help="Copy the images instead of linking them."),
    classes: Optional[str] = typer.Option(None, "--classes", help="Class names in id order after background 0, "
                                          "comma separated (coco, labelme, cvat); other labels are dropped."),
    json_out: bool = typer.Option(False, "--json", help="Print the conversion report and the data check as JSON."),
) -> None:
    """Convert COCO, LabelMe, CVAT, Cityscapes, VOC or ADE20K labels into segcli's split layout: DATA/train and
    DATA/val (when the source has a val split) with images/ (linked, or copied with --copy) and masks/
    (<image stem>.png, class ids, 255 = ignore), DATA/classes.json and DATA/convert.json (the full report).
    Every annotation dropped or clipped is reported with its file and reason. Overlaps: COCO draws smaller
    objects over larger ones (decreasing area), LabelMe in file order, CVAT by z_order. Repeating a
    conversion writes the same bytes; it ends with `segcli data check` on DATA and exits 1 if that fails.
    """
    from segcli.cli.data_cmd import render_report
    from segcli.cli.output import error, info, out, print_json
    from segcli.data.convert import convert as run

    names = classes.split(",") if classes is not None else None
    progress, stop = _progress()
    try:
        result = run(src, fmt, out_dir, images=images, copy=copy, class_names=names, progress=progress,
                     notify=lambda line: info(f"note: {line}"))
    finally:
        stop()
    if json_out:
        print_json(result.to_dict())
    else:
        render_conversion(result.report, out)
        out.print(f"\nData check of {out_dir}:", highlight=False, markup=False)
        if result.check is not None:
            render_report(result.check, out)
    if result.check_error is not None:
        error(f"data check: {result.check_error}")
    elif not result.ok and json_out:
        error(f"{out_dir}: {len(result.check.problems)} problem(s), first: {result.check.first_problem()}")
    if not result.ok:
        raise typer.Exit(1)
