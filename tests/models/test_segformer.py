"""SegFormer and MiTBackbone behaviour: sizes, outputs, serialization, presets, errors."""

from __future__ import annotations

import numpy as np
import pytest

from segcli.errors import CheckpointError, ModelError, PresetError, WeightsNotFoundError
from segcli.models import MiTBackbone, SegFormer, SegFormerB0


def tiny(num_classes=3, **kwargs):
    return SegFormer(MiTBackbone.from_preset("mit_test"), num_classes=num_classes, projection_filters=32, **kwargs)


@pytest.mark.parametrize("size", [(64, 64), (96, 160), (37, 53), (33, 200)])
def test_one_model_serves_every_size(size):
    model = tiny()
    out = np.asarray(model(np.random.uniform(0, 255, (1, *size, 3)).astype("float32")))
    assert out.shape == (1, *size, 3)
    np.testing.assert_allclose(out.sum(-1), 1.0, atol=1e-5)  # softmax over classes


def test_pyramid_strides():
    import keras

    backbone = MiTBackbone.from_preset("mit_test")
    extractor = keras.Model(backbone.inputs, [backbone.get_layer(n).output
                                              for n in backbone.pyramid_level_inputs.values()])
    shapes = [tuple(f.shape) for f in extractor(np.zeros((1, 100, 130, 3), "float32"))]
    # ceil(x / 4), then ceil halvings, as the padded strided convs give.
    assert shapes == [(1, 25, 33, 8), (1, 13, 17, 16), (1, 7, 9, 40), (1, 4, 5, 64)]
    assert list(backbone.pyramid_level_inputs) == ["P2", "P3", "P4", "P5"]


def test_one_class_gets_sigmoid_and_activation_none_gives_logits():
    x = np.random.uniform(0, 255, (1, 64, 64, 3)).astype("float32")
    binary = np.asarray(tiny(1)(x))
    assert binary.shape == (1, 64, 64, 1)
    assert binary.min() > 0 and binary.max() < 1 and binary.std() > 0  # not the constant 1 of a 1-class softmax
    logits = np.asarray(tiny(3, activation=None)(x))
    assert logits.min() < 0 or logits.max() > 1


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_runs_attention_and_mlp_low_and_keeps_residuals_head_and_output_float32(policy):
    import keras

    from segcli.models.mit.layers import MiTBlock

    keras.mixed_precision.set_global_policy(policy)
    try:
        model = tiny()
        out = model(np.ones((1, 64, 64, 3), "float32"))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    low = policy.split("_")[1]
    block = next(layer for layer in model.backbone.layers if isinstance(layer, MiTBlock))
    assert block.attention.query.compute_dtype == low and block.mlp.fc1.compute_dtype == low
    assert block.norm1.compute_dtype == "float32" and model.head.linear_fuse.compute_dtype == "float32"
    assert model.get_layer("resize_logits").compute_dtype == "float32"
    assert block(np.ones((1, 16, 16, block.hidden_size), low)).dtype.name == "float32"  # the residual sum
    assert out.dtype.name == "float32"


def test_bf16_model_stays_close_to_fp32_with_the_same_weights():
    import keras

    keras.utils.set_random_seed(0)
    full = tiny(num_classes=5, activation=None)
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        half = tiny(num_classes=5, activation=None)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    half.set_weights(full.get_weights())
    images = np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 3)).astype("float32")
    reference, got = np.asarray(full(images)), np.asarray(half(images))
    assert np.abs(got - reference).max() < 0.05 * np.abs(reference).max()
    assert (got.argmax(-1) == reference.argmax(-1)).mean() > 0.97


def test_backbone_without_pyramid_is_refused():
    import keras

    inputs = keras.Input((None, None, 3))
    plain = keras.Model(inputs, keras.layers.Conv2D(4, 3)(inputs))
    with pytest.raises(ModelError, match="needs a keras.Model backbone with `pyramid_level_inputs`.*got Functional "
                                         "without it"):
        SegFormer(backbone=plain, num_classes=2)


def test_config_round_trip_and_keras_file(tmp_path):
    import keras

    model = tiny(4)
    x = np.random.uniform(0, 255, (1, 64, 96, 3)).astype("float32")
    clone = SegFormer.from_config(model.get_config())
    assert clone.get_config() == model.get_config()
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    assert isinstance(loaded, SegFormer) and loaded.num_classes == 4
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(model(x)), atol=1e-6)


@pytest.mark.parametrize("kind", ["keras", "folder"])
def test_a_checkpoint_for_another_class_count_keeps_its_weights_but_the_classifier(tmp_path, kind):
    """Loading a 4-class checkpoint for 6 classes: encoder and decode head as saved, a new classifier, and the
    checkpoint's own class count reported (train's opening line names it)."""
    from segcli.models.load import load, save_folder

    model = tiny(4)
    path = tmp_path / "m.keras" if kind == "keras" else tmp_path / "m"
    model.save(path) if kind == "keras" else save_folder(model, path)
    same, other = load(str(path)), load(str(path), num_classes=6)
    assert (same.trained_classes, other.trained_classes, other.model.num_classes) == (4, 4, 6)
    for mine, saved in zip(other.model.backbone.weights, model.backbone.weights):
        np.testing.assert_array_equal(mine.numpy(), saved.numpy())
    np.testing.assert_array_equal(other.model.head.fuse_norm.get_weights()[0], model.head.fuse_norm.get_weights()[0])
    assert other.model.head.classifier.get_weights()[0].shape[-1] == 6


