"""predict's finish step where it needs more than the fused mask step: slide mode's masks and ``--save-probs``'
probabilities, in segcli's compiled loops (the default) against the same steps in TensorFlow ops
(``SEGCLI_MASK_STEP=tensorflow``), in one run.

SegFormer-B0 with 150 classes (random init, as compare_peers' contenders: no weights can be downloaded here), saved
as a ``.keras`` checkpoint and run on predict's default backend (OpenVINO where installed); JPEGs made from
samples/photos:

- slide mode (tile 512, stride 341): ``--big`` images of 1024x2048, the size of a Cityscapes frame;
- ``--save-probs``: ``--small`` images of 512x512 (each writes a 512x512x150 float16 array, 79 MB).

*In process*: a Predictor over the opened model, ms per image in total and after the forward (the finish step,
and in slide mode also the averaging of the tiles' logits, the same NumPy on both engines), the engines
alternating, median of ``--repeats`` calls after one warm-up each. *Command*: the wall time of ``segcli predict
--no-overlay`` (masks, and the probabilities' ``.npy`` files) in a fresh process with the conversion cached, the
engines alternating, median of ``--repeats``: here the compiled loops also spare the TensorFlow import. The masks
of both engines are compared.
Prints the tables with the CPU; ``--write`` also writes benchmarks/FINISH_STEP.md (one section per kind of CPU).

    .venv/bin/python benchmarks/finish_step.py --write     # about 4 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from sections import cpu_kind, cpu_line, write_section  # noqa: E402  benchmarks/sections.py

ENGINES = {"numba": "compiled loops (default)", "tensorflow": "TensorFlow ops (SEGCLI_MASK_STEP=tensorflow)"}
JOBS = {"slide": ("big", ["--mode", "slide"], "slide mode, 1024x2048, masks"),
        "probs": ("small", ["--save-probs"], "--save-probs, 512x512")}


def make_inputs(work: Path, args) -> None:
    """The checkpoint and the two image folders."""
    import cv2
    import keras

    from segcli.data.image_io import read_image
    from segcli.models.load import create_segmenter

    keras.utils.set_random_seed(0)
    create_segmenter("segformer_b0", num_classes=150).save(work / "b0.keras")
    files = sorted((HERE.parent / "samples" / "photos").iterdir())
    for folder, count, (h, w) in (("big", args.big, (1024, 2048)), ("small", args.small, (512, 512))):
        (work / folder).mkdir()
        for i in range(count):
            image = cv2.resize(read_image(files[i % len(files)]), (w, h), interpolation=cv2.INTER_LINEAR)
            cv2.imwrite(str(work / folder / f"{i}.jpg"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))


def in_process(work: Path, repeats: int) -> dict:
    """{(job, engine): (total ms/img, after-forward ms/img)}; also checks that both engines agree."""
    import cv2

    from segcli.inference.predictor import Predictor
    from segcli.inference.runners import open_model

    opened = open_model(str(work / "b0.keras"))
    forward_time = [0.0]
    forward = Predictor._forward

    def timed_forward(self, batch):
        start = time.perf_counter()
        try:
            return forward(self, batch)
        finally:
            forward_time[0] += time.perf_counter() - start

    Predictor._forward = timed_forward
    results = {}
    for job, (folder, _, _) in JOBS.items():
        seg = Predictor(opened.model, mode="slide" if job == "slide" else "whole")
        images = [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in sorted((work / folder).iterdir())]
        prepared = [seg.prepare(image) for image in images]
        samples, masks = {e: [] for e in ENGINES}, {}
        for i in range(repeats + 1):
            for engine in ENGINES:
                os.environ["SEGCLI_MASK_STEP"] = engine
                forward_time[0], start = 0.0, time.perf_counter()
                out = seg.run(prepared, probs=job == "probs")
                total = time.perf_counter() - start
                masks[engine] = [p.mask for p in out]
                if i:  # the first call of each engine warms it up
                    samples[engine].append((total, total - forward_time[0]))
        _check_same(masks, job)
        for engine, pairs in samples.items():
            results[(job, engine)] = tuple(1000 * statistics.median(p[k] for p in pairs) / len(images) for k in (0, 1))
    Predictor._forward = forward
    os.environ.pop("SEGCLI_MASK_STEP", None)
    return results


def _check_same(masks: dict, job: str) -> None:
    first, second = masks.values()
    agree = np.mean([np.mean(a == b) for a, b in zip(first, second)])
    if agree < 0.9999:
        raise SystemExit(f"{job}: the engines' masks agree on only {agree:.4%} of the pixels")


def commands(work: Path, repeats: int) -> dict:
    """{(job, engine): median wall seconds of ``segcli predict`` in a fresh process}."""
    times = {}
    for job, (folder, flags, _) in JOBS.items():
        argv = [sys.executable, "-m", "segcli.cli.app", "predict", str(work / folder), "--model",
                str(work / "b0.keras"), "--no-overlay", *flags]
        for i in range(repeats + 1):
            for engine in ENGINES if i % 2 else reversed(ENGINES):
                env, out = dict(os.environ, SEGCLI_MASK_STEP=engine), work / f"out-{job}-{engine}"
                shutil.rmtree(out, ignore_errors=True)  # predict skips the images a folder already has
                start = time.perf_counter()
                done = subprocess.run([*argv, "--out", str(out)], env=env, capture_output=True, text=True)
                if done.returncode:
                    raise SystemExit(f"segcli predict failed:\n{done.stderr[-2000:]}")
                if i:  # the first run of each warms the caches
                    times.setdefault((job, engine), []).append(time.perf_counter() - start)
    return {key: statistics.median(t) for key, t in times.items()}


def report(args) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        os.environ["SEGCLI_HOME"] = str(work / "home")
        make_inputs(work, args)
        steady = in_process(work, args.repeats)
        walls = commands(work, args.repeats)
    lines = [f"Written by `benchmarks/finish_step.py --repeats {args.repeats} --big {args.big} --small {args.small}` "
             f"on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC.", "", f"- Machine: {cpu_line()}.",
             "- SegFormer-B0, 150 classes, random init, a `.keras` checkpoint on predict's default backend; both "
             "engines' masks agree.", "",
             "| job | engine | in process, ms/img | of which after the forward | `segcli predict --no-overlay`, s |",
             "|---|---|---:|---:|---:|"]
    for job, (folder, _, label) in JOBS.items():
        count = args.big if folder == "big" else args.small
        for engine, name in ENGINES.items():
            total, after = steady[(job, engine)]
            lines.append(f"| {label} ({count} images) | {name} | {total:.1f} | {after:.1f} | "
                         f"{walls[(job, engine)]:.2f} |")
    lines.append("")
    for job, (_, _, label) in JOBS.items():
        slow, fast = walls[(job, "tensorflow")], walls[(job, "numba")]
        lines.append(f"- {label}: the command runs **{slow / fast:.2f}x** as fast with the compiled loops, "
                     f"the time after the forward "
                     f"{steady[(job, 'tensorflow')][1] / steady[(job, 'numba')][1]:.1f}x.")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--big", type=int, default=3, help="1024x2048 images for slide mode")
    parser.add_argument("--small", type=int, default=8, help="512x512 images for --save-probs")
    parser.add_argument("--write", action="store_true", help="also write benchmarks/FINISH_STEP.md")
    args = parser.parse_args()
    text = report(args)
    print(text)
    if args.write:
        path = HERE / "FINISH_STEP.md"
        if not path.exists():
            path.write_text("# predict's finish step: slide mode and --save-probs, compiled loops vs TF ops\n\n")
        write_section(path, f"## {cpu_kind()}\n\n{text}", cpu_kind(), "finish_step.py")


if __name__ == "__main__":
    main()
