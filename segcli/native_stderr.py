"""Filter what native code (TensorFlow, TFLite) writes straight to file descriptor 2.

C++ libraries log to fd 2 directly, past Python's ``sys.stderr``, so their lines cannot be hidden with
logging settings. :func:`filtered` points fd 2 at a temporary file for the duration of a block, then
writes back every line that the given pattern does not match: known noise goes, real errors and
warnings still show.

>>> import os, re
>>> with filtered(re.compile("noise")):
...     _ = os.write(2, b"noise from C++\\n")
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile


def kept(text: str, noise: re.Pattern) -> str:
    """The non-blank lines of ``text`` that ``noise`` does not match.

    >>> kept("a\\nINFO: x\\n\\nb\\n", re.compile("^INFO"))
    'a\\nb\\n'
    """
    return "".join(line for line in text.splitlines(keepends=True) if line.strip() and not noise.search(line))


@contextlib.contextmanager
def filtered(noise: re.Pattern):
    """Run the block with fd 2 captured; afterwards write to stderr the lines ``noise`` does not match."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            rest = kept(capture.read().decode("utf-8", "replace"), noise)
            if rest:
                sys.stderr.write(rest)
