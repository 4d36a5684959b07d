"""Is segcli's int8 (and bf16) really >= 1.5x its fp32, end to end? Ratios from alternating rounds.

``compare_peers.py`` runs each contender once, one after another, so a ratio between two of its rows compares
two different minutes of a shared machine: on these 2-core VMs one run of the same thing moves by 10-25 %. This
script runs only segcli's three OpenVINO routes (``segcli-ov-fp32``, ``segcli-ov-bf16``, ``segcli-ov-int8``: the
same children, inputs and work folder as ``compare_peers.py``, so the same work is timed: 512x512 JPEGs in,
512x512 PNG masks out) for ``--rounds`` rounds. Each round runs the three in a rotated order (fp32 is first in
one round of three, last in another), each at its best batch among ``--batch-sizes``. Per round it takes the
ratios against that round's fp32, end to end and forward alone; the table gives every round and the median
ratio with its range. bf16 is left out on CPUs without AMX or AVX-512 BF16.

    .venv/bin/python benchmarks/precision_rounds.py --models b0 --rounds 5
    # writes the (model, kind of CPU) section of benchmarks/RESULTS_precision.md (an AMX run adds its own)
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

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import compare_peers as peers  # noqa: E402  (sets TF's log level and allocator before anything imports TF)
from sections import cpu_kind, write_section  # noqa: E402

ROUTES = {"fp32": "segcli-ov-fp32", "bf16": "segcli-ov-bf16", "int8": "segcli-ov-int8"}
RESULTS = HERE / "RESULTS_precision.md"
HEADER = ("# segcli's bf16 and int8 against its own fp32, in alternating rounds\n\n"
          "Written by `benchmarks/precision_rounds.py`, one section per model and kind of CPU (a run replaces its own).\n")


def rotated(items: list, shift: int) -> list:
    """``items`` rotated left by ``shift``: round r of a rounds run starts with item r (mod len).

    >>> rotated(["fp32", "bf16", "int8"], 1), rotated(["fp32", "bf16", "int8"], 3)
    (['bf16', 'int8', 'fp32'], ['fp32', 'bf16', 'int8'])
    """
    shift %= len(items)
    return items[shift:] + items[:shift]


def spread(values: list[float]) -> str:
    """The median of ``values`` with their range: what the summary quotes.

    >>> spread([1.48, 1.61, 1.55])
    '1.55x (1.48-1.61x)'
    """
    return f"{statistics.median(values):.2f}x ({min(values):.2f}-{max(values):.2f}x)"


def best_batch(args, env, route: str, arch: str) -> dict:
    """The route's row at its fastest batch (one child process per batch size)."""
    rows = {batch: peers.run_contender(args, env, route, arch, batch) for batch in args.batch_sizes}
    ok, batch = peers.fastest_batch(rows)
    if not ok:
        raise SystemExit(f"{route} failed at every batch size: {next(iter(rows.values()))}")
    return {**ok[batch], "batch": batch}


def run_rounds(args, env, arch: str, precisions: list[str]) -> list[dict]:
    rounds = []
    for r in range(args.rounds):
        row = {}
        for precision in rotated(precisions, r):
            peers.log(f"[{arch}] round {r + 1}/{args.rounds}: {precision}")
            row[precision] = best_batch(args, env, ROUTES[precision], arch)
        rounds.append(row)
    return rounds


def render(arch: str, rounds: list[dict], precisions: list[str], argv: list[str], started: str, loads) -> str:
    from segcli.hardware import cpu_info

    cpu = cpu_info()
    lower = [p for p in precisions if p != "fp32"]
    head = "| round | " + " | ".join(f"{p} e2e ms/img (fwd; batch)" for p in precisions) + " | " + \
        " | ".join(f"{p} / fp32 e2e (fwd)" for p in lower) + " | max foreign |"
    lines = [f"## SegFormer-{arch.upper()} on {cpu_kind()}, 512x512 JPEGs -> PNG masks, {len(rounds)} rounds", "",
             f"`benchmarks/precision_rounds.py {' '.join(argv)}`, {started}. {cpu['cpu']}, {cpu['logical_cores']} "
             f"cores, ISA {', '.join(cpu['isa'])}. Load average {'/'.join(f'{v:.2f}' for v in loads[0])} at the "
             f"start, {'/'.join(f'{v:.2f}' for v in loads[1])} at the end. Each cell: the route's quietest pass at "
             f"its best batch (compare_peers' children), and the forward timed right after that pass.", "",
             head, "|---:|" + "---:|" * (len(precisions) + len(lower) + 1)]
    for i, row in enumerate(rounds, 1):
        cells = [f"{row[p]['ms_per_img']:.1f} ({row[p]['forward']:.1f}; {row[p]['batch']})" for p in precisions]
        ratios = [f"{row['fp32']['ms_per_img'] / row[p]['ms_per_img']:.2f}x "
                  f"({row['fp32']['forward'] / row[p]['forward']:.2f}x)" for p in lower]
        foreign = max(row[p]["foreign_cores"] for p in precisions)
        lines.append(f"| {i} | " + " | ".join(cells + ratios) + f" | {foreign:.2f} |")
    lines.append("")
    for p in lower:
        e2e = [row["fp32"]["ms_per_img"] / row[p]["ms_per_img"] for row in rounds]
        fwd = [row["fp32"]["forward"] / row[p]["forward"] for row in rounds]
        target = f"; {sum(v >= 1.5 for v in e2e)} of {len(e2e)} rounds at >= 1.5x end to end (issue 12's int8 " \
            f"target)" if p == "int8" else ""
        lines.append(f"- **{p} against fp32, median over rounds (range): end to end {spread(e2e)}, forward "
                     f"{spread(fwd)}**{target}.")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="b0", help="comma list of b0, b2")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch-sizes", default="1,4")
    parser.add_argument("--images", type=int, default=8, help="JPEGs per pass (a multiple of every batch size)")
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--max-foreign", type=float, default=0.3)
    parser.add_argument("--retries", type=int, default=0)
    parser.add_argument("--max-wait", type=float, default=20)
    parser.add_argument("--work", default="/tmp/segcli_peers", help="compare_peers.py's work folder (reused)")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    args.batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    args.compile_timeout = 300
    from segcli.hardware import has_bf16

    precisions = ["fp32", "bf16", "int8"] if has_bf16() else ["fp32", "int8"]
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "SEGCLI_HOME": str(work / "home")}
    kind, out = cpu_kind(), Path(args.out) if args.out else None
    if out and not out.is_file():
        out.write_text(HEADER)
    for arch in [m.strip() for m in args.models.split(",") if m.strip()]:
        subprocess.run([sys.executable, peers.__file__, "--setup", "--arch", arch, "--work", str(work),
                        "--images", str(args.images)], check=True, env=env)
        started, load_start = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), os.getloadavg()
        rounds = run_rounds(args, env, arch, precisions)
        report = render(arch, rounds, precisions, peers.shown_argv(argv), started, (load_start, os.getloadavg()))
        (work / f"precision_rounds_{arch}.json").write_text(json.dumps(rounds, indent=1, default=str))
        print(report)
        if out:  # one section per model and kind of CPU: a run replaces only its own
            write_section(out, report, kind, f"precision_rounds {arch}")
            peers.log(f"wrote the {kind} {arch} section of {out}")


if __name__ == "__main__":
    main()
