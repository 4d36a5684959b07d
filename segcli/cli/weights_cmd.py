"""``segcli weights ...``: fetch, list, import and locate pretrained weights."""

from __future__ import annotations

from pathlib import Path

import typer



def human_size(n: int) -> str:
    """Bytes as a short size.

    >>> human_size(0), human_size(15_000_000)
    ('-', '14.3 MiB')
    """
    if not n:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def fetch(
    presets: list[str] = typer.Argument(..., help="Preset names with weights (see `segcli weights list`)."),
    force: bool = typer.Option(False, "--force", help="Convert again even when the entry is cached and intact."),
    revision: str = typer.Option(None, "--revision", help="Hub revision (branch, tag or commit); default main."),
    json_out: bool = typer.Option(False, "--json", help="Print the results as JSON."),
) -> None:
    """Download checkpoints from the Hugging Face Hub and convert them into segcli's cache (needs network,
    or a filled Hugging Face cache with HF_HUB_OFFLINE=1)."""
    from segcli.cli.output import info, out, print_json, warn
    from segcli.models.registry import NVIDIA_LICENCE_NOTE
    from segcli.weights.fetch import fetch as fetch_one
    from segcli.weights.fetch import fetchable

    for name in presets:  # a typo in the last name stops the command before the first download, not after
        fetchable(name)
    results = []
    for name in presets:
        if not json_out:
            info(f"fetching {name} ...")
        result = fetch_one(name, force=force, revision=revision)
        results.append(result)
        if result.replaced_corrupt:
            warn(f"{name}: the cached entry was corrupt and has been replaced.")
        if json_out:
            continue
        what = "downloaded and converted" if result.downloaded else "already cached"
        rec = result.record
        out.print(f"{name}: {what} -> {result.folder}  ({rec.get('source')} @ {rec.get('revision') or '-'}, "
                  f"sha256 {str(rec.get('sha256'))[:12]}, {human_size(rec.get('size_bytes', 0))})", highlight=False)
        if result.downloaded:
            out.print(f"Licence: {rec.get('licence')}. {NVIDIA_LICENCE_NOTE}", highlight=False)
    if json_out:
        print_json([{"preset": r.preset, "entry": r.entry, "path": str(r.folder), "downloaded": r.downloaded,
                     "replaced_corrupt": r.replaced_corrupt, "source": r.record.get("source"),
                     "revision": r.record.get("revision"), "sha256": r.record.get("sha256"),
                     "size_bytes": r.record.get("size_bytes"), "licence": r.record.get("licence")}
                    for r in results])


def list_weights(
    json_out: bool = typer.Option(False, "--json", help="Print the rows as JSON."),
    no_verify: bool = typer.Option(False, "--no-verify", help="Skip re-hashing the cached weights (faster)."),
) -> None:
    """Every preset with weights (cached, not cached or corrupt, with its size on disk) and every imported entry."""
    from segcli.cli.output import out, print_json
    from segcli.checkpoints.cache import weights_root
    from segcli.weights.listing import CORRUPT, weights_rows

    rows = weights_rows(verify=not no_verify)
    if json_out:
        print_json(rows)
        return
    from rich.table import Table

    table = Table(title=f"segcli weights ({weights_root()})", title_justify="left")
    for col in ("name", "status", "size", "source", "revision"):
        table.add_column(col, no_wrap=True, justify="right" if col == "size" else "left")
    style = {"cached": "green", "corrupt": "bold red"}
    for r in rows:
        entry = "" if r["entry"] == r["name"] else f" (as {r['entry']})"
        table.add_row(r["name"] + entry, f"[{style.get(r['status'], 'dim')}]{r['status']}[/]",
                      human_size(r["size_bytes"]), str(r["source"] or "-").removeprefix("hf://"),
                      (r["revision"] or "-")[:12])
    out.print(table)
    for r in rows:
        if r["status"] == CORRUPT:
            out.print(f"{r['name']}: {r['problem']}", highlight=False)


def import_weights(
    folder: Path = typer.Argument(..., help="A Hugging Face checkpoint folder (config.json + model.safetensors) "
                                            "or a keras-hub preset folder (config.json + model.weights.h5)."),
    name: str = typer.Option(..., "--as", help="Entry name: a preset name (checked against the preset) or any "
                                               "new name."),
    json_out: bool = typer.Option(False, "--json", help="Print the record as JSON."),
) -> None:
    """Convert a local checkpoint folder into segcli's cache, for machines without network."""
    from segcli.cli.output import info, out, print_json
    from segcli.checkpoints.cache import read_entry
    from segcli.weights.importer import import_checkpoint

    earlier = _earlier_source(name)
    entry = import_checkpoint(folder, name)
    _, record = read_entry(entry, name)
    if earlier is not None:
        info(f"note: '{name}' held an earlier import (from {earlier}); this one replaced it.")
    if json_out:
        print_json({"name": name, "path": str(entry), **record})
        return
    classes = f", {record['num_classes']} classes" if record.get("scope") == "segmenter" else ""
    out.print(f"imported {folder} as '{name}' ({record['scope']}{classes}) -> {entry}", highlight=False)
    for note in record.get("keras_hub_differences", []):
        out.print(f"note: {note}", highlight=False)


def _earlier_source(name: str) -> str | None:
    """Where the cache entry ``name`` was imported or fetched from, if there is one ("unknown" if unreadable)."""
    import json

    from segcli.checkpoints.cache import RECORD_FILE, entry_dir

    record_file = entry_dir(name) / RECORD_FILE
    if not record_file.is_file():
        return None
    try:
        return str(json.loads(record_file.read_text()).get("source") or "unknown")
    except (OSError, ValueError, AttributeError):
        return "unknown"


def path(
    name: str = typer.Argument(None, help="An entry or preset name: print its folder instead of the cache root."),
) -> None:
    """Print where segcli keeps weights ($SEGCLI_HOME/weights, default ~/.cache/segcli/weights)."""
    from segcli.checkpoints.cache import entry_dir, weights_root
    from segcli.models.registry import PRESETS, weights_entry_name
    from segcli.weights.importer import check_entry_name

    if name is None:
        typer.echo(str(weights_root()))
        return
    # any other name is an entry's folder name, checked as `weights import --as` checks it ("../../etc" is none)
    typer.echo(str(entry_dir(weights_entry_name(PRESETS[name]) if name in PRESETS else check_entry_name(name))))
