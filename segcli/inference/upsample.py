"""Bilinear upsample fused with argmax, to any output size, without full-resolution logits.

``bilinear_argmax(logits, (H, W))`` equals ``argmax(tf.image.resize(logits, (H, W), "bilinear"), -1)``
except where two classes tie within float rounding, but never builds the (B, H, W, C) tensor.

How: TF's bilinear resize (half-pixel centres) makes each output pixel a blend of one 2x2 *window* of
the edge-padded logits, with the pixel's own row and column weights. A blend lies between the window's
per-class minimum and maximum, so a class whose window maximum is below the best per-class window minimum
can never win there. Each window blends only its ``candidates`` classes with the highest maxima for all
the output pixels it covers; windows where the bound does not rule out the rest get a wider look, then
every class. The arithmetic is TF's own (``in = (y + 0.5) * h / H - 0.5``; ``lo + (hi - lo) * lerp``
along x, then y), so the winners are the same numbers TF would compare.

>>> import numpy as np, tensorflow as tf
>>> logits = np.random.default_rng(0).normal(size=(2, 9, 13, 20)).astype("float32")
>>> masks = bilinear_argmax(logits, (37, 50))
>>> masks.shape, masks.dtype.name
(TensorShape([2, 37, 50]), 'int32')
>>> reference = tf.argmax(tf.image.resize(logits, (37, 50)), -1, output_type=tf.int32)
>>> bool(tf.reduce_all(masks == reference))
True
"""

from __future__ import annotations

#: Classes blended per window before the bound is checked (then 4x that, then all).
CANDIDATES = 4


def _axis_windows(in_size, out_size, start=0, stop=None):
    """For output positions ``start:stop`` of one axis: padded window index, lerp (TF's arithmetic) and
    the position's slot within its window; also the used windows and the largest slot count.
    """
    import tensorflow as tf

    stop = out_size if stop is None else stop
    scale = tf.cast(in_size, tf.float32) / tf.cast(out_size, tf.float32)
    position = (tf.cast(tf.range(start, stop), tf.float32) + 0.5) * scale - 0.5
    floor = tf.floor(position)
    lerp = position - floor
    low = tf.maximum(tf.cast(floor, tf.int32), 0)
    # Padded grid: index 0 and in_size + 1 repeat the edges. A blend of an edge with itself (TF clamps
    # both corners to the edge) becomes a blend of two equal padded rows: the same number exactly.
    window = tf.where(position < 0, 0, tf.where(low >= in_size - 1, in_size, low + 1))
    used, slot_window = tf.unique(window)  # window is non-decreasing, so `used` is sorted
    first = tf.math.unsorted_segment_min(tf.range(tf.size(window)), slot_window, tf.size(used))
    slot = tf.range(tf.size(window)) - tf.gather(first, slot_window)
    slots = tf.reduce_max(slot) + 1
    # Lerp of each (used window, slot); empty slots get 0 and are never read.
    lerps = tf.scatter_nd(tf.stack([slot_window, slot], 1), lerp, tf.stack([tf.size(used), slots]))
    return used, slot_window, slot, slots, lerps


def bilinear_argmax(logits, size, candidates: int = CANDIDATES, rows=None):
    """``argmax(tf.image.resize(logits, size, "bilinear"), -1)`` as int32 (B, H, W), exact up to ties.

    ``logits`` is float32 (B, h, w, C), any scale up or down; ``size`` is (H, W). ``rows=(start, stop)``
    returns only those output rows of the (H, W) result (bands for large outputs: memory follows the band).
    One-class logits are thresholded at 0 (the sigmoid's 0.5), as segcli's masks are.
    """
    import tensorflow as tf

    logits = tf.convert_to_tensor(logits, tf.float32)
    out_h, out_w = int(size[0]), int(size[1])
    start, stop = (0, out_h) if rows is None else (int(rows[0]), int(rows[1]))
    c = logits.shape[-1]
    if c is not None and c <= max(1, candidates):  # few classes: the plain resize is as small as the candidates
        up = tf.image.resize(logits, (out_h, out_w), method="bilinear")[:, start:stop]
        if c == 1:
            return tf.cast(up[..., 0] > 0, tf.int32)
        return tf.argmax(up, axis=-1, output_type=tf.int32)
    shape = tf.shape(logits)
    ys, y_of, y_slot, y_slots, y_lerps = _axis_windows(shape[1], out_h, start, stop)
    xs, x_of, x_slot, x_slots, x_lerps = _axis_windows(shape[2], out_w)
    if rows is None:
        padded = _edge_pad(logits)
    else:  # only the padded rows this band's windows read, so each band pools its own rows, not the whole input
        padded = _edge_pad(logits, ys[0], ys[-1] + 2)
        ys -= ys[0]
    blocks = _window_argmax(padded, ys, xs, y_lerps, x_lerps, min(candidates, c - 1), c)  # (B, ny, nx, R, Cx)
    blocks = tf.transpose(blocks, (0, 1, 3, 2, 4))
    blocks = tf.reshape(blocks, tf.stack([shape[0], tf.size(ys) * y_slots, tf.size(xs) * x_slots]))
    blocks = tf.gather(blocks, y_of * y_slots + y_slot, axis=1)
    return tf.gather(blocks, x_of * x_slots + x_slot, axis=2)


