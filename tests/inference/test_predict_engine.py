"""run_predict on a messy folder: masks equal the model's argmax, failures listed, resumable, shardable."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from segcli.data.image_io import read_image, read_mask
from segcli.inference.predict import PredictOptions, find_inputs, parse_shard, run_predict, shard_of
from segcli.inference.provenance import OutputsDiffer
from segcli.errors import DataError, UsageError
from tests.inference.predict_fixtures import BAD, CLASS_NAMES, COLORS, GOOD, make_messy_dir, make_model, model_argmax


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict")
    model, run, keras_file = make_model(root / "models")
    from segcli.inference.runners import open_model

    return {"model": model, "run": run, "keras": keras_file, "images": make_messy_dir(root / "images"),
            "source": open_model(str(run), precision="fp32")}  # loaded once: its traced functions are reused across runs


def mtimes(folder: Path) -> dict:
    return {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file() and p.name != "summary.json"}


def test_messy_folder_masks_overlays_and_summary(world, tmp_path):
    out = tmp_path / "out"
    warnings = []
    summary = run_predict([world["images"]], str(world["run"]), PredictOptions(out=out, batch_size=3, precision="fp32"),
                          on_warning=warnings.append)
    assert summary["engine"] == "openvino fp32"  # auto picks OpenVINO on this CPU-only machine; fp32 as asked
    for rel, shape in GOOD.items():
        stem = rel.rsplit(".", 1)[0]
        mask = read_mask(out / f"{stem}.png")
        assert mask.shape == shape and mask.dtype == np.uint8, rel
        overlay = read_image(out / f"{stem}_overlay.jpg")
        assert overlay.shape == (*shape, 3)
        if min(shape) >= 32:  # the model runs at the image's own size: the mask is its argmax
            expected = model_argmax(world["model"], read_image(world["images"] / rel))
            assert (mask == expected).mean() > 0.999, rel
    assert len(np.unique(read_mask(out / "sub/deeper/nested.png"))) > 1
    # EXIF applied: stored 32 wide, 64 high on display
    assert read_mask(out / "rotated.png").shape == (64, 32)

    assert summary["count"] == {"inputs": len(GOOD) + len(BAD), "written": len(GOOD), "skipped": 0,
                                "failed": len(BAD), "not_processed": 0}
    assert sorted(f["input"] for f in summary["failures"]) == sorted(BAD)
    assert sorted(w.split(": ")[0] for w in warnings) == sorted(f"skipped {world['images'] / b}" for b in BAD)
    on_disk = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert on_disk["count"] == summary["count"] and on_disk["img_per_s"] > 0 and on_disk["total_seconds"] > 0
    entry = next(e for e in on_disk["images"] if e["input"] == "sub/deeper/nested.png")
    mask = read_mask(out / "sub/deeper/nested.png")
    counts = np.bincount(mask.ravel(), minlength=4) / mask.size
    assert [c["name"] for c in entry["classes"]] == [CLASS_NAMES[i] for i in np.flatnonzero(counts)]
    assert [c["fraction"] for c in entry["classes"]] == pytest.approx(counts[counts > 0].tolist(), abs=1e-6)
    assert entry["outputs"] == {"mask": "sub/deeper/nested.png", "overlay": "sub/deeper/nested_overlay.jpg"}
    assert not list(out.rglob("*.tmp")) and [p.name for p in out.rglob(".*")] == [".segcli-predict.json"]


def test_palettes_colour_masks_and_probabilities(world, tmp_path):
    from segcli.classes import distinct_palette

    src = world["images"] / "plain.jpg"
    for model, palette in ((world["run"], COLORS), (world["keras"], distinct_palette(4))):
        out = tmp_path / model.name
        run_predict([src], str(model), PredictOptions(out=out, alpha=1.0, color_mask=True, save_probs=True))
        mask = read_mask(out / "plain.png")
        expected = np.array(palette, np.uint8)[mask]
        np.testing.assert_array_equal(read_image(out / "plain_color.png"), expected)
        assert np.median(np.abs(read_image(out / "plain_overlay.jpg").astype(int) - expected)) < 6  # alpha 1: colours
    probs = np.load(out / "plain_probs.npy")
    assert probs.dtype == np.float16 and probs.shape == (64, 64, 4)
    assert (probs.argmax(-1) == mask).mean() > 0.99
    np.testing.assert_allclose(probs.astype(np.float32).sum(-1), 1.0, atol=5e-3)


def test_rerun_rewrites_nothing_and_overwrite_does(world, tmp_path):
    out = tmp_path / "out"
    options = PredictOptions(out=out)
    run_predict([world["images"]], world["source"], options)
    before = mtimes(out)
    again = run_predict([world["images"]], world["source"], PredictOptions(out=out))
    assert mtimes(out) == before
    assert again["count"]["written"] == 0 and again["count"]["skipped"] == len(GOOD)
    assert {e["input"]: e["classes"] for e in again["images"]} == \
        {e["input"]: e["classes"] for e in json.loads((out / "summary.json").read_text())["images"]}
    (out / "plain_overlay.jpg").unlink()  # a half-finished input is predicted again
    third = run_predict([world["images"]], world["source"], PredictOptions(out=out))
    assert third["count"]["written"] == 1 and (out / "plain_overlay.jpg").is_file()
    forced = run_predict([world["images"]], world["source"], PredictOptions(out=out, overwrite=True))
    assert forced["count"]["written"] == len(GOOD)
    assert all(out_m != before[p] for p, out_m in mtimes(out).items() if p in before)


def test_strict_stops_at_first_failure(world, tmp_path):
    summary = run_predict([world["images"]], world["source"], PredictOptions(out=tmp_path / "o", strict=True,
                                                                               batch_size=1, workers=1))
    assert summary["count"]["failed"] == 1 and summary["stopped_early"]
    assert summary["failures"][0]["input"] == "corrupt.jpg"  # sorted order: the first bad file
    assert summary["count"]["not_processed"] > 0


def test_out_inside_input_is_never_read_back(world, tmp_path):
    images = tmp_path / "imgs"
    images.mkdir()
    for name in ("a.jpg", "b.png"):
        (images / name).write_bytes((world["images"] / ("plain.jpg" if name == "a.jpg" else "gray.png")).read_bytes())
    out = images / "masks"
    first = run_predict([images], world["source"], PredictOptions(out=out))
    second = run_predict([images], world["source"], PredictOptions(out=out))
    assert first["count"]["inputs"] == second["count"]["inputs"] == 2
    assert sorted(p.name for p in out.iterdir()) == [".segcli-predict.json", "a.png", "a_overlay.jpg", "b.png",
                                                     "b_overlay.jpg", "summary.json"]


def test_discovery_globs_recursion_and_collisions(world, tmp_path):
    images = world["images"]
    rels = [i.rel for i in find_inputs([images])]
    assert rels == sorted(rels) and "readme.txt" not in rels and "sub/deeper/nested.png" in rels
    assert len(rels) == len(GOOD) + len(BAD)
    by_glob = find_inputs([str(images / "**" / "*.png")])
    assert "sub/deeper/nested.png" in [i.rel for i in by_glob] and all(i.rel.endswith(".png") for i in by_glob)
    assert [i.rel for i in find_inputs([str(images / "plain.jpg"), str(images / "plain.jpg")])] == ["plain.jpg"]
    (tmp_path / "x.jpg").write_bytes(b"1")
    (tmp_path / "x.png").write_bytes(b"2")
    assert sorted(i.stem for i in find_inputs([tmp_path])) == ["x.jpg", "x.png"]  # x.jpg.png and x.png.png
    with pytest.raises(DataError, match=r"no such file or folder\.$"):
        find_inputs([str(tmp_path / "missing")])


def test_shards_partition_disjointly_and_completely(world, tmp_path):
    items = [i.rel for i in find_inputs([world["images"]])]
    parts = []
    for k in range(3):
        summary = run_predict([world["images"]], world["source"], PredictOptions(out=tmp_path, shard=(k, 3)))
        parts.append({e["input"] for e in summary["images"]} | {f["input"] for f in summary["failures"]})
        assert (tmp_path / f"summary.shard-{k}-of-3.json").is_file()
        assert parts[-1] == {r for r in items if shard_of(r, 3) == k}
    assert set().union(*parts) == set(items)
    assert sum(len(p) for p in parts) == len(items)
    assert all(p for p in parts)  # with 13 inputs each shard gets some
    assert parse_shard("0/1") == (0, 1)
    for bad in ("3/3", "1", "a/b", "-1/2"):
        with pytest.raises(UsageError, match=r"^shard .*: use K/N with 0 <= K < N"):
            parse_shard(bad)


def test_one_line_errors(world, tmp_path):
    with pytest.raises(DataError) as exc:
        run_predict([tmp_path], str(world["run"]), PredictOptions(out=tmp_path / "o"))
    assert str(exc.value) == (f"no images found in {tmp_path} (looked for .jpg, .jpeg, .png, .bmp, .tif, .tiff, "
                              f".webp; files under the output folder are never inputs).")
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    with pytest.raises(DataError) as exc:
        run_predict([world["images"]], str(world["run"]), PredictOptions(out=blocker / "o"))
    assert str(exc.value) == f"out {blocker / 'o'}: {blocker} is a file, not a folder; choose a folder for the outputs."
    with pytest.raises(Exception) as exc:
        run_predict([world["images"]], str(tmp_path / "nope.keras"), PredictOptions(out=tmp_path / "o"))
    assert str(exc.value).startswith(f"{tmp_path / 'nope.keras'}: no such file or folder. Pass a run directory, "
                                     f"a .keras file")  # the resolver's message, tested with the resolver


def test_unwritable_out_fails_before_any_work(world, tmp_path):
    """An out folder that cannot exist (under a regular file): unwritable even for root, which CI runs as."""
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    with pytest.raises(DataError, match=r"is a file, not a folder; choose a folder for the outputs"):
        run_predict([world["images"]], str(world["run"]), PredictOptions(out=blocker / "out"))
    assert blocker.read_text() == "x"


def snapshot(folder: Path) -> dict:
    """Every file under ``folder``: (mtime, bytes)."""
    return {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in folder.rglob("*") if p.is_file()}


def test_the_record_holds_what_changes_a_mask_and_a_run_that_differs_stops(world, tmp_path):
    import hashlib

    out = tmp_path / "out"
    run_predict([world["images"]], world["source"], PredictOptions(out=out, batch_size=3, alpha=0.3))
    assert json.loads((out / ".segcli-predict.json").read_text()) == {
        "model": str(world["run"]), "model_sha256": hashlib.sha256((world["run"] / "best.keras").read_bytes())
        .hexdigest(), "classes": 4, "backend": "openvino", "precision": "fp32", "mode": "whole", "tile": None,
        "stride": None, "max_side": 2048, "tta": None, "smooth": 0.0, "every": None}
    masks = {p: v for p, v in snapshot(out).items() if p.name != "summary.json"}
    again = run_predict([world["images"]], world["source"], PredictOptions(out=out, batch_size=1, workers=1,
                                                                             alpha=0.9, jpeg_quality=50))
    assert again["count"]["written"] == 0 and again["count"]["skipped"] == len(GOOD)  # batch, alpha: same masks
    before = snapshot(out)
    assert {p: v for p, v in before.items() if p.name != "summary.json"} == masks
    for options, shown in ((dict(mode="slide", tile=64), "mode whole, this run uses slide"),
                           (dict(max_side=1024), "max_side 2048, this run uses 1024"),
                           (dict(smooth=0.5), "smooth 0, this run uses 0.5")):
        with pytest.raises(OutputsDiffer) as exc:
            run_predict([world["images"]], world["source"], PredictOptions(out=out, **options))
        assert str(exc.value) == (f"out {out}: its files were made with {shown}; pass overwrite to recompute them, "
                                  f"or choose another out.")
        assert snapshot(out) == before  # stopped before anything was written, summary.json included


def test_shards_of_one_model_agree_wherever_it_lives(world, tmp_path):
    import shutil

    from segcli.inference.runners import open_model

    copy = shutil.copytree(world["run"], tmp_path / "elsewhere" / "run")  # the model on another machine
    sources = [world["source"], open_model(str(copy), precision="fp32")]
    summaries = [run_predict([world["images"]], source, PredictOptions(out=tmp_path / "out", shard=(k, 2)))
                 for k, source in enumerate(sources)]
    assert [s["model"] for s in summaries] == [str(world["run"]), str(copy)]
    assert summaries[0]["model_sha256"] == summaries[1]["model_sha256"]
    done = sum(s["count"]["written"] + s["count"]["failed"] for s in summaries)
    assert done == len(GOOD) + len(BAD)
    record = json.loads((tmp_path / "out" / ".segcli-predict.json").read_text())
    assert record["model"] == str(world["run"])  # the first shard recorded it; the second agreed


def test_an_out_from_an_older_segcli_is_adopted_with_one_warning(world, tmp_path):
    out = tmp_path / "out"
    run_predict([world["images"]], world["source"], PredictOptions(out=out))
    record = (out / ".segcli-predict.json").read_bytes()
    (out / ".segcli-predict.json").unlink()  # as an older segcli left it
    before = {p: v for p, v in snapshot(out).items() if p.name != "summary.json"}
    warnings = []
    summary = run_predict([world["images"]], world["source"], PredictOptions(out=out), on_warning=warnings.append)
    assert summary["count"]["written"] == 0 and summary["count"]["skipped"] == len(GOOD)
    assert [w for w in warnings if not w.startswith("skipped ")] == [
        f"{out}: kept the existing outputs, which an older segcli wrote without recording the model and settings "
        f"that made them; this run's are now recorded for them (recompute them with overwrite if they differ)."]
    assert (out / ".segcli-predict.json").read_bytes() == record  # this run's settings, recorded again
    assert {p: v for p, v in snapshot(out).items() if p.name not in ("summary.json", ".segcli-predict.json")} == before
    warnings.clear()
    run_predict([world["images"]], world["source"], PredictOptions(out=out), on_warning=warnings.append)
    assert [w for w in warnings if not w.startswith("skipped ")] == []  # recorded now: nothing to say


def test_a_record_that_is_not_an_object_is_one_line(world, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / ".segcli-predict.json").write_text("[]")
    with pytest.raises(OutputsDiffer) as exc:
        run_predict([world["images"] / "plain.jpg"], world["source"], PredictOptions(out=out))
    assert str(exc.value) == (f"out {out}: its .segcli-predict.json is not a JSON object, so what made its files is "
                              f"unknown; pass overwrite to recompute them, or choose another out.")
    assert sorted(p.name for p in out.iterdir()) == [".segcli-predict.json"]


def test_a_ctrl_c_says_how_much_is_on_disk_and_a_rerun_goes_on(world, tmp_path):
    from segcli.inference.predict import PredictInterrupted

    images = tmp_path / "in"
    images.mkdir()
    for i in range(30):
        (images / f"p{i:02d}.jpg").write_bytes((world["images"] / "plain.jpg").read_bytes())
    out = tmp_path / "out"
    options = dict(out=out, batch_size=2, workers=2)
    counted = []

    def interrupt_at(n):
        def progress(k, done_before=False):
            counted.append(k)
            if len(counted) == n:
                raise KeyboardInterrupt  # what Ctrl-C raises in the main thread
        return progress

    with pytest.raises(PredictInterrupted) as exc:
        run_predict([images], world["source"], PredictOptions(**options), on_progress=interrupt_at(3))
    masks = len(list(out.glob("*.png")))
    assert isinstance(exc.value, KeyboardInterrupt) and 3 <= masks < 30  # the writes under way finish
    assert (exc.value.written, exc.value.done_before, exc.value.total, exc.value.out) == (masks, 0, 30, out)
    counted.clear()
    with pytest.raises(PredictInterrupted) as again:
        run_predict([images], world["source"], PredictOptions(**options), on_progress=interrupt_at(masks + 3))
    assert again.value.done_before == masks and again.value.written == len(list(out.glob("*.png"))) - masks > 0
    summary = run_predict([images], world["source"], PredictOptions(out=out))
    assert summary["count"]["skipped"] == masks + again.value.written and summary["count"]["written"] > 0


def test_max_side_is_whole_mode_s_and_the_record_keeps_the_cap_that_ran(world, tmp_path):
    from segcli.inference.predictor import DEFAULT_MAX_SIDE, check_mode

    with pytest.raises(UsageError, match=r"^max side 1024: only whole mode uses a max side; set mode to whole, or "
                                         r"leave the max side out\.$"):
        run_predict([world["images"] / "plain.jpg"], world["source"],
                    PredictOptions(out=tmp_path / "s", mode="slide", max_side=1024))
    check_mode("slide")  # no cap given: the default
    slide = run_predict([world["images"] / "plain.jpg"], world["source"], PredictOptions(out=tmp_path / "s",
                                                                                        mode="slide"))
    assert slide["count"]["written"] == 1
    run_predict([world["images"] / "plain.jpg"], world["source"], PredictOptions(out=tmp_path / "w"))
    record = json.loads((tmp_path / "w" / ".segcli-predict.json").read_text())
    assert record["max_side"] == (None if world["source"].input_size else DEFAULT_MAX_SIDE)
    assert json.loads((tmp_path / "s" / ".segcli-predict.json").read_text())["max_side"] is None


def test_16_bit_images_holding_12_bit_data_are_one_warning_naming_them(world, tmp_path):
    """A 12-bit camera's 16-bit PNGs read nearly black: predict still writes their masks, and says so once."""
    import cv2

    images = tmp_path / "in"
    images.mkdir()
    rgb = np.random.default_rng(3).integers(0, 256, (32, 32, 3)).astype(np.uint16)
    for name, scale in (("a12.png", 16), ("b12.png", 16), ("full16.png", 257), ("c10.png", 4)):
        assert cv2.imwrite(str(images / name), rgb * scale)
    assert cv2.imwrite(str(images / "dark8.png"), np.zeros((32, 32, 3), np.uint8))  # dark, but 8-bit: nothing to fix
    warnings = []
    summary = run_predict([images], world["source"], PredictOptions(out=tmp_path / "out"), on_warning=warnings.append)
    assert summary["count"]["written"] == 5
    top = int(rgb.max()) * 16
    assert warnings == [f"{images / 'a12.png'}: values up to {top}; a 16-bit image holding 12-bit data, so it reads "
                        f"nearly black: multiply it by 16 to fill the 16 bits, or save it as an 8-bit image (also "
                        f"{images / 'b12.png'}, {images / 'c10.png'})"]


