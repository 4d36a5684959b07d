"""What predict writes beside the masks: the summary's class counts (counted in blocks, against one np.bincount) and
the probabilities, computed into the files they become."""

from __future__ import annotations

import numpy as np
import pytest

from segcli.inference.image_outputs import pixel_counts


@pytest.mark.parametrize("shape, dtype, high", [((3000, 700), np.uint8, 150), ((1, 5), np.uint8, 3),
                                                ((2100, 513), np.uint16, 300), ((0, 4), np.uint8, 2)])
def test_counts_equal_one_bincount(shape, dtype, high):
    mask = np.random.default_rng(1).integers(0, high, shape).astype(dtype)
    expected = np.bincount(mask.ravel(), minlength=high - 1 if high > 2 else 2)
    got = pixel_counts(mask, minlength=high - 1 if high > 2 else 2)  # values past minlength widen it, as bincount
    assert got.dtype == np.int64 and got.tolist() == expected.tolist()


def test_counting_a_big_mask_makes_no_int64_copy_of_it():
    import tracemalloc

    mask = np.zeros((4000, 4000), np.uint8)
    tracemalloc.start()
    pixel_counts(mask, minlength=150)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < mask.size  # np.bincount alone would take 8 bytes a pixel


def test_saved_probabilities_are_computed_into_their_files_and_equal_the_in_memory_ones(tmp_path):
    """predict --save-probs writes each image's probabilities through a memory-mapped file that is renamed into
    place: the saved arrays equal a Predictor's in-memory ones, and no temporary file is left."""
    import cv2

    from segcli.classes import ClassTable
    from segcli.data.image_io import read_image
    from segcli.inference.predict import PredictOptions, run_predict
    from segcli.inference.predictor import Predictor
    from segcli.inference.runners import OpenedModel
    from segcli.models.load import create_segmenter

    images = tmp_path / "in"
    (images / "sub").mkdir(parents=True)
    rng = np.random.default_rng(2)
    for name, (h, w) in {"a.png": (40, 70), "sub/b.png": (64, 33)}.items():
        cv2.imwrite(str(images / name), cv2.resize(rng.integers(0, 255, (6, 6, 3), dtype=np.uint8), (w, h)))
    model = create_segmenter("segformer_test", num_classes=3)
    source = OpenedModel(model, ClassTable.from_names([]).complete(3), "test", None)
    for mode in ("whole", "slide"):
        out = tmp_path / mode
        summary = run_predict([str(images)], source, PredictOptions(out=out, save_probs=True, mode=mode))
        assert summary["count"]["written"] == 2
        reference = Predictor(model, mode=mode, batch_size=1)
        for stem in ("a", "sub/b"):
            expected = reference.predict([read_image(images / f"{stem}.png")], probs=True)[0].probs
            saved = np.load(out / f"{stem}_probs.npy")
            assert saved.dtype == np.float16 and np.array_equal(saved, expected)
        assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]


def test_a_probabilities_file_dropped_unsaved_is_deleted(tmp_path):
    import gc

    from segcli.inference.probs_file import on_disk

    probs = on_disk(tmp_path)((50, 40, 3))
    assert [p.name.startswith(".probs.") for p in tmp_path.iterdir()] == [True]
    del probs
    gc.collect()
    assert list(tmp_path.iterdir()) == []
