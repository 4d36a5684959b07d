"""bf16 against fp32 training on the same run settings: img/s and val mIoU per epoch, from `segcli train` itself.

Makes the synthetic set once (`segcli data synth DATA --n 2000 --size 128 --seed 2026 --val-fraction 0.05`), then
runs `segcli train DATA --preset segformer_b0 --scratch --image-size 128 --epochs 3 --precision P` for each P in
``--precisions`` and each seed in ``--seeds`` (seed-major, precisions interleaved, one after the other, each its
own process), and prints a Markdown table read from each run's metrics.csv, then each precision's final val mIoU
as mean, min and max over the seeds, with the CPU and its ISA. One run per precision cannot settle a 0.01 gap:
fp32 training on this CPU is not bit-reproducible, so the same command lands 0.07 apart.

    python benchmarks/train_bf16_vs_fp32.py                  # about 5 minutes on 2 cores
    python benchmarks/train_bf16_vs_fp32.py --seeds 0,1,2,3  # about 20 minutes
    python benchmarks/train_bf16_vs_fp32.py --epochs 10 --seeds 0,1,2,3  # past mIoU 0.8: about 55 minutes
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SEGCLI = [str(Path(sys.executable).parent / "segcli")]  # the console script next to this Python


def run(cmd: list, env: dict) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode:
        sys.exit(f"{' '.join(cmd)} failed:\n{done.stderr[-2000:]}")


def epochs(metrics: Path) -> list[dict]:
    with open(metrics, newline="") as f:
        return list(csv.DictReader(f))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--precisions", default="fp32,bf16")
    parser.add_argument("--seeds", default="0", help="comma-separated `segcli train --seed` values")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--work", type=Path, default=None, help="folder for the data and runs (default: a temp dir)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from sections import cpu_line

    work = args.work or Path(tempfile.mkdtemp(prefix="segcli_bf16_"))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    data = work / "synth128"
    if not data.is_dir():
        run([*SEGCLI, "data", "synth", str(data), "--n", "2000", "--size", "128", "--seed", "2026",
             "--val-fraction", "0.05"], env)
    rows, finals = [], {}
    runs = [(seed, p) for seed in args.seeds.split(",") for p in args.precisions.split(",")]
    for i, (seed, precision) in enumerate(runs):
        out = work / f"run{i}_{precision}_seed{seed}"
        started = time.strftime("%H:%M UTC", time.gmtime())
        run([*SEGCLI, "train", str(data), "--preset", "segformer_b0", "--scratch", "--image-size", "128",
             "--epochs", str(args.epochs), "--precision", precision, "--seed", seed, "--out", str(out),
             "--overwrite"], env)
        per_epoch = epochs(out / "metrics.csv")
        speed = " / ".join(f"{float(e['images_per_sec']):.1f}" for e in per_epoch)
        miou = " / ".join(f"{float(e['val_miou']):.3f}" for e in per_epoch)
        finals.setdefault(precision, []).append(float(per_epoch[-1]["val_miou"]))
        rows.append(f"| {precision} | {seed} | {started} | {speed} | {miou} |")
    print(f"{cpu_line()}; `segcli train {data.name} --preset segformer_b0 --scratch --image-size 128 --epochs "
          f"{args.epochs} --precision P --seed S`, one after the other\n")
    print("| precision | seed | started | img/s per epoch | val mIoU per epoch |\n|---|---|---|---|---|")
    print("\n".join(rows))
    print(summary(finals))


def summary(finals: dict) -> str:
    """Final val mIoU per precision over its runs: n, mean, min, max, and each mean's gap to the first precision's."""
    lines = ["\n| precision | runs | final val mIoU mean | min | max | mean - first precision's mean |",
             "|---|---:|---:|---:|---:|---:|"]
    base = None
    for precision, values in finals.items():
        mean = sum(values) / len(values)
        base = mean if base is None else base
        lines.append(f"| {precision} | {len(values)} | {mean:.3f} | {min(values):.3f} | {max(values):.3f} "
                     f"| {mean - base:+.3f} |")
    return "\n".join(lines)

if __name__ == "__main__":
    main()
