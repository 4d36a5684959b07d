"""The tf.data input pipeline for training and validation, built once per run.

**Decoding.** Each pair is indexed once (:func:`index_pairs`: file kind, EXIF orientation, pixel count).
PNG and JPEG images are decoded with TF ops (JPEG with the accurate integer DCT, which gives OpenCV's exact
pixels) and turned upright in-graph from the recorded EXIF orientation; other formats (and CMYK JPEGs) go
through :func:`segcli.data.image_io.read_image`. So train, eval and predict see the same pixels, which
tests/data/test_pipeline.py checks against ``read_image``. Masks go through ``FolderDataset.read_label``.

**Caching.** ``cache="memory"`` decodes every pair once into RAM, ``"disk"`` once into ``.npy`` files in
``cache_dir`` (kept across a resume; a changed file is decoded again), ``"none"`` decodes on every visit.
:func:`choose_cache` picks memory when the decoded set fits in a quarter of RAM, else none.

**Augmentation** follows mmsegmentation's SegFormer recipe: random rescale (0.5-2.0 times the crop's short
side), random crop padded with 0 (image) and 255 (mask), horizontal flip, photometric distortion. Images stay
RGB in [0, 255]: the model normalises with ImageNet mean/std itself, as in predict.

Every random choice comes from a stateless seed made of (seed, epoch, position), and the dataset for a run
covers all its epochs at once, starting at any epoch: a resumed run gets the same batches.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

from segcli.data.folder_dataset import IGNORE_INDEX
from segcli.data.image_io import read_image, write_atomic
from segcli.data.tiff_header import tiff_size

PNG, JPEG, OTHER = 0, 1, 2
EXIF_ORIENTATION = 0x0112
CACHES = ("memory", "disk", "none")
RAM_SHARE = 0.25  # "memory" by default when the decoded set fits in this share of RAM


@dataclass(frozen=True)
class Entry:
    """One pair as indexed: how to decode its image and how many bytes it decodes to."""

    image: str
    mask: str
    kind: int  # PNG, JPEG or OTHER
    orientation: int  # EXIF orientation 1-8 (1: as stored)
    decoded_bytes: int


def _index_one(pair) -> Entry:
    from PIL import Image

    kind, orientation, nbytes = OTHER, 1, 0
    try:
        with Image.open(pair.image) as im:
            width, height = im.size
            nbytes = width * height * 4  # RGB image + uint8 label
            if im.format == "PNG":
                kind = PNG
            elif im.format in ("JPEG", "MPO") and im.mode != "CMYK":
                kind = JPEG
            value = im.getexif().get(EXIF_ORIENTATION, 1)
            orientation = value if isinstance(value, int) and 1 <= value <= 8 else 1
    except Exception:  # noqa: BLE001  (an unreadable header: read_image names the file when it is decoded)
        size = tiff_size(pair.image)  # a float TIFF, which Pillow does not open, still counts toward the cache
        nbytes = size[0] * size[1] * 4 if size else 0
    return Entry(str(pair.image), str(pair.mask), kind, orientation, nbytes)


def index_pairs(pairs, workers: int = 8) -> list:
    """An :class:`Entry` per pair, reading only the file headers."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(_index_one, pairs))


def total_ram_bytes() -> int:
    """Physical RAM, or the cgroup's memory limit when that is lower."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit.isdigit():
            total = min(total, int(limit))
    except OSError:
        pass
    return total


def choose_cache(requested, entries) -> str:
    """``requested`` when given, else "memory" if the decoded pairs fit in a quarter of RAM, else "none".

    >>> choose_cache("disk", []), choose_cache(None, [Entry("a", "b", PNG, 1, 10)])
    ('disk', 'memory')
    """
    if requested:
        return requested
    return "memory" if sum(e.decoded_bytes for e in entries) <= RAM_SHARE * total_ram_bytes() else "none"


def orient(image, orientation):
    """Apply an EXIF orientation (1-8) to an (H, W, C) tensor, as OpenCV and PIL's ``exif_transpose`` do."""
    transposed = lambda: tf.transpose(image, [1, 0, 2])  # noqa: E731
    branches = [
        lambda: image,  # 1: as stored
        lambda: tf.reverse(image, [1]),  # 2: mirrored
        lambda: tf.reverse(image, [0, 1]),  # 3: rotated 180
        lambda: tf.reverse(image, [0]),  # 4: mirrored vertically
        transposed,  # 5: transposed
        lambda: tf.reverse(transposed(), [1]),  # 6: rotated 90 clockwise
        lambda: tf.reverse(transposed(), [0, 1]),  # 7: transversed
        lambda: tf.reverse(transposed(), [0]),  # 8: rotated 90 counter-clockwise
    ]
    return tf.switch_case(tf.clip_by_value(tf.cast(orientation, tf.int32) - 1, 0, 7), branches)