def _edge_pad(logits, first=None, stop=None):
    """``logits`` with its first and last rows and columns repeated once (concat: faster than tf.pad here);
    with ``first:stop``, only those rows of the padded result.
    """
    import tensorflow as tf

    if first is None:
        rows = tf.concat([logits[:, :1], logits, logits[:, -1:]], axis=1)
    else:  # padded row p is logits row p - 1, clamped to the edges
        rows = tf.gather(logits, tf.clip_by_value(tf.range(first, stop) - 1, 0, tf.shape(logits)[1] - 1), axis=1)
    return tf.concat([rows[:, :, :1], rows, rows[:, :, -1:]], axis=2)


def _blend_argmax(corners, wy, wx):
    """(..., k) corners, (..., R) row lerps, (..., Cx) column lerps -> (..., R, Cx) argmax over k."""
    tl, tr, bl, br = (v[..., None, None, :] for v in corners)
    wx = wx[..., None, :, None]
    wy = wy[..., :, None, None]
    top = tl + (tr - tl) * wx
    bottom = bl + (br - bl) * wx
    import tensorflow as tf

    return tf.argmax(top + (bottom - top) * wy, axis=-1, output_type=tf.int32)


def _window_argmax(padded, ys, xs, y_lerps, x_lerps, k, c):
    """Winning class for every (window, row slot, column slot): (B, ny, nx, R, Cx) int32.

    Window (iy, ix) has its top-left corner at padded pixel (ys[iy], xs[ix]).
    """
    import tensorflow as tf

    def windows(t):  # (B, h + 1, w + 1, C) per-window values -> the used windows only
        return tf.gather(tf.gather(t, ys, axis=1), xs, axis=2)

    upper = windows(tf.nn.max_pool2d(padded, 2, 1, "VALID"))
    best_lower = tf.reduce_max(-windows(tf.nn.max_pool2d(-padded, 2, 1, "VALID")), axis=-1)
    shape = tf.shape(padded)
    flat = tf.reshape(padded, [-1])
    row = (tf.range(shape[0])[:, None, None] * shape[1] + ys[None, :, None]) * shape[2] + xs[None, None, :]
    offsets = tf.stack([0, 1, shape[2], shape[2] + 1]) * c  # tl, tr, bl, br
    batch, ny, nx = tf.shape(upper)[0], tf.shape(upper)[1], tf.shape(upper)[2]
    wy = tf.broadcast_to(y_lerps[None, :, None, :], tf.stack([batch, ny, nx, tf.shape(y_lerps)[1]]))
    wx = tf.broadcast_to(x_lerps[None, None, :, :], tf.stack([batch, ny, nx, tf.shape(x_lerps)[1]]))

    def pick(t, index):
        return t if index is None else tf.gather_nd(t, index)

    def blend(index, classes):
        base = pick(row, index)[..., None] * c + classes
        corners = [tf.gather(flat, base + offsets[i]) for i in range(4)]
        return _blend_argmax(corners, pick(wy, index), pick(wx, index))

    def candidates_argmax(index, width):
        """Blend of the ``width`` likeliest classes of the windows at ``index`` (None: all), and which are proven."""
        values, classes = tf.math.top_k(pick(upper, index), k=width + 1, sorted=True)
        proven = values[..., width] < pick(best_lower, index)
        classes = classes[..., :width]
        winner = blend(index, classes)
        classes = tf.broadcast_to(classes[..., None, None, :], tf.concat([tf.shape(winner), [width]], 0))
        return tf.gather(classes, winner[..., None], batch_dims=len(winner.shape))[..., 0], proven

    # Settled windows: one class's upper bound is the only one at or above the best lower bound, so it wins
    # every pixel of the window (most windows of a trained model's logits); no blending needed there.
    best = tf.argmax(upper, axis=-1, output_type=tf.int32)
    top = tf.reduce_max(upper, axis=-1, keepdims=True)
    runner_up = tf.reduce_max(tf.where(upper < top, upper, tf.constant(-float("inf"))), axis=-1)
    tied = tf.reduce_sum(tf.cast(upper >= top, tf.int32), axis=-1) > 1
    settled = ~tied & (runner_up < best_lower)
    result = tf.broadcast_to(best[..., None, None],
                             tf.concat([tf.shape(best), tf.shape(wy)[-1:], tf.shape(wx)[-1:]], 0))
    unsure = tf.where(~settled)
    first, proven = candidates_argmax(unsure, k)
    result = tf.tensor_scatter_nd_update(result, unsure, first)
    unsure = tf.boolean_mask(unsure, ~proven)
    if 4 * k < c - 1:  # a second, wider look at the windows the first could not settle
        second, proven2 = candidates_argmax(unsure, 4 * k)
        result = tf.tensor_scatter_nd_update(result, unsure, second)
        unsure = tf.boolean_mask(unsure, ~proven2)
    every = tf.broadcast_to(tf.range(c)[None], tf.stack([tf.shape(unsure)[0], c]))
    return tf.tensor_scatter_nd_update(result, unsure, blend(unsure, every))
