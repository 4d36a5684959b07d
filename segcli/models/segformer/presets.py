"""SegFormer presets: random-init segmenters per MiT size, and the published fine-tuned checkpoints.

Pure data, no Keras: ``segcli presets`` reads it without TensorFlow.

>>> [r["name"] for r in rows() if r.get("dataset") == "cityscapes"][:2]
['segformer_b0_cityscapes_1024', 'segformer_b1_cityscapes_1024']
"""

from __future__ import annotations

from segcli.models.mit.presets import ARCHITECTURES, BACKBONE_CLASS, NVIDIA_LICENCE, arch

#: The seed's segmenter rows (keras-cv 0.9) were counted with this many classes
#: and a 256-wide head; `segcli presets` shows segmenter rows the same way.
SEGMENTER_ROW_CLASSES = 19

# Published single-scale mIoU (paper, Table 1/2): ADE20K val at 512 (640 for
# B5), Cityscapes val at 1024x1024 with sliding-window inference.
_ADE_MIOU = {0: 37.4, 1: 42.2, 2: 46.5, 3: 49.4, 4: 50.3, 5: 51.0}
_CITYSCAPES_MIOU = {0: 76.2, 1: 78.5, 2: 81.0, 3: 81.7, 4: 82.3, 5: 82.4}


def _finetuned(size: int, dataset: str, res: int, classes: int, miou: float, repo: str) -> dict:
    mit = f"mit_b{size}"
    label = {"ade20k": "ADE20K", "cityscapes": "Cityscapes"}[dataset]
    return {
        "name": f"segformer_b{size}_{dataset}_{res}", "kind": "checkpoint", "model": "segmenter", "arch_name": mit,
        "description": f"SegFormer-B{size} fine-tuned on {label} ({classes} classes) at {res}x{res}.",
        "source": f"hf://nvidia/{repo}", "weights_scope": "segmenter", "input_size": (res, res),
        "dataset": dataset, "num_classes": classes, "projection_filters": ARCHITECTURES[mit]["decoder_width"],
        "published_miou": miou, "licence": NVIDIA_LICENCE,
    }


def rows() -> list[dict]:
    """Segmenter presets: random-init sizes, the ImageNet-encoder start, ADE20K and Cityscapes checkpoints, a test size."""
    out: list[dict] = [{
        "name": f"segformer_b{size}", "kind": "segmenter", "model": "segmenter", "arch_name": f"mit_b{size}",
        "description": f"SegFormer with a MiT-B{size} encoder, random init.",
    } for size in range(6)]
    out.append({
        "name": "segformer_b0_imagenet", "kind": "checkpoint", "model": "segmenter", "arch_name": "mit_b0",
        "description": "SegFormer with an ImageNet-1k pre-trained MiT-B0 encoder and a new head.",
        "source": "hf://nvidia/mit-b0", "weights_scope": "backbone", "weights_from": "mit_b0_imagenet",
        "input_size": (224, 224), "dataset": "imagenet", "licence": NVIDIA_LICENCE,
    })
    for size in range(6):
        res = 640 if size == 5 else 512
        out.append(_finetuned(size, "ade20k", res, 150, _ADE_MIOU[size],
                              f"segformer-b{size}-finetuned-ade-{res}-{res}"))
    for size in range(6):
        out.append(_finetuned(size, "cityscapes", 1024, 19, _CITYSCAPES_MIOU[size],
                              f"segformer-b{size}-finetuned-cityscapes-1024-1024"))
    out.append({
        "name": "segformer_test", "kind": "segmenter", "model": "segmenter", "arch_name": "mit_test",
        "description": "Tiny SegFormer for tests and smoke runs (not a published size).",
        "projection_filters": ARCHITECTURES["mit_test"]["decoder_width"],
    })
    for row in out:
        row.update(arch=arch(row["arch_name"]), backbone_class=BACKBONE_CLASS)
    return out
