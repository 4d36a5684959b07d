"""``segcli eval``: run a model over a dataset folder (the layouts ``train`` reads) and score it.

Inference is :class:`segcli.inference.predictor.Segmenter`, the same path as
predict (whole or slide mode). Pixels labelled 255 are ignored; metrics come
from one accumulated confusion matrix (:mod:`segcli.inference.metrics`).

Split: ``"auto"`` (default) scores the dataset's own val folder when it has
one, and every pair otherwise; ``"val"``, ``"train"`` and ``"all"`` choose
explicitly (a val split drawn by ``discover`` is seeded and reproducible).
"""

from __future__ import annotations

import os
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from segcli.errors import DataError, UsageError

SPLIT_CHOICES = ("auto", "val", "train", "all")


def _pairs(ds, split: str) -> tuple[list, str]:
    if split not in SPLIT_CHOICES:
        raise UsageError(f"--split {split}: use one of {', '.join(SPLIT_CHOICES)}.")
    if split == "auto":
        split = "val" if ds.val_source == "folder" else "all"
    pairs = ds.pairs() if split == "all" else list(ds.splits.get(split, []))
    if not pairs:
        raise DataError(f"{ds.root}: the {split} split has no image/mask pairs.")
    return pairs, split


def _class_names(ds, source, num_classes: int) -> list[str]:
    """Names for the report: the dataset's class file when it matches the model, else the model's."""
    if ds.class_source in ("classes.json", "classes.txt"):
        if ds.num_classes != num_classes:
            raise DataError(f"{ds.root / ds.class_source}: lists {ds.num_classes} classes but the model predicts "
                            f"{num_classes}; evaluate with the model trained on this class list.")
        return ds.class_names
    return source.class_names


def evaluate(data, source=None, split: str = "auto", mode: str = "whole", batch_size: int = 8, tile=None,
             stride=None, max_side: int = 2048, workers: int | None = None, on_start=None, on_progress=None) -> dict:
    """Metrics of ``source`` (anything ``model_source.resolve`` takes) on dataset folder ``data``.

    Returns :func:`segcli.inference.metrics.summarize`'s dict plus ``model``,
    ``data``, ``split``, ``mode``, ``images``, ``seconds`` and ``img_per_s``.
    """
    from segcli.data.folder_dataset import discover
    from segcli.data.image_io import read_image
    from segcli.inference.predictor import Segmenter
    from segcli.inference.metrics import confusion_matrix, summarize
    from segcli.checkpoints.resolve import ModelSource, resolve

    ds = discover(data)
    pairs, split = _pairs(ds, split)
    if not isinstance(source, ModelSource):
        source = resolve(source)
    seg = Segmenter(source.model, mode=mode, batch_size=batch_size, input_size=source.input_size, tile=tile,
                    stride=stride, max_side=max_side)
    num_classes = seg.num_classes
    names = _class_names(ds, source, num_classes)
    if on_start:
        on_start(len(pairs))

    def load(pair):
        image = read_image(pair.image)
        label = ds.read_label(pair)
        if label.shape != image.shape[:2]:
            raise DataError(f"{pair.mask}: mask is {label.shape[1]}x{label.shape[0]} but {pair.image} is "
                            f"{image.shape[1]}x{image.shape[0]}; they must match.")
        return seg.prepare(image), label

    confusion = np.zeros((num_classes, num_classes), np.int64)
    started = time.perf_counter()
    window = batch_size * 2 + 4
    with ThreadPoolExecutor(workers or min(4, os.cpu_count() or 1), thread_name_prefix="segcli-eval") as pool:
        queue, pending = iter(pairs), deque()

        def fill():
            while len(pending) < window:
                pair = next(queue, None)
                if pair is None:
                    return
                pending.append((pair, pool.submit(load, pair)))

        fill()
        while pending:
            batch = []
            while pending and len(batch) < batch_size:
                pair, future = pending.popleft()
                batch.append((pair, *future.result()))
            fill()
            for (pair, _, label), prediction in zip(batch, seg.run([b[1] for b in batch])):
                try:
                    confusion += confusion_matrix(label, prediction.mask, num_classes)
                except DataError as exc:
                    raise DataError(f"{pair.mask}: {exc}") from None
                if on_progress:
                    on_progress(1)
    seconds = time.perf_counter() - started
    result = summarize(confusion, names)
    result.update(model=source.name, data=str(ds.root), split=split, mode=mode, images=len(pairs),
                  seconds=round(seconds, 3), img_per_s=round(len(pairs) / seconds, 3) if seconds > 0 else None)
    return result
