"""A real headless browser (Debian's chromium) for the HTML eval report: screenshots and a DOM probe.

The report test and ``docs/report.png`` go through :func:`report_in_browser`:
``segcli eval DATA --model M --report`` in a subprocess, then chromium takes a
screenshot and reports, from a copy of the page with a small script added,
every image's natural size and where it was laid out.

Make the docs screenshot (the sample data and demo model) with::

    .venv/bin/python -m tests.inference.browser docs/report.png
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

WINDOW = (1200, 2400)
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
         "--force-device-scale-factor=1")
PROBE = """<script>
window.addEventListener("load", () => {
  const images = [...document.images].map(i => {
    const r = i.getBoundingClientRect();
    return {id: i.id, alt: i.alt, cls: i.className, w: i.naturalWidth, h: i.naturalHeight,
            x: r.x, y: r.y, width: r.width, height: r.height, complete: i.complete};
  });
  const pre = document.createElement("pre");
  pre.id = "segcli-probe";
  pre.textContent = JSON.stringify({images: images});
  document.body.appendChild(pre);
});
</script>"""


def find_chromium() -> str | None:
    return next((path for path in map(shutil.which, CHROMIUM_NAMES) if path), None)


def _chromium(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    exe = find_chromium()
    if exe is None:
        raise FileNotFoundError("chromium is not installed (apt-get install -y chromium)")
    with tempfile.TemporaryDirectory(prefix="segcli-chromium-") as profile:
        cmd = [exe, *FLAGS, f"--user-data-dir={profile}", f"--window-size={WINDOW[0]},{WINDOW[1]}", *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


def screenshot(page: Path, png: Path) -> Path:
    """A WINDOW-sized screenshot of ``page`` (the top of it), as a user opening the file would see it."""
    png = Path(png).resolve()
    png.parent.mkdir(parents=True, exist_ok=True)
    png.unlink(missing_ok=True)
    done = _chromium(f"--screenshot={png}", Path(page).resolve().as_uri())
    if not png.is_file():
        raise RuntimeError(f"chromium wrote no screenshot (exit {done.returncode}): {done.stderr[-2000:]}")
    return png


def probe(page: Path) -> dict:
    """Every <img> of ``page`` after load: natural size and layout box, from the DOM chromium built."""
    text = Path(page).read_text(encoding="utf-8")
    with tempfile.TemporaryDirectory(prefix="segcli-probe-") as folder:
        copy = Path(folder) / "probe.html"
        copy.write_text(text.replace("</body>", PROBE + "</body>"), encoding="utf-8")
        done = _chromium("--virtual-time-budget=10000", "--dump-dom", copy.as_uri())
    found = re.search(r'<pre id="segcli-probe">(.*?)</pre>', done.stdout, re.S)
    if not found:
        raise RuntimeError(f"the probe found nothing (exit {done.returncode}): {done.stderr[-2000:]}")
    return json.loads(html.unescape(found.group(1)))


def distinct_colors(rgb, box) -> int:
    """Distinct colours inside ``box`` (x, y, width, height in CSS pixels = screenshot pixels)."""
    import numpy as np

    x, y, w, h = (int(round(v)) for v in box)
    crop = rgb[max(0, y):y + h, max(0, x):x + w].reshape(-1, 3).astype(np.int64)
    return int(np.unique((crop[:, 0] << 16) | (crop[:, 1] << 8) | crop[:, 2]).size)


def report_in_browser(data: Path, model: str, out: Path, worst: int = 3, extra=()) -> dict:
    """Run ``segcli eval --report`` as a user would, then screenshot and probe the page.

    Returns ``report``, ``screenshot`` (path), ``pixels`` (the screenshot, RGB array),
    ``probe`` (see :func:`probe`) and ``result`` (the eval JSON).
    """
    import cv2

    out = Path(out)
    report = out / "report.html"
    cmd = [sys.executable, "-m", "segcli.cli.app", "eval", str(data), "--model", str(model), "--report", str(report),
           "--worst", str(worst), "--json", *extra]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"segcli eval exited {done.returncode}: {done.stderr[-3000:]}")
    png = screenshot(report, out / "report.png")
    pixels = cv2.cvtColor(cv2.imread(str(png)), cv2.COLOR_BGR2RGB)
    return {"report": report, "screenshot": png, "pixels": pixels, "probe": probe(report),
            "result": json.loads(done.stdout)}


def check_rendered(seen: dict, worst: int) -> dict:
    """What the browser shows: the two charts and 3 images per worst image, decoded and drawn.

    Returns the images by id/alt for further checks; raises AssertionError otherwise.
    """
    images = seen["probe"]["images"]
    assert len(images) == 2 + 3 * worst, images
    assert all(i["complete"] and i["w"] > 0 and i["h"] > 0 for i in images), images  # every data URI decoded
    assert all(i["width"] > 0 and i["height"] > 0 for i in images), images  # and laid out
    charts = {i["id"]: i for i in images if i["id"]}
    assert set(charts) == {"chart-per-class", "chart-confusion"}, charts
    height, width = seen["pixels"].shape[:2]
    assert (width, height) == WINDOW
    for chart in charts.values():
        assert chart["y"] + chart["height"] <= height, f"{chart['id']} is below the screenshot"
        # matplotlib's bars, heat cells, anti-aliased text: many colours; a blank or broken image has few
        assert distinct_colors(seen["pixels"], (chart["x"], chart["y"], chart["width"], chart["height"])) > 40
    return {"charts": charts, "worst": [i for i in images if not i["id"]]}


def main(argv=None) -> int:
    """Write the docs screenshot of the sample data's report (the same path the browser test takes)."""
    target = Path((argv or sys.argv[1:] or ["docs/report.png"])[0]).resolve()
    os.chdir(Path(__file__).resolve().parents[2])  # the page then names the model and data as the README does
    with tempfile.TemporaryDirectory(prefix="segcli-report-") as folder:
        seen = report_in_browser(Path("samples"), "samples/demo_model", Path(folder), worst=4)
        check_rendered(seen, 4)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(seen["screenshot"], target)
    print(f"{target}: mIoU {seen['result']['miou']:.4f} on {seen['result']['images']} images")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
