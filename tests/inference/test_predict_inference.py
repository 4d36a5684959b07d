"""The inference core: masks equal the model's own argmax, slide mode equals a naive full-buffer reference."""

from __future__ import annotations

import numpy as np
import pytest

from segcli.inference import predictor as inference
from segcli.inference.predictor import Predictor
from segcli.errors import UsageError


@pytest.fixture(scope="module")
def model():
    from segcli.models.load import create_segmenter

    import keras

    keras.utils.set_random_seed(3)
    return create_segmenter("segformer_test", num_classes=4)


def textured(h, w, seed=0):
    """Smooth random colour fields, so that several classes win somewhere."""
    import cv2

    rng = np.random.default_rng(seed)
    small = rng.uniform(0, 255, (max(2, h // 8), max(2, w // 8), 3)).astype(np.float32)
    return np.clip(cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC), 0, 255).astype(np.uint8)


def model_argmax(model, image):
    """Independent reference: the full model's softmax output at the image size, argmax."""
    return np.asarray(model(image[None].astype(np.float32), training=False))[0].argmax(-1)


def test_whole_mode_equals_model_argmax_and_batches_mixed_sizes(model):
    images = [textured(64, 96, 1), textured(32, 32, 2), textured(64, 96, 3), textured(96, 64, 4)]
    seg = Predictor(model, batch_size=2)
    results = seg.predict(images, probs=True)
    for image, result in zip(images, results):
        expected = model_argmax(model, image)
        assert result.mask.shape == image.shape[:2] and result.mask.dtype == np.uint8
        assert (result.mask == expected).mean() > 0.999
        full = np.asarray(model(image[None].astype(np.float32)))[0]
        np.testing.assert_allclose(result.probs.astype(np.float32), full, atol=2e-3)
    assert len(np.unique(results[0].mask)) > 1  # the test image really exercises the argmax


def test_whole_mode_sizes_rounding_and_cap(model):
    seg = Predictor(model, max_side=256)
    assert seg.model_size((1, 1)) == (32, 32)
    assert seg.model_size((50, 70)) == (64, 64)
    assert seg.model_size((1000, 500)) == (256, 128)
    assert Predictor(model, input_size=(64, 64)).model_size((1000, 500)) == (64, 64)


def test_striped_probabilities_equal_tf_resize_and_softmax(model, monkeypatch):
    """Independent reference: the network's quarter logits, tf.image.resize to the image size, tf.nn.softmax."""
    import tensorflow as tf

    image = textured(150, 230, 5)
    monkeypatch.setattr(inference, "STRIPE_ELEMENTS", 230 * 4 * 7)  # 7 rows per stripe
    seg = Predictor(model)
    striped = seg.predict([image], probs=True)[0]
    quarter = model.quarter_logits(seg.prepare(image).pixels[None].astype(np.float32))
    full = tf.image.resize(quarter, (150, 230), method="bilinear")[0]
    assert (striped.mask == tf.argmax(full, -1).numpy()).mean() > 0.9999
    np.testing.assert_allclose(striped.probs.astype(np.float32), tf.nn.softmax(full).numpy(), atol=1e-3)


def naive_slide(model, image, tile, stride):
    """Full-size accumulation of every tile's quarter logits, then one resize; no banding."""
    import cv2
    import keras
    import tensorflow as tf

    net = model.quarter_logits
    h, w = image.shape[:2]
    hp, wp = max(-(-h // 4) * 4, tile), max(-(-w // 4) * 4, tile)
    padded = cv2.copyMakeBorder(image, 0, hp - h, 0, wp - w, cv2.BORDER_REPLICATE)
    ys = sorted(set(list(range(0, hp - tile + 1, stride)) + [hp - tile]))
    xs = sorted(set(list(range(0, wp - tile + 1, stride)) + [wp - tile]))
    acc = np.zeros((hp // 4, wp // 4, 4), np.float64)
    count = np.zeros((hp // 4, wp // 4, 1))
    for y in ys:
        for x in xs:
            logits = np.asarray(net(padded[None, y:y + tile, x:x + tile].astype(np.float32)))[0]
            acc[y // 4:(y + tile) // 4, x // 4:(x + tile) // 4] += logits
            count[y // 4:(y + tile) // 4, x // 4:(x + tile) // 4] += 1
    mean = (acc / count).astype(np.float32)
    full = tf.image.resize(mean[None], (hp, wp), method="bilinear")[0].numpy()
    return full[:h, :w].argmax(-1)


@pytest.mark.parametrize("shape, stride", [((150, 230), 40), ((64, 64), 40), ((1, 1), 40), ((37, 300), 40),
                                           ((300, 90), 28), ((300, 90), 64)])
def test_slide_mode_equals_naive_reference(model, shape, stride, monkeypatch):
    monkeypatch.setattr(inference, "STRIPE_ELEMENTS", 300 * 4 * 5)  # force many stripes and band shifts
    image = textured(*shape, seed=6)
    seg = Predictor(model, mode="slide", tile=64, stride=stride, batch_size=3)
    got = seg.predict([image])[0].mask
    tile = min(64, -(-max(shape) // 32) * 32) if max(shape) < 64 else 64
    expected = naive_slide(model, image, tile, stride) if min(shape) >= 64 else None
    assert got.shape == shape
    if expected is not None:
        assert (got == expected).mean() > 0.9999


def test_slide_with_one_tile_equals_whole(model):
    image = textured(64, 64, 7)
    whole = Predictor(model).predict([image])[0].mask
    slide = Predictor(model, mode="slide", tile=64).predict([image])[0].mask
    assert (whole == slide).mean() > 0.9999


def test_fixed_size_model_and_bad_tiling(model):
    from segcli.models.load import create_segmenter

    fixed = create_segmenter("segformer_test", num_classes=3, input_shape=(64, 64, 3))
    seg = Predictor(fixed)
    assert seg.fixed_size == (64, 64) and seg.model_size((10, 500)) == (64, 64)
    assert seg.predict([textured(10, 500)])[0].mask.shape == (10, 500)
    with pytest.raises(UsageError, match=r"^tile 32: the model only accepts 64x64 inputs; omit the tile size or pass"):
        Predictor(fixed, mode="slide", tile=32)
    with pytest.raises(UsageError, match=r"^tile 50: must be a multiple of 32, at least 32\.$"):
        Predictor(model, mode="slide", tile=50)
    with pytest.raises(UsageError, match=r"^stride 100: must be between 4 and the tile size 64\.$"):
        Predictor(model, mode="slide", tile=64, stride=100)
    with pytest.raises(UsageError, match=r"^mode 'fast': use 'whole' or 'slide'\.$"):
        Predictor(model, mode="fast")


def test_predict_uses_the_folded_head_with_the_same_logits(monkeypatch):
    """The default forward is the folded-head route; with non-trivial BatchNorm statistics its logits and masks
    still match the Keras model's, and SEGCLI_FUSED_HEAD=0 selects the plain Keras route."""
    import keras

    from segcli.models.load import create_segmenter

    keras.utils.set_random_seed(5)
    net = create_segmenter("segformer_test", num_classes=5)
    norm = net.head.fuse_norm
    rng = np.random.default_rng(0)
    norm.set_weights([rng.uniform(0.5, 1.5, w.shape).astype("float32") if i in (0, 3) else
                      rng.normal(0, 0.3, w.shape).astype("float32") for i, w in enumerate(norm.get_weights())])
    batch = np.stack([textured(64, 96, 7), textured(64, 96, 8)])
    reference = net.quarter_logits(batch.astype(np.float32)).numpy()  # the plain Keras head

    fused = Predictor(net)
    assert fused._cache["graph"].folded
    np.testing.assert_allclose(fused._forward(batch), reference, atol=1e-4)
    masks = [p.mask for p in fused.predict(list(batch))]
    agree = np.mean([np.mean(m == model_argmax(net, im)) for m, im in zip(masks, batch)])
    assert agree >= 0.999

    monkeypatch.setenv("SEGCLI_FUSED_HEAD", "0")
    inference._NETS.clear()
    assert not Predictor(net)._cache["graph"].folded


def test_the_mask_step_engines_give_the_same_masks(model, monkeypatch):
    """Predict's mask step runs in the compiled loop by default; SEGCLI_MASK_STEP=tensorflow selects the TF ops.
    Both must write the same masks, at mixed sizes and in one batch."""
    from segcli.inference.finish import mask_step_engine

    images = [textured(64, 96, 11), textured(40, 56, 12), textured(64, 96, 13)]
    assert mask_step_engine() == "numba"
    compiled = [p.mask for p in Predictor(model, batch_size=3).predict(images)]
    monkeypatch.setenv("SEGCLI_MASK_STEP", "tensorflow")
    assert mask_step_engine() == "tensorflow"
    traced = [p.mask for p in Predictor(model, batch_size=3).predict(images)]
    for a, b, image in zip(compiled, traced, images):
        assert a.shape == image.shape[:2] and a.dtype == np.uint8
        np.testing.assert_array_equal(a, b)


def test_a_numba_that_does_not_import_falls_back_to_the_tensorflow_mask_step(model, monkeypatch):
    import sys

    from segcli.inference import finish

    images = [textured(48, 72, 14)]
    expected = [p.mask for p in Predictor(model).predict(images)]
    monkeypatch.setitem(sys.modules, "segcli.inference.mask_kernel", None)  # importing it raises ImportError
    finish.fused_argmax.cache_clear()
    try:
        got = [p.mask for p in Predictor(model).predict(images)]
    finally:
        finish.fused_argmax.cache_clear()
    np.testing.assert_array_equal(got[0], expected[0])


def test_slide_memory_does_not_grow_with_the_image_height():
    """Beyond the image and its mask, slide mode holds about one band of logits, whatever the image's height."""
    import tracemalloc

    from segcli.models.load import create_segmenter

    wide = create_segmenter("segformer_test", num_classes=150)  # many classes: the band dominates what is held
    seg = Predictor(wide, mode="slide", tile=64, stride=48, batch_size=1)
    seg.predict([textured(64, 64)])  # traces the network first
    extra = {}
    for h in (256, 1024):
        prep = seg.prepare(textured(h, 512, seed=h))
        tracemalloc.start()
        mask = seg.run([prep])[0].mask
        extra[h] = tracemalloc.get_traced_memory()[1] - mask.nbytes
        tracemalloc.stop()
    band = (64 // 4 + 1) * (512 // 4) * 150 * 4  # float32 rows: one tile's and the one kept above them
    # growing the band by concatenation, as before, held two bands at once (2.2 bands here)
    assert extra[1024] < 1.2 * extra[256] + 65536 and extra[1024] < 1.6 * band, (extra, band)
