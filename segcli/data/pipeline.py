"""The tf.data input pipeline for training and validation.

Pairs stream from their files: decoding runs in parallel (``read_image`` and
``FolderDataset.read_label``, so EXIF orientation and mask handling are
exactly those of predict and eval); the dataset is never held in memory.
Train augmentation follows mmsegmentation's SegFormer recipe: random rescale
(0.5-2.0 times the crop's short side), random crop padded with 0 (image) and
255 (mask), horizontal flip, photometric distortion. Images stay RGB in
[0, 255]: the model normalises with ImageNet mean/std itself, as in predict.

Every random choice comes from a stateless seed made of (seed, epoch,
position), so an epoch's batches are the same after a resume.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from segcli.data.folder_dataset import IGNORE_INDEX
from segcli.data.image_io import read_image


def epoch_order(n: int, steps: int, batch_size: int, seed: int, epoch: int) -> np.ndarray:
    """Indices of the pairs the epoch visits: a seeded permutation, wrapped to fill ``steps`` full batches.

    >>> epoch_order(5, 2, 4, seed=0, epoch=0).shape
    (8,)
    >>> bool((epoch_order(5, 1, 4, 0, 3) == epoch_order(5, 1, 4, 0, 3)).all())
    True
    """
    rng = np.random.default_rng([seed, epoch])
    need = steps * batch_size
    order = []
    while len(order) < need:
        order.extend(rng.permutation(n).tolist())
    return np.asarray(order[:need], dtype=np.int64)


def _decoder(ds):
    def load(image_path, mask_path):
        image = read_image(image_path.decode())
        label = ds.read_label(mask_path.decode())
        if label.shape != image.shape[:2]:  # data check refuses this; a file changed since
            import cv2

            label = cv2.resize(label, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_NEAREST)
        return image, label

    def decode(image_path, mask_path):
        image, label = tf.numpy_function(load, [image_path, mask_path], [tf.uint8, tf.uint8], stateful=False)
        image.set_shape([None, None, 3])
        label.set_shape([None, None])
        return image, label

    return decode


def _photometric(image, seeds):
    """mmseg PhotoMetricDistortion: brightness, contrast, saturation, hue, each with p=0.5."""
    def maybe(i, fn, x):
        apply = tf.random.stateless_uniform([], seeds[i]) < 0.5
        return tf.cond(apply, lambda: fn(x), lambda: x)

    image = maybe(0, lambda x: x + tf.random.stateless_uniform([], seeds[1], -32.0, 32.0), image)
    image = tf.clip_by_value(image, 0.0, 255.0)
    image = maybe(2, lambda x: tf.clip_by_value((x - 0.0) * tf.random.stateless_uniform([], seeds[3], 0.5, 1.5),
                                                0.0, 255.0), image)
    image = image / 255.0
    image = maybe(4, lambda x: tf.clip_by_value(
        tf.image.adjust_saturation(x, tf.random.stateless_uniform([], seeds[5], 0.5, 1.5)), 0.0, 1.0), image)
    image = maybe(6, lambda x: tf.clip_by_value(
        tf.image.adjust_hue(x, tf.random.stateless_uniform([], seeds[7], -18.0 / 180.0, 18.0 / 180.0)), 0.0, 1.0),
        image)
    return image * 255.0


def augment(image, label, seed, crop_hw, scale_range=(0.5, 2.0), flip=True, photometric=True):
    """Random rescale, pad + crop to ``crop_hw``, flip and photometric jitter of one pair (TF ops)."""
    crop_h, crop_w = crop_hw
    seeds = tf.random.experimental.stateless_split(seed, num=12)
    shape = tf.shape(image)
    h, w = tf.cast(shape[0], tf.float32), tf.cast(shape[1], tf.float32)
    scale = tf.random.stateless_uniform([], seeds[0], scale_range[0], scale_range[1])
    factor = scale * float(min(crop_h, crop_w)) / tf.minimum(h, w)
    new_hw = tf.maximum(tf.cast(tf.round(tf.stack([h, w]) * factor), tf.int32), 1)
    image = tf.image.resize(tf.cast(image, tf.float32), new_hw, method="bilinear", antialias=False)
    label = tf.image.resize(label[..., None], new_hw, method="nearest")[..., 0]
    pad_h = tf.maximum(crop_h - new_hw[0], 0)
    pad_w = tf.maximum(crop_w - new_hw[1], 0)
    image = tf.pad(image, [[0, pad_h], [0, pad_w], [0, 0]], constant_values=0.0)
    label = tf.pad(label, [[0, pad_h], [0, pad_w]], constant_values=IGNORE_INDEX)
    full = tf.shape(label)
    oy = tf.random.stateless_uniform([], seeds[1], 0, full[0] - crop_h + 1, dtype=tf.int32)
    ox = tf.random.stateless_uniform([], seeds[2], 0, full[1] - crop_w + 1, dtype=tf.int32)
    image = image[oy:oy + crop_h, ox:ox + crop_w]
    label = label[oy:oy + crop_h, ox:ox + crop_w]
    if flip:
        do_flip = tf.random.stateless_uniform([], seeds[3]) < 0.5
        image = tf.cond(do_flip, lambda: tf.reverse(image, [1]), lambda: image)
        label = tf.cond(do_flip, lambda: tf.reverse(label, [1]), lambda: label)
    if photometric:
        image = _photometric(image, seeds[4:12])
    image = tf.ensure_shape(image, [crop_h, crop_w, 3])
    label = tf.ensure_shape(label, [crop_h, crop_w])
    return image, label


def train_dataset(ds, pairs, *, epoch, seed, batch_size, steps, crop_hw, augment_options=None):
    """Batches (images float32 (B, H, W, 3) in [0, 255], labels uint8 (B, H, W)) for one epoch.

    ``batch_size`` is the global batch; ``steps`` full batches are produced.
    """
    order = epoch_order(len(pairs), steps, batch_size, seed, epoch)
    images = tf.constant([str(pairs[i].image) for i in order])
    masks = tf.constant([str(pairs[i].mask) for i in order])
    seeds = tf.constant([[seed, epoch * len(order) + k] for k in range(len(order))], dtype=tf.int64)
    options = tf.data.Options()
    options.deterministic = True
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    decode = _decoder(ds)
    kw = augment_options or {}
    data = tf.data.Dataset.from_tensor_slices((images, masks, seeds)).with_options(options)
    data = data.map(lambda i, m, s: (*decode(i, m), s), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    data = data.map(lambda i, m, s: augment(i, m, s, crop_hw, **kw), num_parallel_calls=tf.data.AUTOTUNE,
                    deterministic=True)
    return data.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def val_dataset(ds, pairs, input_hw):
    """(image resized to ``input_hw`` (1, H, W, 3), label at its own size (H0, W0), original size (2,)).

    Validation predicts at the training size and compares at the mask's own
    resolution (logits are resized up before the argmax, as in predict).
    """
    images = tf.constant([str(p.image) for p in pairs])
    masks = tf.constant([str(p.mask) for p in pairs])
    decode = _decoder(ds)

    def prepare(image, label):
        size = tf.shape(label)[:2]
        resized = tf.image.resize(tf.cast(image, tf.float32), input_hw, method="bilinear")
        return resized[None], label, size

    data = tf.data.Dataset.from_tensor_slices((images, masks))
    data = data.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return data.map(prepare, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
