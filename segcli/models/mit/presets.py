"""MiT encoder presets: the six published sizes, their ImageNet checkpoints and a tiny test size.

Pure data, no Keras: ``segcli presets`` reads it without TensorFlow.

>>> ARCHITECTURES["mit_b2"]["depths"], arch("mit_b0")["sr_ratios"]
((3, 4, 6, 3), (8, 4, 2, 1))
"""

from __future__ import annotations

#: The Keras class that builds these encoders (its registered name; records store it too).
BACKBONE_CLASS = "segcli>MiTBackbone"

# Settings shared by every MiT size (paper, Table 6).
_MIT_COMMON = {
    "num_attention_heads": (1, 2, 5, 8),
    "sr_ratios": (8, 4, 2, 1),
    "patch_sizes": (7, 3, 3, 3),
    "strides": (4, 2, 2, 2),
    "mlp_ratios": (4, 4, 4, 4),
}

NVIDIA_LICENCE = "NVIDIA Source Code License (non-commercial research/evaluation only)"
NVIDIA_LICENCE_NOTE = (
    "NVIDIA's SegFormer code and weights are licensed for non-commercial research or "
    "evaluation use only; this carries over to every converted copy segcli makes."
)
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

#: The seed's MiT rows include a 10-way dense classifier on top of the encoder.
SEED_MIT_ROW_CLASSES = 10


def arch(name: str) -> dict:
    """The encoder settings of architecture ``name`` (what MiTBackbone takes)."""
    spec = ARCHITECTURES[name]
    return {"hidden_sizes": spec["hidden_sizes"], "depths": spec["depths"], **_MIT_COMMON}


def rows() -> list[dict]:
    """Encoder presets: random-init sizes, ImageNet checkpoints, and ``mit_test``."""
    out: list[dict] = []
    for size in range(6):
        mit = f"mit_b{size}"
        out.append({
            "name": mit, "kind": "backbone", "model": "backbone", "arch_name": mit,
            "description": f"MiT-B{size} encoder, {sum(ARCHITECTURES[mit]['depths'])} transformer blocks, random init.",
        })
    for size in range(6):
        mit = f"mit_b{size}"
        out.append({
            "name": f"{mit}_imagenet", "kind": "checkpoint", "model": "backbone", "arch_name": mit,
            "description": f"MiT-B{size} encoder pre-trained on ImageNet-1k "
                           f"({ARCHITECTURES[mit]['imagenet_top1']}% top-1).",
            "source": f"hf://nvidia/mit-b{size}", "weights_scope": "backbone",
            "input_size": (224, 224), "dataset": "imagenet", "licence": NVIDIA_LICENCE,
            "imagenet_top1": ARCHITECTURES[mit]["imagenet_top1"],
        })
    out.append({
        "name": "mit_test", "kind": "backbone", "model": "backbone", "arch_name": "mit_test",
        "description": "Tiny MiT for tests and smoke runs (not a published size).",
    })
    for row in out:
        row.update(arch=arch(row["arch_name"]), backbone_class=BACKBONE_CLASS)
    return out
