"""The fused upsample + argmax against the reference it replaces: `tf.image.resize` (bilinear, half-pixel) then argmax.

Both engines are held to it: the TensorFlow ops of `segcli.inference.upsample` (inside graphs and exports) and the
compiled loop of `segcli.inference.mask_kernel` (predict's mask step).
"""

from __future__ import annotations

import numpy as np
import pytest

from segcli.inference import mask_kernel, upsample


@pytest.fixture(params=["tensorflow", "numba"])
def bilinear_argmax(request):
    """The engine under test, as ``f(logits, size, rows=None)`` -> NumPy int32 masks."""
    if request.param == "numba":
        return mask_kernel.bilinear_argmax
    return lambda logits, size, rows=None: upsample.bilinear_argmax(logits, size, rows=rows)

CASES = [  # (batch, h, w, classes), (H, W): odd scales up and down, one-row logits, non-square
    ((2, 9, 13, 20), (37, 50)),
    ((1, 16, 16, 150), (64, 64)),
    ((1, 7, 5, 30), (100, 3)),
    ((1, 20, 30, 40), (11, 17)),
    ((1, 1, 1, 10), (5, 6)),
    ((2, 16, 24, 12), (16, 24)),
    ((1, 33, 47, 150), (131, 189)),
    ((1, 12, 12, 3), (45, 45)),
]


def reference(logits, size):
    import tensorflow as tf

    up = tf.image.resize(logits, size, method="bilinear").numpy()
    return up, up.argmax(-1)


@pytest.mark.parametrize("shape, size", CASES)
def test_equals_resize_then_argmax_on_random_logits(bilinear_argmax, shape, size):
    logits = np.random.default_rng(sum(shape) + sum(size)).normal(size=shape).astype(np.float32)
    got = bilinear_argmax(logits, size)
    up, expected = reference(logits, size)
    assert got.shape == (shape[0], *size) and got.dtype == np.int32
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("size", [(53, 29), (44, 36), (11, 9), (5, 4)])
def test_exact_ties_go_to_the_lowest_class_as_with_argmax(bilinear_argmax, size):
    # Half-step logits make many exact ties, inside windows and at blended pixels.
    rng = np.random.default_rng(3)
    logits = np.round(rng.normal(size=(2, 11, 9, 60)) * 2).astype(np.float32) / 2
    up, expected = reference(logits, size)
    top2 = np.sort(up, -1)[..., -2:]
    assert (top2[..., 1] == top2[..., 0]).mean() > 0.02  # the case is made of ties
    np.testing.assert_array_equal(bilinear_argmax(logits, size), expected)


def test_decisive_logits_a_row_band_equals_those_rows_of_the_whole(bilinear_argmax):
    rng = np.random.default_rng(5)
    logits = (np.repeat(np.repeat(rng.normal(size=(1, 4, 5, 150)) * 5, 8, 1), 8, 2)
              + rng.normal(size=(1, 32, 40, 150)) * 0.2).astype(np.float32)
    whole = bilinear_argmax(logits, (100, 131))
    np.testing.assert_array_equal(whole, reference(logits, (100, 131))[1])
    np.testing.assert_array_equal(bilinear_argmax(logits, (100, 131), rows=(37, 71)), whole[:, 37:71])


@pytest.mark.parametrize("size", [(100, 131), (13, 17)])  # up and down
def test_bands_that_touch_the_edges_and_single_rows_join_into_the_whole_mask(bilinear_argmax, size):
    rng = np.random.default_rng(8)
    logits = (np.repeat(np.repeat(rng.normal(size=(2, 4, 5, 30)) * 5, 8, 1), 8, 2)
              + rng.normal(size=(2, 32, 40, 30)) * 0.2).astype(np.float32)
    h = size[0]
    cuts = [0, 1, 2, h // 3, h - 1, h]
    bands = [bilinear_argmax(logits, size, rows=(a, b)) for a, b in zip(cuts, cuts[1:])]
    np.testing.assert_array_equal(np.concatenate(bands, axis=1), reference(logits, size)[1])


def test_one_class_logits_are_thresholded_at_zero(bilinear_argmax):
    logits = np.random.default_rng(1).normal(size=(1, 6, 7, 1)).astype(np.float32)
    up, _ = reference(logits, (25, 19))
    np.testing.assert_array_equal(bilinear_argmax(logits, (25, 19)), (up[..., 0] > 0).astype(np.int32))


def test_runs_traced_with_unknown_batch_height_and_width():
    import tensorflow as tf

    fn = tf.function(lambda x: upsample.bilinear_argmax(x, (30, 45)),
                     input_signature=[tf.TensorSpec((None, None, None, 40), tf.float32)])
    logits = np.random.default_rng(2).normal(size=(3, 8, 11, 40)).astype(np.float32)
    np.testing.assert_array_equal(fn(logits).numpy(), reference(logits, (30, 45))[1])


@pytest.mark.parametrize("size", [(48, 80), (50, 77)])
def test_smooth_logits_of_a_trained_model_kind_are_exact(bilinear_argmax, size):
    """Smooth logits settle most windows without blending (the shortcut): still equal to resize + argmax."""
    import tensorflow as tf

    rng = np.random.default_rng(3)
    noise = rng.normal(size=(2, 12, 20, 40)).astype(np.float32)
    logits = tf.image.resize(noise[:, ::4, ::4], (12, 20)).numpy() * 5 + noise * 0.01
    _, expected = reference(logits, size)
    np.testing.assert_array_equal(bilinear_argmax(logits, size), expected)


def test_the_compiled_loop_gives_the_same_masks_on_any_number_of_threads():
    rng = np.random.default_rng(11)
    logits = rng.normal(size=(3, 16, 21, 150)).astype(np.float32)
    one = mask_kernel.bilinear_argmax(logits, (64, 83), threads=1)
    np.testing.assert_array_equal(one, reference(logits, (64, 83))[1])
    for threads in (2, 5, 1000):  # more threads than jobs: one job each
        np.testing.assert_array_equal(mask_kernel.bilinear_argmax(logits, (64, 83), threads=threads), one)


def test_the_compiled_loop_writes_the_mask_dtype_asked_for():
    logits = np.random.default_rng(12).normal(size=(1, 5, 6, 300)).astype(np.float32)
    masks = mask_kernel.bilinear_argmax(logits, (20, 24), dtype=np.uint16)
    assert masks.dtype == np.uint16
    np.testing.assert_array_equal(masks, reference(logits, (20, 24))[1])


@pytest.mark.parametrize("size, rows", [((0, 9), None), ((7, 0), None), ((7, 9), (3, 3))])
def test_the_compiled_loop_gives_an_empty_mask_for_an_empty_output(size, rows):
    logits = np.random.default_rng(13).normal(size=(2, 4, 5, 20)).astype(np.float32)
    masks = mask_kernel.bilinear_argmax(logits, size, rows=rows)
    height = size[0] if rows is None else rows[1] - rows[0]
    assert masks.shape == (2, height, size[1])