def test_from_preset_honours_input_shape():
    model = SegFormer.from_preset("segformer_test", num_classes=2, input_shape=(64, 96, 3))
    assert model.input_shape == (None, 64, 96, 3)
    assert model.backbone.input_shape == (None, 64, 96, 3)


def test_unknown_preset_lists_close_matches():
    with pytest.raises(ValueError) as info:  # a PresetError, and a ValueError as keras-cv raises
        SegFormer.from_preset("segformer_b00", num_classes=2)
    assert isinstance(info.value, PresetError)
    with pytest.raises(PresetError) as info:
        SegFormer.from_preset("segformer_b00", num_classes=2)
    assert str(info.value).startswith("Unknown model 'segformer_b00': not a preset, not a name in the weights cache "
                                      "and no such file or folder. Did you mean: segformer_b0")


def test_missing_weights_say_where_and_what_to_run(segcli_home):
    with pytest.raises(WeightsNotFoundError) as info:
        SegFormer.from_preset("segformer_b0_ade20k_512")
    assert str(info.value) == (
        f"No weights for preset 'segformer_b0_ade20k_512' in {segcli_home / 'weights' / 'segformer_b0_ade20k_512'}. "
        "Run `segcli weights fetch segformer_b0_ade20k_512`, or on a machine without network "
        "`segcli weights import CHECKPOINT_DIR --as segformer_b0_ade20k_512`; "
        "or pass load_weights=False for random initialisation.")


def test_load_weights_false_builds_the_checkpoint_architecture():
    model = SegFormer.from_preset("segformer_b0_ade20k_512", load_weights=False, input_shape=(64, 64, 3))
    assert model.num_classes == 150 and model.projection_filters == 256


def test_alias_builds_its_preset():
    model = SegFormerB0(num_classes=19)
    assert isinstance(model, SegFormer)
    assert model.backbone.hidden_sizes == (32, 64, 160, 256) and model.num_classes == 19


def test_bad_class_count():
    with pytest.raises(ModelError, match="num_classes must be at least 1; got 0."):
        SegFormer.from_preset("segformer_test", num_classes=0)


def test_saved_folder_round_trip_and_corruption_is_caught(tmp_path):
    from segcli.errors import CheckpointError
    from segcli.models.load import save_folder

    model = tiny(4)
    x = np.random.uniform(0, 255, (1, 64, 64, 3)).astype("float32")
    folder = save_folder(model, tmp_path / "saved", classes=[{"name": f"c{i}", "color": [i, i, i]} for i in range(4)])
    loaded = SegFormer.from_preset(str(folder))
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(model(x)), atol=1e-6)
    with open(folder / "model.weights.h5", "r+b") as f:
        f.seek(-64, 2)
        f.write(b"\0" * 64)
    with pytest.raises(CheckpointError) as info:
        SegFormer.from_preset(str(folder))
    assert str(info.value) == (f"Weights entry '{folder}' is corrupt: {folder / 'model.weights.h5'} does not match its "
                               f"recorded SHA-256; delete {folder} and fetch or import it again.")


@pytest.mark.parametrize("ratio,height,width", [(2, 8, 8), (4, 18, 13), (8, 16, 40), (8, 23, 17)])
def test_key_value_reduction_is_the_strided_convolution_with_its_gradients(ratio, height, width):
    import tensorflow as tf

    from segcli.models.mit.layers import EfficientSelfAttention

    attention = EfficientSelfAttention(16, 2, ratio)
    attention.build((None, None, None, 16))
    x = tf.constant(np.random.default_rng(ratio).normal(size=(2, height, width, 16)).astype("float32"))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        ours, conv = attention._reduce(x), attention.sr(x)  # the Conv2D layer itself: TF's convolution
        ours_sum, conv_sum = tf.reduce_sum(ours * ours), tf.reduce_sum(conv * conv)
    assert ours.shape == conv.shape == (2, height // ratio, width // ratio, 16)
    np.testing.assert_allclose(ours, conv, atol=1e-5)
    for ours_grad, conv_grad in zip(tape.gradient(ours_sum, [x, attention.sr.kernel, attention.sr.bias]),
                                    tape.gradient(conv_sum, [x, attention.sr.kernel, attention.sr.bias])):
        np.testing.assert_allclose(ours_grad, conv_grad, rtol=1e-4, atol=1e-4)
    unknown = tf.function(attention._reduce, input_signature=[tf.TensorSpec((None, None, None, 16))])
    np.testing.assert_allclose(unknown(x), conv, atol=1e-5)


def test_mixed_bfloat16_runs_the_mlp_matmuls_in_bf16_and_its_depthwise_conv_and_gelu_in_float32():
    """TF's bf16 Erfc and depthwise filter gradient are slower than float32's, so those compute in float32."""
    import keras
    import tensorflow as tf

    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = tiny()
    finally:
        keras.mixed_precision.set_global_policy("float32")
    graph = tf.function(lambda x: model(x, training=True)).get_concrete_function(
        tf.TensorSpec((1, 64, 64, 3), tf.float32)).graph
    dtypes = {}
    for op in graph.get_operations():
        dtypes.setdefault(op.type, set()).add(op.outputs[0].dtype.name if op.outputs else None)
    assert dtypes["Erfc"] == {"float32"} and dtypes["DepthwiseConv2dNative"] == {"float32"}
    assert "bfloat16" in dtypes["MatMul"]
