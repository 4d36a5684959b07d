"""``segcli train``: train a SegFormer on a folder dataset (the library side; the CLI is ``cli/train_cmd.py``).

:class:`Trainer` runs a custom ``tf.function`` loop under a ``tf.distribute`` strategy, in four parts:
:meth:`~Trainer.setup` (strategy, model, recipe, optimizers, the input pipeline built once for the whole
run), :meth:`~Trainer.train_epoch`, :meth:`~Trainer.validate` (val mIoU, :mod:`segcli.inference.metrics`)
and :meth:`~Trainer.end_of_epoch` (best / early stop, then the run directory via
:class:`~segcli.train.checkpoint.RunWriter`). Two AdamW optimizers: backbone at ``lr``, decode head at
``lr * head_lr_mult``; no weight decay on 1-D variables (norms and biases); the paper's warmup + poly schedule
per step; cross-entropy with 255 ignored, optional class weights and Dice term. Every file is written
atomically, so a run killed at any moment resumes and loses at most the epoch in progress.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from segcli.data.check import warning_lines
from segcli.errors import DataError, WeightsNotFoundError
from segcli.train import checkpoint as ck
from segcli.train import distribute
from segcli.train.progress import Reporter
from segcli.train.opening import opening_line
from segcli.train.report import VAL_PANELS, val_panel, write_run_report
from segcli.train.settings import SettingError, TrainSettings, resolve_recipe, validate


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


class DatasetRefused(DataError):
    """The data check found problems; ``report`` has them all."""

    def __init__(self, message, report):
        super().__init__(message)
        self.report = report


class TrainingDiverged(SettingError):
    """The loss became NaN or infinite (the message names the settings to change)."""


def _load_model(s: TrainSettings, num_classes: int, reporter):
    from segcli.models import load as factory

    try:
        return factory.load(s.preset, num_classes=num_classes, load_weights=None if s.pretrained else False,
                            activation=None)
    except WeightsNotFoundError:
        reporter.message(f"Pretrained weights for '{s.preset}' are not in the local cache: training starts from "
                         f"scratch (random initialisation). Import them first for a better start.")
        return factory.load(s.preset, num_classes=num_classes, load_weights=False, activation=None)


def inference_copy(model):
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


def _check_data(s: TrainSettings):
    from segcli.data.check import check_dataset
    from segcli.data.folder_dataset import discover

    ds = discover(s.data, val_fraction=s.val_fraction, seed=s.seed, num_classes=s.num_classes, label_map=s.label_map,
                  keep_classes=s.classes)
    return ds, check_dataset(ds)


def train(s: TrainSettings, reporter=None, resume: bool = False, overwrite: bool = False, given: dict | None = None,
          on_ignored=None) -> TrainResult:
    """Run (or resume) a training run; see the module docstring.

    On ``resume``, ``on_ignored`` (if given) hears the settings in ``given`` (the ones the caller set) that differ
    from the run's (:func:`~segcli.train.checkpoint.resumed_settings`): the run keeps its own.
    """
    validate(s)
    out = Path(s.out)
    tf_config = distribute.tf_config()
    chief = distribute.is_chief(tf_config)
    reporter = reporter if (reporter is not None and chief) else Reporter()
    if chief:
        ck.prepare(out, resume, overwrite, s.preset)
    if resume:
        s, ignored = ck.resumed_settings(out, s, given)
        if ignored and on_ignored is not None and chief:
            on_ignored(ignored)
    from segcli.checkpoints.resolve import resolve

    resolve(s.preset)  # an unknown name or a missing file fails now, before the data check and TensorFlow
    ds, report = _check_data(s)
    if not report.ok:  # a dataset without a val split is one of its problems
        raise DatasetRefused(f"{s.data}: the data check found {len(report.problems)} problem(s), training refused; "
                             f"first: {report.first_problem()}", report)
    for line in [*(f"note: {note}" for note in ds.notes), *warning_lines(report)]:
        reporter.message(line)
    trainer = Trainer(s, ds, report, out, chief, reporter, resume, tf_config)
    try:
        trainer.setup()
    except BaseException:
        trainer.restore_process_settings()
        raise
    return trainer.run()


class Trainer:
    """One run: :meth:`setup`, then per epoch :meth:`train_epoch`, :meth:`validate`, :meth:`end_of_epoch`."""

    def __init__(self, s: TrainSettings, ds, report, out: Path, chief: bool, reporter, resume: bool, tf_config):
        self.s, self.ds, self.report, self.out = s, ds, report, Path(out)
        self.chief, self.reporter, self.resume, self.tf_config = chief, reporter, resume, tf_config
        self.state = {"epoch": 0, "history": [], "best_miou": None, "best_epoch": None, "bad_epochs": 0,
                      "best_per_class": [], "stopped_early": False}
        self._traced = False
        self._undo = contextlib.ExitStack()  # process-wide precision settings, restored when the run ends

    # --- setup -------------------------------------------------------------------------------------------------
    def setup(self) -> None:
        """Strategy, precision, model, recipe, optimizers, the run directory's start files, steps and data."""
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        import keras
        import tensorflow as tf

        from segcli.train.losses import class_weights
        from segcli.hardware import cpu_info, onednn_enabled
        from segcli.train.precision import accurate_bias_grads, bf16_graph_rewrite, check_precision

        s, ds = self.s, self.ds
        self.strategy, strategy_name = distribute.make_strategy(s.strategy)
        replicas = self.strategy.num_replicas_in_sync
        if s.batch_size % replicas:
            raise SettingError(f"`batch_size` {s.batch_size} does not split over {replicas} replicas; use a "
                               f"multiple of {replicas}.")
        gpus = len(tf.config.list_logical_devices("GPU"))
        plan = check_precision(s.precision, gpus=gpus, cpu_flags=set(cpu_info()["isa"]), onednn=bool(onednn_enabled()))
        if plan.keras_policy != "float32":
            accurate_bias_grads()
        if plan.graph_rewrite:
            self._undo.enter_context(bf16_graph_rewrite())
        self.steps = s.steps_per_epoch or max(1, math.ceil(len(ds.splits["train"]) / s.batch_size))
        previous_policy = keras.mixed_precision.global_policy().name
        self._undo.callback(keras.mixed_precision.set_global_policy, previous_policy)
        keras.utils.set_random_seed(s.seed)
        keras.mixed_precision.set_global_policy(plan.keras_policy)
        with self.strategy.scope():
            loaded = _load_model(s, ds.num_classes, self.reporter)
        from segcli.models.registry import PRESETS

        pretrained_loaded = bool(loaded.record) or str(s.preset) not in PRESETS
        recipe = resolve_recipe(s, pretrained_loaded, self.steps)
        self.recipe_name = s.resolved.get("recipe", recipe.name) if self.resume else recipe.name
        self.class_weights = class_weights(s.class_weights, self.report, ds.num_classes)
        self.model = loaded.model
        self._make_optimizers()
        s.resolved = {
            "num_classes": ds.num_classes, "class_names": ds.class_names, "class_source": ds.class_source,
            "layout": ds.layout, "val_source": ds.val_source, "train_pairs": len(ds.splits["train"]),
            "val_pairs": len(ds.splits["val"]), "steps_per_epoch": self.steps, "total_steps": self.total_steps,
            "warmup_steps": s.warmup_steps, "class_weight_values": self.class_weights, "replicas": replicas,
            "strategy": strategy_name, "precision": s.precision, "keras_policy": plan.keras_policy,
            "precision_engine": plan.engine,
            "head_lr": s.lr * s.head_lr_mult, "recipe": self.recipe_name, "model_source": loaded.source,
            "checkpoint_classes": loaded.trained_classes,
            "pretrained_loaded": pretrained_loaded,
            "workers": max(1, len(self.tf_config.get("cluster", {}).get("worker", [])))}
        if not self.resume:
            self.reporter.message(opening_line(s, self.steps, self.out,
                                               recipe if self.recipe_name == recipe.name else None))
        self._restore()
        self.writer = ck.RunWriter(self.out, self.chief)
        self._build_data()  # before the start files: resolves the cache mode they record
        self.writer.start(dataclasses.asdict(s), ds)
        self._build_steps()

    def restore_process_settings(self) -> None:
        """Undo :meth:`setup`'s process-wide settings: the Keras dtype policy and TF's bf16 rewrite switch."""
        self._undo.close()

    def _make_optimizers(self) -> None:
        from segcli.train.precision import DynamicLossScale
        from segcli.train.schedule import make_optimizer

        s, model = self.s, self.model
        self.total_steps = self.steps * s.epochs
        with self.strategy.scope():
            backbone_ids = {id(v) for v in model.backbone.trainable_variables}
            self.bb_vars = [v for v in model.trainable_variables if id(v) in backbone_ids]
            self.head_vars = [v for v in model.trainable_variables if id(v) not in backbone_ids]
            self.opt_bb = make_optimizer(s.lr, self.bb_vars, s, self.total_steps)
            self.opt_head = make_optimizer(s.lr * s.head_lr_mult, self.head_vars, s, self.total_steps)
            self.loss_scale = DynamicLossScale() if s.precision == "fp16" else None

    def _restore(self) -> None:
        if self.resume and (self.out / ck.LAST).is_file():
            weights, opt_states, saved_state = ck.load_checkpoint(self.out / ck.LAST)
            self.model.set_weights(weights)
            for opt, values in zip((self.opt_bb, self.opt_head), opt_states):
                for var, value in zip(opt.variables, values):
                    var.assign(value)
            self.state.update(saved_state)
            self.reporter.message(f"Resuming {self.out} after epoch {self.state['epoch']} of {self.s.epochs}.")
        elif self.resume:
            self.reporter.message(f"Resuming {self.out}: no finished epoch yet, starting at epoch 1.")
        if self.state["epoch"]:  # a resumed run: fresh dropout/drop-path draws, seeded by where it resumes
            import keras

            keras.utils.set_random_seed(self.s.seed * 1000 + self.state["epoch"])

    def _build_data(self) -> None:
        """The input pipeline, once for all remaining epochs (decoding the pairs once when cached)."""
        import tempfile

        from segcli.data.pipeline import PairSource, choose_cache, index_pairs, train_dataset, val_dataset

        s, ds = self.s, self.ds
        train_entries, val_entries = index_pairs(ds.splits["train"]), index_pairs(ds.splits["val"])
        cache = choose_cache(s.cache, train_entries + val_entries)
        s.resolved["cache"] = cache
        cache_dir = self.out / ck.CACHE_DIR if self.chief else Path(tempfile.mkdtemp(prefix="segcli-cache-"))
        if cache != "none":
            size = sum(e.decoded_bytes for e in train_entries + val_entries) / 1e9
            self.reporter.message(f"Decoding {len(train_entries)} train + {len(val_entries)} val pairs once into "
                                  f"{'memory' if cache == 'memory' else cache_dir} ({size:.2f} GB) ...")
        start = time.perf_counter()
        train_source = PairSource(ds, None, cache=cache, cache_dir=cache_dir, entries=train_entries)
        val_source = PairSource(ds, None, cache=cache, cache_dir=cache_dir, entries=val_entries)
        if cache != "none":
            self.reporter.message(f"Decoded in {time.perf_counter() - start:.1f} s.")
        first = self.state["epoch"]
        data = train_dataset(ds, ds.splits["train"], epoch=first, epochs=max(s.epochs - first, 1), seed=s.seed,
                             batch_size=s.batch_size, steps=self.steps, crop_hw=s.image_size,
                             augment_options={"scale_range": (s.scale_min, s.scale_max)}, source=train_source)
        self._batches = iter(self.strategy.experimental_distribute_dataset(data))
        self.val_data = val_dataset(ds, ds.splits["val"], s.image_size, source=val_source)

    def _build_steps(self) -> None:
        import tensorflow as tf

        from segcli.graph_function import graph_function
        from segcli.train.losses import segmentation_loss

        model, strategy, loss_scale = self.model, self.strategy, self.loss_scale
        bb_vars, head_vars = self.bb_vars, self.head_vars
        all_vars, n_bb = bb_vars + head_vars, len(bb_vars)
        replicas = strategy.num_replicas_in_sync
        weights, dice = self.class_weights, self.s.dice_weight

        def replica_step(images, labels):
            with tf.GradientTape() as tape:
                logits = model(images, training=True)
                loss = segmentation_loss(labels, logits, weights, dice)
                scaled = loss / replicas if loss_scale is None else loss / replicas * loss_scale.scale
            grads = tape.gradient(scaled, all_vars)
            if loss_scale is not None:
                grads, _ = loss_scale.unscale(grads)
            self.opt_bb.apply_gradients(zip(grads[:n_bb], bb_vars))
            self.opt_head.apply_gradients(zip(grads[n_bb:], head_vars))
            return loss

        @graph_function
        def train_step(images, labels):
            per_replica = strategy.run(replica_step, args=(images, labels))
            return strategy.reduce(tf.distribute.ReduceOp.MEAN, per_replica, axis=None)

        @graph_function(reduce_retracing=True)
        def predict(images, size):
            logits = tf.cast(model(images, training=False), tf.float32)
            logits = tf.image.resize(logits, size, method="bilinear")
            return tf.argmax(logits, axis=-1, output_type=tf.int32)[0]

        self._train_step, self._predict = train_step, predict

    # --- one epoch -------------------------------------------------------------------------------------------
    def train_epoch(self):
        """Run one epoch's steps; (losses, seconds). TrainingDiverged on a NaN or infinite loss."""
        s, epoch = self.s, self.state["epoch"] + 1
        self.reporter.start_epoch(epoch, s.epochs, self.steps, s.batch_size)
        if not self._traced:
            self.reporter.phase("tracing the training step (the first step takes longer) ...")
        start = time.perf_counter()
        losses = []
        for step in range(1, self.steps + 1):
            images, labels = next(self._batches)
            loss = float(self._train_step(images, labels))
            if not math.isfinite(loss):
                hint = "lower `lr`" + (" or use `precision` fp32" if s.precision != "fp32" else "")
                raise TrainingDiverged(f"training diverged: the loss is {loss} at epoch {epoch}, step {step} "
                                       f"({s.precision}, lr {s.lr:g}); {hint}.")
            losses.append(loss)
            self.reporter.step(loss)
        self._traced = True
        return losses, time.perf_counter() - start

    def validate(self) -> dict:
        """Val mIoU and per-class IoU (:func:`segcli.inference.metrics.summarize`)."""
        from segcli.inference.metrics import confusion_matrix, summarize

        self.reporter.phase("validating ...")
        n = self.ds.num_classes
        cm = np.zeros((n, n), dtype=np.int64)
        self.val_panels = []
        for image, label, size in self.val_data:
            pred = self._predict(image, size).numpy()
            cm += confusion_matrix(label.numpy(), pred, n)
            if len(self.val_panels) < VAL_PANELS:
                self.val_panels.append(val_panel(np.asarray(image)[0], label.numpy(), pred, self.ds.classes.colors))
        return summarize(cm, self.ds.class_names)

    def end_of_epoch(self, losses, seconds: float, summary: dict) -> dict:
        """Best model, early stop, then the run directory; the metrics row."""
        s, state = self.s, self.state
        epoch = state["epoch"] + 1
        miou = summary["miou"]
        improved = miou is not None and (state["best_miou"] is None or miou > state["best_miou"])
        if improved:
            state.update(best_miou=miou, best_epoch=epoch, bad_epochs=0,
                         best_per_class=[{"name": c["name"], "iou": c["iou"]} for c in summary["per_class"]])
        else:
            state["bad_epochs"] += 1
        row = {"epoch": epoch, "train_loss": float(np.mean(losses)), "val_miou": miou,
               "val_pixel_accuracy": summary["pixel_accuracy"], "val_mean_accuracy": summary["mean_accuracy"],
               "lr_backbone": float(self.opt_bb.learning_rate), "lr_head": float(self.opt_head.learning_rate),
               "images_per_sec": self.steps * s.batch_size / seconds, "seconds": seconds, "best": improved}
        state["history"].append(row)
        state["epoch"] = epoch
        if s.patience and state["bad_epochs"] >= s.patience and epoch < s.epochs:
            state["stopped_early"] = True
        self.writer.end_of_epoch(inference_copy(self.model) if improved and self.chief else None,
                                 self.model.get_weights(),
                                 [[np.asarray(v) for v in opt.variables] for opt in (self.opt_bb, self.opt_head)],
                                 state, row, getattr(self, "val_panels", []))
        self.reporter.end_epoch(row)
        if state["stopped_early"]:
            self.reporter.message(f"Early stop: val mIoU did not improve for {s.patience} epochs.")
        return row

    def write_report(self) -> None:
        """report.html in the run directory: the best epoch's model on the val split (segcli eval --report)."""
        if self.chief and self.state["best_epoch"] is not None:
            self.reporter.phase("writing report.html for the best epoch ...")
            write_run_report(self.s, self.out)

    def run(self) -> TrainResult:
        """All remaining epochs; the Keras dtype policy and TF's bf16 rewrite switch are restored afterwards."""
        try:
            while self.state["epoch"] < self.s.epochs and not self.state["stopped_early"]:
                losses, seconds = self.train_epoch()
                self.end_of_epoch(losses, seconds, self.validate())
        finally:
            self.restore_process_settings()
        self.write_report()
        st = self.state
        return TrainResult(out=self.out, epochs_run=st["epoch"], best_miou=st["best_miou"],
                           best_epoch=st["best_epoch"], per_class=st["best_per_class"],
                           class_names=self.ds.class_names, stopped_early=st["stopped_early"], history=st["history"])
