"""Predict's finish step where it needs every class's value, as one compiled loop off TensorFlow: bilinear
upsample to given output rows, the mask (argmax, or a threshold for one class), and the probabilities
(softmax, sigmoid, or the model's own) as float16.

``--save-probs``, and models whose output is probabilities, take this path; masks from logits take the cheaper
loop of :mod:`segcli.inference.mask_kernel`. Blends use TF's float32 arithmetic (``lo + (hi - lo) * lerp``, along
x, then y, no fused multiply-adds), so the masks are TF's argmax; exp is a Cephes-style polynomial that the
compiler can vectorise, within a few float32 ulps, far below float16's rounding.

>>> import numpy as np, tensorflow as tf
>>> from segcli.inference.bilinear import bilinear_coords
>>> logits = np.random.default_rng(0).normal(size=(9, 13, 20)).astype("float32")
>>> y, x = bilinear_coords(37, 9, 9 / 37), bilinear_coords(50, 13, 13 / 50)
>>> mask, probs = upsample_finish(logits, y, x, want_probs=True)
>>> mask.shape, mask.dtype.name, probs.shape, probs.dtype.name
((37, 50), 'uint8', (37, 50, 20), 'float16')
>>> full = tf.image.resize(logits[None], (37, 50))[0]
>>> bool((mask == tf.argmax(full, -1).numpy()).all())
True
>>> float(np.abs(probs - tf.nn.softmax(full).numpy()).max()) < 1e-3
True
"""

from __future__ import annotations

import numba
import numpy as np

from segcli.inference.mask_kernel import compiled, split_over_threads

_LOG2E = np.float32(1.44269504088896341)
_LN2_HI, _LN2_LO = np.float32(0.693359375), np.float32(-2.12194440e-4)
#: exp's argument is clamped here, where it is still a float32 normal (about 1.6e-38; 0 in float16).
_EXP_FLOOR = np.float32(-87.0)
#: The softmax loops may reorder their sums and use fused multiply-adds (it is what lets them vectorise); the
#: blends and the mask, in :func:`_finish_rows`, may not.
vectorised = numba.njit(cache=True, nogil=True, fastmath={"reassoc", "nsz", "arcp", "contract"})
#: Cephes' expf polynomial on [-ln2 / 2, ln2 / 2].
_P0, _P1, _P2 = np.float32(1.9875691500e-4), np.float32(1.3981999507e-3), np.float32(8.3334519073e-3)
_P3, _P4, _P5 = np.float32(4.1665795894e-2), np.float32(1.6666665459e-1), np.float32(5.0000001201e-1)
_ONE, _HALF, _TWO24 = np.float32(1), np.float32(0.5), np.float32(1 << 24)


def upsample_finish(src, y, x, binary: bool = False, is_logits: bool = True, dtype=np.uint8,
                    want_probs: bool = True, threads: int | None = None, out=None):
    """Mask (n, W) of ``dtype`` and float16 probabilities (n, W, C) (None without ``want_probs``) at output rows
    ``y`` and columns ``x``, :func:`~segcli.inference.bilinear.bilinear_coords` triplets indexing ``src`` (h, w, C).

    ``binary``: one class, thresholded at 0 (logits) or 0.5 (probabilities). ``is_logits``: softmax (sigmoid for
    one class) gives the probabilities; otherwise the blended values are them. ``out``: a (mask, probs or None)
    pair of C-contiguous arrays to fill instead of new ones.
    """
    src = np.ascontiguousarray(src, dtype=np.float32)
    y_lo, y_hi, y_lerp = (np.ascontiguousarray(a) for a in y)
    x_lo, x_hi, x_lerp = (np.ascontiguousarray(a) for a in x)
    n, w, c = len(y_lo), len(x_lo), src.shape[2]
    mask, probs = out if out is not None else (np.empty((n, w), dtype),
                                               np.empty((n, w, c), np.float16) if want_probs else None)
    bits = probs.view(np.uint16) if want_probs else np.empty((0, 0, 0), np.uint16)
    threshold = np.float32(0.0 if is_logits else 0.5)

    def run(first, last):
        _finish_rows(src, y_lo, y_hi, y_lerp, x_lo, x_hi, x_lerp, binary, is_logits, threshold, want_probs,
                     mask, bits, first, last)

    if n:
        split_over_threads(n, run, threads)
    return mask, probs


