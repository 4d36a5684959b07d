"""``segcli predict``: masks and overlays for files, folders and globs, resumable and shardable.

For every input image, under ``out`` and mirroring the input tree:

- ``<stem>.png``: class-index mask at the original size (uint8; uint16 above 256 classes);
- ``<stem>_overlay.jpg``: the image blended with the class colours (``alpha``);
- ``<stem>_color.png`` (``color_mask``) and ``<stem>_probs.npy`` (``save_probs``, float16 H x W x C);
- ``summary.json`` (``summary.shard-K-of-N.json`` for a shard).

Every file is written to a temporary name and renamed. An input whose outputs
all exist is skipped (unless ``overwrite``), so a killed run finishes by running
it again. Files under ``out`` are never read as inputs. Decoding and writing run
in thread pools around the batched network calls.

>>> shard_of("a/b.jpg", 4) == shard_of("a/b.jpg", 4), parse_shard("2/4")
(True, (2, 4))
"""

from __future__ import annotations

import glob
import hashlib
import os
import tempfile
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np

from segcli.data.image_io import IMAGE_EXTENSIONS, is_image_name
from segcli.errors import DataError, UsageError

MASK_SUFFIX = ".png"
OVERLAY_SUFFIX = "_overlay.jpg"
COLOR_SUFFIX = "_color.png"
PROBS_SUFFIX = "_probs.npy"
GLOB_CHARS = "*?["


@dataclass
class InputItem:
    """One input image: where it is, and the output path stem relative to ``--out``."""

    path: Path
    rel: str  # relative input path (POSIX), the key for sharding and reports
    stem: str = ""  # relative output stem (POSIX), e.g. "sub/a" -> sub/a.png, sub/a_overlay.jpg


@dataclass
class PredictOptions:
    out: Path
    mode: str = "whole"
    batch_size: int = 8
    tile: int | None = None
    stride: int | None = None
    max_side: int = 2048
    alpha: float = 0.5
    overlay: bool = True
    color_mask: bool = False
    save_probs: bool = False
    overwrite: bool = False
    strict: bool = False
    shard: tuple | None = None
    workers: int | None = None
    jpeg_quality: int = 90


@dataclass
class _Run:
    """Mutable state of one run."""

    images: list = field(default_factory=list)
    failures: list = field(default_factory=list)
    stop: bool = False


# --- inputs -------------------------------------------------------------------------------------------------------
def parse_shard(text: str) -> tuple[int, int]:
    """``"K/N"`` -> (K, N) with 0 <= K < N."""
    try:
        k, n = (int(part) for part in str(text).split("/"))
        if n < 1 or not 0 <= k < n:
            raise ValueError
    except ValueError:
        raise UsageError(f"--shard {text}: use K/N with 0 <= K < N, for example --shard 0/4 ... --shard 3/4.") from None
    return k, n


def shard_of(rel: str, n: int) -> int:
    """Stable shard of a relative path: the same on every machine and Python run."""
    digest = hashlib.sha1(rel.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % n


def _inside(path: Path, folder: Path | None) -> bool:
    if folder is None:
        return False
    try:
        path.relative_to(folder)
        return True
    except ValueError:
        return False


def _walk(root: Path, exclude: Path | None):
    """Image files under ``root`` (sorted, hidden entries and ``exclude`` left out), with paths relative to root."""
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and not _inside((here / d).resolve(), exclude))
        for name in sorted(filenames):
            if not name.startswith(".") and is_image_name(name):
                yield here / name, (here / name).relative_to(root).as_posix()


def _glob_base(pattern: str) -> Path:
    parts = []
    for part in Path(pattern).parts:
        if any(c in part for c in GLOB_CHARS):
            break
        parts.append(part)
    return Path(*parts) if parts else Path(".")


def discover(inputs, exclude: Path | None = None) -> list[InputItem]:
    """Image inputs from files, folders (recursive, by extension) and glob patterns; never anything under ``exclude``."""
    exclude = Path(exclude).resolve() if exclude is not None else None
    found: list[tuple[Path, str]] = []
    for spec in inputs:
        spec = str(spec)
        path = Path(spec).expanduser()
        if path.is_dir():
            found.extend(sorted(_walk(path, exclude), key=lambda pair: pair[1]))
        elif path.is_file():
            found.append((path, path.name))
        elif any(c in spec for c in GLOB_CHARS):
            base = _glob_base(spec)
            for match in sorted(glob.glob(spec, recursive=True)):
                match = Path(match)
                if match.is_dir():
                    found.extend(sorted(((p, p.relative_to(base).as_posix()) for p, _ in _walk(match, exclude)),
                                        key=lambda pair: pair[1]))
                elif match.is_file():
                    found.append((match, match.relative_to(base).as_posix()))
        else:
            raise DataError(f"{spec}: no such file or folder.")
    items, seen = [], set()
    for path, rel in found:
        real = path.resolve()
        if real in seen or _inside(real, exclude):
            continue
        seen.add(real)
        items.append(InputItem(path, rel))
    _assign_stems(items)
    return items


