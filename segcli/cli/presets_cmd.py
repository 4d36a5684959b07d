"""``segcli presets``: every architecture and checkpoint, without importing TensorFlow."""

from __future__ import annotations

import typer

from segcli.models.registry import NVIDIA_LICENCE_NOTE, PRESETS, SEGMENTER_ROW_CLASSES


def preset_rows() -> list[dict]:
    """One dict per preset with computed parameter counts and cache status."""
    from segcli.models.registry import preset_params
    from segcli.checkpoints.cache import entry_dir, is_entry

    rows = []
    for name, p in PRESETS.items():
        segmenter = p["model"] == "segmenter"
        classes = p.get("num_classes") or (SEGMENTER_ROW_CLASSES if segmenter else None)
        entry = p.get("weights_from", name)
        rows.append({
            "name": name,
            "kind": p["kind"],
            "model": p["model"],
            "parameters": preset_params(p),
            "input_size": list(p["input_size"]) if "input_size" in p else None,
            "num_classes": classes,
            "projection_filters": (p.get("projection_filters", 256) if segmenter else None),
            "weights": p.get("source"),
            "weights_cached": bool(p.get("source")) and is_entry(entry_dir(entry)),
            "licence": p.get("licence"),
            "published_miou": p.get("published_miou"),
            "dataset": p.get("dataset"),
            "description": p["description"],
        })
    return rows


def presets(
    json_out: bool = typer.Option(False, "--json", help="Print the table as JSON."),
) -> None:
    """List every architecture and checkpoint with parameters, sizes, sources and licences."""
    rows = preset_rows()
    if json_out:
        from segcli.cli.output import print_json

        print_json(rows)
        return
    from rich.table import Table

    from segcli.cli.output import out

    table = Table(title="segcli presets", title_justify="left")
    for col in ("name", "kind", "params", "input", "classes", "weights", "mIoU", "licence"):
        right = col in ("params", "classes", "mIoU")
        table.add_column(col, no_wrap=True, justify="right" if right else "left")
    for r in rows:
        if r["weights"]:
            weights = r["weights"].removeprefix("hf://") + (" (cached)" if r["weights_cached"] else "")
        else:
            weights = "-"
        table.add_row(
            r["name"], r["kind"], millions(r["parameters"]),
            "x".join(map(str, r["input_size"])) if r["input_size"] else "any",
            str(r["num_classes"] or "-"), weights,
            f"{r['published_miou']:.1f}" if r["published_miou"] else "-",
            "NVIDIA-NC" if r["licence"] else "-",
        )
    out.print(table)
    out.print(
        f"Parameters are computed from the architecture. Backbone rows count the bare encoder; segmenter rows "
        f"use a {SEGMENTER_ROW_CLASSES}-class head of width 256, checkpoint rows their own classes and width.\n"
        f"Licence (NVIDIA-NC): {NVIDIA_LICENCE_NOTE}",
        highlight=False,
    )


def millions(n: int) -> str:
    """A parameter count as the seed's table shows it: ``3319392`` -> ``3.32M``."""
    return f"{n / 1e6:.2f}M"
