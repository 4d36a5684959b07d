"""OpenVINO for real on a tiny trained SegFormer: export (fp32, bf16, int8), its runner, the cached converter."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from segcli.errors import UsageError
from tests.export.export_fixtures import colour_blocks, train_tiny

pytest.importorskip("openvino")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return train_tiny(tmp_path_factory.mktemp("trained") / "tiny.keras")


@pytest.fixture(scope="module")
def keras_model(trained):
    import keras

    return keras.saving.load_model(str(trained))


def write_images(folder, images, masks=None):
    """Images as PNGs in ``folder``/images (and masks in ``folder``/masks when given): eval's layout."""
    (folder / "images").mkdir(parents=True)
    for i, image in enumerate(images):
        cv2.imwrite(str(folder / "images" / f"{i}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if masks is not None:
        (folder / "masks").mkdir()
        for i, mask in enumerate(masks):
            cv2.imwrite(str(folder / "masks" / f"{i}.png"), mask.astype(np.uint8))
    return folder


def float_transposes(folder, shape=(1, 64, 64, 3)) -> int:
    """How many float32 Transposes OpenVINO's CPU plugin runs for the IR in ``folder`` at a static ``shape``."""
    import openvino as ov

    core = ov.Core()
    model = core.read_model(str(folder / "model.xml"))
    model.reshape({model.inputs[0].get_any_name(): list(shape)})
    compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    infos = [op.get_rt_info() for op in compiled.get_runtime_model().get_ops()]
    return sum(info["layerType"].astype(str) == "Transpose" and info["outputPrecisions"].astype(str) == "f32"
               for info in infos)


def test_fp32_ir_matches_the_keras_model_at_any_size(trained, keras_model, tmp_path):
    from segcli.export.api import export_model
    from segcli.export.formats import open_runner

    report = export_model(trained, "openvino", tmp_path / "ov", sample_size=(64, 64))
    assert report.passed and report.max_abs_diff <= 1e-4 and report.runtime.startswith("openvino 2026")
    assert sorted(p.name for p in (tmp_path / "ov").iterdir()) == ["model.bin", "model.xml", "segcli.json"]
    assert json.loads((tmp_path / "ov" / "segcli.json").read_text())["parity"]["max_abs_diff"] == report.max_abs_diff
    for path in (tmp_path / "ov", tmp_path / "ov" / "model.xml"):
        runner = open_runner(path)
        assert runner.num_classes == 3 and len(runner.classes) == 3 and runner.logits_stride == 4
        for shape in [(1, 96, 128, 3), (3, 64, 64, 3), (2, 100, 76, 3)]:  # 100x76: levels not exact multiples
            images = np.random.default_rng(1).integers(0, 256, shape).astype(np.uint8)
            got = runner.predict_logits(images)
            expected = np.asarray(keras_model.quarter_logits(images.astype("float32")))
            assert got.shape == expected.shape and np.abs(got - expected).max() <= 1e-4


def int8_weight_ranges(model) -> list:
    """Largest |value| of each int8 constant (the quantized weights) of an ``openvino.Model``."""
    import openvino as ov

    return [int(np.abs(op.get_data().astype(np.int32)).max()) for op in model.get_ops()
            if op.get_type_name() == "Constant" and op.get_element_type() == ov.Type.i8]


@pytest.mark.slow
@pytest.mark.parametrize("vnni", [False, True])
def test_int8_weights_use_half_the_range_on_a_cpu_without_vnni(keras_model, monkeypatch, vnni):
    """Without VNNI, int8 products are summed in pairs into int16, which saturates with full-range weights."""
    from segcli import hardware
    from segcli.export import openvino_format
    from segcli.models.segformer.graph import SegFormerGraph

    monkeypatch.setattr(hardware, "has_vnni", lambda isa=None: vnni)  # stands in for the other kind of CPU
    images, _ = colour_blocks(8, seed=21)
    metadata = {}
    model = openvino_format.convert(SegFormerGraph(keras_model), "int8", images, metadata)
    ranges = int8_weight_ranges(model)
    halved = sum(r <= 64 for r in ranges)
    assert metadata["int8_half_range_weights"] is (not vnni)
    assert len(ranges) >= 20 and (halved >= 0.8 * len(ranges) if not vnni else halved <= 2)


@pytest.mark.slow
def test_a_full_range_int8_ir_warns_on_a_cpu_without_vnni(keras_model, tmp_path, monkeypatch):
    import openvino as ov

    from segcli import hardware
    from segcli.export import openvino_format
    from segcli.inference.predict import PredictOptions, run_predict
    from segcli.inference.runners import open_model
    from segcli.models.segformer.graph import SegFormerGraph

    images, _ = colour_blocks(8, seed=21)
    folders = {}
    for vnni in (True, False):  # the exporting CPU: full-range weights with VNNI, half-range ones without
        monkeypatch.setattr(hardware, "has_vnni", lambda isa=None, v=vnni: v)
        metadata = {"num_classes": 3, "logits_stride": 4, "input_size": None, "precision": "int8"}
        folders[vnni] = tmp_path / f"vnni_{vnni}"
        folders[vnni].mkdir()
        ov.save_model(openvino_format.convert(SegFormerGraph(keras_model), "int8", images, metadata),
                      str(folders[vnni] / "model.xml"), compress_to_fp16=False)
    monkeypatch.setattr(hardware, "has_vnni", lambda isa=None: False)  # now running on a CPU without VNNI
    assert open_model(str(folders[False])).warnings == ()
    warned = open_model(str(folders[True]))
    assert warned.warnings == (f"{folders[True] / 'model.xml'}: this int8 IR has full-range weights, which suit "
                               "CPUs with VNNI; this CPU has none, so its masks may lose accuracy here; export it "
                               "again on this kind of CPU.",)
    (tmp_path / "in").mkdir()
    cv2.imwrite(str(tmp_path / "in" / "a.png"), images[0][:, :, ::-1])
    lines = []
    summary = run_predict([str(tmp_path / "in")], warned, PredictOptions(out=tmp_path / "out"),
                          on_warning=lines.append)
    assert lines == list(warned.warnings) and summary["count"]["written"] == 1
    monkeypatch.setattr(hardware, "has_vnni", lambda isa=None: True)
    assert open_model(str(folders[True])).warnings == ()


def test_the_compiled_head_upsamples_with_openvinos_jit_interpolate_and_no_reference_kernels(trained, tmp_path):
    """The folded head's three level upsamplings run as the CPU plugin's jit Interpolate; nothing at the head's
    1/4-resolution grid falls back to a reference or generic kernel (a slice-and-stack formulation ran Concat and
    StridedSlice there, an NHWC Interpolate ran between reference Transposes, and on AVX2-only CPUs a Transpose of
    the summed levels to channels-last ran on the generic ``unknown`` kernel).
    """
    import openvino as ov

    from segcli.export.api import export_model

    export_model(trained, "openvino", tmp_path / "ov", sample_size=(64, 64))
    core = ov.Core()
    model = core.read_model(str(tmp_path / "ov" / "model.xml"))
    model.reshape({model.inputs[0].get_any_name(): [1, 128, 96, 3]})
    ops = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"}).get_runtime_model().get_ops()

    def kind(op):
        info = op.get_rt_info()
        return info["layerType"].astype(str), info["primitiveType"].astype(str)

    interpolates = [kind(op)[1] for op in ops if kind(op)[0] == "Interpolate"]
    assert len(interpolates) == 3 and all(p.startswith("jit") for p in interpolates)
    at_head_grid = [kind(op) for op in ops if op.get_output_size() and op.get_output_partial_shape(0).is_static
                    and {32, 24} <= set(op.get_output_partial_shape(0).to_shape())]
    slow = [k for k in at_head_grid if k[1].startswith("ref") or k == ("Transpose", "unknown_f32")]
    assert at_head_grid and not slow


def test_bf16_runs_with_the_hint_or_is_refused_with_one_line(trained, tmp_path):
    from segcli.export import openvino_format
    from segcli.export.api import export_model

    if "BF16" not in openvino_format.cpu_capabilities():
        with pytest.raises(UsageError, match=r"^precision bf16: this CPU has neither AMX nor AVX-512 BF16"):
            export_model(trained, "openvino", tmp_path / "ov", precision="bf16")
        assert not (tmp_path / "ov").exists()
        return
    report = export_model(trained, "openvino", tmp_path / "ov", precision="bf16", sample_size=(64, 64))
    assert report.runtime.endswith("(CPU, bf16)") and report.mask_agreement >= 0.99
    assert report.max_abs_diff > 0  # bf16 compute really ran: float32 would agree to ~1e-7


@pytest.mark.slow
def test_int8_on_a_trained_model_keeps_its_miou_within_budget(trained, keras_model, tmp_path):
    from segcli.cli.export_cmd import _score
    from segcli.export.api import export_model
    from segcli.export.formats import open_runner

    images, masks = colour_blocks(12, seed=21)
    calib = write_images(tmp_path / "calib", images)
    val_images, val_masks = colour_blocks(6, seed=22)
    data = write_images(tmp_path / "val", val_images, val_masks)
    report = export_model(trained, "openvino", tmp_path / "ov8", precision="int8", calib=calib / "images",
                          max_miou_drop=0.01, score=_score(data), sample_size=(64, 64))
    assert report.passed and report.precision == "int8" and report.miou_reference > 0.8
    assert report.miou_reference - report.miou <= 0.01
    flags = set(open("/proc/cpuinfo").read().split())  # the kernel's view of this CPU
    half_range = not flags & {"avx_vnni", "avx512_vnni", "amx_int8"}
    assert json.loads((tmp_path / "ov8" / "segcli.json").read_text())["int8_half_range_weights"] is half_range
    xml = (tmp_path / "ov8" / "model.xml").read_text()
    assert "FakeQuantize" in xml or "FakeConvert" in xml  # really quantized
    # int8 must not cost float layout work that fp32 avoids: the CPU plugin folds fp32's Transposes away
    export_model(trained, "openvino", tmp_path / "ov32", sample_size=(64, 64))
    assert float_transposes(tmp_path / "ov8") <= float_transposes(tmp_path / "ov32")
    runner = open_runner(tmp_path / "ov8")
    assert runner.precision == "int8"
    logits = runner.predict_logits(val_images)
    import tensorflow as tf

    predicted = tf.image.resize(logits, (64, 64)).numpy().argmax(-1)
    expected = np.asarray(keras_model(val_images.astype("float32"))).argmax(-1)
    assert (predicted == expected).mean() >= 0.99
    # the ops NNCF leaves in float run in bf16 where the CPU has it (OpenVINO's default on AMX), else in f32
    import openvino as ov

    from segcli.export.openvino_format import cpu_capabilities

    hint = runner.request_for(val_images.shape).get_compiled_model().get_property("INFERENCE_PRECISION_HINT")
    assert hint == (ov.Type.bf16 if "BF16" in cpu_capabilities() else ov.Type.f32)


@pytest.mark.slow
def test_an_impossible_budget_fails_and_writes_nothing(trained, tmp_path):
    from segcli.export.api import ExportError, export_model

    images, masks = colour_blocks(8, seed=31)
    calib = write_images(tmp_path / "calib", images)
    data = write_images(tmp_path / "val", images[:4], masks[:4])
    from segcli.cli.export_cmd import _score

    with pytest.raises(ExportError, match=r"below the float32 model's .*more than the budget of -1; nothing was "
                                          r"written\.$"):
        export_model(trained, "openvino", tmp_path / "ov8", precision="int8", calib=calib, max_miou_drop=-1.0,
                     score=_score(data), sample_size=(64, 64))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["calib", "val"]


def test_cached_runner_converts_once_and_reuses_the_ir(keras_model, segcli_home):
    from segcli.export.openvino_cache import cached_runner

    images, _ = colour_blocks(2, seed=3)
    first = cached_runner(keras_model, (64, 64), "fp32")
    folders = list((segcli_home / "openvino").iterdir())
    assert len(folders) == 1 and folders[0].name.endswith("-64x64-fp32")
    mtime = (folders[0] / "model.xml").stat().st_mtime_ns
    second = cached_runner(keras_model, (64, 64), "fp32")
    assert (folders[0] / "model.xml").stat().st_mtime_ns == mtime
    expected = np.asarray(keras_model.quarter_logits(images.astype("float32")))
    for runner in (first, second):
        assert np.abs(runner.predict_logits(images) - expected).max() <= 1e-4
    assert [p.suffix for p in (folders[0] / "blobs" / "2x64x64x3").iterdir()] == [".blob"]  # one per input shape


def test_a_changed_converter_converts_again_and_deletes_the_old_conversions(keras_model, segcli_home, monkeypatch):
    from segcli.export import openvino_cache

    openvino_cache.cached_runner(keras_model, (64, 64), "fp32")
    openvino_cache.cached_runner(keras_model, None, "fp32")
    old = sorted(folder.name for folder in (segcli_home / "openvino").iterdir())
    assert openvino_cache.converter_digest() == openvino_cache.converter_digest() and len(old) == 2
    other_model = segcli_home / "openvino" / old[0].replace(old[0][:16], "0123456789abcdef")
    other_model.mkdir()  # another model's conversion stays
    monkeypatch.setattr(openvino_cache, "converter_digest", lambda: "0ther0ne")
    openvino_cache.cached_runner(keras_model, (64, 64), "fp32")
    names = sorted(folder.name for folder in (segcli_home / "openvino").iterdir())
    assert names == sorted([other_model.name, old[0].replace(old[0].split("-")[1], "0ther0ne")])


def test_runner_compiles_each_input_shape_and_keeps_the_last_few(keras_model, segcli_home, monkeypatch):
    from segcli.export import openvino_format
    from segcli.export.openvino_cache import cached_runner

    monkeypatch.setattr(openvino_format, "STATIC_SHAPES", 2)
    runner = cached_runner(keras_model, None, "fp32")
    shapes = [(1, 64, 64, 3), (2, 96, 64, 3), (1, 32, 128, 3), (1, 64, 64, 3)]
    for i, shape in enumerate(shapes):
        images = np.random.default_rng(i).integers(0, 256, shape).astype(np.uint8)
        expected = np.asarray(keras_model.quarter_logits(images.astype("float32")))
        got = runner.predict_logits(images)
        assert got.shape == expected.shape and np.abs(got - expected).max() <= 1e-4
    assert list(runner._requests) == [(1, 32, 128, 3), (1, 64, 64, 3)]


def test_auto_backend_is_openvino_on_a_cpu_and_tensorflow_without_it(trained, segcli_home):
    import subprocess
    import sys

    from segcli.inference.runners import open_model

    assert open_model(str(trained), backend="auto").backend == "openvino"
    code = ("import sys; sys.modules['openvino'] = None\n"
            "from segcli.inference.runners import open_model\n"
            f"opened = open_model({str(trained)!r})\n"
            "print(opened.backend, opened.precision)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "tensorflow fp32"


def test_auto_backend_asks_tensorflow_where_a_gpu_device_file_exists(tmp_path, monkeypatch):
    import tensorflow as tf

    from segcli import hardware
    from segcli.inference.runners import auto_backend

    (tmp_path / "nvidiactl").write_bytes(b"")
    monkeypatch.setattr(hardware, "GPU_DEVICE_FILES", (str(tmp_path / "nvidiactl"),))
    assert not hardware.tensorflow_gpu_ruled_out("Linux")
    assert auto_backend() == ("tensorflow" if tf.config.list_physical_devices("GPU") else "openvino")
    monkeypatch.setattr(hardware, "GPU_DEVICE_FILES", (str(tmp_path / "none"),))
    assert hardware.tensorflow_gpu_ruled_out("Linux") and auto_backend() == "openvino"


def test_auto_precision_is_bf16_where_the_cpu_has_it_and_fp32_elsewhere(trained, segcli_home):
    from segcli.inference.runners import open_model

    flags = set(open("/proc/cpuinfo").read().split())  # the kernel's view, independent of OpenVINO's
    expected = "bf16" if flags & {"avx512_bf16", "amx_bf16"} else "fp32"
    default = open_model(str(trained))
    assert (default.backend, default.precision, default.engine) == ("openvino", expected, f"openvino {expected}")
    pinned = open_model(str(trained), precision="fp32")
    assert pinned.precision == "fp32" and open_model(str(trained), backend="tensorflow").precision == "fp32"
    images = np.random.default_rng(4).integers(0, 256, (2, 64, 64, 3)).astype(np.uint8)
    diff = np.abs(default.model.predict_logits(images) - pinned.model.predict_logits(images)).max()
    assert (diff > 0) == (expected == "bf16")  # bf16 compute really ran, and only where expected
