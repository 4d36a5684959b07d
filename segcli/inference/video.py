"""Video input for predict: a mask per frame, an overlay video and a summary, resumable.

For ``clip.mp4`` (anything OpenCV's FFmpeg backend reads; see
:data:`VIDEO_EXTENSIONS`) under ``out``:

- ``clip/000001.png`` ...: the class-index mask of each predicted frame, named
  by its 1-based frame number in the source (with ``every=3``: 000001,
  000004, ...), so a run with another ``every`` reuses what matches;
- ``clip_overlay.mp4``: the predicted frames blended with the class colours,
  ``mp4v``, at the source frame rate divided by ``every`` (the same duration).
  It is written under a hidden temporary name and renamed at the end, so it is
  either complete or absent;
- a summary (frames, fps, written, skipped, class fractions) in the run's
  ``summary.json`` under ``"videos"``.

Frame masks that exist are not recomputed (the overlay is rebuilt from them),
so a killed run finishes by running it again. ``smooth=A`` (0 <= A < 1)
averages the quarter-resolution logits over time before upsampling,
``ema = A * ema + (1 - A) * logits``, against flicker; a resumed run first
refolds the up to :func:`warmup_frames` frames before the first missing mask
(their weight left out is below 1e-3), so its masks match an uninterrupted run's.

A video that cannot be opened fails with one line; one that ends before the
frame count its header gives (truncated, damaged) gives one warning line and
its readable frames. FFmpeg's and OpenCV's own log lines about it are silenced.

>>> is_video("clips/a.MP4"), is_video("a.png"), warmup_frames(0.5), warmup_frames(0.0)
(True, False, 10, 0)
"""

from __future__ import annotations

import math
import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from segcli.errors import DataError, UsageError
from segcli.inference.image_outputs import class_fractions, pixel_counts
from segcli.inference.readahead import read_ahead

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")
OVERLAY_SUFFIX = "_overlay.mp4"
FOURCC = "mp4v"
#: Weight of the state a resumed smoothing run cannot see, at most.
WARMUP_TOLERANCE = 1e-3
MAX_WARMUP = 200


def is_video(path) -> bool:
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def warmup_frames(smooth: float) -> int:
    """Frames to refold before a missing mask so that the unseen earlier state weighs below 1e-3."""
    if smooth <= 0:
        return 0
    return min(MAX_WARMUP, math.ceil(math.log(WARMUP_TOLERANCE) / math.log(smooth)))


def check_video_options(every: int, smooth: float) -> None:
    if int(every) < 1:
        raise UsageError(f"every {every}: must be at least 1 (1 = every frame).")
    if not 0.0 <= float(smooth) < 1.0:
        raise UsageError(f"smooth {smooth}: must be within 0 (off) and 1 (exclusive); 0.5 to 0.8 suits most clips.")


@dataclass
class Frame:
    index: int  # 0-based in the source
    rgb: np.ndarray
    done: bool


@dataclass
class _Reader:
    """Sequential frames of an opened capture, every ``every``-th one decoded; counts what it read."""

    cap: object
    every: int
    done: object  # index -> whether its mask exists
    read: int = 0

    def __iter__(self):
        import cv2

        index = 0
        while True:
            if index % self.every:
                if not self.cap.grab():
                    return
            else:
                ok, bgr = self.cap.read()
                if not ok:
                    return
                yield Frame(index, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), self.done(index))
            index += 1
            self.read = index


@dataclass
class _Stats:
    written: int = 0
    skipped: int = 0
    counts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def add(self, mask: np.ndarray, num_classes: int) -> None:
        counts = pixel_counts(mask, num_classes)
        if self.counts.size < counts.size:
            self.counts = np.pad(self.counts, (0, counts.size - self.counts.size))
        self.counts[:counts.size] += counts


def open_video(path: Path):
    """(capture, fps, frame count or 0, (width, height)); DataError when FFmpeg cannot read it."""
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # FFmpeg's own lines would break "one warning line"
    import cv2

    if not path.is_file():
        raise DataError(f"{path}: no such video file.")
    from cv2.utils import logging as cv_logging

    level = cv_logging.getLogLevel()
    cv_logging.setLogLevel(cv_logging.LOG_LEVEL_ERROR)  # not "[ WARN ] ... can't be used to capture by name"
    try:
        cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    finally:
        cv_logging.setLogLevel(level)
    ok = cap.isOpened()
    if ok:
        width, height = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        ok = width > 0 and height > 0
    if not ok:
        cap.release()
        raise DataError(f"{path}: not a readable video (FFmpeg cannot open it: truncated, damaged or not a video); "
                        f"replace it or leave it out.")
    fps = cap.get(cv2.CAP_PROP_FPS)
    fps = fps if fps and math.isfinite(fps) and fps > 0 else 25.0
    count = cap.get(cv2.CAP_PROP_FRAME_COUNT)
    count = int(count) if count and math.isfinite(count) and count > 0 else 0
    return cap, fps, count, (width, height)


