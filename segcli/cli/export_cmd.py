"""``segcli export``: SavedModel, ONNX, TFLite or OpenVINO, checked against the Keras model after writing."""

from __future__ import annotations

from pathlib import Path

import typer


def _score(data: Path):
    """segcli's own eval as the scoring callback of the int8 accuracy budget: runner -> mIoU on ``data``."""
    from segcli.classes import ClassTable
    from segcli.inference.evaluate import evaluate
    from segcli.inference.runners import OpenedModel

    def score(runner) -> float:
        classes = ClassTable.from_dicts(runner.classes) if runner.classes else ClassTable.from_names([])
        opened = OpenedModel(runner, classes.complete(int(runner.num_classes)), "export", runner.input_size)
        return float(evaluate(data, opened, split="all")["miou"])

    return score


def export(
    model: str = typer.Option(..., "--model", "-m", help="Run dir, .keras file, weights folder or model name."),
    fmt: str = typer.Option(..., "--format", "-f", help="savedmodel | onnx | tflite | openvino."),
    out: Path = typer.Option(..., "--out", "-o", help="Output: a folder (savedmodel, openvino), FILE.onnx or "
                                                      "FILE.tflite."),
    precision: str = typer.Option("fp32", "--precision", help="OpenVINO: fp32, bf16 (CPUs with AMX or AVX-512 "
                                                              "BF16) or int8 (needs --calib)."),
    calib: Path = typer.Option(None, "--calib", help="int8: folder of calibration images (about 300 like the ones "
                                                     "to segment)."),
    data: Path = typer.Option(None, "--data", help="Labelled folder (eval's layouts) to measure the mIoU change "
                                                   "on; with --max-miou-drop the export fails past it."),
    max_miou_drop: float = typer.Option(None, "--max-miou-drop", help="Largest mIoU loss against float32 on "
                                                                      "--data (e.g. 0.01); default 0.01 with "
                                                                      "--data."),
    logits: bool = typer.Option(False, "--logits", help="SavedModel: serving_default returns logits instead of "
                                                        "class-index masks (both signatures are always there)."),
    quantize: str = typer.Option(None, "--quantize", help="TFLite only: float16 or int8 (dynamic range)."),
    samples: Path = typer.Option(None, "--samples", help="Folder of images for the parity check (default: "
                                                        "synthetic images)."),
    sample_size: int = typer.Option(None, "--sample-size", help="Side of the square parity images, at least 32 "
                                                                "(default: the model's input size, else 256)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an earlier export of this format at --out "
                                                              "(never a file or folder of anything else)."),
    json_out: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Export a model and check parity in the target runtime: max |Δ| of the logits and mask agreement.
    Float32 exports fail above 1e-4, lower precisions below 99% agreement or past --max-miou-drop."""
    from segcli.cli.output import info, out as console, print_json
    from segcli.errors import UsageError
    from segcli.export.api import export_model

    if max_miou_drop is not None and data is None:
        raise UsageError("--max-miou-drop needs --data, a labelled folder to measure the mIoU on.")
    budget = (0.01 if max_miou_drop is None else max_miou_drop) if data is not None else None
    try:
        from segcli.export.formats import get_format

        get_format(fmt)
        report = export_model(model, fmt, out, logits=logits, quantize=quantize, precision=precision, calib=calib,
                              max_miou_drop=budget, score=_score(data) if data is not None else None,
                              samples=samples, sample_size=sample_size, overwrite=overwrite,
                              on_start=None if json_out else lambda: info(f"exporting {model} to {fmt} ..."))
    except UsageError as exc:
        raise UsageError(_flag_words(str(exc))) from None
    if json_out:
        print_json(report.to_dict())
        return
    console.print(_table(report))


#: Library words for values -> the flags that set them, for messages shown on the command line: at the start
#: of a message, and (_INLINE) anywhere in it.
_FLAGS = (("format ", "--format "), ("out ", "--out "), ("quantize ", "--quantize "), ("precision ", "--precision "),
          ("calib ", "--calib "), ("samples ", "--samples "), ("sample size ", "--sample-size "))
_INLINE = (("logits=True", "--logits"), ("overwrite=True", "--overwrite"), ("a new out ", "a new --out "))


def _flag_words(message: str) -> str:
    for word, flag in _FLAGS + _INLINE:
        if message.startswith(word):
            message = flag + message[len(word):]
    for word, flag in _INLINE:
        message = message.replace(word, flag)
    return message


def _table(report):
    from rich.table import Table

    table = Table(title=f"export {report.path}", title_justify="left", show_header=False)
    table.add_column("key")
    table.add_column("value")
    rows = [("format", report.format + (f" ({report.quantize})" if report.quantize else "")),
            ("precision", report.precision), ("runtime", report.runtime),
            ("samples", f"{report.samples} x {report.sample_shape[1]}x{report.sample_shape[2]}"),
            ("logits", "x".join(map(str, report.logits_shape))),
            ("max |Δ| logits", f"{report.max_abs_diff:.3g}"), ("mean |Δ| logits", f"{report.mean_abs_diff:.3g}"),
            ("mask agreement", f"{report.mask_agreement:.4%}")]
    if report.miou is not None:
        rows.append(("mIoU", f"{report.miou:.4f} (float32 {report.miou_reference:.4f})"))
    rows += [("check", f"passed ({report.criterion})"), ("size", f"{report.size_bytes / 2**20:.2f} MiB"),
             ("time", f"{report.seconds:.1f} s")]
    for key, value in rows:
        table.add_row(key, value)
    return table
