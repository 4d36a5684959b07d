"""Which ``--batch-size`` makes ``segcli predict`` fastest on this CPU, end to end?

SegFormer-B0 with 150 classes (random init, saved once as a .keras file) predicts ``--images`` 512x512 JPEGs (made
from samples/photos, as in compare_peers.py) into 512x512 PNG masks, through the real command line
(`segcli predict DIR --model M --backend B --batch-size N --no-overlay --json`), each run its own process. Every
backend first gets one untimed run, which converts and caches its OpenVINO IR. Then the batch sizes run
interleaved, ``--reps`` times. Each cell is the run's img/s from predict's summary: images over the time of its
predict loop, which includes the first call at each input shape (OpenVINO's compile, TensorFlow's trace), as a
user's run does. Prints a table with the CPU and its ISA; ``--write`` also writes benchmarks/PREDICT_BATCH.md, in
the section for this kind of CPU (amx, avx512, avx2; the others are kept).

    .venv/bin/python benchmarks/predict_batch.py            # about 6 minutes on 2 cores
    .venv/bin/python benchmarks/predict_batch.py --write
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from sections import cpu_kind, write_section  # benchmarks/sections.py, next to this script

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "PREDICT_BATCH.md"


def make_model(path: Path) -> None:
    if path.is_file():
        return
    from segcli.bench.bench import build_model

    build_model("segformer_b0", 150).save(str(path))


def predict_rate(segcli: str, images: Path, model: Path, backend: str, batch: int, work: Path) -> float:
    cmd = [segcli, "predict", str(images), "--model", str(model), "--backend", backend, "--batch-size", str(batch),
           "--out", str(work / "out"), "--overwrite", "--no-overlay", "--json"]
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "SEGCLI_HOME": str(work / "home")},
                          check=True)
    return float(json.loads(done.stdout)["img_per_s"])


def measure(args) -> dict:
    sys.path.insert(0, str(HERE))
    from compare_peers import write_inputs

    work = Path(args.work)
    images = work / "images"
    if len(list(images.glob("img_*.jpg"))) != args.images:
        write_inputs(images, args.images)
    model = work / "b0_150.keras"
    make_model(model)
    segcli = str(Path(sys.executable).with_name("segcli"))
    rates: dict[tuple, list] = {}
    for backend in args.backends:
        predict_rate(segcli, images, model, backend, args.batch_sizes[0], work)  # untimed: conversion, caches
    for rep in range(args.reps):
        for backend in args.backends:
            for batch in args.batch_sizes:
                rate = predict_rate(segcli, images, model, backend, batch, work)
                rates.setdefault((backend, batch), []).append(rate)
                print(f"  rep {rep + 1} {backend} batch {batch}: {rate:.2f} img/s", flush=True)
    return rates


def render(args, rates: dict, started: str, load_start, load_end) -> str:
    from segcli.hardware import cpu_info

    cpu = cpu_info()
    lines = [
        "# segcli predict: img/s by batch size",
        "",
        f"Written by `benchmarks/predict_batch.py {' '.join(args.argv)}`".rstrip() + f" on {started}: SegFormer-B0, "
        f"150 classes (random init), {args.images} JPEGs 512x512 -> 512x512 PNG masks, `segcli predict` on the "
        f"command line, each cell its own process, batch sizes interleaved over {args.reps} repetitions.",
        "",
        f"- Machine: {cpu['cpu']}, {cpu['logical_cores']} cores, ISA {', '.join(cpu['isa'])}. Load average at the "
        f"start {'/'.join(f'{v:.2f}' for v in load_start)}, at the end {'/'.join(f'{v:.2f}' for v in load_end)}.",
        "",
        "| backend | batch | img/s per repetition | median img/s | median vs batch "
        f"{args.batch_sizes[0]} |",
        "|---|---:|---|---:|---:|",
    ]
    for backend in args.backends:
        base = statistics.median(rates[(backend, args.batch_sizes[0])])
        for batch in args.batch_sizes:
            got = rates[(backend, batch)]
            median = statistics.median(got)
            lines.append(f"| {backend} | {batch} | {', '.join(f'{r:.2f}' for r in got)} | {median:.2f} | "
                         f"{median / base:.2f}x |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--batch-sizes", default="1,4,8")
    parser.add_argument("--backends", default="auto,tensorflow")
    parser.add_argument("--work", default="/tmp/segcli_predict_batch")
    parser.add_argument("--write", action="store_true", help=f"also write {RESULTS.name}")
    args = parser.parse_args(argv)
    args.argv = list(argv if argv is not None else sys.argv[1:])
    args.batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    args.backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    started, load_start = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), os.getloadavg()
    rates = measure(args)
    report = render(args, rates, started, load_start, os.getloadavg())
    print(report)
    if args.write:
        write_section(RESULTS, report, cpu_kind(), "predict_batch.py")


if __name__ == "__main__":
    main()
