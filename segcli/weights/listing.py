"""What is in segcli's weights cache: every preset with weights, and every imported entry.

A row's ``status`` is ``cached`` (record readable, SHA-256 matches), ``not cached``
or ``corrupt`` (with ``problem`` saying why). ``size_bytes`` is what the entry
folder takes on disk.

>>> [row["name"] for row in weights_rows(verify=False)][:2]
['mit_b0_imagenet', 'mit_b1_imagenet']
"""

from __future__ import annotations

from pathlib import Path

from segcli.models.registry import PRESETS, has_weights, weights_entry_name

CACHED, NOT_CACHED, CORRUPT = "cached", "not cached", "corrupt"


def folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())


def entry_status(folder: Path, label: str, verify: bool = True) -> tuple[str, str | None, dict]:
    """(status, problem, record) of one entry folder; ``verify`` re-hashes the weights."""
    import json

    from segcli.errors import CheckpointError
    from segcli.checkpoints.cache import RECORD_FILE, WEIGHTS_FILE, read_entry

    if not folder.exists():
        return NOT_CACHED, None, {}
    if not verify:
        try:
            record = json.loads((folder / RECORD_FILE).read_text())
        except (OSError, ValueError):
            return CORRUPT, f"unreadable {RECORD_FILE}", {}
        if not (folder / WEIGHTS_FILE).is_file():
            return CORRUPT, f"no {WEIGHTS_FILE}", record
        return CACHED, None, record
    try:
        _, record = read_entry(folder, label)
    except CheckpointError as exc:
        return CORRUPT, str(exc), {}
    return CACHED, None, record


def weights_rows(verify: bool = True) -> list[dict]:
    """One row per preset with weights, then one per other entry in the cache."""
    from segcli.checkpoints.cache import entry_dir, weights_root

    rows = []
    seen = set()
    for name, preset in PRESETS.items():
        if not has_weights(preset):
            continue
        entry = weights_entry_name(preset)
        folder = entry_dir(entry)
        status, problem, record = entry_status(folder, name, verify)
        seen.add(entry)
        rows.append({
            "name": name, "entry": entry, "status": status, "problem": problem,
            "size_bytes": folder_size(folder) if folder.exists() else 0,
            "source": preset["source"], "revision": record.get("revision"), "licence": preset.get("licence"),
            "path": str(folder),
        })
    root = weights_root()
    if root.is_dir():
        for folder in sorted(root.iterdir()):
            if not folder.is_dir() or folder.name.startswith(".") or folder.name in seen:
                continue
            status, problem, record = entry_status(folder, folder.name, verify)
            rows.append({
                "name": folder.name, "entry": folder.name, "status": status, "problem": problem,
                "size_bytes": folder_size(folder), "source": record.get("source"),
                "revision": record.get("revision"), "licence": record.get("licence"), "path": str(folder),
            })
    return rows
