"""The HTML eval report: one self-contained file (charts and images embedded), readable offline.

:func:`render_report` turns an eval result (:func:`segcli.inference.evaluate.evaluate`'s
dict) and its worst images (:class:`segcli.inference.evaluate.WorstImage`) into HTML:

- the headline metrics (mIoU, aAcc, mAcc, mean Dice, precision and recall);
- per-class IoU, Dice, precision and recall as a table and a bar chart;
- the confusion matrix as a heatmap, each ground-truth row normalised to 1;
- the worst images by per-image mIoU: image | ground truth | prediction, in
  the classes' colours, with a legend of the classes they show.

Charts are drawn by matplotlib's Agg canvas (no pyplot, no global backend
change) and embedded as base64 PNGs; nothing is fetched when the page opens.
:func:`write_report` writes the file atomically.

>>> result = {"miou": 0.5, "pixel_accuracy": 0.75, "mean_accuracy": 0.5, "mean_dice": 0.6, "mean_precision": 0.5,
...           "mean_recall": 0.5, "pixels": 4, "images": 1, "confusion": [[2, 0], [1, 1]],
...           "per_class": [{"name": "bg", "iou": 0.67, "dice": 0.8, "precision": 0.67, "recall": 1.0},
...                         {"name": "cat", "iou": 0.5, "dice": 0.67, "precision": 1.0, "recall": 0.5}]}
>>> page = render_report(result, [], [{"name": "bg", "color": [0, 0, 0]}, {"name": "cat", "color": [230, 25, 75]}])
>>> page.startswith("<!DOCTYPE html>"), page.count('src="data:image/png;base64,'), "http" in page
(True, 2, False)
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

import numpy as np

from segcli.inference.metrics import UNDEFINED

IGNORE_INDEX = 255
#: Classes up to which the bar chart shows all four metrics (above: IoU only, one bar per class).
GROUPED_BARS_MAX = 20
#: Classes up to which the heatmap prints each cell's percentage.
ANNOTATE_MAX = 12
#: Classes up to which the heatmap names every class on its axes.
TICKS_MAX = 40
METRICS = (("iou", "IoU"), ("dice", "Dice"), ("precision", "precision"), ("recall", "recall"))
HEADLINE = (("miou", "mIoU"), ("pixel_accuracy", "aAcc"), ("mean_accuracy", "mAcc"), ("mean_dice", "mean Dice"),
            ("mean_precision", "mean precision"), ("mean_recall", "mean recall"))
BAR_COLORS = ("#4c72b0", "#dd8452", "#55a868", "#c44e52")

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px; color: #222; max-width: 1150px; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 18px; margin: 28px 0 8px; }
.meta { color: #555; font-size: 13px; margin-bottom: 14px; word-break: break-all; }
.cards { display: flex; flex-wrap: wrap; gap: 10px; }
.card { border: 1px solid #ddd; border-radius: 6px; padding: 8px 14px; min-width: 120px; }
.card .v { font-size: 24px; font-weight: 600; } .card .k { font-size: 12px; color: #666; }
table { border-collapse: collapse; font-size: 13px; }
th, td { padding: 3px 10px; border-bottom: 1px solid #eee; text-align: right; }
th:first-child, td:first-child { text-align: left; } tr.mean td { font-weight: 600; border-top: 2px solid #999; }
.sw { display: inline-block; width: 12px; height: 12px; border: 1px solid #888; margin-right: 6px;
      vertical-align: -1px; }
.chart { max-width: 100%; height: auto; display: block; }
.worst { border-top: 1px solid #ddd; padding: 10px 0; }
.worst .row { display: flex; gap: 8px; } .worst figure { margin: 0; flex: 1; min-width: 0; max-width: 370px; }
.worst img { width: 100%; height: auto; display: block; } .worst img.mask { image-rendering: pixelated; }
.worst figcaption { font-size: 12px; color: #555; } .legend { font-size: 12px; margin-top: 4px; }
.legend span.item { margin-right: 12px; white-space: nowrap; }
.note { color: #666; font-size: 12px; }
"""


def require_matplotlib():
    """matplotlib's Figure class, or one line saying how to install it."""
    try:
        from matplotlib.figure import Figure
    except ModuleNotFoundError:
        from segcli.errors import MissingDependencyError

        raise MissingDependencyError("the HTML report draws its charts with matplotlib, which is not installed; "
                                     "install it with `pip install matplotlib`.") from None
    return Figure


def _pct(value) -> str:
    return "&ndash;" if value is None else f"{100 * value:.2f}"


