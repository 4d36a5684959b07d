"""keras-cv 0.9's documented examples (the seed), with keras_cv replaced by segcli."""

from __future__ import annotations

import numpy as np

from tests import hf_checkpoints as hf


def test_backbone_example_with_imagenet_weights_learns(tmp_path):
    import keras

    import segcli
    from segcli.weights.importer import import_checkpoint

    hf.make(tmp_path / "mit-b0", hf.B0, num_labels=1000, head="classification")
    import_checkpoint(tmp_path / "mit-b0", "mit_b0_imagenet")
    keras.utils.set_random_seed(0)

    images = np.ones(shape=(1, 96, 96, 3))
    labels = np.zeros(shape=(1, 96, 96, 1))
    backbone = segcli.models.MiTBackbone.from_preset("mit_b0_imagenet")
    model = segcli.models.segmentation.SegFormer(
        num_classes=1, backbone=backbone,
    )
    # Evaluate model
    model(images)
    # Train model
    model.compile(
        optimizer="adam",
        loss=keras.losses.BinaryCrossentropy(from_logits=False),
        metrics=["accuracy"],
    )
    history = model.fit(images, labels, epochs=3)

    losses = history.history["loss"]
    assert losses[2] < losses[1] < losses[0]


def test_from_preset_examples(tmp_path, recwarn):
    import segcli
    from segcli.weights.importer import import_checkpoint

    hf.make(tmp_path / "mit-b0", hf.B0, num_labels=1000, head="classification")
    import_checkpoint(tmp_path / "mit-b0", "mit_b0_imagenet")

    # Load architecture and weights from preset
    model = segcli.models.SegFormer.from_preset(
        "segformer_b0_imagenet",
    )
    # Load randomly initialized model from preset architecture with weights
    model = segcli.models.SegFormer.from_preset(
        "segformer_b0_imagenet",
        load_weights=False,
    )
    assert model.num_classes == 19
    assert "num_classes not given" in str(recwarn.pop(UserWarning).message)


def test_alias_example():
    import tensorflow as tf

    import segcli

    input_data = tf.ones(shape=(8, 224, 224, 3))
    # Randomly initialized backbone
    backbone = segcli.models.MiTBackbone.from_preset("mit_b0")
    segformer = segcli.models.SegFormer(backbone=backbone, num_classes=19)
    output = segformer(input_data)  # the seed writes `model(...)`, an undefined name
    assert output.shape == (8, 224, 224, 19)
