"""Every cassette is clean: no credential, a provenance header, used by a test; filters work."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest
import vcr
import yaml
from _vcr_setup import (
    CASSETTE_ROOT,
    SECRET_FIELDS,
    SECRET_HEADERS,
    SECRET_PARAMETERS,
    scrub_text,
)
from vcr.request import Request

# No HTTP here: a request would meet an empty cassette folder and fail.
CASSETTES = "hygiene"
pytestmark = pytest.mark.vcr

HERE = Path(__file__).resolve().parent
CASSETTE_FILES = sorted(CASSETTE_ROOT.rglob("*.yaml")) + sorted(CASSETTE_ROOT.rglob("*.yml"))

# Text that looks like a credential, wherever it appears (bodies, URIs, comments).
LOOKS_SECRET = [
    ("JSON web token", re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")),
    ("bearer token", re.compile(r"(?i)bearer\s+(?!REDACTED\b)[A-Za-z0-9._~+/=-]{8,}")),
    ("basic auth", re.compile(r"(?i)\bbasic\s+(?!REDACTED\b)[A-Za-z0-9+/]{8,}={0,2}")),
    (
        "credential field",
        re.compile(
            r"(?i)[\"']?(token|access_token|password|api_?key|secret|securityToken|auth-token)"
            r"[\"']?\s*[:=]\s*[\"']?(?!REDACTED\b)(?!\[)[A-Za-z0-9._~+/-]{6,}"
        ),
    ),
    ("AWS key", re.compile(r"\bAKIA[0-9A-Z]{16}\b")),
    ("private key", re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")),
]


def problems(text: str) -> list[str]:
    """Credential-looking findings in a cassette's text, structurally and by pattern."""
    found = [f"{name}: {m.group(0)[:40]!r}" for name, p in LOOKS_SECRET for m in p.finditer(text)]
    document = yaml.safe_load(text) or {}
    for number, interaction in enumerate(document.get("interactions", [])):
        request, response = interaction["request"], interaction["response"]
        for part, headers in (
            ("request", request.get("headers")),
            ("response", response.get("headers")),
        ):
            for name, values in (headers or {}).items():
                values = values if isinstance(values, list) else [values]
                if name.lower() in SECRET_HEADERS and any(v != "REDACTED" for v in values):
                    found.append(f"interaction {number}: {part} header {name} is not REDACTED")
        for key, value in parse_qsl(urlsplit(request["uri"]).query):
            if key.lower() in {p.lower() for p in SECRET_PARAMETERS} and value != "REDACTED":
                found.append(f"interaction {number}: query parameter {key} is not REDACTED")
    return found


def test_there_are_cassettes():
    assert len(CASSETTE_FILES) >= 10
    assert (CASSETTE_ROOT / "ukcarbon").is_dir()


@pytest.mark.parametrize("path", CASSETTE_FILES, ids=lambda p: str(p.relative_to(CASSETTE_ROOT)))
def test_no_credential_in_any_cassette(path):
    assert problems(path.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize("path", CASSETTE_FILES, ids=lambda p: str(p.relative_to(CASSETTE_ROOT)))
def test_every_cassette_says_how_it_was_made(path):
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith(("# Written by hand (not recorded)", "# Recorded from the live API"))
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert document["version"] == 1 and document["interactions"]


def test_every_cassette_is_used_by_a_test():
    used: set[tuple[str, str]] = set()
    for module in HERE.glob("test_*.py"):
        text = module.read_text(encoding="utf-8")
        folder = re.search(r'^CASSETTES = "([^"]+)"', text, re.M)
        for name in re.findall(r'@pytest\.mark\.vcr\("([^"]+)"\)', text):
            used.add((folder.group(1) if folder else "", name))
    for path in CASSETTE_FILES:
        key = (path.parent.name, path.stem)
        assert key in used, f"{path.relative_to(CASSETTE_ROOT)} is not replayed by any test"


def test_cassette_tests_never_use_mock_transport():
    # vcrpy patches httpx.MockTransport too: the two must not meet in one test.
    for module in HERE.glob("test_*.py"):
        if module.name != Path(__file__).name:
            assert "MockTransport" not in module.read_text(encoding="utf-8"), module.name


def test_the_scanner_finds_planted_secrets():
    leaky = """# Written by hand (not recorded)
interactions:
- request:
    body: '{"password": "hunter2hunter2"}'
    headers:
      auth-token:
      - real-token-123456
    method: GET
    uri: https://web-api.tp.entsoe.eu/api?securityToken=abcdef123456&documentType=A75
  response:
    body:
      string: '{"token": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1c2VyIn0.c2lnbmF0dXJl"}'
    headers: {}
    status: {code: 200, message: OK}
version: 1
"""
    found = "\n".join(problems(leaky))
    for expected in (
        "JSON web token",
        "auth-token is not REDACTED",
        "securityToken is not REDACTED",
        "credential field: '\"password",
    ):
        assert expected in found
    clean = leaky.replace("hunter2hunter2", "REDACTED").replace("real-token-123456", "REDACTED")
    clean = clean.replace("abcdef123456", "REDACTED")
    clean = clean.replace("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1c2VyIn0.c2lnbmF0dXJl", "REDACTED")
    assert problems(clean) == []


def test_recording_filters_every_secret(vcr_config):
    config = vcr.VCR(**vcr_config).get_merged_config()
    request = Request(
        "POST",
        "https://api.example.org/v3/login?securityToken=tok-1234567&zone=DE&api_key=k-7654321",
        b'{"username": "ada", "password": "hunter2hunter2", "zone": "DE"}',
        {
            "Authorization": "Basic YWRhOmh1bnRlcjI=",
            "auth-token": "em-token-abcdef",
            "Content-Type": "application/json",
        },
    )
    kept = config["before_record_request"](request)
    text = f"{kept.uri} {kept.body!r} {kept.headers}"
    for secret in ("tok-1234567", "k-7654321", "hunter2", "ada", "YWRh", "em-token-abcdef"):
        assert secret not in text
    assert "zone=DE" in kept.uri and kept.headers["auth-token"] == "REDACTED"

    response = {
        "status": {"code": 200, "message": "OK"},
        "headers": {"Set-Cookie": ["session=abcdef123456"], "Content-Type": ["application/json"]},
        "body": {
            "string": b'{"token": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1c2VyIn0.c2ln", '
            b'"echo": "https://x/api?securityToken=tok-999999&a=1"}'
        },
    }
    kept_response = config["before_record_response"](response)
    body = kept_response["body"]["string"]
    assert b"eyJ" not in body and b"tok-999999" not in body and b'"token": "REDACTED"' in body
    assert kept_response["headers"]["Set-Cookie"] == ["REDACTED"]
    assert config["record_mode"] == "none"


def test_scrub_text_leaves_ordinary_bodies_alone():
    body = b'{"data": [{"from": "2024-06-01T12:00Z", "intensity": {"forecast": 95}}]}'
    assert scrub_text(body) == body
    assert set(SECRET_FIELDS) >= {"password", "token"}