class _OverlayVideo:
    """An mp4v writer to a hidden temporary name in ``target``'s folder, renamed to ``target`` by :meth:`commit`."""

    def __init__(self, target: Path, fps: float, size):
        import cv2

        for stale in target.parent.glob(f".{target.stem}.*.tmp.mp4"):  # left by a killed run
            stale.unlink(missing_ok=True)
        self.target = target
        self.tmp = target.parent / f".{target.stem}.{os.getpid()}.tmp.mp4"
        self.writer = cv2.VideoWriter(str(self.tmp), cv2.VideoWriter_fourcc(*FOURCC), fps, tuple(size))
        if not self.writer.isOpened():
            self.tmp.unlink(missing_ok=True)
            raise DataError(f"{target}: cannot write an {FOURCC} video there; check the folder and OpenCV's FFmpeg.")

    def write(self, rgb: np.ndarray) -> None:
        import cv2

        self.writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))

    def commit(self) -> None:
        self.writer.release()
        os.chmod(self.tmp, 0o666 & ~_umask())
        os.replace(self.tmp, self.target)

    def abort(self) -> None:
        self.writer.release()
        self.tmp.unlink(missing_ok=True)


def _umask() -> int:
    from segcli.files import umask

    return umask()


class _Frames:
    """Masks for batches of frames, in order: the missing ones computed, their logits smoothed over time.

    With ``alpha`` > 0 the logits go through ``ema = alpha * ema + (1 - alpha) * logits``. Frames whose masks
    exist are not needed for themselves, but the last :func:`warmup_frames` of them are refolded before the
    next missing one, so a resumed run continues the average as an uninterrupted run would have.
    """

    def __init__(self, engine, alpha: float, batch_size: int):
        self.engine, self.alpha, self.batch_size = engine, float(alpha), int(batch_size)
        self.state, self.last = None, None
        self.warm: deque = deque(maxlen=warmup_frames(alpha))  # (index, prepared) of done frames since the last fold
        self.gap = 0  # done frames since the last fold (more than the warm-up holds: start afresh)

    def masks(self, batch) -> dict:
        """{frame index: mask} for the frames of ``batch`` ([(Frame, prepared)]) whose masks are missing."""
        compute = []  # (index, prepared, emit)
        for frame, prepared in batch:
            if frame.done:
                if self.alpha > 0:
                    self.warm.append((frame.index, prepared))
                    self.gap += 1
                continue
            if self.gap > len(self.warm):
                self.state = None
            compute += [(i, p, False) for i, p in self.warm] + [(frame.index, prepared, True)]
            self.warm.clear()
            self.gap = 0
        if not compute:
            return {}
        if self.alpha <= 0:
            predictions = self.engine.run([p for _, p, _ in compute])
            return {i: pred.mask for (i, _, _), pred in zip(compute, predictions)}
        masks = {}
        for start in range(0, len(compute), self.batch_size):  # warm-up frames too: a batch at a time
            chunk = compute[start:start + self.batch_size]
            for (i, p, emit), values in zip(chunk, self.engine.logits([p for _, p, _ in chunk])):
                smoothed = self._fold(i, values)
                if emit:
                    masks[i] = self.engine.finish(smoothed, p.shape).mask
        return masks

    def _fold(self, index: int, logits: np.ndarray) -> np.ndarray:
        if self.state is None or self.last is None or index < self.last:
            self.state = np.array(logits, np.float32)
        else:
            self.state = self.alpha * self.state + (1.0 - self.alpha) * logits
        self.last = index
        return self.state


@dataclass
class VideoInput:
    path: Path
    rel: str  # the file name, the key for sharding and the summary
    stem: str  # output name: <stem>/000001.png, <stem>_overlay.mp4


def split_inputs(inputs) -> tuple[list[VideoInput], list]:
    """(videos, everything else): an input is a video when it names a file with a video extension."""
    videos, others, stems = [], [], {}
    for spec in inputs:
        path = Path(str(spec)).expanduser()
        if not is_video(path) or any(c in str(spec) for c in "*?["):
            others.append(spec)
            continue
        if not path.is_file():
            raise DataError(f"{spec}: no such file or folder.")
        if path.stem in stems and stems[path.stem] != path.resolve():
            raise DataError(f"{stems[path.stem]} and {path} would both write {path.stem}/ and "
                            f"{path.stem}{OVERLAY_SUFFIX}; predict them in separate runs or rename one.")
        if path.stem not in stems:
            stems[path.stem] = path.resolve()
            videos.append(VideoInput(path, path.name, path.stem))
    return videos, others


