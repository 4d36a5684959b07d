"""``segcli data check``: every problem in a folder dataset, before training (registered in ``segcli.cli.app``)."""

from __future__ import annotations

from pathlib import Path

import typer

from segcli.cli import options as shared
from segcli.data import layouts

#: Groups of identical findings shown in the table before "... and N more" (--json has every finding).
SHOWN_GROUPS = 50
#: Files named per group; the rest are counted ("and N more").
SHOWN_FILES = 3

CHECK_HELP = f"""Report pairs per split, orphans, size mismatches, unreadable files, bad mask values, empty masks and
a per-class pixel histogram. Identical problems are grouped (one row per kind and value, with a count);
--json lists every file. Exits 1 when the dataset cannot be trained on.

Layouts of DATA (classes.json or classes.txt optional; without one the classes are inferred from the masks):

{layouts.help_text()}

Examples:

\b
  segcli data check DATA
  segcli data check DATA --label-map labelids_to_trainids.json --classes road,car --json
"""


def _short(path: str, root: str) -> str:
    """``path`` relative to the dataset folder when it is inside it."""
    try:
        return Path(path).relative_to(root).as_posix()
    except ValueError:
        return path


def _detail(message: str, file: str) -> str:
    """A finding's message without its leading "FILE: " (the files column names them)."""
    return message[len(file) + 2:] if message.startswith(f"{file}: ") else message


def _findings_table(title: str, findings: list, root: str):
    from rich.table import Table
    from rich.text import Text

    from segcli.data.check import group_findings

    groups = group_findings(findings)
    table = Table(title=f"{title} ({len(findings)} in {len(groups)} group(s))", title_justify="left")
    table.add_column("kind")
    table.add_column("count", justify="right")
    table.add_column("files", overflow="fold")
    table.add_column("problem", overflow="fold")
    for group in groups[:SHOWN_GROUPS]:
        files = [_short(f, root) for f in group.files[:SHOWN_FILES]]
        if group.count > SHOWN_FILES:
            files.append(f"and {group.count - SHOWN_FILES} more (see --json)")
        table.add_row(group.kind, str(group.count), Text("\n".join(files)),  # Text: a "[r, g, b]" is not markup
                      Text(_detail(group.message, group.files[0])))
    if len(groups) > SHOWN_GROUPS:
        hidden = sum(g.count for g in groups[SHOWN_GROUPS:])
        table.add_row("...", str(hidden), "", f"and {len(groups) - SHOWN_GROUPS} more groups (see --json)")
    return table


def render_report(report, console) -> None:
    """The check report as Rich tables (shared with ``segcli train``, which shows it when it refuses)."""
    from rich.table import Table

    console.print(f"Dataset {report.root}  layout: {report.layout}  "
                  f"pairs: train {report.pairs.get('train', 0)}, val {report.pairs.get('val', 0)} "
                  f"(val {report.val_source})  classes: {len(report.classes)} from {report.class_source}",
                  highlight=False, markup=False)
    for note in report.notes:
        console.print(f"note: {note}", highlight=False, markup=False)
    hist = Table(title="Pixels per class", title_justify="left")
    for col, justify in (("id", "right"), ("class", "left"), ("color", "left"), ("pixels", "right"), ("share", "right")):
        hist.add_column(col, justify=justify)
    for i, (cls, row) in enumerate(zip(report.classes, report.histogram)):
        hist.add_row(str(i), cls["name"], str(cls.get("color")), f"{row['pixels']:,}", f"{100 * row['fraction']:.1f}%")
    if report.ignored_pixels:
        everything = report.ignored_pixels + sum(row["pixels"] for row in report.histogram)
        hist.caption = (f"and {report.ignored_pixels:,} pixels of 255 = ignore "
                        f"({100 * report.ignored_pixels / everything:.1f}% of all), left out of the shares")
    console.print(hist)
    for title, findings in (("Problems", report.problems), ("Warnings", report.warnings)):
        if findings:
            console.print(_findings_table(title, findings, report.root))
    look = f" (look at the {len(report.warnings)} warning(s) above)" if report.warnings else ""
    console.print(f"OK: the dataset can be trained on{look}." if report.ok else
                  f"NOT OK: {len(report.problems)} problem(s); fix them before training.", highlight=False)


def check(
    data: Path = typer.Argument(..., help="Dataset folder, in one of the layouts shown above."),
    val_fraction: float = typer.Option(0.1, "--val-fraction", help="Share of pairs drawn for val when there is "
                                                                   "no val split."),
    seed: int = typer.Option(0, "--seed", help="Seed of the drawn val split."),
    num_classes: int = typer.Option(None, "--num-classes", help="Class count when no class file says it."),
    label_map: Path = shared.LABEL_MAP,
    classes: str = typer.Option(None, "--classes", metavar="A,B,C",
                                help="Keep only these classes, in this order; the others' pixels become 255."),
    json_out: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    from segcli.cli.output import error, out, print_json
    from segcli.data.check import check_dataset
    from segcli.data.folder_dataset import MAX_CLASSES, discover
    from segcli.errors import UsageError

    if not 0.0 < val_fraction < 1.0:
        raise UsageError(f"--val-fraction {val_fraction}: give a fraction between 0 and 1 (exclusive), e.g. 0.1.")
    if num_classes is not None and not 1 <= num_classes <= MAX_CLASSES:
        raise UsageError(f"--num-classes {num_classes}: give a class count from 1 to {MAX_CLASSES}.")
    ds = discover(data, val_fraction=val_fraction, seed=seed, num_classes=num_classes, label_map=label_map,
                  keep_classes=classes)
    report = check_dataset(ds)
    if json_out:
        print_json(report.to_dict())
    else:
        render_report(report, out)
    if not report.ok:  # the report is the result (stdout); the verdict is also one line on stderr
        error(f"{data}: {len(report.problems)} problem(s), first: {report.first_problem()}")
        raise typer.Exit(1)
