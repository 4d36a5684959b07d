"""Parameter counts: formula == built Keras models == transformers == the seed's table."""

from __future__ import annotations

import pytest

from segcli.cli.presets_cmd import millions
from segcli.models.mit.params import encoder_params
from segcli.models.registry import preset_params
from segcli.models.segformer.params import segmenter_params
from segcli.models.registry import ARCHITECTURES, PRESETS, SEED_MIT_ROW_CLASSES, SEGMENTER_ROW_CLASSES

# Measured with transformers' SegformerModel (REFERENCE.md).
HF_ENCODER = {"mit_b0": 3_319_392, "mit_b1": 13_151_424, "mit_b2": 24_196_288, "mit_b3": 44_072_128,
              "mit_b4": 60_842_688, "mit_b5": 81_443_008}
# keras-cv 0.9's table (the seed).
SEED = {"mit_b0": "3.32M", "mit_b1": "13.16M", "mit_b2": "24.20M", "mit_b3": "44.08M", "mit_b4": "60.85M",
        "mit_b5": "81.45M", "segformer_b0": "3.72M", "segformer_b1": "13.68M", "segformer_b2": "24.73M",
        "segformer_b3": "44.60M", "segformer_b4": "61.37M", "segformer_b5": "81.97M"}


@pytest.mark.parametrize("name", list(HF_ENCODER))
def test_encoder_formula_matches_transformers(name):
    assert encoder_params(**PRESETS[name]["arch"]) == HF_ENCODER[name]


@pytest.mark.parametrize("name", list(SEED))
def test_seed_table_at_its_rounding(name):
    arch = PRESETS[name]["arch"]
    if name.startswith("mit"):  # the seed counted a 10-way dense classifier on the encoder
        n = encoder_params(**arch) + arch["hidden_sizes"][-1] * SEED_MIT_ROW_CLASSES + SEED_MIT_ROW_CLASSES
    else:
        n = segmenter_params(arch, SEGMENTER_ROW_CLASSES, 256)
    assert millions(n) == SEED[name]


def test_ade20k_totals():
    assert millions(preset_params(PRESETS["segformer_b0_ade20k_512"])) == "3.75M"
    assert millions(preset_params(PRESETS["segformer_b2_ade20k_512"])) == "27.46M"


@pytest.mark.parametrize("name", [
    n if ARCHITECTURES[PRESETS[n]["arch_name"]]["depths"][2] < 10 else pytest.param(n, marks=pytest.mark.slow)
    for n in PRESETS])
def test_formula_matches_built_model(name):
    import keras

    from segcli.models.load import load

    model = load(name, want=PRESETS[name]["model"], num_classes=PRESETS[name].get("num_classes", SEGMENTER_ROW_CLASSES),
                 load_weights=False).model
    assert model.count_params() == preset_params(PRESETS[name])
    keras.backend.clear_session()
