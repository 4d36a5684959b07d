"""Training precision: fp32, bf16 (CPUs with AMX or AVX-512 BF16, or a GPU) and fp16 (GPU only, loss scaling).

On a GPU, and on a CPU whose TensorFlow runs without oneDNN, ``bf16`` and ``fp16`` are Keras mixed policies:
variables stay float32, layers compute in the low type, the loss is computed in float32 (segcli's losses cast
logits up). ``fp16``'s narrow range needs loss scaling: :class:`DynamicLossScale` multiplies the loss, divides
the gradients back, skips a step whose gradients are not finite and halves the scale, and doubles it after 2,000
finite steps (the usual dynamic scheme).

On a CPU with oneDNN on (TensorFlow's default on CPUs with AVX-512 BF16 or AMX), ``bf16`` instead keeps the
layers in float32 and lets TensorFlow's oneDNN graph rewrite (``auto_mixed_precision_onednn_bfloat16``) move
the traced step to bfloat16 (:func:`bf16_graph_rewrite`). It converts matmuls and convolutions, and the
elementwise work between them, without the Casts at every layer edge that a Keras policy adds, and a B0 step
at 512 px ran faster that way than under the Keras policy (benchmarks/TRAIN_RESULTS.md, train_precision.py).
:data:`REWRITE_KEEPS_FLOAT32` names the ops it would convert that segcli keeps in float32.

TensorFlow's CPU kernel for the gradient of ``BiasAdd`` (every Keras Dense and Conv bias) sums a bfloat16
gradient in bfloat16: over 8,192 rows it came out up to 36 % wrong (TF 2.21), and bf16 training ended 0.1 mIoU
behind fp32. :func:`accurate_bias_grads` replaces that gradient, for bfloat16 only, with ``reduce_sum``, which
accumulates in float32 (0.3 %, the rounding of the bf16 result); other types keep TensorFlow's own.

>>> check_precision("bf16", gpus=0, cpu_flags={"amx_bf16"}, onednn=True)
PrecisionPlan(name='bf16', keras_policy='float32', graph_rewrite=True)
>>> check_precision("fp16", gpus=0, cpu_flags=set())
Traceback (most recent call last):
...
segcli.train.settings.SettingError: precision fp16 needs a GPU (float16 with loss scaling); this machine has none. Use bf16 on a CPU with AMX or AVX-512 BF16, or fp32.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

from segcli.hardware import has_bf16
from segcli.train.settings import SettingError

POLICIES = {"fp32": "float32", "bf16": "mixed_bfloat16", "fp16": "mixed_float16"}
REWRITE_OPTION = "auto_mixed_precision_onednn_bfloat16"
#: What the oneDNN bf16 rewrite would compute in bfloat16 that segcli keeps in float32, through the
#: environment variables TensorFlow reads when it rewrites a graph (auto_mixed_precision_lists.h):
#: BiasAddGrad sums in bfloat16 (see above); Erf and Erfc, the exact GELU, run slower in bfloat16 than in
#: float32; Mean, SquaredDifference and Rsqrt are LayerNorm's statistics; ResizeBilinear, the final logits'
#: resize, would round the head's logits to bfloat16 before the loss; AddV2 and AddN keep the residual stream
#: and the summed gradients in float32, as torch.autocast's type promotion does: without them bf16 ended further
#: below fp32's mIoU, for a few per cent of speed (the evidence is in benchmarks/TRAIN_RESULTS.md).
REWRITE_KEEPS_FLOAT32 = {
    "TF_AUTO_MIXED_PRECISION_GRAPH_REWRITE_INFERLIST_REMOVE":
        "BiasAddGrad,Erf,Erfc,Mean,SquaredDifference,Rsqrt,AddV2,AddN",
    "TF_AUTO_MIXED_PRECISION_GRAPH_REWRITE_CLEARLIST_REMOVE": "ResizeBilinear",
}


@dataclass(frozen=True)
class PrecisionPlan:
    """How a run computes in its precision: the Keras dtype policy, and whether TF's oneDNN bf16 rewrite is on."""

    name: str
    keras_policy: str
    graph_rewrite: bool = False

    @property
    def engine(self) -> str:
        """The one-line description that the opening line and config.json carry."""
        return "TF oneDNN bf16 graph rewrite" if self.graph_rewrite else f"Keras {self.keras_policy} policy"


