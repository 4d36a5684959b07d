"""segcli gives TensorFlow its BFC CPU allocator unless the user chose otherwise (see segcli/tf_allocator.py).

Checked in fresh processes, where TensorFlow's allocator is really built: only the BFC allocator keeps the
statistics that ``tf.config.experimental.get_memory_info`` reads.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PROBE = """
import segcli, tensorflow as tf
x = tf.ones((512, 512)) * 2
try:
    print("bfc", tf.config.experimental.get_memory_info("CPU:0")["peak"] > 0)
except ValueError as error:
    print("default", error)
"""


def probe(setting):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPU_ALLOCATOR_USE_BFC"}
    if setting is not None:
        env["TF_CPU_ALLOCATOR_USE_BFC"] = setting
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize("setting, expected", [(None, "bfc True"),
                                               ("false", "default Allocator stats not available for device 'CPU:0'")])
def test_importing_segcli_first_gives_tensorflow_the_bfc_allocator_unless_the_user_set_it(setting, expected):
    assert probe(setting) == expected
