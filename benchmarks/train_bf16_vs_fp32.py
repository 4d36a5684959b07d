"""bf16 against fp32 training on the same run settings: img/s and val mIoU per epoch, from `segcli train` itself.

Makes the synthetic set once (`segcli data synth DATA --n 2000 --size 128 --seed 2026 --val-fraction 0.05`), then
runs `segcli train DATA --preset segformer_b0 --scratch --image-size 128 --epochs 3 --precision P` for each P in
``--precisions`` (one after the other, each its own process), and prints a Markdown table read from each run's
metrics.csv, with the CPU and its ISA.

    python benchmarks/train_bf16_vs_fp32.py                  # about 5 minutes on 2 cores
    python benchmarks/train_bf16_vs_fp32.py --precisions fp32,bf16,bf16 --epochs 3
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
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--work", type=Path, default=None, help="folder for the data and runs (default: a temp dir)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from train_precision import cpu_line

    work = args.work or Path(tempfile.mkdtemp(prefix="segcli_bf16_"))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    data = work / "synth128"
    if not data.is_dir():
        run([*SEGCLI, "data", "synth", str(data), "--n", "2000", "--size", "128", "--seed", "2026",
             "--val-fraction", "0.05"], env)
    rows = []
    for i, precision in enumerate(args.precisions.split(",")):
        out = work / f"run{i}_{precision}"
        started = time.strftime("%H:%M UTC", time.gmtime())
        run([*SEGCLI, "train", str(data), "--preset", "segformer_b0", "--scratch", "--image-size", "128",
             "--epochs", str(args.epochs), "--precision", precision, "--out", str(out), "--overwrite"], env)
        per_epoch = epochs(out / "metrics.csv")
        speed = " / ".join(f"{float(e['images_per_sec']):.1f}" for e in per_epoch)
        miou = " / ".join(f"{float(e['val_miou']):.3f}" for e in per_epoch)
        rows.append(f"| {precision} (started {started}) | {speed} | {miou} |")
    print(f"{cpu_line()}; `segcli train {data.name} --preset segformer_b0 --scratch --image-size 128 --epochs "
          f"{args.epochs} --precision P`, one after the other\n")
    print("| precision | img/s per epoch | val mIoU per epoch |\n|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
