"""``segcli predict``: masks and overlays for images, folders, globs and videos; resumable and shardable.

For every input image, under ``out`` and mirroring the input tree
(:mod:`segcli.inference.inputs` finds them and names the outputs):

- ``<stem>.png``: class-index mask at the original size (uint8; uint16 above 256 classes);
- ``<stem>_overlay.jpg``: the image blended with the class colours (``alpha``);
- ``<stem>_color.png`` (``color_mask``) and ``<stem>_probs.npy`` (``save_probs``, float16 H x W x C);
- ``summary.json`` (``summary.shard-K-of-N.json`` for a shard).

Video files get a mask per frame and an overlay video (:mod:`segcli.inference.video`).
``tta`` averages flipped and rescaled views (:mod:`segcli.inference.tta`).

Every file is written to a temporary name and renamed. An input whose outputs
all exist is skipped (unless ``overwrite``), so a killed run finishes by running
it again; ``out/.segcli-predict.json`` records the model and settings that made
them, and a run with others stops before predicting
(:mod:`segcli.inference.provenance`). Files under ``out`` are never read as
inputs. Decoding and writing run in thread pools around the batched network calls.

>>> PredictOptions(out=Path("masks")).overlay  # mask and overlay by default (:mod:`segcli.inference.image_outputs`)
True
"""

from __future__ import annotations

import time
from collections import deque
from contextlib import closing
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path


from segcli.errors import DataError, UsageError, disk_full_reason
from segcli.inference.inputs import (  # noqa: F401  (find_inputs, parse_shard, shard_of: predict's public names)
    InputItem, check_writable, find_inputs, parse_shard, select_images, shard_of)
from segcli.inference.image_outputs import outputs_of, read_back, write_outputs, write_summary
from segcli.inference.readahead import default_workers, read_ahead

_ADOPTED = ("{out}: kept the existing outputs, which an older segcli wrote without recording the model and settings "
            "that made them; this run's are now recorded for them (recompute them with overwrite if they differ).")


@dataclass
class PredictOptions:
    out: Path
    mode: str = "whole"
    batch_size: int | None = None  # None: OpenedModel.default_batch_size()
    tile: int | None = None
    stride: int | None = None
    max_side: int | None = None  # whole mode's cap on the longest side (None: predictor.DEFAULT_MAX_SIDE)
    alpha: float = 0.5
    overlay: bool = True
    color_mask: bool = False
    save_probs: bool = False
    overwrite: bool = False
    strict: bool = False
    shard: tuple | None = None
    workers: int | None = None
    jpeg_quality: int = 90
    tta: object = None  # a segcli.inference.tta.TTASpec, or None
    every: int = 1  # videos: predict every N-th frame
    smooth: float = 0.0  # videos: weight of the past in the moving average of logits (0 = off)
    backend: str = "auto"  # segcli.inference.runners.BACKENDS
    precision: str = "auto"  # segcli.inference.runners.PRECISIONS


@dataclass
class _Run:
    """Mutable state of one run."""

    images: list = field(default_factory=list)
    failures: list = field(default_factory=list)
    stop: bool = False
    total: int = 0  # images and estimated video frames
    written: int = 0  # images and frames whose outputs this run wrote
    done_before: int = 0  # images and frames an earlier run finished
    dim: list = field(default_factory=list)  # (path, top) of 16-bit images holding fewer bits, which read dark


class PredictInterrupted(KeyboardInterrupt):
    """Ctrl-C while predicting: ``written`` of ``total`` images (video frames count as images) were written to
    ``out`` by this run, ``done_before`` by earlier ones; the same run again continues."""

    def __init__(self, written: int, done_before: int, total: int, out: Path):
        super().__init__(f"{written} of {total} written to {out} ({done_before} done before)")
        self.written, self.done_before, self.total, self.out = written, done_before, total, out


def select_inputs(inputs, options: PredictOptions, note=None) -> list[InputItem]:
    """Discovered image inputs of this shard; a clear error when there are none."""
    return select_images(inputs, options.out, options.shard, note)


