"""The HTML eval report: worst images against a NumPy reference, and the page as a real browser draws it."""

from __future__ import annotations

import os
import re

import numpy as np
import pytest

from segcli.classes import distinct_palette
from segcli.data.image_io import read_image, read_mask
from segcli.inference.evaluate import WorstImage, WorstK, evaluate
from segcli.inference.report import render_report
from tests.inference.browser import check_rendered, find_chromium, report_in_browser
from tests.inference.predict_fixtures import make_model, model_argmax
from tests.inference.test_eval_engine import make_dataset
from tests.inference.test_metrics import reference


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    model, run, _ = make_model(root / "models")
    return {"model": model, "run": run, "data": make_dataset(root / "data", model)}


def per_image_reference(world) -> dict:
    """Per-image mIoU of every val image, from the plain per-pixel reference."""
    out = {}
    for image_path in sorted((world["data"] / "val" / "images").glob("*.png")):
        gt = read_mask(world["data"] / "val" / "masks" / image_path.name)
        pred = model_argmax(world["model"], read_image(image_path))
        out[f"val/images/{image_path.name}"] = reference([gt], [pred], 4)["miou"]
    return out


def need_chromium():
    if find_chromium() is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing in CI; .ci/run installs it with apt-get")
        pytest.skip("chromium is not installed (apt-get install -y chromium); CI installs it and runs this test")


def test_worst_images_are_the_lowest_per_image_miou(world):
    expected = per_image_reference(world)
    result = evaluate(world["data"], str(world["run"]), worst=2, batch_size=2, precision="fp32")
    ranked = sorted(expected, key=expected.get)[:2]
    assert [w["image"] for w in result["worst"]] == ranked
    assert [w["miou"] for w in result["worst"]] == pytest.approx([expected[n] for n in ranked], abs=1e-3)
    for record in result["worst_images"]:  # 64 px images are kept at full size
        assert np.array_equal(record.label, read_mask(world["data"] / record.name.replace("images", "masks")))
        assert np.array_equal(record.image, read_image(world["data"] / record.name))
        assert (record.pred == model_argmax(world["model"], record.image)).mean() > 0.999
    assert evaluate(world["data"], str(world["run"]), worst=0)["worst"] == []


def test_worst_k_keeps_only_k_and_the_earlier_of_ties():
    keep = WorstK(2)
    empty = np.zeros((1, 1), np.uint8)
    for name, miou in (("a", 0.5), ("b", 0.2), ("c", 0.9), ("d", 0.2), ("e", 0.1)):
        if keep.wants(miou):
            keep.add(WorstImage(name, miou, empty, empty, empty))
    assert [r.name for r in keep.records()] == ["e", "b"]
    assert not keep.wants(0.3) and keep.wants(0.15) and not keep.wants(None)


def test_many_classes_draw_one_bar_per_class():
    n = 30
    cm = np.diag(np.arange(1, n + 1))
    per_class = [{"name": f"c{i}", "iou": i / n, "dice": None, "precision": None, "recall": None} for i in range(n)]
    page = render_report({"miou": 0.5, "per_class": per_class, "confusion": cm.tolist()}, [],
                         [{"name": f"c{i}", "color": c} for i, c in enumerate(distinct_palette(n))])
    assert page.count('src="data:image/png;base64,') == 2 and page.count("<tr>") == n + 1


def test_report_in_a_real_browser(world, tmp_path):
    need_chromium()
    seen = report_in_browser(world["data"], str(world["run"]), tmp_path, worst=2)
    shown = check_rendered(seen, 2)
    page = seen["report"].read_text(encoding="utf-8")
    result = seen["result"]
    # self-contained: every image is a data URI, nothing is fetched
    assert re.findall(r'src="([a-z]+):', page) == ["data"] * (2 + 3 * 2) and "http" not in page
    assert f"{100 * result['miou']:.2f}" in page and "road" in page
    expected = per_image_reference(world)
    assert [w["image"] for w in result["worst"]] == sorted(expected, key=expected.get)[:2]
    # the worst images, decoded at their own size: image | ground truth | prediction
    worst = shown["worst"]
    assert [i["alt"] for i in worst] == ["image", "ground truth", "prediction"] * 2
    for k, name in enumerate(w["image"] for w in result["worst"]):
        h, w = read_mask(world["data"] / name.replace("images", "masks")).shape
        assert all((i["w"], i["h"]) == (w, h) for i in worst[3 * k:3 * k + 3])
    # the ground truth of the worst image, as drawn: the class colours of its labels (pixelated, so exact)
    gt_box = worst[1]
    if gt_box["y"] + gt_box["height"] <= seen["pixels"].shape[0]:
        x, y, bw, bh = (int(v) for v in (gt_box["x"], gt_box["y"], gt_box["width"], gt_box["height"]))
        drawn = {tuple(c) for c in seen["pixels"][y + 2:y + bh - 2, x + 2:x + bw - 2].reshape(-1, 3).tolist()}
        label = read_mask(world["data"] / result["worst"][0]["image"].replace("images", "masks"))
        palette = distinct_palette(4)
        assert {tuple(palette[c]) for c in np.unique(label) if c != 255} <= drawn
