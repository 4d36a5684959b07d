"""How long segcli's commands take on small jobs, where start-up is most of the time: with and without AutoGraph.

segcli traces its TensorFlow functions without AutoGraph (segcli/graph_function.py); ``SEGCLI_AUTOGRAPH=1`` turns
it back on. Each cell is one fresh process of the command below, the two settings interleaved over ``--reps``
repetitions; the table gives the median wall time of each and the difference. The first row is the floor every
command that runs a model pays: starting Python and importing TensorFlow and Keras.

- ``segcli predict samples/val/images samples/photos --model samples/demo_model`` (the README's first command) on
  the default backend (OpenVINO where it is installed; after the untimed run it opens the cached conversion without
  importing TensorFlow, so AutoGraph does not apply) and on ``--backend tensorflow``;
- ``segcli eval samples --model samples/demo_model``;
- ``segcli train --scratch --epochs 1 --image-size 64``: B0 on 24 ``segcli data synth`` images of 64x64 (batch 8).

Prints a table with the CPU and its ISA; ``--write`` also writes benchmarks/STARTUP.md, in the section for this kind
of CPU (amx, avx512, avx2; the others are kept).

    .venv/bin/python benchmarks/startup.py            # about 5 minutes on 2 cores
    .venv/bin/python benchmarks/startup.py --write
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from sections import cpu_line, cpu_kind, write_section  # benchmarks/sections.py, next to this script

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "STARTUP.md"
SETTINGS = {"0": "without AutoGraph (segcli's default)", "1": "with AutoGraph (SEGCLI_AUTOGRAPH=1)"}


def commands(work: Path) -> dict:
    """{row name: argv} of the timed commands (each writes under ``work``)."""
    segcli = str(Path(sys.executable).with_name("segcli"))
    demo, samples = str(ROOT / "samples" / "demo_model"), ROOT / "samples"
    predict = [segcli, "predict", str(samples / "val" / "images"), str(samples / "photos"), "--model", demo,
               "--out", str(work / "out"), "--overwrite", "--json"]
    return {
        "python + import tensorflow, keras (the floor)": [sys.executable, "-c", "import tensorflow, keras"],
        "segcli predict, 18 sample images, default backend": predict,
        "segcli predict, 18 sample images, --backend tensorflow": predict + ["--backend", "tensorflow"],
        "segcli eval samples (12 images)": [segcli, "eval", str(samples), "--model", demo, "--json"],
        "segcli train, B0 from scratch, 1 epoch, 24 images 64x64": [
            segcli, "train", str(work / "synth"), "--preset", "mit_b0", "--scratch", "--epochs", "1",
            "--image-size", "64", "--out", str(work / "run"), "--json"],
    }


def run(cmd: list, setting: str, work: Path) -> float:
    """Wall seconds of ``cmd`` in a fresh process with ``SEGCLI_AUTOGRAPH=setting``."""
    shutil.rmtree(work / "run", ignore_errors=True)
    env = {**os.environ, "SEGCLI_AUTOGRAPH": setting, "SEGCLI_HOME": str(work / "home"), "TF_CPP_MIN_LOG_LEVEL": "3"}
    start = time.perf_counter()
    done = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    seconds = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed with exit code {done.returncode}:\n{done.stderr[-2000:]}")
    return seconds


def prepare(work: Path, found: dict) -> None:
    """The synthetic training set, and one untimed run of each command (OpenVINO's cache, the page cache)."""
    work.mkdir(parents=True, exist_ok=True)
    if not (work / "synth").is_dir():
        segcli = str(Path(sys.executable).with_name("segcli"))
        subprocess.run([segcli, "data", "synth", str(work / "synth"), "--n", "30", "--size", "64"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for cmd in found.values():
        run(cmd, "0", work)


def measure(args, found: dict, work: Path) -> dict:
    cells: dict[tuple, list] = {}
    for rep in range(args.reps):
        for name, cmd in found.items():
            for setting in (SETTINGS if rep % 2 == 0 else reversed(list(SETTINGS))):
                seconds = run(cmd, setting, work)
                cells.setdefault((name, setting), []).append(seconds)
                print(f"  rep {rep + 1} {name}, {SETTINGS[setting]}: {seconds:.2f} s", flush=True)
    return cells


def render(args, found: dict, cells: dict, started: str, load: tuple) -> str:
    lines = [
        "# Start-up: segcli's commands on small jobs, with and without AutoGraph",
        "",
        f"Written by `benchmarks/startup.py {' '.join(args.argv)}`".rstrip() + f" on {started}. Each cell is a fresh "
        f"process; the two settings interleaved (order alternating) over {args.reps} repetitions; medians of wall "
        "time, after one untimed run of each command.",
        "",
        f"- Machine: {cpu_line()}. Load average at the start {'/'.join(f'{v:.2f}' for v in load[0])}, at the end "
        f"{'/'.join(f'{v:.2f}' for v in load[1])}.",
        "",
        "| command | without AutoGraph (default) s | with AutoGraph s | saved s | with / without |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in found:
        off, on = (statistics.median(cells[(name, s)]) for s in SETTINGS)
        lines.append(f"| {name} | {off:.2f} | {on:.2f} | {on - off:.2f} | {on / off:.2f}x |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--work", default="/tmp/segcli_startup")
    parser.add_argument("--write", action="store_true", help=f"also write {RESULTS.name}")
    args = parser.parse_args(argv)
    args.argv = list(argv if argv is not None else sys.argv[1:])
    work = Path(args.work)
    found = commands(work)
    started, load_start = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), os.getloadavg()
    prepare(work, found)
    cells = measure(args, found, work)
    report = render(args, found, cells, started, (load_start, os.getloadavg()))
    print(report)
    if args.write:
        write_section(RESULTS, report, cpu_kind(), "startup.py")


if __name__ == "__main__":
    main()