def _png(rgb: np.ndarray) -> str:
    """A data URI of an RGB uint8 image."""
    import cv2

    ok, buffer = cv2.imencode(".png", np.ascontiguousarray(rgb[:, :, ::-1]))
    if not ok:
        raise ValueError(f"could not encode a {rgb.shape} image as PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.tobytes()).decode("ascii")


def _figure_png(fig) -> str:
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _names_colors(classes) -> tuple[list[str], np.ndarray]:
    if hasattr(classes, "names") and hasattr(classes, "colors"):
        return list(classes.names), np.array(classes.colors, np.int64).reshape(-1, 3)
    return [c["name"] for c in classes], np.array([c["color"] for c in classes], np.int64).reshape(-1, 3)


def colorize(mask: np.ndarray, colors: np.ndarray) -> np.ndarray:
    """Class colours of an index mask; ignore (255) and unknown indices as black-and-white stripes.

    >>> colorize(np.array([[1, 255]], np.uint8), np.array([[0, 0, 0], [9, 9, 9]]))[0, :, 0].tolist()
    [9, 255]
    """
    lut = np.zeros((max(256, len(colors)), 3), np.uint8)
    lut[:len(colors)] = np.clip(colors, 0, 255)
    out = lut[mask]
    unknown = mask >= len(colors)
    if unknown.any():
        yy, xx = np.indices(mask.shape)
        stripes = np.where(((yy + xx) // 3) % 2 == 0, 255, 0).astype(np.uint8)
        out[unknown] = stripes[unknown][:, None]
    return out


def bar_chart(per_class: list[dict]) -> str:
    """Per-class metrics as bars: all four side by side for few classes, IoU alone (sorted) for many."""
    Figure = require_matplotlib()  # noqa: N806

    names = [row["name"] for row in per_class]
    n = len(names)
    if n <= GROUPED_BARS_MAX:
        fig = Figure(figsize=(max(6.0, 0.9 * n + 2), 3.6))
        ax = fig.add_subplot()
        width = 0.8 / len(METRICS)
        x = np.arange(n)
        for j, ((key, label), color) in enumerate(zip(METRICS, BAR_COLORS)):
            values = [np.nan if row[key] is None else 100 * row[key] for row in per_class]
            ax.bar(x + (j - 1.5) * width, values, width, label=label, color=color)
        ax.set_xticks(x, names, rotation=30 if n > 6 else 0, ha="right" if n > 6 else "center")
        ax.set_ylabel("%")
        ax.set_ylim(0, 100)
        ax.legend(ncols=4, loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
    else:
        order = sorted(range(n), key=lambda i: -1 if per_class[i]["iou"] is None else per_class[i]["iou"])
        fig = Figure(figsize=(7.5, min(60.0, 0.17 * n + 1)))
        ax = fig.add_subplot()
        values = [0 if per_class[i]["iou"] is None else 100 * per_class[i]["iou"] for i in order]
        ax.barh(np.arange(n), values, color=BAR_COLORS[0])
        ax.set_yticks(np.arange(n), [names[i] for i in order], fontsize=7)
        ax.set_xlabel("IoU %")
        ax.set_xlim(0, 100)
        ax.margins(y=0.005)
    ax.grid(axis="y" if n <= GROUPED_BARS_MAX else "x", alpha=0.3)
    ax.set_axisbelow(True)
    return _figure_png(fig)


def confusion_heatmap(confusion, names: list[str]) -> str:
    """The confusion matrix with each ground-truth row divided by its total (rows without pixels left blank)."""
    Figure = require_matplotlib()  # noqa: N806

    cm = np.asarray(confusion, np.float64)
    totals = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, totals, out=np.full_like(cm, np.nan), where=totals > 0)
    n = len(names)
    side = min(14.0, max(4.5, 0.45 * n + 2.5))
    fig = Figure(figsize=(side + 1.2, side))
    ax = fig.add_subplot()
    image = ax.imshow(np.ma.masked_invalid(norm), cmap="viridis", vmin=0.0, vmax=1.0, interpolation="nearest")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="fraction of the ground-truth row")
    if n <= TICKS_MAX:
        ax.set_xticks(range(n), names, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(n), names, fontsize=8)
    ax.set_xlabel("prediction")
    ax.set_ylabel("ground truth")
    if n <= ANNOTATE_MAX:
        for (i, j), value in np.ndenumerate(norm):
            if not np.isnan(value):
                ax.text(j, i, f"{100 * value:.0f}", ha="center", va="center", fontsize=8,
                        color="black" if value > 0.6 else "white")
    return _figure_png(fig)


def _swatch(color) -> str:
    r, g, b = (int(v) for v in color)
    return f'<span class="sw" style="background: rgb({r}, {g}, {b})"></span>'


def _headline(result: dict) -> str:
    cards = "".join(f'<div class="card"><div class="v">{_pct(result.get(key))}</div><div class="k">{label} %</div>'
                    f"</div>" for key, label in HEADLINE)
    return f'<div class="cards" id="headline">{cards}</div>'


def _meta(result: dict) -> str:
    fields = [("model", result.get("model")), ("engine", result.get("engine")), ("data", result.get("data")),
              ("split", result.get("split")),
              ("mode", result.get("mode")), ("TTA", result.get("tta")), ("images", result.get("images")),
              ("pixels scored", result.get("pixels")), ("seconds", result.get("seconds"))]
    shown = " &middot; ".join(f"{k}: <b>{html.escape(str(v))}</b>" for k, v in fields if v is not None)
    return f'<div class="meta">{shown}; pixels labelled 255 are ignored.</div>'


def _class_table(result: dict, colors: np.ndarray) -> str:
    head = "".join(f"<th>{label} %</th>" for _, label in METRICS)
    rows = []
    for row, color in zip(result["per_class"], colors):
        cells = "".join(f"<td>{_pct(row[key])}</td>" for key, _ in METRICS)
        rows.append(f"<tr><td>{_swatch(color)}{html.escape(row['name'])}</td>{cells}</tr>")
    means = "".join(f"<td>{_pct(result.get(key))}</td>" for key in ("miou", "mean_dice", "mean_precision",
                                                                     "mean_recall"))
    rows.append(f'<tr class="mean"><td>mean</td>{means}</tr>')
    return (f'<table id="per-class-table"><tr><th>class</th>{head}</tr>{"".join(rows)}</table>'
            f'<p class="note">&ndash; = undefined, left out of the means: {html.escape(UNDEFINED)}.</p>')


def _legend(indices, names: list[str], colors: np.ndarray) -> str:
    items = []
    for i in indices:
        if i == IGNORE_INDEX or i >= len(names):
            label = "ignore (255)" if i == IGNORE_INDEX else f"unknown ({i})"
            items.append(f'<span class="item"><span class="sw" style="background: repeating-linear-gradient(45deg, '
                         f'#000 0 2px, #fff 2px 4px)"></span>{label}</span>')
        else:
            items.append(f'<span class="item">{_swatch(colors[i])}{html.escape(names[i])}</span>')
    return f'<div class="legend">{"".join(items)}</div>'


def _worst_section(worst, names: list[str], colors: np.ndarray) -> str:
    if not worst:
        return ""
    blocks = []
    for rank, record in enumerate(worst, 1):
        present = sorted(set(np.unique(record.label).tolist()) | set(np.unique(record.pred).tolist()))
        figures = "".join(
            f'<figure><img class="{kind}" alt="{alt}" src="{_png(rgb)}"><figcaption>{alt}</figcaption></figure>'
            for kind, alt, rgb in (("photo", "image", record.image),
                                   ("mask", "ground truth", colorize(record.label, colors)),
                                   ("mask", "prediction", colorize(record.pred, colors))))
        blocks.append(f'<div class="worst"><div><b>#{rank}</b> {html.escape(record.name)} &middot; mIoU '
                      f'{_pct(record.miou)} %</div><div class="row">{figures}</div>'
                      f"{_legend(present, names, colors)}</div>")
    return (f'<h2>The {len(worst)} worst images by per-image mIoU</h2><p class="note">Per-image mIoU: the mean IoU '
            f'of the classes present in that image\'s labels or prediction.</p><div id="worst">{"".join(blocks)}'
            f"</div>")


def render_report(result: dict, worst, classes) -> str:
    """The report's HTML. ``classes``: ``[{"name", "color"}]`` or a ClassTable, one per class index."""
    names, colors = _names_colors(classes)
    title = f"segcli eval: {result.get('model', '')}"
    body = [f"<h1>{html.escape(title)}</h1>", _meta(result), _headline(result),
            "<h2>Per class</h2>", _class_table(result, colors),
            f'<img class="chart" id="chart-per-class" alt="per-class metrics" src="{bar_chart(result["per_class"])}">',
            "<h2>Confusion matrix</h2>",
            '<p class="note">Rows are ground truth, columns predictions; each row is divided by its pixel count, so '
            "the diagonal is each class's recall.</p>",
            f'<img class="chart" id="chart-confusion" alt="confusion matrix" '
            f'src="{confusion_heatmap(result["confusion"], names)}">',
            _worst_section(worst, names, colors)]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{CSS}</style></head>\n<body>\n"
            + "\n".join(part for part in body if part) + "\n</body></html>\n")


def write_report(path, result: dict, worst=(), classes=None) -> Path:
    """Write the report for ``result`` to ``path`` atomically; returns the path.

    ``worst`` is a list of :class:`~segcli.inference.evaluate.WorstImage`
    (worst first); ``classes`` defaults to ``result["classes"]``.
    """
    from segcli.files import displayable, write_atomic

    path = Path(path)
    page = render_report(result, list(worst or []), classes if classes is not None else result["classes"])
    write_atomic(path, displayable(page).encode("utf-8"))
    return path
