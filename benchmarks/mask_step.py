"""Where the fused upsample/argmax (predict's mask step) spends its time, on a real model's logits.

SegFormer-B0 with 150 classes (random init, as compare_peers' peers: no weights can be downloaded here) runs on
``--images`` 512x512 photos made from samples/photos; its quarter-resolution logits (8 x 128 x 128 x 150) go
through ``bilinear_argmax`` to 512x512 with ``candidates`` k per window, in one call, and through predict's own
banded path (``fused_argmax`` over bands of rows). Prints ms per image (median of 5) and the CPU.

    python benchmarks/mask_step.py
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def photos(n: int, size: int = 512) -> np.ndarray:
    import cv2

    from segcli.data.image_io import read_image

    files = sorted((ROOT / "samples" / "photos").iterdir())
    return np.stack([cv2.resize(read_image(files[i % len(files)]), (size, size)) for i in range(n)])


def median_ms(fn, per: int) -> float:
    fn()
    times = []
    for _ in range(5):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times) / per


def main() -> None:
    import tensorflow as tf

    from segcli.inference.finish import fused_argmax
    from segcli.inference.upsample import bilinear_argmax
    from segcli.models.load import create_segmenter
    from segcli.models.segformer.graph import SegFormerGraph

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from sections import cpu_line

    n = 8
    model = create_segmenter("segformer_b0", num_classes=150)
    logits = tf.constant(SegFormerGraph(model).quarter_logits(photos(n)))
    print(f"{cpu_line()}; logits {tuple(logits.shape)} -> masks 512x512\n")
    print("| route | ms/img |\n|---|---:|")
    for k in (1, 2, 3, 4, 6, 8):
        fn = tf.function(lambda t, k=k: bilinear_argmax(t, (512, 512), candidates=k))
        print(f"| one call, {k} candidates per window | {median_ms(lambda: fn(logits).numpy(), n):.1f} |", flush=True)
    banded, size = fused_argmax(False, 150), np.array([512, 512], np.int32)
    for rows in (128, 256, 512):
        def bands():
            return [banded(logits, size, np.int32(s), np.int32(min(s + rows, 512))).numpy()
                    for s in range(0, 512, rows)]
        print(f"| predict's banded path, bands of {rows} rows (4 candidates) | {median_ms(bands, n):.1f} |", flush=True)


if __name__ == "__main__":
    main()
