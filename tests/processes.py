"""Helpers for tests that start segcli as a real process."""

from __future__ import annotations

import signal
import subprocess


def interrupt(proc: subprocess.Popen, timeout: float = 120) -> str:
    """Press Ctrl-C in ``proc`` (SIGINT) and return its stderr once it has exited; killed if it does not exit."""
    try:
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=timeout)
    finally:
        proc.kill()
        proc.communicate()
    return stderr
