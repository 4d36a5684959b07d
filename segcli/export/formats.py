"""The export formats, one module each: ``segcli/export/<name>_format.py`` defining ``FORMAT``.

Adding a format is adding one such file. Its ``FORMAT`` is an :class:`ExportFormat`
that says what the format is called, what its output looks like (a file with a
suffix, or a folder), how to write it from a :class:`~segcli.models.segformer.graph.SegFormerGraph`,
how to open it for inference (:meth:`ExportFormat.open_runner`) and which parity
rule its check uses. The registry imports only those small modules (their
runtimes load on use), so listing formats stays cheap.

A runner has ``predict_logits(uint8 (B, H, W, 3)) -> float32 (B, h, w, C)``,
``input_size`` ((H, W) or None), ``num_classes``, ``classes`` (``[{"name", "color"}]``)
and ``logits_stride`` (4: logits at 1/4 of the input size; 1 for full size).

>>> names()
('savedmodel', 'onnx', 'tflite', 'openvino')
>>> get_format("onnx").suffix, format_for_path("model.xml").name
('.onnx', 'openvino')
>>> get_format("caffe")
Traceback (most recent call last):
...
segcli.errors.UsageError: format caffe: use one of savedmodel, onnx, tflite, openvino.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
from dataclasses import dataclass, field
from fnmatch import fnmatch
from functools import lru_cache
from pathlib import Path

import numpy as np

from segcli.errors import CheckpointError, SegcliError, UsageError

PRECISIONS = ("fp32", "bf16", "int8")
#: Where a folder export keeps segcli's metadata (classes, input size, parity report).
METADATA_FILE = "segcli.json"


class ExportError(SegcliError):
    """An export was written but failed its parity check or accuracy budget, or could not be converted."""


@dataclass(frozen=True)
class Rule:
    """A parity rule: ``max_abs`` (max |Δ| of the logits <= bound) or ``agreement`` (mask agreement >= bound)."""

    kind: str
    bound: float

    def passed(self, max_abs_diff: float, agreement: float) -> bool:
        return max_abs_diff <= self.bound if self.kind == "max_abs" else agreement >= self.bound

    def __str__(self) -> str:
        return f"max |Δ| <= {self.bound:g}" if self.kind == "max_abs" else f"mask agreement >= {self.bound:.0%}"


#: float32 artefacts: their logits match the Keras model's to float32 rounding.
FLOAT_RULE = Rule("max_abs", 1e-4)
#: Lower precisions (quantized weights, bf16 compute) must keep the masks.
AGREEMENT_RULE = Rule("agreement", 0.99)


@dataclass
class ExportOptions:
    """What an export was asked for, beyond the model and the format. Formats refuse what they cannot do."""

    logits: bool = False  # SavedModel: serving_default returns logits
    quantize: str | None = None  # TFLite: float16 | int8 (dynamic range)
    precision: str = "fp32"  # OpenVINO: fp32 | bf16 | int8
    calibration: np.ndarray | None = None  # int8: RGB uint8 images (N, H, W, 3)
    threads: int | None = None
    extra: dict = field(default_factory=dict)

    def lowered(self) -> bool:
        return bool(self.quantize) or self.precision != "fp32"


class ExportFormat:
    """One export format. Subclasses set the class attributes and implement :meth:`write` and :meth:`open_runner`."""

    name = ""
    title = ""  # the format's name in messages: "ONNX"
    suffix: str | None = None  # a file format's suffix; None: the export is a folder
    folder_file: str | None = None  # the file inside a folder export that names the format (model.xml)
    #: A folder export's entries besides segcli.json, as patterns of paths inside it (folders end with "/").
    writes: tuple = ()
    order = 100  # place in listings
    logits_stride = 4

    def require(self) -> None:
        """Raise MissingDependencyError when the format's converter or runtime is not installed."""

    def check(self, options: ExportOptions) -> None:
        """Raise UsageError for options this format cannot honour."""
        if options.logits:
            raise UsageError(f"logits=True applies to savedmodel; {self.name} exports return logits at 1/4 size.")
        if options.quantize:
            raise UsageError(f"quantize {options.quantize}: only tflite exports take it.")
        if options.precision != "fp32":
            raise UsageError(f"precision {options.precision}: {self.name} exports are fp32; use openvino.")

    def rule(self, options: ExportOptions) -> Rule:
        return AGREEMENT_RULE if options.lowered() else FLOAT_RULE

    def write(self, graph, path: Path, options: ExportOptions, metadata: dict) -> None:
        raise NotImplementedError

    def open_runner(self, path, threads: int | None = None, **kwargs):
        raise NotImplementedError

    def runtime(self, runner) -> str:
        """The runtime and version that ran ``runner``, for the report."""
        return getattr(runner, "runtime", self.name)

    def measure(self, path: Path, images: np.ndarray, options: ExportOptions):
        """(logits, full-size masks, runtime) of the written artefact on ``images``, in its own runtime."""
        runner = self.open_runner(path, options.threads, precision=options.precision)
        logits = runner.predict_logits(images)
        return logits, masks_of(upsample(logits, images.shape[1:3])), self.runtime(runner)

    def finish(self, tmp: Path, out: Path, metadata: dict) -> None:
        """Put the checked artefact in place (folders get ``segcli.json``); replaces ``out`` last."""
        import os
        import shutil

        if tmp.is_dir():
            (tmp / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n")
        if out.is_dir():
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            out.rename(old)
            tmp.rename(out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)

    @property
    def a_title(self) -> str:
        """The format's name with its article, for messages: "an ONNX", "a TFLite"."""
        title = self.title or self.name
        return f"{'an' if title[:1].upper() in 'AEIOU' else 'a'} {title}"

    def foreign(self, path: Path) -> str | None:
        """What makes the existing ``path`` more than an earlier export of this format (None: it is one)."""
        if self.suffix:
            return f"is a folder, not {self.a_title} file" if path.is_dir() else None
        if not path.is_dir():
            return f"is a file, not {self.a_title} export folder"
        entry = _foreign_entry(path, self.writes + (METADATA_FILE,))
        return f"holds {entry}, which {self.a_title} export does not write" if entry else None

    def leftovers(self, tmp: Path) -> list:
        """Files besides ``tmp`` that a failed export must remove."""
        return []

    def matches(self, path: Path) -> bool:
        if self.suffix:
            return path.suffix.lower() == self.suffix
        return bool(self.folder_file) and (path.name == self.folder_file or (path / self.folder_file).is_file())


def _foreign_entry(folder: Path, patterns: tuple, prefix: str = "") -> str | None:
    """The first entry under ``folder`` (sorted, top level first; a folder ends with "/") that no pattern allows.

    Symlinks are never allowed: an export writes none.
    """
    for entry in sorted(folder.iterdir()):
        name = prefix + entry.name + ("/" if entry.is_dir() else "")
        if entry.is_symlink() or not any(fnmatch(name, p) for p in patterns):
            return name
        found = _foreign_entry(entry, patterns, name) if entry.is_dir() else None
        if found:
            return found
    return None


@lru_cache(maxsize=None)
def _registry() -> dict:
    import segcli.export as package

    found = []
    for info in pkgutil.iter_modules(package.__path__):
        if info.name.endswith("_format"):
            module = importlib.import_module(f"segcli.export.{info.name}")
            found.append(module.FORMAT)
    return {f.name: f for f in sorted(found, key=lambda f: (f.order, f.name))}


def names() -> tuple:
    """The format names, in listing order."""
    return tuple(_registry())


def get_format(name) -> ExportFormat:
    """The format called ``name`` (case-insensitive); UsageError listing the valid names."""
    fmt = _registry().get(str(name).lower())
    if fmt is None:
        raise UsageError(f"format {name}: use one of {', '.join(names())}.")
    return fmt


def format_for_path(path) -> ExportFormat:
    """The format of an exported file (by suffix) or folder (by the file it holds); CheckpointError otherwise."""
    path = Path(path)
    for fmt in _registry().values():
        if fmt.matches(path):
            return fmt
    suffixes = [f.suffix or f"{f.folder_file}" for f in _registry().values() if f.suffix or f.folder_file]
    raise CheckpointError(f"{path}: not an exported model segcli can run ({', '.join(suffixes)}).")


def open_runner(path, threads: int | None = None, **kwargs):
    """A runner for an exported file or folder, by its format."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such file.")
    return format_for_path(path).open_runner(path, threads, **kwargs)


# --- shared by the formats' runners ------------------------------------------------------------------------------
def upsample(logits: np.ndarray, size) -> np.ndarray:
    import tensorflow as tf

    return tf.image.resize(logits, size, method="bilinear").numpy()


def masks_of(logits: np.ndarray) -> np.ndarray:
    """Class indices from logits; one-class logits are thresholded at 0."""
    return (logits[..., 0] > 0).astype(np.int32) if logits.shape[-1] == 1 else logits.argmax(-1).astype(np.int32)


def sidecar_path(path: Path) -> Path:
    """Where the metadata of an exported file lives beside it: ``model.tflite`` -> ``model.tflite.json``."""
    return Path(f"{path}.json")


def read_json(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: unreadable export metadata ({exc}); delete it or export again.") from None


class Runner:
    """Metadata and input checks shared by the exported-file runners."""

    logits_stride = 4
    runtime = ""
    #: One-line warnings about running this file on this machine (predict and eval show them).
    warnings: tuple = ()

    def _init_meta(self, meta: dict, num_classes: int | None):
        self.metadata = meta
        size = meta.get("input_size")
        self.input_size = tuple(int(s) for s in size) if size else None
        self.classes = list(meta.get("classes") or [])
        self.num_classes = int(meta.get("num_classes") or num_classes or len(self.classes) or 0)
        self.logits_stride = int(meta.get("logits_stride", self.logits_stride))

    @staticmethod
    def _check(images) -> np.ndarray:
        images = np.asarray(images)
        if images.ndim != 4 or images.shape[-1] != 3:
            raise UsageError(f"expected a (B, H, W, 3) image batch, got shape {images.shape}")
        return np.ascontiguousarray(images, dtype=np.uint8)
