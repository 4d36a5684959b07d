"""segcli asks TensorFlow for its BFC allocator on the CPU, which keeps freed buffers for the next step.

TensorFlow's default CPU allocator is plain ``malloc``: a buffer of a few MB goes back to the operating system
when it is freed, and the next step faults it in again page by page. SegFormer makes many such buffers (a B0
activation at 512 px is 8-64 MB), so training and TensorFlow inference spent much of their time in the
kernel, faulting pages in. ``benchmarks/tf_allocator.py`` measures both allocators side by side
(``benchmarks/TF_ALLOCATOR.md``).

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
>>> allocator_name(env)
'default'
"""

from __future__ import annotations

import os

#: TensorFlow's switch between its default CPU allocator and the BFC one (read in process_state.cc).
ENV = "TF_CPU_ALLOCATOR_USE_BFC"


def prefer_bfc_allocator(environ=None) -> None:
    """Set ``TF_CPU_ALLOCATOR_USE_BFC=true`` in ``environ`` (default ``os.environ``) unless it is set."""
    environ = os.environ if environ is None else environ
    environ.setdefault(ENV, "true")


def allocator_name(environ=None) -> str:
    """``bfc`` or ``default``: the allocator TensorFlow builds from ``environ``, read as TensorFlow reads it."""
    environ = os.environ if environ is None else environ
    return "bfc" if environ.get(ENV, "").strip().lower() in ("1", "true") else "default"
