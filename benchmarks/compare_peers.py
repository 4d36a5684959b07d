"""segcli against the SegFormer paths a user would otherwise pick, end to end, like with like.

Every contender does the same work on the same files: N 512x512 JPEGs in (written once, deterministically, from
``samples/photos``: crops, flips and resizes), one 512x512 PNG class-index mask out per image. In between:
decode, resize to 512 when needed, forward pass, bilinear upsampling of the logits to 512x512, argmax, PNG write.
The same weights for all: a transformers ``SegformerForSemanticSegmentation`` (B0 or B2, 150 classes, random
init, non-trivial BatchNorm statistics) is saved, and segcli imports that folder
(``segcli.weights.importer.import_checkpoint``) under a name, in a private ``SEGCLI_HOME``.

Contenders, each in its own fresh process, each at its best batch size among ``--batch-sizes``:

- ``segcli predict`` (``run_predict``, masks only) with the default backend, and explicitly TensorFlow (folded
  head), TensorFlow with the plain Keras head (``SEGCLI_FUSED_HEAD=0``: the reference masks), OpenVINO fp32 and
  bf16 (segcli's cached IR), and segcli's int8 IR (``export_model(..., "openvino", precision="int8",
  calib=...)``);
- peers, as straightforward scripts (cv2 decode, one runtime call per batch, cv2 PNG write). Their graph is the
  transformers model wrapped with ImageNet normalisation, ``F.interpolate`` to 512 and ``argmax``, so upsampling
  and argmax run inside each runtime (their best case):
  ONNX Runtime on ``torch.onnx.export`` of that wrapper (optimum is not installed here); OpenVINO fp32, bf16 and
  int8 on ``ov.convert_model`` of the same torch module (int8: ``nncf.quantize``, ``ModelType.TRANSFORMER``, on
  calibration images from ``samples/train/images``; its float ops in bf16 where the CPU has BF16, as segcli's
  int8 runner does); torch eager; ``torch.compile`` (dropped when it does not
  compile within ``--compile-timeout``); keras-hub ``SegFormerImageSegmenter`` (its own random weights: no mask
  agreement).

Every TensorFlow process (segcli's TF routes, keras-hub, the peak measurement) runs with TF's BFC CPU allocator
(``TF_CPU_ALLOCATOR_USE_BFC=true``), which segcli sets for itself and which is keras-hub's faster setting too
(benchmarks/TF_ALLOCATOR.md).

Timing: per contender one untimed warm-up pass over the first batch, then ``--passes`` timed passes over all N
images, each followed by a timing of the forward pass alone (segcli: the forward predict calls on a decoded uint8
batch; peers: their runtime call), so both come from the same minute. With every pass the child records the CPU
time that *other* processes used (``/proc/stat`` busy time minus this process's), and ``uptime``'s 1-minute load at
its start and end; ms/img is the pass with the least foreign CPU (ties: the faster), and fwd the forward timed right
after it. A contender whose foreign load exceeded ``--max-foreign`` cores is run again (up to ``--retries``),
keeping the quietest try.

GFLOP/img counts the work each graph executes: TF's profiler on segcli's folded graph (segcli routes) and on the
unfolded graph (every peer runs the plain decode head), each including the full-resolution resize.
``% fp32 peak`` = that GFLOP x img/s over the TF 2048^2 fp32 matmul peak measured at the start.

Usage (repository root)::

    .venv/bin/python benchmarks/compare_peers.py                       # B0, batch 1 and 4: writes RESULTS.md
    .venv/bin/python benchmarks/compare_peers.py --models b2 --batch-sizes 1 --images 8 \\
        --only segcli-tf,segcli-ov-fp32,segcli-ov-bf16,ort-hf,ov-hf-fp32,ov-hf-bf16 --out benchmarks/RESULTS_b2.md
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

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPU_ALLOCATOR_USE_BFC", "true")  # every TF contender (segcli's, keras-hub's): see below

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PHOTOS = ROOT / "samples" / "photos"
CALIB = ROOT / "samples" / "train" / "images"
MEAN = np.array([0.485, 0.456, 0.406], np.float32) * 255
STD = np.array([0.229, 0.224, 0.225], np.float32) * 255
NUM_CLASSES = 150
SIZE = 512
ARCHS = {  # transformers SegformerConfig settings; keras-hub and segcli get the same numbers
    "b0": dict(hidden_sizes=[32, 64, 160, 256], depths=[2, 2, 2, 2], decoder_hidden_size=256),
    "b2": dict(hidden_sizes=[64, 128, 320, 512], depths=[3, 4, 6, 3], decoder_hidden_size=768),
}
REFERENCE = "segcli-tf-keras"
#: name -> (label, kind, precision). kind: segcli (run_predict) or a peer script.
CONTENDERS = {
    "segcli-default": ("segcli predict --precision fp32, default backend (auto)", "segcli", "fp32"),
    "segcli-tf": ("segcli predict --backend tensorflow (folded head)", "segcli", "fp32"),
    "segcli-tf-keras": ("segcli predict --backend tensorflow, SEGCLI_FUSED_HEAD=0 (Keras head; reference)",
                        "segcli", "fp32"),
    "segcli-ov-fp32": ("segcli predict --backend openvino --precision fp32", "segcli", "fp32"),
    "segcli-ov-bf16": ("segcli predict --backend openvino --precision bf16", "segcli", "bf16"),
    "segcli-ov-int8": ("segcli predict --model int8 IR (segcli export --precision int8)", "segcli", "int8"),
    "ort-hf": ("ONNX Runtime, transformers model (torch.onnx.export)", "peer", "fp32"),
    "ov-hf-fp32": ("OpenVINO fp32, transformers model (ov.convert_model)", "peer", "fp32"),
    "ov-hf-bf16": ("OpenVINO bf16, transformers model (ov.convert_model)", "peer", "bf16"),
    "ov-hf-int8": ("OpenVINO int8, transformers model (ov.convert_model + NNCF)", "peer", "int8"),
    "torch-eager": ("PyTorch eager, transformers model", "peer", "fp32"),
    "torch-compile": ("PyTorch torch.compile, transformers model", "peer", "fp32"),
    "keras-hub": ("keras-hub SegFormerImageSegmenter (tf.function; own random weights)", "peer", "fp32"),
}


def log(message):
    print(message, file=sys.stderr, flush=True)


def load1() -> float:
    return os.getloadavg()[0]


# --- CPU accounting: how much did other processes run while we measured? -------------------------------------------
def _busy_jiffies() -> int:
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return sum(fields[:8]) - idle


def _own_jiffies() -> int:
    with open("/proc/self/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime of all threads


class Meter:
    """Wall time and the cores other processes kept busy during a ``with`` block."""

    def __enter__(self):
        self.busy, self.own, self.start = _busy_jiffies(), _own_jiffies(), time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start
        hz = os.sysconf("SC_CLK_TCK")
        foreign = (_busy_jiffies() - self.busy) - (_own_jiffies() - self.own)
        self.foreign_cores = max(0.0, foreign / hz / self.seconds)
        self.own_cores = (_own_jiffies() - self.own) / hz / self.seconds


# --- inputs (written once per work folder) -------------------------------------------------------------------------
def write_inputs(folder: Path, count: int) -> None:
    import cv2

    from segcli.data.image_io import is_image_name, read_image

    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("img_*.jpg"):  # a run with another --images count left these
        stale.unlink()
    photos = [read_image(p) for p in sorted(PHOTOS.iterdir()) if is_image_name(p.name)]
    for i in range(count):
        photo = photos[i % len(photos)]
        h, w = photo.shape[:2]
        k = i // len(photos)  # crops and flips make every file different
        crop = photo[(k * h) // 16:h - (k % 3) * h // 16, (k % 4) * w // 16:w - (k * w) // 32]
        if k % 2:
            crop = crop[:, ::-1]
        image = cv2.resize(np.ascontiguousarray(crop), (SIZE, SIZE), interpolation=cv2.INTER_CUBIC)
        cv2.imwrite(str(folder / f"img_{i:03d}.jpg"), image[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])


def calibration_images(count: int = 64) -> np.ndarray:
    import cv2

    from segcli.data.image_io import is_image_name, read_image

    files = [p for p in sorted(CALIB.iterdir()) if is_image_name(p.name)][:count]
    return np.stack([cv2.resize(read_image(p), (SIZE, SIZE), interpolation=cv2.INTER_AREA) for p in files])


# --- set-up child: weights, import, exports, FLOPs, peak -------------------------------------------------------------
def torch_wrapper(model):
    """NHWC uint8-valued float [0, 255] in, (B, H, W) int64 class indices out: normalise, model, upsample, argmax."""
    import torch

    class EndToEnd(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model
            self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1))
            self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1))

        def forward(self, images):
            x = (images.permute(0, 3, 1, 2) - self.mean) / self.std
            logits = self.model(pixel_values=x).logits
            up = torch.nn.functional.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)
            return up.argmax(1)

    return EndToEnd().eval()


def hf_model(arch: str, folder: Path | None = None):
    import torch
    from transformers import SegformerConfig, SegformerForSemanticSegmentation

    if folder is not None and (folder / "config.json").is_file():
        return SegformerForSemanticSegmentation.from_pretrained(str(folder)).eval()
    torch.manual_seed(0)
    model = SegformerForSemanticSegmentation(SegformerConfig(num_labels=NUM_CLASSES, **ARCHS[arch])).eval()
    with torch.no_grad():  # trained-looking BatchNorm statistics, so folding them is really exercised
        bn = model.decode_head.batch_norm
        bn.running_mean.normal_(0, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
    model.save_pretrained(str(folder))
    return model


def setup(work: Path, arch: str, count: int) -> dict:
    """Everything the contenders share; idempotent (skips what exists)."""
    import torch

    torch.set_num_threads(len(os.sched_getaffinity(0)))
    info_path = work / f"setup_{arch}.json"
    info = json.loads(info_path.read_text()) if info_path.is_file() else {}
    images = work / "images"
    if len(list(images.glob("*.jpg"))) != count:
        write_inputs(images, count)
    folder = work / f"hf_{arch}"
    hf = hf_model(arch, folder)
    name = f"peers_{arch}"
    from segcli.checkpoints.cache import entry_dir

    if not entry_dir(name).exists():
        from segcli.weights.importer import import_checkpoint

        import_checkpoint(folder, name)
    wrapper = torch_wrapper(hf)
    example = torch.from_numpy(np.zeros((1, SIZE, SIZE, 3), np.float32))
    onnx_path = work / f"hf_{arch}.onnx"
    if not onnx_path.is_file():
        with torch.inference_mode():
            torch.onnx.export(wrapper, (example,), str(onnx_path), input_names=["images"], output_names=["masks"],
                              dynamic_axes={"images": {0: "batch"}, "masks": {0: "batch"}}, opset_version=17,
                              dynamo=False)
    import openvino as ov

    ov_path = work / f"hf_{arch}_ov" / "model.xml"
    if not ov_path.is_file():
        ov_model = ov.convert_model(wrapper, example_input=example,
                                    input=[ov.PartialShape([-1, SIZE, SIZE, 3])])
        ov.save_model(ov_model, str(ov_path), compress_to_fp16=False)
    calib = calibration_images()
    int8_path = work / f"hf_{arch}_ov_int8" / "model.xml"
    if not int8_path.is_file():
        import nncf

        ov_model = ov.Core().read_model(str(ov_path))
        data = nncf.Dataset([c[None].astype(np.float32) for c in calib])
        start = time.perf_counter()
        quantized = nncf.quantize(ov_model, data, model_type=nncf.ModelType.TRANSFORMER, subset_size=len(calib))
        ov.save_model(quantized, str(int8_path), compress_to_fp16=False)
        info["hf_int8_seconds"] = round(time.perf_counter() - start, 1)
    from segcli.export.openvino_cache import converter_digest

    seg_int8 = work / f"segcli_{arch}_int8_{converter_digest()}"  # a segcli whose graph changed quantizes again
    if not (seg_int8 / "model.xml").is_file():
        # segcli's own int8 conversion (what `segcli export --format openvino --precision int8` writes), without
        # the export's 99 % parity gate: random weights have near-tied logits, which that gate is not meant for
        # (the int8 accuracy of a trained model is measured on samples/demo_model, see RESULTS.md).
        import openvino as ov

        from segcli.export.formats import METADATA_FILE
        from segcli.export.openvino_format import XML, convert
        from segcli.models.load import load
        from segcli.models.segformer.graph import SegFormerGraph

        start = time.perf_counter()
        model = load(name).model
        metadata = {"num_classes": NUM_CLASSES, "input_size": None, "logits_stride": 4, "precision": "int8"}
        ir = convert(SegFormerGraph(model), "int8", calib, metadata)
        seg_int8.mkdir(parents=True, exist_ok=True)
        ov.save_model(ir, str(seg_int8 / XML), compress_to_fp16=False)
        (seg_int8 / METADATA_FILE).write_text(json.dumps(metadata))
        info["segcli_int8_seconds"] = round(time.perf_counter() - start, 1)
    if "gflops_folded" not in info:
        import tensorflow as tf

        from segcli.bench.flops import graph_flops
        from segcli.models.load import load
        from segcli.models.segformer.graph import SegFormerGraph

        spec = tf.TensorSpec((1, SIZE, SIZE, 3), tf.float32)
        graph = SegFormerGraph(load(name).model, folded=True)
        info["gflops_folded"] = graph_flops(tf.function(graph.full_logits).get_concrete_function(spec).graph) / 1e9
        # the peers' work: the paper's head in its literal order (segcli's Keras head now runs the folded order
        # too), counted on keras-hub's model of the same architecture, whose logits come at full resolution
        peer = keras_hub_segmenter(arch)
        info["gflops_plain"] = graph_flops(tf.function(peer).get_concrete_function(spec).graph) / 1e9
    info.update(model=name, images=str(images), hf=str(folder), onnx=str(onnx_path), ov=str(ov_path),
                ov_int8=str(int8_path), segcli_int8=str(seg_int8))
    info_path.write_text(json.dumps(info, indent=2))
    return info


def keras_hub_segmenter(arch: str):
    """keras-hub's SegFormerImageSegmenter of ``arch`` at SIZE (random weights): the paper's head, literally."""
    import keras_hub

    spec = ARCHS[arch]
    encoder = keras_hub.models.MiTBackbone(
        layerwise_depths=spec["depths"], num_layers=4, layerwise_num_heads=[1, 2, 5, 8],
        layerwise_sr_ratios=[8, 4, 2, 1], max_drop_path_rate=0.1, layerwise_patch_sizes=[7, 3, 3, 3],
        layerwise_strides=[4, 2, 2, 2], image_shape=(SIZE, SIZE, 3), hidden_dims=spec["hidden_sizes"])
    backbone = keras_hub.models.SegFormerBackbone(image_encoder=encoder,
                                                  projection_filters=spec["decoder_hidden_size"])
    return keras_hub.models.SegFormerImageSegmenter(backbone=backbone, num_classes=NUM_CLASSES)


def measure_peak() -> float:
    from segcli.bench.flops import measure_peak as peak

    return peak(seconds=4.0)["gflops_per_s"]


# --- contender children -------------------------------------------------------------------------------------------
def run_child(args) -> dict:
    info = json.loads((Path(args.work) / f"setup_{args.arch}.json").read_text())
    files = sorted(Path(info["images"]).glob("*.jpg"))
    out = Path(args.work) / "masks" / args.arch / args.child
    out.mkdir(parents=True, exist_ok=True)
    label, kind, precision = CONTENDERS[args.child]
    return (segcli_child if kind == "segcli" else peer_child)(args, info, files, out)


def _passes(one_pass, files, passes: int, forward) -> dict:
    """Time ``passes`` passes, each followed by ``forward()`` (the forward pass alone, ms/img), so that both come
    from the same minute of the machine; the reported pass, and its forward, is the one with the least foreign CPU
    (ties: the faster)."""
    times, foreign, forwards, load_start = [], [], [], load1()
    for _ in range(passes):
        with Meter() as m:
            one_pass()
        times.append(m.seconds)
        foreign.append(m.foreign_cores)
        forwards.append(forward())
    quiet = min(range(passes), key=lambda i: (round(foreign[i], 1), times[i]))
    ms = 1000 * times[quiet] / len(files)
    return {"ms_per_img": ms, "img_per_s": 1000 / ms, "median_ms_per_img": 1000 * statistics.median(times) / len(files),
            "pass_seconds": [round(t, 3) for t in times], "pass_foreign": [round(f, 2) for f in foreign],
            "foreign_cores": round(foreign[quiet], 2), "load_start": load_start, "load_end": load1(),
            "forward": forwards[quiet], "pass_forward": [round(f, 1) for f in forwards]}


def wait_quiet(threshold: float, max_wait: float, window: float = 2.0) -> float:
    """Wait (up to ``max_wait`` s) for a ``window`` in which other processes use < ``threshold`` cores; returns
    the cores they used in the last window."""
    hz, deadline = os.sysconf("SC_CLK_TCK"), time.monotonic() + max_wait
    while True:
        busy = _busy_jiffies()
        time.sleep(window)
        used = (_busy_jiffies() - busy) / hz / window
        if used < threshold or time.monotonic() > deadline:
            return used


def _time_forward(run, batch, min_iters=10, min_seconds=2.0) -> float:
    """Median ms/img of ``run(batch)`` over at least ``min_iters`` calls and ``min_seconds`` (4 calls of B0 at batch 1
    took 0.12 s: too few for a stable median)."""
    run(batch)
    times = []
    while len(times) < min_iters or sum(times) < min_seconds:
        start = time.perf_counter()
        run(batch)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times) / len(batch)


def segcli_child(args, info, files, out):
    from segcli.data.image_io import read_image
    from segcli.inference.predict import PredictOptions, run_predict
    from segcli.inference.runners import open_model

    name = args.child
    if name == "segcli-tf-keras":
        os.environ["SEGCLI_FUSED_HEAD"] = "0"
    backend = {"segcli-default": "auto", "segcli-ov-int8": "auto"}.get(name, "openvino" if "-ov-" in name
                                                                      else "tensorflow")
    precision = CONTENDERS[name][2]
    spec = info["segcli_int8"] if name == "segcli-ov-int8" else info["model"]
    opened = open_model(spec, backend=backend, precision="fp32" if name == "segcli-ov-int8" else precision)
    warm = Path(args.work) / "warm"
    warm.mkdir(exist_ok=True)
    for f in files[:args.batch]:
        link = warm / f.name
        if not link.exists():
            link.symlink_to(f)
    images_dir = str(Path(info["images"]))
    options = PredictOptions(out=out, batch_size=args.batch, overlay=False, overwrite=True, backend=backend,
                             precision=precision)
    run_predict([str(warm)], opened, PredictOptions(out=Path(args.work) / "warm_out" / name, batch_size=args.batch,
                                                    overlay=False, overwrite=True))
    # the forward pass alone, as predict calls it
    from segcli.inference.predictor import Predictor

    seg = Predictor(opened.model, batch_size=args.batch, input_size=opened.input_size)
    batch = np.stack([read_image(f) for f in files[:args.batch]])
    timed = _passes(lambda: run_predict([images_dir], opened, options), files, args.passes,
                    lambda: _time_forward(seg._forward, batch))
    timed["engine"] = f"{opened.backend} {opened.precision}"
    return timed


def peer_child(args, info, files, out):
    import cv2

    name = args.child
    run = peer_runner(name, info, args.arch)

    def decode(path):
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)[:, :, ::-1]
        if image.shape[:2] != (SIZE, SIZE):
            image = cv2.resize(image, (SIZE, SIZE), interpolation=cv2.INTER_LINEAR)
        return image

    def one_pass(chunk_files=files):
        for s in range(0, len(chunk_files), args.batch):
            chunk = chunk_files[s:s + args.batch]
            batch = np.stack([decode(p) for p in chunk]).astype(np.float32)
            masks = run(batch)
            for path, mask in zip(chunk, masks):
                cv2.imwrite(str(out / f"{path.stem}.png"), mask.astype(np.uint8))

    start = time.perf_counter()
    one_pass(files[:args.batch])  # warm-up (torch.compile / tf.function tracing happen here)
    log(f"    first batch {time.perf_counter() - start:.1f} s")
    batch = np.stack([decode(p) for p in files[:args.batch]]).astype(np.float32)
    return _passes(one_pass, files, args.passes, lambda: _time_forward(run, batch))


def peer_runner(name, info, arch):
    """A function float32 NHWC [0, 255] batch -> uint8-able (B, 512, 512) class indices, for one peer."""
    threads = len(os.sched_getaffinity(0))
    if name == "ort-hf":
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        session = ort.InferenceSession(info["onnx"], options, providers=["CPUExecutionProvider"])
        return lambda x: session.run(None, {"images": x})[0]
    if name.startswith("ov-hf"):
        import openvino as ov

        precision = name.rsplit("-", 1)[1]
        core = ov.Core()
        model = core.read_model(info["ov_int8"] if precision == "int8" else info["ov"])
        # int8 like segcli's: the ops left in float run in bf16 where the CPU has BF16 (OpenVINO's default on AMX)
        has_bf16 = "BF16" in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")
        bf16 = precision == "bf16" or (precision == "int8" and has_bf16)
        compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "bf16" if bf16 else "f32",
                                                     "PERFORMANCE_HINT": "LATENCY"})
        request = compiled.create_infer_request()

        def run(x):
            request.infer({0: x}, share_inputs=True)
            return request.get_output_tensor(0).data

        return run
    if name.startswith("torch"):
        import torch

        torch.set_num_threads(threads)
        wrapper = torch_wrapper(hf_model(arch, Path(info["hf"])))
        fn = torch.compile(wrapper, dynamic=False) if name == "torch-compile" else wrapper

        def run(x):
            with torch.inference_mode():
                return fn(torch.from_numpy(x)).numpy()

        return run
    if name == "keras-hub":
        import tensorflow as tf

        model = keras_hub_segmenter(arch)
        mean, std = tf.constant(MEAN), tf.constant(STD)

        @tf.function(reduce_retracing=True)
        def masks(x):
            out = model((x - mean) / std, training=False)  # already at input size
            if out.shape[1] != SIZE:
                out = tf.image.resize(out, (SIZE, SIZE), method="bilinear")
            return tf.argmax(out, -1, output_type=tf.int32)

        return lambda x: masks(tf.constant(x)).numpy()
    raise ValueError(name)


# --- parent ---------------------------------------------------------------------------------------------------------
def child_cmd(args, name, arch, batch):
    return [sys.executable, __file__, "--child", name, "--arch", arch, "--batch", str(batch), "--work",
            str(args.work), "--passes", str(args.passes)]


def run_contender(args, env, name, arch, batch) -> dict | None:
    best = None
    for attempt in range(1 + args.retries):
        idle = wait_quiet(args.max_foreign, args.max_wait)
        timeout = args.compile_timeout if name == "torch-compile" else 1800
        start = time.perf_counter()
        try:
            done = subprocess.run(child_cmd(args, name, arch, batch), capture_output=True, text=True, env=env,
                                  timeout=timeout)
        except subprocess.TimeoutExpired:
            log(f"    {name} batch {batch}: timed out after {timeout} s")
            return {"error": f"did not finish within {timeout} s"}
        if done.returncode != 0:
            tail = (done.stderr.strip().splitlines() or ["?"])[-1]
            log(f"    {name} batch {batch}: failed: {tail}")
            return {"error": tail[:200]}
        row = json.loads(done.stdout.strip().splitlines()[-1])
        row["attempt"], row["child_seconds"] = attempt + 1, round(time.perf_counter() - start, 1)
        row["foreign_before"] = round(idle, 2)
        log(f"    {name} b{batch}: {row['ms_per_img']:.1f} ms/img (forward {row['forward']:.1f}), foreign "
            f"{row['foreign_cores']:.2f} cores, load {row['load_start']:.2f}->{row['load_end']:.2f}")
        if best is None or row["foreign_cores"] < best["foreign_cores"]:
            best = row
        if row["foreign_cores"] <= args.max_foreign:
            break
    return best


def fastest_batch(rows: dict) -> tuple[dict, int | None]:
    """The batch sizes whose child ran (batch -> row), and the one with the least ms/img (None if none ran).

    >>> fastest_batch({1: {"ms_per_img": 80.0}, 4: {"ms_per_img": 75.0}, 8: {"error": "timed out"}, 16: None})
    ({1: {'ms_per_img': 80.0}, 4: {'ms_per_img': 75.0}}, 4)
    """
    ok = {b: r for b, r in rows.items() if r and "error" not in r}
    return ok, (min(ok, key=lambda b: ok[b]["ms_per_img"]) if ok else None)


def agreement(work: Path, arch: str, name: str, count: int) -> float | None:
    import cv2

    ref_dir, got_dir = work / "masks" / arch / REFERENCE, work / "masks" / arch / name
    same = total = 0
    for ref_path in sorted(ref_dir.glob("img_*.png"))[:count]:
        got_path = got_dir / ref_path.name
        if not got_path.is_file():
            return None
        ref = cv2.imread(str(ref_path), cv2.IMREAD_UNCHANGED)
        got = cv2.imread(str(got_path), cv2.IMREAD_UNCHANGED)
        same += int((ref == got).sum())
        total += ref.size
    return same / total if total else None


def main_parent(args):
    from segcli.hardware import cpu_info, has_bf16

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "SEGCLI_HOME": str(work / "home")}
    os.environ["SEGCLI_HOME"] = env["SEGCLI_HOME"]
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    load_start = os.getloadavg()
    cpu = cpu_info()
    log(f"{cpu['cpu']}, {cpu['logical_cores']} cores, ISA {', '.join(cpu['isa'])}; load {load_start}")
    if not has_bf16(cpu["isa"]):  # segcli refuses bf16 there, and an emulated peer would measure nothing useful
        args.skip |= {n for n, (_, _, prec) in CONTENDERS.items() if prec == "bf16"}
        args.notes.append("bf16 contenders did not run: this CPU has neither AMX nor AVX-512 BF16.")
        log(args.notes[-1])
    subprocess.run([sys.executable, __file__, "--peak", "--work", str(work)], check=True, env=env)
    peak = json.loads((work / "peak.json").read_text())["gflops_per_s"]
    log(f"fp32 matmul peak {peak:.1f} GFLOP/s")
    results = {}
    for arch in args.models:
        log(f"[{arch}] set-up (weights, import, exports, FLOPs)")
        subprocess.run([sys.executable, __file__, "--setup", "--arch", arch, "--work", str(work), "--images",
                        str(args.images)], check=True, env=env)
        info = json.loads((work / f"setup_{arch}.json").read_text())
        names = [n for n in CONTENDERS if (not args.only or n in args.only) and n not in args.skip]
        if REFERENCE not in names:
            names.insert(0, REFERENCE)
        for name in names:
            rows = {}
            for batch in args.batch_sizes:
                log(f"[{arch}] {name}, batch {batch}")
                rows[batch] = run_contender(args, env, name, arch, batch)
                if name == "torch-compile" and "error" in (rows[batch] or {}):
                    break
            ok, best_batch = fastest_batch(rows)
            if ok:
                # the kept masks are the last run's; agreement does not depend on the batch
                results[(arch, name)] = {**ok[best_batch], "batch": best_batch,
                                         "by_batch": {b: round(r["ms_per_img"], 1) for b, r in ok.items()},
                                         "agreement": None}
            else:
                results[(arch, name)] = {"error": next(iter(rows.values()))["error"]}
        for name in names:
            row = results[(arch, name)]
            if "error" not in row and name != "keras-hub":
                row["agreement"] = agreement(work, arch, name, args.images)
        results[(arch, "_info")] = info
    load_end = os.getloadavg()
    report = render(args, cpu, peak, results, started, load_start, load_end)
    print(report)
    if args.out:
        Path(args.out).write_text(report)
        log(f"wrote {args.out}")
    (work / f"results_{'_'.join(args.models)}.json").write_text(
        json.dumps({f"{a}/{n}": r for (a, n), r in results.items()}, indent=1, default=str))


def render(args, cpu, peak, results, started, load_start, load_end) -> str:
    versions = subprocess.run([sys.executable, "-c", (
        "import tensorflow as tf, keras, torch, transformers, onnxruntime, openvino, nncf, keras_hub;"
        "print(f'TensorFlow {tf.__version__}, Keras {keras.__version__}, PyTorch {torch.__version__}, "
        "transformers {transformers.__version__}, ONNX Runtime {onnxruntime.__version__}, "
        "OpenVINO {openvino.get_version().split(\"-\")[0]}, NNCF {nncf.__version__}, keras-hub {keras_hub.__version__}')")],
        capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}).stdout.strip()
    lines = [
        "# segcli vs peer SegFormer paths, end to end (CPU)",
        "",
        f"Written by `benchmarks/compare_peers.py {' '.join(args.argv)}`".rstrip() + f" on {started}. "
        f"Every contender read the same {args.images} JPEGs ({SIZE}x{SIZE}, made from samples/photos) and wrote a "
        f"{SIZE}x{SIZE} PNG class-index mask per image (decode, forward, bilinear upsample, argmax, PNG write), "
        f"{NUM_CLASSES} classes, the same transformers weights (random init) for all but keras-hub. Each contender "
        f"ran in its own process at each batch size in {args.batch_sizes}; the table shows its best batch. "
        f"Each contender made {args.passes} timed passes over all images after a warm-up batch; ms/img is the pass "
        f"during which other processes used the least CPU ('foreign', in cores; ties: the faster pass).",
        "",
        f"- Machine: {cpu['cpu']}, {cpu['logical_cores']} cores, ISA {', '.join(cpu['isa'])} "
        f"(AMX: {'yes' if any('amx' in f for f in cpu['isa']) else 'no'}). "
        f"Load average (1/5/15 min) at the start {'/'.join(f'{v:.2f}' for v in load_start)}, at the end "
        f"{'/'.join(f'{v:.2f}' for v in load_end)}.",
        f"- {versions}.",
        f"- fp32 matmul peak (TF, 2048^2): {peak:.1f} GFLOP/s.",
        f"- Before each contender the script waited up to {args.max_wait:.0f} s for a 2-s window in which other "
        f"processes used < {args.max_foreign} cores; a contender whose reported pass still had more foreign CPU was "
        f"re-run (up to {args.retries} times) and the quietest try kept. 'load' is `uptime`'s 1-minute load at the "
        "start of the timed passes (it includes this benchmark's own previous contender). The machine is shared "
        "with other engineers' test runs, so rows with foreign > 0.3 are slowed by them.",
        "- GFLOP/img is what the graph executes (TF profiler, full-resolution logits included): segcli routes run "
        "the folded head, every peer the plain head. '% peak' = GFLOP/img x img/s / fp32 peak; 'fwd' columns time "
        "the forward pass alone (segcli: the runner predict calls; peers: the same runtime call on a decoded batch), "
        "timed right after each pass; the row shows the one after its reported pass.",
        *(f"- {note}" for note in args.notes),
        "",
    ]
    for arch in args.models:
        info = results.get((arch, "_info"))
        if not info:
            continue
        rows = [(n, results[(arch, n)]) for n in CONTENDERS if (arch, n) in results]
        ok = [(n, r) for n, r in rows if "error" not in r]
        lines += [f"## SegFormer-{arch.upper()} {SIZE}x{SIZE}, {args.images} JPEGs -> PNG masks "
                  f"(executed GFLOP/img: segcli folded {info['gflops_folded']:.2f}, plain head "
                  f"{info['gflops_plain']:.2f})", "",
                  "| contender | prec. | best batch (ms/img per batch) | e2e ms/img | e2e img/s | x vs fastest peer "
                  "same prec. | fwd ms/img | fwd % fp32 peak | mask agreement vs segcli fp32 Keras | foreign | load |",
                  "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        fastest = {}
        for n, r in ok:
            prec = CONTENDERS[n][2]
            if CONTENDERS[n][1] == "peer" and (prec not in fastest or r["ms_per_img"] < fastest[prec][1]["ms_per_img"]):
                fastest[prec] = (n, r)
        for n, r in rows:
            label, kind, prec = CONTENDERS[n]
            if "error" in r:
                lines.append(f"| {label} | {prec} | failed: {r['error']} | | | | | | | | |")
                continue
            gflops = info["gflops_folded"] if kind == "segcli" else info["gflops_plain"]
            ratio = (f"{fastest[prec][1]['ms_per_img'] / r['ms_per_img']:.2f}" if prec in fastest else "-")
            agree = r.get("agreement")
            agree_text = "n/a (own weights)" if n == "keras-hub" else (f"{100 * agree:.3f}%" if agree is not None
                                                                     else "-")
            by_batch = ", ".join(f"{b}: {ms}" for b, ms in r["by_batch"].items())
            engine = f" [{r['engine']}]" if r.get("engine") else ""
            lines.append(f"| {label}{engine} | {prec} | {r['batch']} ({by_batch}) | {r['ms_per_img']:.1f} | "
                         f"{r['img_per_s']:.2f} | {ratio} | {r['forward']:.1f} | "
                         f"{100 * gflops * 1000 / r['forward'] / peak:.0f}% | {agree_text} | "
                         f"{r['foreign_cores']:.2f} | {r['load_start']:.2f} |")
        lines.append("")
        for prec in ("fp32", "bf16", "int8"):
            seg = [(n, r) for n, r in ok if CONTENDERS[n][1] == "segcli" and CONTENDERS[n][2] == prec
                   and n != REFERENCE]
            if prec in fastest and seg:
                n, r = min(seg, key=lambda nr: nr[1]["ms_per_img"])
                pn, pr = fastest[prec]
                lines.append(f"- {prec}: fastest peer {CONTENDERS[pn][0]} {pr['ms_per_img']:.1f} ms/img; best segcli "
                             f"{CONTENDERS[n][0]} {r['ms_per_img']:.1f} ms/img: **{pr['ms_per_img'] / r['ms_per_img']:.2f}x** "
                             f"(target 1.3x).")
        lines.append("")
    return "\n".join(lines) + "\n"


# --- precision on a trained model: mask agreement and mIoU change (samples/demo_model) ------------------------------
DEMO = ROOT / "samples" / "demo_model"
DATA = ROOT / "samples"


def trained_precision(args) -> str:
    """fp32 (TensorFlow and OpenVINO), bf16 and int8 on a trained model (``--trained-model``, default the demo
    model, on ``--trained-data``, default samples/): agreement with the TensorFlow fp32 masks on every image of the
    data's train and val splits, and mIoU from ``segcli eval data_dir`` (its default split: val)."""
    model_dir, data_dir = Path(args.trained_model), Path(args.trained_data)
    import shutil

    from segcli.data.image_io import is_image_name, read_image
    from segcli.hardware import cpu_info, has_bf16

    segcli = str(Path(sys.executable).with_name("segcli"))
    work = Path(args.work) / "trained" / model_dir.name
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "SEGCLI_HOME": str(Path(args.work) / "home")}
    from segcli.export.openvino_cache import converter_digest

    int8 = work / f"demo_int8_{converter_digest()}"  # a segcli whose graph changed quantizes again
    export = None
    if not (int8 / "model.xml").is_file():
        shutil.rmtree(int8, ignore_errors=True)
        cmd = [segcli, "export", "--model", str(model_dir), "--format", "openvino", "--precision", "int8", "--calib",
               str(data_dir / "train" / "images"), "--data", str(data_dir), "--out", str(int8), "--json"]
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
        export = done.stdout.strip() or done.stderr.strip().splitlines()[-1]
        log(f"int8 export: {export[:400]}")
    ungated = int8.with_name(f"{int8.name}_ungated")
    if not (int8 / "model.xml").is_file() and not (ungated / "model.xml").is_file():
        # the export refused it: build the same IR without the gate (segcli's convert, same calibration images) so
        # its agreement and mIoU can be reported
        code = ("import sys, json, numpy as np, openvino as ov\n"
                "from segcli.export.api import read_samples\n"
                "from segcli.export.openvino_format import convert\n"
                "from segcli.models.load import load\n"
                "from segcli.models.segformer.graph import SegFormerGraph\n"
                "loaded = load(sys.argv[1]); size = tuple(loaded.input_size or (256, 256))\n"
                "calib = read_samples(sys.argv[2], size, limit=300, what='calib')\n"
                "meta = {'num_classes': int(loaded.model.num_classes), 'logits_stride': 4,"
                " 'input_size': list(loaded.input_size) if loaded.input_size else None,"
                " 'precision': 'int8', 'classes': loaded.classes.complete(int(loaded.model.num_classes)).as_dicts()}\n"
                "ir = convert(SegFormerGraph(loaded.model), 'int8', calib, meta)\n"
                "import pathlib; out = pathlib.Path(sys.argv[3]); out.mkdir(parents=True, exist_ok=True)\n"
                "ov.save_model(ir, str(out / 'model.xml'), compress_to_fp16=False)\n"
                "(out / 'segcli.json').write_text(json.dumps(meta))\n")
        subprocess.run([sys.executable, "-c", code, str(model_dir), str(data_dir / "train" / "images"), str(ungated)],
                       check=True, env=env, cwd=ROOT, capture_output=True)
    routes = [("fp32, TensorFlow (reference)", str(model_dir), "tensorflow", "fp32"),
              ("fp32, OpenVINO", str(model_dir), "openvino", "fp32"),
              ("bf16, OpenVINO", str(model_dir), "openvino", "bf16"),
              ("int8, OpenVINO (segcli export --precision int8)", str(int8), "auto", "fp32")]
    if not (int8 / "model.xml").is_file():
        routes.append(("int8, OpenVINO, same IR built without the export's gate", str(ungated), "auto", "fp32"))
    files = [p for d in ("train", "val") for p in sorted((data_dir / d / "images").iterdir()) if is_image_name(p.name)]
    code = ("import sys, json, numpy as np; from segcli.inference.runners import open_model; "
            "from segcli.inference.predictor import Predictor; from segcli.data.image_io import read_image\n"
            "o = open_model(sys.argv[1], backend=sys.argv[2], precision=sys.argv[3])\n"
            "p = Predictor(o.model, input_size=o.input_size)\n"
            "files = sys.argv[5:]\n"
            "masks = [r.mask for r in p.predict([read_image(f) for f in files])]\n"
            "np.savez_compressed(sys.argv[4], *masks)\n")
    rows = []
    cpu = cpu_info()
    for label, spec, backend, precision in routes:
        if not Path(spec).exists():
            rows.append((label, None, None, "int8 export failed"))
            continue
        if precision == "bf16" and not has_bf16(cpu["isa"]):
            rows.append((label, None, None, "not run: this CPU has neither AMX nor AVX-512 BF16"))
            continue
        out = work / f"masks_{len(rows)}.npz"
        subprocess.run([sys.executable, "-c", code, spec, backend, precision, str(out), *map(str, files)],
                       check=True, env=env, cwd=ROOT, capture_output=True)
        done = subprocess.run([segcli, "eval", str(data_dir), "--model", spec, "--backend", backend, "--precision",
                               precision, "--json"], capture_output=True, text=True, env=env, cwd=ROOT)
        miou = json.loads(done.stdout)["miou"] if done.returncode == 0 else None
        rows.append((label, out, miou, "" if done.returncode == 0 else done.stderr.strip().splitlines()[-1]))
        log(f"{label}: mIoU {miou}")
    ref = np.load(rows[0][1])
    name = model_dir.relative_to(ROOT) if model_dir.is_relative_to(ROOT) else model_dir
    data_name = data_dir.relative_to(ROOT) if data_dir.is_relative_to(ROOT) else data_dir
    lines = [f"## Precision on a trained model ({name}, data {data_name})", "",
             f"Written by `benchmarks/compare_peers.py --trained` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
             f" ({cpu['cpu']}, ISA {', '.join(cpu['isa'])}). Mask agreement: pixels whose class equals the "
             f"TensorFlow fp32 mask, over all {len(files)} images of {data_name}/train and /val at their own size. "
             f"mIoU: `segcli eval {data_name} --model M --backend B --precision P` (its default split: val). "
             f"int8: `segcli export --model {name} --format openvino --precision int8 --calib "
             f"{data_name}/train/images --data {data_name}` (NNCF, mIoU budget 0.01 checked by the export).", "",
             "| route | mask agreement vs fp32 TF | mIoU (val) | mIoU change vs fp32 TF | >= 99.5% agreement? |",
             "|---|---:|---:|---:|---|"]
    base = rows[0][2]
    for label, out, miou, note in rows:
        if out is None:
            lines.append(f"| {label} | - | - | - | {note} |")
            continue
        got = np.load(out)
        same = sum(int((got[k] == ref[k]).sum()) for k in ref.files)
        total = sum(ref[k].size for k in ref.files)
        agree = same / total
        change = f"{miou - base:+.4f}" if miou is not None and base is not None else "-"
        lines.append(f"| {label} | {100 * agree:.3f}% | {miou if miou is None else f'{miou:.4f}'} | {change} | "
                     f"{'yes' if agree >= 0.995 else 'no'} |")
    if export:
        lines += ["", f"int8 export's own check: {export_check(export)}"]
    return "\n".join(lines) + "\n"


