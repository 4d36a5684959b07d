"""segcli.bench.bench: option parsing, row contents, FLOP counting and the remembered peak."""

from __future__ import annotations

import pytest

from segcli.bench import bench, flops
from segcli.errors import PresetError, UsageError


def test_sizes_batches_and_presets_parse_from_lists_and_commas():
    assert bench.parse_sizes(["64", "32x96,128"]) == [(64, 64), (32, 96), (128, 128)]
    assert bench.parse_ints(["1,2", "8"], "--batch-size") == [1, 2, 8]
    assert bench.parse_presets(["segformer_test, mit_test"]) == ["segformer_test", "mit_test"]


@pytest.mark.parametrize("call, message", [
    (lambda: bench.parse_sizes(["big"]), "--image-size 'big': give N or HxW in pixels, e.g. 512 or 512x1024."),
    (lambda: bench.parse_sizes(["16"]), "--image-size 16: smaller than 32 pixels; SegFormer downsamples by 32, use "
                                        "at least 32."),
    (lambda: bench.parse_sizes(["64x64x3"]), "--image-size '64x64x3': give N or HxW in pixels, e.g. 512 or "
                                             "512x1024."),
    (lambda: bench.parse_ints(["0"], "--batch-size"), "--batch-size 0: must be a positive integer."),
    (lambda: bench.parse_ints(["two"], "--batch-size"), "--batch-size 'two': not an integer; use e.g. --batch-size 1,8."),
    (lambda: bench.BenchConfig(iters=0).check(), "iters 0: must be at least 1."),
    (lambda: bench.BenchConfig(warmup=-1).check(), "warmup -1: must be 0 or more."),
])
def test_bad_values_fail_with_one_line(call, message):
    with pytest.raises(UsageError) as info:
        call()
    assert str(info.value) == message


def test_unknown_preset_suggests_close_names():
    with pytest.raises(PresetError, match="Did you mean: segformer_b0"):
        bench.parse_presets(["segformer_b0x"])


def test_rows_have_every_key_and_flops_follow_the_image_area():
    config = bench.BenchConfig(presets=["segformer_test"], sizes=[(32, 32), (64, 64)], batch_sizes=[2],
                               warmup=0, iters=2)
    report = bench.run_bench(config)
    assert len(report.rows) == 2
    small, large = report.rows
    for row in report.rows:
        assert set(bench.ROW_KEYS) <= set(row)
        assert row["batch_size"] == 2 and row["img_per_s"] > 0
        assert row["latency_ms_p50"] <= row["latency_ms_p90"] <= row["latency_ms_p99"]
        assert row["peak_rss_mb"] > 50
    assert (small["image_size"], large["image_size"]) == ([32, 32], [64, 64])
    # Almost every op of this model is per pixel at a fixed stride, so 4x the pixels is about 4x the work (the
    # attention of the last stage grows faster). The head's per-level kernel products (W_i @ F_i, a few
    # MFLOP per forward whatever the size) weigh on a 32x32 image, so the ratio lands a little lower.
    assert 3.5 < large["gflops_per_image"] / small["gflops_per_image"] < 4.5
    assert report.environment["tensorflow"] and report.environment["logical_cores"] >= 1


def test_segformer_b0_at_512_counts_the_published_work_minus_the_fused_head():
    # The reference: 16.78 GFLOP (TF profiler on keras-hub's model). segcli's head runs the same maths in
    # the folded order, which skips linear_fuse: a 1x1 conv of 4 x 256 -> 256 channels at 128x128. Everything
    # else (convs, matmuls, attention, the full-resolution output softmax) is counted as before.
    fuse = 128 * 128 * (4 * 256) * 256 * 2
    model = bench.build_model("segformer_b0")
    executed = flops.model_flops_per_image(model, 512, 512)
    assert (16.78e9 - fuse) < executed < (16.78e9 - fuse) + 0.6e9


def test_peak_is_measured_saved_and_reused(segcli_home):
    config = bench.BenchConfig(presets=["mit_test"], sizes=[(32, 32)], batch_sizes=[1], warmup=0, iters=1,
                               measure_peak=True)
    first = bench.run_bench(config)
    assert first.peak["measured_now"] and first.peak["gflops_per_s"] > 0
    assert (segcli_home / "bench" / "peak.json").is_file()
    config.measure_peak = False
    again = bench.run_bench(config)
    assert not again.peak["measured_now"]
    assert again.peak["gflops_per_s"] == first.peak["gflops_per_s"]
    assert again.rows[0]["fraction_of_peak"] == pytest.approx(
        again.rows[0]["gflops_per_s"] / again.peak["gflops_per_s"], rel=1e-2, abs=1e-4)


def test_mixed_precision_rows_say_so_and_leave_the_global_policy_alone():
    import keras

    config = bench.BenchConfig(presets=["segformer_test"], sizes=[(32, 32)], batch_sizes=[1], warmup=0, iters=1,
                               mixed_precision=True)
    report = bench.run_bench(config)
    assert report.rows[0]["precision"] == "mixed_bfloat16"
    assert keras.config.dtype_policy().name == "float32"
