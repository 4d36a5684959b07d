"""segcli asks TensorFlow for its BFC CPU allocator, which keeps freed buffers for the next step.

Which allocator TensorFlow uses by itself depends on its oneDNN ops, which it turns on by default only on CPUs
with AVX-512 VNNI, AVX-512 BF16 or AMX (``TF_ENABLE_ONEDNN_OPTS`` overrides that):

- oneDNN off (an AVX2-only CPU, for one): plain ``malloc``. A buffer of a few MB goes back to the operating
  system when it is freed, and the next step faults it in again page by page. SegFormer makes many such buffers
  (a B0 activation at 512 px is 8-64 MB), so training and TensorFlow inference spent much of their time in the
  kernel, faulting pages in;
- oneDNN on: oneDNN's allocator, itself built on a BFC allocator, so asking for BFC changes little there.

``benchmarks/tf_allocator.py`` measures TensorFlow's default against BFC side by side
(``benchmarks/TF_ALLOCATOR.md``, one section per kind of CPU).

The choice is an environment variable that TensorFlow reads once, when it builds its CPU allocator, so it is
set when segcli is imported and has no effect if TensorFlow was imported first. A value the user has set
wins: ``TF_CPU_ALLOCATOR_USE_BFC=false`` gives TensorFlow's default back.

>>> env = {}
>>> prefer_bfc_allocator(env)
>>> env
{'TF_CPU_ALLOCATOR_USE_BFC': 'true'}
>>> env = {"TF_CPU_ALLOCATOR_USE_BFC": "false"}
>>> prefer_bfc_allocator(env)
>>> env
{'TF_CPU_ALLOCATOR_USE_BFC': 'false'}
>>> allocator_name(env, onednn=False), allocator_name(env, onednn=True)
('malloc', 'onednn-bfc')
"""

from __future__ import annotations

import os

#: TensorFlow's switch between its default CPU allocator and the BFC one (read in process_state.cc).
ENV = "TF_CPU_ALLOCATOR_USE_BFC"


def prefer_bfc_allocator(environ=None) -> None:
    """Set ``TF_CPU_ALLOCATOR_USE_BFC=true`` in ``environ`` (default ``os.environ``) unless it is set."""
    environ = os.environ if environ is None else environ
    environ.setdefault(ENV, "true")


def allocator_name(environ=None, onednn: bool = False) -> str:
    """The CPU allocator TensorFlow builds from ``environ``, read as TensorFlow reads it.

    ``bfc`` when asked for; otherwise TensorFlow's default: ``onednn-bfc`` when its oneDNN ops are on in this
    process (``onednn``), else ``malloc``.
    """
    environ = os.environ if environ is None else environ
    if environ.get(ENV, "").strip().lower() in ("1", "true"):
        return "bfc"
    return "onednn-bfc" if onednn else "malloc"
