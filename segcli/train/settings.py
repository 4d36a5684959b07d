"""Every setting of a training run, its checks, and the two recipes that fill what the caller left open.

Settings left at ``None`` are chosen by a recipe once the model is built: the paper's fine-tuning recipe
(:data:`PAPER`) when pretrained weights loaded, the from-scratch recipe (:data:`SCRATCH`) when none did.
``config.json`` stores the settings as resolved, so a resumed run never re-decides them.

Errors name settings, not command-line flags: :class:`SettingError` keeps the setting names marked, and the
CLI renders them as its flags.

>>> s = TrainSettings(data="d", preset="mit_b0", out="o", lr=1e-4)
>>> resolve_recipe(s, pretrained_loaded=False, steps_per_epoch=100).name
'from-scratch'
>>> s.lr, s.epochs >= 10, s.warmup_steps > 0
(0.0001, True, True)
>>> validate(TrainSettings(data="d", preset="p", out="o", epochs=0))
Traceback (most recent call last):
...
segcli.train.settings.SettingError: epochs must be a positive whole number; got 0.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field

from segcli.data.image_size import parse_image_size
from segcli.errors import UsageError

PRECISIONS = ("fp32", "bf16", "fp16")
CACHES = ("memory", "disk", "none")
STRATEGIES = ("auto", "mirrored", "multiworker")


class SettingError(UsageError):
    """A setting's value is out of range or contradicts another.

    The message template marks setting names with backquotes; ``str()`` shows the names as they are,
    :meth:`render` lets the CLI show its flags instead.
    """

    def __init__(self, template: str):
        self.template = template
        super().__init__(self.render())

    def render(self, name_of=None) -> str:
        return re.sub(r"`(\w+)`", lambda m: name_of(m.group(1)) if name_of else m.group(1), self.template)


@dataclass(frozen=True)
class Recipe:
    """Defaults for the settings a caller left at None; chosen by whether pretrained weights loaded."""

    name: str
    lr: float
    head_lr_mult: float
    warmup_share: float  # of all steps ...
    warmup_cap: int | None  # ... at most this many steps
    scale: tuple  # random-rescale range of the crops
    class_weights: str
    min_epochs: int
    min_steps: int  # small sets train for more epochs, up to this many steps in all
    why: str


#: The SegFormer paper's fine-tuning recipe (mmsegmentation): AdamW 6e-5, head x10, 1,500 warm-up steps.
PAPER = Recipe("paper", lr=6e-5, head_lr_mult=10.0, warmup_share=0.1, warmup_cap=1500, scale=(0.5, 2.0),
               class_weights="none", min_epochs=10, min_steps=0,
               why="the paper's fine-tuning recipe")
#: From random initialisation (chosen by benchmarks/train_scratch_recipe.py; see benchmarks/TRAIN_RESULTS.md).
SCRATCH = Recipe("from-scratch", lr=3e-3, head_lr_mult=1.0, warmup_share=0.2, warmup_cap=None, scale=(0.75, 1.5),
                 class_weights="auto", min_epochs=10, min_steps=2250,
                 why="the from-scratch recipe")
RECIPE_FIELDS = ("epochs", "lr", "head_lr_mult", "warmup_steps", "scale_min", "scale_max", "class_weights")


@dataclass
class TrainSettings:
    """Every setting of a run; ``config.json`` holds these, resolved. None: the recipe decides."""

    data: str
    preset: str
    out: str
    epochs: int | None = None  # recipe: 10, more for small sets from scratch
    batch_size: int = 8
    image_size: tuple = (512, 512)
    num_classes: int | None = None
    val_fraction: float = 0.1
    seed: int = 0
    lr: float | None = None  # recipe: 6e-5 (paper) or SCRATCH.lr
    head_lr_mult: float | None = None
    weight_decay: float = 0.01
    beta_1: float = 0.9
    beta_2: float = 0.999
    warmup_steps: int | None = None  # recipe: min(1500, 10% of all steps) or a share of all steps from scratch
    warmup_ratio: float = 1e-6
    poly_power: float = 1.0
    class_weights: str | None = None  # none | auto | comma-separated numbers
    dice_weight: float = 0.0
    precision: str = "fp32"  # fp32 | bf16 | fp16
    cache: str | None = None  # memory | disk | none; None: memory when the decoded set fits in 1/4 of RAM
    strategy: str = "auto"
    patience: int | None = None
    pretrained: bool = True
    scale_min: float | None = None
    scale_max: float | None = None
    steps_per_epoch: int | None = None  # None: ceil(train pairs / batch size)
    label_map: str | None = None  # JSON file: raw mask value -> class id (segcli.data.label_map)
    classes: str | None = None  # "a,b,c": train on these classes only; the others become 255
    resolved: dict = field(default_factory=dict)


def default_of(name: str):
    """The dataclass default of a setting (what the CLI shows in --help).

    >>> default_of("batch_size"), default_of("precision")
    (8, 'fp32')
    """
    f = TrainSettings.__dataclass_fields__[name]
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default


def _positive_int(s, name):
    value = getattr(s, name)
    if value is not None and value <= 0:
        raise SettingError(f"`{name}` must be a positive whole number; got {value}.")


def validate(s: TrainSettings) -> None:
    """Range checks that need no data; :class:`SettingError` with one line."""
    if s.epochs is not None and s.epochs <= 0:
        raise SettingError(f"`epochs` must be a positive whole number; got {s.epochs}.")
    for name in ("batch_size", "steps_per_epoch"):
        _positive_int(s, name)
    if s.warmup_steps is not None and s.warmup_steps < 0:
        raise SettingError(f"`warmup_steps` must be 0 or more; got {s.warmup_steps}.")
    try:
        s.image_size = parse_image_size(s.image_size, "`image_size`")
    except UsageError as exc:
        raise SettingError(str(exc)) from None
    if s.num_classes is not None and not 2 <= s.num_classes <= 255:
        raise SettingError(f"`num_classes` must be between 2 and 255; got {s.num_classes}.")
    for name in ("lr", "head_lr_mult"):
        value = getattr(s, name)
        if value is not None and not value > 0:
            raise SettingError(f"`{name}` must be positive; got {value}.")
    if s.weight_decay < 0:
        raise SettingError(f"`weight_decay` must be 0 or more; got {s.weight_decay}.")
    if not 0.0 < s.val_fraction < 1.0:
        raise SettingError(f"`val_fraction` must be between 0 and 1 (exclusive), e.g. 0.1; got {s.val_fraction}.")
    if s.patience is not None and s.patience <= 0:
        raise SettingError(f"`patience` must be a positive number of epochs; got {s.patience}.")
    for name, allowed in (("strategy", STRATEGIES), ("precision", PRECISIONS)):
        if getattr(s, name) not in allowed:
            raise SettingError(f"`{name}` {getattr(s, name)!r}: use {', '.join(allowed[:-1])} or {allowed[-1]}.")
    if s.cache is not None and s.cache not in CACHES:
        raise SettingError(f"`cache` {s.cache!r}: use memory, disk or none.")
    lo, hi = s.scale_min, s.scale_max
    if (lo is not None and lo <= 0) or (lo is not None and hi is not None and lo > hi):
        raise SettingError(f"scale range {lo}-{hi} is invalid; need 0 < `scale_min` <= `scale_max`.")
    if s.dice_weight < 0:
        raise SettingError(f"`dice_weight` must be 0 or more; got {s.dice_weight}.")
    if s.classes is not None:
        from segcli.classes import split_names

        try:
            names = split_names(s.classes, "`classes`")
        except UsageError as error:  # the same words, with the setting's name as the CLI spells it
            raise SettingError(str(error)) from None
        if len(set(names)) < 2:
            raise SettingError(f"`classes` {s.classes}: keep at least 2 classes (a model with one class has nothing "
                               f"to tell apart).")


def resolve_recipe(s: TrainSettings, pretrained_loaded: bool, steps_per_epoch: int) -> Recipe:
    """Fill the settings left at None from the recipe that fits; return that recipe."""
    recipe = PAPER if pretrained_loaded else SCRATCH
    if s.epochs is None:
        s.epochs = max(recipe.min_epochs, math.ceil(recipe.min_steps / steps_per_epoch))
    total = s.epochs * steps_per_epoch
    if s.warmup_steps is None:
        warmup = int(total * recipe.warmup_share)
        s.warmup_steps = min(warmup, recipe.warmup_cap) if recipe.warmup_cap else warmup
    for name, value in (("lr", recipe.lr), ("head_lr_mult", recipe.head_lr_mult),
                        ("scale_min", recipe.scale[0]), ("scale_max", recipe.scale[1]),
                        ("class_weights", recipe.class_weights)):
        if getattr(s, name) is None:
            setattr(s, name, value)
    if s.scale_min > s.scale_max:
        raise SettingError(f"scale range {s.scale_min}-{s.scale_max} is invalid; need 0 < `scale_min` <= "
                           f"`scale_max`.")
    return recipe


def from_saved(saved: dict, **overrides) -> TrainSettings:
    """Settings from a run's ``config.json`` (unknown keys dropped; 0.1's ``mixed_precision`` read as bf16)."""
    names = {f.name for f in dataclasses.fields(TrainSettings)}
    values = {k: v for k, v in saved.items() if k in names}
    if saved.get("mixed_precision") and "precision" not in saved:
        values["precision"] = "bf16"
    values["image_size"] = tuple(values["image_size"])
    values.update(overrides)
    return TrainSettings(**values)


def ignored_on_resume(saved: dict, given: dict) -> list:
    """``(name, given value, the run's value)`` for each setting in ``given`` that a resumed run ignores because
    its ``config.json`` (``saved``) records another value; ``strategy`` is not ignored (the hardware may differ).

    >>> ignored_on_resume({"epochs": 6, "lr": 0.003, "image_size": [32, 32], "seed": 0},
    ...                   {"epochs": 8, "lr": 0.003, "image_size": (32, 32), "seed": None, "strategy": "auto"})
    [('epochs', 8, 6)]
    """
    def norm(value):
        return tuple(value) if isinstance(value, list) else value

    return [(name, value, saved.get(name)) for name, value in given.items()
            if value is not None and name not in ("strategy", "out", "data")
            and norm(value) != norm(saved.get(name))]
