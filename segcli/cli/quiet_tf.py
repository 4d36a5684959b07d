"""Keep TensorFlow's import-time C++ log lines off the terminal.

TensorFlow 2.19+ writes lines such as ``oneDNN custom operations are on`` and
``Could not find cuda drivers`` to file descriptor 2 while it is imported, before
absl logging is initialised, so ``TF_CPP_MIN_LOG_LEVEL`` no longer hides them
(tensorflow/tensorflow#100442). A user of ``segcli predict`` should see segcli's
output, not six lines of noise.

:func:`install` adds an import hook: the first ``import tensorflow`` (direct, or
through keras) runs with fd 2 pointed at a temporary file; afterwards the known
noise lines are dropped and everything else is written back to stderr, so real
errors and warnings still show. TensorFlow is still imported only when a command
needs it, which keeps ``segcli --help`` fast.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import logging
import os
import re
import sys

#: Import-time lines that carry no information for a segcli user.
NOISE = re.compile(
    r"All log messages before absl::InitializeLog|oneDNN custom operations are on|"
    r"Could not find cuda drivers|cudart_stub|Unable to register cu(DNN|FFT|BLAS) factory|"
    r"computation placer already registered|TF-TRT Warning|This TensorFlow binary is optimized|"
    r"To enable the following instructions|rebuild TensorFlow with the appropriate compiler flags"
)


def import_quietly(name: str = "tensorflow"):
    """Import ``name`` with fd 2 captured; write back the lines that are not known noise."""
    from segcli.native_stderr import filtered

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with filtered(NOISE):
        module = importlib.import_module(name)
        # predict traces one graph per distinct image size on purpose; TF's "retracing" hint is noise there
        logging.getLogger("tensorflow").setLevel(logging.ERROR)
    return module


class _Existing(importlib.abc.Loader):
    """Hands the import system a module that :func:`import_quietly` already imported."""

    def create_module(self, spec):
        return sys.modules[spec.name]

    def exec_module(self, module):
        pass


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if fullname != "tensorflow":
            return None
        sys.meta_path.remove(self)
        module = import_quietly(fullname)
        return importlib.util.spec_from_loader(fullname, _Existing(), origin=getattr(module, "__file__", None))


def install() -> None:
    """Quiet the first TensorFlow import of this process (no-op if it already happened)."""
    if "tensorflow" in sys.modules or any(isinstance(f, _Finder) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _Finder())
