"""Helpers for tests that start segcli as a real process."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

#: The installed ``segcli`` script beside this Python, else the module (a checkout without an install).
SEGCLI = Path(sys.executable).with_name("segcli")
COMMAND = [str(SEGCLI)] if SEGCLI.is_file() else [sys.executable, "-m", "segcli.cli.app"]


def interrupt(proc: subprocess.Popen, timeout: float = 120) -> str:
    """Press Ctrl-C in ``proc`` (SIGINT) and return its stderr once it has exited; killed if it does not exit."""
    try:
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=timeout)
    finally:
        proc.kill()
        proc.communicate()
    return stderr
