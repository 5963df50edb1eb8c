"""Cassette settings shared by conftest.py and the hygiene tests: where, what is secret, scrubbing."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from vcr.persisters.filesystem import FilesystemPersister
from vcr.serialize import serialize

REPO = Path(__file__).resolve().parents[2]
CASSETTE_ROOT = REPO / "cassettes"

#: Headers that carry credentials at one provider or another (case-insensitive).
SECRET_HEADERS = (
    "authorization",
    "auth-token",
    "x-api-key",
    "api-key",
    "cookie",
    "set-cookie",
    # Azure API Management, a common gateway in front of a self-hosted Carbon Aware SDK.
    "ocp-apim-subscription-key",
)
#: Query parameters that carry credentials (ENTSO-E's securityToken and the usual names;
#: auth-token is Electricity Maps' header, filtered should it ever travel as a parameter).
SECRET_PARAMETERS = ("securityToken", "token", "access_token", "api_key", "apikey", "auth-token")
#: Form and JSON body fields that carry credentials (WattTime's login and register).
SECRET_FIELDS = ("password", "username", "token", "email")

_BODY_PATTERNS = [
    # "token": "eyJ..."  (WattTime's login answer), also password/api_key fields
    (
        re.compile(rb'("(?:token|access_token|password|api_?key)"\s*:\s*")[^"]*(")', re.I),
        rb"\1REDACTED\2",
    ),
    # a URL echoed back with its token (ENTSO-E acknowledgements)
    (re.compile(rb"(securityToken=)[^&\s\"'<]+", re.I), rb"\1REDACTED"),
    # bearer tokens and bare JWTs anywhere
    (re.compile(rb"(Bearer\s+)[A-Za-z0-9._~+/=-]+", re.I), rb"\1REDACTED"),
    (re.compile(rb"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"), rb"REDACTED"),
]
# An Electricity Maps key echoed back as a JSON field or in a URL (auth-token).
_BODY_PATTERNS += [
    (re.compile(rb'("auth[-_]?token"\s*:\s*")[^"]*(")', re.I), rb"\1REDACTED\2"),
    (re.compile(rb"(auth[-_]?token=)[^&\s\"'<]+", re.I), rb"\1REDACTED"),
]

# An ENTSO-E securityToken quoted as a field ('securityToken': '...', "securityToken": "...").
_BODY_PATTERNS += [
    (re.compile(rb"""(securityToken['"]\s*[:=]\s*['"])[^'"]+""", re.I), rb"\1REDACTED"),
]


def scrub_text(body: bytes) -> bytes:
    """``body`` with anything that looks like a credential replaced by ``REDACTED``."""
    for pattern, replacement in _BODY_PATTERNS:
        body = pattern.sub(replacement, body)
    return body


def scrub_request(request: Any) -> Any:
    """vcrpy before_record_request hook: scrub credential-looking text from the body."""
    if isinstance(request.body, bytes):
        request.body = scrub_text(request.body)
    return request


def scrub_response(response: dict[str, Any]) -> dict[str, Any]:
    """vcrpy before_record_response hook: redact credential headers, scrub the body."""
    headers = response.get("headers", {})
    for name in list(headers):
        if name.lower() in SECRET_HEADERS:
            headers[name] = ["REDACTED"]
    body = response.get("body", {})
    if isinstance(body.get("string"), bytes):
        body["string"] = scrub_text(body["string"])
    return response


class RecordingPersister(FilesystemPersister):
    """Writes recorded cassettes with a header comment that says how they were made."""

    @staticmethod
    def save_cassette(cassette_path: Any, cassette_dict: Any, serializer: Any) -> None:
        path = Path(cassette_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        header = (
            f"# Recorded from the live API on {datetime.now(UTC):%Y-%m-%d} with\n"
            "#   .venv/bin/pytest tests/cassette -m vcr --vcr-record=all\n"
            "# Secrets were filtered by vcr_config in tests/cassette/conftest.py.\n"
        )
        path.write_text(header + serialize(cassette_dict, serializer), encoding="utf-8")
