"""Training throughput: ``segcli train`` against keras-hub's ``SegFormerImageSegmenter.fit``, same data, same run.

For each model (SegFormer B0 and B2, random init, 5 classes) both trainers get the same synthetic dataset
(``segcli data synth``: N train images plus a couple of val images at the crop size), the same batch size, the
same number of train images per epoch and the same number of epochs (2). Each trainer runs in its own
subprocess, so memory and thread pools start equal. The reported number is the last epoch's images per second;
the first epoch includes tracing.

- segcli: the real CLI, ``segcli train DATA --preset segformer_bX --scratch --image-size S --epochs 2 ...``.
  Its ``metrics.csv`` column ``images_per_sec`` is ``steps * batch / seconds`` where the seconds cover the
  epoch's train steps only (input pipeline + forward/backward/update); the per-epoch validation runs after
  the clock stops (see ``segcli/train/loop.py``).
- keras-hub: ``MiTBackbone`` + ``SegFormerBackbone`` + ``SegFormerImageSegmenter`` (its output is
  full-resolution logits, so ``from_logits=True``), compiled with AdamW(6e-5, weight_decay 0.01) and
  ``SparseCategoricalCrossentropy(ignore_class=255)``, no metrics, ``jit_compile=False`` (XLA was measured
  3-5x slower on CPU). A tf.data pipeline over the same train PNGs: decode, then segcli's own augmentation
  function (random rescale at the from-scratch range, pad, random crop, flip, photometric distortion: the same
  augmentations as segcli's side), ImageNet normalisation, batch, prefetch. A callback times the epoch
  (``on_epoch_begin`` to ``on_epoch_end``; there is no validation data, so that is the train steps only).

Both sides run ``ceil(N / batch)`` full batches per epoch (segcli wraps its permutation to fill the last batch;
keras-hub reads a repeated, shuffled dataset with ``steps_per_epoch``).

Usage, from the repository root with the ``bench`` extra installed (it provides keras-hub)::

    pip install -e '.[bench]'
    python benchmarks/train_throughput.py --quick      # smoke check: B0, 128 px, 16 images, batch 4
    python benchmarks/train_throughput.py --write      # B0 and B2 at 512 px: writes benchmarks/TRAIN_RESULTS.md

Progress goes to stderr, the Markdown report to stdout.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

from sections import cpu_kind, write_section  # benchmarks/sections.py, next to this script

HERE = Path(__file__).resolve()
RESULTS_FILE = HERE.parent / "TRAIN_RESULTS.md"
EPOCHS = 2
NUM_CLASSES = 5  # segcli's synthetic dataset
VAL_IMAGES = 2  # segcli validates every epoch (outside its clock); keep that cheap
SEED = 0
IGNORE_INDEX = 255
LEARNING_RATE = 6e-5
WEIGHT_DECAY = 0.01
IMAGENET_MEAN = (0.485 * 255, 0.456 * 255, 0.406 * 255)
IMAGENET_STD = (0.229 * 255, 0.224 * 255, 0.225 * 255)
QUICK = {"models": "b0", "size": 128, "images": 16, "batch_size": 4}

ARCHS = {
    "b0": {"preset": "segformer_b0", "hidden_dims": [32, 64, 160, 256], "depths": [2, 2, 2, 2],
           "projection_filters": 256},
    "b2": {"preset": "segformer_b2", "hidden_dims": [64, 128, 320, 512], "depths": [3, 4, 6, 3],
           "projection_filters": 768},
}
MIT_SHARED = {"num_layers": 4, "layerwise_num_heads": [1, 2, 5, 8], "layerwise_sr_ratios": [8, 4, 2, 1],
              "layerwise_patch_sizes": [7, 3, 3, 3], "layerwise_strides": [4, 2, 2, 2], "max_drop_path_rate": 0.1}
QUIET_TF = {"TF_CPP_MIN_LOG_LEVEL": "3", "KERAS_BACKEND": "tensorflow"}


def log(message: str) -> None:
    print(f"[train_throughput] {message}", file=sys.stderr, flush=True)


def load_1min() -> float:
    return os.getloadavg()[0]


# --- machine --------------------------------------------------------------------------------------------------------
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def cpu_isa() -> str:
    """The vector ISA flags that matter here, from segcli's own probe (AMX said yes or no)."""
    from segcli.hardware import cpu_info, has_amx

    info = cpu_info()
    return f"{', '.join(info.get('isa', []))} (AMX: {'yes' if has_amx() else 'no'})"


