"""Read weights that segcli 0.1 wrote, before the decode head became one layer.

segcli 0.1 built the head from loose layers in the SegFormer graph, so its weight
files (``model.weights.h5`` in weights folders and inside ``.keras`` files) keep
the head's variables at the top level, under Keras's automatic names. Since 0.2
they live under the :class:`~segcli.models.segformer.head.SegFormerHead` layer.
:func:`upgraded_weights` copies an old file with the head's groups renamed; the
backbone's groups did not change. New files are returned as they are.
"""

from __future__ import annotations

import shutil
import tempfile
import zipfile
from pathlib import Path

#: segcli 0.1 group -> 0.2 group. Keras names a functional model's layers by class in graph order:
#: linear_c0..3 were dense..dense_3, linear_fuse conv2d, the classifier conv2d_1, fuse_norm batch_normalization.
HEAD_GROUPS = {
    "layers/dense": "layers/seg_former_head/linear_c/dense",
    "layers/dense_1": "layers/seg_former_head/linear_c/dense_1",
    "layers/dense_2": "layers/seg_former_head/linear_c/dense_2",
    "layers/dense_3": "layers/seg_former_head/linear_c/dense_3",
    "layers/conv2d": "layers/seg_former_head/linear_fuse",
    "layers/conv2d_1": "layers/seg_former_head/classifier",
    "layers/batch_normalization": "layers/seg_former_head/fuse_norm",
}
KERAS_WEIGHTS = "model.weights.h5"


def is_legacy(h5_path) -> bool:
    """True for a segcli 0.1 SegFormer weights file (head groups at the top level)."""
    import h5py

    with h5py.File(h5_path, "r") as f:
        return "layers/dense" in f and "layers/seg_former_head" not in f


def _rename_groups(h5_path: Path) -> None:
    import h5py

    with h5py.File(h5_path, "r+") as f:
        for old, new in HEAD_GROUPS.items():
            if old in f:
                f.move(old, new)


def upgraded_weights(path: Path, workdir: Path) -> Path:
    """``path`` itself when it is current, else an upgraded copy in ``workdir`` (a .weights.h5 or a .keras)."""
    path = Path(path)
    if path.suffix == ".keras":
        with zipfile.ZipFile(path) as archive, tempfile.TemporaryDirectory() as tmp:
            archive.extract(KERAS_WEIGHTS, tmp)
            if not is_legacy(Path(tmp) / KERAS_WEIGHTS):
                return path
            names = archive.namelist()
            out = Path(workdir) / path.name
            _rename_groups(Path(tmp) / KERAS_WEIGHTS)
            with zipfile.ZipFile(out, "w") as new:
                for name in names:
                    data = (Path(tmp) / KERAS_WEIGHTS).read_bytes() if name == KERAS_WEIGHTS else archive.read(name)
                    new.writestr(name, data)
            return out
    if not is_legacy(path):
        return path
    out = Path(workdir) / path.name
    shutil.copyfile(path, out)
    _rename_groups(out)
    return out
