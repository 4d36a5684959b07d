"""predict's mask step (bilinear upsample fused with argmax) on real models' logits: the compiled loop (Numba,
segcli's default) against the same step in TensorFlow ops (``SEGCLI_MASK_STEP=tensorflow``), in one run.

Two kinds of logits, from ``--images`` 512x512 photos made from samples/photos, through predict's own entry point
(``fused_argmax``) at batch 1, 4 and 8, 512x512 masks out:

- SegFormer-B0 with 150 classes, random init (as compare_peers' contenders: no weights can be downloaded here);
  its near-tied logits leave about half the windows with several rival classes, the slow case;
- the bundled demo model (trained, 5 classes).

Each engine is checked to give the same masks as ``tf.image.resize`` + argmax first. Timing: the engines
alternate call by call, median of ``--repeats``, ms per image. The compiled loop also runs on one thread, to show
what the second thread adds. Prints the table with the CPU; ``--write`` also writes benchmarks/MASK_STEP.md (one
section per kind of CPU).

    .venv/bin/python benchmarks/mask_step.py --write     # about 2 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from sections import cpu_kind, cpu_line, write_section  # noqa: E402  benchmarks/sections.py


def photos(n: int, size: int = 512) -> np.ndarray:
    import cv2

    from segcli.data.image_io import read_image

    files = sorted((ROOT / "samples" / "photos").iterdir())
    return np.stack([cv2.resize(read_image(files[i % len(files)]), (size, size)) for i in range(n)])


def model_logits(images: np.ndarray) -> dict:
    """{label: quarter-resolution logits} of the two models on ``images``."""
    from segcli.models.load import create_segmenter
    from segcli.models.segformer.graph import SegFormerGraph

    b0 = create_segmenter("segformer_b0", num_classes=150)
    demo = create_segmenter(str(ROOT / "samples" / "demo_model"))
    return {"SegFormer-B0, 150 classes, random init": SegFormerGraph(b0).quarter_logits(images),
            f"demo model (trained), {demo.num_classes} classes": SegFormerGraph(demo).quarter_logits(images)}


def routes(num_classes: int) -> dict:
    """{row name: f(logits) -> masks} for predict's two engines, and the compiled loop on one thread."""
    from segcli.inference.finish import fused_argmax
    from segcli.inference.mask_kernel import bilinear_argmax

    compiled, traced = fused_argmax(False, num_classes, "numba"), fused_argmax(False, num_classes, "tensorflow")
    return {"TensorFlow ops (SEGCLI_MASK_STEP=tensorflow)": lambda v: traced(v, (512, 512), 0, 512),
            "compiled loop (default)": lambda v: compiled(v, (512, 512), 0, 512),
            "compiled loop, 1 thread": lambda v: bilinear_argmax(v, (512, 512), dtype=np.uint8, threads=1)}


def time_routes(fns: dict, logits: np.ndarray, repeats: int) -> dict:
    """{name: median ms per image}, the routes alternating call by call after a checked warm-up call each."""
    import tensorflow as tf

    reference = tf.argmax(tf.image.resize(logits, (512, 512)), -1).numpy()
    for name, fn in fns.items():
        if not np.array_equal(fn(logits), reference):
            raise SystemExit(f"{name}: masks differ from tf.image.resize + argmax")
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn(logits)
            times[name].append(time.perf_counter() - start)
    return {name: 1000 * statistics.median(t) / len(logits) for name, t in times.items()}


def report(args) -> str:
    images = photos(max(args.batches))
    lines = [f"Written by `benchmarks/mask_step.py --repeats {args.repeats}` on "
             f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC.", "", f"- Machine: {cpu_line()}.",
             f"- ms per image for quarter-resolution logits -> 512x512 uint8 masks; median of {args.repeats} calls "
             "per route, the routes alternating; every route's masks equal tf.image.resize + argmax.", ""]
    for label, logits in model_logits(images).items():
        fns = routes(logits.shape[-1])
        lines += [f"### {label}", "", "| route | " + " | ".join(f"batch {b}" for b in args.batches) + " |",
                  "|---|" + "---:|" * len(args.batches)]
        columns = [time_routes(fns, np.ascontiguousarray(logits[:b]), args.repeats) for b in args.batches]
        for name in fns:
            lines.append(f"| {name} | " + " | ".join(f"{c[name]:.2f}" for c in columns) + " |")
        tf_row, loop_row = columns[-1][list(fns)[0]], columns[-1][list(fns)[1]]
        lines += ["", f"Compiled loop at batch {args.batches[-1]}: **{tf_row / loop_row:.1f}x** faster than the "
                      "TensorFlow ops.", ""]
        print("\n".join(lines[-len(fns) - 6:]), flush=True)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--batches", type=lambda s: [int(b) for b in s.split(",")], default=[1, 4, 8])
    parser.add_argument("--write", action="store_true", help="also write benchmarks/MASK_STEP.md")
    args = parser.parse_args()
    text = report(args)
    print(text)
    if args.write:
        header = "# predict's mask step: compiled loop vs TensorFlow ops\n\n"
        path = Path(__file__).resolve().parent / "MASK_STEP.md"
        if not path.exists():
            path.write_text(header)
        write_section(path, f"## {cpu_kind()}\n\n{text}", cpu_kind(), "mask_step.py")


if __name__ == "__main__":
    main()
