"""The two response caches of the HTTP layer: in memory, and on disk across processes.

Both keep only successful answers, until a TTL measured by the provider's clock runs out.
:class:`ResponseCache` is the first level (per provider, or shared by a provider's sync
and async faces); :class:`DiskCache` is an optional second level, shared by processes and
runs, that never stores an answer which may carry a credential.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import os
import re
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx

from lowcarb.backends._http_calls import describe_request

__all__ = ["CachedAnswer", "DiskCache", "ResponseCache", "credential_partition"]

log = logging.getLogger("lowcarb.backends.http")


@dataclass(frozen=True)
class CachedAnswer:
    """A stored answer: status, headers to replay, the decoded body, and its expiry."""

    status_code: int
    headers: list[tuple[str, str]]
    content: bytes
    expires: datetime


class ResponseCache:
    """Successful responses kept in memory until their TTL, measured by a clock, runs out.

    Keys are the request's method, full URL and body digest. One cache may be shared by
    several providers or by a provider's sync and async faces. Thread-safe.

    Args:
        max_entries: Least recently used entries are dropped beyond this.

    Attributes:
        hits: Answers served from the cache.
        misses: Lookups that found nothing fresh.
    """

    def __init__(self, *, max_entries: int = 1024) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, got {max_entries}")
        self.max_entries = max_entries
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[str, CachedAnswer] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def key(request: httpx.Request) -> str:
        """The cache key of ``request`` (kept in memory only; it may hold query secrets)."""
        body = request.content
        digest = hashlib.sha256(body).hexdigest()[:16] if body else ""
        return f"{request.method} {request.url} {digest}"

    def get(self, key: str, now: datetime) -> CachedAnswer | None:
        """The fresh entry under ``key``, or None (an expired one is dropped)."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry.expires > now:
                self._entries.move_to_end(key)
                self.hits += 1
                return entry
            if entry is not None:
                del self._entries[key]
            self.misses += 1
            return None

    def put(self, key: str, response: httpx.Response, expires: datetime) -> None:
        """Keep ``response`` (already read) under ``key`` until ``expires``."""
        entry = CachedAnswer(
            response.status_code, _replayable_headers(response), response.content, expires
        )
        with self._lock:
            self._entries[key] = entry
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        """Forget every entry (the counters stay)."""
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def __repr__(self) -> str:
        return f"ResponseCache({len(self)} entries, hits={self.hits}, misses={self.misses})"


# Headers that describe the stored (already decoded) body, and so must not travel with it:
# replaying ``content-encoding: gzip`` over a decoded body would fail to decode again.
_BODY_FRAMING = frozenset({"content-encoding", "content-length", "transfer-encoding"})

#: A JSON field whose name says it holds a credential (``"token":``, ``"access_token":``).
_SECRET_FIELD = re.compile(r'(?i)"[^"]*(token|password|passwd|secret|api[_-]?key)[^"]*"\s*:')

_DISK_FORMAT = "lowcarb-http-cache/1"


def _replayable_headers(response: httpx.Response) -> list[tuple[str, str]]:
    return [(k, v) for k, v in response.headers.multi_items() if k.lower() not in _BODY_FRAMING]


def credential_partition(provider: str, secrets: Sequence[str]) -> str:
    """A one-way digest of a provider's credentials, to keep their disk entries apart.

    PBKDF2 (100,000 rounds), so that even a weak password cannot be guessed back from the
    file names it salts. Empty when there are no credentials (entries are shared).
    """
    values = [s for s in secrets if s]
    if not values:
        return ""
    material = "\0".join(values).encode()
    salt = f"lowcarb-disk-cache/{provider}".encode()
    return hashlib.pbkdf2_hmac("sha256", material, salt, 100_000).hex()


