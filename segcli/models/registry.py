"""The one preset table: every architecture and checkpoint segcli knows.

Pure data. This module imports nothing heavy, so ``segcli presets`` and
``segcli --help`` answer without TensorFlow. Parameter counts are not stored
here: :mod:`segcli.models.params` computes them from these settings, and the
tests check that formula against built Keras models.

>>> get_preset("mit_b0")["arch"]["hidden_sizes"]
(32, 64, 160, 256)
>>> get_preset("segformer_b2_ade20k_512")["num_classes"]
150
"""

from __future__ import annotations

import difflib

from segcli.errors import PresetError

# Settings shared by every MiT size (paper, Table 6).
_MIT_COMMON = {
    "num_attention_heads": (1, 2, 5, 8),
    "sr_ratios": (8, 4, 2, 1),
    "patch_sizes": (7, 3, 3, 3),
    "strides": (4, 2, 2, 2),
    "mlp_ratios": (4, 4, 4, 4),
}

#: Encoder architectures. ``decoder_width`` is the paper's decode-head width
#: for that size; ``imagenet_top1`` is the published ImageNet-1k accuracy.
ARCHITECTURES = {
    "mit_b0": {"hidden_sizes": (32, 64, 160, 256), "depths": (2, 2, 2, 2), "decoder_width": 256, "imagenet_top1": 70.5},
    "mit_b1": {"hidden_sizes": (64, 128, 320, 512), "depths": (2, 2, 2, 2), "decoder_width": 256, "imagenet_top1": 78.7},
    "mit_b2": {"hidden_sizes": (64, 128, 320, 512), "depths": (3, 4, 6, 3), "decoder_width": 768, "imagenet_top1": 81.6},
    "mit_b3": {"hidden_sizes": (64, 128, 320, 512), "depths": (3, 4, 18, 3), "decoder_width": 768, "imagenet_top1": 83.1},
    "mit_b4": {"hidden_sizes": (64, 128, 320, 512), "depths": (3, 8, 27, 3), "decoder_width": 768, "imagenet_top1": 83.6},
    "mit_b5": {"hidden_sizes": (64, 128, 320, 512), "depths": (3, 6, 40, 3), "decoder_width": 768, "imagenet_top1": 83.8},
    # A tiny registered variant (timm's test_* idea) that tests build in milliseconds.
    "mit_test": {"hidden_sizes": (8, 16, 40, 64), "depths": (1, 1, 1, 1), "decoder_width": 32, "imagenet_top1": None},
}

NVIDIA_LICENCE = "NVIDIA Source Code License (non-commercial research/evaluation only)"
NVIDIA_LICENCE_NOTE = (
    "NVIDIA's SegFormer code and weights are licensed for non-commercial research or "
    "evaluation use only; this carries over to every converted copy segcli makes."
)
#: The seed's segmenter rows (keras-cv 0.9) were counted with this many classes
#: and a 256-wide head; `segcli presets` shows segmenter rows the same way.
SEGMENTER_ROW_CLASSES = 19
#: The seed's MiT rows include a 10-way dense classifier on top of the encoder.
SEED_MIT_ROW_CLASSES = 10

# Published single-scale mIoU (paper, Table 1/2): ADE20K val at 512 (640 for
# B5), Cityscapes val at 1024x1024 with sliding-window inference.
_ADE_MIOU = {0: 37.4, 1: 42.2, 2: 46.5, 3: 49.4, 4: 50.3, 5: 51.0}
_CITYSCAPES_MIOU = {0: 76.2, 1: 78.5, 2: 81.0, 3: 81.7, 4: 82.3, 5: 82.4}


def _arch(name: str) -> dict:
    spec = ARCHITECTURES[name]
    return {"hidden_sizes": spec["hidden_sizes"], "depths": spec["depths"], **_MIT_COMMON}


