"""``segcli bench``: forward-pass throughput, latency, FLOPs and memory for presets, sizes and batch sizes.

Each (preset, image size, batch size) combination is one row. The model is
built once per preset with random weights (timing does not depend on the
values) and dynamic height/width, and called inside a ``tf.function`` traced
for that exact batch shape. Inputs are RGB values in [0, 255]; the model
normalises them itself. A row reports:

- latency percentiles (p50/p90/p99, milliseconds per batch) over ``iters``
  timed calls after ``warmup`` untimed ones, and images per second (from p50);
- ``gflops_per_image`` counted by TF's profiler on the traced graph, the
  achieved GFLOP/s and, when the machine's fp32 matmul peak is known
  (``--peak`` measures it; it is remembered per CPU), that as a fraction;
- ``peak_rss_mb``: the process's peak resident memory so far
  (``resource.getrusage``), which only grows from row to row.

Predictor presets without a class count get 150 classes (ADE20K) and the
paper's decode-head width for their size, so ``segformer_b2`` is timed as the
published B2.

>>> parse_sizes("512,640x480")
[(512, 512), (640, 480)]
>>> parse_ints("1, 8", "--batch-size")
[1, 8]
>>> parse_presets(["segformer_b0,segformer_b1", "mit_b0"])
['segformer_b0', 'segformer_b1', 'mit_b0']
"""

from __future__ import annotations

import contextlib
import resource
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from segcli.errors import UsageError
from segcli.models.registry import ARCHITECTURES, get_preset

DEFAULT_PRESETS = ("segformer_b0",)
DEFAULT_SIZES = ((512, 512),)
DEFAULT_BATCH_SIZES = (1, 8)
DEFAULT_NUM_CLASSES = 150
#: Columns every JSON row has (more keys may follow).
ROW_KEYS = ("preset", "image_size", "batch_size", "img_per_s", "latency_ms_p50", "latency_ms_p90",
            "latency_ms_p99", "gflops_per_image", "peak_rss_mb")


@dataclass
class BenchConfig:
    presets: list = field(default_factory=lambda: list(DEFAULT_PRESETS))
    sizes: list = field(default_factory=lambda: list(DEFAULT_SIZES))
    batch_sizes: list = field(default_factory=lambda: list(DEFAULT_BATCH_SIZES))
    warmup: int = 1
    iters: int = 5
    mixed_precision: bool = False
    num_classes: int | None = None
    measure_peak: bool = False
    input_dir: Path | None = None

    def check(self) -> None:
        check_counts(self.warmup, self.iters)
        if self.num_classes is not None and self.num_classes < 1:
            raise UsageError(f"num classes {self.num_classes}: must be at least 1.", value="num_classes")
        for name in self.presets:
            get_preset(name)  # unknown names fail with close matches
        if self.input_dir is not None:
            from segcli.data.image_io import image_folder, is_image_name

            folder = image_folder(self.input_dir, "input_dir")
            if not any(is_image_name(p.name) for p in folder.rglob("*") if p.is_file()):
                raise UsageError(f"input {folder}: no images found (looked for .jpg, .png and the like).", value="input_dir")
            if get_preset(self.presets[0])["model"] != "segmenter":
                raise UsageError(f"input images need a segmenter preset first; {self.presets[0]} is a backbone.",
                                 value="input_dir")


def check_counts(warmup: int, iters: int) -> None:
    """Untimed calls ``warmup`` >= 0 and timed calls ``iters`` >= 1 (no timed call gives no time), for preset
    rows and ``--model`` alike."""
    if warmup < 0:
        raise UsageError(f"warmup {warmup}: must be 0 or more.", value="warmup")
    if iters < 1:
        raise UsageError(f"iters {iters}: must be at least 1.", value="iters")


@dataclass
class BenchReport:
    rows: list
    environment: dict
    peak: dict | None  # {"gflops_per_s", "matmul_size", "runs", "measured_now"} or None
    end_to_end: dict | None = None


# --- option parsing ----------------------------------------------------------------------------------------------
def _split(values) -> list[str]:
    if isinstance(values, str):
        values = [values]
    return [part.strip() for value in values for part in str(value).split(",") if part.strip()]


