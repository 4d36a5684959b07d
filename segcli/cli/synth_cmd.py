"""``segcli data synth``: write a deterministic synthetic dataset (a smoke test for any set-up)."""

from __future__ import annotations

from pathlib import Path

import typer


def synth(
    out_dir: Path = typer.Argument(..., metavar="OUT", help="Folder to write train/, val/ and classes.json into."),
    n: int = typer.Option(120, "--n", help="Number of images (train + val)."),
    size: int = typer.Option(128, "--size", help="Image side in pixels (square images)."),
    seed: int = typer.Option(0, "--seed", help="Seed; the same seed writes byte-identical files."),
    val_fraction: float = typer.Option(0.2, "--val-fraction", help="Share of the images put in val/."),
    json_out: bool = typer.Option(False, "--json", help="Print what was written as JSON."),
) -> None:
    """Write N synthetic images with class masks: textured discs, squares, triangles and rings in random
    colours on a textured background, in segcli's split layout (OUT/train, OUT/val, OUT/classes.json)."""
    from segcli.cli.output import out, print_json
    from segcli.data.synth import generate

    result = generate(out_dir, n=n, size=size, seed=seed, val_fraction=val_fraction)
    if json_out:
        print_json(result.to_json())
        return
    from rich.table import Table

    out.print(f"Wrote {result.train} train + {result.val} val image/mask pairs ({size}x{size} PNG, seed {seed}) "
              f"to {result.out} in {result.seconds:.1f} s ({result.bytes_written / 1e6:.1f} MB).", highlight=False)
    table = Table(title=f"Classes ({result.out / 'classes.json'})", title_justify="left")
    for col, justify in (("id", "right"), ("class", "left"), ("color", "left"), ("share of pixels", "right")):
        table.add_column(col, justify=justify)
    for i, (cls, share) in enumerate(zip(result.classes, result.pixel_fraction)):
        table.add_row(str(i), cls["name"], str(cls["color"]), f"{100 * share:.1f}%")
    out.print(table)
    out.print(f"Next: segcli data check {result.out}", highlight=False)
