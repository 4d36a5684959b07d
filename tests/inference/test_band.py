"""Slide mode's logit band against a plain array that is grown and trimmed by concatenation."""

from __future__ import annotations

import numpy as np

from segcli.inference.band import LogitBand


def test_band_matches_concatenation_through_growth_and_drops():
    rng = np.random.default_rng(0)
    band = LogitBand(width=3, classes=2, capacity=4)
    plain, first = np.zeros((0, 3, 2), np.float32), 0
    for _ in range(200):
        end = first + len(plain) + int(rng.integers(0, 7))  # up to 6 rows more: past the capacity at times
        band.extend_to(end)
        if end > first + len(plain):
            plain = np.concatenate([plain, np.zeros((end - first - len(plain), 3, 2), np.float32)])
        add = rng.normal(size=plain.shape).astype(np.float32)
        band.values[...] += add
        plain += add
        drop = first + int(rng.integers(0, len(plain) + 3))  # sometimes past every held row
        band.drop_before(drop)
        if drop > first:
            plain, first = plain[drop - first:], max(first, drop)
        assert band.first == first and np.array_equal(band.values, plain)
