"""Training parts on their own: the loss ignores 255, the schedule, the optimizer groups, class weights."""

from __future__ import annotations

import numpy as np
import pytest

from segcli.data.image_size import parse_image_size
from segcli.errors import UsageError
from segcli.train.losses import class_weights, cross_entropy, dice_loss, segmentation_loss
from segcli.train.schedule import WarmupPoly, make_optimizer
from segcli.train.settings import TrainSettings


def _logits(labels, num_classes, confidence=8.0):
    return (np.eye(num_classes)[np.where(labels == 255, 0, labels)] * confidence).astype("float32")


def test_cross_entropy_leaves_ignored_pixels_out():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, (2, 8, 8)).astype("uint8")
    logits = rng.normal(size=(2, 8, 8, 3)).astype("float32")
    ignored = labels.copy()
    ignored[:, :4] = 255
    scrambled = logits.copy()
    scrambled[:, :4] = 100.0 * rng.normal(size=scrambled[:, :4].shape)  # whatever is predicted there
    kept = float(cross_entropy(ignored, logits))
    assert float(cross_entropy(ignored, scrambled)) == pytest.approx(kept, rel=1e-6)
    manual = -np.log(np.take_along_axis(np.exp(logits) / np.exp(logits).sum(-1, keepdims=True),
                                        labels[..., None].astype(int), -1))[:, 4:].mean()
    assert kept == pytest.approx(manual, rel=1e-5)


def test_class_weights_and_dice():
    labels = np.array([[[0, 0, 0, 1]]], "uint8")
    logits = np.zeros((1, 1, 4, 2), "float32")
    assert float(cross_entropy(labels, logits, [1.0, 3.0])) == pytest.approx(np.log(2), rel=1e-6)
    assert float(dice_loss(labels, _logits(labels, 2))) < 0.01
    assert float(segmentation_loss(labels, logits, dice_weight=1.0)) > float(segmentation_loss(labels, logits))


def test_warmup_then_poly_matches_the_formula():
    s = WarmupPoly(6e-5, total_steps=1000, warmup_steps=100, power=1.0, warmup_ratio=1e-6)
    for t in (0, 50, 100, 500, 999):
        poly = 6e-5 * (1 - t / 1000)
        warm = 1e-6 + (1 - 1e-6) * min(t / 100, 1.0)
        assert float(s(t)) == pytest.approx(poly * warm, rel=1e-5, abs=1e-12)


def test_adamw_groups_skip_decay_on_norms_and_biases():
    from segcli.models.load import create_segmenter

    model = create_segmenter("segformer_test", num_classes=2, activation=None)
    variables = model.trainable_variables
    settings = TrainSettings(data="", preset="", out="", lr=0.1, weight_decay=0.5, warmup_steps=0)
    opt = make_optimizer(0.1, variables, settings, total_steps=10)
    before = [np.array(v) for v in variables]
    opt.apply_gradients([(np.zeros(v.shape, "float32"), v) for v in variables])  # only decay can move weights
    for v, old in zip(variables, before):
        factor = 1.0 if old.ndim <= 1 else 1 - 0.1 * 0.5
        np.testing.assert_allclose(np.array(v), old * factor, rtol=1e-5, atol=1e-7, err_msg=v.path)


def test_class_weight_spellings():
    class R:
        histogram = [{"train_pixels": 30, "train_image_pixels": 40}, {"train_pixels": 10, "train_image_pixels": 40}]
    assert class_weights("none", R, 2) is None
    assert class_weights("auto", R, 2) == pytest.approx([2 / 3, 2.0])
    assert class_weights("1,4", R, 2) == [1.0, 4.0]
    with pytest.raises(UsageError, match="class_weights: 3 values for 2 classes"):
        class_weights("1,2,3", R, 2)


def test_image_size_forms():
    assert parse_image_size("512") == (512, 512) and parse_image_size("256x512") == (256, 512)
    with pytest.raises(UsageError, match="smaller than 32"):
        parse_image_size("31")


def test_library_errors_name_settings_and_the_cli_names_flags():
    from segcli.cli.train_cmd import flag_of
    from segcli.train.settings import SettingError, validate

    with pytest.raises(SettingError) as info:
        validate(TrainSettings(data="d", preset="p", out="o", batch_size=0))
    assert str(info.value) == "batch_size must be a positive whole number; got 0."
    assert info.value.render(flag_of) == "--batch-size must be a positive whole number; got 0."
    with pytest.raises(SettingError, match=r"^precision 'fp8': use fp32, bf16 or fp16\.$"):
        validate(TrainSettings(data="d", preset="p", out="o", precision="fp8"))