def _assign_stems(items: list[InputItem]) -> None:
    """Output stems: the relative path without extension, or with it where two inputs would collide."""
    by_stem: dict[str, list[InputItem]] = {}
    for item in items:
        by_stem.setdefault(str(PurePosixPath(item.rel).with_suffix("")), []).append(item)
    used: dict[str, InputItem] = {}
    for stem, group in by_stem.items():
        for item in group:
            item.stem = stem if len(group) == 1 else item.rel
            if item.stem in used:
                raise DataError(f"{used[item.stem].path} and {item.path} would both write {item.stem}{MASK_SUFFIX}; "
                                f"predict them in separate runs or rename one.")
            used[item.stem] = item


def outputs_of(item: InputItem, options: PredictOptions) -> dict[str, Path]:
    base = options.out / item.stem
    paths = {"mask": base.with_name(base.name + MASK_SUFFIX)}
    if options.overlay:
        paths["overlay"] = base.with_name(base.name + OVERLAY_SUFFIX)
    if options.color_mask:
        paths["color"] = base.with_name(base.name + COLOR_SUFFIX)
    if options.save_probs:
        paths["probs"] = base.with_name(base.name + PROBS_SUFFIX)
    return paths


def check_writable(out: Path) -> None:
    """Create ``out`` and prove a file can be written there, or fail with one line."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".segcli-write-test.", dir=out)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise DataError(f"--out {out}: cannot write there ({exc.strerror or exc}); choose a writable folder.") from None


def select_inputs(inputs, options: PredictOptions) -> list[InputItem]:
    """Discovered inputs of this shard; a clear error when there are none."""
    items = discover(inputs, exclude=options.out)
    if not items:
        shown = ", ".join(str(i) for i in inputs)
        raise DataError(f"No images found in {shown} (looked for {', '.join(IMAGE_EXTENSIONS)}; files under --out "
                        f"are never inputs).")
    if options.shard:
        k, n = options.shard
        items = [item for item in items if shard_of(item.rel, n) == k]
    return items


# --- the run ------------------------------------------------------------------------------------------------------
def _class_stats(mask: np.ndarray, names: list[str]) -> list[dict]:
    counts = np.bincount(mask.ravel(), minlength=len(names))
    total = max(1, mask.size)
    return [{"index": int(i), "name": names[i] if i < len(names) else f"class_{i}",
             "fraction": round(float(counts[i]) / total, 6)} for i in np.flatnonzero(counts)]


def _record(item, paths, out, status, mask, names):
    return {"input": item.rel, "status": status,
            "outputs": {k: p.relative_to(out).as_posix() for k, p in paths.items()},
            "height": int(mask.shape[0]), "width": int(mask.shape[1]), "classes": _class_stats(mask, names)}


def _write_outputs(item, image, prediction, paths, options, lut, names):
    from segcli.data.image_io import encode_jpeg, encode_png, write_atomic
    from segcli.inference.overlay import blend, colorize

    mask = prediction.mask
    if "probs" in paths:
        _save_npy_atomic(paths["probs"], prediction.probs)
    if "color" in paths:
        write_atomic(paths["color"], encode_png(colorize(mask, lut)))
    if "overlay" in paths:
        write_atomic(paths["overlay"], encode_jpeg(blend(image, mask, lut, options.alpha), options.jpeg_quality))
    write_atomic(paths["mask"], encode_png(mask))  # last: a mask on disk means the others are there too
    return _record(item, paths, options.out, "written", mask, names)


def _save_npy_atomic(path: Path, array: np.ndarray) -> None:
    import io

    from segcli.data.image_io import write_atomic

    buffer = io.BytesIO()
    np.save(buffer, array)
    write_atomic(path, buffer.getvalue())


def _read_back(item, paths, options, names):
    from segcli.data.image_io import read_mask

    return _record(item, paths, options.out, "skipped", read_mask(paths["mask"]), names)


def run_predict(inputs, source, options: PredictOptions, on_progress=None, on_warning=None,
                on_start=None) -> dict:
    """Predict every input into ``options.out``; return the summary (also written as JSON).

    ``source`` is a :class:`segcli.checkpoints.resolve.ModelSource` or anything
    :func:`segcli.checkpoints.resolve.resolve` takes. ``on_start(total)``,
    ``on_progress(n)`` and ``on_warning(line)`` report to the caller.
    """
    from segcli.inference.predictor import Segmenter
    from segcli.checkpoints.resolve import ModelSource, resolve
    from segcli.inference.overlay import palette_lut

    started = time.perf_counter()
    options.out = Path(options.out)
    if not 0.0 <= options.alpha <= 1.0:
        raise UsageError(f"--alpha {options.alpha}: must be within 0..1.")
    check_writable(options.out)
    items = select_inputs(inputs, options)
    if not isinstance(source, ModelSource):
        source = resolve(source)
    seg = Segmenter(source.model, mode=options.mode, batch_size=options.batch_size, input_size=source.input_size,
                    tile=options.tile, stride=options.stride, max_side=options.max_side)
    names = source.class_names
    lut = palette_lut([c["color"] for c in source.classes])
    warn = on_warning or (lambda line: None)
    progress = on_progress or (lambda n: None)
    if on_start:
        on_start(len(items))

    todo, finished = [], []
    for item in items:
        paths = outputs_of(item, options)
        done = not options.overwrite and all(p.is_file() for p in paths.values())
        (finished if done else todo).append((item, paths))
    state = _Run()
    workers = options.workers or min(4, os.cpu_count() or 1)

    def fail(item, exc):
        message = str(exc) if isinstance(exc, DataError) else f"{item.path}: {type(exc).__name__}: {exc}"
        state.failures.append({"input": item.rel, "path": str(item.path), "error": message})
        warn(f"skipped {message}")
        if options.strict:
            state.stop = True

    def load(item):
        from segcli.data.image_io import read_image

        image = read_image(item.path)
        return image, seg.prepare(image)

    loop_start = time.perf_counter()
    skipped = 0
    with ThreadPoolExecutor(workers, thread_name_prefix="segcli-read") as readers, \
            ThreadPoolExecutor(workers, thread_name_prefix="segcli-write") as writers:
        # Finished by an earlier run: report them from their masks, recompute nothing.
        for (item, paths), future in [(e, readers.submit(_read_back, *e, options, names)) for e in finished]:
            try:
                state.images.append(future.result())
                skipped += 1
                progress(1)
            except DataError:  # replaced by something unreadable since: predict it again
                todo.append((item, paths))
        written = _pipeline(todo, seg, options, readers, writers, load, lut, names, state, fail, progress)
    loop_seconds = time.perf_counter() - loop_start

    summary = {
        "model": source.name, "mode": options.mode, "out": str(options.out),
        "shard": f"{options.shard[0]}/{options.shard[1]}" if options.shard else None,
        "count": {"inputs": len(items), "written": written, "skipped": skipped, "failed": len(state.failures),
                  "not_processed": len(items) - written - skipped - len(state.failures)},
        "stopped_early": state.stop,
        "img_per_s": round(written / loop_seconds, 3) if written and loop_seconds > 0 else None,
        "total_seconds": round(time.perf_counter() - started, 3),
        "failures": state.failures,
        "images": sorted(state.images, key=lambda r: r["input"]),
    }
    summary["summary_file"] = str(_write_summary(summary, options))
    return summary


def _write_summary(summary: dict, options: PredictOptions) -> Path:
    import json

    from segcli.data.image_io import write_atomic

    name = f"summary.shard-{options.shard[0]}-of-{options.shard[1]}.json" if options.shard else "summary.json"
    path = options.out / name
    summary["summary_file"] = str(path)
    write_atomic(path, (json.dumps(summary, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))
    return path


def _pipeline(todo, seg, options, readers, writers, load, lut, names, state, fail, progress) -> int:
    """Read ahead in threads, run the network in batches, write in threads; returns images written."""
    window = options.batch_size * 2 + (options.workers or 4)
    queue = iter(todo)
    reading: deque[tuple] = deque()
    writing: deque[tuple] = deque()
    written = 0

    def fill():
        while len(reading) < window and not state.stop:
            nxt = next(queue, None)
            if nxt is None:
                return
            reading.append((nxt, readers.submit(load, nxt[0])))

    def drain(limit):
        nonlocal written
        while len(writing) > limit:
            (item, _), future = writing.popleft()
            try:
                state.images.append(future.result())
                written += 1
            except Exception as exc:  # noqa: BLE001 - an unwritable file fails this input, not the run
                fail(item, exc if isinstance(exc, DataError) else DataError(f"{item.path}: could not write outputs "
                                                                             f"({exc})."))
            progress(1)

    fill()
    while reading and not state.stop:
        batch = []
        while reading and len(batch) < options.batch_size and not state.stop:
            entry, future = reading.popleft()
            try:
                image, prepared = future.result()
                batch.append((entry, image, prepared))
            except Exception as exc:  # noqa: BLE001 - any unreadable input is reported and skipped
                fail(entry[0], exc)
                progress(1)
            fill()
        if not batch:
            continue
        predictions = seg.run([b[2] for b in batch], probs=options.save_probs)
        for (entry, image, _), prediction in zip(batch, predictions):
            item, paths = entry
            future: Future = writers.submit(_write_outputs, item, image, prediction, paths, options, lut, names)
            writing.append((entry, future))
        drain(window)
        fill()
    for _, future in reading:
        future.cancel()
    drain(0)
    return written
