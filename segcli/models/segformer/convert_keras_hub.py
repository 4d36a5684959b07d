"""Import a keras-hub SegFormer preset folder into a segcli model.

``save_to_preset`` of keras-hub writes ``config.json`` (the backbone: a
``SegFormerBackbone`` around a ``MiTBackbone``, or a bare ``MiTBackbone``),
``model.weights.h5`` and, for a segmenter, ``task.json`` +
``task.weights.h5`` (the classifier conv). The folder is loaded with keras-hub
itself, and every layer's weights are copied into the matching segcli layer
by object (not by the auto-generated names in the .h5 files).

keras-hub's MiT differs from segcli's in two details that the import maps or
reports:

- LayerNorm epsilons: blocks 1e-6 (segcli ``layer_norm_epsilon``), patch
  embedding and key/value reduction 1e-5 (``reduction_epsilon``), stage norms
  1e-5 where segcli uses ``layer_norm_epsilon`` (1e-6) for them;
- Mix-FFN uses keras' default tanh-approximate GELU, segcli (like the original
  code and transformers) the exact erf GELU.

Both are recorded in ``record["keras_hub_differences"]``; the parity test
measures their effect on the logits. keras-hub takes inputs normalised by its
preprocessor; segcli's model takes RGB in [0, 255] and applies ImageNet
mean/std itself, so a ``preprocessor.json`` with any other normalisation is
refused.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from segcli.errors import CheckpointError, MissingDependencyError
from segcli.models.segformer.convert_hf import check_heads

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.weights.h5"
TASK_FILE = "task.json"
TASK_WEIGHTS_FILE = "task.weights.h5"
PREPROCESSOR_FILE = "preprocessor.json"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: Epsilons keras-hub 0.32 hard-codes in its MiT layers.
BLOCK_EPSILON = 1e-6
REDUCTION_EPSILON = 1e-5
DIFFERENCES = [
    "keras-hub stage LayerNorms use epsilon 1e-5; segcli uses layer_norm_epsilon (1e-6) for them",
    "keras-hub Mix-FFN uses tanh-approximate GELU; segcli uses exact GELU",
]


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path} cannot be read as JSON ({exc}).") from None


def _encoder_config(config: dict, folder: Path) -> dict:
    name = config.get("class_name")
    if name == "SegFormerBackbone":
        config = config["config"]["image_encoder"]
        name = config.get("class_name")
    if name != "MiTBackbone":
        raise CheckpointError(f"{folder / CONFIG_FILE} describes a keras-hub {name}, not a SegFormer or MiT "
                              f"backbone.")
    return config["config"]


def backbone_config(encoder: dict) -> dict:
    """segcli MiTBackbone arguments for a keras-hub MiTBackbone config."""
    n = int(encoder["num_layers"])
    return {
        "depths": tuple(encoder["layerwise_depths"]),
        "hidden_sizes": tuple(encoder["hidden_dims"]),
        "num_attention_heads": tuple(encoder["layerwise_num_heads"]),
        "sr_ratios": tuple(encoder["layerwise_sr_ratios"]),
        "patch_sizes": tuple(encoder["layerwise_patch_sizes"]),
        "strides": tuple(encoder["layerwise_strides"]),
        "mlp_ratios": (4,) * n,  # keras-hub hard-codes the Mix-FFN expansion
        "drop_path_rate": float(encoder["max_drop_path_rate"]),
        "layer_norm_epsilon": BLOCK_EPSILON,
        "reduction_epsilon": REDUCTION_EPSILON,
    }


def _check_normalisation(folder: Path) -> str:
    path = folder / PREPROCESSOR_FILE
    if not path.is_file():
        return "none saved; ImageNet mean/std assumed (keras-hub's SegFormer presets use it)"
    converter = _find_converter(_read_json(path))
    if converter is None:
        return "preprocessor without an image converter; ImageNet mean/std assumed"
    scale, offset = converter.get("scale"), converter.get("offset")
    want_scale = [1.0 / (255.0 * s) for s in IMAGENET_STD]
    want_offset = [-m / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD)]
    ok = scale is not None and offset is not None and \
        np.allclose(np.broadcast_to(scale, 3), want_scale, rtol=1e-3) and \
        np.allclose(np.broadcast_to(offset, 3), want_offset, atol=1e-3)
    if not ok:
        raise CheckpointError(f"{path}: the model expects inputs scaled by {scale} and offset by {offset}; segcli "
                              f"models apply ImageNet mean/std to [0, 255] RGB and cannot reproduce that.")
    return "ImageNet mean/std (from preprocessor.json)"


def _find_converter(node):
    if isinstance(node, dict):
        if "Converter" in str(node.get("class_name", "")) and isinstance(node.get("config"), dict):
            return node["config"]
        for value in node.values():
            found = _find_converter(value)
            if found is not None:
                return found
    elif isinstance(node, list):
        for value in node:
            found = _find_converter(value)
            if found is not None:
                return found
    return None


def _load_keras_hub(folder: Path, segmenter: bool):
    try:
        import keras_hub
    except ImportError:
        raise MissingDependencyError(
            f"Importing the keras-hub preset {folder} needs keras-hub: pip install keras-hub."
        ) from None
    try:
        if segmenter:
            return keras_hub.models.SegFormerImageSegmenter.from_preset(str(folder), preprocessor=None)
        return keras_hub.models.Backbone.from_preset(str(folder))
    except Exception as exc:  # keras-hub raises many types for a bad folder
        raise CheckpointError(f"{folder}: keras-hub cannot load this preset ({type(exc).__name__}: {exc}).") from None


def _copy(src, dst, what: str, folder: Path) -> None:
    values = src.get_weights()
    shapes = [tuple(v.shape) for v in dst.weights]
    if [tuple(v.shape) for v in values] != shapes:
        raise CheckpointError(f"{folder}: keras-hub layer {what} has weights {[tuple(v.shape) for v in values]}, "
                              f"which do not fit segcli's {shapes}.")
    dst.set_weights(values)


def _copy_encoder(khub, ours, folder: Path) -> None:
    import keras

    stage_norms = [layer for layer in khub.layers if isinstance(layer, keras.layers.LayerNormalization)]
    if len(stage_norms) != len(ours.depths):
        raise CheckpointError(f"{folder}: found {len(stage_norms)} stage LayerNorms in the keras-hub MiT, "
                              f"expected {len(ours.depths)}.")
    for i, depth in enumerate(ours.depths):
        emb, our_emb = khub.get_layer(f"patch_and_embed_{i}"), ours.get_layer(f"patch_embedding_{i}")
        _copy(emb.proj, our_emb.proj, f"patch_and_embed_{i}.proj", folder)
        _copy(emb.norm, our_emb.norm, f"patch_and_embed_{i}.norm", folder)
        for j in range(depth):
            name = f"hierarchical_encoder_{i}_{j}"
            blk, our = khub.get_layer(name), ours.get_layer(f"block_{i}_{j}")
            pairs = [("norm1", blk.norm1, our.norm1), ("norm2", blk.norm2, our.norm2),
                     ("attn.q", blk.attn.q, our.attention.query), ("attn.k", blk.attn.k, our.attention.key),
                     ("attn.v", blk.attn.v, our.attention.value), ("attn.proj", blk.attn.proj, our.attention.proj),
                     ("mlp.fc1", blk.mlp.fc1, our.mlp.fc1), ("mlp.dwconv", blk.mlp.dwconv, our.mlp.dwconv),
                     ("mlp.fc2", blk.mlp.fc2, our.mlp.fc2)]
            if our.attention.sr_ratio > 1:
                pairs += [("attn.sr", blk.attn.sr, our.attention.sr), ("attn.norm", blk.attn.norm, our.attention.sr_norm)]
            for what, src, dst in pairs:
                _copy(src, dst, f"{name}.{what}", folder)
        _copy(stage_norms[i], ours.get_layer(f"stage_{i}_norm"), f"stage norm {i}", folder)


def convert(folder):
    """Build the segcli model for the keras-hub preset in ``folder``; returns (model, partial record)."""
    from segcli.models.mit.backbone import MiTBackbone
    from segcli.models.segformer.model import SegFormer

    folder = Path(folder)
    config = _read_json(folder / CONFIG_FILE)
    encoder_config = _encoder_config(config, folder)
    arch = backbone_config(encoder_config)
    check_heads(arch["hidden_sizes"], arch["num_attention_heads"], folder)
    task = folder / TASK_FILE
    segmenter = task.is_file() and (folder / TASK_WEIGHTS_FILE).is_file()
    if segmenter:
        task_name = _read_json(task).get("class_name")
        if task_name != "SegFormerImageSegmenter":
            raise CheckpointError(f"{task} describes a keras-hub {task_name}, not a SegFormerImageSegmenter.")
    normalisation = _check_normalisation(folder)
    khub = _load_keras_hub(folder, segmenter)
    backbone = MiTBackbone(**arch)
    image_shape = list(encoder_config.get("image_shape") or [None, None, 3])
    record = {"scope": "segmenter" if segmenter else "backbone", "backbone_config": arch,
              "checkpoint_format": "keras_hub", "keras_hub_differences": DIFFERENCES,
              "input_normalisation": normalisation}
    if all(isinstance(s, int) for s in image_shape[:2]):
        record["input_size"] = image_shape[:2]
    if not segmenter:
        encoder = khub.image_encoder if hasattr(khub, "image_encoder") else khub
        _copy_encoder(encoder, backbone, folder)
        return backbone, record
    head = khub.backbone  # SegFormerBackbone: encoder + decode head up to the fused features
    num_classes = int(khub.num_classes)
    filters = int(head.projection_filters)
    model = SegFormer(backbone, num_classes, filters, activation="auto")
    _copy_encoder(head.image_encoder, backbone, folder)
    if len(head.mlp_blocks) != 4:
        raise CheckpointError(f"{folder}: expected 4 decode-head projections, found {len(head.mlp_blocks)}.")
    ours = model.head
    for i, (dense, linear) in enumerate(zip(head.mlp_blocks, ours.linear_c)):
        _copy(dense, linear, f"decode head projection {i}", folder)
    conv, norm = head.linear_fuse.layers[0], head.linear_fuse.layers[1]
    _copy(conv, ours.linear_fuse, "decode head linear_fuse conv", folder)
    _copy(norm, ours.fuse_norm, "decode head linear_fuse batch norm", folder)
    _copy(khub.output_segmentation_head, ours.classifier, "segmentation head", folder)
    record.update(num_classes=num_classes, projection_filters=filters, classes=[])
    return model, record
