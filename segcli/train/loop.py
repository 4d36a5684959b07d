"""``segcli train``: fine-tune a SegFormer on a folder dataset.

A custom ``tf.function`` training loop under a ``tf.distribute`` strategy:
two AdamW optimizers (backbone at ``lr``, decode head at ``lr * head_lr_mult``;
no weight decay on 1-D variables, that is norms and biases), the paper's
warmup + poly schedule per step, cross-entropy with 255 ignored, optional
median-frequency class weights and Dice term. After every epoch: val mIoU
(:mod:`segcli.inference.metrics`), then ``best.keras`` (when improved), the
last checkpoint and ``metrics.csv``, each written atomically, so a run killed
at any moment resumes with ``--resume`` and loses at most the epoch in
progress. Only the chief writes the run directory.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from segcli.train import run_dir as rd
from segcli.errors import DataError, UsageError, WeightsNotFoundError

MIN_IMAGE_SIZE = 32
PAPER_WARMUP_STEPS = 1500


@dataclass
class TrainSettings:
    """Every setting of a run; ``config.json`` holds these, resolved."""

    data: str
    preset: str
    out: str
    epochs: int = 10
    batch_size: int = 8
    image_size: tuple = (512, 512)
    num_classes: int | None = None
    val_fraction: float = 0.1
    seed: int = 0
    lr: float = 6e-5
    head_lr_mult: float = 10.0
    weight_decay: float = 0.01
    beta_1: float = 0.9
    beta_2: float = 0.999
    warmup_steps: int | None = None  # None: min(1500, 10% of all steps)
    warmup_ratio: float = 1e-6
    poly_power: float = 1.0
    class_weights: str = "none"  # none | auto | comma-separated numbers
    dice_weight: float = 0.0
    mixed_precision: bool = False
    strategy: str = "auto"
    patience: int | None = None
    pretrained: bool = True
    scale_min: float = 0.5
    scale_max: float = 2.0
    steps_per_epoch: int | None = None  # None: ceil(train pairs / batch size)
    resolved: dict = field(default_factory=dict)


@dataclass
class TrainResult:
    out: Path
    epochs_run: int
    best_miou: float | None
    best_epoch: int | None
    per_class: list
    class_names: list
    stopped_early: bool
    history: list


def parse_image_size(value) -> tuple:
    """``"512"`` -> (512, 512); ``"384x640"`` -> (384, 640) (height x width).

    >>> parse_image_size("64"), parse_image_size("32x48")
    ((64, 64), (32, 48))
    """
    text = str(value).lower().strip()
    parts = text.split("x")
    try:
        sizes = [int(p) for p in parts]
    except ValueError:
        raise UsageError(f"--image-size {value!r}: give N or HxW in pixels, e.g. 512 or 512x1024.") from None
    if len(sizes) == 1:
        sizes = sizes * 2
    if len(sizes) != 2:
        raise UsageError(f"--image-size {value!r}: give N or HxW in pixels, e.g. 512 or 512x1024.")
    if min(sizes) < MIN_IMAGE_SIZE:
        raise UsageError(f"--image-size {value}: smaller than {MIN_IMAGE_SIZE} pixels; SegFormer downsamples by 32, "
                         f"use at least {MIN_IMAGE_SIZE}.")
    return tuple(sizes)


def validate(s: TrainSettings) -> None:
    """Range checks that need no data; raise UsageError with one line."""
    if s.epochs is None or s.epochs <= 0:
        raise UsageError(f"--epochs must be a positive whole number; got {s.epochs}.")
    if s.batch_size is None or s.batch_size <= 0:
        raise UsageError(f"--batch-size must be a positive whole number; got {s.batch_size}.")
    s.image_size = parse_image_size("x".join(str(v) for v in s.image_size)
                                    if isinstance(s.image_size, (tuple, list)) else s.image_size)
    if s.num_classes is not None and not 2 <= s.num_classes <= 255:
        raise UsageError(f"--num-classes must be between 2 and 255; got {s.num_classes}.")
    for name, value in (("--lr", s.lr), ("--head-lr-mult", s.head_lr_mult)):
        if not value > 0:
            raise UsageError(f"{name} must be positive; got {value}.")
    if s.weight_decay < 0:
        raise UsageError(f"--weight-decay must be 0 or more; got {s.weight_decay}.")
    if s.patience is not None and s.patience <= 0:
        raise UsageError(f"--patience must be a positive number of epochs; got {s.patience}.")
    if s.strategy not in ("auto", "mirrored", "multiworker"):
        raise UsageError(f"--strategy {s.strategy!r}: use auto, mirrored or multiworker.")
    if not 0 < s.scale_min <= s.scale_max:
        raise UsageError(f"scale range {s.scale_min}-{s.scale_max} is invalid; need 0 < min <= max.")
    if s.dice_weight < 0:
        raise UsageError(f"--dice-weight must be 0 or more; got {s.dice_weight}.")


def _tf_config() -> dict:
    text = os.environ.get("TF_CONFIG", "")
    if not text:
        return {}
    try:
        return json.loads(text)
    except ValueError:
        raise UsageError(f"TF_CONFIG is not valid JSON: {text[:80]!r}.") from None


def is_chief(tf_config: dict) -> bool:
    """The chief writes the run directory: task "chief", or worker 0 when the cluster has no chief."""
    task = tf_config.get("task") or {}
    if not task:
        return True
    if task.get("type") == "chief":
        return True
    return task.get("type") == "worker" and int(task.get("index", 0)) == 0 and "chief" not in tf_config.get("cluster", {})


def make_strategy(name: str):
    import tensorflow as tf

    tf_config = _tf_config()
    cluster = tf_config.get("cluster", {})
    n_workers = len(cluster.get("worker", [])) + len(cluster.get("chief", []))
    if name == "multiworker" or (name == "auto" and n_workers > 1):
        if not tf_config:
            raise UsageError("--strategy multiworker needs TF_CONFIG (cluster and task) in the environment; see the "
                             "README section on scale-out.")
        # before anything else touches the TF runtime: collective ops are configured at startup
        return tf.distribute.MultiWorkerMirroredStrategy(), "multiworker"
    gpus = tf.config.list_logical_devices("GPU")
    if name == "auto":
        name = "mirrored" if len(gpus) > 1 else "default"
    if name == "mirrored":
        if gpus:
            return tf.distribute.MirroredStrategy(), "mirrored"
        cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices=cpus, cross_device_ops=tf.distribute.ReductionToOneDevice()), \
            "mirrored"
    return tf.distribute.get_strategy(), "default"


def _class_weights(spec: str, report, num_classes: int):
    from segcli.data.check import median_frequency_weights

    spec = (spec or "none").strip().lower()
    if spec == "none":
        return None
    if spec == "auto":
        return [round(w, 6) for w in median_frequency_weights(report)]
    try:
        weights = [float(v) for v in spec.split(",")]
    except ValueError:
        raise UsageError(f"--class-weights {spec!r}: use none, auto, or {num_classes} comma-separated numbers.") from None
    if len(weights) != num_classes or min(weights) < 0:
        raise UsageError(f"--class-weights: {len(weights)} values for {num_classes} classes; give one non-negative "
                         f"number per class.")
    return weights


def _load_model(s: TrainSettings, num_classes: int, reporter):
    from segcli.models import load as factory

    try:
        return factory.load(s.preset, num_classes=num_classes, load_weights=None if s.pretrained else False,
                            activation=None)
    except WeightsNotFoundError:
        reporter.message(f"Pretrained weights for '{s.preset}' are not in the local cache: training starts from "
                         f"scratch (random initialisation). Import them first for a better start.")
        return factory.load(s.preset, num_classes=num_classes, load_weights=False, activation=None)


def _make_optimizer(base_lr, variables, s: TrainSettings, total_steps: int):
    import keras

    from segcli.train.schedule import WarmupPoly

    schedule = WarmupPoly(base_lr, total_steps, s.resolved["warmup_steps"], s.poly_power, s.warmup_ratio)
    opt = keras.optimizers.AdamW(learning_rate=schedule, weight_decay=s.weight_decay, beta_1=s.beta_1,
                                 beta_2=s.beta_2, epsilon=1e-8)
    opt.exclude_from_weight_decay(var_list=[v for v in variables if len(v.shape) <= 1])
    opt.build(variables)
    return opt


def export_model(model):
    """A float32 copy of the trained logits model with the default softmax output, for ``best.keras``."""
    from segcli.models.segformer.model import SegFormer

    config = model.get_config()
    config["activation"] = "auto"
    backbone = dict(config["backbone"])
    backbone["config"] = {**backbone["config"], "dtype": "float32"}
    config["backbone"] = backbone
    clone = SegFormer.from_config(config)
    clone.set_weights([np.asarray(w, dtype=np.float32) if np.asarray(w).dtype.kind == "f" else w
                       for w in model.get_weights()])
    return clone


def _scalar(tag: str, value: float) -> None:
    """A TensorBoard scalar through TF's core summary op (the tensorboard package is not needed)."""
    import tensorflow as tf
    from tensorflow.core.framework import summary_pb2

    metadata = summary_pb2.SummaryMetadata()
    metadata.plugin_data.plugin_name = "scalars"
    tf.summary.write(tag, tf.constant(float(value), tf.float32), metadata=metadata.SerializeToString())


