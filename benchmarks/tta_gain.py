"""What does test-time augmentation buy? val mIoU per ``--tta`` setting, from ``segcli eval`` itself.

For each model and its labelled data, runs ``segcli eval DATA --model M --backend tensorflow --tta T --json`` as a
subprocess for every setting (none, flip, three scales, both) and tabulates val mIoU, its change against no TTA,
and the views per image (each view is one forward pass: the cost). The TensorFlow backend is used so that only
``--tta`` changes between rows. No timing: on a small val set eval's img/s is mostly tracing. Writes its section
(one per kind of CPU) of ``benchmarks/RESULTS_tta.md``:

    .venv/bin/python benchmarks/tta_gain.py                     # the demo model on samples/
    .venv/bin/python benchmarks/tta_gain.py --pair samples/demo_model=samples --pair WORK/run512b=WORK/synth512
    # WORK/run512b: the B0 trained at 512 px that `bash benchmarks/trained_512_model.sh WORK` rebuilds
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from sections import cpu_kind, cpu_line, write_section

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SETTINGS = ("none", "flip", "scales=0.75,1.0,1.25", "flip,scales=0.75,1.0,1.25")


def segcli_eval(model: str, data: str, tta: str) -> dict:
    """``segcli eval --json`` for one setting, in its own process (as a user runs it)."""
    cmd = [str(Path(sys.executable).with_name("segcli")), "eval", data, "--model", model, "--backend", "tensorflow",
           "--json"] + ([] if tta == "none" else ["--tta", tta])
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    if done.returncode:
        sys.exit(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr.strip().splitlines()[-1:]}")
    return json.loads(done.stdout)


def table(model: str, data: str) -> str:
    """One markdown table: a row per setting with its views, mIoU and the change against none."""
    rows = {tta: segcli_eval(model, data, tta) for tta in SETTINGS}
    base = rows["none"]["miou"]
    lines = [f"`{model}` on `{data}` ({rows['none']['split']} split, {rows['none']['images']} images, "
             f"engine {rows['none']['engine']}):", "",
             "| `--tta` | views | val mIoU | change vs none |", "|---|---:|---:|---:|"]
    for tta, r in rows.items():
        views = (2 if "flip" in tta else 1) * (3 if "scales" in tta else 1)
        lines.append(f"| {tta} | {views} | {r['miou']:.4f} | {r['miou'] - base:+.4f} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pair", action="append", metavar="MODEL=DATA",
                        help="a model and its labelled dataset (repeatable); default samples/demo_model=samples")
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS_tta.md")
    args = parser.parse_args(argv)
    pairs = [p.split("=", 1) for p in (args.pair or ["samples/demo_model=samples"])]
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    command = " ".join(["python benchmarks/tta_gain.py", *(argv if argv is not None else sys.argv[1:])])
    tables = [table(model, data) for model, data in pairs]
    report = "\n\n".join([f"## {cpu_kind()} CPU, {started}",
                          f"Written by `{command}`. CPU: {cpu_line()}. Each row is `segcli eval DATA --model M "
                          f"--backend tensorflow --tta T --json` in its own process.", *tables])
    print(report)
    if not args.out.exists():
        args.out.write_text(f"# Test-time augmentation: val mIoU per `--tta` setting\n\n{__doc__.splitlines()[0]} "
                            f"A model named run512b is the B0 that `bash benchmarks/trained_512_model.sh WORK` "
                            f"trains at 512 px on synthetic data (RESULTS_trained.md measures the same model).\n")
    write_section(args.out, report, cpu_kind(), "tta_gain")


if __name__ == "__main__":
    main()
