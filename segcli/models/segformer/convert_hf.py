"""Import a Hugging Face SegFormer checkpoint folder (``config.json`` + ``model.safetensors``).

The tensors are read through NumPy (no torch). Both the tensor names of the
published ``nvidia/*`` files and the renamed ones that transformers 5 writes
are understood. Layouts are converted as torch -> Keras: Linear (out, in) ->
(in, out); Conv2d (out, in, kh, kw) -> (kh, kw, in, out); depthwise
(C, 1, kh, kw) -> (kh, kw, C, 1).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from segcli.errors import CheckpointError

CONFIG_FILE = "config.json"
SAFETENSORS_FILE = "model.safetensors"

# transformers 5 names -> the names in the published checkpoints.
_V5_TO_LEGACY = [
    (r"stages\.(\d+)\.patch_embeddings\.", r"encoder.patch_embeddings.\1."),
    (r"stages\.(\d+)\.blocks\.", r"encoder.block.\1."),
    (r"stages\.(\d+)\.layer_norm\.", r"encoder.layer_norm.\1."),
    (r"attention\.q_proj\.", "attention.self.query."),
    (r"attention\.k_proj\.", "attention.self.key."),
    (r"attention\.v_proj\.", "attention.self.value."),
    (r"attention\.sequence_reduction\.sequence_reduction\.", "attention.self.sr."),
    (r"attention\.sequence_reduction\.layer_norm\.", "attention.self.layer_norm."),
    (r"attention\.o_proj\.", "attention.output.dense."),
    (r"mlp\.fc1\.", "mlp.dense1."),
    (r"mlp\.fc2\.", "mlp.dense2."),
    (r"layernorm_before\.", "layer_norm_1."),
    (r"layernorm_after\.", "layer_norm_2."),
    (r"decode_head\.linear_projections\.", "decode_head.linear_c."),
]

_TRANSFORMS = {
    "linear": lambda w: w.T,
    "conv": lambda w: w.transpose(2, 3, 1, 0),
    "depthwise": lambda w: w.transpose(2, 3, 0, 1),
    "vector": lambda w: w,
}


def canonical_name(key: str) -> str:
    """The published-checkpoint name of a tensor, whichever transformers wrote it.

    >>> canonical_name("segformer.stages.1.blocks.0.attention.q_proj.weight")
    'encoder.block.1.0.attention.self.query.weight'
    """
    key = key.removeprefix("segformer.")
    for pattern, repl in _V5_TO_LEGACY:
        key = re.sub(pattern, repl, key)
    return key


def read_config(folder: Path) -> dict:
    path = Path(folder) / CONFIG_FILE
    try:
        config = json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{path} not found: a Hugging Face checkpoint folder holds {CONFIG_FILE} "
                              f"and {SAFETENSORS_FILE}.") from None
    except ValueError as exc:
        raise CheckpointError(f"{path} is not valid JSON ({exc}).") from None
    if config.get("model_type") != "segformer":
        raise CheckpointError(f"{path} describes model_type={config.get('model_type')!r}, not a SegFormer checkpoint.")
    check_heads(config.get("hidden_sizes") or (), config.get("num_attention_heads") or (), folder)
    return config


def check_heads(hidden_sizes, num_heads, folder) -> None:
    """Refuse a checkpoint with a stage whose hidden size does not split evenly into its attention heads."""
    for stage, (size, heads) in enumerate(zip(hidden_sizes, num_heads), 1):
        if int(heads) < 1 or int(size) % int(heads):
            raise CheckpointError(
                f"{folder}: stage {stage} of {len(hidden_sizes)} has hidden size {size} and {heads} attention heads; "
                f"segcli needs each stage's hidden size to be divisible by its number of heads. Use a checkpoint "
                f"whose hidden sizes divide evenly by their heads (every published SegFormer does)."
            )


def read_tensors(folder: Path) -> dict[str, np.ndarray]:
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    path = Path(folder) / SAFETENSORS_FILE
    if not path.is_file():
        raise CheckpointError(f"{path} not found: segcli reads SegFormer checkpoints saved as safetensors.")
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path} cannot be read as safetensors ({exc}); copy or download the checkpoint "
                              f"again (a damaged or partly copied file reads like this).") from None
    return {canonical_name(k): v for k, v in tensors.items()}


def backbone_config(config: dict) -> dict:
    """MiTBackbone arguments that reproduce the checkpoint's encoder as Hugging Face runs it."""
    return {
        "depths": tuple(config["depths"]),
        "hidden_sizes": tuple(config["hidden_sizes"]),
        "num_attention_heads": tuple(config["num_attention_heads"]),
        "sr_ratios": tuple(config["sr_ratios"]),
        "patch_sizes": tuple(config["patch_sizes"]),
        "strides": tuple(config["strides"]),
        "mlp_ratios": tuple(config["mlp_ratios"]),
        "drop_path_rate": float(config.get("drop_path_rate", 0.1)),
        # transformers builds every LayerNorm with torch's default epsilon.
        "layer_norm_epsilon": 1e-5,
        "reduction_epsilon": 1e-5,
    }