def _save_best(model, out: Path) -> None:
    clone = export_model(model)
    tmp = out / f".best.{os.getpid()}.tmp.keras"
    try:
        clone.save(str(tmp))
        os.replace(tmp, out / rd.BEST)
    finally:
        tmp.unlink(missing_ok=True)


def _resume_settings(s: TrainSettings, out: Path) -> TrainSettings:
    saved = rd.read_json(out / rd.CONFIG)["settings"]
    if Path(saved["data"]).resolve() != Path(s.data).resolve():
        raise UsageError(f"--resume: the run in {out} trained on {saved['data']}, not {s.data}; give the same DATA.")
    names = {f.name for f in dataclasses.fields(TrainSettings)}
    saved = {k: v for k, v in saved.items() if k in names}
    saved["image_size"] = tuple(saved["image_size"])
    saved["out"] = str(out)
    saved["strategy"] = s.strategy  # the hardware may differ on resume
    return TrainSettings(**saved)


def _check_data(s: TrainSettings):
    from segcli.data.check import check_dataset
    from segcli.data.folder_dataset import discover

    ds = discover(s.data, val_fraction=s.val_fraction, seed=s.seed, num_classes=s.num_classes)
    report = check_dataset(ds)
    return ds, report


class DatasetRefused(DataError):
    """The data check found problems; ``report`` has them all."""

    def __init__(self, message, report):
        super().__init__(message)
        self.report = report


