"""Layers of the Mix Transformer (MiT) encoder, SegFormer paper section 3.1.

Every layer works on channels-last maps ``(batch, height, width, channels)``.
Height and width are read from the tensor itself, never recovered as
``sqrt(tokens)``, so any input size works, including ``None`` dimensions.
"""

from __future__ import annotations

import warnings

import keras
from keras import ops

# Small inputs reduce the keys of a late stage to a single token; softmax over that
# one key is correct (it is 1), so Keras's "softmax over an axis of size 1" hint is noise.
warnings.filterwarnings("ignore", message=r"You are using a softmax over axis -1 .* This axis has size 1",
                        category=UserWarning)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PACKAGE = "segcli"


def dense_init():
    """The original code's init for linear layers: truncated normal, std 0.02."""
    return keras.initializers.TruncatedNormal(stddev=0.02)


def conv_init():
    """The original code's init for convolutions: normal with std sqrt(2 / fan_out)."""
    return keras.initializers.VarianceScaling(2.0, mode="fan_out", distribution="untruncated_normal")


@keras.saving.register_keras_serializable(package=PACKAGE)
class ImageNormalization(keras.layers.Layer):
    """Maps RGB values in [0, 255] to ImageNet mean/std normalised values."""

    def __init__(self, mean=IMAGENET_MEAN, std=IMAGENET_STD, **kwargs):
        super().__init__(**kwargs)
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)

    def call(self, x):
        x = ops.cast(x, self.compute_dtype)
        scale = ops.convert_to_tensor([1.0 / (255.0 * s) for s in self.std], dtype=self.compute_dtype)
        shift = ops.convert_to_tensor([m / s for m, s in zip(self.mean, self.std)], dtype=self.compute_dtype)
        return x * scale - shift

    def get_config(self):
        return {**super().get_config(), "mean": self.mean, "std": self.std}


