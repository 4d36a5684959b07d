"""Two ways to write the folded head's classifier in the OpenVINO IR, timed on this CPU in one run.

segcli's IR sums the head's levels channels-first (``segcli/export/openvino_head.py``). On CPUs with AVX-512
OpenVINO's CPU plugin keeps that sum in a channels-last memory layout and the Transposes cost nothing
(benchmarks/NOTES.md row 21). On a CPU with AVX2 only, its jit Interpolate runs in planar (NCHW) layout, so the sum
is planar. The IR until 2026-12-08 transposed the sum to channels-last for the classifier's MatMul, and that
Transpose of 256 channels ran on a generic kernel; segcli's IR now writes the classifier as a 1x1 Convolution on
the channels-first sum, then transposes the logits. This script times both (NOTES.md row 34).

SegFormer-B0, 150 classes, random init, one 512x512 uint8 image, batch 1, fp32 (``INFERENCE_PRECISION_HINT``
f32), both IRs compiled in this process; the variants alternate round by round, each round a warm-up of 2 calls
and the median of 5. Also checks that both give the same logits, and lists the per-layer time of the head's
layout work (OpenVINO's profiling counters). Prints the table with the CPU; ``--write`` also writes
benchmarks/OV_HEAD_TAIL.md (one section per kind of CPU).

    .venv/bin/python benchmarks/ov_head_tail.py --rounds 11 --write     # about a minute on 2 cores
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from sections import cpu_kind, cpu_line, write_section  # noqa: E402  benchmarks/sections.py

LAYOUT_WORK = ("Transpose", "Reorder", "Interpolate", "FullyConnected", "Convolution")


def matmul_classifier(x, head):
    """``openvino_head.classifier`` as it was until 2026-12-08: a Transpose to channels-last, then a MatMul."""
    import openvino.opset13 as ops

    x = ops.transpose(x, ops.constant(np.array((0, 2, 3, 1), np.int64)))
    x = ops.matmul(x, ops.constant(head.classifier_kernel.astype(np.float32)), False, False)
    return ops.add(x, ops.constant(head.classifier_bias.astype(np.float32)))


def build_irs() -> dict:
    """segcli's IR and the MatMul variant of the same random-init B0."""
    import keras

    from segcli.export import openvino_format, openvino_head
    from segcli.models.load import create_segmenter
    from segcli.models.segformer.graph import SegFormerGraph

    keras.utils.set_random_seed(0)
    graph = SegFormerGraph(create_segmenter("segformer_b0", num_classes=150))
    irs = {"1x1 Convolution, then Transpose (segcli's IR)": openvino_format.convert(graph, "fp32")}
    current = openvino_head.classifier
    openvino_head.classifier = matmul_classifier
    try:
        irs["MatMul after a Transpose (until 2026-12-08)"] = openvino_format.convert(graph, "fp32")
    finally:
        openvino_head.classifier = current
    return irs


def compile_at_512(ir, profile: bool = False):
    import openvino as ov

    ir.reshape({ir.inputs[0].get_any_name(): [1, 512, 512, 3]})
    config = {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": 2, "PERF_COUNT": profile}
    return ov.Core().compile_model(ir, "CPU", config).create_infer_request()


def timed_rounds(requests: dict, image, rounds: int) -> dict:
    times = {name: [] for name in requests}
    for _ in range(rounds):
        for name, request in requests.items():
            for _ in range(2):
                request.infer({0: image})
            calls = []
            for _ in range(5):
                start = time.perf_counter()
                request.infer({0: image})
                calls.append((time.perf_counter() - start) * 1e3)
            times[name].append(statistics.median(calls))
    return times


def layout_work(ir, image) -> str:
    """Per-layer ms of the layout-related layers, summed by layer and kernel, largest first."""
    request = compile_at_512(ir, profile=True)
    for _ in range(4):
        request.infer({0: image})
    totals = {}
    for layer in request.profiling_info:
        if layer.node_type in LAYOUT_WORK:
            key = f"{layer.node_type} ({layer.exec_type})"
            totals[key] = totals.get(key, 0.0) + layer.real_time.total_seconds() * 1e3
    return ", ".join(f"{key} {ms:.1f}" for key, ms in sorted(totals.items(), key=lambda kv: -kv[1]) if ms >= 0.1)


def report(irs: dict, rounds: int) -> str:
    image = np.random.default_rng(0).integers(0, 256, (1, 512, 512, 3), np.uint8)
    requests = {name: compile_at_512(ir.clone()) for name, ir in irs.items()}
    logits = [request.infer({0: image})[0].copy() for request in requests.values()]
    diff = float(np.abs(logits[0] - logits[1]).max())
    times = timed_rounds(requests, image, rounds)
    lines = ["### OpenVINO B0 forward at 512x512, fp32, batch 1: the head's classifier written two ways",
             "", f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {cpu_line()}; load average "
             f"{' / '.join(f'{x:.2f}' for x in os.getloadavg())} at the end. {rounds} alternating rounds; logits "
             f"of the two IRs differ by at most {diff:.2e}.", "",
             "| classifier | forward ms, median of rounds | rounds | layout work per layer (ms, one profiled call) |",
             "|---|---:|---|---|"]
    for name, ir in irs.items():
        rounds_text = " / ".join(f"{t:.1f}" for t in times[name])
        work = layout_work(ir.clone(), image)
        lines.append(f"| {name} | {statistics.median(times[name]):.1f} | {rounds_text} | {work} |")
    conv, matmul = (statistics.median(t) for t in times.values())
    faster = sum(c < m for c, m in zip(*times.values()))
    lines += ["", f"segcli's IR (1x1 Convolution) against the MatMul: {matmul / conv:.2f}x (above 1: the Convolution "
              f"is faster); faster in {faster} of {rounds} rounds."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--write", action="store_true", help="write benchmarks/OV_HEAD_TAIL.md's section")
    args = parser.parse_args()
    text = report(build_irs(), args.rounds)
    print(text)
    if args.write:
        path = HERE / "OV_HEAD_TAIL.md"
        if not path.exists():
            path.write_text("# The folded head's classifier in the OpenVINO IR (`benchmarks/ov_head_tail.py`)\n")
        write_section(path, text, cpu_kind(), "ov_head_tail.py")


if __name__ == "__main__":
    main()
