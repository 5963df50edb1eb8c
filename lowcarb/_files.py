"""Reading the files users name: regular files only, of bounded size, in UTF-8.

A path to ``/dev/zero``, a FIFO or a socket would make a plain read hang or grow without
end; a file larger than any sensible input would fill the memory. Every file lowcarb
reads because a user named it (configuration, credential and token files, zone maps,
task folders, carbon data) is checked here first, and text is decoded strictly, so each
of these failures is one clear error instead of a hang or a traceback.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from lowcarb.exceptions import ConfigurationError, LowcarbError

__all__ = [
    "MAX_CONFIG_BYTES",
    "MAX_DATA_FILE_BYTES",
    "MAX_SECRET_BYTES",
    "check_regular_file",
    "read_text_file",
]

#: Largest configuration file, zone map or task description read (bytes).
MAX_CONFIG_BYTES = 4 * 2**20
#: Largest credential or token file read (bytes).
MAX_SECRET_BYTES = 64 * 2**10
#: Largest carbon-intensity data file read (bytes).
MAX_DATA_FILE_BYTES = 2**30


def _size(nbytes: int) -> str:
    return f"{nbytes / 2**20:.3g} MiB" if nbytes >= 2**20 else f"{nbytes / 2**10:.3g} KiB"


def check_regular_file(
    path: str | os.PathLike[str],
    *,
    what: str,
    max_bytes: int,
    error: type[LowcarbError] = ConfigurationError,
) -> int:
    """Check that ``path`` is a regular file (after symlinks) of at most ``max_bytes``.

    Args:
        path: The file.
        what: What it is, for the message (``config file``, ``LOWCARB_X_FILE``).
        max_bytes: Largest size allowed (bytes).
        error: The error class to raise.

    Returns:
        The file's size (bytes).

    Raises:
        LowcarbError: ``error``, saying what is wrong (missing, not a regular file, too
            large, unreadable).
    """
    try:
        info = os.stat(path)
    except OSError as exc:
        raise error(f"{what} {path} cannot be read ({exc.strerror})") from None
    if stat.S_ISDIR(info.st_mode):
        raise error(f"{what} {path} is a directory, not a file")
    if not stat.S_ISREG(info.st_mode):
        # A device (/dev/zero), a FIFO or a socket: reading it may never end.
        raise error(f"{what} {path} is not a regular file")
    if info.st_size > max_bytes:
        raise error(
            f"{what} {path} is {_size(info.st_size)}, larger than the limit of {_size(max_bytes)}"
        )
    return info.st_size


def read_text_file(
    path: str | os.PathLike[str],
    *,
    what: str,
    max_bytes: int = MAX_CONFIG_BYTES,
    error: type[LowcarbError] = ConfigurationError,
) -> str:
    """The UTF-8 text of a regular file of at most ``max_bytes`` (a BOM is dropped).

    Raises:
        LowcarbError: ``error``, for everything :func:`check_regular_file` refuses, and
            for text that is not UTF-8.
    """
    check_regular_file(path, what=what, max_bytes=max_bytes, error=error)
    try:
        with Path(path).open("rb") as fh:
            # Read at most one byte past the limit: the file may have grown since stat.
            data = fh.read(max_bytes + 1)
    except OSError as exc:
        raise error(f"{what} {path} cannot be read ({exc.strerror})") from None
    if len(data) > max_bytes:
        raise error(f"{what} {path} is larger than the limit of {_size(max_bytes)}")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise error(
            f"{what} {path} is not UTF-8 text (byte {exc.start} cannot be decoded)"
        ) from None