@keras.saving.register_keras_serializable(package=PACKAGE)
class OverlapPatchEmbedding(keras.layers.Layer):
    """k x k conv with stride s and symmetric padding k // 2, then LayerNorm."""

    def __init__(self, hidden_size, patch_size, stride, epsilon=1e-5, **kwargs):
        super().__init__(**kwargs)
        self.hidden_size = hidden_size
        self.patch_size = patch_size
        self.stride = stride
        self.epsilon = epsilon
        self.pad = keras.layers.ZeroPadding2D(patch_size // 2, dtype=self.dtype_policy, name="pad")
        self.proj = keras.layers.Conv2D(hidden_size, patch_size, strides=stride, kernel_initializer=conv_init(), dtype=self.dtype_policy, name="proj")
        self.norm = keras.layers.LayerNormalization(epsilon=epsilon, dtype=self.dtype_policy, name="norm")

    def build(self, input_shape):
        self.pad.build(input_shape)
        self.proj.build(self.pad.compute_output_shape(input_shape))
        self.norm.build((None, None, None, self.hidden_size))

    def call(self, x):
        return self.norm(self.proj(self.pad(x)))

    def compute_output_shape(self, input_shape):
        return self.proj.compute_output_shape(self.pad.compute_output_shape(input_shape))

    def get_config(self):
        return {**super().get_config(), "hidden_size": self.hidden_size, "patch_size": self.patch_size,
                "stride": self.stride, "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package=PACKAGE)
class EfficientSelfAttention(keras.layers.Layer):
    """Multi-head attention whose keys and values come from a map reduced by ``sr_ratio``."""

    def __init__(self, hidden_size, num_heads, sr_ratio, epsilon=1e-5, **kwargs):
        super().__init__(**kwargs)
        if hidden_size % num_heads:
            raise ValueError(f"hidden_size {hidden_size} is not divisible by num_heads {num_heads}")
        self.hidden_size = hidden_size
        self.num_heads = num_heads
        self.head_dim = hidden_size // num_heads
        self.sr_ratio = sr_ratio
        self.epsilon = epsilon
        self.query = keras.layers.Dense(hidden_size, kernel_initializer=dense_init(), dtype=self.dtype_policy, name="query")
        self.key = keras.layers.Dense(hidden_size, kernel_initializer=dense_init(), dtype=self.dtype_policy, name="key")
        self.value = keras.layers.Dense(hidden_size, kernel_initializer=dense_init(), dtype=self.dtype_policy, name="value")
        self.proj = keras.layers.Dense(hidden_size, kernel_initializer=dense_init(), dtype=self.dtype_policy, name="proj")
        if sr_ratio > 1:
            self.sr = keras.layers.Conv2D(hidden_size, sr_ratio, strides=sr_ratio, kernel_initializer=conv_init(), dtype=self.dtype_policy, name="sr")
            self.sr_norm = keras.layers.LayerNormalization(epsilon=epsilon, dtype=self.dtype_policy, name="sr_norm")

    def build(self, input_shape):
        for layer in (self.query, self.key, self.value, self.proj):
            layer.build(input_shape)
        if self.sr_ratio > 1:
            self.sr.build(input_shape)
            self.sr_norm.build(input_shape)

    def _heads(self, x, batch):
        # (B, h, w, C) -> (B, heads, h*w, head_dim); channel c = head * head_dim + k.
        x = ops.reshape(x, (batch, -1, self.num_heads, self.head_dim))
        return ops.transpose(x, (0, 2, 1, 3))

    def _reduce(self, x):
        """``self.sr(x)``, the stride-``sr_ratio`` convolution with a kernel as large as its stride, computed as
        what it is: each non-overlapping ``s x s`` patch flattened, times the kernel as a ``(s*s*C, C)`` matrix.

        Same weights and the same sums as the Conv2D (rows and columns past the last whole patch dropped, as
        its ``valid`` padding does), in channels-last reshapes and one matmul. OpenVINO's CPU plugin ran the
        Conv2D in a blocked NCHW layout and reordered the block's LayerNorm output to feed it; the matmul
        form removes those reorders (measured in benchmarks/NOTES.md, row 18).
        """
        s, channels = self.sr_ratio, x.shape[-1]
        shape = ops.shape(x)
        rows, cols = shape[1] // s, shape[2] // s
        x = x[:, :rows * s, :cols * s, :]
        x = ops.reshape(x, (shape[0], rows, s, cols, s * channels))  # (patch row, row in patch, patch col, s*C)
        x = ops.reshape(ops.transpose(x, (0, 1, 3, 2, 4)), (shape[0], rows, cols, s * s * channels))
        kernel = ops.reshape(ops.cast(self.sr.kernel, self.compute_dtype), (s * s * channels, self.hidden_size))
        return ops.matmul(x, kernel) + ops.cast(self.sr.bias, self.compute_dtype)

    def call(self, x):
        shape = ops.shape(x)
        batch, height, width = shape[0], shape[1], shape[2]
        # The 1/sqrt(d) scale goes on the queries: (tokens x d) values instead of the (tokens x keys) scores, which
        # are 8x larger at B0's first stage, so the multiply and its gradient touch 8x fewer values in training.
        q = self._heads(self.query(x) * ops.cast(self.head_dim ** -0.5, self.compute_dtype), batch)
        kv = self.sr_norm(self._reduce(x)) if self.sr_ratio > 1 else x
        k = self._heads(self.key(kv), batch)
        v = self._heads(self.value(kv), batch)
        scores = ops.matmul(q, ops.transpose(k, (0, 1, 3, 2)))
        # Softmax in at least float32 (its exp and sum lose the small weights in bf16), then back for the matmul.
        weights = ops.softmax(ops.cast(scores, "float32"), axis=-1)
        context = ops.matmul(ops.cast(weights, v.dtype), v)
        context = ops.reshape(ops.transpose(context, (0, 2, 1, 3)), (batch, height, width, self.hidden_size))
        return self.proj(context)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "hidden_size": self.hidden_size, "num_heads": self.num_heads,
                "sr_ratio": self.sr_ratio, "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package=PACKAGE)
class MixFFN(keras.layers.Layer):
    """fc1, 3x3 depthwise conv over the map, exact GELU, fc2."""

    def __init__(self, hidden_size, mlp_ratio=4, **kwargs):
        super().__init__(**kwargs)
        self.hidden_size = hidden_size
        self.mlp_ratio = mlp_ratio
        inner = int(hidden_size * mlp_ratio)
        self.fc1 = keras.layers.Dense(inner, kernel_initializer=dense_init(), dtype=self.dtype_policy, name="fc1")
        # The depthwise conv and GELU compute in float32 under a mixed policy (a no-op under float32). TensorFlow's
        # bf16 depthwise filter gradient took twice float32's time, its bf16 Erfc and the ops of GELU's gradient
        # about 1.5x (AMX Xeon; benchmarks/TRAIN_RESULTS.md); the two matmuls around them stay in the low type.
        wide = self.dtype_policy.variable_dtype
        self.dwconv = keras.layers.DepthwiseConv2D(3, padding="same", depthwise_initializer=conv_init(), dtype=wide, name="dwconv")
        self.fc2 = keras.layers.Dense(hidden_size, kernel_initializer=dense_init(), dtype=self.dtype_policy, name="fc2")

    def build(self, input_shape):
        self.fc1.build(input_shape)
        inner_shape = tuple(input_shape[:-1]) + (int(self.hidden_size * self.mlp_ratio),)
        self.dwconv.build(inner_shape)
        self.fc2.build(inner_shape)

    def call(self, x):
        x = keras.activations.gelu(self.dwconv(self.fc1(x)), approximate=False)  # float32 (see __init__)
        return self.fc2(ops.cast(x, self.compute_dtype))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "hidden_size": self.hidden_size, "mlp_ratio": self.mlp_ratio}


@keras.saving.register_keras_serializable(package=PACKAGE)
class DropPath(keras.layers.Layer):
    """Stochastic depth: drops the whole residual branch per sample while training."""

    def __init__(self, rate=0.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.rate = float(rate)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, x, training=None):
        if not training or self.rate == 0.0:
            return x
        keep = 1.0 - self.rate
        shape = (ops.shape(x)[0],) + (1,) * (len(x.shape) - 1)
        mask = ops.floor(keep + keras.random.uniform(shape, dtype=x.dtype, seed=self.seed_generator))
        return x / keep * mask

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}


