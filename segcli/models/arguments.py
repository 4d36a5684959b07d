"""Checks of model constructor arguments: one ModelError line naming the argument, before Keras sees it.

>>> whole_number("num_classes", 2.5)
Traceback (most recent call last):
segcli.errors.ModelError: num_classes must be a whole number of at least 1; got 2.5.
>>> image_shape((None, None, 3)), image_shape([64, 96, 3])
((None, None, 3), (64, 96, 3))
>>> image_shape(64)
Traceback (most recent call last):
segcli.errors.ModelError: input_shape must be (height, width, channels), with None for any size, e.g. (512, 512, 3) or (None, None, 3); got 64.
"""

from __future__ import annotations

import numbers

from segcli.errors import ModelError


def whole_number(name: str, value, minimum: int = 1) -> int:
    """``value`` as an int; ModelError unless it is a whole number (not a bool) of at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ModelError(f"{name} must be a whole number of at least {minimum}; got {value!r}.")
    if value < minimum:
        raise ModelError(f"{name} must be at least {minimum}; got {value}.")
    return int(value)


def image_shape(value) -> tuple:
    """``value`` as a ``(height, width, channels)`` tuple; sizes may be None (any size), channels may not."""
    ok = isinstance(value, (tuple, list)) and len(value) == 3 and all(
        v is None or (isinstance(v, numbers.Integral) and not isinstance(v, bool) and v > 0) for v in value[:2]) \
        and isinstance(value[2], numbers.Integral) and not isinstance(value[2], bool) and value[2] > 0
    if not ok:
        raise ModelError(f"input_shape must be (height, width, channels), with None for any size, e.g. (512, 512, 3) "
                         f"or (None, None, 3); got {value!r}.")
    return tuple(None if v is None else int(v) for v in value)
