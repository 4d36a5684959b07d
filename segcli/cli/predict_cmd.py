"""``segcli predict INPUT... --out DIR``: index masks and overlays for images, folders, globs and videos."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import List, Optional

import typer

from segcli.cli import options as shared
from segcli.cli.output import err, info, one_line, out, print_json, warn
from segcli.inference.video import VIDEO_EXTENSIONS

def new_rate(task) -> float | None:
    """Images per second of this run's own work (a Rich Task): what an earlier run finished (``done_before``) is
    read back in a blink and would make the rate, and so the ETA, look far better than it is."""
    done = task.completed - task.fields.get("done_before", 0)
    return done / task.elapsed if task.elapsed and done > 0 else None  # whole-run rate, not a burst


def eta_seconds(task) -> float | None:
    """Seconds left at :func:`new_rate`; None until this run has predicted something.

    >>> from types import SimpleNamespace
    >>> eta_seconds(SimpleNamespace(total=110, completed=101, elapsed=10.0, fields={"done_before": 100}))
    90.0
    """
    rate = new_rate(task)
    return max(0.0, task.total - task.completed) / rate if rate and task.total is not None else None


@contextmanager
def progress_bar(label: str):
    """A Rich progress bar on stderr with img/s and ETA; yields (on_start, on_progress)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn
    from rich.text import Text

    class Rate(ProgressColumn):
        def render(self, task):
            speed = new_rate(task)
            return Text(f"{speed:.1f} img/s" if speed else "-- img/s")

    class TimeLeft(ProgressColumn):  # Rich's TimeRemainingColumn uses task.speed, which counts done_before
        def render(self, task):
            left = eta_seconds(task)
            if left is None:
                return Text("-:--:--", style="progress.remaining")
            minutes, seconds = divmod(int(left), 60)
            return Text(f"{minutes // 60}:{minutes % 60:02d}:{seconds:02d}", style="progress.remaining")

    bar = Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), Rate(), TimeLeft(), console=err)
    task = {"done_before": 0}

    def on_start(total):
        bar.start()  # only once there is work: an early error then prints no empty bar line
        task["id"] = bar.add_task(label, total=total)

    def on_progress(n, done_before=False):
        task["done_before"] += n if done_before else 0
        bar.update(task["id"], advance=n, done_before=task["done_before"])

    try:
        yield on_start, on_progress
    except BaseException:
        if "id" in task:  # a failed run leaves no half-drawn bar (nor a blank line) above its error line
            bar.live.transient = True
            bar.live.stop()  # not bar.stop(), which adds a newline on a non-terminal
            task.clear()
        raise
    finally:
        if "id" in task:
            bar.stop()


def interrupted_line(exc: KeyboardInterrupt) -> str:
    """What a Ctrl-C leaves in ``--out`` (a :class:`~segcli.inference.predict.PredictInterrupted` says), and how to
    go on: the outputs on disk are complete files, and a rerun skips them."""
    if not hasattr(exc, "written"):  # before the first image: while loading the model or finding the inputs
        return "interrupted: nothing was predicted yet; run the same command again to start."
    before = f" ({exc.done_before} done before)" if exc.done_before else ""
    return (f"interrupted: {exc.written} of {exc.total} written to {exc.out}{before}; run the same command again to "
            f"continue.")


def parse_tta_option(text):
    """``--tta`` as a TTASpec (None when not given)."""
    from segcli.inference.tta import parse_tta

    return parse_tta(text, name="--tta") if text else None


def check_video_flags(every: int, smooth: float) -> None:
    from segcli.errors import UsageError

    if every < 1:
        raise UsageError(f"--every {every}: must be at least 1 (1 = every frame).")
    if not 0.0 <= smooth < 1.0:
        raise UsageError(f"--smooth {smooth}: must be within 0 (off) and 1 (exclusive); 0.5 to 0.8 suits most clips.")


