"""The shared inference core of ``predict``, ``eval`` and ``bench --input``.

A :class:`Predictor` wraps a Keras SegFormer (or any other Keras segmentation model, or an exported-model
runner) and turns RGB ``uint8`` images of any size into class-index masks at the original size.

- ``mode="whole"`` resizes each image to the model's input size (a fixed-size
  model, or ``input_size``), or, for models of dynamic size, to the nearest
  multiple of 32 of the original size with the longest side capped at
  ``max_side`` (2048 by default). Images of the same model size are batched.
- ``mode="slide"`` pads the image (edge pixels repeated) to a multiple of 4 and
  at least one tile, runs ``tile``-sized crops every ``stride`` pixels, and
  averages the overlapping quarter-resolution logits. Only a band of
  ``tile / 4 + 1`` logit rows is held at a time, in one buffer, so memory does
  not grow with the image height.

In both modes the logits are resized bilinearly (half-pixel centres, like the
model's own output layer) to the original size and the argmax is taken there.
Masks come from the compiled loop of :mod:`segcli.inference.mask_kernel`, which
never builds the full-resolution logits. Probabilities (``probs=True``) come from
:mod:`segcli.inference.probs_kernel`, a stripe of at most ``STRIPE_ELEMENTS``
values at a time; neither needs TensorFlow (``SEGCLI_MASK_STEP=tensorflow`` uses TF ops).

The network runs in batches of ``batch_size`` inside a traced function (no XLA: ``jit_compile`` was measured
3-5x slower on CPU here). SegFormers run through :class:`~segcli.models.segformer.graph.SegFormerGraph`,
float32 ones with their decode head folded (``SEGCLI_FUSED_HEAD=0`` keeps the plain head).

>>> import numpy as np
>>> from segcli.models.load import create_segmenter
>>> seg = Predictor(create_segmenter("segformer_test", num_classes=3), batch_size=2)
>>> out = seg.predict([np.zeros((40, 70, 3), np.uint8), np.full((1, 1, 3), 255, np.uint8)], probs=True)
>>> [p.mask.shape for p in out], out[0].mask.dtype.name, out[1].probs.shape
([(40, 70), (1, 1)], 'uint8', (1, 1, 3))
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from segcli.errors import UsageError
from segcli.graph_function import graph_function
from segcli.inference.band import LogitBand
from segcli.inference.bilinear import bilinear_coords
from segcli.inference.finish import fused_argmax, mask_step_engine, stripe_finisher

DEFAULT_MAX_SIDE = 2048
DEFAULT_TILE = 512
#: Floats per upsampling stripe where the full-resolution values are needed (probabilities, slide mode).
STRIPE_ELEMENTS = 1 << 24
#: Traced functions kept for other Keras models, one per input size. A SegFormer graph has one for every size: it
#: ran no slower than a per-size trace, and tracing B0 takes about 1.5 s (benchmarks/NOTES.md row 29).
MAX_TRACED_SIZES = 16


@dataclass
class Prediction:
    """One image's result: ``mask`` (H, W) uint8 (uint16 above 256 classes), ``probs`` (H, W, C) float16 or None."""

    mask: np.ndarray
    probs: np.ndarray | None = None


@dataclass
class Prepared:
    """An image made ready for the network by :meth:`Predictor.prepare` (safe to call in worker threads)."""

    shape: tuple  # original (H, W)
    pixels: np.ndarray  # whole: resized image; slide: padded image


_NETS: dict[int, dict] = {}  # id(model) -> {"graph": SegFormerGraph or None, "net": model, "fns": {(h, w): traced}}


def _net_cache(model) -> dict:
    """The inference graph and traced forward functions of ``model``, shared by every Predictor of it."""
    import weakref

    entry = _NETS.get(id(model))
    if entry is None:
        entry = _NETS[id(model)] = {"graph": _graph(model), "net": model, "fns": {}}
        weakref.finalize(model, _NETS.pop, id(model), None)
    return entry


