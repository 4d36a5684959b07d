"""A band of quarter-resolution logit rows for slide mode, in one buffer allocated once per image.

Slide mode adds each tile's logits into the rows it covers and drops rows from the top once they are written out.
Growing and trimming a NumPy array for that makes a new array while the old one is alive, twice the band's memory
(for an 8000-pixel-wide image with 150 classes, a band of 129 rows is 155 MB). Here rows are added by zeroing the
buffer's next rows and dropped by shifting the kept ones to its top, one row at a time, so nothing is copied whole.

>>> band = LogitBand(width=2, classes=1, capacity=3)
>>> band.extend_to(3); band.values[:, :, 0] = [[1, 1], [2, 2], [3, 3]]
>>> band.drop_before(2); band.extend_to(4)
>>> band.first, band.values[:, :, 0].tolist()
(2, [[3.0, 3.0], [0.0, 0.0]])
"""

from __future__ import annotations

import numpy as np


class LogitBand:
    """Rows ``[first, first + len(values))`` of a (rows, width, classes) float32 array."""

    def __init__(self, width: int, classes: int, capacity: int):
        self._buf = np.zeros((capacity, width, classes), np.float32)
        self.first, self._rows = 0, 0

    @property
    def values(self) -> np.ndarray:
        """The rows held, a view of the buffer: writes go into the band."""
        return self._buf[:self._rows]

    def extend_to(self, end: int) -> None:
        """Hold rows up to ``end`` (exclusive); new rows start at zero. The buffer grows only if it must."""
        need = end - self.first
        if need <= self._rows:
            return
        if need > len(self._buf):
            grown = np.empty((need, *self._buf.shape[1:]), np.float32)
            grown[:self._rows] = self._buf[:self._rows]
            self._buf = grown
        self._buf[self._rows:need] = 0
        self._rows = need

    def drop_before(self, row: int) -> None:
        """Forget the rows above ``row``; the rest move to the buffer's top."""
        if row <= self.first:
            return
        gone = min(row - self.first, self._rows)
        kept = self._rows - gone
        for i in range(kept):  # row by row: source and target rows never overlap, so no temporary copy
            self._buf[i] = self._buf[gone + i]
        self.first, self._rows = row, kept