# --- the run ------------------------------------------------------------------------------------------------------
def run_predict(inputs, source, options: PredictOptions, on_progress=None, on_warning=None,
                on_start=None, on_note=None) -> dict:
    """Predict every input into ``options.out``; return the summary (also written as JSON).

    ``inputs`` are image files, folders, globs and video files
    (:mod:`segcli.inference.video`). ``source`` is a
    :class:`segcli.inference.runners.OpenedModel` or anything
    :func:`segcli.inference.runners.open_model` takes. ``on_start(total)``,
    ``on_progress(n, done_before=False)``, ``on_warning(line)`` and ``on_note(line)`` report to the caller (a video
    frame counts as one image). A Ctrl-C while predicting raises :class:`PredictInterrupted`, which says how much
    is on disk.
    """
    from segcli.inference.out_lock import hold
    from segcli.inference.video import split_inputs

    started = time.perf_counter()
    _check_options(options)
    videos, image_inputs = split_inputs(inputs)
    items = select_inputs(image_inputs, options, on_note) if image_inputs or not videos else []
    warn = on_warning or (lambda line: None)
    if not videos and (options.every != 1 or options.smooth):
        warn(f"no input is a video, so the video options are ignored (every {options.every}, "
             f"smooth {options.smooth:g}).")
    if options.shard:
        videos = [v for v in videos if shard_of(v.rel, options.shard[1]) == options.shard[0]]
    with hold(options.out, options.shard):  # a second run into this out would compute every mask again
        return _run(items, videos, source, options, warn, on_start, on_progress, started)


def _run(items, videos, source, options: PredictOptions, warn, on_start, on_progress, started: float) -> dict:
    """run_predict's work once the inputs are known and ``options.out`` is held: the summary."""
    from segcli.inference.overlay import palette_lut
    from segcli.inference.provenance import claim, settings_of
    from segcli.inference.runners import OpenedModel, open_model
    from segcli.inference.video import frame_estimate

    if not isinstance(source, OpenedModel):
        source = open_model(source, options.backend, options.precision)
    if options.batch_size is None:
        options.batch_size = source.default_batch_size()
    seg = _engine(source, options)
    settings = settings_of(source, seg, options)
    adopted = claim(options.out, settings, options.overwrite)  # before anything is predicted or skipped
    names, lut = source.class_names, palette_lut(source.classes.colors)
    for line in source.warnings:
        warn(line)
    state = _Run(total=len(items) + sum(frame_estimate(v.path, options.every) for v in videos))
    if on_start:
        on_start(state.total)
    loop_start = time.perf_counter()
    written, skipped, video_summaries = _predict_all(items, videos, seg, options, lut, names, state, warn,
                                                     on_progress or (lambda n, done_before=False: None))
    loop_seconds = time.perf_counter() - loop_start
    if state.dim:
        from segcli.data.image_io import dim_deep_line

        warn(dim_deep_line(sorted(state.dim)))
    if adopted and (skipped or any(v["frames"]["skipped"] for v in video_summaries)):
        warn(_ADOPTED.format(out=options.out))
    written += sum(1 for v in video_summaries if v["frames"]["written"])
    skipped += sum(1 for v in video_summaries if not v["frames"]["written"])
    inputs_total = len(items) + len(videos)
    summary = {
        "model": source.name, "model_sha256": settings["model_sha256"], "engine": source.engine,
        "mode": options.mode, "batch_size": options.batch_size,
        "tta": str(options.tta) if options.tta else None,
        "out": str(options.out), "shard": f"{options.shard[0]}/{options.shard[1]}" if options.shard else None,
        "count": {"inputs": inputs_total, "written": written, "skipped": skipped, "failed": len(state.failures),
                  "not_processed": inputs_total - written - skipped - len(state.failures)},
        "stopped_early": state.stop,
        "img_per_s": round(state.written / loop_seconds, 3) if state.written and loop_seconds > 0 else None,
        "total_seconds": round(time.perf_counter() - started, 3),
        "failures": state.failures,
        "images": sorted(state.images, key=lambda r: r["input"]),
    }
    if videos:
        summary["videos"] = video_summaries
    summary["summary_file"] = str(write_summary(summary, options))
    return summary


def _predict_all(items, videos, seg, options, lut, names, state, warn, progress):
    """(images written, images skipped, video summaries); a Ctrl-C becomes :class:`PredictInterrupted`."""
    from segcli.inference.video import predict_videos

    def frame_progress(n, done_before=False):
        if done_before:
            state.done_before += n
        else:
            state.written += n
        progress(n, done_before)

    try:
        written, skipped = _predict_images(items, seg, options, lut, names, state, warn, progress)
        video_summaries = predict_videos(videos, seg, lut, names, options, frame_progress, warn, lambda: state.stop,
                                         lambda v, exc: _fail(state, options, warn, v.rel, v.path, exc))
    except KeyboardInterrupt:
        raise PredictInterrupted(state.written, state.done_before, state.total, options.out) from None
    return written, skipped, video_summaries


def _check_options(options: PredictOptions) -> None:
    """The values predict checks before it loads a model; ``out`` is created and proved writable."""
    from segcli.inference.predictor import check_mode
    from segcli.inference.video import check_video_options

    options.out = Path(options.out)
    if not 0.0 <= options.alpha <= 1.0:
        raise UsageError(f"alpha {options.alpha}: must be within 0..1.", value="alpha")
    check_mode(options.mode, options.tile, options.stride, options.max_side)
    check_video_options(options.every, options.smooth)
    check_writable(options.out)


