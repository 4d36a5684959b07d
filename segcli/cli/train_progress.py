"""What ``segcli train`` shows on stderr while it runs (the Rich side of :mod:`segcli.train.progress`).

On a terminal: a bar per epoch with steps, loss, img/s and the ETA of the epoch and of the run. In a log
(stderr not a terminal): a line when tracing starts, then a step line at most every ``every`` seconds
(always one after the first, slow step), and a line per finished epoch, so no minute passes silently.
"""

from __future__ import annotations

import time

from segcli.train.progress import EtaClock, Reporter, clock_text

LOG_EVERY_SECONDS = 20.0


class RichReporter(Reporter):
    def __init__(self, console=None, every: float = LOG_EVERY_SECONDS):
        from segcli.cli.output import err

        self.console = console or err
        self.every = every
        self._progress = None
        self._clock = None
        self._last_line = 0.0
        self._validation_start = None
        self._tracing = False

    def _print(self, text: str) -> None:
        self.console.print(text, highlight=False)

    def message(self, text: str) -> None:
        self._print(text)

    def start_epoch(self, epoch, epochs, steps, batch_size):
        if self._clock is None:
            self._clock = EtaClock(epochs, steps, batch_size)
        self._clock.start_epoch(epoch)
        self._epoch, self._epochs, self._loss = epoch, epochs, None
        self._last_line = time.perf_counter()
        if not self.console.is_terminal:
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self._progress = Progress(
            TextColumn(f"epoch {epoch}/{epochs}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"),
            console=self.console, transient=True,
        )
        self._progress.start()
        self._task = self._progress.add_task("starting ...", total=steps)

    def phase(self, text):
        if text.startswith("validating"):
            self._validation_start = time.perf_counter()
        if self._progress is not None:
            self._progress.update(self._task, description=text)
        elif text.startswith("tracing"):
            self._tracing = True
            self._print(f"epoch {self._epoch}/{self._epochs}: {text}")

    def _status(self) -> str:
        c = self._clock
        ips = c.images_per_sec()
        return (f"loss {self._loss:.4f}  {'-' if ips is None else f'{ips:.1f}'} img/s  "
                f"ETA epoch {clock_text(c.epoch_eta())}  run {clock_text(c.run_eta())}")

    def step(self, loss):
        self._clock.step()
        self._loss = loss
        if self._progress is not None:
            self._progress.update(self._task, advance=1, description=self._status())
            return
        now = time.perf_counter()
        first = self._clock.done == 1 and self._tracing
        self._tracing = False
        if first or now - self._last_line >= self.every:
            self._last_line = now
            what = f"first step done after {self._clock.elapsed():.0f} s" if first else self._status()
            self._print(f"epoch {self._epoch}/{self._epochs} step {self._clock.done}/{self._clock.steps}: {what}")

    def end_epoch(self, row):
        if self._validation_start is not None and self._clock is not None:
            self._clock.validation_seconds = time.perf_counter() - self._validation_start
            self._validation_start = None
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
        left = self._clock.run_eta() if self._clock is not None else None
        eta = f"  run ETA {clock_text(left)}" if row["epoch"] < self._epochs else ""
        self._print(f"epoch {row['epoch']}: loss {row['train_loss']:.4f}  val mIoU {_fmt(row['val_miou'])}  "
                    f"aAcc {_fmt(row['val_pixel_accuracy'])}  {row['images_per_sec']:.1f} img/s  "
                    f"{row['seconds']:.0f}s{'  (best)' if row['best'] else ''}{eta}")


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.4f}"
