"""What a run shows of its val predictions: TensorBoard panels every epoch, report.html at the end.

- :func:`val_panel`: image | ground truth | prediction side by side, for TensorBoard's images tab;
- :func:`write_run_report`: ``segcli eval --report`` on the run's own val split with its best model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

#: Val images logged to TensorBoard each epoch (image | ground truth | prediction), and worst images in report.html.
VAL_PANELS = 3
REPORT_WORST = 6
REPORT = "report.html"


def val_panel(image, label, pred, colors) -> np.ndarray:
    """image | ground truth | prediction side by side, masks in the classes' colours (255 = black).

    ``image`` is the network input (resized to the crop size); it is shown at the label's size.
    """
    import cv2

    from segcli.inference.overlay import colorize, palette_lut

    lut = palette_lut(colors)
    h, w = label.shape
    rgb = cv2.resize(np.clip(image, 0, 255).astype(np.uint8), (w, h), interpolation=cv2.INTER_AREA)
    return np.concatenate([rgb, colorize(label, lut), colorize(pred.astype(np.int64), lut)], axis=1)


def write_run_report(s, out: Path) -> Path:
    """``out/report.html`` for the run's best model (``best.keras``) on the val split it was chosen on."""
    from segcli.inference.evaluate import evaluate
    from segcli.inference.report import write_report
    from segcli.inference.runners import open_model

    result = evaluate(s.data, open_model(str(out), backend="tensorflow"), split="val", worst=REPORT_WORST,
                      label_map=s.label_map, keep_classes=s.classes, val_fraction=s.val_fraction, seed=s.seed)
    return write_report(Path(out) / REPORT, result, result["worst_images"], result["classes"])