def check_precision(name: str, gpus: int, cpu_flags: set, onednn: bool = False) -> PrecisionPlan:
    """How to compute in ``name`` on this machine, or SettingError when it cannot.

    ``cpu_flags``: the CPU's ISA flags (``segcli.hardware.cpu_info()["isa"]``); ``onednn``: TensorFlow's oneDNN
    ops are on in this process (:func:`segcli.hardware.onednn_enabled`).
    """
    if name == "fp16" and not gpus:
        raise SettingError("`precision` fp16 needs a GPU (float16 with loss scaling); this machine has none. "
                           "Use bf16 on a CPU with AMX or AVX-512 BF16, or fp32.")
    if name == "bf16" and not gpus and not has_bf16(cpu_flags):
        raise SettingError("`precision` bf16 needs a CPU with AMX or AVX-512 BF16 (/proc/cpuinfo flags amx_bf16 "
                           "or avx512_bf16) or a GPU; this CPU has neither, and emulated bf16 is slower than fp32. "
                           "Use fp32.")
    if name == "bf16" and not gpus and onednn:
        return PrecisionPlan(name, "float32", graph_rewrite=True)
    return PrecisionPlan(name, POLICIES[name])


@contextlib.contextmanager
def bf16_graph_rewrite(keep_float32: dict | None = None):
    """TF's oneDNN bf16 rewrite on, for the graph functions called inside.

    ``keep_float32``: list variables for TF (default :data:`REWRITE_KEEPS_FLOAT32`; ``{}`` for TF's own lists).

    TensorFlow rewrites a function when it first calls it under a given optimizer config, so the switch must stay
    on for every call. The switch and the environment variables are process-wide; both are restored on exit,
    the switch to exactly its earlier state (unset stays unset, so functions already instantiated under that
    config are not instantiated again). A list variable the user has set wins over segcli's.
    """
    import tensorflow as tf

    keep_float32 = REWRITE_KEEPS_FLOAT32 if keep_float32 is None else keep_float32
    saved_env = {key: os.environ.get(key) for key in keep_float32}
    saved_option = tf.config.optimizer.get_experimental_options().get(REWRITE_OPTION)  # None: never set
    for key, value in keep_float32.items():
        os.environ.setdefault(key, value)
    tf.config.optimizer.set_experimental_options({REWRITE_OPTION: True})
    try:
        yield
    finally:
        tf.config.optimizer.set_experimental_options({REWRITE_OPTION: saved_option})
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def accurate_bias_grads() -> None:
    """Make ``BiasAdd``'s gradient accumulate bfloat16 gradients in float32 (see the module docstring); idempotent.

    TensorFlow has no public way to replace a registered gradient, so this swaps the registry entry.
    """
    import tensorflow as tf
    from tensorflow.python.framework import ops

    entry = ops._gradient_registry._registry["BiasAdd"]
    original = entry["type"]
    if getattr(original, "segcli_accurate", False):
        return

    def bias_add_grad(op, grad):
        if grad.dtype != tf.bfloat16:
            return original(op, grad)
        rank = tf.rank(grad)
        if op.get_attr("data_format") in (b"NCHW", "NCHW"):
            axes = tf.concat([[0], tf.range(2, rank)], 0)
        else:
            axes = tf.range(rank - 1)
        return grad, tf.reduce_sum(grad, axes)  # Sum's kernel accumulates bfloat16 in float32

    bias_add_grad.segcli_accurate = True
    entry["type"] = bias_add_grad


class DynamicLossScale:
    """Loss scaling for float16 (see the module docstring); create it under the strategy's scope."""

    def __init__(self, initial=2.0 ** 15, growth_interval=2000):
        import tensorflow as tf

        self.scale = tf.Variable(initial, trainable=False, dtype=tf.float32,
                                 synchronization=tf.VariableSynchronization.ON_READ,
                                 aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
        self.good_steps = tf.Variable(0, trainable=False, dtype=tf.int64,
                                      synchronization=tf.VariableSynchronization.ON_READ,
                                      aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
        self.growth_interval = growth_interval

    def unscale(self, grads):
        """(gradients divided by the scale, whether all are finite), and the scale updated for the next step."""
        import tensorflow as tf

        grads = [g / self.scale for g in grads]
        finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in grads])
        grow = tf.logical_and(finite, self.good_steps + 1 >= self.growth_interval)
        self.scale.assign(tf.where(finite, tf.where(grow, self.scale * 2.0, self.scale), self.scale / 2.0))
        self.good_steps.assign(tf.where(finite, tf.where(grow, tf.zeros_like(self.good_steps), self.good_steps + 1),
                                        tf.zeros_like(self.good_steps)))
        return [tf.where(finite, g, tf.zeros_like(g)) for g in grads], finite