def train(s: TrainSettings, reporter=None, resume: bool = False, overwrite: bool = False) -> TrainResult:
    """Run (or resume) a training run; see the module docstring."""
    from segcli.cli.train_progress import Reporter

    validate(s)
    out = Path(s.out)
    tf_config = _tf_config()
    chief = is_chief(tf_config)
    reporter = reporter if (reporter is not None and chief) else Reporter()
    if chief:
        rd.prepare(out, resume, overwrite)
    if resume:
        s = _resume_settings(s, out)
    ds, report = _check_data(s)
    if not report.ok:
        raise DatasetRefused(f"{s.data}: the data check found {len(report.problems)} problem(s), training refused; "
                             f"first: {report.first_problem()}", report)
    if len(ds.splits["train"]) < 1 or len(ds.splits["val"]) < 1:
        raise DataError(f"{s.data}: needs at least one train and one val pair.")
    for note in ds.notes:
        reporter.message(f"note: {note}")
    return _run(s, ds, report, out, chief, reporter, resume, tf_config)


def _run(s, ds, report, out, chief, reporter, resume, tf_config):  # noqa: C901  (one loop, read top to bottom)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import tensorflow as tf

    from segcli.data.pipeline import train_dataset, val_dataset
    from segcli.train.losses import segmentation_loss
    from segcli.inference.metrics import confusion_matrix, summarize

    strategy, strategy_name = make_strategy(s.strategy)
    replicas = strategy.num_replicas_in_sync
    if s.batch_size % replicas:
        raise UsageError(f"--batch-size {s.batch_size} does not split over {replicas} replicas; use a multiple of "
                         f"{replicas}.")
    num_classes = ds.num_classes
    names = ds.class_names
    class_weights = _class_weights(s.class_weights, report, num_classes)
    train_pairs, val_pairs = ds.splits["train"], ds.splits["val"]
    steps = s.steps_per_epoch or max(1, math.ceil(len(train_pairs) / s.batch_size))
    total_steps = steps * s.epochs
    warmup = s.warmup_steps if s.warmup_steps is not None else min(PAPER_WARMUP_STEPS, total_steps // 10)
    s.resolved = {"num_classes": num_classes, "class_names": names, "class_source": ds.class_source,
                  "layout": ds.layout, "val_source": ds.val_source, "train_pairs": len(train_pairs),
                  "val_pairs": len(val_pairs), "steps_per_epoch": steps, "total_steps": total_steps,
                  "warmup_steps": warmup, "class_weight_values": class_weights, "replicas": replicas,
                  "strategy": strategy_name, "precision": "mixed_bfloat16" if s.mixed_precision else "float32",
                  "head_lr": s.lr * s.head_lr_mult, "workers": max(1, len(tf_config.get("cluster", {}).get("worker", [])))}

    keras.utils.set_random_seed(s.seed)
    if s.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
    with strategy.scope():
        loaded = _load_model(s, num_classes, reporter)
        model = loaded.model
        backbone_ids = {id(v) for v in model.backbone.trainable_variables}
        bb_vars = [v for v in model.trainable_variables if id(v) in backbone_ids]
        head_vars = [v for v in model.trainable_variables if id(v) not in backbone_ids]
        opt_bb = _make_optimizer(s.lr, bb_vars, s, total_steps)
        opt_head = _make_optimizer(s.lr * s.head_lr_mult, head_vars, s, total_steps)
    s.resolved["model_source"] = loaded.source
    from segcli.models.registry import PRESETS

    from_preset = str(s.preset) in PRESETS
    s.resolved["pretrained_loaded"] = bool(loaded.record) or not from_preset
    start_from = (f"weights from {loaded.source}" if s.resolved["pretrained_loaded"]
                  else "random initialisation (no pretrained weights loaded)")
    if not resume:
        reporter.message(
            f"Training {s.preset} on {s.data}: {len(train_pairs)} train / {len(val_pairs)} val pairs, "
            f"{num_classes} classes, {s.image_size[0]}x{s.image_size[1]} crops, batch {s.batch_size}, "
            f"{s.epochs} epochs x {steps} steps, {strategy_name} strategy ({replicas} replica(s)), "
            f"{s.resolved['precision']}; {start_from}. Run directory: {out}")

    state = {"epoch": 0, "history": [], "best_miou": None, "best_epoch": None, "bad_epochs": 0,
             "best_per_class": [], "stopped_early": False}
    if resume and (out / rd.LAST).is_file():
        weights, opt_states, saved_state = rd.load_checkpoint(out / rd.LAST)
        model.set_weights(weights)
        for opt, values in zip((opt_bb, opt_head), opt_states):
            for var, value in zip(opt.variables, values):
                var.assign(value)
        state.update(saved_state)
        reporter.message(f"Resuming {out} after epoch {state['epoch']} of {s.epochs}.")
    elif resume:
        reporter.message(f"Resuming {out}: no finished epoch yet, starting at epoch 1.")

    if chief:
        out.mkdir(parents=True, exist_ok=True)
        rd.write_json(out / rd.CONFIG, {"format": "segcli-run-v1", "settings": dataclasses.asdict(s)})
        rd.write_json(out / rd.CLASSES, {"classes": ds.classes})
        rd.write_splits(out, ds)
        writer = tf.summary.create_file_writer(str(out / rd.LOGS))

    all_vars = bb_vars + head_vars
    n_bb = len(bb_vars)

    def replica_step(images, labels):
        with tf.GradientTape() as tape:
            logits = model(images, training=True)
            loss = segmentation_loss(labels, logits, class_weights, s.dice_weight)
            scaled = loss / replicas
        grads = tape.gradient(scaled, all_vars)
        opt_bb.apply_gradients(zip(grads[:n_bb], bb_vars))
        opt_head.apply_gradients(zip(grads[n_bb:], head_vars))
        return loss

    @tf.function
    def train_step(images, labels):
        per_replica = strategy.run(replica_step, args=(images, labels))
        return strategy.reduce(tf.distribute.ReduceOp.MEAN, per_replica, axis=None)

    @tf.function(reduce_retracing=True)
    def predict(images, size):
        logits = tf.cast(model(images, training=False), tf.float32)
        logits = tf.image.resize(logits, size, method="bilinear")
        return tf.argmax(logits, axis=-1, output_type=tf.int32)[0]

    def validate_epoch():
        cm = np.zeros((num_classes, num_classes), dtype=np.int64)
        for image, label, size in val_dataset(ds, val_pairs, s.image_size):
            cm += confusion_matrix(label.numpy(), predict(image, size).numpy(), num_classes)
        return summarize(cm, names)

    augment_options = {"scale_range": (s.scale_min, s.scale_max)}
    epoch = state["epoch"]
    if epoch:  # a resumed run: fresh dropout/drop-path draws, seeded by where it resumes
        keras.utils.set_random_seed(s.seed * 1000 + epoch)
    while epoch < s.epochs and not state["stopped_early"]:
        data = train_dataset(ds, train_pairs, epoch=epoch, seed=s.seed, batch_size=s.batch_size, steps=steps,
                             crop_hw=s.image_size, augment_options=augment_options)
        reporter.start_epoch(epoch + 1, s.epochs, steps, s.batch_size)
        start = time.perf_counter()
        losses = []
        for images, labels in strategy.experimental_distribute_dataset(data):
            loss = float(train_step(images, labels))
            if not math.isfinite(loss):
                raise DataError(f"training diverged at epoch {epoch + 1} (loss {loss}); lower --lr.")
            losses.append(loss)
            reporter.step(loss)
        seconds = time.perf_counter() - start
        summary = validate_epoch()
        epoch += 1
        miou = summary["miou"]
        improved = miou is not None and (state["best_miou"] is None or miou > state["best_miou"])
        if improved:
            state.update(best_miou=miou, best_epoch=epoch, bad_epochs=0,
                         best_per_class=[{"name": c["name"], "iou": c["iou"]} for c in summary["per_class"]])
        else:
            state["bad_epochs"] += 1
        row = {"epoch": epoch, "train_loss": float(np.mean(losses)), "val_miou": miou,
               "val_pixel_accuracy": summary["pixel_accuracy"], "val_mean_accuracy": summary["mean_accuracy"],
               "lr_backbone": float(opt_bb.learning_rate), "lr_head": float(opt_head.learning_rate),
               "images_per_sec": steps * s.batch_size / seconds, "seconds": seconds, "best": improved}
        state["history"].append(row)
        state["epoch"] = epoch
        if s.patience and state["bad_epochs"] >= s.patience and epoch < s.epochs:
            state["stopped_early"] = True
        if chief:
            if improved:
                _save_best(model, out)
            rd.save_checkpoint(out / rd.LAST, model.get_weights(),
                               [[np.asarray(v) for v in opt.variables] for opt in (opt_bb, opt_head)], state)
            rd.write_metrics(out, state["history"])
            with writer.as_default(step=epoch):
                for key in ("train_loss", "val_miou", "val_pixel_accuracy", "lr_backbone", "lr_head",
                            "images_per_sec"):
                    if row[key] is not None:
                        _scalar(key, row[key])
            writer.flush()
        reporter.end_epoch(row)
        if state["stopped_early"]:
            reporter.message(f"Early stop: val mIoU did not improve for {s.patience} epochs.")
    return TrainResult(out=out, epochs_run=state["epoch"], best_miou=state["best_miou"],
                       best_epoch=state["best_epoch"], per_class=state["best_per_class"], class_names=names,
                       stopped_early=state["stopped_early"], history=state["history"])
