"""Typed errors for expected failures.

The CLI turns any :class:`SegcliError` into one red line on stderr and a
non-zero exit code, and so it does for a full (or read-only) disk, which
:func:`disk_full_reason` recognises. Anything else escaping a command is a bug.

Library code speaks of values, not command-line flags: ``value`` names the
argument at fault, and the CLI shows the flag that sets it.

>>> err = UsageError("image size 16 is below 32 pixels; use at least 32", value="image_size")
>>> str(err), err.value
('image size 16 is below 32 pixels; use at least 32', 'image_size')
"""

import errno
import os

#: Write failures no retry of the next file can get past: the disk (or the user's quota) is full, or read-only.
DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)


class SegcliError(Exception):
    """An expected failure with a message written for the user; ``value`` names the argument at fault."""

    exit_code = 2

    def __init__(self, message: str = "", value: str | None = None):
        super().__init__(message)
        self.value = value


class PresetError(SegcliError, ValueError):
    """Unknown preset name or bad preset arguments (a ValueError too, as keras-cv raises for them)."""


class WeightsNotFoundError(SegcliError):
    """A preset's weights are not in the local cache."""


class CheckpointError(SegcliError):
    """A checkpoint file or folder is missing, corrupt or does not fit the model."""


class ModelError(SegcliError, ValueError):
    """A model cannot be built from, or run on, the given arguments (a ValueError too, as Keras raises)."""


class DataError(SegcliError):
    """A dataset or input image cannot be used."""


class UsageError(SegcliError, ValueError):
    """A command-line value is out of range or contradicts another (a ValueError too)."""


class MissingDependencyError(SegcliError):
    """An optional dependency is not installed."""


def disk_full_reason(exc: BaseException) -> str:
    """"no space left on device" (or the quota's or read-only disk's reason) for such an OSError, else "".

    >>> disk_full_reason(OSError(errno.ENOSPC, "No space left on device")), disk_full_reason(OSError(errno.EIO, "I/O"))
    ('no space left on device', '')
    """
    if not isinstance(exc, OSError) or exc.errno not in DISK_FULL:
        return ""
    reason = exc.strerror or os.strerror(exc.errno)
    return reason[:1].lower() + reason[1:]