@keras.saving.register_keras_serializable(package=PACKAGE)
class MiTBlock(keras.layers.Layer):
    """x + DropPath(Attention(LN(x))), then x + DropPath(MixFFN(LN(x)))."""

    def __init__(self, hidden_size, num_heads, sr_ratio, mlp_ratio=4, drop_path=0.0,
                 epsilon=1e-6, reduction_epsilon=1e-5, **kwargs):
        kwargs["autocast"] = False  # the residual stream keeps the variables' precision (see call)
        super().__init__(**kwargs)
        self.hidden_size = hidden_size
        self.num_heads = num_heads
        self.sr_ratio = sr_ratio
        self.mlp_ratio = mlp_ratio
        self.drop_path_rate = drop_path
        self.epsilon = epsilon
        self.reduction_epsilon = reduction_epsilon
        policy = self.dtype_policy
        # Under a mixed policy (bf16/fp16 compute, float32 variables) only the attention and the MLP compute in
        # the low type, as torch.autocast does: the LayerNorms and the residual sums stay float32, which is
        # what keeps bf16 training close to fp32 (a bf16 residual stream rounds every block's update away).
        wide = self._residual_dtype()
        self.norm1 = keras.layers.LayerNormalization(epsilon=epsilon, dtype=wide, name="norm1")
        self.attention = EfficientSelfAttention(hidden_size, num_heads, sr_ratio, reduction_epsilon,
                                                dtype=policy, name="attention")
        self.norm2 = keras.layers.LayerNormalization(epsilon=epsilon, dtype=wide, name="norm2")
        self.mlp = MixFFN(hidden_size, mlp_ratio, dtype=policy, name="mlp")
        self.drop_path = DropPath(drop_path, dtype=policy, name="drop_path")

    def build(self, input_shape):
        for layer in (self.norm1, self.attention, self.norm2, self.mlp):
            layer.build(input_shape)

    def _residual_dtype(self) -> str:
        return self.dtype_policy.variable_dtype

    def call(self, x, training=None):
        x = ops.cast(x, self._residual_dtype())
        x = x + ops.cast(self.drop_path(self.attention(self.norm1(x)), training=training), x.dtype)
        return x + ops.cast(self.drop_path(self.mlp(self.norm2(x)), training=training), x.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "hidden_size": self.hidden_size, "num_heads": self.num_heads,
                "sr_ratio": self.sr_ratio, "mlp_ratio": self.mlp_ratio, "drop_path": self.drop_path_rate,
                "epsilon": self.epsilon, "reduction_epsilon": self.reduction_epsilon}
