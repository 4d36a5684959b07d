"""A checkpoint's fingerprint: the same files give the same one, any changed byte another; no files, none."""

from __future__ import annotations

import shutil
from pathlib import Path

from segcli.checkpoints.fingerprint import checkpoint_fingerprint
from segcli.checkpoints.resolve import resolve

DEMO = Path(__file__).resolve().parents[2] / "samples" / "demo_model"


def test_a_copied_weights_folder_has_the_same_fingerprint_and_a_changed_file_another(tmp_path):
    copy = Path(shutil.copytree(DEMO, tmp_path / "demo"))
    assert checkpoint_fingerprint(resolve(str(copy))) == checkpoint_fingerprint(resolve(str(DEMO)))
    weights = copy / "model.weights.h5"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    assert checkpoint_fingerprint(resolve(str(copy))) != checkpoint_fingerprint(resolve(str(DEMO)))


def test_any_file_of_the_folder_counts(tmp_path):
    copy = Path(shutil.copytree(DEMO, tmp_path / "demo"))
    before = checkpoint_fingerprint(resolve(str(copy)))
    (copy / "classes.json").write_text('{"classes": ["a"]}\n')
    assert checkpoint_fingerprint(resolve(str(copy))) != before


def test_presets_without_weights_and_exported_models_have_none(tmp_path):
    exported = tmp_path / "model.onnx"
    exported.write_bytes(b"onnx")
    assert checkpoint_fingerprint(resolve("segformer_test")) is None
    assert checkpoint_fingerprint(resolve(str(exported))) is None
