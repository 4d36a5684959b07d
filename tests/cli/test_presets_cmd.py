"""`segcli presets`: the table, its JSON, and a start-up that never imports TensorFlow."""

from __future__ import annotations

import json
import subprocess
import sys

from typer.testing import CliRunner

from segcli.cli.app import app
from segcli.models.registry import PRESETS


def test_json_lists_every_preset_with_computed_counts():
    result = CliRunner().invoke(app, ["presets", "--json"])
    assert result.exit_code == 0
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert set(rows) == set(PRESETS)
    assert rows["mit_b0"]["parameters"] == 3_319_392
    assert rows["segformer_b2_ade20k_512"]["num_classes"] == 150
    assert rows["segformer_b2_ade20k_512"]["projection_filters"] == 768
    assert rows["segformer_b5_ade20k_640"]["input_size"] == [640, 640]
    assert rows["segformer_b0_cityscapes_1024"]["weights"] == "hf://nvidia/segformer-b0-finetuned-cityscapes-1024-1024"
    assert "non-commercial" in rows["mit_b3_imagenet"]["licence"]
    assert rows["mit_b0_imagenet"]["weights_cached"] is False


def test_table_names_every_kind_and_the_licence():
    result = CliRunner().invoke(app, ["presets"])
    assert result.exit_code == 0
    for text in ("segformer_b0_ade20k_512", "backbone", "segmenter", "checkpoint", "3.32M", "27.46M",
                 "non-commercial research or evaluation use only"):
        assert text in result.stdout


def _run(code):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)


def test_presets_help_and_version_do_not_import_tensorflow():
    code = ("import sys\nimport segcli, segcli.models, segcli.models.registry\nfrom typer.testing import CliRunner\n"
            "from segcli.cli.app import app\n"
            "r1 = CliRunner().invoke(app, ['--help'])\nr2 = CliRunner().invoke(app, ['presets'])\n"
            "r3 = CliRunner().invoke(app, ['--version'])\n"
            "assert r1.exit_code == r2.exit_code == r3.exit_code == 0, r3.output\n"
            "assert r3.output.startswith('segcli 0.'), r3.output\n"
            "print(sorted(m for m in ('tensorflow', 'keras', 'cv2', 'torch') if m in sys.modules))")
    result = _run(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_console_script_runs_presets():
    result = subprocess.run([sys.executable, "-m", "segcli.cli.app", "presets", "--json"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0
    assert len(json.loads(result.stdout)) == len(PRESETS)
