"""``graph_function``: ``tf.function`` without AutoGraph, for every function segcli traces (and
``dataset_function`` for the functions tf.data's ``map`` traces).

AutoGraph rewrites a function's Python source (and that of everything it calls) into TensorFlow control flow
before the first trace. segcli's traced code branches only on values known while tracing (static shapes,
Python settings), so the rewrite changes nothing in the graph and costs time at every start
(benchmarks/STARTUP.md, ``benchmarks/startup.py``). A tensor-dependent Python ``if`` in traced code fails at
trace time here (``using a tf.Tensor as a Python bool``) instead of being rewritten; write it with
``tf.cond``/``tf.where``. ``SEGCLI_AUTOGRAPH=1`` turns AutoGraph back on, for that benchmark's comparison.

>>> import tensorflow as tf
>>> double = graph_function(lambda x: x * 2, input_signature=[tf.TensorSpec((None,), tf.int32)])
>>> double(tf.constant([1, 2])).numpy().tolist()
[2, 4]
>>> @graph_function(reduce_retracing=True)
... def total(x):
...     return tf.reduce_sum(x)
>>> int(total(tf.constant([1, 2, 3])))
6
>>> [int(i) for i in tf.data.Dataset.range(3).map(dataset_function(lambda i: i * 10))]
[0, 10, 20]
"""

from __future__ import annotations

import os


def graph_function(fn=None, **options):
    """``tf.function(fn, autograph=False, **options)``; usable as ``@graph_function`` or ``@graph_function(...)``."""
    import tensorflow as tf

    options["autograph"] = _autograph()
    if fn is None:
        return lambda f: tf.function(f, **options)
    return tf.function(fn, **options)


def dataset_function(fn):
    """``fn`` marked for tf.data's ``map`` not to rewrite with AutoGraph (``map`` has no switch of its own)."""
    import tensorflow as tf

    return fn if _autograph() else tf.autograph.experimental.do_not_convert(fn)


def _autograph() -> bool:
    return os.environ.get("SEGCLI_AUTOGRAPH") == "1"
