"""``segcli export``: SavedModel, ONNX or TFLite, checked against the Keras model after writing."""

from __future__ import annotations

from pathlib import Path

import typer


def export(
    model: str = typer.Option(..., "--model", "-m", help="Run dir, .keras file, weights folder or preset name."),
    fmt: str = typer.Option(..., "--format", "-f", help="savedmodel | onnx | tflite."),
    out: Path = typer.Option(..., "--out", "-o", help="Output: a folder (savedmodel), FILE.onnx or FILE.tflite."),
    logits: bool = typer.Option(False, "--logits", help="SavedModel: serving_default returns logits instead of "
                                                        "class-index masks (both signatures are always there)."),
    quantize: str = typer.Option(None, "--quantize", help="TFLite only: float16 or int8 (dynamic range)."),
    samples: Path = typer.Option(None, "--samples", help="Folder of images for the parity check (default: "
                                                        "synthetic images)."),
    sample_size: int = typer.Option(None, "--sample-size", help="Side of the square parity images (default: the "
                                                                "model's input size, else 256)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace --out if it exists."),
    json_out: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Export a model and check parity in the target runtime: max |Δ| of the logits and mask agreement.
    Float32 exports fail above 1e-4, quantized ones below 99% agreement."""
    from segcli.cli.output import info, out as console, print_json
    from segcli.export.api import export_model

    if not json_out:
        info(f"exporting {model} to {fmt} ...")
    size = (sample_size, sample_size) if sample_size else None
    report = export_model(model, fmt, out, logits=logits, quantize=quantize, samples=samples, sample_size=size,
                          overwrite=overwrite)
    if json_out:
        print_json(report.to_dict())
        return
    from rich.table import Table

    table = Table(title=f"export {report.path}", title_justify="left", show_header=False)
    table.add_column("key")
    table.add_column("value")
    rows = [("format", report.format + (f" ({report.quantize})" if report.quantize else "")),
            ("runtime", report.runtime),
            ("samples", f"{report.samples} x {report.sample_shape[1]}x{report.sample_shape[2]}"),
            ("logits", "x".join(map(str, report.logits_shape))),
            ("max |Δ| logits", f"{report.max_abs_diff:.3g}"), ("mean |Δ| logits", f"{report.mean_abs_diff:.3g}"),
            ("mask agreement", f"{report.mask_agreement:.4%}"),
            ("check", f"passed ({report.criterion})"),
            ("size", f"{report.size_bytes / 2**20:.2f} MiB"), ("time", f"{report.seconds:.1f} s")]
    for key, value in rows:
        table.add_row(key, value)
    console.print(table)
