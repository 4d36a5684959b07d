"""The compiled finish step (`segcli.inference.probs_kernel`) against TensorFlow's resize, argmax, softmax and
sigmoid, and its float16 rounding against NumPy's; and the finish step predict picks for each engine."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from segcli.inference.bilinear import bilinear_coords
from segcli.inference.finish import stripe_finisher
from segcli.inference.probs_kernel import _half_bits, upsample_finish


def coords(out, size):
    return bilinear_coords(out, size, np.float32(size) / np.float32(out))


def resized(src, shape):
    return tf.image.resize(src[None], shape, method="bilinear")[0].numpy()


def assert_float16_close(got, expected):
    """Within one float16 step of the float32 reference (its rounding, plus a few float32 ulps of exp)."""
    assert got.dtype == np.float16
    step = np.abs(np.spacing(expected.astype(np.float16))).astype(np.float32)
    np.testing.assert_array_less(np.abs(got.astype(np.float32) - expected), step + 1e-7)


@pytest.mark.parametrize(("src_shape", "out"), [((9, 13, 20), (37, 50)), ((16, 16, 150), (64, 64)),
                                                ((40, 30, 3), (17, 11)), ((1, 1, 5), (3, 4))])
def test_softmax_probabilities_and_masks_equal_tensorflow(src_shape, out):
    src = (np.random.default_rng(1).normal(size=src_shape) * 4).astype(np.float32)
    mask, probs = upsample_finish(src, coords(out[0], src_shape[0]), coords(out[1], src_shape[1]))
    full = resized(src, out)
    np.testing.assert_array_equal(mask, full.argmax(-1))
    assert_float16_close(probs, tf.nn.softmax(full).numpy())


def test_one_class_logits_threshold_at_zero_and_give_the_sigmoid():
    src = np.random.default_rng(2).normal(size=(8, 10, 1)).astype(np.float32) * 30  # saturates both ways
    mask, probs = upsample_finish(src, coords(24, 8), coords(30, 10), binary=True)
    full = resized(src, (24, 30))
    np.testing.assert_array_equal(mask, (full[..., 0] > 0).astype(np.uint8))
    assert_float16_close(probs, tf.sigmoid(full).numpy())


def test_probability_outputs_pass_through_and_one_class_thresholds_at_half():
    rng = np.random.default_rng(3)
    src = rng.dirichlet(np.ones(6), size=(7, 9)).astype(np.float32)
    mask, probs = upsample_finish(src, coords(21, 7), coords(27, 9), is_logits=False)
    full = resized(src, (21, 27))
    np.testing.assert_array_equal(mask, full.argmax(-1))
    np.testing.assert_array_equal(probs, full.astype(np.float16))

    one = rng.uniform(size=(7, 9, 1)).astype(np.float32)
    mask, probs = upsample_finish(one, coords(21, 7), coords(27, 9), binary=True, is_logits=False)
    np.testing.assert_array_equal(mask, (resized(one, (21, 27))[..., 0] > 0.5).astype(np.uint8))


def test_ties_go_to_the_lowest_class_and_extreme_logits_stay_finite():
    src = np.zeros((4, 4, 300), np.float32)
    src[..., 7] = src[..., 200] = 1e4  # an exact tie, far above the rest, and beyond uint8's classes
    src[..., 0] = -1e30
    mask, probs = upsample_finish(src, coords(8, 4), coords(8, 4), dtype=np.uint16)
    assert mask.dtype == np.uint16 and (mask == 7).all()
    assert np.isfinite(probs.astype(np.float32)).all()
    np.testing.assert_array_equal(probs[..., 7], np.float16(0.5))
    assert (probs[..., 0] == 0).all()


def test_any_thread_count_gives_the_same_result():
    src = np.random.default_rng(4).normal(size=(12, 12, 10)).astype(np.float32)
    y, x = coords(45, 12), coords(47, 12)
    one = upsample_finish(src, y, x, threads=1)
    for threads in (2, 3, 64):
        got = upsample_finish(src, y, x, threads=threads)
        np.testing.assert_array_equal(got[0], one[0])
        np.testing.assert_array_equal(got[1], one[1])


def test_float16_rounding_equals_numpy_on_every_kind_of_value():
    rng = np.random.default_rng(5)
    special = np.array([0.0, -0.0, 1.0, 0.5, 65504.0, 65520.0, 65519.99, 1e9, np.inf, -np.inf, 2.0 ** -24,
                        2.0 ** -25, 3 * 2.0 ** -26, 2.0 ** -14, 2.0 ** -14 - 2.0 ** -25, 1 + 2.0 ** -11,
                        1 + 3 * 2.0 ** -11, 1e-45, -6.1e-5], np.float32)
    bits = rng.integers(0, 2 ** 32, 200_000, dtype=np.uint64).astype(np.uint32)
    values = np.concatenate([special, bits.view(np.float32), rng.uniform(-1, 1, 100_000).astype(np.float32)])
    values = values[~np.isnan(values)]
    out = np.empty(values.shape, np.uint16)
    _half_bits(values, values.view(np.uint32), out)
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(out, values.astype(np.float16).view(np.uint16))
    nan = np.empty(1, np.uint16)
    _half_bits(np.array([np.nan], np.float32), np.array([np.nan], np.float32).view(np.uint32), nan)
    assert np.isnan(nan.view(np.float16)[0])


@pytest.mark.parametrize("binary", [False, True])
@pytest.mark.parametrize("is_logits", [True, False])
def test_both_engines_give_the_same_masks_and_probabilities(binary, is_logits):
    rng = np.random.default_rng(6)
    src = rng.normal(size=(10, 14, 1 if binary else 5)).astype(np.float32)
    if not is_logits:
        src = 1 / (1 + np.exp(-src)) if binary else np.asarray(tf.nn.softmax(src))
    y, x = coords(40, 10), coords(56, 14)
    for want_probs in (False, True):
        filled = {}
        for engine in ("numba", "tensorflow"):
            mask, probs = np.full((40, 56), 99, np.uint8), np.zeros((40, 56, src.shape[2]), np.float16)
            stripe_finisher(binary, is_logits, False, engine)(src, y, x, mask, probs if want_probs else None)
            filled[engine] = mask, probs
        np.testing.assert_array_equal(filled["numba"][0], filled["tensorflow"][0])
        assert (filled["numba"][0] < src.shape[2] + binary).all()  # every pixel written
        if want_probs:
            assert_float16_close(filled["numba"][1], filled["tensorflow"][1].astype(np.float32))