def _graph(model):
    """A SegFormer's graph (folded head for float32 models unless ``SEGCLI_FUSED_HEAD=0``); None for other models."""
    from segcli.models.segformer.model import SegFormer

    if not isinstance(model, SegFormer):
        return None  # any other Keras segmentation model: the argmax of its own output
    from segcli.models.segformer.graph import SegFormerGraph

    folded = os.environ.get("SEGCLI_FUSED_HEAD", "1") != "0" and getattr(model, "compute_dtype", "") == "float32"
    return SegFormerGraph(model, folded=folded)


def check_mode(mode: str, tile=None, stride=None, max_side=None) -> None:
    """``mode`` is whole or slide; a tile or stride comes only with slide, and a cap on the longest side (at least 32:
    the network input is rounded to multiples of 32) only with whole, as the other mode would ignore it.

    >>> check_mode("slide", tile=256)
    >>> check_mode("whole", tile=256)
    Traceback (most recent call last):
    ...
    segcli.errors.UsageError: tile 256: only slide mode uses a tile; set mode to slide, or leave the tile out.
    """
    if mode not in ("whole", "slide"):
        raise UsageError(f"mode {mode!r}: use 'whole' or 'slide'.", value="mode")
    other = "slide" if mode == "whole" else "whole"
    for name, value in ((("tile", tile), ("stride", stride)) if mode == "whole" else (("max side", max_side),)):
        if value is not None:
            raise UsageError(f"{name} {value}: only {other} mode uses a {name}; set mode to {other}, or leave the "
                             f"{name} out.", value=name.replace(" ", "_"))
    if max_side is not None and int(max_side) < 32:
        raise UsageError(f"max side {max_side}: must be at least 32.", value="max_side")


def _round32(n: float) -> int:
    return max(32, int(round(n / 32.0)) * 32)


