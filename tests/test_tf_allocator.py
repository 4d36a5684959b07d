"""segcli gives TensorFlow its BFC CPU allocator unless the user chose otherwise (see segcli/tf_allocator.py).

Checked in fresh processes, where TensorFlow's allocator is really built. The independent witness is
TensorFlow itself: only a BFC allocator (TensorFlow's own, or the oneDNN one it uses by default on CPUs with
AVX-512 VNNI/BF16 or AMX) keeps the statistics that ``tf.config.experimental.get_memory_info`` reads, and
``malloc`` does not.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

WITNESS = """
import tensorflow as tf
from tensorflow.python.util import _pywrap_util_port
x = tf.ones((512, 512)) * 2
try:
    stats = "stats" if tf.config.experimental.get_memory_info("CPU:0")["peak"] > 0 else "no peak"
except ValueError as error:
    stats = str(error)
print(stats, "|", "onednn" if _pywrap_util_port.IsMklEnabled() else "no onednn")
"""
WITH_SEGCLI = "import segcli\nfrom segcli.bench.sysinfo import framework_info\n" + WITNESS + \
    "print(framework_info()['tf_allocator'])\n"
NO_STATS = "Allocator stats not available for device 'CPU:0'"


def run(script: str, setting: str | None) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k != "TF_CPU_ALLOCATOR_USE_BFC"}
    if setting is not None:
        env["TF_CPU_ALLOCATOR_USE_BFC"] = setting
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-2:]


def test_importing_segcli_first_gives_tensorflow_a_bfc_allocator_and_says_so():
    witness, name = run(WITH_SEGCLI, None)
    assert witness.startswith("stats |")
    assert name == "bfc"


def test_a_user_setting_of_false_gives_tensorflow_its_own_default_back_and_names_it():
    tensorflow_alone = run(WITNESS, None)[-1]
    witness, name = run(WITH_SEGCLI, "false")
    assert witness == tensorflow_alone
    expected = {"stats | onednn": "onednn-bfc", f"{NO_STATS} | no onednn": "malloc"}
    assert name == expected[witness]


@pytest.mark.parametrize("onednn, expected", [("0", f"{NO_STATS} | no onednn"), ("1", "stats | onednn")])
def test_tensorflows_own_default_follows_its_onednn_switch(onednn, expected, monkeypatch):
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", onednn)
    assert run(WITNESS, None)[-1] == expected
