"""read_ahead: results in input order, a failure per item, at most `window` loads in flight, clean early exit."""

from __future__ import annotations

import threading
import time

import pytest

from segcli.inference.readahead import read_ahead


def test_order_and_per_item_failures_with_uneven_load_times():
    def load(n):
        time.sleep(0.02 * (n % 3 == 0))  # the slow ones finish last but still come back in order
        if n in (4, 7):
            raise OSError(f"item {n} is unreadable")
        return n * 10

    got = list(read_ahead(range(10), load, window=4, workers=3))
    assert [g.item for g in got] == list(range(10))
    assert [g.value for g in got] == [n * 10 if n not in (4, 7) else None for n in range(10)]
    assert [str(g.error) for g in got if g.error] == ["item 4 is unreadable", "item 7 is unreadable"]


@pytest.mark.parametrize("window", [1, 3, 8])
def test_never_more_than_window_loads_ahead_and_the_source_is_read_lazily(window):
    pulled, lock, running, peak = [], threading.Lock(), [0], [0]

    def source():
        for n in range(20):
            pulled.append(n)
            yield n

    def load(n):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.005)
        with lock:
            running[0] -= 1
        return n

    for got in read_ahead(source(), load, window=window, workers=4):
        # the consumer holds item k; at most `window` items after it were taken from the source
        assert len(pulled) <= got.item + 1 + window
    assert peak[0] <= min(window, 4) and len(pulled) == 20


def test_leaving_early_cancels_what_has_not_started_and_joins_the_threads():
    started = []

    def load(n):
        started.append(n)
        time.sleep(0.01)
        return n

    before = threading.active_count()
    loop = read_ahead(range(1000), load, window=5, workers=2)
    for got in loop:
        if got.item == 2:
            break
    loop.close()
    assert len(started) <= 3 + 5  # what was in the window when the loop stopped, no more
    assert threading.active_count() == before  # the pool's threads are gone