def _engine(source, options: PredictOptions):
    """The Predictor for ``source``, wrapped for test-time augmentation when ``options.tta`` asks for it."""
    from segcli.inference.predictor import Predictor
    from segcli.inference.tta import with_tta

    seg = Predictor(source.model, mode=options.mode, batch_size=options.batch_size, input_size=source.input_size,
                    tile=options.tile, stride=options.stride, max_side=options.max_side)
    if options.save_probs:
        from segcli.inference.probs_file import on_disk

        seg.probs_buffer = on_disk(options.out)  # computed into the files they become, never held whole
    return with_tta(seg, options.tta)


def _fail(state: _Run, options: PredictOptions, warn, rel: str, path, exc) -> None:
    message = str(exc) if isinstance(exc, DataError) else f"{path}: {type(exc).__name__}: {exc}"
    state.failures.append({"input": rel, "path": str(path), "error": message})
    warn(f"skipped {message}")
    if options.strict:
        state.stop = True


def _predict_images(items, seg, options, lut, names, state, warn, progress) -> tuple[int, int]:
    """(written, skipped) for the image inputs; failures go to ``state``."""
    todo, finished = [], []
    for item in items:
        paths = outputs_of(item, options.out, options.overlay, options.color_mask, options.save_probs)
        done = not options.overwrite and all(p.is_file() for p in paths.values())
        (finished if done else todo).append((item, paths))
    workers = options.workers or default_workers()
    skipped = 0
    # Finished by an earlier run: report them from their masks, recompute nothing.
    for got in read_ahead(finished, lambda entry: read_back(*entry, options, names), workers=workers):
        if got.error is None:
            state.images.append(got.value)
            skipped += 1
            state.done_before += 1
            progress(1, done_before=True)
        elif isinstance(got.error, DataError):  # replaced by something unreadable since: predict it again
            todo.append(got.item)
        else:
            raise got.error

    def load(item):
        from segcli.data.image_io import dim_deep_image, read_image

        image = read_image(item.path, item.page)
        if top := dim_deep_image(item.path, image, item.page):
            state.dim.append((item.path, top))
        return image, seg.prepare(image)

    def fail(item, exc):
        _fail(state, options, warn, item.rel, item.path, exc)

    with ThreadPoolExecutor(workers, thread_name_prefix="segcli-write") as writers:
        written = _pipeline(todo, seg, options, writers, load, lut, names, state, fail, progress)
    return written, skipped


def _disk_full(exc: OSError, options: PredictOptions, state: _Run) -> DataError:
    done = state.written + state.done_before
    return DataError(f"out {options.out}: {disk_full_reason(exc)} after {done} of {state.total} images were done (they "
                     f"are kept); free some space, then run the same command again to go on.", value="out_dir")


def _pipeline(todo, seg, options, writers, load, lut, names, state, fail, progress) -> int:
    """Read ahead in threads, run the network in batches, write in threads; returns images written."""
    window = options.batch_size * 2 + (options.workers or 4)
    writing: deque[tuple] = deque()
    written = 0

    def drain(limit):
        nonlocal written
        while len(writing) > limit:
            (item, _), future = writing.popleft()
            try:
                state.images.append(future.result())
                written += 1
                state.written += 1
            except Exception as exc:  # noqa: BLE001 - an unwritable file fails this input, not the run
                if disk_full_reason(exc):  # ... unless no file can be written any more
                    raise _disk_full(exc, options, state) from None
                fail(item, exc if isinstance(exc, DataError) else DataError(f"{item.path}: could not write outputs "
                                                                             f"({exc})."))
            progress(1)

    def flush(batch):
        try:
            predictions = seg.run([prepared for _, _, prepared in batch], probs=options.save_probs)
        except OSError as exc:  # --save-probs reserves its files' space as the network runs
            if disk_full_reason(exc):
                raise _disk_full(exc, options, state) from None
            raise
        for (entry, image, _), prediction in zip(batch, predictions):
            item, paths = entry
            future: Future = writers.submit(write_outputs, item, image, prediction, paths, options, lut, names)
            writing.append((entry, future))
        drain(window)

    batch = []
    try:
        with closing(read_ahead(todo, lambda entry: load(entry[0]), window=window, workers=options.workers)) as loaded:
            for got in loaded:
                if got.error is not None:  # any unreadable input is reported and skipped
                    fail(got.item[0], got.error)
                    progress(1)
                    if state.stop:
                        break
                    continue
                batch.append((got.item, *got.value))
                if len(batch) == options.batch_size:
                    flush(batch)
                    batch = []
                    if state.stop:  # an unwritable output under strict
                        break
        if batch and not state.stop:
            flush(batch)
    finally:
        drain(0)  # also after a Ctrl-C: the writes already handed to the threads finish, and are counted
    return written
