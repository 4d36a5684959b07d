"""Choosing the from-scratch recipe: SegFormer-B0, random init, `segcli data synth` 128 px data.

Each candidate recipe trains B0 from scratch with the library's ``train()`` (the same code as ``segcli train``)
on one synthetic set (``segcli data synth DATA --n 2000 --size 128 --seed 2026 --val-fraction 0.05``: 1,900
train / 100 val images), batch 8, 128x128 crops, validating every ``--every`` steps. It prints, per recipe, the
val mIoU after each validation and the first step at which val mIoU >= 0.8 (the issue's target: <= 2,250 steps).

Usage (from the repository root; one process runs the candidates one after another)::

    segcli data synth /tmp/recipe/data --n 2000 --size 128 --seed 2026 --val-fraction 0.05
    python benchmarks/train_scratch_recipe.py /tmp/recipe/data --steps 750 --every 150 \
        --recipes A,B,C,D --log /tmp/recipe/screen.jsonl
    python benchmarks/train_scratch_recipe.py /tmp/recipe/data --steps 2250 --every 150 --recipes default \
        --log /tmp/recipe/full.jsonl

``default`` means: no recipe settings at all, so ``train()`` picks its own from-scratch defaults (what a user
gets). One JSON line per finished recipe goes to ``--log``; the results and the CPU they ran on are kept in
benchmarks/TRAIN_RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from sections import cpu_line  # noqa: E402

# lr is the backbone's; head = lr * head_lr_mult; warmup as a share of all steps; scale = random-rescale range.
RECIPES = {
    "A": {"lr": 1e-3, "head_lr_mult": 1.0, "warmup": 0.10, "scale": (0.5, 2.0), "class_weights": "auto"},  # by hand, 0.1
    "B": {"lr": 2e-3, "head_lr_mult": 1.0, "warmup": 0.20, "scale": (0.5, 2.0), "class_weights": "auto"},
    "C": {"lr": 3e-3, "head_lr_mult": 1.0, "warmup": 0.20, "scale": (0.5, 2.0), "class_weights": "auto"},
    "D": {"lr": 2e-3, "head_lr_mult": 1.0, "warmup": 0.20, "scale": (0.25, 2.5), "class_weights": "auto"},
    "E": {"lr": 3e-3, "head_lr_mult": 1.0, "warmup": 0.20, "scale": (0.75, 1.5), "class_weights": "auto"},
    "F": {"lr": 4e-3, "head_lr_mult": 1.0, "warmup": 0.20, "scale": (0.75, 1.5), "class_weights": "auto"},
    "default": {},
}


class LogReporter:
    """Epoch lines on stderr (the library's reporter protocol)."""

    def __init__(self, name):
        self.name = name

    def message(self, text):
        print(f"[{self.name}] {text}", file=sys.stderr, flush=True)

    def start_epoch(self, *args, **kwargs):
        pass

    def phase(self, *args, **kwargs):
        pass

    def step(self, *args, **kwargs):
        pass

    def end_epoch(self, row):
        print(f"[{self.name}] epoch {row['epoch']}: loss {row['train_loss']:.4f} val mIoU {row['val_miou']:.4f} "
              f"{row['images_per_sec']:.1f} img/s", file=sys.stderr, flush=True)


def _resolved(out):
    saved = json.loads((Path(out) / "config.json").read_text())["settings"]
    keys = ("epochs", "lr", "head_lr_mult", "warmup_steps", "scale_min", "scale_max", "class_weights", "precision")
    return {k: saved.get(k) for k in keys} | {"recipe": saved["resolved"].get("recipe"),
                                               "cache": saved["resolved"].get("cache")}


def run(name, data, out, steps, every, seed):
    from segcli.train.loop import TrainSettings, train

    recipe = RECIPES[name]
    epochs = math.ceil(steps / every)
    kw = dict(data=str(data), preset="segformer_b0", out=str(out), batch_size=8, image_size=(128, 128), seed=seed,
              pretrained=False, steps_per_epoch=every)
    if recipe:  # "default" leaves the epochs to the recipe too: 2,250 steps at least, so 15 x 150 here
        kw.update(epochs=epochs, lr=recipe["lr"], head_lr_mult=recipe["head_lr_mult"], warmup_steps=int(recipe["warmup"] * steps),
                  scale_min=recipe["scale"][0], scale_max=recipe["scale"][1], class_weights=recipe["class_weights"])
    start = time.perf_counter()
    result = train(TrainSettings(**kw), reporter=LogReporter(name), overwrite=True)
    miou = [r["val_miou"] for r in result.history]
    first = next((i + 1 for i, m in enumerate(miou) if m is not None and m >= 0.8), None)
    return {"recipe": name, "settings": recipe or _resolved(out), "steps": len(miou) * every, "validate_every": every,
            "val_miou": miou, "first_step_at_0.8": first * every if first else None, "best_miou": result.best_miou,
            "img_per_s": [round(r["images_per_sec"], 2) for r in result.history],
            "wall_s": round(time.perf_counter() - start, 1), "cpu": cpu_line(), "load_after": os.getloadavg()[0]}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--steps", type=int, default=2250)
    parser.add_argument("--every", type=int, default=150, help="validate every this many steps")
    parser.add_argument("--recipes", default="A,B,C,D")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--runs", type=Path, default=Path("/tmp/recipe/runs"))
    parser.add_argument("--log", type=Path, default=Path("/tmp/recipe/results.jsonl"))
    args = parser.parse_args(argv)
    for name in args.recipes.split(","):
        row = run(name, args.data, args.runs / name, args.steps, args.every, args.seed)
        print(json.dumps(row), flush=True)
        with open(args.log, "a") as f:
            f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
