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

#: Where each head layer's variables live since 0.2. In 0.1 files they sit in top-level groups under Keras's
#: automatic names; each group's ``vars`` carries the layer's own name as an attribute, which is what is matched.
HEAD_GROUPS = {
    "linear_c0": "layers/seg_former_head/linear_c/dense",
    "linear_c1": "layers/seg_former_head/linear_c/dense_1",
    "linear_c2": "layers/seg_former_head/linear_c/dense_2",
    "linear_c3": "layers/seg_former_head/linear_c/dense_3",
    "linear_fuse": "layers/seg_former_head/linear_fuse",
    "fuse_norm": "layers/seg_former_head/fuse_norm",
    "classifier": "layers/seg_former_head/classifier",
}
KERAS_WEIGHTS = "model.weights.h5"


def _legacy_groups(f) -> dict:
    """{top-level group: new path} for the 0.1 head groups of an open h5 file."""
    if "layers" not in f or "layers/seg_former_head" in f:
        return {}
    found = {}
    for key in f["layers"]:
        variables = f.get(f"layers/{key}/vars")
        name = variables.attrs.get("name") if variables is not None else None
        name = name.decode() if isinstance(name, bytes) else name
        if name in HEAD_GROUPS:
            found[f"layers/{key}"] = HEAD_GROUPS[name]
    return found


def is_legacy(h5_path) -> bool:
    """True for a segcli 0.1 SegFormer weights file (head groups at the top level)."""
    import h5py

    with h5py.File(h5_path, "r") as f:
        return bool(_legacy_groups(f))


def _rename_groups(h5_path: Path) -> None:
    import h5py

    with h5py.File(h5_path, "r+") as f:
        moves = list(_legacy_groups(f).items())
        for i, (old, _) in enumerate(moves):  # two steps: an old name may equal another group's new leaf name
            f.move(old, f"layers/.segcli_legacy_{i}")
        for i, (_, new) in enumerate(moves):
            f.move(f"layers/.segcli_legacy_{i}", new)


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