def _rows() -> list[dict]:
    rows: list[dict] = []
    for size in range(6):
        mit = f"mit_b{size}"
        rows.append({
            "name": mit, "kind": "backbone", "model": "backbone", "arch_name": mit,
            "description": f"MiT-B{size} encoder, {sum(ARCHITECTURES[mit]['depths'])} transformer blocks, random init.",
        })
    for size in range(6):
        mit = f"mit_b{size}"
        rows.append({
            "name": f"{mit}_imagenet", "kind": "checkpoint", "model": "backbone", "arch_name": mit,
            "description": f"MiT-B{size} encoder pre-trained on ImageNet-1k "
                           f"({ARCHITECTURES[mit]['imagenet_top1']}% top-1).",
            "source": f"hf://nvidia/mit-b{size}", "weights_scope": "backbone",
            "input_size": (224, 224), "dataset": "imagenet", "licence": NVIDIA_LICENCE,
            "imagenet_top1": ARCHITECTURES[mit]["imagenet_top1"],
        })
    for size in range(6):
        mit = f"mit_b{size}"
        rows.append({
            "name": f"segformer_b{size}", "kind": "segmenter", "model": "segmenter", "arch_name": mit,
            "description": f"SegFormer with a MiT-B{size} encoder, random init.",
        })
    rows.append({
        "name": "segformer_b0_imagenet", "kind": "checkpoint", "model": "segmenter", "arch_name": "mit_b0",
        "description": "SegFormer with an ImageNet-1k pre-trained MiT-B0 encoder and a new head.",
        "source": "hf://nvidia/mit-b0", "weights_scope": "backbone", "weights_from": "mit_b0_imagenet",
        "input_size": (224, 224), "dataset": "imagenet", "licence": NVIDIA_LICENCE,
    })
    for size in range(6):
        mit = f"mit_b{size}"
        res = 640 if size == 5 else 512
        rows.append({
            "name": f"segformer_b{size}_ade20k_{res}", "kind": "checkpoint", "model": "segmenter", "arch_name": mit,
            "description": f"SegFormer-B{size} fine-tuned on ADE20K (150 classes) at {res}x{res}.",
            "source": f"hf://nvidia/segformer-b{size}-finetuned-ade-{res}-{res}", "weights_scope": "segmenter",
            "input_size": (res, res), "dataset": "ade20k", "num_classes": 150,
            "projection_filters": ARCHITECTURES[mit]["decoder_width"],
            "published_miou": _ADE_MIOU[size], "licence": NVIDIA_LICENCE,
        })
    for size in range(6):
        mit = f"mit_b{size}"
        rows.append({
            "name": f"segformer_b{size}_cityscapes_1024", "kind": "checkpoint", "model": "segmenter", "arch_name": mit,
            "description": f"SegFormer-B{size} fine-tuned on Cityscapes (19 classes) at 1024x1024.",
            "source": f"hf://nvidia/segformer-b{size}-finetuned-cityscapes-1024-1024", "weights_scope": "segmenter",
            "input_size": (1024, 1024), "dataset": "cityscapes", "num_classes": 19,
            "projection_filters": ARCHITECTURES[mit]["decoder_width"],
            "published_miou": _CITYSCAPES_MIOU[size], "licence": NVIDIA_LICENCE,
        })
    rows.append({
        "name": "mit_test", "kind": "backbone", "model": "backbone", "arch_name": "mit_test",
        "description": "Tiny MiT for tests and smoke runs (not a published size).",
    })
    rows.append({
        "name": "segformer_test", "kind": "segmenter", "model": "segmenter", "arch_name": "mit_test",
        "description": "Tiny SegFormer for tests and smoke runs (not a published size).",
        "projection_filters": ARCHITECTURES["mit_test"]["decoder_width"],
    })
    for row in rows:
        row["arch"] = _arch(row["arch_name"])
    return rows


PRESETS: dict[str, dict] = {row["name"]: row for row in _rows()}


def preset_names() -> list[str]:
    return list(PRESETS)


def get_preset(name: str) -> dict:
    """Return the preset ``name``; an unknown name fails with the close matches."""
    try:
        return PRESETS[name]
    except KeyError:
        close = difflib.get_close_matches(str(name), PRESETS, n=4, cutoff=0.5)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise PresetError(
            f"Unknown preset '{name}'.{hint} Run `segcli presets` to list all {len(PRESETS)} presets."
        ) from None


def has_weights(preset: dict) -> bool:
    return "source" in preset


def weights_entry_name(preset: dict) -> str:
    """The cache entry that holds this preset's weights (shared where the source is)."""
    return preset.get("weights_from", preset["name"])
