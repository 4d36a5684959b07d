"""Test-time augmentation: predict flipped and rescaled copies of each image and average them.

A spec is ``flip``, ``scales=0.75,1.0,1.25`` or both (``flip,scales=0.75,1.0``).
Every (scale, flip) pair is one view: the image resized to the model size
times the scale (rounded to a multiple of 32) and, for flip, mirrored left to
right. The network's quarter-resolution logits of each view are mirrored
back, resized bilinearly (half-pixel centres) to the grid of the unscaled
view, turned into probabilities (softmax; sigmoid for one class) and averaged,
as mmsegmentation's ``SegTTAModel`` averages softmax scores. The result is
handed to :meth:`Predictor.finish` as ``log(mean probability)``: bilinear
upsampling is linear and the log-sum-exp shift is the same for every class,
so the mask and the probabilities that come out are those of the averaged
probabilities, and a single view gives exactly what plain prediction gives.

Views run in whole mode only (slide mode already averages overlapping tiles),
and scales need a model that accepts any input size.

>>> parse_tta("flip,scales=0.75,1.0")
TTASpec(flip=True, scales=(0.75, 1.0))
>>> TTASpec(flip=True, scales=(0.75, 1.0)).views
((0.75, False), (0.75, True), (1.0, False), (1.0, True))
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from segcli.errors import UsageError
from segcli.inference.bilinear import resize_bilinear

#: Smallest probability kept before the log (float32 softmax underflows to 0 far from the winner).
TINY = 1e-30
MIN_SCALE, MAX_SCALE = 0.25, 4.0
_FORMS = "use flip, scales=S1,S2,... or both, for example flip,scales=0.75,1.0,1.25"


@dataclass(frozen=True)
class TTASpec:
    """Which views to average: mirrored or not, at which scales of the model size."""

    flip: bool = False
    scales: tuple = (1.0,)

    @property
    def views(self) -> tuple:
        """(scale, flipped) of every view, in the order they are run."""
        return tuple((s, f) for s in self.scales for f in ((False, True) if self.flip else (False,)))

    def __str__(self) -> str:
        parts = ["flip"] if self.flip else []
        if self.scales != (1.0,):
            parts.append("scales=" + ",".join(f"{s:g}" for s in self.scales))
        return ",".join(parts) or "none"


def parse_tta(text, name: str = "TTA") -> TTASpec | None:
    """A :class:`TTASpec` from ``"flip"``, ``"scales=0.75,1.0,1.25"`` or ``"flip,scales=..."``; None for ""/"none".

    ``name`` starts the error message (a caller passes the option it came from).

    >>> parse_tta("scales=1.25,0.75,1.25"), parse_tta("none")
    (TTASpec(flip=False, scales=(0.75, 1.25)), None)
    >>> parse_tta("mirror")
    Traceback (most recent call last):
    segcli.errors.UsageError: TTA 'mirror': use flip, scales=S1,S2,... or both, for example flip,scales=0.75,1.0,1.25.
    """
    text = str(text or "").strip()
    if text.lower() in ("", "none"):
        return None
    flip, scales, in_scales = False, [], False
    for token in (t.strip() for t in text.split(",")):
        if token == "flip" and not flip:
            flip, in_scales = True, False
            continue
        if token.startswith("scales=") and not scales:
            token, in_scales = token[len("scales="):], True
        try:
            if not in_scales:
                raise ValueError
            scale = float(token)
        except ValueError:
            raise UsageError(f"{name} {text!r}: {_FORMS}.") from None
        if not MIN_SCALE <= scale <= MAX_SCALE:
            raise UsageError(f"{name} {text!r}: scale {token} is outside {MIN_SCALE:g}..{MAX_SCALE:g}; {_FORMS}.")
        scales.append(scale)
    return TTASpec(flip, tuple(sorted(set(scales))) or (1.0,))


@dataclass
class Views:
    """One image prepared for every view: ``prepared[i]`` is view ``spec.views[i]``."""

    shape: tuple  # original (H, W)
    prepared: list


class TTA:
    """A :class:`~segcli.inference.predictor.Predictor` (whole mode) that averages the views of ``spec``.

    It offers the Predictor's ``prepare``, ``logits``, ``finish`` and ``run``,
    so predict, eval and video take either one. ``logits`` gives the merged
    log-probabilities on the unscaled view's quarter-resolution grid.
    """

    def __init__(self, seg, spec: TTASpec):
        if seg.mode != "whole":
            raise UsageError(f"test-time augmentation ({spec}) runs in whole mode; slide mode already averages "
                             f"overlapping tiles, so use one or the other.")
        if spec.scales != (1.0,) and seg.fixed_size:
            h, w = seg.fixed_size
            raise UsageError(f"test-time scales ({spec}) need a model that accepts any input size; this one only "
                             f"takes {h}x{w} (use flip alone).")
        self.seg, self.spec = seg, spec
        self.mode, self.num_classes, self.batch_size = seg.mode, seg.num_classes, seg.batch_size
        self._is_logits = seg.is_logits

    def sizes(self, shape) -> list[tuple[int, int]]:
        """Network input (h, w) of each scale for an image of ``shape`` (H, W)."""
        h, w = self.seg.model_size(shape)
        return [(h, w) if s == 1.0 else (_round32(h * s), _round32(w * s)) for s in self.spec.scales]

    def prepare(self, image: np.ndarray) -> Views:
        """Every view of an RGB uint8 image, resized from the original (thread-safe, no TensorFlow)."""
        import cv2

        from segcli.inference.predictor import Prepared

        image = np.ascontiguousarray(image)
        base = self.seg.prepare(image)  # checks the image; the unscaled view
        shape = base.shape
        prepared = []
        for (h, w), scale in zip(self.sizes(shape), self.spec.scales):
            if scale == 1.0:
                pixels = base.pixels
            else:
                shrink = h <= shape[0] and w <= shape[1]
                pixels = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
            prepared.append(Prepared(shape, pixels))
            if self.spec.flip:
                prepared.append(Prepared(shape, np.ascontiguousarray(pixels[:, ::-1])))
        return Views(shape, prepared)

    def logits(self, views: list[Views]) -> list[np.ndarray]:
        """Merged log-probabilities (h, w, C) per image, on the quarter grid of its unscaled view."""
        flat = [p for v in views for p in v.prepared]
        outputs = self.seg.logits(flat)
        merged, k = [], len(self.spec.views)
        for i, v in enumerate(views):
            merged.append(self._merge(outputs[i * k:(i + 1) * k], self.seg.model_size(v.shape)))
        return merged

    def finish(self, values: np.ndarray, shape, probs: bool = False):
        return self.seg.finish(values, shape, probs=probs)

    def run(self, views: list[Views], probs: bool = False) -> list:
        """Predictions (masks at the original size) of the averaged views, in input order."""
        return [self.finish(values, v.shape, probs) for v, values in zip(views, self.logits(views))]

    def _merge(self, outputs, base_size) -> np.ndarray:
        """Mirror back, resize to one grid, average probabilities; log of the mean."""
        grid = next((o.shape[:2] for o, (s, _) in zip(outputs, self.spec.views) if s == 1.0),
                    (-(-base_size[0] // 4), -(-base_size[1] // 4)))
        total = None
        for values, (_, flipped) in zip(outputs, self.spec.views):
            values = np.asarray(values, np.float32)
            if flipped:
                values = values[:, ::-1]
            if values.shape[:2] != tuple(grid):
                values = resize_bilinear(values, grid)
            p = to_probs(values, self._is_logits)
            total = p if total is None else total + p
        mean = total / len(outputs)
        return from_probs(mean, self._is_logits)


def with_tta(seg, spec: TTASpec | None):
    """``seg`` itself without a spec, else a :class:`TTA` around it."""
    return seg if spec is None else TTA(seg, spec)


def to_probs(values: np.ndarray, is_logits: bool = True) -> np.ndarray:
    """Softmax over the last axis (sigmoid for one class); model outputs that are not logits pass through."""
    if not is_logits:
        return values
    if values.shape[-1] == 1:
        return 1.0 / (1.0 + np.exp(-values))
    e = np.exp(values - values.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def from_probs(probs: np.ndarray, is_logits: bool = True) -> np.ndarray:
    """Logits whose softmax (sigmoid for one class) is ``probs``: log p (log p - log(1 - p))."""
    if not is_logits:
        return probs.astype(np.float32)
    p = np.maximum(probs, TINY)
    if probs.shape[-1] == 1:
        return (np.log(p) - np.log(np.maximum(1.0 - probs, TINY))).astype(np.float32)
    return np.log(p).astype(np.float32)


def _round32(n: float) -> int:
    return max(32, int(round(n / 32.0)) * 32)
