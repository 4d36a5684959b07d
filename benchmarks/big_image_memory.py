"""How much memory and time does ``segcli predict`` need for one huge image, per backend and mode?

One 8000x8000 JPEG (a sample photo enlarged) through the real command, ``segcli predict IMAGE --out DIR
--no-overlay``, in a fresh process for each cell: SegFormer-B0 with 150 classes (random init, saved as a
``.keras`` checkpoint: no weights can be downloaded here), ``--mode slide`` (tiles of 512, predict's defaults) and
``--mode whole`` (the image shrunk to ``--max-side`` 2048, the masks upsampled to 8000x8000), on predict's default
backend (OpenVINO where installed) and on ``--backend tensorflow``, at predict's default batch size and precision.

Each cell runs the command once untimed (it converts and caches the model for OpenVINO, and warms the disk cache),
then once timed. The peak is the process's own VmHWM, read as it exits, so it covers the whole command: Python,
the libraries it imported, the model, and predict. Beside it, the same command's peak on one 512x512 JPEG (the
same photo) shows what the process needs before the image's size matters. The last column says whether the
command imported TensorFlow.

    .venv/bin/python benchmarks/big_image_memory.py            # about 7 minutes on 2 cores; prints the table
    .venv/bin/python benchmarks/big_image_memory.py --write    # also writes benchmarks/PREDICT_RESULTS.md
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from sections import cpu_kind, cpu_line, write_section  # noqa: E402  benchmarks/sections.py

RESULTS = HERE / "PREDICT_RESULTS.md"
BACKENDS = {"auto": [], "tensorflow": ["--backend", "tensorflow"]}
MODES = ("slide", "whole")
#: Runs segcli's command line as installed, and on exit prints the process's peak RSS and whether TF was loaded.
CHILD = """
import atexit, json, sys

def _report():
    status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines() if ":" in line)
    sys.stderr.write("\\nSEGCLI-MEMORY " + json.dumps({"peak_kb": int(status["VmHWM"].split()[0]),
                                                      "tensorflow": "tensorflow" in sys.modules}) + "\\n")

atexit.register(_report)
sys.argv = ["segcli", *sys.argv[1:]]
from segcli.cli.app import main
main()
"""


def make_inputs(work: Path, big: int) -> dict:
    """The checkpoint, and the same photo as a 512x512 and a big x big JPEG."""
    import cv2
    import keras

    from segcli.data.image_io import read_image
    from segcli.models.load import create_segmenter

    keras.utils.set_random_seed(0)
    create_segmenter("segformer_b0", num_classes=150).save(work / "b0.keras")
    photo = read_image(HERE.parent / "samples" / "photos" / "coffee.jpg")
    images = {}
    for side in (512, big):
        path = work / f"photo_{side}.jpg"
        image = cv2.resize(photo, (side, side), interpolation=cv2.INTER_LINEAR)
        cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
        images[side] = path
    return images


def run_predict(work: Path, image: Path, backend: str, mode: str) -> dict:
    """One ``segcli predict`` in a fresh process: its peak RSS (MB), wall seconds, TF import and what ran."""
    out = work / f"out-{backend}-{mode}-{image.stem}"
    argv = [sys.executable, "-c", CHILD, "predict", str(image), "--out", str(out), "--model", str(work / "b0.keras"),
            "--no-overlay", "--overwrite", "--mode", mode, *BACKENDS[backend]]
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"segcli predict failed ({backend}, {mode}):\n{done.stderr[-2000:]}")
    line = next(x for x in reversed(done.stderr.splitlines()) if x.startswith("SEGCLI-MEMORY "))
    memory = json.loads(line.split(" ", 1)[1])
    ran = json.loads((out / ".segcli-predict.json").read_text())
    return {"peak_mb": memory["peak_kb"] / 1024, "seconds": seconds, "tensorflow": memory["tensorflow"],
            "engine": f"{ran['backend']} {ran['precision']}"}


def measure(work: Path, images: dict, big: int) -> list[dict]:
    rows = []
    for backend in BACKENDS:
        for mode in MODES:
            cell = {"backend": backend, "mode": mode}
            for side, key in ((512, "small"), (big, "big")):
                run_predict(work, images[side], backend, mode)  # untimed: converts, caches, warms
                cell[key] = run_predict(work, images[side], backend, mode)
            print(f"  {backend} {mode}: {cell}", file=sys.stderr)
            rows.append(cell)
    return rows


def report(args) -> str:
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="segcli-big-") as tmp:
        work = Path(tmp)
        os.environ["SEGCLI_HOME"] = str(work / "home")
        rows = measure(work, make_inputs(work, args.big), args.big)
    load_end = os.getloadavg()
    lines = [f"## One {args.big}x{args.big} JPEG through `segcli predict` ({cpu_kind()})", "",
             f"Written by `benchmarks/big_image_memory.py --big {args.big}` on "
             f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC.", "", f"- Machine: {cpu_line()}.",
             f"- Load average (1/5/15 min) at the start {'/'.join(f'{x:.2f}' for x in load_start)}, at the end "
             f"{'/'.join(f'{x:.2f}' for x in load_end)}.",
             "- SegFormer-B0, 150 classes, random init, a `.keras` checkpoint; `--no-overlay`, predict's default batch "
             "size and precision; each cell's second run of the command (the first converts and caches).", "",
             "| backend flag (what ran) | mode | peak RSS, one 512x512 JPEG (MB) | peak RSS, "
             f"{args.big}x{args.big} (MB) | {args.big}x{args.big} seconds | TensorFlow imported |",
             "|---|---|---:|---:|---:|---|"]
    for row in rows:
        small, big = row["small"], row["big"]
        lines.append(f"| `{row['backend']}` ({big['engine']}) | {row['mode']} | {small['peak_mb']:.0f} | "
                     f"{big['peak_mb']:.0f} | {big['seconds']:.1f} | {'yes' if big['tensorflow'] else 'no'} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--big", type=int, default=8000, help="the big image's side")
    parser.add_argument("--write", action="store_true", help=f"also write {RESULTS.name} (one section per CPU kind)")
    args = parser.parse_args()
    text = report(args)
    print(text)
    if args.write:
        if not RESULTS.exists():
            RESULTS.write_text("# predict: memory and time for one huge image\n\nWritten by "
                               "`benchmarks/big_image_memory.py --write`, one section per kind of CPU.\n\n")
        write_section(RESULTS, text, cpu_kind(), "big_image_memory")


if __name__ == "__main__":
    main()