def render_summary(summary: dict) -> None:
    from rich.table import Table

    count = summary["count"]
    table = Table(title="segcli predict", show_header=False)
    rows = [("model", summary["model"]), ("engine", summary["engine"]), ("mode", summary["mode"]),
            ("batch size", summary["batch_size"]), ("output", summary["out"]),
            ("inputs", count["inputs"]), ("written", count["written"]), ("skipped (done before)", count["skipped"]),
            ("failed", count["failed"])]
    if count["not_processed"]:
        rows.append(("not processed (--strict)", count["not_processed"]))
    if summary["shard"]:
        rows.insert(5, ("shard", summary["shard"]))
    rows += [("img/s", summary["img_per_s"] if summary["img_per_s"] is not None else "-"),
             ("total time (s)", summary["total_seconds"])]
    if summary.get("tta"):
        rows.insert(3, ("test-time augmentation", summary["tta"]))
    for video in summary.get("videos", []):
        frames = video["frames"]
        rows.append((f"video {video['input']}", f"{frames['written'] + frames['skipped']} frames ({frames['written']} "
                     f"written, {frames['skipped']} done before) -> {video['outputs']['masks']}"
                     + (f", {video['outputs']['overlay']}" if video["outputs"]["overlay"] else "")
                     + (" (truncated)" if video["truncated"] else "")))
    for key, value in rows:
        table.add_row(key, str(value))
    out.print(table)
    for failure in summary["failures"]:
        out.print(f"failed: {one_line(failure['error'])}", highlight=False, markup=False)


def predict(
    inputs: List[str] = typer.Argument(..., metavar="INPUT...", help="Image files, folders (searched recursively), "
                                       "glob patterns (quote them, e.g. 'shots/**/*.jpg') or video files "
                                       f"({' '.join(VIDEO_EXTENSIONS)}); a multi-page TIFF gives a mask per page."),
    out_dir: Path = typer.Option(..., "--out", "-o", help="Output folder; the input tree is mirrored under it."),
    model: Optional[str] = shared.MODEL,
    backend: str = shared.BACKEND,
    precision: str = shared.PRECISION,
    mode: str = shared.MODE,
    tile: Optional[int] = shared.TILE,
    stride: Optional[int] = shared.STRIDE,
    batch_size: Optional[int] = shared.BATCH_SIZE,
    max_side: Optional[int] = shared.MAX_SIDE,
    alpha: float = typer.Option(0.5, "--alpha", help="Overlay opacity of the class colours, 0..1."),
    overlay: bool = typer.Option(True, "--overlay/--no-overlay", help="Write <stem>_overlay.jpg."),
    color_mask: bool = typer.Option(False, "--color-mask", help="Also write <stem>_color.png."),
    save_probs: bool = typer.Option(False, "--save-probs", help="Also write <stem>_probs.npy (float16 H x W x C)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Recompute inputs whose outputs already exist; "
                                   "needed when --out was filled with another model or settings."),
    strict: bool = typer.Option(False, "--strict", help="Stop at the first unreadable input."),
    shard: Optional[str] = typer.Option(None, "--shard", help="K/N: process only this shard (0 <= K < N) of the "
                                        "inputs, chosen by a stable hash of each relative path."),
    workers: Optional[int] = typer.Option(None, "--workers", help="Threads for reading and for writing (default "
                                          "min(4, CPUs))."),
    tta: Optional[str] = shared.TTA,
    every: int = typer.Option(1, "--every", help="Videos: predict every N-th frame (the overlay video keeps the "
                              "clip's duration)."),
    smooth: float = typer.Option(0.0, "--smooth", help="Videos: average logits over time against flicker, "
                                 "ema = A * ema + (1 - A) * logits; A in 0..1 (0 = off, 0.5-0.8 typical)."),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON on stdout."),
) -> None:
    """Predict class-index masks (and overlays) for images, folders, globs and videos."""
    from segcli.errors import UsageError
    from segcli.inference.predict import PredictOptions, parse_shard, run_predict
    from segcli.inference.provenance import OutputsDiffer

    check_video_flags(every, smooth)
    options = PredictOptions(out=out_dir, mode=mode, batch_size=batch_size, tile=tile, stride=stride,
                             max_side=max_side, alpha=alpha, overlay=overlay, color_mask=color_mask,
                             save_probs=save_probs, overwrite=overwrite, strict=strict,
                             shard=parse_shard(shard) if shard else None, workers=workers, tta=parse_tta_option(tta),
                             every=every, smooth=smooth, backend=backend, precision=precision)
    try:
        with progress_bar("predict") as (on_start, on_progress):
            summary = run_predict(inputs, model, options, on_progress=on_progress, on_warning=warn,
                                  on_start=on_start, on_note=lambda line: info(f"note: {line}"))
    except OutputsDiffer as exc:  # the settings it names are this command's flags
        raise UsageError(exc.render(lambda name: "--" + name.replace("_", "-"))) from None
    except KeyboardInterrupt as exc:
        info(interrupted_line(exc))
        raise typer.Exit(130) from None
    if json_out:
        print_json(summary)
    else:
        render_summary(summary)
        info(f"summary: {summary['summary_file']}")
    if summary["count"]["failed"]:
        raise typer.Exit(1)
