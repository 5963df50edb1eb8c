"""What a flow says to the HTTP layer, and how it reads the answers, without any I/O.

A provider writes each operation once, as a *flow*: a generator that yields lists of
:class:`Call` (plain data: path, query, headers, cache TTL, a label) and receives their
responses in the same order, then returns its result. It never sends anything itself,
so both drivers (:mod:`lowcarb.backends._http_drivers`) run the same flow. The helpers
here read response bodies with messages that name the (redacted) request.
"""

from __future__ import annotations

import json
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeAlias, TypeVar

import httpx

from lowcarb.exceptions import ResponseParseError, redact

__all__ = ["Call", "Flow", "describe_request", "error_detail", "json_body"]

T = TypeVar("T")

#: A provider's logic for one operation: yields batches of calls, receives their
#: responses in the same order, returns the result.
Flow: TypeAlias = Generator[list["Call"], list[httpx.Response], T]


@dataclass(frozen=True)
class Call:
    """One HTTP request a flow wants sent, as plain data (no I/O).

    Attributes:
        path: Appended to the provider's base URL; starts with ``/``.
        params: Query parameters (a list value repeats the parameter).
        method: HTTP method.
        headers: Extra headers for this call (the core adds Accept, User-Agent, auth).
        body: Request body, for POST.
        cache_ttl: How long a successful answer may be reused; None never caches it.
        label: What the call is for, in error messages (e.g. ``forecast GB``).
        accept: Error statuses handed to the flow as responses instead of raised (a flow
            that refreshes a token on 401, or reads a 400 as "unknown postcode").
    """

    path: str
    params: Mapping[str, str | Sequence[str]] = field(default_factory=dict)
    method: str = "GET"
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | None = None
    cache_ttl: timedelta | None = None
    label: str = ""
    accept: frozenset[int] = frozenset()


def describe_request(request: httpx.Request, secrets: Sequence[str] = ()) -> str:
    """``METHOD URL`` of ``request`` with credentials redacted, for messages and logs."""
    return redact(f"{request.method} {request.url}", tuple(secrets))


def json_body(
    response: httpx.Response, *, provider: str, secrets: Sequence[str] = (), label: str = ""
) -> Any:
    """Decode a JSON response body.

    Raises:
        ResponseParseError: If the body is empty, truncated or not JSON; the message names
            the (redacted) request and quotes the start of the body.
    """
    where = describe_request(response.request, secrets)
    what = f" ({label})" if label else ""
    if not response.content.strip():
        raise ResponseParseError(
            f"{where}{what} answered {response.status_code} with an empty body where JSON "
            "was expected",
            provider=provider,
            status_code=response.status_code,
        )
    try:
        return json.loads(response.content)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ResponseParseError(
            f"{where}{what} answered with a body that is not valid JSON ({exc}); it starts "
            f"with {_excerpt(response.content, secrets)!r}",
            provider=provider,
            status_code=response.status_code,
        ) from exc


def _excerpt(content: bytes, secrets: Sequence[str] = (), limit: int = 120) -> str:
    # Redacted before it is cut, so that no credential survives in part.
    text = redact(content.decode("utf-8", "replace"), tuple(secrets))
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "..."


def error_detail(response: httpx.Response) -> str:
    """A short message from an error body, whatever the provider's error shape."""
    content = response.content
    if not content.strip():
        return ""
    if "html" in response.headers.get("content-type", "").lower():
        return "(an HTML error page)"
    try:
        payload = json.loads(content)
    except (ValueError, UnicodeDecodeError):
        return _excerpt(content)
    for key in ("message", "detail", "error", "title"):
        value = payload.get(key) if isinstance(payload, dict) else None
        if isinstance(value, dict):
            # {"error": {"code": "...", "message": "..."}} (UK Carbon Intensity and others)
            value = value.get("message") or value.get("code")
        if isinstance(value, str) and value.strip():
            return _excerpt(value.encode())
    return _excerpt(content)