@compiled
def _finish_rows(src, y_lo, y_hi, y_lerp, x_lo, x_hi, x_lerp, binary, is_logits, threshold, want_probs,
                 mask, bits, first, last):
    c = src.shape[2]
    values, scratch = np.empty(c, np.float32), np.empty(c, np.int32)
    value_bits = values.view(np.uint32)
    for y in range(first, last):
        top, bottom, wy = src[y_lo[y]], src[y_hi[y]], y_lerp[y]
        for x in range(x_lo.shape[0]):
            _blend(top[x_lo[x]], top[x_hi[x]], bottom[x_lo[x]], bottom[x_hi[x]], x_lerp[x], wy, values)
            if binary:
                mask[y, x] = 1 if values[0] > threshold else 0
            else:
                mask[y, x] = _first_argmax(values)
            if want_probs:
                if is_logits:
                    _to_probs(values, binary, scratch)
                _half_bits(values, value_bits, bits[y, x])


@compiled
def _blend(tl, tr, bl, br, wx, wy, out):
    for k in range(out.shape[0]):
        top = tl[k] + (tr[k] - tl[k]) * wx
        bottom = bl[k] + (br[k] - bl[k]) * wx
        out[k] = top + (bottom - top) * wy


@compiled
def _first_argmax(values):
    best, winner = values[0], 0
    for k in range(1, values.shape[0]):
        if values[k] > best:
            best, winner = values[k], k
    return winner


@vectorised
def _to_probs(values, binary, scratch):
    """Softmax of ``values`` in place (sigmoid for one class); ``scratch`` is int32, as long as ``values``."""
    if binary:
        v = values[0]
        values[0] = -abs(v)
        e = _exp_shifted(values, np.float32(0), scratch)
        values[0] = _ONE / (_ONE + e) if v >= 0 else e / (_ONE + e)
        return
    scale = _ONE / _exp_shifted(values, values.max(), scratch)
    for k in range(values.shape[0]):
        values[k] *= scale


@vectorised
def _exp_shifted(values, shift, scratch):
    """``values[k] = exp(values[k] - shift)`` (values at most ``shift``); returns their sum.

    t = n ln2 + r with |r| <= ln2 / 2: a degree-7 polynomial in r, times 2 ** n, whose bits are built in
    ``scratch``; kept in loops without branches or look-ups, so that they vectorise.
    """
    two_to_n = scratch.view(np.float32)
    for k in range(values.shape[0]):
        t = max(values[k] - shift, _EXP_FLOOR)
        n = np.floor(t * _LOG2E + _HALF)
        r = t - n * _LN2_HI - n * _LN2_LO
        values[k] = (((((_P0 * r + _P1) * r + _P2) * r + _P3) * r + _P4) * r + _P5) * (r * r) + r + _ONE
        scratch[k] = (np.int32(n) + np.int32(127)) << np.int32(23)
    total = np.float32(0)
    for k in range(values.shape[0]):
        values[k] *= two_to_n[k]
        total += values[k]
    return total


@compiled
def _half_bits(values, value_bits, out):
    """float16 bit patterns of ``values`` (float32, read also as ``value_bits``), rounded to nearest even."""
    for k in range(values.shape[0]):
        b = np.int64(value_bits[k])
        sign, a = (b >> 16) & 0x8000, b & 0x7FFFFFFF
        if a >= 0x47800000:  # beyond float16's range: infinity, or NaN
            h = 0x7E00 if a > 0x7F800000 else 0x7C00
        elif a < 0x38800000:  # below float16's normals: a multiple of 2 ** -24
            h = np.int64(np.rint(abs(values[k]) * _TWO24))
        else:  # re-bias the exponent, round the 13 dropped mantissa bits to even
            h = (a - 0x38000000 + 0xFFF + ((a >> 13) & 1)) >> 13
        out[k] = h | sign
