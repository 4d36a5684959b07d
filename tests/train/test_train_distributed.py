"""tf.distribute on the CPU: MirroredStrategy over 2 logical CPUs, and 2 MultiWorker processes on 127.0.0.1."""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys

import pytest

from tests.data.tiny_dataset import make_easy

ARGS = ["--preset", "segformer_test", "--image-size", "64", "--epochs", "2", "--batch-size", "4", "--lr", "2e-3",
        "--json"]

# Split the one CPU into two logical devices, then run the real CLI in this process.
TWO_CPUS = """
import sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from segcli.cli.app import app
app(sys.argv[1:], prog_name="segcli")
"""


def _env(**extra):
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **extra}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_mirrored_over_two_logical_cpus(tmp_path):
    data = make_easy(tmp_path / "data", n=12, size=64)
    out = tmp_path / "run"
    result = subprocess.run([sys.executable, "-c", TWO_CPUS, "train", str(data), *ARGS, "--strategy", "mirrored",
                             "--out", str(out)], env=_env(), capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr
    resolved = json.loads((out / "config.json").read_text())["settings"]["resolved"]
    assert (resolved["strategy"], resolved["replicas"]) == ("mirrored", 2)
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert float(rows[1]["train_loss"]) < float(rows[0]["train_loss"])


@pytest.mark.slow
def test_two_workers_train_one_run_and_only_the_chief_writes(tmp_path):
    data = make_easy(tmp_path / "data", n=12, size=64)
    out = tmp_path / "run"
    workers = [f"127.0.0.1:{_free_port()}", f"127.0.0.1:{_free_port()}"]
    procs = []
    for index in range(2):
        tf_config = json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "segcli.cli.app", "train", str(data), *ARGS, "--strategy", "multiworker",
             "--out", str(out)], env=_env(TF_CONFIG=tf_config), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True))
    try:
        outputs = [p.communicate(timeout=900) for p in procs]
    finally:
        for p in procs:
            p.kill()
    for p, (stdout, stderr) in zip(procs, outputs):
        assert p.returncode == 0, stderr
    chief, other = (json.loads(stdout) for stdout, _ in outputs)
    # one run: both workers saw the same all-reduced losses, epoch by epoch
    assert [r["train_loss"] for r in chief["history"]] == pytest.approx([r["train_loss"] for r in other["history"]])
    resolved = json.loads((out / "config.json").read_text())["settings"]["resolved"]
    assert (resolved["strategy"], resolved["replicas"], resolved["workers"]) == ("multiworker", 2, 2)
    assert [int(r["epoch"]) for r in csv.DictReader((out / "metrics.csv").open())] == [1, 2]
    assert "epoch 1:" in outputs[0][1] and "epoch 1:" not in outputs[1][1]  # only the chief reports progress