def class_names(config: dict) -> list[str]:
    labels = config.get("id2label") or {}
    return [labels.get(str(i), labels.get(i, f"class_{i}")) for i in range(len(labels))]


def has_decode_head(tensors: dict) -> bool:
    return any(k.startswith("decode_head.") for k in tensors)


def _backbone_targets(backbone):
    for i, depth in enumerate(backbone.depths):
        emb = backbone.get_layer(f"patch_embedding_{i}")
        prefix = f"encoder.patch_embeddings.{i}"
        yield f"{prefix}.proj.weight", emb.proj.kernel, "conv"
        yield f"{prefix}.proj.bias", emb.proj.bias, "vector"
        yield f"{prefix}.layer_norm.weight", emb.norm.gamma, "vector"
        yield f"{prefix}.layer_norm.bias", emb.norm.beta, "vector"
        for j in range(depth):
            block = backbone.get_layer(f"block_{i}_{j}")
            prefix = f"encoder.block.{i}.{j}"
            att = block.attention
            pairs = [("layer_norm_1", block.norm1, "norm"), ("layer_norm_2", block.norm2, "norm"),
                     ("attention.self.query", att.query, "linear"), ("attention.self.key", att.key, "linear"),
                     ("attention.self.value", att.value, "linear"), ("attention.output.dense", att.proj, "linear"),
                     ("mlp.dense1", block.mlp.fc1, "linear"), ("mlp.dwconv.dwconv", block.mlp.dwconv, "depthwise"),
                     ("mlp.dense2", block.mlp.fc2, "linear")]
            if att.sr_ratio > 1:
                pairs += [("attention.self.sr", att.sr, "conv"), ("attention.self.layer_norm", att.sr_norm, "norm")]
            for name, layer, kind in pairs:
                yield from _layer_targets(f"{prefix}.{name}", layer, kind)
        yield from _layer_targets(f"encoder.layer_norm.{i}", backbone.get_layer(f"stage_{i}_norm"), "norm")


def _layer_targets(prefix, layer, kind):
    if kind == "norm":
        yield f"{prefix}.weight", layer.gamma, "vector"
        yield f"{prefix}.bias", layer.beta, "vector"
        return
    yield f"{prefix}.weight", layer.kernel, kind
    if getattr(layer, "use_bias", False):
        yield f"{prefix}.bias", layer.bias, "vector"


def _head_targets(model):
    head = model.head
    for i, linear in enumerate(head.linear_c):
        yield from _layer_targets(f"decode_head.linear_c.{i}.proj", linear, "linear")
    yield from _layer_targets("decode_head.linear_fuse", head.linear_fuse, "conv")
    bn = head.fuse_norm
    for name, var in (("weight", bn.gamma), ("bias", bn.beta), ("running_mean", bn.moving_mean),
                      ("running_var", bn.moving_variance)):
        yield f"decode_head.batch_norm.{name}", var, "vector"
    yield from _layer_targets("decode_head.classifier", head.classifier, "conv")


def assign(targets, tensors: dict, source: str) -> None:
    """Copy every target tensor into its Keras variable, naming any that is missing or mis-shaped."""
    for key, variable, kind in targets:
        if key not in tensors:
            raise CheckpointError(f"{source}: tensor '{key}' is missing; the checkpoint does not match its config.")
        value = _TRANSFORMS[kind](np.asarray(tensors[key], dtype=np.float32))
        if tuple(value.shape) != tuple(variable.shape):
            raise CheckpointError(
                f"{source}: tensor '{key}' has shape {tuple(tensors[key].shape)}, which does not fit the "
                f"model's {tuple(variable.shape)} (after layout conversion)."
            )
        variable.assign(value)


def load_into_backbone(backbone, tensors: dict, source: str) -> None:
    assign(_backbone_targets(backbone), tensors, source)


def load_into_segmenter(model, tensors: dict, source: str, include_classifier: bool = True) -> None:
    assign(_backbone_targets(model.backbone), tensors, source)
    targets = _head_targets(model)
    if not include_classifier:
        targets = (t for t in targets if not t[0].startswith("decode_head.classifier"))
    assign(targets, tensors, source)
