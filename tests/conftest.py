"""Shared fixtures: an isolated SEGCLI_HOME per test, and --run-slow."""

from __future__ import annotations

import os
import signal

# Tests press Ctrl-C in the segcli processes they start. A shell starts a background job (`pytest ... &` in a
# script) with SIGINT ignored, and children inherit an ignored signal, so that Ctrl-C would be lost and the run go
# on to the end. A handler is not inherited: with one here, the children start with Python's usual Ctrl-C.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import pytest

import segcli  # noqa: F401,E402  before any test imports TensorFlow: the allocator segcli's users get


def pytest_addoption(parser):
    parser.addoption("--run-slow", action="store_true", help="also run tests marked slow")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="slow: pass --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def segcli_home(tmp_path_factory, monkeypatch):
    home = tmp_path_factory.mktemp("segcli_home")
    monkeypatch.setenv("SEGCLI_HOME", str(home))
    return home
