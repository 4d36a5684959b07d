"""TensorFlow's default CPU allocator against its BFC allocator, which segcli now asks for (segcli/tf_allocator.py).

TensorFlow's default depends on the CPU: plain ``malloc`` where its oneDNN ops are off (by default, CPUs without
AVX-512 VNNI/BF16 or AMX), oneDNN's BFC-based allocator where they are on. The report names the one in use.

Each cell runs in its own process with ``TF_CPU_ALLOCATOR_USE_BFC`` set to ``false`` (TensorFlow's default) or
``true``, the two interleaved over ``--reps`` repetitions:

- **train step**: one SegFormer-B0 training step (forward, loss, gradients, AdamW) at 512x512, batch 8, 5 classes,
  random init: the median of ``--steps`` steps after 2 untimed ones, in ms per step;
- **segcli predict**: `segcli predict DIR --backend tensorflow --batch-size N --no-overlay --json` on ``--images``
  512x512 JPEGs (SegFormer-B0, 150 classes, random init, as in predict_batch.py), in img/s from predict's summary.

Each cell also gives the process's system CPU time (the kernel's share, where page faults are counted) and its peak
resident memory, from ``os.wait4``. Prints a table with the CPU and its ISA; ``--write`` also writes
benchmarks/TF_ALLOCATOR.md, in the section for this kind of CPU (amx, avx512, avx2; the others are kept).

    .venv/bin/python benchmarks/tf_allocator.py            # about 7 minutes on 2 cores
    .venv/bin/python benchmarks/tf_allocator.py --write
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

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "TF_ALLOCATOR.md"
SETTINGS = {"false": "TensorFlow's default", "true": "BFC (segcli's default)"}


def child_train_step(steps: int) -> None:
    """Runs in the child: prints the median ms of one B0 training step at 512 px, batch 8."""
    sys.path.insert(0, str(HERE))
    from train_precision import make_step

    step = make_step("segformer_b0", 512, 8, "float32")
    for _ in range(2):
        step().numpy()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step().numpy()
        times.append(time.perf_counter() - start)
    print(json.dumps({"value": 1000 * statistics.median(times)}))


def run_child(cmd: list, setting: str, env: dict | None = None) -> tuple[str, float, float]:
    """(stdout, system CPU s, peak RSS MB) of ``cmd`` run with the allocator ``setting``."""
    env = {**(env or os.environ), "TF_CPU_ALLOCATOR_USE_BFC": setting, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed with exit code {proc.returncode}")
    return out, usage.ru_stime, usage.ru_maxrss / 1024


def workloads(args) -> dict:
    """{name: (unit, function(setting) -> (value, system CPU s, peak RSS MB))}."""
    sys.path.insert(0, str(HERE))
    from compare_peers import write_inputs
    from predict_batch import make_model

    work = Path(args.work)
    images, model = work / "images", work / "b0_150.keras"
    if len(list(images.glob("img_*.jpg"))) != args.images:
        write_inputs(images, args.images)
    make_model(model)
    segcli = str(Path(sys.executable).with_name("segcli"))

    def train(setting):
        out, sys_s, rss = run_child([sys.executable, __file__, "--child-train", str(args.steps)], setting)
        return json.loads(out.strip().splitlines()[-1])["value"], sys_s, rss

    def predict(batch):
        def run(setting):
            cmd = [segcli, "predict", str(images), "--model", str(model), "--backend", "tensorflow", "--batch-size",
                   str(batch), "--out", str(work / "out"), "--overwrite", "--no-overlay", "--json"]
            out, sys_s, rss = run_child(cmd, setting, {**os.environ, "SEGCLI_HOME": str(work / "home")})
            return float(json.loads(out)["img_per_s"]), sys_s, rss
        return run

    found = {"train step, B0, 512 px, batch 8": ("ms/step", train)}
    for batch in args.batch_sizes:
        found[f"segcli predict, tensorflow, {args.images} JPEGs 512x512, batch {batch}"] = ("img/s", predict(batch))
    return found


def measure(args, found: dict) -> dict:
    cells: dict[tuple, list] = {}
    for rep in range(args.reps):
        for name, (unit, fn) in found.items():
            for setting in SETTINGS:
                value, sys_s, rss = fn(setting)
                cells.setdefault((name, setting), []).append((value, sys_s, rss))
                print(f"  rep {rep + 1} {name}, {SETTINGS[setting]}: {value:.1f} {unit}, system CPU {sys_s:.1f} s, "
                      f"peak RSS {rss:.0f} MB", flush=True)
    return cells


def tensorflow_default() -> str:
    """What ``TF_CPU_ALLOCATOR_USE_BFC=false`` gives on this CPU, asked of a fresh TensorFlow process."""
    probe = "from segcli.bench.sysinfo import framework_info; print(framework_info()['tf_allocator'])"
    out, _, _ = run_child([sys.executable, "-c", probe], "false")
    name = out.strip().splitlines()[-1]
    return {"malloc": "plain malloc (TensorFlow's oneDNN ops are off)",
            "onednn-bfc": "oneDNN's BFC-based allocator (TensorFlow's oneDNN ops are on)"}.get(name, name)


def render(args, found: dict, cells: dict, started: str, load: tuple) -> str:
    from segcli.hardware import cpu_info

    cpu = cpu_info()
    lines = [
        "# TensorFlow's CPU allocator: default against BFC",
        "",
        f"Written by `benchmarks/tf_allocator.py {' '.join(args.argv)}`".rstrip() + f" on {started}. Each cell is "
        f"its own process; the two allocators interleaved over {args.reps} repetitions; medians.",
        "",
        f"- Machine: {cpu['cpu']}, {cpu['logical_cores']} cores, ISA {', '.join(cpu['isa'])}. Load average at the "
        f"start {'/'.join(f'{v:.2f}' for v in load[0])}, at the end {'/'.join(f'{v:.2f}' for v in load[1])}.",
        f"- TensorFlow's default allocator on this CPU: {tensorflow_default()}.",
        "",
        "| workload | default | BFC | BFC speed-up | system CPU s, default / BFC | peak RSS MB, default / BFC |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, (unit, _) in found.items():
        default, bfc = ([statistics.median(c[i] for c in cells[(name, s)]) for i in range(3)] for s in SETTINGS)
        speedup = default[0] / bfc[0] if unit.startswith("ms") else bfc[0] / default[0]
        lines.append(f"| {name} | {default[0]:.1f} {unit} | {bfc[0]:.1f} {unit} | {speedup:.2f}x | "
                     f"{default[1]:.1f} / {bfc[1]:.1f} | {default[2]:.0f} / {bfc[2]:.0f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--batch-sizes", default="1,4")
    parser.add_argument("--work", default="/tmp/segcli_tf_allocator")
    parser.add_argument("--write", action="store_true", help=f"also write {RESULTS.name}")
    parser.add_argument("--child-train", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child_train:
        return child_train_step(args.child_train)
    args.argv = list(argv if argv is not None else sys.argv[1:])
    args.batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    started, load_start = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), os.getloadavg()
    found = workloads(args)
    cells = measure(args, found)
    report = render(args, found, cells, started, (load_start, os.getloadavg()))
    print(report)
    if args.write:
        write_section(RESULTS, report, cpu_kind(), "tf_allocator.py")


if __name__ == "__main__":
    main()