def frame_estimate(path: Path, every: int) -> int:
    """Frames a run will predict, from the header (0 when it does not say or cannot be opened)."""
    try:
        cap, _, count, _ = open_video(path)
    except DataError:
        return 0
    cap.release()
    return -(-count // every)


def run_video(video: VideoInput, engine, lut, names, options, progress=None, warn=None) -> dict:
    """Predict every ``options.every``-th frame of one video into ``options.out``; its summary.

    ``engine`` is a Predictor or a :class:`~segcli.inference.tta.TTA`; ``options``
    has ``out``, ``every``, ``smooth``, ``overlay``, ``alpha``, ``overwrite``,
    ``batch_size`` and ``workers``.
    """
    check_video_options(options.every, options.smooth)
    if options.smooth > 0 and engine.mode != "whole":
        raise UsageError(f"smooth {options.smooth}: averages whole-image logits over time; use mode 'whole'.")
    frames_dir = Path(options.out) / video.stem
    overlay_path = Path(options.out) / f"{video.stem}{OVERLAY_SUFFIX}"
    cap, fps, count, size = open_video(video.path)
    overlay = None
    try:
        reader = _Reader(cap, options.every, lambda i: not options.overwrite and _mask_path(frames_dir, i).is_file())
        if options.overlay:
            overlay = _OverlayVideo(overlay_path, fps / options.every, size)
        stats = _process(reader, engine, lut, len(names), frames_dir, overlay, options, progress or (lambda n, done_before=False: None))
        if overlay is not None:
            overlay.commit()
    except BaseException:
        if overlay is not None:
            overlay.abort()
        raise
    finally:
        cap.release()
    truncated = bool(count) and reader.read < count
    if truncated and warn:
        warn(f"{video.path}: the video ends after {reader.read} of the {count} frames its header gives (truncated "
             f"or damaged); predicted the {stats.written + stats.skipped} sampled frames that were read.")
    return {"input": video.rel, "fps": round(fps, 3), "every": options.every, "smooth": options.smooth,
            "frames": {"in_header": count, "read": reader.read, "written": stats.written, "skipped": stats.skipped},
            "truncated": truncated,
            "outputs": {"masks": f"{video.stem}/", "overlay": overlay_path.name if options.overlay else None},
            "classes": class_fractions(stats.counts, names)}


def _mask_path(frames_dir: Path, index: int) -> Path:
    return frames_dir / f"{index + 1:06d}.png"


def _write_mask(path: Path, mask: np.ndarray) -> None:
    from segcli.data.image_io import encode_png
    from segcli.files import write_atomic

    write_atomic(path, encode_png(mask))


def _process(reader, engine, lut, num_classes, frames_dir, overlay, options, progress) -> _Stats:
    """Batches of frames: masks computed (or read back), written, and every frame blended into the overlay."""
    from segcli.data.image_io import read_mask
    from segcli.inference.overlay import blend

    frames = _Frames(engine, options.smooth, options.batch_size)
    stats, writes = _Stats(), []

    def flush(batch, writers):
        masks = frames.masks(batch)
        for frame, _ in batch:
            path = _mask_path(frames_dir, frame.index)
            if frame.index in masks:
                mask = masks[frame.index]
                writes.append(writers.submit(_write_mask, path, mask))
                stats.written += 1
            else:
                mask = read_mask(path)
                if mask.shape != frame.rgb.shape[:2]:
                    raise DataError(f"{path}: is {mask.shape[1]}x{mask.shape[0]} but the video's frames are "
                                    f"{frame.rgb.shape[1]}x{frame.rgb.shape[0]}; delete {frames_dir} or overwrite.")
                stats.skipped += 1
            stats.add(mask, num_classes)
            if overlay is not None:
                overlay.write(blend(frame.rgb, mask, lut, options.alpha))
            progress(1, done_before=frame.index not in masks)

    with ThreadPoolExecutor(options.workers or 2, thread_name_prefix="segcli-write") as writers:
        batch = []
        loaded = read_ahead(reader, lambda f: engine.prepare(f.rgb), window=options.batch_size * 2 + 2,
                            workers=options.workers)
        with closing(loaded):
            for got in loaded:
                if got.error is not None:
                    raise got.error
                batch.append((got.item, got.value))
                if len(batch) == options.batch_size:
                    flush(batch, writers)
                    batch = []
        if batch:
            flush(batch, writers)
        for future in writes:
            future.result()
    return stats


def predict_videos(videos, engine, lut, names, options, progress, warn, stopped, on_failure) -> list[dict]:
    """:func:`run_video` for each video until ``stopped()``; one that cannot be read goes to ``on_failure``."""
    summaries = []
    for video in videos:
        if stopped():
            break
        try:
            summaries.append(run_video(video, engine, lut, names, options, progress, warn))
        except DataError as exc:
            on_failure(video, exc)
    return summaries