def parse_presets(values) -> list[str]:
    """Preset names from repeated and/or comma-separated options; unknown names fail."""
    names = _split(values)
    if not names:
        raise UsageError("give at least one preset name (see `segcli presets`).", value="preset")
    for name in names:
        get_preset(name)
    return names


def parse_ints(values, option: str) -> list[int]:
    """Positive integers from "1,8" or repeated options."""
    out = []
    for part in _split(values):
        try:
            number = int(part)
        except ValueError:
            raise UsageError(f"{option} {part!r}: not an integer; use e.g. {option} 1,8.") from None
        if number < 1:
            raise UsageError(f"{option} {number}: must be a positive integer.")
        out.append(number)
    if not out:
        raise UsageError(f"{option}: give at least one value.")
    return out


def parse_sizes(values) -> list[tuple[int, int]]:
    """(height, width) pairs from "512", "512x1024" (height x width) or comma-separated lists of those."""
    from segcli.data.image_size import parse_image_sizes

    return parse_image_sizes(values, name="--image-size")


# --- measurement ---------------------------------------------------------------------------------------------------
def peak_rss_mb() -> float:
    """Peak resident set size of this process in MiB.

    On Linux this is ``VmHWM`` from /proc: ``ru_maxrss`` survives fork + exec, so a process started by a big
    parent would report the parent's peak. Elsewhere ``ru_maxrss`` (Linux KiB, macOS bytes).
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1 << 20) if sys.platform == "darwin" else peak / 1024


def latency_stats(seconds: list[float], batch_size: int) -> dict:
    """p50/p90/p99 in milliseconds per batch and images per second at the median.

    >>> latency_stats([0.1, 0.2, 0.3], 2)["img_per_s"]
    10.0
    """
    ms = np.asarray(seconds, dtype=np.float64) * 1000.0
    p50, p90, p99 = (float(np.percentile(ms, q)) for q in (50, 90, 99))
    return {"img_per_s": round(batch_size * 1000.0 / p50, 3), "latency_ms_p50": round(p50, 3),
            "latency_ms_p90": round(p90, 3), "latency_ms_p99": round(p99, 3)}


@contextlib.contextmanager
def dtype_policy(mixed_precision: bool):
    """Keras's global policy set to mixed_bfloat16 inside the block, restored after."""
    import keras

    before = keras.config.dtype_policy()
    if mixed_precision:
        keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        yield
    finally:
        keras.config.set_dtype_policy(before)


def build_model(name: str, num_classes: int | None = None, mixed_precision: bool = False):
    """A random-init model for preset ``name`` with dynamic height and width."""
    from segcli.models.load import load

    preset = get_preset(name)
    with dtype_policy(mixed_precision):
        if preset["model"] == "backbone":
            return load(name, want="backbone", load_weights=False, input_shape=(None, None, 3)).model
        classes = num_classes or preset.get("num_classes") or DEFAULT_NUM_CLASSES
        width = preset.get("projection_filters") or ARCHITECTURES[preset["arch_name"]]["decoder_width"]
        return load(name, num_classes=classes, load_weights=False, input_shape=(None, None, 3),
                    projection_filters=width).model


def time_forward(fn, images, warmup: int, iters: int, on_iter=None) -> list[float]:
    """Seconds per call of ``fn(images)`` for ``iters`` calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        _finish(fn(images))
    times = []
    for i in range(iters):
        start = time.perf_counter()
        _finish(fn(images))
        times.append(time.perf_counter() - start)
        if on_iter:
            on_iter(i + 1)
    return times


def _finish(outputs):
    # Eager CPU calls return finished tensors; reading one value makes sure of it.
    first = outputs[0] if isinstance(outputs, (list, tuple)) else outputs
    return np.asarray(first).flat[0]


def forward_function(model, batch_size: int, height: int, width: int):
    """The model's inference forward pass, traced for one fixed input shape."""
    import tensorflow as tf

    from segcli.graph_function import graph_function

    spec = tf.TensorSpec((batch_size, height, width, 3), tf.float32)
    return graph_function(lambda images: model(images, training=False), input_signature=[spec])


