"""How much does `segcli predict` cost on top of the network's forward pass, and how much memory does slide
mode need for a huge image?

1. Overhead: a folder of 512x512 JPEGs, SegFormer-B0 with 150 classes (random init: the timing is the same as
   with trained weights). The forward pass is timed the way `segcli bench` times it
   (`segcli.bench.bench.forward_function`, full-resolution softmax output); predict is timed end to end with
   `segcli.inference.predict.run_predict` (read, resize, infer, upsample, argmax, write masks and overlays) after
   one untimed pass that traces the network. Goal: overhead <= 10%.
2. Memory: one 8000x8000 image through `segcli predict --mode slide` (and `--mode whole`) in a fresh process,
   B0 with 150 classes; peak RSS from getrusage, next to the same process's RSS just before predicting.

    .venv/bin/python benchmarks/predict_overhead.py                 # both, prints tables
    .venv/bin/python benchmarks/predict_overhead.py --write         # also writes benchmarks/PREDICT_RESULTS.md
    .venv/bin/python benchmarks/predict_overhead.py --skip-memory   # overhead only (about a minute)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "PREDICT_RESULTS.md"


def rss_mb() -> float:
    """Peak RSS of this process (VmHWM: ru_maxrss would include a parent's peak across fork + exec)."""
    from segcli.bench.bench import peak_rss_mb

    return peak_rss_mb()


def current_rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def smooth_image(h: int, w: int, seed: int) -> np.ndarray:
    import cv2

    rng = np.random.default_rng(seed)
    small = rng.uniform(0, 255, (max(2, h // 32), max(2, w // 32), 3)).astype(np.float32)
    image = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    image += rng.normal(0, 6, (h, w, 3)).astype(np.float32) if h * w <= 4096 * 4096 else 0
    return np.clip(image, 0, 255).astype(np.uint8)


def write_images(folder: Path, count: int, size: int) -> None:
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        cv2.imwrite(str(folder / f"img_{i:04d}.jpg"), smooth_image(size, size, i)[:, :, ::-1],
                    [cv2.IMWRITE_JPEG_QUALITY, 90])


def measure_overhead(args) -> dict:
    import tensorflow as tf

    from segcli.bench.bench import build_model, forward_function, latency_stats, time_forward
    from segcli.inference.runners import OpenedModel
    from segcli.classes import ClassTable
    from segcli.inference.predict import PredictOptions, run_predict

    model = build_model(args.preset, args.num_classes)
    classes = ClassTable.from_names([]).complete(args.num_classes)
    source = OpenedModel(model, classes, f"{args.preset} (random init)", None)
    batch, size = args.batch_size, args.size
    images = tf.random.uniform((batch, size, size, 3), 0.0, 255.0, seed=1)
    fn = forward_function(model, batch, size, size)
    forward = latency_stats(time_forward(fn, images, warmup=2, iters=args.iters), batch)

    rows = []
    with tempfile.TemporaryDirectory(prefix="segcli-predict-bench-") as tmp:
        folder = Path(tmp) / "images"
        write_images(folder, args.images, size)
        for label, overlay in (("masks + overlays", True), ("masks only", False)):
            options = PredictOptions(out=Path(tmp) / "out", batch_size=batch, overlay=overlay)
            run_predict([str(folder)], source, options)  # untimed: traces the network, warms the caches
            options.overwrite = True
            start = time.perf_counter()
            summary = run_predict([str(folder)], source, options)
            seconds = time.perf_counter() - start
            written = summary["count"]["written"]
            img_s = written / seconds
            rows.append({"what": f"segcli predict ({label})", "images": written, "img_per_s": round(img_s, 2),
                         "ms_per_image": round(1000 / img_s, 1),
                         "overhead_pct": round(100 * (forward["img_per_s"] / img_s - 1), 1)})
    return {"preset": args.preset, "num_classes": args.num_classes, "size": size, "batch_size": batch,
            "forward": {"img_per_s": forward["img_per_s"], "ms_per_image": round(1000 / forward["img_per_s"], 1),
                        "latency_ms_p50": forward["latency_ms_p50"]},
            "predict": rows, "peak_rss_mb": round(rss_mb(), 1)}


def child_memory(args) -> None:
    """Runs in a fresh process: one big image through run_predict; prints JSON."""
    from segcli.bench.bench import build_model
    from segcli.inference.runners import OpenedModel
    from segcli.classes import ClassTable
    from segcli.inference.predict import PredictOptions, run_predict

    model = build_model(args.preset, args.num_classes)
    classes = ClassTable.from_names([]).complete(args.num_classes)
    source = OpenedModel(model, classes, args.preset, None)
    before = current_rss_mb()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="segcli-rss-") as tmp:
        summary = run_predict([args.child_image], source, PredictOptions(out=Path(tmp), mode=args.child_mode,
                                                                         batch_size=args.batch_size))
    seconds = time.perf_counter() - start
    assert summary["count"]["written"] == 1, summary
    print(json.dumps({"mode": args.child_mode, "rss_before_mb": round(before, 1),
                      "peak_rss_mb": round(rss_mb(), 1), "seconds": round(seconds, 1)}))


def measure_memory(args) -> list[dict]:
    import cv2

    results = []
    with tempfile.TemporaryDirectory(prefix="segcli-big-") as tmp:
        image_path = Path(tmp) / "big_8000.jpg"
        cv2.imwrite(str(image_path), smooth_image(args.big, args.big, 0)[:, :, ::-1],
                    [cv2.IMWRITE_JPEG_QUALITY, 90])
        for mode in args.memory_modes.split(","):
            cmd = [sys.executable, __file__, "--child-image", str(image_path), "--child-mode", mode,
                   "--preset", args.preset, "--num-classes", str(args.num_classes), "--batch-size",
                   str(args.batch_size)]
            done = subprocess.run(cmd, capture_output=True, text=True, check=True)
            row = json.loads(done.stdout.strip().splitlines()[-1])
            row["image"] = f"{args.big}x{args.big}"
            results.append(row)
            print(f"  {mode}: {row}", file=sys.stderr)
    return results


def render(overhead: dict | None, memory: list | None) -> str:
    import platform

    lines = ["# predict: end-to-end overhead and big-image memory", "",
             f"Written by `benchmarks/predict_overhead.py` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
             f"{os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), shared with other jobs, so "
             f"absolute numbers are noisy.", ""]
    if overhead:
        f = overhead["forward"]
        lines += [f"## Overhead: {overhead['preset']}, {overhead['num_classes']} classes, "
                  f"{overhead['size']}x{overhead['size']} JPEGs, batch {overhead['batch_size']}", "",
                  "| what | img/s | ms/image | overhead vs forward |", "|---|---:|---:|---:|",
                  f"| forward pass only (as `segcli bench`) | {f['img_per_s']} | {f['ms_per_image']} | - |"]
        for row in overhead["predict"]:
            lines.append(f"| {row['what']}, {row['images']} images | {row['img_per_s']} | {row['ms_per_image']} | "
                         f"{row['overhead_pct']:+.1f}% |")
        lines.append("")
    if memory:
        lines += ["## Peak memory for one 8000x8000 image (B0, 150 classes)", "",
                  "| mode | RSS before predict (MB) | peak RSS (MB) | seconds |", "|---|---:|---:|---:|"]
        for row in memory:
            lines.append(f"| {row['mode']} | {row['rss_before_mb']} | {row['peak_rss_mb']} | {row['seconds']} |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="segformer_b0")
    parser.add_argument("--num-classes", type=int, default=150)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--big", type=int, default=8000)
    parser.add_argument("--memory-modes", default="slide,whole")
    parser.add_argument("--skip-overhead", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--write", action="store_true", help=f"write {RESULTS.name}")
    parser.add_argument("--child-image", help=argparse.SUPPRESS)
    parser.add_argument("--child-mode", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_image:
        child_memory(args)
        return
    overhead = None if args.skip_overhead else measure_overhead(args)
    memory = None if args.skip_memory else measure_memory(args)
    text = render(overhead, memory)
    print(text)
    if args.write:
        RESULTS.write_text(text + "\n")


if __name__ == "__main__":
    main()