def test_a_multi_page_tiff_gets_a_mask_per_page_and_a_rerun_skips_them(world, tmp_path):
    """A microscope's stack: each page is the model's argmax of that page (the pages written, not read back)."""
    import cv2

    from tests.inference.predict_fixtures import smooth

    images = tmp_path / "in"
    images.mkdir()
    pages = [smooth(64, 96, seed) for seed in range(3)]  # sides that are multiples of 32: run at their own size
    assert cv2.imwritemulti(str(images / "stack.tif"), [page[:, :, ::-1] for page in pages])
    out = tmp_path / "out"
    notes = []
    summary = run_predict([images], world["source"], PredictOptions(out=out, precision="fp32"), on_note=notes.append)
    assert notes == [f"{images / 'stack.tif'} has 3 pages: each page is segmented on its own, into stack/000001.png "
                     f"to stack/000003.png."]
    assert summary["count"]["written"] == 3
    for k, page in enumerate(pages):
        mask = read_mask(out / "stack" / f"{k + 1:06d}.png")
        assert (mask == model_argmax(world["model"], page)).mean() > 0.999, k
        assert (out / "stack" / f"{k + 1:06d}_overlay.jpg").is_file()
    assert [e["input"] for e in summary["images"]] == ["stack.tif#1", "stack.tif#2", "stack.tif#3"]
    again = run_predict([images], world["source"], PredictOptions(out=out, precision="fp32"))
    assert again["count"]["written"] == 0 and again["count"]["skipped"] == 3


