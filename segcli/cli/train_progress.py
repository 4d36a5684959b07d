"""What ``segcli train`` shows while it runs: one Rich progress bar per epoch (loss, img/s, ETA) on stderr."""

from __future__ import annotations

import time


class Reporter:
    """Silent reporter (used by non-chief workers and by library callers that want no output)."""

    def message(self, text: str) -> None:
        pass

    def start_epoch(self, epoch: int, epochs: int, steps: int, batch_size: int) -> None:
        pass

    def step(self, loss: float) -> None:
        pass

    def end_epoch(self, row: dict) -> None:
        pass


class RichReporter(Reporter):
    def __init__(self, console=None):
        from segcli.cli.output import err

        self.console = console or err
        self._progress = None

    def message(self, text: str) -> None:
        self.console.print(text, highlight=False)

    def start_epoch(self, epoch, epochs, steps, batch_size):
        if not self.console.is_terminal:  # logs and pipes get the epoch lines only, not bar redraws
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._batch = batch_size
        self._start = time.perf_counter()
        self._done = 0
        self._progress = Progress(
            TextColumn(f"epoch {epoch}/{epochs}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"), TextColumn("{task.fields[ips]} img/s"),
            TextColumn("ETA"), TimeRemainingColumn(), console=self.console, transient=True,
        )
        self._progress.start()
        self._task = self._progress.add_task("train", total=steps, loss="-", ips="-")

    def step(self, loss):
        if self._progress is None:
            return
        self._done += 1
        elapsed = max(time.perf_counter() - self._start, 1e-9)
        self._progress.update(self._task, advance=1, loss=f"{loss:.4f}", ips=f"{self._done * self._batch / elapsed:.1f}")

    def end_epoch(self, row):
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
        self.console.print(
            f"epoch {row['epoch']}: loss {row['train_loss']:.4f}  val mIoU {_fmt(row['val_miou'])}  "
            f"aAcc {_fmt(row['val_pixel_accuracy'])}  {row['images_per_sec']:.1f} img/s  {row['seconds']:.0f}s"
            f"{'  (best)' if row['best'] else ''}", highlight=False)


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.4f}"
