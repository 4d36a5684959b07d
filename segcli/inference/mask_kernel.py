"""Predict's mask step as one compiled loop: bilinear upsample fused with argmax, in Numba, off TensorFlow.

``bilinear_argmax(logits, (H, W))`` equals ``argmax(tf.image.resize(logits, (H, W), "bilinear"), -1)``, exact ties
included (the lowest class wins, as argmax's), like :func:`segcli.inference.upsample.bilinear_argmax`, whose
rule it follows: each output pixel blends one *window* of four logits pixels; a class whose largest corner value
is below the best smallest corner value of any class cannot win there, and a window with one such *rival* takes
it for all its pixels. The difference is where it runs. TensorFlow needs about ten passes over the logits
(padding, max-pools, counts, gathers) and many small ops; this loop reads each window's four corners once,
lists its rivals and blends only those, with the bands of output rows spread over threads. Blends use TF's
float32 arithmetic (``lo + (hi - lo) * lerp``, along x, then y) and no fused multiply-adds (Numba's default),
so the winners are the numbers TF compares.

>>> import numpy as np, tensorflow as tf
>>> logits = np.random.default_rng(0).normal(size=(2, 9, 13, 20)).astype("float32")
>>> masks = bilinear_argmax(logits, (37, 50))
>>> masks.shape, masks.dtype.name
((2, 37, 50), 'int32')
>>> bool((masks == tf.argmax(tf.image.resize(logits, (37, 50)), -1).numpy()).all())
True
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache

import numba
import numpy as np

from segcli.hardware import usable_cores
from segcli.inference.bilinear import bilinear_coords

#: Compiled once per machine: Numba caches the machine code next to this file (or in NUMBA_CACHE_DIR).
compiled = numba.njit(cache=True, nogil=True)


def bilinear_argmax(logits, size, rows=None, dtype=np.int32, threads: int | None = None) -> np.ndarray:
    """``argmax(tf.image.resize(logits, size, "bilinear"), -1)`` as a (B, H, W) array of ``dtype``.

    ``logits`` is float32 (B, h, w, C), any scale up or down; ``rows=(start, stop)`` returns only those output
    rows. One-class logits are thresholded at 0 (the sigmoid's 0.5), as segcli's masks are. ``threads``
    defaults to the CPUs this process may use.
    """
    _, h, w, _ = np.shape(logits)
    out_h, out_w = int(size[0]), int(size[1])
    start, stop = (0, out_h) if rows is None else (int(rows[0]), int(rows[1]))
    y = tuple(a[start:stop] for a in bilinear_coords(out_h, h, np.float32(h) / np.float32(out_h)))
    return argmax_at(logits, y, bilinear_coords(out_w, w, np.float32(w) / np.float32(out_w)), dtype, threads)


def argmax_at(logits, y, x, dtype=np.int32, threads: int | None = None) -> np.ndarray:
    """The same masks at given output rows and columns: ``y`` and ``x`` are :func:`bilinear_coords` triplets
    (lower and upper source line, lerp) indexing ``logits`` (B, h, w, C); returns (B, len(y[0]), len(x[0])).
    Slide mode passes coordinates whose scale is not the ratio of the two sizes.
    """
    logits = np.ascontiguousarray(logits, dtype=np.float32)
    y_lo, y_hi, y_lerp = (np.asarray(a) for a in y)
    x_lo, x_hi, x_lerp = (np.asarray(a) for a in x)
    out = np.empty((logits.shape[0], len(y_lo), len(x_lo)), dtype)
    if out.size == 0:
        return out
    y_runs, x_runs = _runs(y_lo, y_hi), _runs(x_lo, x_hi)
    jobs = logits.shape[0] * (len(y_runs) - 1)

    def run(first, last):
        _window_loop(logits, y_lo, y_hi, y_lerp, y_runs, x_lo, x_hi, x_lerp, x_runs, out, first, last)

    split_over_threads(jobs, run, threads)
    return out


def split_over_threads(jobs: int, run, threads: int | None = None) -> None:
    """Call ``run(first, last)`` on consecutive slices of ``range(jobs)``, one per thread (the loops release the
    GIL); ``threads`` defaults to the CPUs this process may use.
    """
    parts = max(1, min(jobs, threads or usable_cores()))
    cuts = [jobs * i // parts for i in range(parts + 1)]
    if parts == 1:
        run(0, jobs)
    else:
        list(_pool(parts).map(lambda i: run(cuts[i], cuts[i + 1]), range(parts)))


def _runs(lo, hi) -> np.ndarray:
    """Start of each run of output lines that read the same two source lines, then the end."""
    change = np.flatnonzero((lo[1:] != lo[:-1]) | (hi[1:] != hi[:-1])) + 1
    return np.concatenate([[0], change, [len(lo)]]).astype(np.int64)


@lru_cache(maxsize=None)
def _pool(threads: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(threads, thread_name_prefix="segcli-masks")


@compiled
def _window_loop(logits, y_lo, y_hi, y_lerp, y_runs, x_lo, x_hi, x_lerp, x_runs, out, first, last):
    """Masks of jobs ``first:last``; job j is image j // ny and its row run j % ny (ny = len(y_runs) - 1)."""
    c = logits.shape[3]
    ny = y_runs.shape[0] - 1
    upper = np.empty(c, np.float32)
    listed = np.empty(c, np.int64)
    for job in range(first, last):
        b, run = job // ny, job % ny
        r0, r1 = y_runs[run], y_runs[run + 1]
        top_row, bottom_row = logits[b, y_lo[r0]], logits[b, y_hi[r0]]
        for col in range(x_runs.shape[0] - 1):
            c0, c1 = x_runs[col], x_runs[col + 1]
            tl, tr = top_row[x_lo[c0]], top_row[x_hi[c0]]
            bl, br = bottom_row[x_lo[c0]], bottom_row[x_hi[c0]]
            n = 1 if c == 1 else _rivals(tl, tr, bl, br, upper, listed)
            if n == 1 and c > 1:
                out[b, r0:r1, c0:c1] = listed[0]
                continue
            for y in range(r0, r1):
                for x in range(c0, c1):
                    out[b, y, x] = _blend_winner(tl, tr, bl, br, listed, n, x_lerp[x], y_lerp[y], c == 1)


@compiled
def _rivals(tl, tr, bl, br, upper, listed):
    """List in ``listed`` the classes whose largest corner value reaches the best smallest one; return how many."""
    best_lower = np.float32(-np.inf)
    for k in range(tl.shape[0]):
        a, b, c, d = tl[k], tr[k], bl[k], br[k]
        high, low = max(max(a, b), max(c, d)), min(min(a, b), min(c, d))
        upper[k] = high
        if low > best_lower:
            best_lower = low
    n = 0
    for k in range(tl.shape[0]):
        if upper[k] >= best_lower:
            listed[n] = k
            n += 1
    return n


@compiled
def _blend_winner(tl, tr, bl, br, listed, n, wx, wy, threshold):
    """The listed class with the largest blend at lerps (wx, wy), the first of equals; or blend > 0 for one class."""
    best, winner = np.float32(-np.inf), listed[0]
    for i in range(n):
        k = 0 if threshold else listed[i]
        top = tl[k] + (tr[k] - tl[k]) * wx
        bottom = bl[k] + (br[k] - bl[k]) * wx
        value = top + (bottom - top) * wy
        if threshold:
            return 1 if value > 0 else 0
        if value > best:
            best, winner = value, k
    return winner