def run_bench(config: BenchConfig, on_row_start=None, on_iter=None) -> BenchReport:
    """Time every (preset, size, batch) combination of ``config``; one result row each.

    ``on_row_start(label, total_calls)`` and ``on_iter(done)`` report progress.
    """
    config.check()
    import tensorflow as tf

    from segcli.bench import flops as flops_mod
    from segcli.bench.sysinfo import environment

    env = environment()
    peak = flops_mod.current_peak(env, config.measure_peak)

    rows, end_to_end = [], None
    for name in config.presets:
        model = build_model(name, config.num_classes, config.mixed_precision)
        for height, width in config.sizes:
            gflops = flops_mod.model_flops_per_image(model, height, width) / 1e9
            for batch in config.batch_sizes:
                if on_row_start:
                    on_row_start(f"{name} {height}x{width} batch {batch}", config.iters)
                images = tf.random.uniform((batch, height, width, 3), 0.0, 255.0, seed=batch)
                fn = forward_function(model, batch, height, width)
                times = time_forward(fn, images, config.warmup, config.iters, on_iter)
                stats = latency_stats(times, batch)
                achieved = gflops * stats["img_per_s"]
                rows.append({
                    "preset": name, "image_size": [height, width], "batch_size": batch, **stats,
                    "gflops_per_image": float(f"{gflops:.4g}"), "peak_rss_mb": round(peak_rss_mb(), 1),
                    "gflops_per_s": round(achieved, 2),
                    "fraction_of_peak": round(achieved / peak["gflops_per_s"], 4) if peak else None,
                    "precision": "mixed_bfloat16" if config.mixed_precision else "float32",
                    "warmup": config.warmup, "iters": config.iters,
                })
        if config.input_dir is not None and name == config.presets[0]:
            end_to_end = time_predict(model, name, config, rows)
        del model
    return BenchReport(rows, env, peak, end_to_end)


def time_predict(model, name: str, config: BenchConfig, rows: list) -> dict:
    """Seconds of the whole ``segcli predict`` path (read, resize, infer, upsample, argmax, write masks and
    overlays) over the images in ``config.input_dir``, at the first image size and the largest batch size.

    One untimed pass traces the network; the timed pass overwrites its outputs in a temporary folder that is
    deleted afterwards, so the input folder is only read.
    """
    import tempfile

    from segcli.classes import ClassTable
    from segcli.inference.predict import PredictOptions, run_predict
    from segcli.inference.runners import OpenedModel

    size, batch = tuple(config.sizes[0]), max(config.batch_sizes)
    source = OpenedModel(model, ClassTable.from_names([]).complete(int(model.num_classes)), name, size)
    with tempfile.TemporaryDirectory(prefix="segcli-bench-") as tmp:
        options = PredictOptions(out=Path(tmp) / "out", batch_size=batch)
        run_predict([str(config.input_dir)], source, options)  # warm-up: traces the network
        options.overwrite = True
        start = time.perf_counter()
        summary = run_predict([str(config.input_dir)], source, options)
        seconds = time.perf_counter() - start
    count = summary["count"]["written"]
    if not count:
        raise UsageError(f"input {config.input_dir}: no image could be read; see `segcli predict` for why.",
                         value="input_dir")
    forward = next(r for r in rows if r["preset"] == name and tuple(r["image_size"]) == size
                   and r["batch_size"] == batch)
    result = {"input": str(config.input_dir), "images": count, "image_size": list(size), "batch_size": batch,
            "how": "segcli.inference.predict.run_predict, masks + overlays written", "seconds": round(seconds, 3),
            "img_per_s": round(count / seconds, 3), "ms_per_image": round(1000 * seconds / count, 2),
            "forward_ms_per_image": round(forward["latency_ms_p50"] / batch, 2)}
    forward.update(end_to_end_img_per_s=result["img_per_s"], end_to_end_ms_per_image=result["ms_per_image"],
                   end_to_end_images=count)
    return result