def _decode_image(path, kind, orientation):
    def by_opencv():
        image = tf.numpy_function(lambda p: read_image(os.fsdecode(p)), [path], tf.uint8, stateful=False)
        return tf.ensure_shape(image, [None, None, 3])

    def by_tf(decode):
        return lambda: orient(decode(tf.io.read_file(path)), orientation)

    png = by_tf(lambda data: tf.io.decode_png(data, channels=3))
    jpeg = by_tf(lambda data: tf.io.decode_jpeg(data, channels=3, dct_method="INTEGER_ACCURATE"))
    return tf.switch_case(tf.cast(kind, tf.int32), [png, jpeg, by_opencv])


def _decoder(ds, entries):
    """A TF function: pair index -> (image uint8 (H, W, 3), label uint8 (H, W)), decoded from the files."""
    images = tf.constant([os.fsencode(e.image) for e in entries] or [b""])  # a name's bytes, UTF-8 or not
    masks = tf.constant([os.fsencode(e.mask) for e in entries] or [b""])
    kinds = tf.constant([e.kind for e in entries] or [0], tf.int32)
    orientations = tf.constant([e.orientation for e in entries] or [1], tf.int32)

    def decode(index):
        image = _decode_image(tf.gather(images, index), tf.gather(kinds, index), tf.gather(orientations, index))
        label = tf.numpy_function(lambda p: ds.read_label(os.fsdecode(p)), [tf.gather(masks, index)], tf.uint8,
                                  stateful=False)
        label = tf.ensure_shape(label, [None, None])
        size = tf.shape(image)[:2]
        label = tf.cond(tf.reduce_all(tf.shape(label) == size), lambda: label,  # data check refuses this;
                        lambda: tf.image.resize(label[..., None], size, method="nearest")[..., 0])  # a file changed
        return image, label

    return decode


def parallel_map(data, fn, deterministic=True):
    """``data.map(fn)`` on every core (tf.data's AUTOTUNE), in order unless ``deterministic`` says otherwise, with
    ``fn`` traced without AutoGraph (:mod:`segcli.graph_function`)."""
    from segcli.graph_function import dataset_function

    return data.map(dataset_function(fn), num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)


def _decode_all(decode, n):
    data = parallel_map(tf.data.Dataset.range(n), decode)
    return [(image, label) for image, label in data.as_numpy_iterator()]


def _cache_name(entry: Entry) -> str:
    stats = [entry.image, entry.mask, entry.orientation]
    for path in (entry.image, entry.mask):
        st = os.stat(path)
        stats += [st.st_size, st.st_mtime_ns]
    return hashlib.sha1(repr(stats).encode()).hexdigest()[:20]


def _disk_cache(decode, entries, cache_dir: Path) -> list:
    """Decode the pairs not yet in ``cache_dir`` into ``<key>.image.npy`` / ``<key>.label.npy``; their paths."""
    import io

    cache_dir = Path(cache_dir)
    paths = [(cache_dir / f"{k}.image.npy", cache_dir / f"{k}.label.npy") for k in map(_cache_name, entries)]
    missing = [i for i, (image, label) in enumerate(paths) if not (image.is_file() and label.is_file())]
    data = tf.data.Dataset.from_tensor_slices(tf.constant(missing or [0], tf.int64)).take(len(missing))
    data = parallel_map(data, decode)
    for i, arrays in zip(missing, data.as_numpy_iterator()):
        for path, array in zip(paths[i], arrays):
            buf = io.BytesIO()
            np.save(buf, array)
            write_atomic(path, buf.getvalue())
    return paths


