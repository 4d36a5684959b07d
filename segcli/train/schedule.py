"""The paper's learning-rate schedule: linear warmup, then poly decay, per step.

>>> s = WarmupPoly(base_lr=1.0, total_steps=100, warmup_steps=10, power=1.0)
>>> [round(float(s(t)), 3) for t in (0, 5, 10, 50, 100)]
[0.0, 0.475, 0.9, 0.5, 0.0]
"""

from __future__ import annotations

import keras
from keras import ops


class WarmupPoly(keras.optimizers.schedules.LearningRateSchedule):
    """``base_lr * (1 - t/T) ** power``, multiplied during the first ``warmup_steps`` by a
    factor rising linearly from ``warmup_ratio`` to 1 (mmsegmentation's LinearLR + PolyLR)."""

    def __init__(self, base_lr, total_steps, warmup_steps=0, power=1.0, warmup_ratio=1e-6, min_lr=0.0):
        self.base_lr = float(base_lr)
        self.total_steps = max(int(total_steps), 1)
        self.warmup_steps = int(warmup_steps)
        self.power = float(power)
        self.warmup_ratio = float(warmup_ratio)
        self.min_lr = float(min_lr)

    def __call__(self, step):
        t = ops.minimum(ops.cast(step, "float32"), float(self.total_steps))
        lr = (self.base_lr - self.min_lr) * ops.power(1.0 - t / self.total_steps, self.power) + self.min_lr
        if self.warmup_steps > 0:
            progress = ops.minimum(t / self.warmup_steps, 1.0)
            lr = lr * (self.warmup_ratio + (1.0 - self.warmup_ratio) * progress)
        return lr

    def get_config(self):
        return {"base_lr": self.base_lr, "total_steps": self.total_steps, "warmup_steps": self.warmup_steps,
                "power": self.power, "warmup_ratio": self.warmup_ratio, "min_lr": self.min_lr}


def make_optimizer(base_lr, variables, s, total_steps: int):
    """AdamW on ``variables`` with the warmup + poly schedule of ``s`` (TrainSettings); no decay on 1-D variables."""
    schedule = WarmupPoly(base_lr, total_steps, s.warmup_steps or 0, s.poly_power, s.warmup_ratio)
    opt = keras.optimizers.AdamW(learning_rate=schedule, weight_decay=s.weight_decay, beta_1=s.beta_1,
                                 beta_2=s.beta_2, epsilon=1e-8)
    opt.exclude_from_weight_decay(var_list=[v for v in variables if len(v.shape) <= 1])
    opt.build(variables)
    return opt
