"""``segcli data ...``: dataset commands. ``data_app`` is the sub-app other modules add commands to."""

from __future__ import annotations

from pathlib import Path

import typer

data_app = typer.Typer(help="Dataset tools: check a folder dataset before training.", no_args_is_help=True,
                       add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None)

#: Findings shown in the table before "... and N more" (--json has them all).
SHOWN_FINDINGS = 50


def render_report(report, console) -> None:
    """The check report as Rich tables (shared with ``segcli train``, which shows it when it refuses)."""
    from rich.table import Table

    console.print(f"Dataset {report.root}  layout: {report.layout}  "
                  f"pairs: train {report.pairs.get('train', 0)}, val {report.pairs.get('val', 0)} "
                  f"(val {report.val_source})  classes: {len(report.classes)} from {report.class_source}",
                  highlight=False)
    for note in report.notes:
        console.print(f"note: {note}", highlight=False)
    hist = Table(title="Pixels per class", title_justify="left")
    for col, justify in (("id", "right"), ("class", "left"), ("color", "left"), ("pixels", "right"), ("share", "right")):
        hist.add_column(col, justify=justify)
    for i, (cls, row) in enumerate(zip(report.classes, report.histogram)):
        hist.add_row(str(i), cls["name"], str(cls.get("color")), f"{row['pixels']:,}", f"{100 * row['fraction']:.1f}%")
    console.print(hist)
    for title, findings in (("Problems", report.problems), ("Warnings", report.warnings)):
        if not findings:
            continue
        table = Table(title=f"{title} ({len(findings)})", title_justify="left", show_lines=False)
        table.add_column("kind")
        table.add_column("message", overflow="fold")
        for f in findings[:SHOWN_FINDINGS]:
            table.add_row(f.kind, f.message)
        if len(findings) > SHOWN_FINDINGS:
            table.add_row("...", f"and {len(findings) - SHOWN_FINDINGS} more (see --json)")
        console.print(table)
    console.print("OK: the dataset can be trained on." if report.ok else
                  f"NOT OK: {len(report.problems)} problem(s); fix them before training.", highlight=False)


@data_app.command("check")
def check(
    data: Path = typer.Argument(..., help="Dataset folder (DATA/images + DATA/masks, DATA/train|val/..., "
                                          "or img_dir/ann_dir)."),
    val_fraction: float = typer.Option(0.1, "--val-fraction", help="Share of pairs drawn for val when there is "
                                                                   "no val split."),
    seed: int = typer.Option(0, "--seed", help="Seed of the drawn val split."),
    num_classes: int = typer.Option(None, "--num-classes", help="Class count when no class file says it."),
    json_out: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Report pairs per split, orphans, size mismatches, unreadable files, bad mask values, empty masks and
    a per-class pixel histogram. Exits 1 when the dataset cannot be trained on."""
    from segcli.cli.output import error, out, print_json
    from segcli.data.check import check_dataset
    from segcli.data.folder_dataset import discover

    report = check_dataset(discover(data, val_fraction=val_fraction, seed=seed, num_classes=num_classes))
    if json_out:
        print_json(report.to_dict())
    else:
        render_report(report, out)
    if not report.ok:
        if json_out:
            error(f"{data}: {len(report.problems)} problem(s), first: {report.first_problem()}")
        raise typer.Exit(1)