class PairSource:
    """Decoded pairs by index, from the files, from RAM or from the disk cache (see the module docstring)."""

    def __init__(self, ds, pairs, cache: str | None = "none", cache_dir=None, entries=None):
        self.entries = entries if entries is not None else index_pairs(pairs)
        self.cache = choose_cache(cache, self.entries)
        if self.cache not in CACHES:
            raise ValueError(f"cache {self.cache!r}: use memory, disk or none.")
        self._decode = _decoder(ds, self.entries)
        self._lookup = None
        if self.cache == "memory":
            decoded = _decode_all(self._decode, len(self.entries))
            self._lookup = lambda i: decoded[i]
        elif self.cache == "disk":
            if cache_dir is None:
                raise ValueError("cache 'disk' needs a cache_dir.")
            files = _disk_cache(self._decode, self.entries, cache_dir)
            self._lookup = lambda i: (np.load(files[i][0]), np.load(files[i][1]))

    def __len__(self):
        return len(self.entries)

    def decode(self, index):
        """TF function body: index -> (image, label)."""
        if self._lookup is None:
            return self._decode(index)
        image, label = tf.numpy_function(lambda i: self._lookup(int(i)), [index], [tf.uint8, tf.uint8],
                                         stateful=False)
        return tf.ensure_shape(image, [None, None, 3]), tf.ensure_shape(label, [None, None])

    def dataset(self):
        """(image, label) for every pair, in order."""
        return parallel_map(tf.data.Dataset.range(len(self)), self.decode)


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


def _source(ds, pairs, source, cache, cache_dir):
    return source if source is not None else PairSource(ds, pairs, cache=cache, cache_dir=cache_dir)


def train_dataset(ds, pairs, *, epoch=0, epochs=1, seed, batch_size, steps, crop_hw, augment_options=None,
                  cache="none", cache_dir=None, source=None):
    """Batches (images float32 (B, H, W, 3) in [0, 255], labels uint8 (B, H, W)) for epochs
    ``epoch`` .. ``epoch + epochs - 1``, ``steps`` full batches each, in one dataset.

    ``batch_size`` is the global batch. ``source`` (a :class:`PairSource` over ``pairs``) is built when not given.
    """
    source = _source(ds, pairs, source, cache, cache_dir)
    per_epoch = steps * batch_size
    order = np.concatenate([epoch_order(len(pairs), steps, batch_size, seed, e) for e in range(epoch, epoch + epochs)])
    positions = np.concatenate([e * per_epoch + np.arange(per_epoch) for e in range(epoch, epoch + epochs)])
    seeds = np.stack([np.full_like(positions, seed), positions], axis=1).astype(np.int64)
    options = tf.data.Options()
    options.deterministic = True
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    kw = augment_options or {}
    data = tf.data.Dataset.from_tensor_slices((order, seeds)).with_options(options)
    data = parallel_map(data, lambda i, s: (*source.decode(i), s))
    data = parallel_map(data, lambda i, m, s: augment(i, m, s, crop_hw, **kw))
    return data.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def val_dataset(ds, pairs, input_hw, cache="none", cache_dir=None, source=None):
    """(image resized to ``input_hw`` (1, H, W, 3), label at its own size (H0, W0), original size (2,)).

    Validation predicts at the training size and compares at the mask's own
    resolution (logits are resized up before the argmax, as in predict).
    """
    source = _source(ds, pairs, source, cache, cache_dir)

    def prepare(image, label):
        size = tf.shape(label)[:2]
        resized = tf.image.resize(tf.cast(image, tf.float32), input_hw, method="bilinear")
        return resized[None], label, size

    return parallel_map(source.dataset(), prepare, deterministic=None).prefetch(tf.data.AUTOTUNE)
