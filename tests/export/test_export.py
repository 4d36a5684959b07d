"""`export_model`: each format is written, reloaded in its own runtime and compared with the Keras model."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from segcli.errors import MissingDependencyError, UsageError
from tests.export.export_fixtures import colour_blocks, train_tiny


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return train_tiny(tmp_path_factory.mktemp("trained") / "tiny.keras")


def test_trained_fixture_is_decisive(trained):
    import keras

    model = keras.saving.load_model(str(trained))
    images, masks = colour_blocks(4, seed=9)
    assert (np.asarray(model(images.astype("float32"))).argmax(-1) == masks).mean() > 0.8


def test_savedmodel_serves_masks_and_logits_from_uint8(trained, tmp_path):
    import keras
    import tensorflow as tf

    from segcli.export.api import export_model

    report = export_model(trained, "savedmodel", tmp_path / "sm", sample_size=(64, 64))
    assert report.passed and report.max_abs_diff <= 1e-4 and report.mask_agreement == 1.0
    assert report.logits_shape == [2, 64, 64, 3]
    loaded = tf.saved_model.load(str(tmp_path / "sm"))
    assert set(loaded.signatures) == {"serving_default", "masks", "logits"}
    images, _ = colour_blocks(3, size=96, seed=4)  # another batch size and image size than the check used
    out = loaded.signatures["serving_default"](images=tf.constant(images))
    assert list(out) == ["masks"] and out["masks"].dtype == tf.int32 and out["masks"].shape == (3, 96, 96)
    logits = loaded.signatures["logits"](images=tf.constant(images))["logits"].numpy()
    model = keras.saving.load_model(str(trained))
    expected = np.log(np.asarray(model(images.astype("float32"))))  # softmax output -> log-probabilities
    got = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    assert np.abs(got - expected).max() < 1e-4
    np.testing.assert_array_equal(out["masks"].numpy(), expected.argmax(-1))
    meta = json.loads((tmp_path / "sm" / "segcli.json").read_text())
    assert meta["num_classes"] == 3 and meta["parity"]["max_abs_diff"] == report.max_abs_diff


@pytest.mark.slow
def test_savedmodel_logits_option_makes_logits_the_default(trained, tmp_path):
    import tensorflow as tf

    from segcli.export.api import export_model

    export_model(trained, "savedmodel", tmp_path / "sm", logits=True, sample_size=(64, 64))
    loaded = tf.saved_model.load(str(tmp_path / "sm"))
    out = loaded.signatures["serving_default"](images=tf.zeros((1, 32, 64, 3), tf.uint8))
    assert list(out) == ["logits"] and out["logits"].shape == (1, 32, 64, 3)


def test_onnx_has_dynamic_batch_and_size_and_runs_in_onnxruntime(trained, tmp_path):
    pytest.importorskip("tf2onnx")
    import keras

    from segcli.export.api import export_model
    from segcli.export.formats import open_runner as open_runtime

    report = export_model(trained, "onnx", tmp_path / "m.onnx", sample_size=(64, 64))
    assert report.passed and report.max_abs_diff <= 1e-4 and report.runtime.startswith("onnxruntime")
    runner = open_runtime(tmp_path / "m.onnx")
    assert [d for d in runner.session.get_inputs()[0].shape] == ["batch", "height", "width", 3]
    assert runner.num_classes == 3 and runner.input_size is None and len(runner.classes) == 3
    model = keras.saving.load_model(str(trained))
    quarter = model.quarter_logits  # the Keras model's own (unfolded) head
    for shape in [(1, 96, 128, 3), (3, 64, 64, 3)]:
        images = np.random.default_rng(1).integers(0, 256, shape).astype(np.uint8)
        got = runner.predict_logits(images)
        assert got.shape == (shape[0], shape[1] // 4, shape[2] // 4, 3) and got.dtype == np.float32
        assert np.abs(got - np.asarray(quarter(images.astype("float32")))).max() <= 1e-4


@pytest.mark.parametrize("quantize", [None, "int8", pytest.param("float16", marks=pytest.mark.slow)])
def test_tflite_float32_and_quantized_pass_their_checks(trained, tmp_path, quantize):
    from segcli.export.api import export_model
    from segcli.export.formats import open_runner as open_runtime

    out = tmp_path / "m.tflite"
    report = export_model(trained, "tflite", out, quantize=quantize, sample_size=(64, 64))
    assert report.passed
    if quantize is None:
        assert report.max_abs_diff <= 1e-4
    else:
        assert report.mask_agreement >= 0.99
    runner = open_runtime(out)
    assert json.loads((tmp_path / "m.tflite.json").read_text())["quantize"] == quantize
    images, masks = colour_blocks(2, size=64, seed=11)
    logits = runner.predict_logits(images)
    assert logits.shape == (2, 16, 16, 3)
    import tensorflow as tf

    predicted = tf.image.resize(logits, (64, 64)).numpy().argmax(-1)
    assert (predicted == masks).mean() > 0.8


def test_failed_parity_leaves_nothing_behind(trained, tmp_path, monkeypatch):
    from segcli.export import api as export

    reference = export._reference  # a Keras side that is off by 1.0 everywhere stands in for a broken converter
    monkeypatch.setattr(export, "_reference", lambda model, images: tuple(a + 1.0 for a in reference(model, images)))
    out = tmp_path / "m.tflite"
    with pytest.raises(export.ExportError) as info:
        export.export_model(trained, "tflite", out, sample_size=(64, 64))
    message = str(info.value)
    assert message.startswith(f"{out}: parity check failed (max |Δ| <= 0.0001): max |Δ| 1, mask agreement ")
    assert message.endswith("; nothing was written.")
    assert list(tmp_path.iterdir()) == []


def test_bad_arguments_get_one_line(trained, tmp_path):
    from segcli.export.api import export_model

    with pytest.raises(UsageError, match=r"^format keras: use one of savedmodel, onnx, tflite, openvino\.$"):
        export_model(trained, "keras", tmp_path / "x")
    with pytest.raises(UsageError, match=r"^out .*model\.bin: an ONNX export must end with \.onnx\.$"):
        export_model(trained, "onnx", tmp_path / "model.bin")
    with pytest.raises(UsageError, match=r"^out .*m\.onnx: a TFLite export must end with \.tflite\.$"):
        export_model(trained, "tflite", tmp_path / "m.onnx")
    for size in (0, -32, (64, 16)):
        with pytest.raises(UsageError, match=r"^sample size .*: smaller than 32 pixels; SegFormer downsamples by 32, "
                                             r"use at least 32\.$"):
            export_model(trained, "tflite", tmp_path / "m.tflite", sample_size=size)
    with pytest.raises(UsageError, match=r"^quantize int8: only tflite exports take it\.$"):
        export_model(trained, "onnx", tmp_path / "m.onnx", quantize="int8")
    with pytest.raises(UsageError, match=r"^logits=True applies to savedmodel"):
        export_model(trained, "tflite", tmp_path / "m.tflite", logits=True)
    with pytest.raises(UsageError, match=r"^precision int8: onnx exports are fp32; use openvino\.$"):
        export_model(trained, "onnx", tmp_path / "m.onnx", precision="int8", calib=tmp_path)
    with pytest.raises(UsageError, match=r"^precision int8 needs calibration images"):
        export_model(trained, "openvino", tmp_path / "ov", precision="int8")
    (tmp_path / "taken.onnx").write_text("x")
    with pytest.raises(UsageError, match=r"taken\.onnx already exists; pass overwrite=True to replace it\.$"):
        export_model(trained, "onnx", tmp_path / "taken.onnx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken.onnx"]


def test_missing_onnx_dependency_names_the_extra(trained, tmp_path, monkeypatch):
    from segcli.export.api import export_model

    monkeypatch.setitem(sys.modules, "tf2onnx", None)  # import tf2onnx -> ImportError
    with pytest.raises(MissingDependencyError) as info:
        export_model(trained, "onnx", tmp_path / "m.onnx")
    assert str(info.value) == ("ONNX export needs onnx, onnxruntime and tf2onnx (tf2onnx is missing): "
                               "pip install 'segcli[export]'.")
