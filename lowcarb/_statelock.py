"""One process per state folder: an OS file lock, and a record of who holds it.

Two servers writing the same ledgers would each keep a stale view of the other's rounds
(and refuse every select once they disagree). The lock (``lowcarb.lock``, an ``flock``
through the filelock library) is released by the OS when its process ends, even by
``kill -9``, so a crash never leaves a stale lock. ``lowcarb.lock.json`` says who holds
it (process id, host, start time), so the refusal can name the holder; the lock file
itself is never written, as older filelock versions truncate it on every attempt.
"""

from __future__ import annotations

import json
import os
import socket
from datetime import UTC, datetime
from pathlib import Path

from filelock import FileLock, Timeout

from lowcarb._files import read_text_file
from lowcarb.exceptions import LedgerError, LowcarbError

__all__ = ["StateLock"]

LOCK_NAME = "lowcarb.lock"
HOLDER_NAME = "lowcarb.lock.json"


class StateLock:
    """An exclusive, non-blocking lock on a state folder.

    Args:
        folder: The state folder (it must exist).

    Example:
        >>> lock = StateLock.acquire(folder)  # doctest: +SKIP
        >>> lock.release()  # doctest: +SKIP
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        # Not thread-local: a server takes the lock in one thread and may release it in
        # another (an ASGI lifespan).
        self._lock = FileLock(str(folder / LOCK_NAME), thread_local=False)
        self._holder = folder / HOLDER_NAME

    @classmethod
    def acquire(cls, folder: Path) -> StateLock:
        """Take the folder's lock, or fail at once naming the process that holds it.

        Raises:
            LedgerError: If another process (or another registry in this one) holds it,
                or the folder does not allow the lock file.
        """
        lock = cls(folder)
        try:
            lock._lock.acquire(timeout=0)
        except Timeout:
            raise LedgerError(
                f"the state folder {folder} is in use by {lock.holder()}; stop that process "
                "or choose another state folder",
                path=folder,
            ) from None
        except OSError as exc:
            raise LedgerError(
                f"the state folder {folder} cannot be locked ({exc.strerror})", path=folder
            ) from exc
        record = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        try:
            lock._holder.write_text(json.dumps(record), encoding="utf-8")
        except OSError as exc:
            lock._lock.release()
            raise LedgerError(
                f"the state folder {folder} is not writable ({exc.strerror})", path=folder
            ) from exc
        return lock

    def holder(self) -> str:
        """Who holds the lock, as its record says (best effort)."""
        try:
            text = read_text_file(self._holder, what="lock record", max_bytes=4096)
            record = json.loads(text)
            return f"process {int(record['pid'])} on {record['host']} (since {record['since']})"
        except (LowcarbError, ValueError, KeyError, TypeError):
            return "another process (it has not said which)"

    def release(self) -> None:
        """Remove the holder record and release the lock (idempotent)."""
        if self._lock.is_locked:
            self._holder.unlink(missing_ok=True)
            self._lock.release()
