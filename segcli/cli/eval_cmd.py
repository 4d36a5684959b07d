"""``segcli eval DATA --model MODEL``: mIoU, Dice, precision, recall, aAcc, mAcc and the confusion matrix."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from segcli.cli.output import err, info, out, pct, print_json
from segcli.cli import options as shared
from segcli.cli.predict_cmd import parse_tta_option, progress_bar

JSON_KEYS = ("miou", "pixel_accuracy", "mean_accuracy", "mean_dice", "model", "engine", "data", "split", "mode", "tta",
             "images", "pixels", "seconds", "img_per_s", "per_class", "confusion", "worst")


def percent(value) -> str:
    """A fraction as a percentage with its unit: ``0.80174`` -> ``80.17%``; None -> ``-``.

    >>> percent(0.80174), percent(None)
    ('80.17%', '-')
    """
    return "-" if value is None else f"{pct(value)}%"


def footer(result: dict) -> str:
    """The lines under eval's table: the headline metrics in percent, what was scored, what '-' means."""
    from segcli.inference.metrics import UNDEFINED

    return (f"mIoU {percent(result['miou'])}  aAcc {percent(result['pixel_accuracy'])}  "
            f"mAcc {percent(result['mean_accuracy'])}  ({result['pixels']} pixels scored; pixels labelled 255 "
            f"are ignored)\n'-' = undefined, left out of the means: {UNDEFINED}.")


def render(result: dict) -> None:
    from rich.table import Table

    tta = f", TTA {result['tta']}" if result.get("tta") else ""
    table = Table(title=f"segcli eval: {result['model']} on {result['data']} ({result['split']}, "
                        f"{result['images']} images, {result['mode']} mode{tta}, {result['engine']})")
    for column in ("class", "IoU %", "Dice %", "precision %", "recall %"):
        table.add_column(column, justify="left" if column == "class" else "right")
    for row in result["per_class"]:
        table.add_row(row["name"], pct(row["iou"]), pct(row["dice"]), pct(row["precision"]), pct(row["recall"]))
    table.add_section()
    table.add_row("mean", pct(result["miou"]), pct(result["mean_dice"]), pct(result["mean_precision"]),
                  pct(result["mean_recall"]), style="bold")
    out.print(table)
    out.print(footer(result), highlight=False)


def check_report_path(path: Path) -> None:
    """Fail before the run, with one line, when the report could not be written."""
    import os
    import tempfile

    from segcli.errors import DataError

    if path.is_dir():
        raise DataError(f"--report {path}: is a folder; give a file name such as {path / 'report.html'}.")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".segcli-write-test.", dir=path.parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise DataError(f"--report {path}: cannot write there ({exc.strerror or exc}); choose a writable "
                        f"path.") from None


def eval_command(
    data: Path = typer.Argument(..., help="Dataset folder (the layouts `segcli train` reads)."),
    model: Optional[str] = shared.MODEL,
    backend: str = shared.BACKEND,
    precision: str = shared.PRECISION,
    split: str = shared.SPLIT,
    mode: str = shared.MODE,
    tile: Optional[int] = shared.TILE,
    stride: Optional[int] = shared.STRIDE,
    batch_size: Optional[int] = shared.BATCH_SIZE,
    max_side: Optional[int] = shared.MAX_SIDE,
    min_miou: Optional[float] = typer.Option(None, "--min-miou", help="Exit 1 when mIoU (0..1) is below this."),
    tta: Optional[str] = shared.TTA,
    report: Optional[Path] = typer.Option(None, "--report", help="Also write a self-contained HTML report: metrics, "
                                          "per-class chart, confusion heatmap, the worst images."),
    worst: int = typer.Option(12, "--worst", help="Images with the lowest per-image mIoU to show in the report "
                              "(and list in --json)."),
    label_map: Optional[Path] = shared.LABEL_MAP,
    classes: Optional[str] = typer.Option(None, "--classes", help="a,b,c: score only these classes, in this order "
                                          "(a model trained with the same --classes; a model that names its "
                                          "classes must get them in its order); others become 255."),
    json_out: bool = typer.Option(False, "--json", help="Print the metrics as JSON on stdout."),
) -> None:
    """Score a model on a labelled dataset (255 = ignore)."""
    from segcli.errors import UsageError
    from segcli.inference.evaluate import evaluate, run_split

    if min_miou is not None and not 0.0 <= min_miou <= 1.0:
        raise UsageError(f"--min-miou {min_miou}: give a fraction between 0 and 1 (0.5 means 50% mIoU).")
    if worst < 0:
        raise UsageError(f"--worst {worst}: give 0 or more images.")
    if report is not None:
        from segcli.inference.report import require_matplotlib

        require_matplotlib()
        check_report_path(report)
    spec = parse_tta_option(tta)
    with progress_bar("eval") as (on_start, on_progress):
        result = evaluate(data, model, split=split, mode=mode, batch_size=batch_size, tile=tile, stride=stride,
                          max_side=max_side, tta=spec, worst=worst, label_map=label_map, keep_classes=classes,
                          backend=backend, precision=precision, on_start=on_start, on_progress=on_progress,
                          **run_split(model))  # a flat dataset's drawn val split: the one the run trained with
    for note in result["notes"]:
        info(f"note: {note}")
    if report is not None:
        from segcli.inference.report import write_report

        write_report(report, result, result["worst_images"], result["classes"])
    if json_out:
        print_json({key: result[key] for key in JSON_KEYS})
    else:
        render(result)
    if report is not None:
        info(f"report: {report}")
    if min_miou is not None and (result["miou"] is None or result["miou"] < min_miou):
        err.print(f"mIoU {percent(result['miou'])} is below --min-miou {min_miou} ({percent(min_miou)}).",
                  style="red", highlight=False)
        raise typer.Exit(1)
