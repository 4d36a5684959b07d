"""Read ahead: run slow loads (decode, resize) in worker threads while the caller uses earlier results.

:func:`read_ahead` keeps at most ``window`` loads submitted, hands results
back in input order, and reports a failed load as that item's ``error``
instead of ending the loop, so one unreadable file costs one item. Closing
the generator (``with contextlib.closing(read_ahead(...)) as loaded:``, so
that a ``break`` or an exception closes it at once) cancels the loads not yet
started and waits for the running ones: no thread outlives the loop.

>>> def load(n):
...     if n == 3:
...         raise ValueError("three is unreadable")
...     return n * n
>>> [(r.item, r.value, str(r.error) if r.error else None) for r in read_ahead(range(5), load, window=2)]
[(0, 0, None), (1, 1, None), (2, 4, None), (3, None, 'three is unreadable'), (4, 16, None)]
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any


@dataclass
class Loaded:
    """One item and what loading it gave: ``value``, or the exception in ``error``."""

    item: Any
    value: Any = None
    error: BaseException | None = None


def default_workers() -> int:
    """Threads for reading: up to 4, never more than the CPUs."""
    return min(4, os.cpu_count() or 1)


def read_ahead(items: Iterable, load: Callable[[Any], Any], window: int = 16, workers: int | None = None,
               name: str = "segcli-read") -> Iterator[Loaded]:
    """Yield ``Loaded(item, load(item))`` for every item, in order, with up to ``window`` loads in flight.

    ``items`` is consumed lazily, in the calling thread, as the window empties,
    so it may itself be a generator (frames of a video). ``load`` runs in a
    pool of ``workers`` threads (default :func:`default_workers`).
    """
    window = max(1, int(window))
    source = iter(items)
    pending: deque = deque()
    pool = ThreadPoolExecutor(workers or default_workers(), thread_name_prefix=name)
    try:
        while True:
            while len(pending) < window:
                item = next(source, _END)
                if item is _END:
                    break
                pending.append((item, pool.submit(load, item)))
            if not pending:
                return
            item, future = pending.popleft()
            try:
                loaded = Loaded(item, future.result())
            except Exception as exc:  # noqa: BLE001 - a failed load is this item's result, not the loop's end
                loaded = Loaded(item, error=exc)
            yield loaded
    finally:
        for _, future in pending:
            future.cancel()
        pool.shutdown(wait=True)


_END = object()
