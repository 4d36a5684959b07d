"""Test-time augmentation: the spec parser, flip on mirror-symmetric cases, scales against a TF reference."""

from __future__ import annotations

import numpy as np
import pytest

from segcli.errors import UsageError
from segcli.inference.predictor import Predictor
from segcli.inference.tta import TTA, TTASpec, parse_tta
from tests.inference.predict_fixtures import smooth


@pytest.fixture(scope="module")
def segformer():
    import keras

    from segcli.models.load import create_segmenter

    keras.utils.set_random_seed(5)
    model = create_segmenter("segformer_test", num_classes=3)
    head = model.head.classifier
    weights = head.get_weights()
    head.set_weights([weights[0] * 30, weights[1]])  # several classes per image
    return model


def flip_equivariant_model(num_classes=3, seed=0):
    """Per-pixel 1x1 conv, then 4x4 average pooling: its output on a mirrored image is the mirrored output."""
    import keras

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((None, None, 3))
    x = keras.layers.Rescaling(1 / 127.5, -1.0)(inputs)
    x = keras.layers.Conv2D(8, 1, activation="tanh")(x)
    x = keras.layers.Conv2D(num_classes, 1)(x)
    return keras.Model(inputs, keras.layers.AveragePooling2D(4)(x))


def softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


@pytest.mark.parametrize("text, spec", [
    ("flip", TTASpec(True, (1.0,))),
    ("scales=0.75,1.0,1.25", TTASpec(False, (0.75, 1.0, 1.25))),
    ("flip,scales=1.25,0.75", TTASpec(True, (0.75, 1.25))),
    (" scales=0.5 , flip ", TTASpec(True, (0.5,))),
])
def test_parse(text, spec):
    assert parse_tta(text) == spec
    assert parse_tta(str(spec)) == spec  # the summary's form reads back


@pytest.mark.parametrize("text, why", [
    ("mirror", "use flip, scales=S1,S2,... or both, for example flip,scales=0.75,1.0,1.25."),
    ("flip,0.5", "use flip, scales=S1,S2,... or both, for example flip,scales=0.75,1.0,1.25."),
    ("scales=0.1", "scale 0.1 is outside 0.25..4; use flip, scales=S1,S2,... or both, for example "
                   "flip,scales=0.75,1.0,1.25."),
    ("scales=", "use flip, scales=S1,S2,... or both, for example flip,scales=0.75,1.0,1.25."),
])
def test_parse_errors_are_one_line(text, why):
    with pytest.raises(UsageError) as exc:
        parse_tta(text, name="--tta")
    assert str(exc.value) == f"--tta {text!r}: {why}"


def test_flip_of_a_flip_equivariant_model_changes_nothing():
    seg = Predictor(flip_equivariant_model(), batch_size=2)
    images = [smooth(64, 96, 1), smooth(32, 64, 2)]
    plain = seg.predict(images, probs=True)
    tta = TTA(seg, parse_tta("flip"))
    flipped = tta.run([tta.prepare(im) for im in images], probs=True)
    for p, f in zip(plain, flipped):
        assert np.array_equal(p.mask, f.mask)
        np.testing.assert_allclose(p.probs.astype(np.float32), f.probs.astype(np.float32), atol=1e-3)
        assert len(np.unique(p.mask)) > 1


def test_flip_makes_a_segformer_mask_of_a_symmetric_image_symmetric(segformer):
    half = smooth(64, 48, 3)
    image = np.concatenate([half, half[:, ::-1]], axis=1)  # 64 x 96, mirror-symmetric
    seg = Predictor(segformer)
    plain = seg.predict([image])[0].mask
    tta = TTA(seg, parse_tta("flip"))
    mask = tta.run([tta.prepare(image)])[0].mask
    assert (mask == mask[:, ::-1]).mean() > 0.999
    assert (plain != plain[:, ::-1]).any()  # the model alone is not symmetric: the test can fail
    # reference: the Keras model's own logits of the image and of its mirror, probabilities averaged
    z = segformer.quarter_logits(image[None].astype(np.float32))[0].numpy()
    zf = segformer.quarter_logits(image[None, :, ::-1].astype(np.float32))[0].numpy()[:, ::-1]
    mean = (softmax(z) + softmax(zf)) / 2
    np.testing.assert_allclose(tta.logits([tta.prepare(image)])[0], np.log(mean), atol=1e-4)


def test_scales_match_a_tf_reference_average(segformer):
    import cv2
    import tensorflow as tf

    image = smooth(96, 128, 4)  # model size 96x128; scales 0.75 -> 64x96, 1.25 -> 128x160
    seg = Predictor(segformer, batch_size=3)
    tta = TTA(seg, parse_tta("scales=0.75,1.0,1.25"))
    assert tta.sizes(image.shape[:2]) == [(64, 96), (96, 128), (128, 160)]
    probs = []
    for h, w in ((64, 96), (96, 128), (128, 160)):
        x = image if (h, w) == image.shape[:2] else cv2.resize(
            image, (w, h), interpolation=cv2.INTER_AREA if h < 96 else cv2.INTER_LINEAR)
        z = segformer.quarter_logits(x[None].astype(np.float32))
        probs.append(tf.nn.softmax(tf.image.resize(z, (24, 32), method="bilinear"))[0].numpy())
    mean = np.mean(probs, axis=0)
    views = tta.prepare(image)
    np.testing.assert_allclose(tta.logits([views])[0], np.log(mean), atol=1e-4)
    # final mask: argmax of the averaged probabilities upsampled to the image (mmsegmentation's order)
    expected = tf.argmax(tf.image.resize(mean[None], (96, 128), method="bilinear")[0], -1).numpy()
    got = tta.run([views], probs=True)[0]
    assert (got.mask == expected).mean() > 0.99
    assert (got.mask != seg.predict([image])[0].mask).any()  # the scales did change something
    np.testing.assert_allclose(got.probs.astype(np.float32).sum(-1), 1.0, atol=5e-3)


def test_a_single_view_is_plain_prediction(segformer):
    image = smooth(64, 96, 6)
    seg = Predictor(segformer)
    tta = TTA(seg, TTASpec(False, (1.0,)))
    assert np.array_equal(tta.run([tta.prepare(image)])[0].mask, seg.predict([image])[0].mask)


def test_refusals(segformer):
    with pytest.raises(UsageError, match="runs in whole mode; slide mode already averages"):
        TTA(Predictor(segformer, mode="slide", tile=32), parse_tta("flip"))
    import keras

    fixed = keras.Model(*(lambda i: (i, keras.layers.AveragePooling2D(4)(keras.layers.Conv2D(2, 1)(i))))(
        keras.Input((64, 64, 3))))
    with pytest.raises(UsageError) as exc:
        TTA(Predictor(fixed), parse_tta("scales=0.5,1.0"))
    assert str(exc.value) == ("test-time scales (scales=0.5,1) need a model that accepts any input size; this one "
                              "only takes 64x64 (use flip alone).")
    TTA(Predictor(fixed), parse_tta("flip"))  # flip alone is fine