def test_a_geotiff_s_mask_and_overlay_lie_where_the_tile_does_for_gdal(world, tmp_path):
    """An aerial tile: GDAL (rasterio) places the mask PNG and the overlay JPEG on the tile's own grid and CRS."""
    rasterio = pytest.importorskip("rasterio")
    from rasterio.transform import from_origin

    from tests.inference.predict_fixtures import smooth

    images = tmp_path / "in"
    images.mkdir()
    transform = from_origin(500000.0, 4200000.0, 0.25, 0.25)
    with rasterio.open(images / "tile.tif", "w", driver="GTiff", height=64, width=96, count=3, dtype="uint8",
                       crs="EPSG:32633", transform=transform) as dst:
        dst.write(np.moveaxis(smooth(64, 96, 5), 2, 0))
    from PIL import Image

    Image.fromarray(smooth(32, 32, 6)).save(images / "photo.png")
    out = tmp_path / "out"
    run_predict([images], world["source"], PredictOptions(out=out, precision="fp32"))
    for name in ("tile.png", "tile_overlay.jpg"):
        with rasterio.open(out / name) as written:
            assert written.crs.to_epsg() == 32633 and written.transform.almost_equals(transform), name
    assert sorted(p.name for p in out.iterdir() if p.name.startswith("photo")) == ["photo.png", "photo_overlay.jpg"]