def _ceil_to(n: int, k: int) -> int:
    return -(-n // k) * k


class Predictor:
    """Class-index masks from a segmentation model, in whole or slide mode.

    Args:
        model: a Keras model (SegFormer: its quarter-resolution logits; other
            models: their output), or a runner object with
            ``predict_logits(uint8 batch) -> (B, h, w, C) float32`` and
            ``input_size`` ((H, W) or None) attributes, as exported-model
            runtimes provide.
        mode: "whole" or "slide".
        batch_size: images (whole) or tiles (slide) per network call.
        input_size: (H, W) to resize to in whole mode when the model itself
            accepts any size (for example a checkpoint trained at 512x512).
        tile, stride: slide-mode window and step in pixels (tile: a multiple of
            32, default the model's input size or 512; stride: default 2/3 of
            the tile, rounded to a multiple of 4).
        max_side: longest side in whole mode for dynamic-size models (None: :data:`DEFAULT_MAX_SIDE`; slide mode
            refuses one).
    """

    def __init__(self, model, mode="whole", batch_size=8, input_size=None, tile=None, stride=None,
                 max_side=None):
        check_mode(mode, tile, stride, max_side)
        if int(batch_size) < 1:
            raise UsageError(f"batch size {batch_size}: must be at least 1.", value="batch_size")
        self.mode, self.batch_size = mode, int(batch_size)
        self.max_side = DEFAULT_MAX_SIDE if max_side is None else int(max_side)
        if hasattr(model, "predict_logits"):
            self._net, self._runner = None, model
            fixed = getattr(model, "input_size", None)
            self.num_classes = int(model.num_classes)
            self._is_logits = True
        else:
            self._runner = None
            self._cache = _net_cache(model)  # traced once per input (h, w)
            self._net, self._is_logits = model, self._cache["graph"] is not None
            shape = tuple(model.input_shape[1:3])
            fixed = shape if all(isinstance(s, int) for s in shape) else None
            self.num_classes = int(model.output_shape[-1])
        self.fixed_size = tuple(int(s) for s in fixed) if fixed else None
        if self.fixed_size and input_size and tuple(input_size) != self.fixed_size:
            raise UsageError(f"input size {tuple(input_size)} differs from the model's fixed input size "
                             f"{self.fixed_size}.")
        self.input_size = self.fixed_size or (tuple(int(s) for s in input_size) if input_size else None)
        self.tile, self.stride = self._tiling(tile, stride) if mode == "slide" else (None, None)
        self.mask_dtype = np.uint8 if self.num_classes <= 256 else np.uint16
        #: ``allocate((H, W, C))`` -> the float16 array probabilities are written into (predict: files on disk)
        self.probs_buffer = lambda shape: np.empty(shape, np.float16)

    # --- set-up ---------------------------------------------------------------------------------------------------
    def _tiling(self, tile, stride):
        if tile is None:
            tile = self.fixed_size or self.input_size or (DEFAULT_TILE, DEFAULT_TILE)
        tile = (int(tile), int(tile)) if np.isscalar(tile) else tuple(int(t) for t in tile)
        if self.fixed_size and tile != self.fixed_size:
            raise UsageError(f"tile {tile[0] if tile[0] == tile[1] else tile}: the model only accepts "
                             f"{self.fixed_size[0]}x{self.fixed_size[1]} inputs; omit the tile size or pass that size.",
                             value="tile")
        if min(tile) < 32 or any(t % 32 for t in tile):
            raise UsageError(f"tile {tile[0] if tile[0] == tile[1] else tile}: must be a multiple of 32, "
                             f"at least 32.", value="tile")
        if stride is None:
            stride = max(4, (min(tile) * 2 // 3) // 4 * 4)
        stride = int(stride)
        if stride < 4 or stride > min(tile):
            raise UsageError(f"stride {stride}: must be between 4 and the tile size {min(tile)}.", value="stride")
        return tile, stride // 4 * 4

    # --- public API -----------------------------------------------------------------------------------------------
    def model_size(self, shape) -> tuple[int, int]:
        """(h, w) the network sees for an image of (H, W) in whole mode."""
        if self.input_size:
            return self.input_size
        h, w = shape
        scale = min(1.0, self.max_side / max(h, w))
        return _round32(h * scale), _round32(w * scale)

    def prepare(self, image: np.ndarray) -> Prepared:
        """Resize (whole) or pad (slide) an RGB uint8 image; thread-safe, no TensorFlow."""
        import cv2

        image = np.ascontiguousarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected an RGB uint8 (H, W, 3) image, got {image.dtype} {image.shape}")
        h, w = image.shape[:2]
        if self.mode == "whole":
            th, tw = self.model_size((h, w))
            if (th, tw) != (h, w):
                shrink = th <= h and tw <= w
                image = cv2.resize(image, (tw, th), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
            return Prepared((h, w), image)
        th, tw = self._tile_for((h, w))
        hp, wp = max(_ceil_to(h, 4), th), max(_ceil_to(w, 4), tw)
        if (hp, wp) != (h, w):
            image = cv2.copyMakeBorder(image, 0, hp - h, 0, wp - w, cv2.BORDER_REPLICATE)
        return Prepared((h, w), image)

    def predict(self, images, probs: bool = False) -> list[Prediction]:
        """Masks (and float16 probabilities with ``probs=True``) for a list of RGB uint8 images."""
        return self.run([self.prepare(im) for im in images], probs=probs)

    @property
    def is_logits(self) -> bool:
        """True when the network gives logits (SegFormers, runners); False when it gives probabilities."""
        return self._is_logits

    def logits(self, prepared: list[Prepared]) -> list[np.ndarray]:
        """Whole mode: the network's float32 logits (h, w, C) per prepared image, in input order.

        SegFormers give them at 1/4 of the model size; :meth:`finish` turns them into a mask.
        """
        if self.mode != "whole":
            raise UsageError("logits() needs mode 'whole'; slide mode averages tiles inside run().")
        results: list[np.ndarray | None] = [None] * len(prepared)
        for chunk, batch in self._batches(prepared):
            for i, values in zip(chunk, batch):
                results[i] = values
        return results

    def _batches(self, prepared: list[Prepared]):
        """Yield (indices, logits of those images as one array): images of one model size, batch_size at a time."""
        groups: dict[tuple, list[int]] = {}
        for i, p in enumerate(prepared):
            groups.setdefault(p.pixels.shape, []).append(i)
        for indices in groups.values():
            for start in range(0, len(indices), self.batch_size):
                chunk = indices[start:start + self.batch_size]
                yield chunk, self._forward(np.stack([prepared[i].pixels for i in chunk]))

    def finish(self, logits: np.ndarray, shape, probs: bool = False) -> Prediction:
        """Upsample ``logits`` (h, w, C) to ``shape`` (H, W) and take the argmax (and probabilities)."""
        return self._upsample_whole(np.asarray(logits, np.float32), tuple(shape), probs)

    def run(self, prepared: list[Prepared], probs: bool = False) -> list[Prediction]:
        """Predict already prepared images; results come back in input order."""
        if self.mode == "slide":
            return [self._slide(p, probs) for p in prepared]
        if probs or not self._is_logits:
            return [self._upsample_whole(values, p.shape, probs) for p, values in zip(prepared, self.logits(prepared))]
        results: list[Prediction | None] = [None] * len(prepared)
        for chunk, batch in self._batches(prepared):
            for i, mask in zip(chunk, self._fused_masks(batch, [prepared[i].shape for i in chunk])):
                results[i] = Prediction(mask)
        return results

    # --- internals ------------------------------------------------------------------------------------------------
    def _stripe(self, src, y, x, mask, probs):
        """Fill ``mask`` (and ``probs`` if not None) at output rows ``y`` and columns ``x`` of ``src``."""
        finish = stripe_finisher(self.num_classes == 1, self._is_logits, self.mask_dtype != np.uint8,
                                 mask_step_engine())
        finish(src, y, x, mask, probs)

    def _forward(self, batch: np.ndarray) -> np.ndarray:
        if self._runner is not None:
            return np.asarray(self._runner.predict_logits(batch), dtype=np.float32)
        key = (None, None) if self._cache["graph"] is not None else batch.shape[1:3]
        fns = self._cache["fns"]
        fn = fns.get(key)
        if fn is None:
            if len(fns) >= MAX_TRACED_SIZES:
                fns.pop(next(iter(fns)))
            fn = fns[key] = self._trace_forward(*key)
        return fn(batch).numpy()

    def _trace_forward(self, h, w):
        import tensorflow as tf

        net, graph = self._net, self._cache["graph"]

        @graph_function(input_signature=[tf.TensorSpec((None, h, w, 3), tf.uint8)])
        def forward(images):
            if graph is not None:
                return graph.quarter_logits(images)
            return tf.cast(net(tf.cast(images, tf.float32), training=False), tf.float32)

        return forward

    def _tile_for(self, shape) -> tuple[int, int]:
        if self.fixed_size:
            return self.tile
        return min(self.tile[0], _ceil_to(shape[0], 32)), min(self.tile[1], _ceil_to(shape[1], 32))

    def _outputs(self, shape, want_probs):
        mask = np.empty(shape, self.mask_dtype)
        return mask, (self.probs_buffer((*shape, self.num_classes)) if want_probs else None)

    def _upsample_whole(self, values: np.ndarray, shape, want_probs) -> Prediction:
        h, w = shape
        if not want_probs and self._is_logits:
            return Prediction(self._fused_masks(values[None], [shape])[0])
        sh, sw = values.shape[:2]
        y = bilinear_coords(h, sh, np.float32(sh) / np.float32(h))
        x = bilinear_coords(w, sw, np.float32(sw) / np.float32(w))
        mask, probs = self._outputs(shape, want_probs)
        self._emit(values, 0, y, x, 0, h, mask, probs)
        return Prediction(mask, probs)

    def _fused_masks(self, batch: np.ndarray, shapes: list) -> list[np.ndarray]:
        """Masks at ``shapes`` from a batch of logits: one fused call per output size, in bands of rows
        of about STRIPE_ELEMENTS candidate blends.
        """
        argmax_rows = fused_argmax(self.mask_dtype != np.uint8, self.num_classes, mask_step_engine())
        masks: list[np.ndarray | None] = [None] * len(shapes)
        by_shape: dict[tuple, list[int]] = {}
        for i, shape in enumerate(shapes):
            by_shape.setdefault(tuple(shape), []).append(i)
        for (h, w), members in by_shape.items():
            values = batch if len(members) == len(batch) else batch[members]
            step = max(1, STRIPE_ELEMENTS // (w * 16 * len(members)))
            stacked = np.empty((len(members), h, w), self.mask_dtype)  # filled band by band: no second copy
            for s in range(0, h, step):
                stacked[:, s:s + step] = argmax_rows(values, (h, w), s, min(s + step, h))
            for i, mask in zip(members, stacked):
                masks[i] = mask
        return masks

    def _emit(self, src, src_row0, y, x, r0, r1, mask, probs):
        """Write output rows [r0, r1) from source rows held in ``src`` (its first row is ``src_row0``)."""
        y_lo, y_hi, y_lerp = y
        step = max(1, STRIPE_ELEMENTS // (mask.shape[1] * self.num_classes))
        for s in range(r0, r1, step):
            e = min(s + step, r1)
            k0, k1 = int(y_lo[s]), int(y_hi[e - 1]) + 1
            rows = (y_lo[s:e] - k0, y_hi[s:e] - k0, y_lerp[s:e])
            block = src[k0 - src_row0:k1 - src_row0]
            self._stripe(block, rows, x, mask[s:e], None if probs is None else probs[s:e])

    def _slide(self, prep: Prepared, want_probs) -> Prediction:
        h, w = prep.shape
        image = prep.pixels
        hp, wp = image.shape[:2]
        th, tw = self._tile_for((h, w))
        ys = list(range(0, hp - th + 1, self.stride))
        xs = list(range(0, wp - tw + 1, self.stride))
        ys += [hp - th] if ys[-1] != hp - th else []
        xs += [wp - tw] if xs[-1] != wp - tw else []
        hq, wq, tq, sq = hp // 4, wp // 4, th // 4, tw // 4
        cover_y, cover_x = np.zeros(hq, np.float32), np.zeros(wq, np.float32)
        for y0 in ys:
            cover_y[y0 // 4:y0 // 4 + tq] += 1
        for x0 in xs:
            cover_x[x0 // 4:x0 // 4 + sq] += 1
        y = bilinear_coords(h, hq, 0.25)
        x = bilinear_coords(w, wq, 0.25)
        mask, probs = self._outputs((h, w), want_probs)
        band = LogitBand(wq, self.num_classes, capacity=tq + 1)  # a tile's rows and the one row kept above them
        averaged, done = 0, 0  # quarter rows < averaged are final; output rows < done are written
        for i, y0 in enumerate(ys):
            top = y0 // 4
            band.extend_to(top + tq)
            tiles = [image[y0:y0 + th, x0:x0 + tw] for x0 in xs]
            for start in range(0, len(tiles), self.batch_size):
                logits = self._forward(np.stack(tiles[start:start + self.batch_size]))
                for x0, values in zip(xs[start:start + self.batch_size], logits):
                    band.values[top - band.first:top - band.first + tq, x0 // 4:x0 // 4 + sq] += values
            last = i + 1 == len(ys)
            final = hq if last else ys[i + 1] // 4
            rows = band.values[averaged - band.first:final - band.first]
            rows /= cover_y[averaged:final, None, None] * cover_x[None, :, None]
            averaged = final
            end = h if last else int(np.searchsorted(y[1], final, side="left"))  # rows needing only final rows
            if end > done:
                self._emit(band.values, band.first, y, x, done, end, mask, probs)
                done = end
            band.drop_before(int(y[0][done]) if done < h else hq)
        return Prediction(mask, probs)
