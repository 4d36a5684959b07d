"""Bilinear upsample fused with argmax, to any output size, without full-resolution logits.

``bilinear_argmax(logits, (H, W))`` equals ``argmax(tf.image.resize(logits, (H, W), "bilinear"), -1)``,
exact ties included (the lowest class wins, as argmax's), but never builds the (B, H, W, C) tensor.

How: TF's bilinear resize (half-pixel centres) makes each output pixel a blend of one 2x2 *window* of
the edge-padded logits, with the pixel's own row and column weights. A blend lies between the window's
per-class minimum and maximum, so a class whose window maximum is below the best per-class window minimum
can never win there. The classes that pass this bound are the window's *rivals*; they are counted, and a
window with one rival takes it for every output pixel it covers. The others blend their rivals for those
pixels, listed in class order (so exact ties go to the lowest class), in groups of windows with at most
``candidates``, 4x that, or any number of rivals. The arithmetic is TF's own
(``in = (y + 0.5) * h / H - 0.5``; ``lo + (hi - lo) * lerp`` along x, then y), so the winners are the same
numbers TF would compare.

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

#: Classes blended per window whose rivals fit in it (then 4x that, then all).
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
    """``argmax(tf.image.resize(logits, size, "bilinear"), -1)`` as int32 (B, H, W), ties included.

    ``logits`` is float32 (B, h, w, C), any scale up or down; ``size`` is (H, W). ``rows=(start, stop)``
    returns only those output rows of the (H, W) result (bands for large outputs: memory follows the band).
    One-class logits are thresholded at 0 (the sigmoid's 0.5), as segcli's masks are.
    """
    import tensorflow as tf

    logits = tf.convert_to_tensor(logits, tf.float32)
    out_h, out_w = _whole(size[0]), _whole(size[1])
    start, stop = (0, out_h) if rows is None else (_whole(rows[0]), _whole(rows[1]))
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


def _whole(n):
    """``n`` as a Python int, or as an int32 tensor inside a traced function."""
    import tensorflow as tf

    return tf.cast(n, tf.int32) if tf.is_tensor(n) else int(n)


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


def _listed(flags, fill, width):
    """(n, C) flags, at most ``width`` set per row -> (n, width) int32: each row's set classes in ascending
    order (so ties go to the lowest class, as argmax's do), the remaining slots ``fill``.

    >>> import tensorflow as tf
    >>> _listed(tf.constant([[False, True, False, True], [True, False, False, False]]), tf.constant([3, 0]), 3).numpy()
    array([[1, 3, 3],
           [0, 0, 0]], dtype=int32)
    """
    import tensorflow as tf

    at = tf.cast(tf.where(flags), tf.int32)  # (m, 2): row, class; rows in order, classes ascending in each
    first = tf.cumsum(tf.reduce_sum(tf.cast(flags, tf.int32), axis=1), exclusive=True)  # row's first entry
    slot = tf.range(tf.shape(at)[0]) - tf.gather(first, at[:, 0])
    filled = tf.broadcast_to(fill[:, None], tf.stack([tf.shape(flags)[0], width]))
    return tf.tensor_scatter_nd_update(filled, tf.stack([at[:, 0], slot], 1), at[:, 1])


def _window_argmax(padded, ys, xs, y_lerps, x_lerps, k, c):
    """Winning class for every (window, row slot, column slot): (B, ny, nx, R, Cx) int32.

    Window (iy, ix) has its top-left corner at padded pixel (ys[iy], xs[ix]). A class is a *rival* in a window
    when its maximum there reaches the best per-class minimum: only rivals can win a pixel of the window. A
    window with one rival is settled (most windows of a trained model's logits); the others blend their
    rivals, in groups of windows with at most ``k``, ``4 k`` and all classes as rivals.
    """
    import tensorflow as tf

    upper = tf.nn.max_pool2d(padded, 2, 1, "VALID")  # (B, h + 1, w + 1, C): each window's per-class maximum
    best_lower = -tf.reduce_min(tf.nn.max_pool2d(-padded, 2, 1, "VALID"), axis=-1)
    rivals = tf.reduce_sum(tf.cast(upper >= best_lower[..., None], tf.int32), axis=-1)
    best = tf.argmax(upper, axis=-1, output_type=tf.int32)

    def windows(t):  # (B, h + 1, w + 1) per-window values -> the used windows only
        return tf.gather(tf.gather(t, ys, axis=1), xs, axis=2)

    best, rivals, best_lower = windows(best), windows(rivals), windows(best_lower)
    shape = tf.shape(padded)
    flat = tf.reshape(padded, [-1])
    row = (tf.range(shape[0])[:, None, None] * shape[1] + ys[None, :, None]) * shape[2] + xs[None, None, :]
    offsets = tf.stack([0, 1, shape[2], shape[2] + 1]) * c  # tl, tr, bl, br
    batch, ny, nx = tf.shape(best)[0], tf.shape(best)[1], tf.shape(best)[2]
    wy = tf.broadcast_to(y_lerps[None, :, None, :], tf.stack([batch, ny, nx, tf.shape(y_lerps)[1]]))
    wx = tf.broadcast_to(x_lerps[None, None, :, :], tf.stack([batch, ny, nx, tf.shape(x_lerps)[1]]))

    def rivals_argmax(index, width):
        """Blend of the rivals (at most ``width``) of the windows at ``index``: (n, R, Cx)."""
        if width >= c:
            classes = tf.broadcast_to(tf.range(c)[None], tf.stack([tf.shape(index)[0], c]))
        else:
            at = tf.stack([index[:, 0], tf.gather(ys, index[:, 1]), tf.gather(xs, index[:, 2])], axis=1)
            is_rival = tf.gather_nd(upper, at) >= tf.gather_nd(best_lower, index)[:, None]
            classes = _listed(is_rival, tf.gather_nd(best, index), width)
        base = tf.gather_nd(row, index)[..., None] * c + classes
        corners = [tf.gather(flat, base + offsets[i]) for i in range(4)]
        winner = _blend_argmax(corners, tf.gather_nd(wy, index), tf.gather_nd(wx, index))
        classes = tf.broadcast_to(classes[:, None, None, :], tf.concat([tf.shape(winner), [width]], 0))
        return tf.gather(classes, winner[..., None], batch_dims=3)[..., 0]

    result = tf.broadcast_to(best[..., None, None],
                             tf.concat([tf.shape(best), tf.shape(wy)[-1:], tf.shape(wx)[-1:]], 0))
    settled = 1
    for width in sorted({w for w in (k, 4 * k) if w < c} | {c}):
        index = tf.cast(tf.where((rivals > settled) & (rivals <= width)), tf.int32)
        result = tf.tensor_scatter_nd_update(result, index, rivals_argmax(index, width))
        settled = width
    return result
