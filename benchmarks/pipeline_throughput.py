"""Is the input pipeline ever the bottleneck? segcli's training pipeline alone vs the model's step rate.

On one synthetic set (``segcli data synth``, ``--images`` pairs at ``--size`` px), in one process:

- the pipeline alone: ``segcli.data.pipeline.train_dataset`` (decode once into the cache, random rescale, pad,
  crop, flip, photometric distortion, batch), iterated without a model, for each cache mode (memory, disk,
  none: decoding PNGs with TF ops on every visit); img/s after one warm-up batch;
- the model: segcli's train step (forward, backward, two AdamW updates) of ``--preset`` at the same crop and
  batch on constant tensors, img/s after one traced step.

The target (issue 13): the pipeline delivers at least 3x the model's img/s for B0 at 512 px, batch 8.
The CPU model and ISA flags are printed with the table.

    python benchmarks/pipeline_throughput.py --preset segformer_b0 --size 512 --batch 8
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))


def pipeline_rate(ds, cache, size, batch, batches, cache_dir) -> tuple:
    from segcli.data.pipeline import PairSource, train_dataset

    start = time.perf_counter()
    source = PairSource(ds, ds.splits["train"], cache=cache, cache_dir=cache_dir)
    setup = time.perf_counter() - start
    data = iter(train_dataset(ds, ds.splits["train"], epoch=0, epochs=batches + 1, seed=0, batch_size=batch,
                              steps=1, crop_hw=(size, size), source=source))
    next(data)
    start = time.perf_counter()
    for _ in range(batches):
        next(data)[0].numpy()
    return batch * batches / (time.perf_counter() - start), setup


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="segformer_b0")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--batches", type=int, default=12, help="pipeline batches timed per cache mode")
    parser.add_argument("--steps", type=int, default=3, help="model steps timed")
    args = parser.parse_args(argv)
    from sections import cpu_line
    from train_precision import make_step

    from segcli.data.folder_dataset import discover
    from segcli.data.synth import generate

    work = Path(tempfile.mkdtemp(prefix="pipeline-bench-"))
    generate(work / "data", n=args.images + 2, size=args.size, seed=0, val_fraction=2 / (args.images + 2))
    ds = discover(work / "data")
    rows = []
    for cache in ("memory", "disk", "none"):
        rate, setup = pipeline_rate(ds, cache, args.size, args.batch, args.batches, work / f"cache-{cache}")
        rows.append((f"pipeline alone, cache {cache}", rate, setup))
    step = make_step(args.preset, args.size, args.batch, "float32")
    step()
    start = time.perf_counter()
    for _ in range(args.steps):
        step().numpy()
    model_rate = args.batch * args.steps / (time.perf_counter() - start)
    print(f"CPU: {cpu_line()}; load average {os.getloadavg()[0]:.2f}\n")
    print(f"{len(ds.splits['train'])} synthetic PNGs at {args.size}x{args.size}, batch {args.batch}\n")
    print("| what | img/s | vs the model's step | one-time decode (s) |\n|---|---:|---:|---:|")
    for name, rate, setup in rows:
        print(f"| {name} | {rate:.1f} | {rate / model_rate:.1f}x | {setup:.1f} |")
    print(f"| {args.preset} train step (fp32) | {model_rate:.2f} | 1.0x | |")


if __name__ == "__main__":
    main()
