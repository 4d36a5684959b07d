"""What a training run tells its watcher: the :class:`Reporter` protocol (silent here), the ETA arithmetic,
a JSON-lines log (one line per epoch) and :class:`Tee` to send events to several reporters.

The loop calls, in order: ``message`` (any time), ``start_epoch``, ``phase("tracing ...")`` before the first
step a process runs, ``step`` after every step, ``phase("validating")``, then ``end_epoch`` with the row that
metrics.csv gets. The CLI's Rich reporter (``segcli/cli/train_progress.py``) draws this.

>>> clock = EtaClock(epochs=2, steps=10, batch_size=4)
>>> clock.start_epoch(1, now=0.0)
>>> for t in range(1, 6):
...     clock.step(now=10.0 + t)   # 10 s of tracing, then 1 s a step
>>> clock.epoch_eta(), clock.run_eta()   # 5 steps left in this epoch, then 10 more
(5.0, 15.0)
>>> round(clock.images_per_sec(), 1)
4.0
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path


class Reporter:
    """Silent reporter (non-chief workers, and library callers that want no output)."""

    def message(self, text: str) -> None:
        pass

    def start_epoch(self, epoch: int, epochs: int, steps: int, batch_size: int) -> None:
        pass

    def phase(self, text: str) -> None:
        pass

    def step(self, loss: float) -> None:
        pass

    def end_epoch(self, row: dict) -> None:
        pass


class Tee(Reporter):
    """Every event to each of ``reporters``."""

    def __init__(self, *reporters):
        self.reporters = [r for r in reporters if r is not None]

    def message(self, text):
        for r in self.reporters:
            r.message(text)

    def start_epoch(self, epoch, epochs, steps, batch_size):
        for r in self.reporters:
            r.start_epoch(epoch, epochs, steps, batch_size)

    def phase(self, text):
        for r in self.reporters:
            r.phase(text)

    def step(self, loss):
        for r in self.reporters:
            r.step(loss)

    def end_epoch(self, row):
        for r in self.reporters:
            r.end_epoch(row)


class JsonLog(Reporter):
    """Appends one JSON object per finished epoch to ``path`` (the metrics.csv row), flushed at once."""

    def __init__(self, path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def end_epoch(self, row):
        clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()}
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(clean) + "\n")
            f.flush()


class EtaClock:
    """Step timing for the epoch and run ETAs. The first step a process runs (tracing) is left out of the rate."""

    def __init__(self, epochs: int, steps: int, batch_size: int):
        self.epochs, self.steps, self.batch_size = epochs, steps, batch_size
        self.epoch = 0
        self.done = 0
        self._steady_start = None  # time of the first step's end: the rate is measured from there
        self._steady_steps = 0
        self._epoch_start = 0.0
        self.validation_seconds = 0.0  # the last epoch's validation, added once per remaining epoch

    def start_epoch(self, epoch: int, now: float | None = None) -> None:
        self.epoch, self.done = epoch, 0
        self._epoch_start = time.perf_counter() if now is None else now
        self._steady_start, self._steady_steps = None, 0

    def step(self, now: float | None = None) -> None:
        now = time.perf_counter() if now is None else now
        self.done += 1
        if self._steady_start is None:
            self._steady_start = now
        else:
            self._steady_steps += 1
        self._now = now

    def seconds_per_step(self) -> float | None:
        if not self._steady_steps:
            return None
        return (self._now - self._steady_start) / self._steady_steps

    def images_per_sec(self) -> float | None:
        per_step = self.seconds_per_step()
        return None if not per_step else self.batch_size / per_step

    def elapsed(self) -> float:
        return getattr(self, "_now", self._epoch_start) - self._epoch_start

    def epoch_eta(self) -> float | None:
        per_step = self.seconds_per_step()
        return None if per_step is None else per_step * (self.steps - self.done)

    def run_eta(self) -> float | None:
        per_step = self.seconds_per_step()
        if per_step is None:
            return None
        later = self.epochs - self.epoch
        return per_step * (self.steps - self.done + later * self.steps) + later * self.validation_seconds


def clock_text(seconds: float | None) -> str:
    """``"1:02:03"`` / ``"4:05"``; ``"?"`` when unknown.

    >>> clock_text(3723), clock_text(245), clock_text(None)
    ('1:02:03', '4:05', '?')
    """
    if seconds is None:
        return "?"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"
