"""Why Keras' ``mixed_bfloat16`` gives little on this CPU: op-level and train-step timings, fp32 vs bf16.

Prints Markdown tables (stdout) for:

1. single ops at fp32 vs bf16 through TensorFlow (oneDNN): matmul, conv, layer norm, GELU, softmax, elementwise add;
2. the SegFormer train step (forward + backward + two AdamW updates, segcli's own step) at ``--size`` px,
   batch ``--batch``, under four settings: fp32; Keras ``mixed_bfloat16`` (what ``--precision bf16`` uses where
   TensorFlow's oneDNN ops are off, and on a GPU); fp32 with TF's graph rewrite
   ``auto_mixed_precision_onednn_bfloat16`` and its own op lists; the same rewrite with the ops that segcli keeps
   in float32 (what ``--precision bf16`` uses where oneDNN is on: ``segcli.train.precision``);
3. what the traced Keras-policy step holds: ops by dtype and the number of Cast ops;
4. with ``--breakdown``: where the step's time goes, from TensorFlow's profiler (3 profiled steps per setting),
   per part of the model, split into matmul/conv kernels, Casts and everything else (elementwise, reductions,
   resizes, random numbers). Times are kernel milliseconds per step summed over the worker threads.

Each timing is the median of ``--repeats`` runs after two warm-up steps; the four settings alternate step by step,
so a change in machine load hits them alike. The CPU model and ISA flags are printed with the results.

    python benchmarks/train_precision.py --preset segformer_b0 --size 256 --batch 8
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from sections import cpu_line  # noqa: E402
from segcli.train.precision import REWRITE_KEEPS_FLOAT32, bf16_graph_rewrite  # noqa: E402 (no TensorFlow)


def median_ms(fn, repeats: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def op_table(repeats: int) -> list:
    import tensorflow as tf

    x = tf.random.normal([8 * 64 * 64, 256])
    w = tf.random.normal([256, 1024])
    img = tf.random.normal([8, 64, 64, 64])
    k = tf.random.normal([3, 3, 64, 64])
    ln = tf.keras.layers.LayerNormalization if hasattr(tf, "keras") else None
    ops = {
        "matmul (32768x256 @ 256x1024)": lambda t: tf.matmul(t(x), t(w)),
        "conv 3x3 (8x64x64x64)": lambda t: tf.nn.conv2d(t(img), t(k), 1, "SAME"),
        "GELU (32768x256)": lambda t: tf.nn.gelu(t(x)),
        "softmax (32768x256)": lambda t: tf.nn.softmax(t(x)),
        "layer norm (32768x256)": lambda t: tf.nn.batch_normalization(
            t(x), *tf.nn.moments(t(x), axes=[-1], keepdims=True), None, None, 1e-6),
        "add (32768x256)": lambda t: t(x) + t(x),
    }
    del ln
    rows = []
    for name, op in ops.items():
        result = {}
        for dtype in (tf.float32, tf.bfloat16):
            cast = (lambda v, d=dtype: tf.cast(v, d))
            inputs_cast = {id(v): cast(v) for v in (x, w, img, k)}
            fn = tf.function(lambda: op(lambda v: inputs_cast[id(v)]))
            result[dtype.name] = median_ms(lambda: fn().numpy(), repeats)
        rows.append((name, result["float32"], result["bfloat16"], result["float32"] / result["bfloat16"]))
    return rows


KERAS_BF16 = "mixed_bfloat16 (Keras policy)"
TF_REWRITE = "fp32 + TF's oneDNN bf16 rewrite, TF's own lists"
SEGCLI_REWRITE = "fp32 + TF's oneDNN bf16 rewrite, segcli's float32 ops (`--precision bf16`)"
#: setting: (Keras policy, the rewrite's list variables: None for no rewrite, {} for TF's own lists)
SETTINGS = {"fp32": ("float32", None), KERAS_BF16: ("mixed_bfloat16", None), TF_REWRITE: ("float32", {}),
            SEGCLI_REWRITE: ("float32", REWRITE_KEEPS_FLOAT32)}


def under(step, keep_float32):
    """A callable that runs one ``step`` (under TF's bf16 rewrite unless ``keep_float32`` is None) and waits."""
    if keep_float32 is None:
        return lambda: step().numpy()

    def rewritten():
        with bf16_graph_rewrite(keep_float32):
            return step().numpy()
    return rewritten


def make_step(preset: str, size: int, batch: int, policy: str):
    import keras
    import numpy as np
    import tensorflow as tf

    from segcli.models.load import load
    from segcli.train.losses import segmentation_loss
    from segcli.train.schedule import make_optimizer
    from segcli.train.settings import TrainSettings

    keras.mixed_precision.set_global_policy(policy)
    model = load(preset, num_classes=5, load_weights=False, activation=None).model
    keras.mixed_precision.set_global_policy("float32")
    s = TrainSettings(data="", preset=preset, out="", warmup_steps=0)
    opt = make_optimizer(1e-4, model.trainable_variables, s, total_steps=1000)
    rng = np.random.default_rng(0)
    images = tf.constant(rng.uniform(0, 255, (batch, size, size, 3)).astype("float32"))
    labels = tf.constant(rng.integers(0, 5, (batch, size, size)).astype("uint8"))

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = segmentation_loss(labels, model(images, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        opt.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    return step


#: Parts of the model, matched in order against the op's name scope (lower case).
PARTS = (("attention", ("attention",)), ("Mix-FFN (fc1, dwconv, GELU, fc2)", ("mlp",)),
         ("decode head + final resize", ("decode_head", "resize_logits")), ("patch embeddings", ("patch_embedding",)),
         ("LayerNorms (blocks, stages)", ("norm1", "norm2", "_norm")), ("loss", ("sparse", "loss", "cross")),
         ("optimizer", ("adam", "assign", "iteration")))
MATMUL_KINDS = ("MatMul", "Conv2D", "Conv2d", "Einsum")


def op_breakdown(step, steps: int = 3) -> dict:
    """{(part, kind): kernel ms per step} from TensorFlow's profiler; kind is matmul/conv, cast or other."""
    import collections
    import glob
    import tempfile

    import tensorflow as tf
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    folder = tempfile.mkdtemp(prefix="segcli_prof_")
    tf.profiler.experimental.start(folder)
    for _ in range(steps):
        step().numpy()
    tf.profiler.experimental.stop()
    space = xplane_pb2.XSpace()
    space.ParseFromString(open(glob.glob(f"{folder}/**/*.xplane.pb", recursive=True)[0], "rb").read())
    totals = collections.Counter()
    for plane in (p for p in space.planes if p.name.startswith("/host:CPU")):
        for line in (line for line in plane.lines if line.name != "python"):
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name
                if ":" not in name or "::" in name:  # executor bookkeeping (ExecutorState::Process), not a kernel
                    continue
                scope, kind = name.rsplit(":", 1)
                part = next((label for label, keys in PARTS if any(k in scope.lower() for k in keys)), "other")
                kind = ("matmul/conv" if any(k in kind for k in MATMUL_KINDS) else "cast" if kind == "Cast"
                        else "other")
                totals[part, kind] += event.duration_ps / 1e9 / steps
    return totals


def print_breakdown(steps: dict) -> None:
    tables = {name: op_breakdown(step) for name, step in steps.items()}
    names = list(tables)
    kinds = ("matmul/conv", "cast", "other")
    print("\nKernel ms per step by part (TF profiler, summed over threads):\n")
    print("| part | " + " | ".join(f"{n}: {k}" for n in names for k in kinds) + " |")
    print("|---|" + "---:|" * (len(names) * len(kinds)))
    for part in [label for label, _ in PARTS] + ["other", "total"]:
        cells = [sum(v for (p, k2), v in tables[n].items() if k2 == k and part in (p, "total"))
                 for n in names for k in kinds]
        print(f"| {part} | " + " | ".join(f"{c:.0f}" for c in cells) + " |")


def graph_census(step) -> dict:
    graph = step.get_concrete_function().graph
    by_dtype, casts = {}, 0
    for op in graph.get_operations():
        if op.type == "Cast":
            casts += 1
        for out in op.outputs[:1]:
            by_dtype[out.dtype.name] = by_dtype.get(out.dtype.name, 0) + 1
    return {"casts": casts, **{k: v for k, v in sorted(by_dtype.items()) if k in ("float32", "bfloat16")}}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="segformer_b0")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--breakdown", action="store_true", help="also profile where each step's time goes")
    parser.add_argument("--tf-allocator", choices=("bfc", "default"), default="bfc",
                        help="TensorFlow's CPU allocator (segcli asks for bfc; see TF_ALLOCATOR.md)")
    args = parser.parse_args(argv)
    from segcli.tf_allocator import ENV

    os.environ[ENV] = "true" if args.tf_allocator == "bfc" else "false"  # before TensorFlow builds its allocator
    import tensorflow as tf

    from segcli.bench.sysinfo import framework_info

    env = framework_info()
    print(f"CPU: {cpu_line()}; TensorFlow {tf.__version__}, oneDNN {'on' if env['onednn'] else 'off'}, "
          f"{env['tf_allocator']} allocator; load average {os.getloadavg()[0]:.2f}\n")
    print("| op | fp32 ms | bf16 ms | fp32 / bf16 |\n|---|---:|---:|---:|")
    for name, f32, b16, ratio in op_table(args.repeats):
        print(f"| {name} | {f32:.1f} | {b16:.1f} | {ratio:.2f}x |")

    raw = {name: make_step(args.preset, args.size, args.batch, policy) for name, (policy, _) in SETTINGS.items()}
    steps = {name: under(raw[name], lists) for name, (_, lists) in SETTINGS.items()}
    times = {name: [] for name in steps}
    for step in steps.values():
        for _ in range(2):  # trace, rewrite, warm up
            step()
    for _ in range(args.repeats):  # alternate, so load changes hit every setting alike
        for name, step in steps.items():
            times[name].append(median_ms(step, 1, warmup=0))
    base = statistics.median(times["fp32"])
    print(f"\n{args.preset} train step, {args.size}x{args.size}, batch {args.batch} (median of {args.repeats}):\n")
    print("| setting | ms / step | img/s | speed vs fp32 |\n|---|---:|---:|---:|")
    for name, values in times.items():
        ms = statistics.median(values)
        print(f"| {name} | {ms:.0f} | {args.batch / ms * 1e3:.2f} | {base / ms:.2f}x |")
    if args.breakdown:
        print_breakdown({"fp32": steps["fp32"], "bf16 (rewrite)": steps[SEGCLI_REWRITE]})
    census = graph_census(raw[KERAS_BF16])
    print(f"\nmixed_bfloat16 step graph: {census}; load average after {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
