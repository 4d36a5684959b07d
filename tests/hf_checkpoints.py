"""Hugging Face SegFormer checkpoints made on the spot with random weights (no download)."""

from __future__ import annotations

import numpy as np

TINY = dict(hidden_sizes=[8, 16, 40, 64], depths=[1, 2, 1, 1], num_attention_heads=[1, 2, 5, 8],
            decoder_hidden_size=32)
B0 = dict(hidden_sizes=[32, 64, 160, 256], depths=[2, 2, 2, 2], decoder_hidden_size=256)
B2 = dict(hidden_sizes=[64, 128, 320, 512], depths=[3, 4, 6, 3], decoder_hidden_size=768)

MEAN = np.array([0.485, 0.456, 0.406]) * 255
STD = np.array([0.229, 0.224, 0.225]) * 255


def make(folder, arch=TINY, num_labels=5, head="segmentation", seed=0):
    """Save a random ``SegformerFor{SemanticSegmentation,ImageClassification}`` to ``folder``."""
    import torch
    from transformers import SegformerConfig, SegformerForImageClassification, SegformerForSemanticSegmentation

    torch.manual_seed(seed)
    config = SegformerConfig(num_labels=num_labels, **arch)
    config.id2label = {i: f"label_{i}" for i in range(num_labels)}
    config.label2id = {v: k for k, v in config.id2label.items()}
    cls = SegformerForSemanticSegmentation if head == "segmentation" else SegformerForImageClassification
    model = cls(config).eval()
    with torch.no_grad():  # transformers' init zeroes every bias and sets every norm's gamma to 1, which would
        for name, param in model.named_parameters():  # leave the bias and affine mappings untested
            if name.endswith("bias"):
                param.normal_(0.0, 0.02)
            elif "norm" in name and name.endswith("weight"):
                param.uniform_(0.8, 1.2)
        if head == "segmentation":  # non-trivial BatchNorm statistics, so they are really checked
            bn = model.decode_head.batch_norm
            bn.running_mean.normal_()
            bn.running_var.uniform_(0.5, 2.0)
    model.save_pretrained(str(folder))
    return model


def to_torch_input(images):
    """RGB [0, 255] NHWC -> the normalised NCHW tensor transformers expects."""
    import torch

    return torch.from_numpy(((images - MEAN) / STD).astype("float32").transpose(0, 3, 1, 2))


def upsampled_logits(model, images):
    import torch

    with torch.no_grad():
        logits = model(pixel_values=to_torch_input(images)).logits
        up = torch.nn.functional.interpolate(logits, size=images.shape[1:3], mode="bilinear", align_corners=False)
    return up.numpy().transpose(0, 2, 3, 1)