def export_check(output: str) -> str:
    """What ``segcli export --json`` says of its accuracy gate, in one line (its error line when it refused).

    >>> export_check('{"mask_agreement": 0.99898, "miou_reference": 0.82179, "miou": 0.82211, "passed": true, '
    ...              '"criterion": "mask agreement >= 99%; mIoU drop <= 0.01", "samples": 2}')
    'mask agreement 99.898% on 2 sample images, mIoU 0.8218 -> 0.8221 on all of --data (mask agreement >= 99%; mIoU drop <= 0.01): passed'
    >>> export_check("error: int8 drops mIoU by 0.03, over the 0.01 budget")
    'error: int8 drops mIoU by 0.03, over the 0.01 budget'
    """
    try:
        r = json.loads(output)
    except ValueError:
        return output
    miou = f", mIoU {r['miou_reference']:.4f} -> {r['miou']:.4f} on all of --data" if r.get("miou") is not None else ""
    return (f"mask agreement {100 * r['mask_agreement']:.3f}% on {r['samples']} sample images{miou} "
            f"({r['criterion']}): {'passed' if r['passed'] else 'refused'}")


def shown_argv(argv: list[str]) -> list[str]:
    """The command line for the results header, without ``--work`` and its value (a path on this machine).

    >>> shown_argv(["--models", "b0", "--work", "/tmp/w", "--work=/tmp/v", "--passes", "3"])
    ['--models', 'b0', '--passes', '3']
    """
    shown, skip = [], False
    for arg in argv:
        if not skip and not arg.startswith("--work"):
            shown.append(arg)
        skip = arg == "--work"
    return shown


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="b0", help="comma list of b0, b2")
    parser.add_argument("--batch-sizes", default="1,4")
    parser.add_argument("--images", type=int, default=16, help="JPEGs per pass (a multiple of every batch size)")
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--only", default="", help="comma list of contenders (default: all): " + ", ".join(CONTENDERS))
    parser.add_argument("--skip", default="")
    parser.add_argument("--max-foreign", type=float, default=0.3, help="re-run above this many foreign cores")
    parser.add_argument("--retries", type=int, default=2)
    parser.add_argument("--max-wait", type=float, default=60,
                        help="seconds to wait for a quiet machine (< --max-foreign cores) before each contender")
    parser.add_argument("--compile-timeout", type=int, default=300)
    parser.add_argument("--work", default="/tmp/segcli_peers", help="inputs, exports and masks (reused)")
    parser.add_argument("--out", default=str(Path(__file__).with_name("RESULTS.md")))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--arch", default="b0", help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--setup", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--peak", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--trained", action="store_true",
                        help="precision table on a trained model (agreement, mIoU): its section of --out")
    parser.add_argument("--trained-model", default=str(DEMO), help="with --trained: the model (default: the demo)")
    parser.add_argument("--trained-data", default=str(DATA), help="with --trained: its labelled data (split layout)")
    args = parser.parse_args(argv)
    args.argv = shown_argv(argv)
    if args.child:
        print(json.dumps(run_child(args)))
        return
    if args.setup:
        setup(Path(args.work), args.arch, args.images)
        return
    if args.trained:
        os.environ["SEGCLI_HOME"] = str(Path(args.work) / "home")
        from sections import cpu_kind, write_section

        text = trained_precision(args)
        print(text)  # a run replaces its own (model, kind of CPU) section of --out
        write_section(Path(args.out), text, cpu_kind(), f"compare_peers --trained {Path(args.trained_model).name}")
        return
    if args.peak:
        (Path(args.work) / "peak.json").write_text(json.dumps({"gflops_per_s": measure_peak()}))
        return
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    args.batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    args.only = {s.strip() for s in args.only.split(",") if s.strip()}
    args.skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    args.notes = []
    bad = [m for m in args.models if m not in ARCHS]
    if bad:
        parser.error(f"--models {','.join(bad)}: use b0 and/or b2")
    main_parent(args)


if __name__ == "__main__":
    main()
