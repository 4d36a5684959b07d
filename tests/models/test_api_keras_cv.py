"""The keras-cv-style Python API as a user meets it: Keras' own fit/predict/export at several sizes, too-small
images, from_preset keyword arguments, the class preset listings, argument checks and loading a .keras file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from segcli.errors import ModelError
from segcli.models import MiTBackbone, SegFormer, SegFormerB0

DEMO = str(Path(__file__).resolve().parents[2] / "samples" / "demo_model")


def tiny(num_classes=3, **kwargs):
    return SegFormer(MiTBackbone.from_preset("mit_test"), num_classes=num_classes, projection_filters=32, **kwargs)


def images(*shape, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, shape).astype("float32")


def test_predict_fit_and_evaluate_take_a_second_and_third_image_size():
    """Keras retraces with None height and width at the second size; the head's resize used to refuse that."""
    model = tiny()
    model.compile("adam", "sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    for h, w in ((64, 64), (64, 96), (48, 80)):
        x = images(2, h, w, 3, seed=h + w)
        np.testing.assert_allclose(model.predict(x, verbose=0), model(x), atol=1e-5)  # eager model as reference
        history = model.fit(x, rng.integers(0, 3, (2, h, w)), epochs=1, verbose=0)
        assert np.isfinite(history.history["loss"][0])
        assert np.isfinite(model.evaluate(x, rng.integers(0, 3, (2, h, w)), verbose=0))


def test_a_saved_model_export_serves_any_size(tmp_path):
    import tensorflow as tf

    model = tiny()
    model.export(str(tmp_path / "served"), verbose=False)
    served = tf.saved_model.load(str(tmp_path / "served"))
    for size in ((50, 70), (64, 64)):
        x = images(1, *size, 3)
        np.testing.assert_allclose(served.serve(x), model(x), atol=1e-5)
    quarter = tf.function(model.quarter_logits, input_signature=[tf.TensorSpec((None, None, None, 3))])
    assert quarter(images(1, 50, 70, 3)).shape == (1, 13, 18, 3)


def test_images_below_the_smallest_side_are_refused_not_answered_with_biases():
    model = tiny()
    message = ("image 16x40 (height x width) is below this MiT encoder's smallest side, 29 pixels; resize or pad it "
               "to at least 29x29.")
    for call in (lambda: model(images(1, 16, 40, 3)), lambda: model.predict(images(1, 16, 40, 3), verbose=0),
                 lambda: model.backbone(images(1, 16, 40, 3))):
        with pytest.raises(ModelError) as info:
            call()
        assert str(info.value) == message
    assert model(images(1, 29, 29, 3)).shape == (1, 29, 29, 3)  # ceil(29 / 4) = 8: one 8x8 reduction patch
    with pytest.raises(ModelError, match=r"^image 16x16 \(height x width\) is below"):
        SegFormer.from_preset("segformer_test", num_classes=2, input_shape=(16, 16, 3))


def test_images_with_other_channel_counts_are_refused():
    model = tiny()
    for channels in (1, 4):
        with pytest.raises(ModelError) as info:
            model(images(1, 64, 64, channels))
        assert str(info.value) == (f"images have {channels} channel(s) but this model takes 3; give RGB images "
                                   f"(repeat a grayscale channel 3 times).")


def test_from_preset_passes_constructor_arguments_and_keeps_the_weights():
    from segcli.models.mit.layers import ImageNormalization

    demo = SegFormer.from_preset(DEMO)
    changed = SegFormer.from_preset(DEMO, dropout=0.0, name="seg", include_normalization=False)
    assert (changed.dropout, changed.name, changed.backbone.include_normalization) == (0.0, "seg", False)
    x = images(1, 64, 64, 3)
    np.testing.assert_allclose(changed(ImageNormalization()(x)), demo(x), atol=1e-5)  # same weights
    assert SegFormerB0(num_classes=2, dropout=0.0).dropout == 0.0
    backbone = MiTBackbone.from_preset("mit_b0", include_normalization=False, input_shape=(64, 64, 3))
    assert not backbone.include_normalization and backbone.input_shape == (None, 64, 64, 3)
    bf16 = SegFormer.from_preset("segformer_test", num_classes=2, dtype="mixed_bfloat16")
    assert bf16.backbone.get_layer("block_0_0").compute_dtype == "bfloat16"
    assert bf16.head.compute_dtype == "float32"  # the head stays float32 by design


def test_from_preset_refuses_unknown_arguments_and_changes_the_weights_do_not_fit():
    with pytest.raises(ModelError, match=r"^SegFormer.from_preset: unknown argument\(s\) bogus; it takes activation, "):
        SegFormer.from_preset("segformer_test", num_classes=2, bogus=1)
    with pytest.raises(ModelError, match=r"^include_normalization, input_shape: the weights loaded do not fit the "
                                         r"model these arguments build \(.*\(7, 7, 1, 32\).*\(7, 7, 3, 32\)"):
        SegFormer.from_preset(DEMO, include_normalization=False, input_shape=(None, None, 1))
    random_init = MiTBackbone.from_preset("mit_test", include_normalization=False, input_shape=(None, None, 4))
    assert random_init(images(1, 64, 64, 4)).shape == (1, 2, 2, 64)


def test_the_classes_list_their_presets():
    from segcli.models.registry import PRESETS

    assert list(SegFormer.presets) == [n for n, row in PRESETS.items() if row["model"] == "segmenter"]
    assert list(MiTBackbone.presets) == [n for n, row in PRESETS.items() if row["model"] == "backbone"]
    assert "segformer_b0_ade20k_512" in SegFormer.presets_with_weights and "segformer_b0" in SegFormer.presets
    assert "segformer_b0" not in SegFormer.presets_with_weights
    assert set(MiTBackbone.presets_with_weights) == {f"mit_b{i}_imagenet" for i in range(6)}


@pytest.mark.parametrize("arguments, message", [
    ({"num_classes": 2.5}, "num_classes must be a whole number of at least 1; got 2.5."),
    ({"num_classes": "abc"}, "num_classes must be a whole number of at least 1; got 'abc'."),
    ({"num_classes": 2, "input_shape": 64}, "input_shape must be (height, width, channels), with None for any size, "
                                             "e.g. (512, 512, 3) or (None, None, 3); got 64."),
    ({"num_classes": 2, "input_shape": (64, 64)}, "input_shape must be (height, width, channels), with None for any "
                                                  "size, e.g. (512, 512, 3) or (None, None, 3); got (64, 64)."),
    ({"num_classes": 2, "projection_filters": 0}, "projection_filters must be at least 1; got 0."),
])
def test_bad_arguments_are_one_model_error_that_is_a_value_error(arguments, message):
    with pytest.raises(ValueError) as info:
        SegFormer.from_preset("segformer_test", **arguments)
    assert isinstance(info.value, ModelError) and str(info.value) == message


def test_keras_load_model_in_a_new_process_after_importing_the_classes(tmp_path):
    model = tiny()
    model.save(tmp_path / "m.keras")
    x = images(1, 64, 64, 3)
    np.save(tmp_path / "x.npy", x)
    code = ("import numpy as np, keras\nfrom segcli.models import SegFormer\n"
            f"m = keras.models.load_model({str(tmp_path / 'm.keras')!r})\n"
            f"np.save({str(tmp_path / 'y.npy')!r}, np.asarray(m(np.load({str(tmp_path / 'x.npy')!r}))))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), model(x), atol=1e-6)
