"""The opening line of a training run: what is trained on what, how, and from which weights with which recipe."""

from __future__ import annotations


def count(n: int, word: str, plural: str | None = None) -> str:
    """``count(1, "epoch")`` -> ``1 epoch``; ``count(2, "epoch")`` -> ``2 epochs``."""
    return f"{n} {word if n == 1 else plural or word + 's'}"


def _start(resolved: dict) -> str:
    """Where the weights come from, and whether the checkpoint's classifier was replaced."""
    if not resolved["pretrained_loaded"]:
        return "random initialisation (no pretrained weights loaded)"
    start = f"weights from {resolved['model_source']}"
    if resolved.get("checkpoint_classes") not in (None, resolved["num_classes"]):
        start += f" (a new classifier replaces its {resolved['checkpoint_classes']}-class one)"
    return start


def _precision_words(s) -> str:
    return s.precision if s.precision == "fp32" else f"{s.precision} ({s.resolved['precision_engine']})"


def opening_line(s, steps: int, out, recipe) -> str:
    """The line for settings ``s`` (resolved), ``steps`` per epoch, run directory ``out``; ``recipe`` is the recipe
    that filled the open settings, or None when the run's recorded recipe is another (resumed)."""
    r, start = s.resolved, _start(s.resolved)
    how = (f"{start}, so {recipe.why} (lr {s.lr:g}, head x{s.head_lr_mult:g}, "
           f"{count(s.warmup_steps, 'warm-up step')}, rescale {s.scale_min:g}-{s.scale_max:g}, class weights "
           f"{s.class_weights})" if recipe else f"{start}; lr {s.lr:g}, head x{s.head_lr_mult:g}")
    return (f"Training {s.preset} on {s.data}: {r['train_pairs']} train / {r['val_pairs']} val pairs, "
            f"{count(r['num_classes'], 'class', 'classes')}, {s.image_size[0]}x{s.image_size[1]} crops, "
            f"batch {s.batch_size}, {count(s.epochs, 'epoch')} x {count(steps, 'step')}, "
            f"{r['strategy']} strategy ({count(r['replicas'], 'replica')}), {_precision_words(s)}; {how}. "
            f"Run directory: {out}")
