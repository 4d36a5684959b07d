"""Where the CLI writes: results to stdout, progress and errors to stderr."""

from __future__ import annotations

import json
import sys

from rich.console import Console
from rich.text import Text

# Piped output gets a wide console so tables are not squeezed to 80 columns.
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, soft_wrap=True)


_CONTROL = {c: f"\\x{c:02x}" for c in [*range(32), 127] if c != 9} | {10: "\\n", 13: "\\r"}


def one_line(message: str) -> str:
    """``message`` with control characters escaped (a file named with a newline in it), so it stays one line.

    >>> one_line("skipped in/bad\\nname.png: empty file")
    'skipped in/bad\\\\nname.png: empty file'
    """
    return message.translate(_CONTROL)


def error(message: str) -> None:
    """One red line on stderr."""
    err.print(Text.assemble(("error: ", "bold red"), (one_line(message), "red")), highlight=False)


def warn(message: str) -> None:
    err.print(Text.assemble(("warning: ", "bold yellow"), one_line(message)), highlight=False)


def info(message: str) -> None:
    """A line of progress or a note on stderr."""
    err.print(Text(one_line(message)), highlight=False)


def print_json(data) -> None:
    """JSON on stdout, nothing else, so scripts can parse it."""
    sys.stdout.write(json.dumps(data, indent=2) + "\n")
    sys.stdout.flush()


def pct(value) -> str:
    """A fraction as the percentage eval shows (bench's mIoU too): ``0.80174`` -> ``80.17``; None -> ``-``.

    >>> pct(0.80174), pct(None)
    ('80.17', '-')
    """
    return "-" if value is None else f"{100 * value:.2f}"