def test_recipes_fill_only_what_the_caller_left_open():
    from segcli.train.settings import PAPER, SCRATCH, resolve_recipe

    paper = TrainSettings(data="d", preset="p", out="o")
    assert resolve_recipe(paper, pretrained_loaded=True, steps_per_epoch=500) is PAPER
    assert (paper.lr, paper.head_lr_mult, paper.epochs, paper.warmup_steps) == (6e-5, 10.0, 10, 500)  # 10% of 5000
    scratch = TrainSettings(data="d", preset="p", out="o", head_lr_mult=4.0)
    assert resolve_recipe(scratch, pretrained_loaded=False, steps_per_epoch=12) is SCRATCH
    assert scratch.lr == SCRATCH.lr and scratch.head_lr_mult == 4.0 and scratch.class_weights == SCRATCH.class_weights
    assert scratch.epochs == -(-SCRATCH.min_steps // 12)  # a small set trains for more epochs
    assert scratch.warmup_steps == int(SCRATCH.warmup_share * scratch.epochs * 12)


def test_precision_refusals_name_the_hardware():
    from segcli.train.precision import check_precision
    from segcli.train.settings import SettingError

    with pytest.raises(SettingError, match="precision fp16 needs a GPU"):
        check_precision("fp16", gpus=0, cpu_flags={"avx512_bf16"})
    with pytest.raises(SettingError, match="precision bf16 needs a CPU with AMX or AVX-512 BF16"):
        check_precision("bf16", gpus=0, cpu_flags={"avx2", "avx512f", "avx512_vnni"})

    def plan(*args, **kwargs):
        chosen = check_precision(*args, **kwargs)
        return chosen.keras_policy, chosen.graph_rewrite

    assert plan("bf16", gpus=0, cpu_flags={"amx_bf16"}, onednn=True) == ("float32", True)  # TF's oneDNN rewrite
    assert plan("bf16", gpus=0, cpu_flags={"avx512_bf16"}, onednn=False) == ("mixed_bfloat16", False)
    assert plan("bf16", gpus=1, cpu_flags=set(), onednn=True) == ("mixed_bfloat16", False)
    assert plan("fp16", gpus=1, cpu_flags=set()) == ("mixed_float16", False)
    assert plan("fp32", gpus=0, cpu_flags={"amx_bf16"}, onednn=True) == ("float32", False)


def test_fp16_loss_scale_skips_non_finite_gradients_and_halves():
    import tensorflow as tf

    from segcli.train.precision import DynamicLossScale

    scale = DynamicLossScale(initial=8.0, growth_interval=2)
    grads, finite = scale.unscale([tf.constant([8.0, 16.0])])
    assert bool(finite) and grads[0].numpy().tolist() == [1.0, 2.0] and float(scale.scale) == 8.0
    grads, finite = scale.unscale([tf.constant([np.inf, 1.0])])
    assert not bool(finite) and grads[0].numpy().tolist() == [0.0, 0.0] and float(scale.scale) == 4.0
    scale.unscale([tf.constant([1.0])])
    scale.unscale([tf.constant([1.0])])
    assert float(scale.scale) == 8.0  # two finite steps in a row: doubled


@pytest.mark.parametrize("layer", ["dense", "conv"])
def test_bf16_bias_gradients_are_summed_in_float32(layer):
    """TF's own bf16 BiasAdd gradient was up to 36% off over 8,192 rows; segcli's stays at bf16's rounding."""
    import keras
    import tensorflow as tf

    from segcli.train.precision import accurate_bias_grads

    accurate_bias_grads()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 32, 32, 16)).astype(np.float32)
    upstream = (rng.normal(size=(8, 32, 32, 24)) + 0.3).astype(np.float32)
    built = (keras.layers.Dense(24, dtype="mixed_bfloat16") if layer == "dense"
             else keras.layers.Conv2D(24, 3, padding="same", dtype="mixed_bfloat16"))
    built.build(x.shape)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.cast(built(x), tf.float32) * upstream)
    grad = tape.gradient(loss, built.bias).numpy()
    reference = tf.cast(tf.cast(upstream, tf.bfloat16), tf.float64).numpy().sum((0, 1, 2))  # what flows back
    assert np.abs(grad - reference).max() / np.abs(reference).max() < 0.01


def test_eta_of_the_epoch_and_the_run():
    from segcli.train.progress import EtaClock

    clock = EtaClock(epochs=3, steps=4, batch_size=2)
    clock.start_epoch(2, now=0.0)
    for t in (30.0, 31.0, 32.0):  # tracing, then 1 s a step
        clock.step(now=t)
    clock.validation_seconds = 5.0
    assert clock.epoch_eta() == 1.0 and clock.run_eta() == 1.0 + 4.0 + 5.0
    assert clock.images_per_sec() == 2.0