class DiskCache:
    """Successful responses kept in files until their TTL runs out, shared by processes.

    One JSON file per answer, named by the SHA-256 of the *redacted* request: method, URL
    with credentials replaced (:func:`lowcarb.exceptions.redact` with the known secret
    values) and a digest of the body. Request headers (where auth lives) are never part of
    the key, and a file holds only the redacted request, the status, the content type, the
    body and the expiry. An answer that may carry a credential is never written: one to a
    request with HTTP Basic auth (a login), or whose body contains a known secret value or
    a field named like ``token``, ``password``, ``secret`` or ``api_key``.

    Expiry is an absolute time from the provider's clock, compared with that clock on
    read, so a ``ManualClock`` drives it in tests. Files are written under a temporary
    name and renamed into place (atomic on POSIX and Windows): concurrent writers and
    readers in other processes see a whole entry or none. An unreadable or corrupt entry
    is logged as a warning, deleted and treated as a miss (the request is sent again).
    Reads and writes are small blocking file operations, in the async face too.

    Entries are separated by ``partition``: a provider passes a digest of its credentials
    (:func:`credential_partition`), so an answer fetched with one key (whose plan may see
    other zones) is never served to another. The partition only salts the file names.

    Size: about ``max_entries`` files at most; every few writes (every write when
    ``max_entries`` < 16) the least recently written beyond it are deleted. Expired
    entries are deleted when read.

    Args:
        directory: Where the files go; created (mode 0700) if missing.
        max_entries: Files kept at most.
        partition: Salts the file names; entries of another partition are invisible.

    Attributes:
        hits: Answers served from disk.
        misses: Lookups that found no fresh entry.
        writes: Entries written.
    """

    def __init__(
        self, directory: str | os.PathLike[str], *, max_entries: int = 4096, partition: str = ""
    ) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, got {max_entries}")
        self.directory = Path(directory)
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.max_entries = max_entries
        self._partition = partition
        self.hits = 0
        self.misses = 0
        self.writes = 0
        self._lock = threading.Lock()
        # Pruning lists the directory: do it every few writes, not on each one.
        self._prune_every = max(1, min(64, max_entries // 8))

    @staticmethod
    def key(request: httpx.Request, secrets: Sequence[str] = ()) -> str:
        """The cache key of ``request``: ``METHOD URL BODY-DIGEST`` with credentials redacted."""
        body = request.content
        digest = hashlib.sha256(body).hexdigest()[:16] if body else ""
        return f"{describe_request(request, secrets)} {digest}".rstrip()

    def path(self, key: str) -> Path:
        """The file that holds the entry under ``key``."""
        name = hashlib.sha256(f"{self._partition}\n{key}".encode()).hexdigest()
        return self.directory / (name + ".json")

    def get(self, key: str, now: datetime) -> CachedAnswer | None:
        """The fresh entry under ``key``, or None (expired and corrupt ones are deleted)."""
        path = self.path(key)
        entry = self._read(path, key)
        if entry is not None and entry.expires > now:
            with self._lock:
                self.hits += 1
            return entry
        if entry is not None:
            path.unlink(missing_ok=True)
        with self._lock:
            self.misses += 1
        return None

    def put(
        self,
        key: str,
        response: httpx.Response,
        expires: datetime,
        secrets: Sequence[str] = (),
    ) -> bool:
        """Write ``response`` (already read) under ``key`` until ``expires``.

        Returns:
            Whether it was written (False for an answer that may carry a credential).
        """
        if not self._storable(key, response, secrets):
            log.debug("not writing %s to the disk cache: it may carry a credential", key)
            return False
        content = response.content
        try:
            body, encoding = content.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            body, encoding = base64.b64encode(content).decode("ascii"), "base64"
        record = {
            "format": _DISK_FORMAT,
            "request": key,
            "status": response.status_code,
            # Only what a parser needs: no cookies or other headers that could identify us.
            "headers": [(k, v) for k, v in response.headers.multi_items() if k == "content-type"],
            "expires": expires.isoformat(),
            "encoding": encoding,
            "body": body,
        }
        target = self.path(key)
        fd, temporary = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=self.directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as file:
                json.dump(record, file)
            os.replace(temporary, target)
        except OSError as exc:
            Path(temporary).unlink(missing_ok=True)
            log.warning("could not write the disk cache entry %s: %s", target, exc)
            return False
        with self._lock:
            self.writes += 1
            due = self.writes % self._prune_every == 0
        if due:
            self._prune()
        return True

    def clear(self) -> None:
        """Delete every entry (the counters stay)."""
        for path in self.directory.glob("[!.]*.json"):
            path.unlink(missing_ok=True)

    def __len__(self) -> int:
        return sum(1 for _ in self.directory.glob("[!.]*.json"))

    def __repr__(self) -> str:
        return (
            f"DiskCache({str(self.directory)!r}, hits={self.hits}, misses={self.misses}, "
            f"writes={self.writes})"
        )

    # -- internals ------------------------------------------------------------------------

    @staticmethod
    def _storable(key: str, response: httpx.Response, secrets: Sequence[str]) -> bool:
        authorization = response.request.headers.get("authorization", "")
        if authorization.lower().startswith("basic "):
            return False  # a login: its answer is a token
        text = response.content.decode("utf-8", "replace")
        if _SECRET_FIELD.search(text):
            return False
        return not any(s and (s in text or s in key) for s in secrets)

    def _read(self, path: Path, key: str) -> CachedAnswer | None:
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("ignoring the unreadable disk cache entry %s: %s", path, exc)
            return None
        try:
            record = json.loads(raw)
            if record.get("format") != _DISK_FORMAT or record["request"] != key:
                raise ValueError("not an entry of this cache or of this request")
            body = record["body"]
            content = (
                base64.b64decode(body, validate=True)
                if record["encoding"] == "base64"
                else body.encode("utf-8")
            )
            expires = datetime.fromisoformat(record["expires"])
            if expires.tzinfo is None:
                raise ValueError("expiry without a time zone")
            headers = [(str(k), str(v)) for k, v in record["headers"]]
            return CachedAnswer(int(record["status"]), headers, content, expires)
        except (ValueError, KeyError, TypeError, AttributeError, binascii.Error) as exc:
            log.warning(
                "ignoring the corrupt disk cache entry %s (%s: %s); it will be fetched again",
                path,
                type(exc).__name__,
                exc,
            )
            path.unlink(missing_ok=True)
            return None

    def _prune(self) -> None:
        """Keep at most ``max_entries`` files; drop temporary files of crashed writers."""
        entries: list[tuple[float, Path]] = []
        stale = time.time() - 600
        for path in self.directory.glob("*.json"):
            try:
                mtime = path.stat().st_mtime
            except FileNotFoundError:
                continue  # another process removed it meanwhile
            if path.name.startswith(".tmp-"):
                if mtime < stale:
                    path.unlink(missing_ok=True)
                continue
            entries.append((mtime, path))
        if len(entries) <= self.max_entries:
            return
        entries.sort()
        for _, path in entries[: len(entries) - self.max_entries]:
            path.unlink(missing_ok=True)
