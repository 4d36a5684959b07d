"""segcli against the SegFormer implementations a user would otherwise pick, in one process, on the same inputs.

Contenders (SegFormer B0 and B2 at 512x512, 150 classes, batch 1 and 8, full-resolution output for everyone):

- segcli, Keras model under ``tf.function`` (its output: softmax at input size);
- segcli fused route (:mod:`segcli.inference.fused`): full-resolution logits, and the full-resolution mask
  (what ``segcli predict`` needs);
- keras-hub ``SegFormerImageSegmenter`` under ``tf.function``, built from ``MiTBackbone``/``SegFormerBackbone``
  with random weights (no preset download);
- transformers ``SegformerForSemanticSegmentation`` on PyTorch, eager and ``torch.compile``, with bilinear
  upsampling of its quarter-resolution logits;
- the same transformers model exported with ``torch.onnx.export`` and run in ONNX Runtime.

Every contender gets the same float32 NHWC batch of RGB values in [0, 255] (the sample photos, resized) and
does its own ImageNet normalisation inside the timed call. The transformers model is random-initialised and
saved as a Hugging Face folder, and segcli loads *that* folder, so segcli, transformers and ONNX Runtime share
weights and their masks can be compared with the float32 Keras model's (keras-hub has its own random weights).

Also measured: the fp32 matmul peak (2048^2, TF and torch), and segcli's end-to-end predict (read, infer,
upsample, argmax, write mask + overlay) on the sample photos through ``segcli.inference.predict.run_predict``.

Usage (from the repository root, with the ``bench`` extra installed: ``pip install -e .[bench]``)::

    python benchmarks/compare_peers.py --quick      # B0, batch 1, few iterations: a couple of minutes
    python benchmarks/compare_peers.py --bf16 --exports   # B0, batch 1 and 8 (~4 min): writes benchmarks/RESULTS.md
    python benchmarks/compare_peers.py --models b2 --batch-sizes 1 --bf16 --exports --no-e2e \
        --out benchmarks/RESULTS_b2.md                    # B2, batch 1 (~4 min)

B2 at batch 8 with every contender in one process needs more than 24 GB of RAM (the OOM killer stopped it here).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PHOTOS = ROOT / "samples" / "photos"
MEAN = np.array([0.485, 0.456, 0.406], np.float32) * 255
STD = np.array([0.229, 0.224, 0.225], np.float32) * 255
NUM_CLASSES = 150
SIZE = 512
ARCHS = {  # transformers SegformerConfig settings; keras-hub and segcli get the same numbers
    "b0": dict(hidden_sizes=[32, 64, 160, 256], depths=[2, 2, 2, 2], decoder_hidden_size=256),
    "b2": dict(hidden_sizes=[64, 128, 320, 512], depths=[3, 4, 6, 3], decoder_hidden_size=768),
}


def log(message):
    print(message, file=sys.stderr, flush=True)


# --- inputs ----------------------------------------------------------------------------------------------------------
def sample_batch(batch: int) -> np.ndarray:
    """The sample photos resized to SIZE x SIZE, repeated to ``batch``, float32 NHWC in [0, 255]."""
    import cv2

    from segcli.data.image_io import is_image_name, read_image

    photos = [cv2.resize(read_image(p), (SIZE, SIZE), interpolation=cv2.INTER_AREA)
              for p in sorted(PHOTOS.iterdir()) if is_image_name(p.name)]
    return np.stack([photos[i % len(photos)] for i in range(batch)]).astype(np.float32)


# --- contenders ------------------------------------------------------------------------------------------------------
class Contender:
    """A named callable on the shared batch; ``mask(out)`` turns its output into class indices (or None)."""

    def __init__(self, name, run, mask=None, shares_weights=True, numerics="fp32", note=""):
        self.name, self.run, self.mask_of, self.shares_weights = name, run, mask, shares_weights
        self.numerics, self.note = numerics, note


def hf_model(arch: str, folder: Path):
    import torch
    from transformers import SegformerConfig, SegformerForSemanticSegmentation

    torch.manual_seed(0)
    config = SegformerConfig(num_labels=NUM_CLASSES, **ARCHS[arch])
    model = SegformerForSemanticSegmentation(config).eval()
    with torch.no_grad():  # trained-looking BatchNorm statistics, so folding them is really exercised
        bn = model.decode_head.batch_norm
        bn.running_mean.normal_(0, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
    model.save_pretrained(str(folder))
    return model


def torch_wrapper(model):
    """NHWC [0, 255] in, full-resolution NCHW logits out: normalisation, the model, bilinear upsampling."""
    import torch

    class FullResolution(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model
            self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1))
            self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1))

        def forward(self, images):
            x = (images.permute(0, 3, 1, 2) - self.mean) / self.std
            logits = self.model(pixel_values=x).logits
            return torch.nn.functional.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)

    return FullResolution().eval()


def torch_contenders(wrapper, with_compile: bool):
    import torch

    def eager(x):
        with torch.inference_mode():
            return wrapper(torch.from_numpy(x))

    out = [Contender("transformers eager (PyTorch)", eager, lambda o: o.argmax(1).numpy())]
    if with_compile:
        compiled = torch.compile(wrapper, dynamic=False)

        def run_compiled(x):
            with torch.inference_mode():
                return compiled(torch.from_numpy(x))

        out.append(Contender("transformers torch.compile", run_compiled, lambda o: o.argmax(1).numpy()))
    return out


def onnx_contender(wrapper, folder: Path):
    import onnxruntime as ort
    import torch

    path = folder / "segformer_full_res.onnx"
    example = torch.from_numpy(sample_batch(1))
    with torch.inference_mode():
        torch.onnx.export(wrapper, (example,), str(path), input_names=["images"], output_names=["logits"],
                          dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}}, opset_version=17,
                          dynamo=False)
    options = ort.SessionOptions()
    options.intra_op_num_threads = len(os.sched_getaffinity(0))
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return Contender("ONNX Runtime (transformers export)", lambda x: session.run(None, {"images": x})[0],
                     lambda o: o.argmax(1))


def keras_hub_contender(arch: str):
    import keras_hub
    import tensorflow as tf

    spec = ARCHS[arch]
    encoder = keras_hub.models.MiTBackbone(
        layerwise_depths=spec["depths"], num_layers=4, layerwise_num_heads=[1, 2, 5, 8],
        layerwise_sr_ratios=[8, 4, 2, 1], max_drop_path_rate=0.1, layerwise_patch_sizes=[7, 3, 3, 3],
        layerwise_strides=[4, 2, 2, 2], image_shape=(SIZE, SIZE, 3), hidden_dims=spec["hidden_sizes"])
    backbone = keras_hub.models.SegFormerBackbone(image_encoder=encoder,
                                                  projection_filters=spec["decoder_hidden_size"])
    model = keras_hub.models.SegFormerImageSegmenter(backbone=backbone, num_classes=NUM_CLASSES)
    mean, std = tf.constant(MEAN), tf.constant(STD)
    fn = tf.function(lambda x: model((x - mean) / std, training=False))
    return Contender("keras-hub SegFormerImageSegmenter (tf.function)", fn,
                     lambda o: np.argmax(o.numpy(), -1), shares_weights=False)


def segcli_contenders(model, bf16_model=None, xla=False):
    import tensorflow as tf

    from segcli.inference.fused import FusedSegFormer

    keras_fn = tf.function(lambda x: model(x, training=False))
    fused = FusedSegFormer(model)
    logits_fns = {}

    def fused_full_logits(x):
        fn = logits_fns.get(x.shape)
        if fn is None:
            fn = logits_fns[x.shape] = tf.function(
                lambda im: tf.image.resize(fused.logits_graph(im), im.shape[1:3], method="bilinear"))
        return fn(x)

    out = [
        Contender("segcli Keras model (tf.function, softmax at full res)", keras_fn,
                  lambda o: np.argmax(o.numpy(), -1)),
        Contender("segcli fused head (full-res logits)", fused_full_logits, lambda o: np.argmax(o.numpy(), -1)),
        Contender("segcli fused head + fused upsample/argmax (full-res mask)", fused.masks_tensor,
                  lambda o: o.numpy()),
    ]
    if xla:
        xla_fn = tf.function(lambda x: model(x, training=False), jit_compile=True)
        out.append(Contender("segcli Keras model, XLA (tf.function jit_compile=True)", xla_fn,
                             lambda o: np.argmax(o.numpy(), -1)))
    if bf16_model is not None:
        fused16 = FusedSegFormer(bf16_model)
        out.append(Contender("segcli fused, mixed_bfloat16 (full-res mask)", fused16.masks_tensor,
                             lambda o: o.numpy(), numerics="bf16"))
    return out


def exported_contenders(folder: Path, work: Path):
    """segcli's own exports of the same weights (`segcli export`), run through `segcli predict`'s runners.

    The exported graphs return logits at 1/4 resolution (like the ONNX peer before its resize); the bilinear
    resize to full resolution runs in TF here so every contender ends at full resolution.
    """
    import tensorflow as tf

    from segcli.export.api import export_model
    from segcli.export.runtimes import open_runtime

    out = []
    for fmt, suffix, label in (("onnx", ".onnx", "segcli export -> ONNX Runtime"),
                               ("tflite", ".tflite", "segcli export -> TFLite (XNNPACK)")):
        path = work / f"segcli{suffix}"
        try:
            export_model(str(folder), fmt, path, sample_count=1, sample_size=(SIZE, SIZE))
        except Exception as exc:  # an optional runtime missing: report and go on
            log(f"    skipped {label}: {exc}")
            continue
        runner = open_runtime(path)
        resize = tf.function(lambda q, size: tf.image.resize(q, size, method="bilinear"), reduce_retracing=True)

        def run(x, runner=runner, resize=resize):
            quarter = runner.predict_logits(np.clip(np.rint(np.asarray(x)), 0, 255).astype(np.uint8))
            return resize(quarter, tf.constant(x.shape[1:3]))

        out.append(Contender(f"{label} (+ TF resize)", run, lambda o: np.argmax(o.numpy(), -1)))
    return out


# --- measurement -----------------------------------------------------------------------------------------------------
def time_calls(run, x, warmup, iters):
    for _ in range(warmup):
        _done(run(x))
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        _done(run(x))
        times.append(time.perf_counter() - start)
    return times


def _done(out):
    return np.asarray(out.numpy() if hasattr(out, "numpy") else out).flat[0]


def peaks():
    import torch

    from segcli.bench.flops import measure_peak

    tf_peak = measure_peak(seconds=4.0)["gflops_per_s"]
    a, b = torch.rand(2048, 2048), torch.rand(2048, 2048)
    torch.matmul(a, b)
    best = min(_timed(lambda: torch.matmul(a, b)) for _ in range(10))
    return {"tf": tf_peak, "torch": 2 * 2048 ** 3 / best / 1e9}


def _timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def end_to_end(model, name, batch, fused=True):
    """ms/img of segcli.inference.predict.run_predict over the sample photos (masks + overlays written).

    ``fused``: predict's default route (the folded head); False sets SEGCLI_FUSED_HEAD=0 (the plain Keras graph).
    """
    from segcli.inference import predictor as inference
    from segcli.checkpoints.resolve import ModelSource, complete_classes

    inference._NETS.clear()  # the route is chosen when a model is first seen
    previous = os.environ.get("SEGCLI_FUSED_HEAD")
    os.environ["SEGCLI_FUSED_HEAD"] = "1" if fused else "0"
    try:
        return _end_to_end(ModelSource(model, complete_classes([], NUM_CLASSES), name, (SIZE, SIZE)), batch)
    finally:
        if previous is None:
            os.environ.pop("SEGCLI_FUSED_HEAD")
        else:
            os.environ["SEGCLI_FUSED_HEAD"] = previous
        inference._NETS.clear()


def _end_to_end(source, batch):
    from segcli.inference.predict import PredictOptions, run_predict

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "in"
        folder.mkdir()
        photos = [p for p in sorted(PHOTOS.iterdir()) if p.suffix.lower() in (".jpg", ".png")]
        for i in range(2 * batch):  # two full batches of real files
            src = photos[i % len(photos)]
            (folder / f"{i:03d}{src.suffix}").write_bytes(src.read_bytes())
        options = PredictOptions(out=Path(tmp) / "out", batch_size=batch)
        run_predict([str(folder)], source, options)
        options.overwrite = True
        start = time.perf_counter()
        summary = run_predict([str(folder)], source, options)
        seconds = time.perf_counter() - start
    return 1000 * seconds / summary["count"]["written"]


# --- report ----------------------------------------------------------------------------------------------------------
def run(args):
    import tensorflow as tf
    import torch

    from segcli.bench import sysinfo
    from segcli.bench.bench import dtype_policy, peak_rss_mb
    from segcli.bench.flops import model_flops_per_image
    from segcli.models.load import load

    torch.set_num_threads(len(os.sched_getaffinity(0)))
    env = sysinfo.environment()
    load_before = os.getloadavg()
    log(f"{env['cpu']}, {env['logical_cores']} cores, TF {env['tensorflow']}, torch {torch.__version__}")
    peak = peaks()
    log(f"fp32 matmul peak: TF {peak['tf']:.1f}, torch {peak['torch']:.1f} GFLOP/s")

    results, agreements, e2e = [], {}, {}
    for arch in args.models:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / f"hf_{arch}"
            log(f"[{arch}] building transformers, segcli (same weights) and keras-hub models")
            hf = hf_model(arch, folder)
            segcli = load(str(folder), num_classes=NUM_CLASSES, input_shape=(None, None, 3)).model
            bf16 = None
            if args.bf16:
                with dtype_policy(True):
                    bf16 = load(str(folder), num_classes=NUM_CLASSES, input_shape=(None, None, 3)).model
            gflops = model_flops_per_image(segcli, SIZE, SIZE) / 1e9
            wrapper = torch_wrapper(hf)
            contenders = segcli_contenders(segcli, bf16, xla=args.xla)
            if "keras-hub" not in args.skip:
                contenders.append(keras_hub_contender(arch))
            if "torch" not in args.skip:
                contenders += torch_contenders(wrapper, "compile" not in args.skip)
            if "onnx" not in args.skip:
                contenders.append(onnx_contender(wrapper, Path(tmp)))
            if args.exports:
                contenders += exported_contenders(folder, Path(tmp))

            photos = sample_batch(len([p for p in PHOTOS.iterdir() if p.suffix.lower() in (".jpg", ".png")]))
            masks = {c.name: np.concatenate([np.asarray(c.mask_of(c.run(photos[i:i + 1])))
                                             for i in range(len(photos))])
                     for c in contenders if c.shares_weights}
            reference = masks[contenders[0].name]  # the float32 Keras model
            for name, mask in masks.items():
                agreements[(arch, name)] = float((mask == reference).mean())

            for batch in args.batch_sizes:
                x = sample_batch(batch)
                iters = args.iters if batch == 1 else max(2, args.iters // 2)
                for c in contenders:
                    log(f"[{arch}] batch {batch}: {c.name}")
                    start = time.perf_counter()
                    _done(c.run(x))  # first call: tracing / compiling
                    first = time.perf_counter() - start
                    times = time_calls(c.run, x, args.warmup, iters)
                    ms = 1000 * statistics.median(times) / batch
                    results.append({"arch": arch, "batch": batch, "name": c.name, "ms_per_img": ms,
                                    "best_ms_per_img": 1000 * min(times) / batch, "img_per_s": 1000 / ms,
                                    "first_call_s": first, "gflops": gflops, "numerics": c.numerics})
                    log(f"    {ms:.1f} ms/img (best {1000 * min(times) / batch:.1f}), first call {first:.1f} s")
                if not args.no_e2e and arch == "b0":
                    for fused in (False, True):
                        label = "segcli predict end to end (" + ("default: folded head" if fused
                                                                 else "SEGCLI_FUSED_HEAD=0: Keras graph") + ")"
                        log(f"[{arch}] batch {batch}: {label}")
                        e2e[(arch, batch, label)] = end_to_end(segcli, f"segformer_{arch}", batch, fused)
                        log(f"    {e2e[(arch, batch, label)]:.1f} ms/img")
            del contenders, hf, segcli, bf16, wrapper
    report = render(args, env, peak, results, agreements, e2e, load_before, os.getloadavg(), peak_rss_mb())
    if args.out:
        Path(args.out).write_text(report)
        log(f"wrote {args.out}")
    print(report)


def render(args, env, peak, results, agreements, e2e, load_before, load_after, rss) -> str:
    import keras
    import onnxruntime
    import tensorflow as tf
    import torch
    import transformers

    lines = [
        "# segcli vs peer SegFormer implementations (CPU)",
        "",
        f"Written by `benchmarks/compare_peers.py{' --quick' if args.quick else ''}` on "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. All contenders ran in one process on the same "
        f"inputs (the sample photos resized to {SIZE}x{SIZE}, float32 NHWC in [0, 255]); every output is at full "
        f"resolution ({NUM_CLASSES} classes). Times are the median of the timed calls after warm-up.",
        "",
        f"- Machine: {env['cpu']}, {env['logical_cores']} logical cores, ISA {', '.join(env['isa']) or '-'}. "
        f"Shared with other engineers' jobs: load average {load_before[0]:.1f} at the start, "
        f"{load_after[0]:.1f} at the end, so absolute numbers are noisy; ratios within a row group are fairer.",
        f"- TensorFlow {tf.__version__}, Keras {keras.__version__}, PyTorch {torch.__version__}, "
        f"transformers {transformers.__version__}, ONNX Runtime {onnxruntime.__version__}.",
        f"- fp32 matmul peak (2048^2): TF {peak['tf']:.1f} GFLOP/s, torch {peak['torch']:.1f} GFLOP/s. "
        f"Peak RSS of the whole session: {rss:.0f} MiB.",
        "- GFLOP/img is TF's profiler count on segcli's Keras model (convolutions, matmuls including attention, "
        "resizes, element-wise ops); '% peak' is that work times img/s over the TF matmul peak, so the fused "
        "routes, which do less work for the same output, can exceed what the executed FLOPs alone would give.",
        "",
    ]
    for arch in args.models:
        for batch in args.batch_sizes:
            rows = [r for r in results if r["arch"] == arch and r["batch"] == batch]
            if not rows:
                continue
            seg_best = min((r for r in rows if r["name"].startswith("segcli") and r["numerics"] == "fp32"),
                           key=lambda r: r["ms_per_img"])
            peers = [r for r in rows if not r["name"].startswith("segcli")]
            lines += [f"## SegFormer-{arch.upper()} {SIZE}x{SIZE}, batch {batch} ({rows[0]['gflops']:.2f} GFLOP/img)",
                      "",
                      "| contender | ms/img | img/s | x vs best segcli fp32 | % fp32 peak | mask agreement vs segcli fp32 Keras |",
                      "|---|---:|---:|---:|---:|---:|"]
            for r in rows:
                agree = agreements.get((arch, r["name"]))
                agree_text = f"{100 * agree:.3f}%" if agree is not None else "n/a (own random weights)"
                fraction = r["gflops"] * r["img_per_s"] / peak["tf"]
                lines.append(f"| {r['name']} | {r['ms_per_img']:.1f} | {r['img_per_s']:.2f} | "
                             f"{r['ms_per_img'] / seg_best['ms_per_img']:.2f} | {100 * fraction:.0f}% | {agree_text} |")
            for (a, b, label), ms in e2e.items():
                if a == arch and b == batch:
                    lines.append(f"| {label} | {ms:.1f} | {1000 / ms:.2f} | {ms / seg_best['ms_per_img']:.2f} | "
                                 f"- | (same model) |")
            if peers:
                fastest = min(peers, key=lambda r: r["ms_per_img"])
                lines += ["", f"Fastest peer: {fastest['name']} at {fastest['ms_per_img']:.1f} ms/img. "
                              f"Best segcli fp32 route: {seg_best['name']} at {seg_best['ms_per_img']:.1f} ms/img, "
                              f"**{fastest['ms_per_img'] / seg_best['ms_per_img']:.2f}x** the fastest peer's "
                              f"throughput (target 1.3x)."]
                for (a, b, label), ms in e2e.items():
                    if a == arch and b == batch:
                        lines.append(f"{label}: {fastest['ms_per_img'] / ms:.2f}x the fastest peer's forward.")
            lines.append("")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="B0 only, batch 1, 3 timed calls, no torch.compile")
    parser.add_argument("--models", default="b0", help="comma list of b0, b2 (B2 at batch 8 needs > 24 GB)")
    parser.add_argument("--batch-sizes", default="1,8")
    parser.add_argument("--iters", type=int, default=6, help="timed calls at batch 1 (half of that at larger batches)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--skip", default="", help="comma list of: keras-hub, torch, compile, onnx")
    parser.add_argument("--bf16", action="store_true", help="also time segcli under mixed_bfloat16")
    parser.add_argument("--exports", action="store_true",
                        help="also time segcli's own ONNX and TFLite exports (segcli predict --model x.onnx/.tflite)")
    parser.add_argument("--xla", action="store_true", help="also time segcli's Keras model with jit_compile=True")
    parser.add_argument("--no-e2e", action="store_true", help="skip the end-to-end predict timing")
    parser.add_argument("--out", default=None, help="markdown report path (default: benchmarks/RESULTS.md, "
                                                    "benchmarks/RESULTS_quick.md with --quick)")
    args = parser.parse_args(argv)
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    args.batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    args.skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    if args.quick:
        args.models, args.batch_sizes, args.iters = ["b0"], [1], min(args.iters, 3)
        args.skip.add("compile")
    if args.out is None:
        args.out = str(Path(__file__).with_name("RESULTS_quick.md" if args.quick else "RESULTS.md"))
    bad = [m for m in args.models if m not in ARCHS]
    if bad:
        parser.error(f"--models {','.join(bad)}: use b0 and/or b2")
    run(args)


if __name__ == "__main__":
    main()
