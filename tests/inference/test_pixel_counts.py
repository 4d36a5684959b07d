"""The summary's class counts, counted in blocks, against one np.bincount over the whole mask."""

from __future__ import annotations

import numpy as np
import pytest

from segcli.inference.image_outputs import pixel_counts


@pytest.mark.parametrize("shape, dtype, high", [((3000, 700), np.uint8, 150), ((1, 5), np.uint8, 3),
                                                ((2100, 513), np.uint16, 300), ((0, 4), np.uint8, 2)])
def test_counts_equal_one_bincount(shape, dtype, high):
    mask = np.random.default_rng(1).integers(0, high, shape).astype(dtype)
    expected = np.bincount(mask.ravel(), minlength=high - 1 if high > 2 else 2)
    got = pixel_counts(mask, minlength=high - 1 if high > 2 else 2)  # values past minlength widen it, as bincount
    assert got.dtype == np.int64 and got.tolist() == expected.tolist()


def test_counting_a_big_mask_makes_no_int64_copy_of_it():
    import tracemalloc

    mask = np.zeros((4000, 4000), np.uint8)
    tracemalloc.start()
    pixel_counts(mask, minlength=150)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < mask.size  # np.bincount alone would take 8 bytes a pixel