def machine_info() -> dict:
    return {"cpu": cpu_model(), "isa": cpu_isa(), "cores": os.cpu_count(), "python": platform.python_version(),
            "tensorflow": package_version("tensorflow"), "keras": package_version("keras"),
            "keras-hub": package_version("keras-hub"), "segcli": package_version("segcli")}


# --- subprocess helpers ---------------------------------------------------------------------------------------------
def segcli_command() -> list[str]:
    """The installed ``segcli`` console script, preferring the one next to this interpreter."""
    beside = Path(sys.executable).parent / "segcli"
    if beside.is_file():
        return [str(beside)]
    found = shutil.which("segcli")
    if found is None:
        sys.exit("segcli is not installed in this environment: pip install -e '.[bench]'")
    return [found]


def run_checked(command: list[str], what: str) -> subprocess.CompletedProcess:
    env = {**os.environ, **QUIET_TF}
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).splitlines()[-30:])
        sys.exit(f"{what} failed (exit {done.returncode}):\n{tail}")
    return done


def last_json_line(text: str) -> dict:
    for line in reversed(text.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise ValueError("no JSON line in the output")


# --- data -----------------------------------------------------------------------------------------------------------
def make_dataset(root: Path, train_images: int, size: int) -> Path:
    """``segcli data synth`` with ``train_images`` train and VAL_IMAGES val images of ``size`` px."""
    data = root / "synth"
    total = train_images + VAL_IMAGES
    command = [*segcli_command(), "data", "synth", str(data), "--n", str(total), "--size", str(size),
               "--seed", str(SEED), "--val-fraction", repr(VAL_IMAGES / total), "--json"]
    summary = json.loads(run_checked(command, "segcli data synth").stdout)
    if summary["train"] != train_images:
        sys.exit(f"segcli data synth wrote {summary['train']} train images, expected {train_images}")
    return data


# --- segcli side ----------------------------------------------------------------------------------------------------
def read_metrics(run_dir: Path) -> list[dict]:
    with open(run_dir / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def bench_segcli(data: Path, arch: str, size: int, batch: int, run_dir: Path) -> dict:
    command = [*segcli_command(), "train", str(data), "--preset", ARCHS[arch]["preset"], "--scratch",
               "--image-size", str(size), "--epochs", str(EPOCHS), "--batch-size", str(batch),
               "--out", str(run_dir), "--seed", str(SEED), "--json"]
    run_checked(command, f"segcli train ({arch})")
    rows = read_metrics(run_dir)
    if len(rows) != EPOCHS:
        sys.exit(f"{run_dir / 'metrics.csv'} has {len(rows)} epochs, expected {EPOCHS}")
    last = rows[-1]
    return {"img_per_s": float(last["images_per_sec"]), "seconds": float(last["seconds"]),
            "first_epoch_s": float(rows[0]["seconds"]), "loss": float(last["train_loss"])}


# --- keras-hub side (runs in a worker subprocess: this file with --worker) ------------------------------------------
def bench_keras_hub(data: Path, arch: str, size: int, batch: int, steps: int) -> dict:
    spec = {"data": str(data), "arch": arch, "size": size, "batch": batch, "steps": steps}
    command = [sys.executable, str(HERE), "--worker", json.dumps(spec)]
    return last_json_line(run_checked(command, f"keras-hub worker ({arch})").stdout)


def build_keras_hub_segmenter(arch: str, size: int):
    import keras_hub

    spec = ARCHS[arch]
    encoder = keras_hub.models.MiTBackbone(layerwise_depths=spec["depths"], hidden_dims=spec["hidden_dims"],
                                           image_shape=(size, size, 3), **MIT_SHARED)
    backbone = keras_hub.models.SegFormerBackbone(image_encoder=encoder,
                                                  projection_filters=spec["projection_filters"])
    # compile=False: a keras-hub Task otherwise compiles itself in __init__ with CategoricalAccuracy (one-hot
    # labels), and Keras keeps those metrics when recompiled with metrics=None.
    return keras_hub.models.SegFormerImageSegmenter(backbone=backbone, num_classes=NUM_CLASSES, compile=False)


def compile_for_training(model) -> None:
    import keras

    model.compile(optimizer=keras.optimizers.AdamW(learning_rate=LEARNING_RATE, weight_decay=WEIGHT_DECAY),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=IGNORE_INDEX),
                  metrics=[], jit_compile=False)


def train_pairs(data: Path) -> tuple[list[str], list[str]]:
    images = sorted((data / "train" / "images").glob("*.png"))
    masks = [data / "train" / "masks" / p.name for p in images]
    missing = [str(m) for m in masks if not m.is_file()]
    if missing:
        raise FileNotFoundError(f"no mask for {missing[:3]}")
    return [str(p) for p in images], [str(m) for m in masks]


def augment_normalise(image, mask, seed, size: int):
    """segcli's own augmentation (``segcli.data.pipeline.augment``: random rescale at the from-scratch recipe's
    range, pad, crop, flip, photometric distortion), then ImageNet normalisation: the same work as segcli's side.
    """
    import tensorflow as tf

    from segcli.data.pipeline import augment
    from segcli.train.settings import SCRATCH

    image, label = augment(image, tf.cast(mask[..., 0], tf.uint8), seed, (size, size), scale_range=SCRATCH.scale)
    image = (image - tf.constant(IMAGENET_MEAN)) / tf.constant(IMAGENET_STD)
    return image, tf.cast(label, tf.int32)


def keras_hub_dataset(data: Path, size: int, batch: int):
    import tensorflow as tf

    images, masks = train_pairs(data)

    def decode(image_path, mask_path):
        image = tf.io.decode_png(tf.io.read_file(image_path), channels=3)
        mask = tf.io.decode_png(tf.io.read_file(mask_path), channels=1)
        return image, mask

    pairs = tf.data.Dataset.from_tensor_slices((images, masks))
    pairs = pairs.shuffle(len(images), seed=SEED, reshuffle_each_iteration=True).repeat()
    pairs = pairs.map(decode, num_parallel_calls=tf.data.AUTOTUNE).enumerate()
    pairs = pairs.map(lambda i, pair: augment_normalise(*pair, tf.stack([tf.constant(SEED, tf.int64), i]), size),
                      num_parallel_calls=tf.data.AUTOTUNE)
    return pairs.batch(batch, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def make_epoch_timer():
    import keras

    class EpochTimer(keras.callbacks.Callback):
        """Wall seconds of each epoch's train steps (fit gets no validation data)."""

        def __init__(self):
            super().__init__()
            self.seconds: list[float] = []
            self.losses: list[float] = []
            self._start = 0.0

        def on_epoch_begin(self, epoch, logs=None):
            self._start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self._start)
            self.losses.append(float((logs or {}).get("loss", float("nan"))))

    return EpochTimer()


def keras_hub_worker(spec: dict) -> None:
    """Train the keras-hub segmenter for EPOCHS epochs and print one JSON line with the last epoch's numbers."""
    for key, value in QUIET_TF.items():
        os.environ.setdefault(key, value)
    import keras

    keras.utils.set_random_seed(SEED)
    model = build_keras_hub_segmenter(spec["arch"], spec["size"])
    compile_for_training(model)
    timer = make_epoch_timer()
    model.fit(keras_hub_dataset(Path(spec["data"]), spec["size"], spec["batch"]), epochs=EPOCHS,
              steps_per_epoch=spec["steps"], callbacks=[timer], verbose=0)
    if not all(math.isfinite(loss) for loss in timer.losses):
        sys.exit(f"keras-hub training diverged: epoch losses {timer.losses}")
    images = spec["steps"] * spec["batch"]
    print(json.dumps({"img_per_s": images / timer.seconds[-1], "seconds": timer.seconds[-1],
                      "first_epoch_s": timer.seconds[0], "loss": timer.losses[-1]}), flush=True)


# --- orchestration --------------------------------------------------------------------------------------------------
def bench_model(arch: str, args, data: Path, workdir: Path) -> dict:
    steps = math.ceil(args.images / args.batch_size)
    row = {"arch": arch, "steps": steps, "images_per_epoch": steps * args.batch_size}
    for name, run in (("segcli", lambda: bench_segcli(data, arch, args.size, args.batch_size,
                                                      workdir / f"run-{arch}")),
                      ("keras_hub", lambda: bench_keras_hub(data, arch, args.size, args.batch_size, steps))):
        before = load_1min()
        start = time.perf_counter()
        log(f"{arch}: {name} training, {EPOCHS} epochs x {steps} steps of {args.batch_size} "
            f"at {args.size}px (load {before:.2f})")
        result = run()
        result.update(load_before=before, load_after=load_1min(), wall_s=time.perf_counter() - start)
        log(f"{arch}: {name} {result['img_per_s']:.2f} img/s in epoch {EPOCHS} "
            f"(epoch 1 {result['first_epoch_s']:.1f} s, whole run {result['wall_s']:.0f} s)")
        row[name] = result
    row["ratio"] = row["segcli"]["img_per_s"] / row["keras_hub"]["img_per_s"]
    return row


def format_report(rows: list[dict], args, machine: dict, load: tuple[float, float], command: str) -> str:
    lines = [
        "# Training throughput: segcli train vs keras-hub SegFormerImageSegmenter.fit",
        "",
        f"Generated by `{command}`: random-init SegFormer, {NUM_CLASSES} classes, {args.size}x{args.size} crops, "
        f"batch {args.batch_size}, {args.images} synthetic train images "
        f"(`segcli data synth`), {EPOCHS} epochs; img/s of epoch {EPOCHS} (train steps only, validation excluded).",
        "",
        f"Machine: {machine['cpu']}, {machine['cores']} cores, ISA {machine['isa']}; Python {machine['python']}, "
        f"TensorFlow {machine['tensorflow']}, Keras {machine['keras']}, keras-hub {machine['keras-hub']}, "
        f"segcli {machine['segcli']}. Load average (1 min) {load[0]:.2f} before, {load[1]:.2f} after.",
        "",
        "| model | images/epoch | segcli img/s | keras-hub img/s | segcli / keras-hub "
        "| segcli epoch 1 (s) | keras-hub epoch 1 (s) | load before → after (segcli; keras-hub) |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        ours, theirs = row["segcli"], row["keras_hub"]
        lines.append(
            f"| SegFormer {row['arch'].upper()} | {row['images_per_epoch']} | {ours['img_per_s']:.2f} "
            f"| {theirs['img_per_s']:.2f} | {row['ratio']:.2f}x | {ours['first_epoch_s']:.1f} "
            f"| {theirs['first_epoch_s']:.1f} | {ours['load_before']:.2f} → {ours['load_after']:.2f}; "
            f"{theirs['load_before']:.2f} → {theirs['load_after']:.2f} |")
    lines += [
        "",
        "Both sides run the same augmentation function (segcli's: random rescale 0.75-1.5, pad, crop, flip, "
        "photometric distortion). keras-hub runs without XLA (`jit_compile=False`). Both run with TensorFlow's "
        f"{'BFC' if args.tf_allocator == 'bfc' else 'default'} CPU allocator "
        f"(`TF_CPU_ALLOCATOR_USE_BFC={os.environ['TF_CPU_ALLOCATOR_USE_BFC']}`).",
    ]
    return "\n".join(lines) + "\n"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="b0,b2", help="Comma-separated subset of: " + ",".join(ARCHS))
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--images", type=int, default=32, help="Train images (per epoch, rounded up to batches).")
    parser.add_argument("--size", type=int, default=512, help="Image and crop side in pixels.")
    parser.add_argument("--write", action="store_true", help=f"Write the report to {RESULTS_FILE.name}.")
    parser.add_argument("--quick", action="store_true",
                        help="Smoke check: " + ", ".join(f"{k}={v}" for k, v in QUICK.items()) + ".")
    parser.add_argument("--tf-allocator", choices=("bfc", "default"), default="bfc",
                        help="TensorFlow's CPU allocator for both trainers (bfc: segcli's default, and keras-hub's "
                             "faster setting too).")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        for key, value in QUICK.items():
            setattr(args, key, value)
    unknown = [m for m in args.models.split(",") if m not in ARCHS]
    if unknown:
        parser.error(f"unknown model(s) {unknown}; choose from {list(ARCHS)}")
    if args.images < 1 or args.batch_size < 1:
        parser.error("--images and --batch-size must be at least 1")
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.worker:
        keras_hub_worker(json.loads(args.worker))
        return
    command = "python benchmarks/train_throughput.py " + " ".join(sys.argv[1:] if argv is None else argv)
    os.environ["TF_CPU_ALLOCATOR_USE_BFC"] = "true" if args.tf_allocator == "bfc" else "false"  # both children
    machine = machine_info()
    load_start = load_1min()
    log(f"{machine['cpu']}, {machine['cores']} cores, load {load_start:.2f}")
    with tempfile.TemporaryDirectory(prefix="segcli-train-bench-") as tmp:
        workdir = Path(tmp)
        log(f"writing {args.images} + {VAL_IMAGES} synthetic images of {args.size}px")
        data = make_dataset(workdir, args.images, args.size)
        rows = [bench_model(arch, args, data, workdir) for arch in args.models.split(",")]
    report = format_report(rows, args, machine, (load_start, load_1min()), command.strip())
    print(report, end="")
    if args.write:
        write_section(RESULTS_FILE, report, cpu_kind(), "train_throughput.py")
        log(f"wrote {RESULTS_FILE}")


if __name__ == "__main__":
    main()
