"""segcli.inference.fused: the folded head and the phase-wise upsample+argmax match the Keras model."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from segcli.inference.fused import FusedSegFormer
from segcli.models.load import create_segmenter


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(0)  # one model on every run: agreement thresholds below are not a lottery
    model = create_segmenter("segformer_test", num_classes=5)
    rng = np.random.default_rng(0)
    # Trained-looking BatchNorm statistics and a larger classifier, so folding and ties are really exercised.
    bn = model.head.fuse_norm
    bn.set_weights([rng.uniform(0.5, 1.5, w.shape) if i in (0, 3) else rng.normal(0, 0.3, w.shape)
                    for i, w in enumerate(bn.get_weights())])
    cls = model.head.classifier
    cls.set_weights([w * 100 for w in cls.get_weights()])
    return model


def _reference(model, images):
    logits = model.quarter_logits(images)  # the plain Keras head, not the folded one
    up = tf.image.resize(logits, images.shape[1:3], method="bilinear")
    return logits.numpy(), np.argmax(up.numpy(), axis=-1)


@pytest.mark.parametrize("shape", [(2, 64, 96), (1, 66, 90)])  # exact x4 phases, and the resize fallback
def test_masks_and_logits_match_the_keras_model(model, shape):
    images = np.random.default_rng(1).uniform(0, 255, (*shape, 3)).astype("float32")
    fused = FusedSegFormer(model)
    logits, reference = _reference(model, images)
    np.testing.assert_allclose(fused.predict_logits(images), logits, atol=1e-4 * np.abs(logits).max())
    masks = fused.masks(images)
    assert masks.shape == shape and masks.dtype == np.uint8
    assert (masks == reference).mean() > 0.999


def test_uint8_batches_work_as_a_segmenter_runner(model):
    """The fused runner inside a Predictor gives the argmax of the Keras head's quarter logits, resized bilinearly
    from the network input straight to each image's size (the upsampling predict does, one step, logits not softmax)."""
    from segcli.inference.predictor import Predictor

    rng = np.random.default_rng(2)
    images = [rng.integers(0, 256, (40, 72, 3), dtype=np.uint8) for _ in range(3)]
    fused = Predictor(FusedSegFormer(model), batch_size=2).predict(images)
    # 40x72 is not a multiple of 32: the Predictor resizes to 32x64 (INTER_AREA, shrinking) and back.
    import cv2

    for image, result in zip(images, fused):
        small = cv2.resize(image, (64, 32), interpolation=cv2.INTER_AREA).astype("float32")
        logits = model.quarter_logits(small[None])
        plain = np.argmax(tf.image.resize(logits, (40, 72), method="bilinear")[0].numpy(), axis=-1)
        assert result.mask.shape == (40, 72)
        assert (result.mask == plain).mean() > 0.999


def test_fused_route_runs_a_mixed_bfloat16_model():
    """The folded weights follow the features' dtype, so a mixed_bfloat16 model runs and returns float32 logits."""
    from segcli.bench.bench import dtype_policy

    keras.utils.set_random_seed(0)
    model = create_segmenter("segformer_test", num_classes=5)
    with dtype_policy(True):
        half = create_segmenter("segformer_test", num_classes=5)
    half.set_weights(model.get_weights())
    images = np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 3)).astype("float32")
    logits = FusedSegFormer(half).predict_logits(images.astype("uint8"))
    assert logits.dtype == np.float32 and logits.shape == (2, 16, 16, 5)
    agree = np.mean(FusedSegFormer(half).masks(images) == FusedSegFormer(model).masks(images))
    assert agree > 0.95
