"""``segcli weights fetch``: download a preset's checkpoint from the Hugging Face Hub, convert it once.

The download goes through ``huggingface_hub.snapshot_download`` into the
ordinary Hugging Face cache (``HF_HUB_CACHE``, else ``$HF_HOME/hub``), fetching
only ``config.json`` and ``model.safetensors``. The snapshot is then converted
into segcli's cache (:mod:`segcli.checkpoints.cache`) with its source, revision
(the commit the snapshot came from), licence and SHA-256.

Offline behaviour never waits on the network: with ``HF_HUB_OFFLINE=1``, or
when the Hub's host does not answer within :data:`PROBE_SECONDS`, only the
local Hugging Face cache is used, and a checkpoint that is not there fails at
once with one line naming the preset and ``segcli weights import``.
"""

from __future__ import annotations

import os
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from segcli.errors import CheckpointError, MissingDependencyError, PresetError, WeightsNotFoundError
from segcli.models.registry import PRESETS, get_preset, has_weights, weights_entry_name

PROBE_SECONDS = 3.0
ETAG_TIMEOUT = 10.0
FILES = ["config.json", "model.safetensors"]
DEFAULT_ENDPOINT = "https://huggingface.co"


@dataclass
class FetchResult:
    preset: str
    entry: str
    folder: Path
    record: dict
    downloaded: bool  # False: the entry was already in segcli's cache
    replaced_corrupt: bool = False


def _truthy(value) -> bool:
    return str(value or "").strip().upper() in ("1", "ON", "YES", "TRUE")


def offline_by_env(environ=None) -> bool:
    """``HF_HUB_OFFLINE`` (or the older ``TRANSFORMERS_OFFLINE``) is set.

    >>> offline_by_env({"HF_HUB_OFFLINE": "1"}), offline_by_env({})
    (True, False)
    """
    environ = os.environ if environ is None else environ
    return _truthy(environ.get("HF_HUB_OFFLINE")) or _truthy(environ.get("TRANSFORMERS_OFFLINE"))


def hf_cache_dir(environ=None) -> str | None:
    """The Hugging Face hub cache that ``huggingface_hub`` would use, read from the environment now."""
    environ = os.environ if environ is None else environ
    if environ.get("HF_HUB_CACHE"):
        return environ["HF_HUB_CACHE"]
    if environ.get("HUGGINGFACE_HUB_CACHE"):
        return environ["HUGGINGFACE_HUB_CACHE"]
    if environ.get("HF_HOME"):
        return str(Path(environ["HF_HOME"]) / "hub")
    return None


def endpoint_reachable(endpoint: str, timeout: float = PROBE_SECONDS) -> bool:
    """True if a TCP connection to the endpoint's host opens within ``timeout`` seconds (DNS included)."""
    url = urlparse(endpoint)
    host, port = url.hostname, url.port or (443 if url.scheme == "https" else 80)
    if not host:
        return False
    result = []

    def probe():
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)  # getaddrinfo has no timeout of its own
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])


def offline_message(preset: str, repo: str) -> str:
    return (f"cannot fetch '{preset}': no network and {repo} is not in the Hugging Face cache. On a connected "
            f"machine download https://huggingface.co/{repo}, copy the folder here and run "
            f"`segcli weights import DIR --as {preset}`.")


def repo_of(preset: dict) -> str:
    source = preset["source"]
    if not source.startswith("hf://"):
        raise PresetError(f"Preset '{preset['name']}' has source {source!r}, which segcli cannot fetch.")
    return source.removeprefix("hf://")


def download(preset_name: str, repo: str, revision: str | None = None) -> Path:
    """The snapshot folder of ``repo`` in the Hugging Face cache, downloading it if needed and possible."""
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError
    except ImportError:
        raise MissingDependencyError(
            "`segcli weights fetch` needs huggingface_hub: pip install 'segcli[hub]'; or download the checkpoint "
            f"elsewhere and run `segcli weights import DIR --as {preset_name}`."
        ) from None
    endpoint = os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT
    offline = offline_by_env() or not endpoint_reachable(endpoint)
    kwargs = dict(revision=revision, cache_dir=hf_cache_dir(), allow_patterns=FILES, etag_timeout=ETAG_TIMEOUT)
    try:
        path = Path(snapshot_download(repo, local_files_only=offline, **kwargs))
    except LocalEntryNotFoundError:
        raise WeightsNotFoundError(offline_message(preset_name, repo)) from None
    except (HfHubHTTPError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"cannot fetch '{preset_name}' from {repo}: {first}. Retry, or download it "
                              f"elsewhere and run `segcli weights import DIR --as {preset_name}`.") from None
    if not (path / "config.json").is_file():
        raise WeightsNotFoundError(offline_message(preset_name, repo)) if offline else \
            CheckpointError(f"{repo} (revision {path.name}) has no config.json; it is not a SegFormer checkpoint.")
    if not (path / "model.safetensors").is_file():
        raise CheckpointError(
            f"{repo} (revision {path.name}) has no model.safetensors{' in the local cache' if offline else ''}; "
            f"segcli reads safetensors only. Convert the checkpoint with transformers "
            f"(save_pretrained(..., safe_serialization=True)) and run `segcli weights import DIR --as {preset_name}`."
        )
    return path


def fetchable(preset_name: str) -> dict:
    """The preset ``preset_name``, or PresetError when it is unknown or has no weights to fetch.

    >>> fetchable("segformer_b0_ade20k_512")["name"]
    'segformer_b0_ade20k_512'
    """
    preset = get_preset(preset_name)
    if not has_weights(preset):
        with_weights = [n for n, p in PRESETS.items() if has_weights(p) and n.startswith(preset_name.split("_")[0])]
        hint = f" Presets with weights include {', '.join(with_weights[:3])}." if with_weights else ""
        raise PresetError(f"Preset '{preset_name}' is a random-init architecture with no weights to fetch.{hint}")
    return preset


def fetch(preset_name: str, force: bool = False, revision: str | None = None) -> FetchResult:
    """Make sure preset ``preset_name``'s weights are in segcli's cache; download and convert them if not.

    An entry that is already cached is verified (SHA-256) and kept; a corrupt
    one is replaced. ``force`` converts again from the Hugging Face cache (or
    the Hub) even when the entry is fine.
    """
    from segcli.checkpoints.cache import entry_dir, read_entry
    from segcli.weights.importer import import_checkpoint

    entry = weights_entry_name(fetchable(preset_name))
    folder = entry_dir(entry)
    corrupt = False
    if folder.exists() and not force:
        try:
            _, record = read_entry(folder, preset_name)
            return FetchResult(preset_name, entry, folder, record, downloaded=False)
        except CheckpointError:
            corrupt = True
    repo = repo_of(PRESETS[entry])
    snapshot = download(preset_name, repo, revision)
    folder = import_checkpoint(snapshot, entry, source=PRESETS[entry]["source"], revision=snapshot.name)
    _, record = read_entry(folder, preset_name)
    return FetchResult(preset_name, entry, folder, record, downloaded=True, replaced_corrupt=corrupt)
